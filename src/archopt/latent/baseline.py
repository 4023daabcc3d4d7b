"""The baseline SWAT-NN is compared with: a dense MLP trained with Adam, then magnitude-pruned.

SWAT-NN spec section 4: "an MLP of the same max size trained with Adam and then magnitude-pruned to
the same number of non-zero weights". Here: hidden layers ``depth`` (the depth the search chose)
of ``width`` units each (the family's maximum, 7), no biases, the same activation; full-batch
Adam on the training split (``lr = 0.01``, ``steps`` steps, PyTorch's default init, seeded), then
global magnitude pruning (:func:`archopt.latent.compact.magnitude_prune`) to ``nonzero`` weights,
no fine-tuning after pruning. The dense model's test MSE is reported too.
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


def pruned_baseline(splits: TabularSplits, *, depth: int, nonzero: int, activation: str,
                    negative_slope: float = 0.1, width: int = 7, steps: int = 2000,
                    lr: float = 0.01, seed: int = 0,
                    device: torch.device | str = "cpu") -> dict[str, Any]:
    """Train the dense baseline, prune it to ``nonzero`` weights, and measure both.

    Returns: ``{"dense_test_mse", "dense_val_mse", "test_mse", "val_mse", "nonzero_weights",
    "active_neurons", "hidden_layers", "widths", "dense_params", "steps"}`` (MSE in the target's
    units squared; counts after pruning and dead-unit removal).

    Raises: InvalidSpec for ``depth < 1``, ``width < 1`` or ``nonzero < 0``.
    """
    activation_fn(activation, negative_slope)
    if depth < 1 or width < 1 or nonzero < 0:
        raise InvalidSpec(f"depth and width must be >= 1 and nonzero >= 0, got {depth}, "
                          f"{width}, {nonzero}")
    data = splits.tensors(device)
    spec = MLPSpec(in_features=splits.n_features, widths=[width] * depth, num_classes=1,
                   activation=activation, negative_slope=negative_slope, bias=False)
    torch.manual_seed(seed)
    model = spec.build().to(device)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    x, y = data["x_train"], data["y_train"]
    for _ in range(steps):
        loss = ((model(x).squeeze(-1) - y) ** 2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    def mse(m: torch.nn.Module, split: str) -> float:
        with torch.no_grad():
            return float(((m(data[f"x_{split}"]).squeeze(-1) - data[f"y_{split}"]) ** 2).mean())

    dense = {"dense_test_mse": mse(model, "test"), "dense_val_mse": mse(model, "val")}
    weights = [layer.weight.detach().cpu() for layer in model.layers]
    pruned = compact_mlp(magnitude_prune(weights, nonzero), activation, negative_slope)
    small = pruned.build().to(device)
    return {**dense, "test_mse": mse(small, "test"), "val_mse": mse(small, "val"),
            **pruned.counts(), "widths": list(pruned.spec.widths),
            "dense_params": spec.params(), "steps": steps}
