"""Seed structures for the evolutionary search: the TinyNAS starting points, scaled to fit.

DeepMAD's search starts from one small structure inside every budget (specs/deepmad.md section
7, step 1). By default we take the TinyNAS toolbox's own starting structures and shrink their
widths (and the mbv2 final 1x1 conv, which the search keeps fixed as TinyNAS does) by a common
factor (1, 3/4, 1/2, ...; every width rounded to a multiple of 8, at least 8) until all budgets
hold; the largest factor that fits is used:

- ``resnet`` (TinyNAS ``deepmad_R18_FLOPs.py``): stem 32 (3x3, stride 2), superblocks
  (out, btn) = (256, 64), (512, 128), (768, 256), (1024, 256), (2048, 512), kernel 3, depth 1,
  strides 2, 2, 2, 1, 2 -- five stages at 224;
- ``mbv2`` (TinyNAS ``deepmad_29M_224.py``): stem 32 (stride 2), (72, 432), (128, 768),
  (192, 1152), (288, 1728), (448, 2688), strides 2, 2, 2, 2, 1, final 1x1 conv 1792 -- five
  stages at 224.

Inputs under 128 pixels (CIFAR, Fashion-MNIST) cannot take five down-samplings: our choice is a
stride-1 stem and superblock strides 1, 2, 2, 1, 2 (resnet) / 1, 2, 2, 2, 1 (mbv2), i.e. four
stages (32 -> 32, 16, 8, 4); the stage weights then follow :func:`archopt.design.scores.
stage_weights` (last stage 8, others 1).

Shrinking widths lowers MACs and params but raises effectiveness (rho is depth over
geometric-mean fan-in), so a budget set can be infeasible for the seed family: then
:class:`archopt.errors.InfeasibleBudget` names the binding budget and the value the smallest
rho-feasible seed would need.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from archopt.errors import InfeasibleBudget
from archopt.spaces import MBV2Spec, ResNetSpec
from archopt.spaces.base import ArchSpec

from .budgets import Budgets
from .cnn import CNNLayout, round8

__all__ = ["SEED_SCALES", "default_seed", "fit_seed"]

SEED_SCALES = (1.0, 0.75, 0.5, 0.375, 0.25, 0.1875, 0.125, 0.09375, 0.0625, 0.046875, 0.03125)

_RESNET = (32, [(256, 64), (512, 128), (768, 256), (1024, 256), (2048, 512)])
_MBV2 = (32, [(72, 432), (128, 768), (192, 1152), (288, 1728), (448, 2688)], 1792)


def default_seed(space: str, resolution: int, in_channels: int = 3,
                 num_classes: int = 0) -> ArchSpec:
    """The unscaled TinyNAS starting structure for ``space`` at ``resolution`` (see module
    docstring for the layout at small inputs)."""
    small = resolution < 128
    stem_stride = 1 if small else 2
    common = dict(in_channels=in_channels, num_classes=num_classes, resolution=resolution)
    if space == "resnet":
        strides = (1, 2, 2, 1, 2) if small else (2, 2, 2, 1, 2)
        stem, blocks = _RESNET
        return ResNetSpec(name="DeepMAD seed (TinyNAS R18 start)", **common,
                          stem=dict(out=stem, k=3, stride=stem_stride),
                          blocks=[dict(out=o, btn=b, k=3, L=1, stride=s)
                                  for (o, b), s in zip(blocks, strides, strict=True)])
    strides = (1, 2, 2, 2, 1) if small else (2, 2, 2, 2, 1)
    stem, blocks, head = _MBV2
    return MBV2Spec(name="DeepMAD seed (TinyNAS MBV2 start)", **common,
                    stem=dict(out=stem, k=3, stride=stem_stride),
                    blocks=[dict(out=o, btn=b, k=3, L=1, stride=s)
                            for (o, b), s in zip(blocks, strides, strict=True)],
                    head_conv=head)


def fit_seed(layout: CNNLayout, row: np.ndarray,
             budgets: Budgets) -> tuple[CNNLayout, np.ndarray]:
    """Shrink the widths of seed ``row`` (and the mbv2 final 1x1 conv of ``layout``) by the
    largest factor of :data:`SEED_SCALES` that meets every budget (kernels clamped to the
    feature maps). Returns the layout and the seed row.

    Raises: InfeasibleBudget naming the binding budget (see module docstring).
    """
    s = layout.n_blocks
    layouts, rows, evs = [], [], []
    for scale in SEED_SCALES:
        lay = layout
        if layout.head_conv:
            lay = replace(layout, head_conv=int(round8(layout.head_conv * scale)))
        r = np.asarray(row, dtype=np.int64).copy()
        r[: 2 * s + 1] = round8(r[: 2 * s + 1] * scale)
        r[2 * s + 1: 3 * s + 1] = np.minimum(r[2 * s + 1: 3 * s + 1], lay.kernel_limits())
        ev = lay.evaluate(r[None, :])
        if budgets.feasible(ev.macs, ev.params, ev.layers, ev.effectiveness)[0]:
            return lay, r
        layouts.append(lay)
        rows.append(r)
        evs.append(ev)
    rho_ok = [bool(budgets.feasible(0, 0, 0, ev.effectiveness)[0]) for ev in evs]
    # the smallest seed that still meets rho decides the cost budget; else rho binds
    i = max((j for j, ok in enumerate(rho_ok) if ok), default=0)
    ev = evs[i]
    metrics = {"macs": float(ev.macs[0]), "params": float(ev.params[0]),
               "layers": float(ev.layers[0]), "effectiveness": float(ev.effectiveness[0])}
    budgets.require(metrics, f"the {layout.space} seed structure (TinyNAS start scaled by "
                    f"{SEED_SCALES[i]:g})",
                    hint="relax the budgets, or start from another seed (archopt design --init)")
    raise InfeasibleBudget("no scaled seed meets the budgets", budget=None)  # pragma: no cover
