"""From a pruned weight list to the physically smaller MLP: dead units removed, function kept.

SWAT-NN returns "the decoded MLP with weights ``|w| < t`` set to zero" (spec section 3); this
module turns such a network into an :class:`~archopt.spaces.MLPSpec` + ``state_dict`` without the
units that cannot influence the output, and counts what is left.

A hidden unit is *dead* (removed) when removing it leaves the function unchanged, exactly:

- all its outgoing weights (to units still alive) are zero; or
- ``act(0) == 0`` (leaky-ReLU, linear) and all its incoming weights (from inputs / units still
  alive) are zero: it always outputs 0.

Both rules are applied until nothing changes. A sigmoid unit with no incoming weight is *not*
dead: it outputs the constant ``sigmoid(0) = 0.5``, a bias for the next layer, so it is kept (and
counted as active). If every unit of a hidden layer is dead the network computes a constant; the
layer then keeps one unit with zero weights (an MLP needs width >= 1); that placeholder is not
counted as an active neuron.

Counts (the figures ``archopt latent search`` reports):

- ``active_neurons``: hidden units of the compact network, placeholders excluded (inputs and the
  output unit are not counted);
- ``nonzero_weights``: non-zero entries of its weight matrices (there are no biases);
- ``hidden_layers``: its number of hidden layers (= the decoder depth; never reduced).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from archopt.errors import InvalidSpec
from archopt.latent.encoding import activation_fn
from archopt.spaces import MLPSpec

__all__ = ["CompactMLP", "compact_mlp", "magnitude_prune"]


@dataclass
class CompactMLP:
    """A compact MLP of the SWAT-NN family and its counts.

    Attributes:
        spec: the architecture (``bias=False``, one output).
        state_dict: ``layers.{i}.weight`` tensors, ``nn.Linear`` layout ``(out, in)``.
        kept: per hidden layer, the indices (in the input network) of the units kept
            (a placeholder unit is listed as ``-1``).
        active_neurons, nonzero_weights, hidden_layers: see the module docstring.
    """

    spec: MLPSpec
    state_dict: dict[str, torch.Tensor]
    kept: list[list[int]] = field(default_factory=list)
    active_neurons: int = 0
    nonzero_weights: int = 0

    @property
    def hidden_layers(self) -> int:
        return len(self.spec.widths)

    def build(self) -> torch.nn.Module:
        """The ``nn.Module`` (eval mode) with these weights."""
        module = self.spec.build()
        module.load_state_dict(self.state_dict)
        return module.eval()

    def counts(self) -> dict[str, int]:
        return {"hidden_layers": self.hidden_layers, "active_neurons": self.active_neurons,
                "nonzero_weights": self.nonzero_weights}


def magnitude_prune(weights: Sequence[torch.Tensor], keep: int) -> list[torch.Tensor]:
    """Global magnitude pruning: keep the ``keep`` largest ``|w|`` over all matrices, zero the rest.

    Ties at the cut are broken by position (the first in flattened order wins), so exactly
    ``min(keep, number of weights)`` entries survive (fewer if some kept entries are already 0).

    Raises: InvalidSpec when ``keep < 0``.
    """
    if keep < 0:
        raise InvalidSpec(f"keep must be >= 0, got {keep}")
    flat = torch.cat([w.detach().flatten() for w in weights])
    mask = torch.zeros_like(flat, dtype=torch.bool)
    if keep > 0:
        idx = torch.argsort(flat.abs(), descending=True, stable=True)[:keep]
        mask[idx] = True
    out, i = [], 0
    for w in weights:
        n = w.numel()
        out.append(torch.where(mask[i:i + n].view_as(w), w.detach(), torch.zeros_like(w)))
        i += n
    return out


def compact_mlp(weights: Sequence[torch.Tensor], activation: str, negative_slope: float = 0.1,
                *, threshold: float = 0.0) -> CompactMLP:
    """Zero the weights with ``|w| < threshold``, remove dead units, and build the spec.

    Args:
        weights: ``depth + 1`` matrices ``(out, in)``: hidden layers then the ``(1, n_L)`` output
            layer (as :func:`archopt.latent.encoding.decode` returns).
        activation, negative_slope: the family's activation.
        threshold: the pruning threshold ``t`` (``0`` keeps every non-zero weight).

    Returns: the :class:`CompactMLP`; its module computes exactly what the thresholded network
    computes (same float operations on the surviving weights).

    Raises: InvalidSpec when the matrices do not chain or the output is not 1 unit.
    """
    act = activation_fn(activation, negative_slope)
    if len(weights) < 2:
        raise InvalidSpec("need at least one hidden layer and the output layer")
    ws = [w.detach().float().cpu().clone() for w in weights]
    for i in range(1, len(ws)):
        if ws[i].shape[1] != ws[i - 1].shape[0]:
            raise InvalidSpec(f"weights[{i}] has {ws[i].shape[1]} inputs, weights[{i - 1}] "
                              f"{ws[i - 1].shape[0]} outputs")
    if ws[-1].shape[0] != 1:
        raise InvalidSpec(f"the output layer must have 1 unit, got {ws[-1].shape[0]}")
    for w in ws:
        w[w.abs() < threshold] = 0.0
    depth = len(ws) - 1
    zero_is_fixed = float(act(torch.zeros(1))[0]) == 0.0
    alive = [torch.ones(w.shape[0], dtype=torch.bool) for w in ws[:-1]]
    n_in = ws[0].shape[1]

    changed = True
    while changed:
        changed = False
        for l in range(depth):
            nxt_alive = alive[l + 1] if l + 1 < depth else torch.ones(1, dtype=torch.bool)
            out_any = (ws[l + 1][nxt_alive] != 0).any(0)
            new = alive[l] & out_any
            if zero_is_fixed:
                prev_alive = alive[l - 1] if l > 0 else torch.ones(n_in, dtype=torch.bool)
                new &= (ws[l][:, prev_alive] != 0).any(1)
            if not torch.equal(new, alive[l]):
                alive[l] = new
                changed = True

    kept: list[list[int]] = []
    state: dict[str, torch.Tensor] = {}
    prev_idx: torch.Tensor | None = torch.arange(n_in)
    for l in range(depth + 1):
        w = ws[l]
        cols = (w[:, prev_idx] if prev_idx is not None
                else torch.zeros(w.shape[0], 1))
        if l == depth:
            state[f"layers.{l}.weight"] = cols.contiguous()
            break
        idx = torch.nonzero(alive[l]).flatten()
        if idx.numel() == 0:
            state[f"layers.{l}.weight"] = torch.zeros(1, cols.shape[1])
            kept.append([-1])
            prev_idx = None
        else:
            state[f"layers.{l}.weight"] = cols[idx].contiguous()
            kept.append(idx.tolist())
            prev_idx = idx
    spec = MLPSpec(in_features=n_in, widths=[len(k) for k in kept], num_classes=1,
                   activation=activation, negative_slope=negative_slope, bias=False)
    return CompactMLP(
        spec=spec, state_dict=state, kept=kept,
        active_neurons=sum(len(k) for k in kept if k != [-1]),
        nonzero_weights=int(sum(int((w != 0).sum()) for w in state.values())))
