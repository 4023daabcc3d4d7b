"""The baseline SWAT-NN is compared with: dense Adam, magnitude-pruned, then fine-tuned.

SWAT-NN spec section 4: "an MLP of the same max size trained with Adam and then magnitude-pruned to
the same number of non-zero weights". Here, the standard prune-and-fine-tune recipe:

1. dense: ``depth`` hidden layers (the depth the search chose) of ``width`` units (the family's
   maximum, 7), no biases, the family's activation, PyTorch's default init (seeded); full-batch
   Adam on the training split (``lr``, ``steps``);
2. global magnitude pruning to exactly ``nonzero`` weights
   (:func:`archopt.latent.compact.magnitude_prune`; ``pruned_nonzero_weights`` records the count
   at that moment);
3. fine-tuning with the mask fixed: full-batch Adam (``finetune_lr``, ``finetune_steps``) with
   the pruned entries' gradients zeroed (their Adam moments stay 0, so they stay exactly 0);
4. dead units removed (:func:`archopt.latent.compact.compact_mlp`, the function is unchanged).

Counts: ``nonzero_weights`` = non-zero entries of the fine-tuned network (= ``nonzero``, the
mask is fixed); ``live_weights`` / ``active_neurons`` = after dead-unit removal (magnitude
pruning may keep weights that cannot reach the output; they are counted in ``nonzero_weights``
but do nothing). The dense model's test MSE is reported too.
"""

from __future__ import annotations

from typing import Any

import torch

from archopt.data.tabular import TabularSplits
from archopt.errors import InvalidSpec
from archopt.latent.compact import compact_mlp, magnitude_prune
from archopt.latent.encoding import activation_fn
from archopt.spaces import MLPSpec

__all__ = ["pruned_baseline"]


def _adam_full_batch(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, *, steps: int,
                     lr: float, masks: list[torch.Tensor] | None = None) -> None:
    """Full-batch Adam on the output MSE; with ``masks`` (one per ``model.layers[i].weight``) the
    masked-out entries get zero gradients and are re-zeroed after every step."""
    layers = list(model.layers)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    for _ in range(steps):
        loss = ((model(x).squeeze(-1) - y) ** 2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if masks is not None:
            for layer, m in zip(layers, masks, strict=True):
                layer.weight.grad.mul_(m)
        opt.step()
        if masks is not None:
            with torch.no_grad():
                for layer, m in zip(layers, masks, strict=True):
                    layer.weight.mul_(m)


def pruned_baseline(splits: TabularSplits, *, depth: int, nonzero: int, activation: str,
                    negative_slope: float = 0.1, width: int = 7, steps: int = 2000,
                    lr: float = 0.01, finetune_steps: int | None = None,
                    finetune_lr: float | None = None, seed: int = 0,
                    device: torch.device | str = "cpu") -> dict[str, Any]:
    """Train the dense baseline, prune it to ``nonzero`` weights, fine-tune with the mask fixed,
    and measure.

    Args:
        finetune_steps, finetune_lr: the fine-tuning (default: ``steps`` and ``lr``; 0 steps =
            no fine-tuning).

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
    model = spec.build().to(device)
    x, y = data["x_train"], data["y_train"]
    _adam_full_batch(model, x, y, steps=steps, lr=lr)

    def mse(m: torch.nn.Module, split: str) -> float:
        with torch.no_grad():
            return float(((m(data[f"x_{split}"]).squeeze(-1) - data[f"y_{split}"]) ** 2).mean())

    out: dict[str, Any] = {"dense_test_mse": mse(model, "test"),
                           "dense_val_mse": mse(model, "val")}
    pruned = magnitude_prune([layer.weight.detach() for layer in model.layers], nonzero)
    masks = [(w != 0).to(w.dtype) for w in pruned]
    with torch.no_grad():
        for layer, w in zip(model.layers, pruned, strict=True):
            layer.weight.copy_(w)
    out["pruned_nonzero_weights"] = int(sum(int(m.sum()) for m in masks))
    out["pruned_test_mse"] = mse(model, "test")
    _adam_full_batch(model, x, y, steps=finetune_steps, lr=finetune_lr, masks=masks)
    weights = [layer.weight.detach().cpu() for layer in model.layers]
    small = compact_mlp(weights, activation, negative_slope)
    module = small.build().to(device)
    counts = small.counts()
    return {**out, "test_mse": mse(module, "test"), "val_mse": mse(module, "val"),
            "nonzero_weights": int(sum(int((w != 0).sum()) for w in weights)),
            "live_weights": counts["nonzero_weights"], "active_neurons": counts["active_neurons"],
            "hidden_layers": counts["hidden_layers"], "widths": list(small.spec.widths),
            "dense_params": spec.params(), "steps": steps, "finetune_steps": finetune_steps}
