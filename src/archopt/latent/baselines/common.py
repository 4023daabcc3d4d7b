"""What the sparse-MLP baselines share: batched weights, full-batch Adam, top-k masks, selection.

Every baseline trains ``R`` restarts of one MLP of the SWAT-NN family together (as the latent
search optimises its restarts together): a network is a list of weight tensors
``(R, out, in)`` (``nn.Linear`` layout per restart, no biases, one output); Adam is elementwise,
so each restart follows the trajectory it would follow alone.

:func:`fit_best` runs a baseline over decoder depths x restarts with the search's protocol
(:mod:`archopt.latent.search`): the same depths, the same number of restarts per depth, the same
optimiser steps per restart, and the network with the lowest validation MSE (after dead units are
removed, :func:`archopt.latent.compact.compact_mlp`) is kept. Target scaling (``scale_y``, what a
user training a small MLP would do): the baselines train on ``y / s`` (``s``: the training
split's standard deviation of ``y``) and the output layer is multiplied by ``s`` afterwards, which
is the same network family and count (no biases, so ``y`` is not centred); figures are in the
target's units.
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from archopt.data.tabular import TabularSplits
from archopt.errors import InvalidSpec
from archopt.latent.compact import compact_mlp
from archopt.latent.encoding import activation_fn

__all__ = ["BaselineFit", "Fit", "adam_full_batch", "fit_best", "forward", "init_weights",
           "topk_mask"]

Weights = list[torch.Tensor]


def init_weights(n_in: int, widths: Sequence[int], restarts: int,
                 generator: torch.Generator) -> Weights:
    """``R = restarts`` independent initialisations of an MLP ``n_in -> widths -> 1``:
    PyTorch's default ``nn.Linear`` init, ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))``.

    Returns: ``(R, out, in)`` tensors, hidden layers then the ``(R, 1, n_L)`` output layer.
    """
    sizes = [n_in, *widths, 1]
    out = []
    for fan_in, fan_out in itertools.pairwise(sizes):
        b = 1.0 / math.sqrt(fan_in)
        out.append((torch.rand(restarts, fan_out, fan_in, generator=generator) * 2 - 1) * b)
    return out


def forward(weights: Sequence[torch.Tensor], x: torch.Tensor, activation: str,
            negative_slope: float = 0.1) -> torch.Tensor:
    """Outputs ``(R, N)`` of ``R`` networks ``(R, out, in)`` on inputs ``x`` ``(N, n_in)``."""
    act = activation_fn(activation, negative_slope)
    h = x.unsqueeze(0).expand(weights[0].shape[0], *x.shape)
    for w in weights[:-1]:
        h = act(torch.matmul(h, w.transpose(1, 2)))
    return torch.matmul(h, weights[-1].transpose(1, 2)).squeeze(-1)


def adam_full_batch(params: Sequence[torch.Tensor], loss_fn: Callable[[], torch.Tensor], *,
                    steps: int, lr: float, masks: Sequence[torch.Tensor | None] | None = None,
                    after_step: Callable[[int], None] | None = None) -> None:
    """``steps`` Adam steps on ``loss_fn()`` (a scalar: the sum of the restarts' losses).

    With ``masks`` (one per parameter, or None for unmasked ones) the masked-out entries get zero
    gradients and are re-zeroed after every step (their Adam moments stay 0). ``after_step(i)``
    runs after step ``i`` (under ``no_grad``).
    """
    for p in params:
        p.requires_grad_(True)
    opt = torch.optim.Adam(params, lr=lr)
    for i in range(steps):
        loss = loss_fn()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if masks is not None:
            for p, m in zip(params, masks, strict=True):
                if m is not None and p.grad is not None:
                    p.grad.mul_(m)
        opt.step()
        with torch.no_grad():
            if masks is not None:
                for p, m in zip(params, masks, strict=True):
                    if m is not None:
                        p.mul_(m)
            if after_step is not None:
                after_step(i)
    for p in params:
        p.requires_grad_(False)


def topk_mask(scores: Sequence[torch.Tensor], k: int,
              eligible: Sequence[torch.Tensor] | None = None) -> list[torch.Tensor]:
    """Per restart, the ``k`` entries with the largest score over all tensors (global top-k).

    Args:
        scores: ``(R, ...)`` tensors (e.g. ``|w|``).
        k: entries to keep per restart; all eligible ones when fewer are eligible.
        eligible: optional boolean ``(R, ...)`` masks of the entries that may be kept.

    Ties are broken by position (the first in flattened order wins), so exactly
    ``min(k, eligible count)`` entries are kept. Returns float 0/1 masks shaped like ``scores``.

    Raises: InvalidSpec for ``k < 0``.
    """
    if k < 0:
        raise InvalidSpec(f"k must be >= 0, got {k}")
    R = scores[0].shape[0]
    flat = torch.cat([s.detach().reshape(R, -1) for s in scores], dim=1)
    if eligible is not None:
        ok = torch.cat([e.reshape(R, -1) for e in eligible], dim=1)
        flat = torch.where(ok, flat, torch.full_like(flat, -math.inf))
    else:
        ok = torch.ones_like(flat, dtype=torch.bool)
    order = torch.argsort(flat, dim=1, descending=True, stable=True)[:, :k]
    keep = torch.zeros_like(ok)
    keep.scatter_(1, order, True)
    keep &= ok
    out, i = [], 0
    for s in scores:
        n = s[0].numel()
        out.append(keep[:, i:i + n].reshape(s.shape).to(s.dtype))
        i += n
    return out


@dataclass
class Fit:
    """One baseline run: ``R`` restarts of one depth. ``weights``: ``(R, out, in)`` tensors
    (exactly 0 where pruned); ``info``: method-specific figures of the run; ``per_restart``:
    figures with one value per restart."""

    weights: Weights
    info: dict[str, Any] = field(default_factory=dict)
    per_restart: dict[str, list[Any]] = field(default_factory=dict)


#: A baseline: ``(x, y, depth=, width=, nonzero=, activation=, negative_slope=, steps=, lr=,
#: restarts=, generator=) -> Fit``.
Method = Callable[..., Fit]


@dataclass
class BaselineFit:
    """The network a baseline returns after depth x restart selection, and its figures."""

    method: str
    depth: int
    restart: int
    weights: Weights
    row: dict[str, Any]


def _mse(pred: torch.Tensor, y: torch.Tensor) -> float:
    return float(((pred - y) ** 2).mean())


def fit_best(method: Method, splits: TabularSplits, *, nonzero: int, activation: str,
             negative_slope: float = 0.1, depths: Sequence[int] = (1, 2, 3, 4), width: int = 7,
             restarts: int = 4, steps: int = 1000, lr: float = 0.01, seed: int = 0,
             scale_y: bool = True, name: str | None = None) -> BaselineFit:
    """Run ``method`` for every depth (``restarts`` restarts, ``steps`` Adam steps each), keep
    the network with the lowest validation MSE.

    Returns: the :class:`BaselineFit`; ``row`` has ``test_mse, val_mse, train_mse,
    nonzero_weights`` (non-zero entries), ``live_weights`` / ``active_neurons`` (after dead-unit
    removal), ``hidden_layers, widths, depth, restart, cpu_s`` (process CPU seconds of the whole
    selection), ``per_depth`` (each depth's restarts' validation MSE and counts) and the method's
    ``info`` for the chosen run, and ``y_scale`` (``s``).

    Raises: InvalidSpec for ``nonzero < 1``, no depth, or ``restarts < 1``.
    """
    if nonzero < 1 or not depths or restarts < 1:
        raise InvalidSpec(f"need nonzero >= 1, at least one depth and restarts >= 1, got "
                          f"{nonzero}, {list(depths)}, {restarts}")
    c0 = time.process_time()
    data = splits.tensors()
    x, y = data["x_train"], data["y_train"]
    s = float(y.std()) if scale_y and len(y) > 1 and float(y.std()) > 0 else 1.0
    best: tuple[float, int, int, Any, dict[str, Any]] | None = None
    per_depth = []
    for d in depths:
        g = torch.Generator().manual_seed(int(seed) * 1009 + int(d))
        fit = method(x, y / s, depth=d, width=width, nonzero=nonzero, activation=activation,
                     negative_slope=negative_slope, steps=steps, lr=lr, restarts=restarts,
                     generator=g)
        rows = []
        for r in range(restarts):
            ws = [w[r] for w in fit.weights[:-1]] + [fit.weights[-1][r] * s]
            small = compact_mlp(ws, activation, negative_slope)
            module = small.build()
            with torch.no_grad():
                mses = {k: _mse(module(data[f"x_{k}"]).squeeze(-1), data[f"y_{k}"])
                        for k in ("train", "val", "test")}
            counts = small.counts()
            row = {"depth": d, "restart": r, "train_mse": mses["train"], "val_mse": mses["val"],
                   "test_mse": mses["test"],
                   "nonzero_weights": int(sum(int((w != 0).sum()) for w in ws)),
                   "live_weights": counts["nonzero_weights"],
                   "active_neurons": counts["active_neurons"],
                   "hidden_layers": counts["hidden_layers"], "widths": list(small.spec.widths),
                   **fit.info, **{k: v[r] for k, v in fit.per_restart.items()}}
            rows.append(row)
            v = row["val_mse"] if math.isfinite(row["val_mse"]) else math.inf
            if best is None or v < best[0]:
                best = (v, d, r, ws, row)
        per_depth.append({"depth": d, "restart_val_mse": [r["val_mse"] for r in rows],
                          "nonzero_weights": [r["nonzero_weights"] for r in rows]})
    assert best is not None
    _, d, r, ws, row = best
    return BaselineFit(name or getattr(method, "__name__", "baseline"), d, r, ws,
                       {**row, "cpu_s": time.process_time() - c0, "y_scale": s,
                        "per_depth": per_depth})
