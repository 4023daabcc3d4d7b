"""Vectorised DeepMAD scoring and mutation for the ``resnet`` and ``mbv2`` spaces.

A *layout* fixes what the search does not change (space, input, stem kernel and stride, the
superblock strides, block options); a *genotype* is one integer row per candidate::

    [stem_out, out_1..out_S, btn_1..btn_S, k_1..k_S, L_1..L_S]      (1 + 4 S columns)

so a batch of N candidates is an ``(N, 1 + 4S)`` int64 array, and :meth:`CNNLayout.evaluate`
computes MACs, params, layers, the stage entropies, effectiveness, depth penalty and objective of
all of them with a handful of numpy operations per superblock -- no ``nn.Module``, no Python loop
over candidates. The formulas are those of :mod:`archopt.design.scores` (DeepMAD, Shen et al.,
CVPR 2023, section 3; TinyNAS ``get_deepmad_forward`` / ``get_efficient_score``) and the cost
model is exactly that of :meth:`archopt.spaces.ResNetSpec.cost_table` /
:meth:`archopt.spaces.MBV2Spec.cost_table`; the tests hold all three equal.

Mutation follows the TinyNAS toolbox (``space_k1kxk1`` / ``space_k1dwsek1``) as restated in
specs/deepmad.md section 7: each mutation picks a unit (stem or superblock) uniformly and one
attribute (``out``, ``btn``, ``k`` or ``L``; the stem only ``out``):

- ``out`` x a scale (resnet {1.5, 1.25, 0.8, 0.6, 0.5}; mbv2 0.5..2.0 step 0.1), rounded to a
  multiple of 8 (at least 8, at most 2048 / 1280), then clamped to ``[c_in, 4 c_in]``, to at
  most the next block's ``out`` and at least a quarter of it (so widths stay non-decreasing and
  within 4x of their input); mbv2 keeps the expansion ratio ``btn / out``;
- ``btn`` (resnet) x the same scales, kept in ``[out/10, out]``; (mbv2) a new expansion ratio
  from 1.5..6.0 step 0.1;
- ``k``: another kernel from {3, 5} (mbv2 {3, 5, 7}); kernels are then clamped so that
  ``k * 1.5 <= input side`` (TinyNAS ``adjust_structures_inplace``; our side is the real integer
  one, TinyNAS divides the image size by the strides in floating point);
- ``L``: ``max(1, L + d)``, ``d`` in {-2, -1, +1, +2} (a no-op redrawn as ``1 + |d|``, as the
  toolbox redraws); the first superblock keeps ``L <= 3``.

Deviation from the toolbox, on purpose: TinyNAS draws the unit with numpy's
``randint(0, len - 1)`` whose upper end is exclusive, so its last superblock is never mutated; we
draw every unit. The mbv2 final 1x1 conv width is not searched (as in TinyNAS).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from archopt.errors import InvalidSpec
from archopt.spaces import MBV2Spec, ResNetSpec
from archopt.spaces.base import ArchSpec, conv_out
from archopt.spaces.layers import stage_numbers

from .scores import DEFAULT_DEPTH_PENALTY, BatchScores, stage_weights

__all__ = ["CNNEval", "CNNLayout", "MutationRules", "round8"]


def round8(x: Any) -> np.ndarray:
    """TinyNAS ``smart_round``: nearest multiple of 8 (half to even, as Python's round), >= 8."""
    return np.maximum(8, np.round(np.asarray(x, dtype=float) / 8.0) * 8).astype(np.int64)


def _ceil8(x: Any) -> np.ndarray:
    return np.maximum(8, np.ceil(np.asarray(x, dtype=float) / 8.0 - 1e-12) * 8).astype(np.int64)


@dataclass(frozen=True)
class MutationRules:
    """Mutation choices (TinyNAS defaults per space; see module docstring)."""

    out_scales: tuple[float, ...]
    btn_scales: tuple[float, ...]
    kernels: tuple[int, ...]
    depth_steps: tuple[int, ...] = (-2, -1, 1, 2)
    max_channels: int = 2048
    first_depth_max: int = 3
    btn_ratios: tuple[float, ...] = ()
    btn_min_ratio: float = 10.0

    @classmethod
    def for_space(cls, space: str) -> MutationRules:
        if space == "mbv2":
            return cls(out_scales=tuple(round(0.5 + 0.1 * i, 1) for i in range(16)),
                       btn_scales=(), kernels=(3, 5, 7), max_channels=1280,
                       btn_ratios=tuple(round(1.5 + 0.1 * i, 1) for i in range(46)))
        return cls(out_scales=(1.5, 1.25, 0.8, 0.6, 0.5), btn_scales=(1.5, 1.25, 0.8, 0.6, 0.5),
                   kernels=(3, 5))


class CNNEval(BatchScores):
    """Scores of a batch of ``resnet`` / ``mbv2`` candidates (see :class:`BatchScores`);
    ``objective`` = entropy - depth_penalty."""


@dataclass(frozen=True)
class CNNLayout:
    """The fixed part of a ``resnet`` (bottleneck superblocks) or ``mbv2`` search space.

    Build one from any spec of the space with :meth:`from_spec`; the spec's stem kernel, stride
    and pool, superblock strides, input channels, classes, resolution and (resnet) shortcut or
    (mbv2) final conv / SE options are kept, its widths, kernels and depths become the genotype.
    """

    space: str
    in_channels: int
    num_classes: int
    resolution: int
    stem_k: int
    stem_stride: int
    stem_pool: bool
    strides: tuple[int, ...]
    shortcut: str = "avgpool"
    project_first: bool = True
    head_conv: int | None = None
    se: bool = False
    se_ratio: float = 0.25
    alpha: tuple[float, ...] | None = None
    depth_penalty: float = DEFAULT_DEPTH_PENALTY
    name: str | None = None

    # -- construction ---------------------------------------------------------------------
    @classmethod
    def from_spec(cls, spec: ArchSpec, resolution: int | None = None, *,
                  alpha: Sequence[float] | None = None,
                  depth_penalty: float = DEFAULT_DEPTH_PENALTY) -> CNNLayout:
        """The layout of ``spec`` (a ``resnet`` spec with bottleneck blocks or an ``mbv2`` spec).

        Raises: InvalidSpec for another space, basic blocks, or a missing resolution.
        """
        res = spec._res(resolution)
        common = dict(in_channels=spec.in_channels, num_classes=spec.num_classes,
                      resolution=res, stem_k=spec.stem.k, stem_stride=spec.stem.stride,
                      stem_pool=spec.stem.pool, strides=tuple(b.stride for b in spec.blocks),
                      alpha=None if alpha is None else tuple(alpha),
                      depth_penalty=float(depth_penalty))
        if isinstance(spec, ResNetSpec):
            if any(b.block != "bottleneck" for b in spec.blocks):
                raise InvalidSpec("the DeepMAD resnet search space uses bottleneck superblocks "
                                  "(1x1-kxk-1x1); this spec has basic blocks. Score it with "
                                  "`archopt score`, or seed the search with a bottleneck spec")
            lay = cls(space="resnet", shortcut=spec.shortcut, project_first=spec.project_first,
                      **common)
        elif isinstance(spec, MBV2Spec):
            lay = cls(space="mbv2", head_conv=spec.head_conv, se=spec.se,
                      se_ratio=spec.se_ratio, **common)
        else:
            raise InvalidSpec(f"DeepMAD search supports the resnet and mbv2 spaces, not "
                              f"{spec.space!r}")
        lay._geometry()  # validates the resolution
        return lay

    # -- geometry (static per layout) -------------------------------------------------------
    @property
    def n_blocks(self) -> int:
        return len(self.strides)

    def _geometry(self) -> tuple[int, list[int], list[int], list[int], list[int]]:
        """(stem side after pool, superblock input sides, output sides, stage-end units,
        unit stages)."""
        rs = conv_out(self.resolution, self.stem_k, self.stem_stride)
        r = conv_out(rs, 3, 2, 1) if self.stem_pool else rs
        if r < 1:
            raise InvalidSpec(f"resolution {self.resolution} is too small for the stem")
        r_in, r_out = [], []
        for s in self.strides:
            r_in.append(r)
            r = conv_out(r, 3, s)
            r_out.append(r)
        units = stage_numbers([self.stem_stride, *self.strides])
        ends = [u for u in range(len(units)) if u == len(units) - 1 or units[u + 1] != units[u]]
        return rs, r_in, r_out, ends, units

    @property
    def n_stages(self) -> int:
        return len(self._geometry()[3])

    def kernel_limits(self) -> np.ndarray:
        """Largest kernel per superblock: the largest odd ``k`` with ``1.5 k <= input side``."""
        _, r_in, _, _, _ = self._geometry()
        out = []
        for r in r_in:
            k = math.floor(r / 1.5)
            k = k if k % 2 == 1 else k - 1
            out.append(max(1, k))
        return np.asarray(out, dtype=np.int64)

    # -- genotype <-> spec --------------------------------------------------------------------
    @property
    def width(self) -> int:
        return 1 + 4 * self.n_blocks

    def encode(self, spec: ArchSpec) -> np.ndarray:
        """The genotype row (shape ``(1 + 4S,)``) of a spec with this layout."""
        other = CNNLayout.from_spec(spec, self.resolution, alpha=self.alpha,
                                    depth_penalty=self.depth_penalty)
        if (other.space, other.strides, other.stem_k, other.stem_stride, other.stem_pool,
                other.in_channels) != (self.space, self.strides, self.stem_k, self.stem_stride,
                                       self.stem_pool, self.in_channels):
            raise InvalidSpec("spec does not share this search layout (space, stem, strides)")
        b = spec.blocks  # type: ignore[attr-defined]
        return np.asarray([spec.stem.out, *(x.out for x in b), *(x.btn for x in b),  # type: ignore[attr-defined]
                           *(x.k for x in b), *(x.L for x in b)], dtype=np.int64)

    def split(self, g: np.ndarray) -> tuple[np.ndarray, ...]:
        """Views (widths incl. stem ``(N, S+1)``, btn, k, L ``(N, S)``) of a genotype batch."""
        s = self.n_blocks
        return g[:, : s + 1], g[:, s + 1: 2 * s + 1], g[:, 2 * s + 1: 3 * s + 1], g[:, 3 * s + 1:]

    def decode(self, row: np.ndarray, name: str | None = None) -> ArchSpec:
        """The spec of one genotype row."""
        w, bt, k, d = self.split(np.asarray(row, dtype=np.int64)[None, :])
        stem = dict(out=int(w[0, 0]), k=self.stem_k, stride=self.stem_stride,
                    pool=self.stem_pool)
        blocks = [dict(out=int(w[0, i + 1]), btn=int(bt[0, i]), k=int(k[0, i]), L=int(d[0, i]),
                       stride=s) for i, s in enumerate(self.strides)]
        common = dict(name=name or self.name, in_channels=self.in_channels,
                      num_classes=self.num_classes, resolution=self.resolution, stem=stem,
                      blocks=blocks)
        if self.space == "resnet":
            return ResNetSpec(shortcut=self.shortcut, project_first=self.project_first,
                              **common)
        return MBV2Spec(head_conv=self.head_conv, se=self.se, se_ratio=self.se_ratio, **common)

    # -- scoring ----------------------------------------------------------------------------
    def evaluate(self, g: np.ndarray) -> CNNEval:
        """Costs and DeepMAD scores of a genotype batch ``(N, 1 + 4S)`` (see module docstring).

        Every figure is computed in float64; MACs and params are exact integers below 2**53.
        """
        g = np.asarray(g, dtype=np.int64)
        if g.ndim != 2 or g.shape[1] != self.width:
            raise InvalidSpec(f"genotype batch must have shape (N, {self.width}), got {g.shape}")
        rs, r_in, r_out, ends, _ = self._geometry()
        w, bt, kk, dd = (x.astype(float) for x in self.split(g))
        n = g.shape[0]
        k0sq = float(self.stem_k**2)
        c_in0 = float(self.in_channels)
        macs = c_in0 * w[:, 0] * k0sq * rs * rs
        params = c_in0 * w[:, 0] * k0sq + 2.0 * w[:, 0]
        cum_t = np.full(n, 0.5 * math.log(c_in0 * k0sq))
        layers = np.ones(n)
        stage_h, stage_rho = [], []
        alpha = stage_weights(len(ends), self.alpha)

        def close_stage(c: np.ndarray, side: int) -> None:
            stage_h.append((np.log(c) + 2.0 * math.log(side)) * cum_t)
            stage_rho.append(layers / np.exp(2.0 * cum_t / layers))

        r_stem = r_in[0] if self.n_blocks else rs
        if 0 in ends:
            close_stage(w[:, 0], r_stem)
        for b in range(self.n_blocks):
            c_in, out, btn, k, depth = w[:, b], w[:, b + 1], bt[:, b], kk[:, b], dd[:, b]
            ri2, ro2 = float(r_in[b] ** 2), float(r_out[b] ** 2)
            k2 = k * k
            rest = depth - 1.0
            if self.space == "resnet":
                lbk = np.log(btn * k2) + np.log(btn)
                cum_t += 0.5 * (np.log(c_in) + lbk) + 0.5 * rest * (np.log(out) + lbk)
                inner = btn * btn * k2 * ro2 + btn * out * ro2
                macs += c_in * btn * ri2 + inner + rest * (out * btn * ro2 + inner)
                p_inner = 4.0 * btn + btn * btn * k2 + btn * out + 2.0 * out
                params += c_in * btn + p_inner + rest * (out * btn + p_inner)
                proj = (np.ones(n, dtype=bool) if self.project_first
                        else (c_in != out) | (self.strides[b] != 1))
                macs += np.where(proj, c_in * out * ro2, 0.0)
                params += np.where(proj, c_in * out + 2.0 * out, 0.0)
            else:
                lkb = np.log(k2) + np.log(btn)
                cum_t += 0.5 * (np.log(c_in) + lkb) + 0.5 * rest * (np.log(out) + lkb)
                se_m = se_p = 0.0
                if self.se:
                    h = np.maximum(1.0, np.floor(np.round(btn * self.se_ratio) / 8.0)) * 8.0
                    se_m = 2.0 * btn * h
                    se_p = se_m + h + btn
                inner = btn * k2 * ro2 + se_m + btn * out * ro2
                macs += c_in * btn * ri2 + inner + rest * (out * btn * ro2 + inner)
                p_inner = 4.0 * btn + btn * k2 + se_p + btn * out + 2.0 * out
                params += c_in * btn + p_inner + rest * (out * btn + p_inner)
            layers = layers + 3.0 * depth
            c_last = out
            if b == self.n_blocks - 1 and self.space == "mbv2" and self.head_conv:
                hc = float(self.head_conv)
                macs += out * hc * ro2
                params += out * hc + 2.0 * hc
                cum_t += 0.5 * np.log(out)
                layers = layers + 1.0
                c_last = np.full(n, hc)
            if b + 1 in ends:
                close_stage(c_last, r_out[b])
        c_final = c_last if self.n_blocks else w[:, 0]
        if self.num_classes > 0:
            macs += c_final * self.num_classes
            params += c_final * self.num_classes + self.num_classes
        hs = np.stack(stage_h, axis=1)
        rhos = np.stack(stage_rho, axis=1)
        entropy = hs @ alpha
        std = dd[:, 1:].std(axis=1) if self.n_blocks > 1 else np.zeros(n)
        pen = self.depth_penalty * np.exp(std)
        return CNNEval(macs=macs, params=params, layers=layers, effectiveness=rhos.max(axis=1),
                       stage_entropies=hs, stage_effectiveness=rhos, entropy=entropy,
                       depth_penalty=pen, objective=entropy - pen)

    # -- mutation ---------------------------------------------------------------------------
    def mutate(self, parents: np.ndarray, rng: np.random.Generator, n_mutations: int = 2,
               rules: MutationRules | None = None) -> np.ndarray:
        """Children of ``parents`` (one each), ``n_mutations`` mutations apiece, then repaired.

        Deterministic for a given generator state. See the module docstring for the rules.
        """
        rules = rules or MutationRules.for_space(self.space)
        g = np.array(parents, dtype=np.int64, copy=True)
        n, s = g.shape[0], self.n_blocks
        for _ in range(n_mutations):
            unit = rng.integers(0, s + 1, n)
            attr = rng.integers(0, 4, n)
            attr[unit == 0] = 0
            draws = rng.random((n, 2))
            self._mut_out(g, np.nonzero(attr == 0)[0], unit, draws, rules)
            for a, fn in ((1, self._mut_btn), (2, self._mut_kernel), (3, self._mut_depth)):
                rows = np.nonzero(attr == a)[0]
                if rows.size:
                    fn(g, rows, unit[rows] - 1, draws[rows], rules)
        self.repair(g, rules)
        return g

    def _mut_out(self, g: np.ndarray, rows: np.ndarray, unit: np.ndarray, draws: np.ndarray,
                 rules: MutationRules) -> None:
        if rows.size == 0:
            return
        s = self.n_blocks
        u = unit[rows]
        scales = np.asarray(rules.out_scales)
        scale = scales[(draws[rows, 0] * len(scales)).astype(int)]
        cur = g[rows, u]
        new = np.minimum(round8(cur * scale), rules.max_channels)
        prev = g[rows, np.maximum(u - 1, 0)]
        lo = np.where(u > 0, prev, 8)
        hi = np.where(u > 0, 4 * prev, rules.max_channels)
        nxt = g[rows, np.minimum(u + 1, s)]
        has_next = u < s
        hi = np.minimum(np.where(has_next, np.minimum(hi, nxt), hi), rules.max_channels)
        lo = np.where(has_next, np.maximum(lo, _ceil8(nxt / 4.0)), lo)
        ok = lo <= hi
        val = np.clip(new, lo, hi)
        r_ok, u_ok = rows[ok], u[ok]
        if self.space == "mbv2":
            blk = u_ok >= 1
            rb, ub = r_ok[blk], u_ok[blk]
            ratio = self._snap_ratio(g[rb, s + ub] / g[rb, ub], rules)
            g[r_ok, u_ok] = val[ok]
            g[rb, s + ub] = round8(g[rb, ub] * ratio)
        else:
            g[r_ok, u_ok] = val[ok]

    @staticmethod
    def _snap_ratio(ratio: np.ndarray, rules: MutationRules) -> np.ndarray:
        grid = np.asarray(rules.btn_ratios)
        return grid[np.abs(ratio[:, None] - grid[None, :]).argmin(axis=1)]

    def _mut_btn(self, g: np.ndarray, rows: np.ndarray, blk: np.ndarray, draws: np.ndarray,
                 rules: MutationRules) -> None:
        s = self.n_blocks
        col = s + 1 + blk
        if self.space == "mbv2":
            grid = np.asarray(rules.btn_ratios)
            out = g[rows, blk + 1]
            cur = np.abs(g[rows, col][:, None] / out[:, None] - grid[None, :]).argmin(axis=1)
            pick = (draws[:, 0] * (len(grid) - 1)).astype(int)
            pick = pick + (pick >= cur)
            g[rows, col] = round8(out * grid[pick])
        else:
            scales = np.asarray(rules.btn_scales)
            scale = scales[(draws[:, 0] * len(scales)).astype(int)]
            g[rows, col] = np.minimum(round8(g[rows, col] * scale), rules.max_channels)

    def _mut_kernel(self, g: np.ndarray, rows: np.ndarray, blk: np.ndarray, draws: np.ndarray,
                    rules: MutationRules) -> None:
        col = 2 * self.n_blocks + 1 + blk
        ks = np.asarray(rules.kernels)
        cur = g[rows, col]
        pos = np.full(rows.size, -1)
        for i, kv in enumerate(ks):
            pos[cur == kv] = i
        known = pos >= 0
        pick = np.where(known, (draws[:, 0] * (len(ks) - 1)).astype(int),
                        (draws[:, 0] * len(ks)).astype(int))
        pick = np.where(known & (pick >= pos), pick + 1, pick)
        g[rows, col] = ks[pick]

    def _mut_depth(self, g: np.ndarray, rows: np.ndarray, blk: np.ndarray, draws: np.ndarray,
                   rules: MutationRules) -> None:
        col = 3 * self.n_blocks + 1 + blk
        steps = np.asarray(rules.depth_steps)
        d = steps[(draws[:, 0] * len(steps)).astype(int)]
        cur = g[rows, col]
        new = np.maximum(1, cur + d)
        new = np.where(new == cur, cur + np.abs(d), new)
        new = np.where(blk == 0, np.minimum(new, rules.first_depth_max), new)
        g[rows, col] = new

    def repair(self, g: np.ndarray, rules: MutationRules | None = None) -> None:
        """In place: clamp kernels to the feature-map size and keep ``btn`` in range
        (resnet ``[round8(out/10), out]``; mbv2 expansion ratio ``[1.5, 6]``)."""
        rules = rules or MutationRules.for_space(self.space)
        w, bt, kk, _ = self.split(g)
        np.minimum(kk, self.kernel_limits()[None, :], out=kk)
        out = w[:, 1:]
        if self.space == "resnet":
            lo = round8(out / rules.btn_min_ratio)
            np.clip(bt, lo, out, out=bt)
        else:
            lo = round8(out * min(rules.btn_ratios))
            hi = round8(out * max(rules.btn_ratios))
            np.clip(bt, lo, hi, out=bt)
