"""The output layer's bias: where per-class logit offsets live in a plain model.

Post-hoc logit adjustment and bias tuning add a vector b (K,) to every example's logits. For a
network whose logits are the output of a final ``nn.Linear`` (every archopt space, and most
classifiers), ``logits + b`` is exactly the same network with ``b`` added to that layer's bias,
so the result is saved as a plain model (no wrapper): the adjustment is *folded* into the bias.
HBDE's ``bias_genes`` variant searches the same K numbers.

:func:`output_bias` finds the layer and checks by probing that adding ``delta`` to its bias
moves the logits by exactly ``delta``; a model where that fails (no final linear layer with a
bias, or an operation after it) is refused with one line instead of being silently altered.
"""

from __future__ import annotations

import torch
from torch import nn

from archopt.errors import ArchoptError

__all__ = ["fold_bias", "output_bias"]


@torch.no_grad()
def output_bias(module: nn.Module, num_classes: int, probe: torch.Tensor) -> str:
    """The name (``named_parameters``) of the bias (K,) whose value adds to the logits.

    Args:
        module: the classifier (left unchanged).
        num_classes: K.
        probe: a normalised input batch (B, C, H, W) on the module's device.

    Returns: e.g. ``"fc.bias"`` or ``"head.linear.bias"``: the last ``nn.Linear`` with
        ``out_features == K`` and a bias, in module order.
    Raises: ArchoptError when there is none, or when its bias does not shift the logits
        additively (the check perturbs it by a known vector and restores it).
    """
    found = None
    for name, mod in module.named_modules():
        if isinstance(mod, nn.Linear) and mod.out_features == num_classes and \
                mod.bias is not None:
            found = f"{name}.bias" if name else "bias"
    if found is None:
        raise ArchoptError(f"the model has no nn.Linear output layer with {num_classes} outputs "
                           "and a bias; per-class logit offsets cannot be folded into it")
    bias = dict(module.named_parameters())[found]
    was, saved = module.training, bias.detach().clone()
    module.eval()
    delta = torch.linspace(-1.0, 1.0, num_classes, dtype=bias.dtype, device=bias.device)
    try:
        before = module(probe).double()
        bias.add_(delta)
        after = module(probe).double()
    finally:
        bias.copy_(saved)  # bit for bit (adding and subtracting delta need not be)
        module.train(was)
    tol = 1e-4 * (1.0 + float(before.abs().max()))
    if after.shape != before.shape or not torch.allclose(after - before, delta.double(),
                                                         atol=tol, rtol=0):
        raise ArchoptError(f"the model's logits are not {found}'s layer output: changing that "
                           "bias does not shift them by the same amount, so per-class offsets "
                           "cannot be folded into it")
    return found


@torch.no_grad()
def fold_bias(module: nn.Module, name: str, offsets: torch.Tensor) -> None:
    """Add ``offsets`` (K,) to the bias ``name`` in place (logits become logits + offsets)."""
    bias = dict(module.named_parameters())[name]
    bias.add_(torch.as_tensor(offsets).to(bias.device, bias.dtype))
