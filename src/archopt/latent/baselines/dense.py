"""The dense narrow MLP: no pruning, just fewer units, at most the requested weight count."""

from __future__ import annotations

import torch

from archopt.latent.baselines.common import Fit, adam_full_batch, forward, init_weights

__all__ = ["dense_narrow", "narrow_width"]


def _params(n_in: int, depth: int, w: int) -> int:
    return n_in * w + (depth - 1) * w * w + w


def narrow_width(n_in: int, depth: int, nonzero: int, max_width: int = 7) -> int:
    """The widest uniform hidden width ``w <= max_width`` whose dense bias-free MLP
    ``n_in -> w x depth -> 1`` has at most ``nonzero`` weights (1 when even ``w = 1`` has more)."""
    fits = [w for w in range(1, max_width + 1) if _params(n_in, depth, w) <= nonzero]
    return max(fits) if fits else 1


def dense_narrow(x: torch.Tensor, y: torch.Tensor, *, depth: int, width: int, nonzero: int,
                 activation: str, negative_slope: float = 0.1, steps: int = 1000,
                 lr: float = 0.01, restarts: int = 1, generator: torch.Generator) -> Fit:
    """A dense MLP of ``depth`` hidden layers of :func:`narrow_width` units (``width`` is the
    family's maximum) trained with full-batch Adam for ``steps``. Its count is
    ``n_in w + (depth - 1) w^2 + w <= nonzero`` (not exactly ``nonzero``)."""
    w = narrow_width(x.shape[1], depth, nonzero, width)
    ws = init_weights(x.shape[1], [w] * depth, restarts, generator)

    def loss() -> torch.Tensor:
        return ((forward(ws, x, activation, negative_slope) - y) ** 2).mean(1).sum()

    adam_full_batch(ws, loss, steps=steps, lr=lr)
    return Fit(ws, {"narrow_width": w, "dense_params": _params(x.shape[1], depth, w)})
