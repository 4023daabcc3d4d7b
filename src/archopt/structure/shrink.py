"""Baselines for shrinking an MLP to a parameter budget, beside the learned structure:
Torch-Pruning (the optional ``compare`` extra), random unit selection, and the widths a
params target allows.

- :func:`matched_widths`: hidden widths ``(w_1, w_r, ..., w_r)`` whose network has
  ``target`` params within ``tol``, as close to a uniform ratio ``w_1 / W_1 = w_r / W_r`` as
  the budget allows. A first-layer unit of a 784-input MLP carries ~800 weights, so a uniform
  ratio alone (Torch-Pruning's default) can miss a 1 % budget by several percent; the later
  layers' cheaper units close the gap.
- :func:`tp_prune_mlp`: Torch-Pruning (Fang et al., "DepGraph", CVPR 2023) as its authors
  document it: ``MetaPruner`` with ``GroupMagnitudeImportance(p=2)`` or
  ``GroupTaylorImportance()`` (gradients of the training loss on a minibatch before each
  step), iterative steps, the classifier ignored, layer ratios from :func:`matched_widths`
  (``pruning_ratio_dict``); the units each layer loses are Torch-Pruning's choice.
- :func:`tp_prune_to_params`: any network (e.g. a DenseNet's channels) pruned by
  Torch-Pruning to a params target the way the authors' benchmarks reach a target speed-up:
  many small iterative steps (``iterative_steps=400``, ``pruning_ratio=1.0``) until the target
  is reached.
- :func:`random_units`: a uniformly random set of hidden units whose network is within
  ``tol`` of ``target`` params.
"""

from __future__ import annotations

import importlib
import itertools
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from archopt.data import ImageDataset
from archopt.data.dataset import normalize
from archopt.errors import ArchoptError
from archopt.measure.onnx import MissingExtra

__all__ = ["IMPORTANCES", "matched_widths", "mlp_params", "random_units", "require_torch_pruning",
           "tp_prune_mlp", "tp_prune_to_params"]

IMPORTANCES = ("magnitude", "taylor")
EXTRA_COMMAND = "pip install 'archopt[compare]'"


def require_torch_pruning() -> Any:
    """``torch_pruning`` or :class:`~archopt.measure.onnx.MissingExtra` naming the pip command."""
    try:
        return importlib.import_module("torch_pruning")
    except ImportError:
        raise MissingExtra(f"the Torch-Pruning baseline needs torch-pruning (the compare extra): "
                           f"{EXTRA_COMMAND}") from None


def mlp_params(in_features: int, widths: Sequence[int], classes: int) -> int:
    """Weights and biases of the MLP ``in_features -> widths -> classes``."""
    dims = [in_features, *widths, classes]
    return sum(a * b + b for a, b in itertools.pairwise(dims))


def matched_widths(in_features: int, widths: Sequence[int], classes: int, target: int, *,
                   tol: float = 0.01) -> list[int]:
    """Hidden widths (first layer free, the others equal) with ``target`` params within
    ``tol`` (relative), the most uniform such pair (smallest ``|w_1 / W_1 - w_r / W_r|``, then
    the closest params); the closest params when no pair is within ``tol``.

    Raises: ArchoptError for fewer than one hidden layer or a target below the smallest net.
    """
    if not widths:
        raise ArchoptError("matched_widths needs at least one hidden layer")
    full, rest = widths[0], list(widths[1:])
    best: tuple[Any, ...] | None = None
    for w1 in range(1, full + 1):
        for wr in (range(1, min(rest) + 1) if rest else [0]):
            ws = [w1, *([wr] * len(rest))]
            gap = abs(mlp_params(in_features, ws, classes) - target) / target
            ratio_gap = abs(w1 / full - wr / min(rest)) if rest else 0.0
            key = (gap > tol, ratio_gap if gap <= tol else gap, gap)
            if best is None or key < best[0]:
                best = (key, ws)
    assert best is not None
    return best[1]


def _hidden_layers(model: nn.Module) -> list[nn.Linear]:
    layers = [m for m in model.modules() if isinstance(m, nn.Linear)]
    return layers[:-1]


def tp_prune_mlp(model: nn.Module, widths: Sequence[int], data: ImageDataset, *,
                 importance: str = "magnitude", steps: int = 5, batch_size: int = 256,
                 seed: int = 0) -> dict[str, Any]:
    """Prune the hidden units of a trained MLP (its Linear layers in order, the last the
    classifier) in place with Torch-Pruning to ``widths``.

    Args:
        model: e.g. ``MLPSpec.build()``'s module, trained.
        widths: the hidden widths to keep (e.g. :func:`matched_widths`).
        data: training images for the Taylor importance's gradients.
        importance: ``"magnitude"`` (``GroupMagnitudeImportance(p=2)``) or ``"taylor"``
            (``GroupTaylorImportance()``; cross-entropy on a seeded training minibatch of
            ``batch_size`` before each step, as the authors' README does).
        steps: Torch-Pruning's ``iterative_steps`` (linear ratio schedule).

    Returns: ``{"importance", "steps", "widths"}`` (the widths after pruning).
    Raises: MissingExtra without torch-pruning; ArchoptError for an unknown importance, a
        width outside ``[1, current]``, or a result that is not ``widths``.
    """
    tp = require_torch_pruning()
    imp = _importance(tp, importance)
    layers = _hidden_layers(model)
    if len(layers) != len(widths):
        raise ArchoptError(f"the model has {len(layers)} hidden layers, widths name "
                           f"{len(widths)}")
    for layer, w in zip(layers, widths, strict=True):
        if not 1 <= w <= layer.out_features:
            raise ArchoptError(f"width {w} outside [1, {layer.out_features}]")
    head = [m for m in model.modules() if isinstance(m, nn.Linear)][-1]
    # keep = int(W * (1 - ratio)) in Torch-Pruning; half a unit keeps it off a float boundary
    ratios = {layer: 1.0 - (w + 0.5) / layer.out_features
              for layer, w in zip(layers, widths, strict=True)}
    dev = next(model.parameters()).device
    example = torch.zeros((1, *data.input_shape), device=dev)
    pruner = tp.pruner.MetaPruner(model, example, importance=imp, pruning_ratio=0.0,
                                  pruning_ratio_dict=ratios, iterative_steps=steps,
                                  ignored_layers=[head])
    rng = np.random.default_rng(seed)
    was = model.training
    model.eval()
    for _ in range(steps):
        _gradients(model, importance, data, rng, batch_size)
        pruner.step()
    model.zero_grad(set_to_none=True)
    model.train(was)
    got = [layer.out_features for layer in _hidden_layers(model)]
    if got != list(widths):
        raise ArchoptError(f"Torch-Pruning left widths {got}, not {list(widths)}")
    return {"importance": importance, "steps": steps, "widths": got}


