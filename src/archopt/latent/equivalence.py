"""Networks that compute the same function as a given MLP of the SWAT-NN family, by construction.

Exact in real arithmetic (float64 outputs agree to ~1e-12); used to measure the latent geometry
(:mod:`archopt.latent.geometry`) and by the contrastive training term
(:func:`archopt.latent.autoencoder.contrastive_loss`):

- ``split``: a hidden unit copied (same incoming weights) and its outgoing weights ``v`` split
  into ``f v`` and ``(1 - f) v``: the two copies output the same value, so their contributions sum
  to the original one (any activation);
- ``permute``: the units of every hidden layer permuted (rows of ``W_l``, columns of ``W_{l+1}``);
- ``dead``: a unit added with random incoming weights and zero outgoing weights (any activation);
- ``deeper``: hidden layers added after the last one, each with two units ``act(s)`` and
  ``act(-s)`` of the old output ``s = v . h`` and the new output ``(act(s) - act(-s)) / (1 + a)``,
  which is exactly ``s`` for leaky-ReLU with slope ``a`` (``lrelu(s) - lrelu(-s) = (1 + a) s``)
  and for linear units (``a = 1``). A bias-free sigmoid family has no exact construction (the
  sigmoid is affine on no interval), so ``deeper`` does not apply to sigmoid.

Weights are lists of matrices ``(out, in)`` as :func:`archopt.latent.encoding.decode` returns.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from archopt.errors import InvalidSpec
from archopt.latent.encoding import ArrayLayout, decode, encode

__all__ = [
    "EQUIVALENCES",
    "add_dead_unit",
    "add_identity_layer",
    "equivalent_arrays",
    "equivalent_variant",
    "permute_units",
    "split_unit",
]

#: The equivalence constructions (see the module docstring).
EQUIVALENCES = ("split", "permute", "dead", "deeper")
HOMOGENEOUS = ("leaky_relu", "linear")

Weights = list[torch.Tensor]


def _clone(weights: Sequence[torch.Tensor]) -> Weights:
    return [w.detach().clone() for w in weights]


def _check_hidden(weights: Sequence[torch.Tensor], layer: int) -> None:
    if not 0 <= layer < len(weights) - 1:
        raise InvalidSpec(f"layer must index a hidden layer (0..{len(weights) - 2}), got {layer}")


def split_unit(weights: Sequence[torch.Tensor], layer: int, unit: int,
               fraction: float = 0.5) -> Weights:
    """Split hidden unit ``unit`` of hidden layer ``layer`` into two units that sum to it.

    The copy (appended as the layer's last unit) has the same incoming weights; the outgoing
    weights ``v`` become ``fraction * v`` (the original) and ``(1 - fraction) * v`` (the copy).

    Args:
        weights: ``depth + 1`` matrices ``(out, in)`` (as :func:`~archopt.latent.encoding.decode`).

    Returns: new matrices; layer ``layer`` has one unit more. Computes the same function for any
    activation.

    Raises: InvalidSpec for a layer or unit out of range.
    """
    _check_hidden(weights, layer)
    ws = _clone(weights)
    if not 0 <= unit < ws[layer].shape[0]:
        raise InvalidSpec(f"unit must be 0..{ws[layer].shape[0] - 1}, got {unit}")
    ws[layer] = torch.cat([ws[layer], ws[layer][unit:unit + 1]], dim=0)
    out = ws[layer + 1]
    col = out[:, unit].clone()
    out = torch.cat([out, (col * (1 - fraction)).unsqueeze(1)], dim=1)
    out[:, unit] = col * fraction
    ws[layer + 1] = out
    return ws


def permute_units(weights: Sequence[torch.Tensor], layer: int,
                  perm: Sequence[int] | torch.Tensor) -> Weights:
    """Reorder the units of hidden layer ``layer`` by ``perm`` (new unit ``i`` = old
    ``perm[i]``): rows of ``W_layer`` and columns of ``W_{layer+1}``. Same function.

    Raises: InvalidSpec when ``perm`` is not a permutation of the layer's units.
    """
    _check_hidden(weights, layer)
    ws = _clone(weights)
    p = torch.as_tensor(perm, dtype=torch.long)
    n = ws[layer].shape[0]
    if p.numel() != n or not torch.equal(torch.sort(p).values, torch.arange(n)):
        raise InvalidSpec(f"perm must be a permutation of 0..{n - 1}, got {p.tolist()}")
    ws[layer] = ws[layer][p]
    ws[layer + 1] = ws[layer + 1][:, p]
    return ws


def add_dead_unit(weights: Sequence[torch.Tensor], layer: int,
                  incoming: torch.Tensor) -> Weights:
    """Append a unit to hidden layer ``layer`` with incoming weights ``incoming`` (``(in,)``) and
    zero outgoing weights: it never reaches the output, so the function is unchanged (any
    activation).

    Raises: InvalidSpec for a layer out of range or ``incoming`` of the wrong size.
    """
    _check_hidden(weights, layer)
    ws = _clone(weights)
    inc = incoming.detach().to(ws[layer].dtype).flatten()
    if inc.numel() != ws[layer].shape[1]:
        raise InvalidSpec(f"incoming must have {ws[layer].shape[1]} entries, got {inc.numel()}")
    ws[layer] = torch.cat([ws[layer], inc.unsqueeze(0)], dim=0)
    ws[layer + 1] = torch.cat([ws[layer + 1], ws[layer + 1].new_zeros(ws[layer + 1].shape[0], 1)],
                              dim=1)
    return ws


def add_identity_layer(weights: Sequence[torch.Tensor], activation: str,
                       negative_slope: float = 0.1) -> Weights:
    """Add a hidden layer after the last one without changing the function (leaky-ReLU, linear).

    With ``v`` the output weights and ``h`` the last hidden layer, the new layer has two units
    ``act(v . h)`` and ``act(-v . h)`` and the new output weights are ``(1, -1) / (1 + a)``:
    ``lrelu(s) - lrelu(-s) = (1 + a) s`` for slope ``a``; ``a = 1`` for linear units.

    Raises: InvalidSpec for sigmoid (no exact construction without biases) or another name.
    """
    if activation not in HOMOGENEOUS:
        raise InvalidSpec(f"an exact identity layer exists for {' / '.join(HOMOGENEOUS)} only, "
                          f"not {activation!r}")
    a = 1.0 if activation == "linear" else float(negative_slope)
    if a <= -1.0:
        raise InvalidSpec(f"negative_slope must be > -1 for an identity layer, got {a}")
    ws = _clone(weights)
    v = ws[-1]  # (1, n_L)
    ws[-1] = torch.cat([v, -v], dim=0)  # the new hidden layer (2, n_L)
    ws.append(v.new_tensor([[1.0, -1.0]]) / (1.0 + a))
    return ws


def _randint(n: int, g: torch.Generator) -> int:
    return int(torch.randint(n, (1,), generator=g))


def equivalent_variant(weights: Sequence[torch.Tensor], kind: str, *, activation: str,
                       negative_slope: float, layout: ArrayLayout, generator: torch.Generator,
                       weight_range: float = 10.0) -> Weights | None:
    """A random network computing the same function as ``weights`` by construction ``kind``.

    ``split`` / ``dead``: a random hidden layer with room (width < ``layout.max_width``);
    ``split``: a random unit, fraction ``U(0.2, 0.8)``; ``dead``: incoming weights
    ``U(-weight_range, weight_range)`` on every input of the layer; ``permute``: a random
    permutation of every hidden layer (not the identity where a layer has >= 2 units);
    ``deeper``: 1..``max_depth - depth`` identity layers (:func:`add_identity_layer`).

    Returns: the new matrices, or None when the construction does not apply (no room, no depth
    left, sigmoid for ``deeper``).

    Raises: InvalidSpec for an unknown ``kind``.
    """
    g = generator
    depth = len(weights) - 1
    if kind in ("split", "dead"):
        room = [l for l in range(depth) if weights[l].shape[0] < layout.max_width]
        if not room:
            return None
        layer = room[_randint(len(room), g)]
        if kind == "split":
            frac = 0.2 + 0.6 * float(torch.rand(1, generator=g))
            return split_unit(weights, layer, _randint(weights[layer].shape[0], g), frac)
        inc = (torch.rand(weights[layer].shape[1], generator=g, dtype=torch.float64) * 2 - 1)
        return add_dead_unit(weights, layer, inc * weight_range)
    if kind == "permute":
        ws = _clone(weights)
        for l in range(depth):
            n = ws[l].shape[0]
            perm = torch.randperm(n, generator=g)
            while n >= 2 and torch.equal(perm, torch.arange(n)):
                perm = torch.randperm(n, generator=g)
            ws = permute_units(ws, l, perm)
        return ws
    if kind == "deeper":
        room = layout.max_depth - depth
        if activation not in HOMOGENEOUS or room < 1:
            return None
        ws = _clone(weights)
        for _ in range(1 + _randint(room, g)):
            ws = add_identity_layer(ws, activation, negative_slope)
        return ws
    raise InvalidSpec(f"unknown equivalence {kind!r} (use one of: {', '.join(EQUIVALENCES)})")


def equivalent_arrays(arrays: dict[int, torch.Tensor], layout: ArrayLayout, *, activation: str,
                      negative_slope: float, generator: torch.Generator,
                      weight_range: float = 10.0
                      ) -> tuple[dict[int, torch.Tensor], torch.Tensor]:
    """An equivalent partner for every MLP of a batch (a construction drawn uniformly among those
    that apply to it; ``permute`` always applies).

    Args:
        arrays: ``{depth: (B_L, H, W_L)}`` encoded MLPs (rows in increasing depth order make the
            batch order, as :meth:`~archopt.latent.autoencoder.MultiScaleAutoencoder.encode`).

    Returns: ``(partners, order)``: the partners' arrays grouped by their depth (same dtype and
    device), and ``order`` ``(B,)``: row ``i`` of the batch's partner is row ``order[i]`` of the
    partners' batch order.
    """
    nets = []
    for L in sorted(arrays):
        for a in arrays[L]:
            w = decode(a.detach().cpu().double(), layout)
            options = [k for k in EQUIVALENCES
                       if k != "deeper" or (activation in HOMOGENEOUS and layout.max_depth > L)]
            while True:
                kind = options[_randint(len(options), generator)]
                v = equivalent_variant(w, kind, activation=activation,
                                       negative_slope=negative_slope, layout=layout,
                                       generator=generator, weight_range=weight_range)
                if v is not None:
                    break
            nets.append(v)
    any_a = next(iter(arrays.values()))
    depth = [len(v) - 1 for v in nets]
    out: dict[int, torch.Tensor] = {}
    pos = torch.empty(len(nets), dtype=torch.long)
    start = 0
    for d in sorted(set(depth)):
        idx = [i for i, di in enumerate(depth) if di == d]
        out[d] = torch.stack([encode(nets[i], layout) for i in idx]).to(any_a)
        pos[idx] = torch.arange(start, start + len(idx))
        start += len(idx)
    return out, pos
