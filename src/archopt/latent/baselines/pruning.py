"""Magnitude pruning baselines: prune + fine-tune, and iterative magnitude pruning with rewinding.

- :func:`prune_finetune` (the spec's baseline, SWAT-NN spec section 4, "an MLP of the same max
  size trained with Adam and then magnitude-pruned to the same number of non-zero weights"): dense
  full-batch Adam for half the steps, global magnitude pruning to exactly ``nonzero`` weights,
  fine-tuning with the mask fixed for the other half;
- :func:`imp_rewind`: iterative magnitude pruning with rewinding (Frankle & Carbin, "The Lottery
  Ticket Hypothesis", ICLR 2019, and Frankle, Dziugaite, Roy, Carbin, "Linear Mode Connectivity
  and the Lottery Ticket Hypothesis", ICML 2020, section 5): train dense, remember the weights at
  an early step ``k``; then ``rounds`` times: prune the surviving weights by global magnitude, set
  the survivors back to their step-``k`` values and retrain. The kept fraction per round is
  ``(nonzero / N)^(1 / rounds)`` (``N`` = all weights), the last round prunes to exactly
  ``nonzero``. The step budget is split into ``rounds + 1`` equal segments (dense + one per
  round); ``k = rewind_fraction`` of a segment. Assumption: Adam's moments restart at each
  rewind (the papers rewind the weights and the learning-rate schedule; ours is constant);
- :func:`pruned_baseline`: the single-run form the CLI's ``--baseline`` reports (one depth, one
  restart, separate dense and fine-tuning budgets).

Counts: exactly ``nonzero`` non-zero weights (when the network has that many); dead units are
removed afterwards for ``live_weights`` / ``active_neurons`` (magnitude pruning may keep weights
that cannot reach the output).
"""

from __future__ import annotations

from typing import Any

import torch

from archopt.data.tabular import TabularSplits
from archopt.errors import InvalidSpec
from archopt.latent.baselines.common import Fit, adam_full_batch, forward, init_weights, topk_mask
from archopt.latent.compact import compact_mlp
from archopt.latent.encoding import activation_fn
from archopt.spaces import MLPSpec

__all__ = ["imp_rewind", "prune_finetune", "pruned_baseline"]


def _mse_loss(weights: list[torch.Tensor], x: torch.Tensor, y: torch.Tensor, activation: str,
              negative_slope: float) -> Any:
    return lambda: ((forward(weights, x, activation, negative_slope) - y) ** 2).mean(1).sum()


def prune_finetune(x: torch.Tensor, y: torch.Tensor, *, depth: int, width: int, nonzero: int,
                   activation: str, negative_slope: float = 0.1, steps: int = 1000,
                   lr: float = 0.01, restarts: int = 1, generator: torch.Generator,
                   finetune_fraction: float = 0.5) -> Fit:
    """Dense Adam (``(1 - finetune_fraction) * steps``), global magnitude pruning to exactly
    ``nonzero`` weights, fine-tuning with the mask fixed (the remaining steps). Shapes as
    :mod:`archopt.latent.baselines.common`."""
    ws = init_weights(x.shape[1], [width] * depth, restarts, generator)
    loss = _mse_loss(ws, x, y, activation, negative_slope)
    dense = steps - round(finetune_fraction * steps)
    adam_full_batch(ws, loss, steps=dense, lr=lr)
    masks = topk_mask([w.abs() for w in ws], nonzero)
    with torch.no_grad():
        for w, m in zip(ws, masks, strict=True):
            w.mul_(m)
    adam_full_batch(ws, loss, steps=steps - dense, lr=lr, masks=masks)
    return Fit(ws, {"dense_steps": dense, "finetune_steps": steps - dense})