def _importance(tp: Any, importance: str) -> Any:
    if importance not in IMPORTANCES:
        raise ArchoptError(f"importance must be one of {', '.join(IMPORTANCES)}, "
                           f"got {importance!r}")
    return (tp.importance.GroupMagnitudeImportance(p=2) if importance == "magnitude"
            else tp.importance.GroupTaylorImportance())


def _gradients(model: nn.Module, importance: str, data: ImageDataset,
               rng: np.random.Generator, batch_size: int) -> None:
    """The Taylor importance reads ``.grad``: cross-entropy of a seeded training minibatch."""
    if importance != "taylor":
        return
    dev = next(model.parameters()).device
    idx = torch.as_tensor(rng.choice(len(data.train_y), batch_size, replace=False))
    model.zero_grad()
    x = normalize(data.train_x[idx], data.mean, data.std).to(dev)
    F.cross_entropy(model(x), data.train_y[idx].to(dev)).backward()


def tp_prune_to_params(model: nn.Module, target: int, data: ImageDataset, *,
                       importance: str = "magnitude", iterative_steps: int = 400,
                       global_pruning: bool = True, batch_size: int = 128,
                       seed: int = 0) -> dict[str, Any]:
    """Prune ``model`` in place with Torch-Pruning to the params closest to ``target``: a
    ``MetaPruner`` (``pruning_ratio=1.0``, ``iterative_steps`` steps, the classifier -- the
    last Linear -- ignored) stepped towards the target, as the authors' benchmarks prune to a
    target speed-up. A first pass on a copy finds the number of steps whose result is closest
    to ``target`` (the step that crosses it, or the one before); the second takes them.
    Global pruning (channels ranked across layers) by default: with local pruning every layer
    loses a channel at the same step, too coarse a grain for a 1 % budget in narrow layers.

    Returns: ``{"importance", "steps", "params", "global_pruning"}``.
    Raises: MissingExtra without torch-pruning; ArchoptError when the steps run out first.
    """
    import copy

    tp = require_torch_pruning()

    def run(net: nn.Module, steps: int | None) -> list[int]:
        head = [m for m in net.modules() if isinstance(m, nn.Linear)][-1:]
        dev = next(net.parameters()).device
        pruner = tp.pruner.MetaPruner(
            net, torch.zeros((1, *data.input_shape), device=dev),
            importance=_importance(tp, importance), pruning_ratio=1.0,
            iterative_steps=iterative_steps, ignored_layers=head,
            global_pruning=global_pruning)
        rng = np.random.default_rng(seed)
        was = net.training
        net.eval()
        sizes = [sum(p.numel() for p in net.parameters())]
        while (len(sizes) - 1 < steps) if steps is not None else sizes[-1] > target:
            if len(sizes) - 1 == iterative_steps:
                raise ArchoptError(f"Torch-Pruning stopped at {sizes[-1]:,} params, above the "
                                   f"target {target:,}")
            _gradients(net, importance, data, rng, batch_size)
            pruner.step()
            sizes.append(sum(p.numel() for p in net.parameters()))
        net.zero_grad(set_to_none=True)
        net.train(was)
        return sizes

    sizes = run(copy.deepcopy(model), None)
    steps = min(range(len(sizes)), key=lambda k: abs(sizes[k] - target))
    got = run(model, steps)[-1]
    return {"importance": importance, "steps": steps, "params": got,
            "global_pruning": global_pruning}


def random_units(in_features: int, widths: Sequence[int], classes: int, target: int,
                 rng: np.random.Generator, *, tol: float = 0.01) -> list[np.ndarray]:
    """A uniformly random set of hidden units with ``target`` params within ``tol``: units are
    visited in a random order and removed while the network stays above ``target`` (a removal
    that would fall below ``(1 - tol) target`` is skipped; each layer keeps one unit).

    Returns: one bool keep-mask per hidden layer.
    """
    keep = [np.ones(w, dtype=bool) for w in widths]
    order = rng.permutation([(i, j) for i, w in enumerate(widths) for j in range(w)])
    cur = mlp_params(in_features, widths, classes)
    for i, j in order:
        if cur <= (1 + tol) * target:
            break
        if keep[i].sum() <= 1:
            continue
        keep[i][j] = False
        new = mlp_params(in_features, [int(k.sum()) for k in keep], classes)
        if new < (1 - tol) * target:
            keep[i][j] = True
            continue
        cur = new
    return keep