def imp_rewind(x: torch.Tensor, y: torch.Tensor, *, depth: int, width: int, nonzero: int,
               activation: str, negative_slope: float = 0.1, steps: int = 1000,
               lr: float = 0.01, restarts: int = 1, generator: torch.Generator,
               rounds: int = 4, rewind_fraction: float = 0.1) -> Fit:
    """Iterative magnitude pruning with rewinding (see the module docstring). ``info`` holds the
    non-zero count after each round (``round_counts``) and the rewind step."""
    if rounds < 1:
        raise InvalidSpec(f"rounds must be >= 1, got {rounds}")
    ws = init_weights(x.shape[1], [width] * depth, restarts, generator)
    total = sum(w[0].numel() for w in ws)
    seg = steps // (rounds + 1)
    k = round(rewind_fraction * seg)
    loss = _mse_loss(ws, x, y, activation, negative_slope)
    adam_full_batch(ws, loss, steps=k, lr=lr)
    rewind = [w.clone() for w in ws]
    adam_full_batch(ws, loss, steps=seg - k, lr=lr)
    masks: list[torch.Tensor] = [torch.ones_like(w) for w in ws]
    counts = []
    keep = min(nonzero, total) / total
    for r in range(1, rounds + 1):
        n = nonzero if r == rounds else max(nonzero, round(total * keep ** (r / rounds)))
        masks = topk_mask([w.abs() for w in ws], n, [m > 0 for m in masks])
        counts.append(int(sum(float(m[0].sum()) for m in masks)))
        with torch.no_grad():
            for w, w0, m in zip(ws, rewind, masks, strict=True):
                w.copy_(w0 * m)
        # retrain from the rewind point for the rest of a segment (the last round takes the
        # remainder of the budget)
        budget = seg if r < rounds else steps - rounds * seg
        adam_full_batch(ws, loss, steps=budget, lr=lr, masks=masks)
    return Fit(ws, {"round_counts": counts, "rewind_step": k, "segment_steps": seg})


def pruned_baseline(splits: TabularSplits, *, depth: int, nonzero: int, activation: str,
                    negative_slope: float = 0.1, width: int = 7, steps: int = 2000,
                    lr: float = 0.01, finetune_steps: int | None = None,
                    finetune_lr: float | None = None, seed: int = 0,
                    device: torch.device | str = "cpu") -> dict[str, Any]:
    """Train the dense network (``steps``), prune it to ``nonzero`` weights, fine-tune with the
    mask fixed (``finetune_steps``, default ``steps``), and measure (one depth, one run; PyTorch's
    default init under ``torch.manual_seed(seed)``).

    Returns: ``{"dense_test_mse", "dense_val_mse", "pruned_test_mse" (before fine-tuning),
    "test_mse", "val_mse", "pruned_nonzero_weights", "nonzero_weights", "live_weights",
    "active_neurons", "hidden_layers", "widths", "dense_params", "steps", "finetune_steps"}``
    (MSE in the target's units squared).

    Raises: InvalidSpec for ``depth < 1``, ``width < 1`` or ``nonzero < 0``.
    """
    activation_fn(activation, negative_slope)
    if depth < 1 or width < 1 or nonzero < 0:
        raise InvalidSpec(f"depth and width must be >= 1 and nonzero >= 0, got {depth}, "
                          f"{width}, {nonzero}")
    finetune_steps = steps if finetune_steps is None else finetune_steps
    finetune_lr = lr if finetune_lr is None else finetune_lr
    data = splits.tensors(device)
    spec = MLPSpec(in_features=splits.n_features, widths=[width] * depth, num_classes=1,
                   activation=activation, negative_slope=negative_slope, bias=False)
    torch.manual_seed(seed)
    ws = [layer.weight.detach().to(device).unsqueeze(0).clone()
          for layer in spec.build().layers]
    x, y = data["x_train"], data["y_train"]

    def mse(weights: list[torch.Tensor], split: str) -> float:
        with torch.no_grad():
            pred = forward(weights, data[f"x_{split}"], activation, negative_slope)[0]
            return float(((pred - data[f"y_{split}"]) ** 2).mean())

    loss = _mse_loss(ws, x, y, activation, negative_slope)
    adam_full_batch(ws, loss, steps=steps, lr=lr)
    out: dict[str, Any] = {"dense_test_mse": mse(ws, "test"), "dense_val_mse": mse(ws, "val")}
    masks = topk_mask([w.abs() for w in ws], nonzero)
    with torch.no_grad():
        for w, m in zip(ws, masks, strict=True):
            w.mul_(m)
    out["pruned_nonzero_weights"] = int(sum(int(m.sum()) for m in masks))
    out["pruned_test_mse"] = mse(ws, "test")
    adam_full_batch(ws, loss, steps=finetune_steps, lr=finetune_lr, masks=masks)
    weights = [w[0].detach().cpu() for w in ws]
    small = compact_mlp(weights, activation, negative_slope)
    module = small.build().to(device)

    def mse_module(split: str) -> float:
        with torch.no_grad():
            return float(((module(data[f"x_{split}"]).squeeze(-1) - data[f"y_{split}"]) ** 2)
                         .mean())

    counts = small.counts()
    return {**out, "test_mse": mse_module("test"), "val_mse": mse_module("val"),
            "nonzero_weights": int(sum(int((w != 0).sum()) for w in weights)),
            "live_weights": counts["nonzero_weights"], "active_neurons": counts["active_neurons"],
            "hidden_layers": counts["hidden_layers"], "widths": list(small.spec.widths),
            "dense_params": spec.params(), "steps": steps, "finetune_steps": finetune_steps}
