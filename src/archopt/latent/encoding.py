"""MLP <-> padded array: the "image" of an MLP that the SWAT-NN autoencoder reads and writes.

The family (SWAT-NN spec section 1; Huang, Montazerin, Srivastava, arXiv 2410.08339, section 3.1):
``n_in`` inputs, one output, ``depth`` = 1..``max_depth`` hidden layers of at most ``max_width``
units each, no biases, one activation for the whole family.

The array of an MLP with ``L`` hidden layers is ``(H, W)`` with ``H = max_width`` rows and
``W = L * H + 1 + L`` columns (``H = 7``: W = 9 / 17 / 25 / 33 for L = 1..4):

- columns ``[l*H, (l+1)*H)``: hidden layer ``l``'s weight matrix transposed to (in x out), i.e.
  entry ``(i, j)`` is the weight from unit ``i`` of the previous layer to unit ``j`` of layer
  ``l``, zero-padded to ``H x H``. For the first layer the ``n_in`` input rows are centred:
  rows ``[off, off + n_in)`` with ``off = (H - n_in) // 2``;
- column ``L*H``: the output layer as an ``H x 1`` column (weight from unit ``i`` of the last
  hidden layer to the output);
- the last ``L`` columns: neuron masks, column ``l`` has a 1 in row ``j`` when unit ``j`` of hidden
  layer ``l`` exists (an encoded MLP has its ``n_l`` units in the first ``n_l`` rows).

Units are kept at their positions (no reordering), so ``decode(encode(mlp))`` returns the very same
weight matrices: the round trip is exact, bit for bit.

Weight tensors follow ``torch.nn.Linear``: ``weights[l]`` has shape ``(out, in)``; the last entry
is the output layer ``(1, n_L)``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from archopt.errors import InvalidSpec
from archopt.spaces import MLPSpec

__all__ = [
    "ACTIVATIONS",
    "ArrayLayout",
    "activation_fn",
    "array_forward",
    "decode",
    "encode",
    "encode_mlp",
    "mlp_from_array",
    "mlp_weights",
    "structure_mask",
]

#: Activations the SWAT-NN family supports (one autoencoder per activation).
ACTIVATIONS = ("sigmoid", "leaky_relu", "linear")


def activation_fn(activation: str, negative_slope: float = 0.1) -> Any:
    """The elementwise activation as a function on tensors.

    Raises: InvalidSpec for an activation outside :data:`ACTIVATIONS`.
    """
    if activation == "sigmoid":
        return torch.sigmoid
    if activation == "leaky_relu":
        return lambda x: F.leaky_relu(x, negative_slope)
    if activation == "linear":
        return lambda x: x
    raise InvalidSpec(f"unknown activation {activation!r} for the SWAT-NN family "
                      f"(use one of: {', '.join(ACTIVATIONS)})")


@dataclass(frozen=True)
class ArrayLayout:
    """Geometry of the padded array for ``n_in`` inputs and hidden widths up to ``max_width``.

    Args:
        n_in: input dimension (paper: 3); ``1 <= n_in <= max_width``.
        max_width: rows ``H`` of the array and the widest hidden layer (paper: 7).
        max_depth: the most hidden layers (paper: 4).

    Raises: InvalidSpec for sizes out of range.
    """

    n_in: int = 3
    max_width: int = 7
    max_depth: int = 4

    def __post_init__(self) -> None:
        if self.max_width < 1 or self.max_depth < 1:
            raise InvalidSpec(f"max_width and max_depth must be >= 1, got {self.max_width}, "
                              f"{self.max_depth}")
        if not 1 <= self.n_in <= self.max_width:
            raise InvalidSpec(f"n_in must be between 1 and max_width={self.max_width} (the first "
                              f"layer's inputs are rows of the array), got {self.n_in}")

    @property
    def rows(self) -> int:
        """``H``: rows of every array."""
        return self.max_width

    @property
    def input_offset(self) -> int:
        """First row of the (centred) input rows in the first weight block."""
        return (self.max_width - self.n_in) // 2

    @property
    def depths(self) -> range:
        return range(1, self.max_depth + 1)

    def check_depth(self, depth: int) -> int:
        if not 1 <= int(depth) <= self.max_depth:
            raise InvalidSpec(f"depth (hidden layers) must be 1..{self.max_depth}, got {depth}")
        return int(depth)

    def width(self, depth: int) -> int:
        """Columns ``W = depth * H + 1 + depth`` of the array for ``depth`` hidden layers."""
        depth = self.check_depth(depth)
        return depth * self.max_width + 1 + depth

    def weight_cols(self, depth: int) -> int:
        """Columns holding weights (all but the mask columns): ``depth * H + 1``."""
        return self.check_depth(depth) * self.max_width + 1

    def depth_of(self, width: int) -> int:
        """The depth whose arrays have ``width`` columns.

        Raises: InvalidSpec when no depth in ``1..max_depth`` has that width.
        """
        d, r = divmod(int(width) - 1, self.max_width + 1)
        if r != 0 or not 1 <= d <= self.max_depth:
            raise InvalidSpec(f"an array of width {width} is not an MLP encoding for max_width="
                              f"{self.max_width} (widths: "
                              f"{[self.width(L) for L in self.depths]})")
        return d

    def input_mask(self, device: torch.device | str | None = None) -> torch.Tensor:
        """``(H,)`` booleans: the rows of the first block that carry the inputs."""
        m = torch.zeros(self.rows, dtype=torch.bool, device=device)
        m[self.input_offset:self.input_offset + self.n_in] = True
        return m


def structure_mask(units: torch.Tensor, layout: ArrayLayout) -> torch.Tensor:
    """Which weight entries exist, given which hidden units exist.

    Args:
        units: ``(..., H, L)`` unit masks (the mask columns), 0/1 or in [0, 1]; a float input gives
            the products of the masks (so gradients reach soft masks).
        layout: the array geometry.

    Returns: ``(..., H, L*H + 1)``: entry ``(i, j)`` of block ``l`` is ``u_{l-1}[i] * u_l[j]``
    (``u_{-1}`` = the input rows), the output column is ``u_{L-1}``.
    """
    H = layout.rows
    L = units.shape[-1]
    u = units.to(torch.get_default_dtype()) if units.dtype == torch.bool else units
    inp = layout.input_mask(u.device).to(u.dtype).expand(*u.shape[:-2], H)
    blocks = []
    prev = inp
    for l in range(L):
        cur = u[..., l]
        blocks.append(prev.unsqueeze(-1) * cur.unsqueeze(-2))
        prev = cur
    blocks.append(prev.unsqueeze(-1))
    return torch.cat(blocks, dim=-1)


def _check_weights(weights: Sequence[torch.Tensor], layout: ArrayLayout) -> int:
    if len(weights) < 2:
        raise InvalidSpec("an MLP of the SWAT-NN family needs at least one hidden layer and an "
                          f"output layer; got {len(weights)} weight matrices")
    depth = layout.check_depth(len(weights) - 1)
    fan_in = layout.n_in
    for l, w in enumerate(weights):
        if w.dim() != 2:
            raise InvalidSpec(f"weights[{l}] must be a matrix (out, in), got shape "
                              f"{tuple(w.shape)}")
        out, inn = w.shape
        expect_out = 1 if l == depth else out
        if inn != fan_in or out != expect_out:
            what = "output layer" if l == depth else f"hidden layer {l}"
            raise InvalidSpec(f"weights[{l}] ({what}) has shape {tuple(w.shape)}, expected "
                              f"({expect_out if l == depth else 'n'}, {fan_in})")
        if l < depth and not 1 <= out <= layout.max_width:
            raise InvalidSpec(f"hidden layer {l} has {out} units; the array holds 1.."
                              f"{layout.max_width}")
        fan_in = out
    return depth


def encode(weights: Sequence[torch.Tensor], layout: ArrayLayout) -> torch.Tensor:
    """Encode one MLP's weight matrices as its ``(H, W)`` array.

    Args:
        weights: ``depth + 1`` matrices in ``nn.Linear`` layout ``(out, in)``: hidden layers
            ``(n_1, n_in), (n_2, n_1), ...`` then the output layer ``(1, n_L)``.
        layout: array geometry.

    Returns: a ``(H, L*H + 1 + L)`` tensor (dtype and device of ``weights[0]``).

    Raises: InvalidSpec when the shapes do not form an MLP of the family.
    """
    depth = _check_weights(weights, layout)
    H = layout.rows
    w0 = weights[0]
    arr = torch.zeros(H, layout.width(depth), dtype=w0.dtype, device=w0.device)
    off = layout.input_offset
    for l in range(depth):
        wt = weights[l].detach().T  # (in, out)
        r0 = off if l == 0 else 0
        arr[r0:r0 + wt.shape[0], l * H:l * H + wt.shape[1]] = wt
        arr[:wt.shape[1], depth * H + 1 + l] = 1.0
    wo = weights[depth].detach().T  # (n_L, 1)
    arr[:wo.shape[0], depth * H] = wo[:, 0]
    return arr


def decode(array: torch.Tensor, layout: ArrayLayout) -> list[torch.Tensor]:
    """Decode one ``(H, W)`` array back to the weight matrices of its MLP.

    A hidden unit exists where its mask entry is > 0.5 (units may be anywhere in the column;
    an encoded MLP has them first). Entries outside the existing units are ignored.

    Returns: ``depth + 1`` matrices ``(out, in)`` as in :func:`encode`; a layer with no unit keeps
    one unit with zero weights (an MLP needs width >= 1; the function is unchanged, as that unit
    has no outgoing weight).

    Raises: InvalidSpec when the array is not ``(H, W)`` of an encoding.
    """
    if array.dim() != 2 or array.shape[0] != layout.rows:
        raise InvalidSpec(f"expected an array of shape ({layout.rows}, W), got "
                          f"{tuple(array.shape)}")
    depth = layout.depth_of(array.shape[1])
    H = layout.rows
    array = array.detach()
    masks = array[:, depth * H + 1:] > 0.5
    # ``prev``: row indices of the previous layer's units; None = a zero placeholder unit.
    prev: torch.Tensor | None = torch.arange(layout.input_offset,
                                             layout.input_offset + layout.n_in,
                                             device=array.device)

    def rows(block: torch.Tensor) -> torch.Tensor:
        if prev is None:
            return torch.zeros(1, block.shape[1], dtype=array.dtype, device=array.device)
        return block[prev]

    weights: list[torch.Tensor] = []
    for l in range(depth):
        idx = torch.nonzero(masks[:, l]).flatten()
        block = rows(array[:, l * H:(l + 1) * H])
        if idx.numel() == 0:
            weights.append(torch.zeros(1, block.shape[0], dtype=array.dtype,
                                       device=array.device))
            prev = None
        else:
            weights.append(block[:, idx].T.clone())
            prev = idx
    weights.append(rows(array[:, depth * H:depth * H + 1]).T.clone())
    return weights


def mlp_weights(spec: MLPSpec, state: nn.Module | Mapping[str, torch.Tensor]) -> list[
        torch.Tensor]:
    """The weight matrices of an :class:`~archopt.spaces.MLPSpec` model of the SWAT-NN family.

    Args:
        spec: the MLP spec (``bias=False``, ``num_classes=1``, no unit masks).
        state: the built module or its ``state_dict`` (``layers.{i}.weight``).

    Raises: InvalidSpec when the spec is outside the family or the state does not match it.
    """
    if spec.bias:
        raise InvalidSpec("the SWAT-NN family has no biases; build the spec with bias=False")
    if spec.num_classes != 1:
        raise InvalidSpec(f"the SWAT-NN family has one output, the spec has {spec.num_classes}")
    if spec.unit_masks is not None:
        raise InvalidSpec("compact the spec (no unit_masks) before encoding it")
    sd = state.state_dict() if isinstance(state, nn.Module) else state
    weights = []
    for i in range(len(spec.widths) + 1):
        key = f"layers.{i}.weight"
        if key not in sd:
            raise InvalidSpec(f"state has no {key!r} for a spec with {len(spec.widths)} hidden "
                              "layers")
        weights.append(sd[key])
    return weights


def encode_mlp(spec: MLPSpec, state: nn.Module | Mapping[str, torch.Tensor],
               layout: ArrayLayout | None = None) -> torch.Tensor:
    """Encode an MLP given as spec + module/state_dict (``layout`` defaults to the spec's
    ``in_features`` with ``max_width=7``, ``max_depth=4``)."""
    layout = layout or ArrayLayout(n_in=spec.in_features)
    if spec.in_features != layout.n_in:
        raise InvalidSpec(f"the spec has {spec.in_features} inputs, the layout {layout.n_in}")
    return encode(mlp_weights(spec, state), layout)


def mlp_from_array(array: torch.Tensor, layout: ArrayLayout, activation: str = "sigmoid",
                   negative_slope: float = 0.1) -> tuple[MLPSpec, dict[str, torch.Tensor]]:
    """Decode an array to an :class:`~archopt.spaces.MLPSpec` and its ``state_dict``.

    ``spec.build().load_state_dict(state)`` gives a module computing the array's function.
    """
    activation_fn(activation, negative_slope)  # validates the name
    weights = decode(array, layout)
    spec = MLPSpec(in_features=layout.n_in, widths=[w.shape[0] for w in weights[:-1]],
                   num_classes=1, activation=activation, negative_slope=negative_slope,
                   bias=False)
    return spec, {f"layers.{i}.weight": w.float() for i, w in enumerate(weights)}


def array_forward(arrays: torch.Tensor, x: torch.Tensor, layout: ArrayLayout,
                  activation: str, negative_slope: float = 0.1, *,
                  weights: torch.Tensor | None = None) -> torch.Tensor:
    """Run a batch of encoded MLPs on inputs, straight from their arrays (differentiable).

    Padding entries must be zero (true of :func:`encode` and of decoder outputs); then padded
    units contribute nothing even when ``act(0) != 0`` (their outgoing weights are zero).

    Args:
        arrays: ``(B, H, W)`` arrays of one depth (only the weight columns are read).
        x: ``(N, n_in)`` inputs shared by all MLPs, or ``(B, N, n_in)``.
        layout: array geometry.
        activation, negative_slope: the family's activation.
        weights: optional ``(B, H, L*H + 1)`` weight columns to use instead of those of ``arrays``
            (e.g. soft-pruned weights); ``arrays`` then only fixes the depth.

    Returns: ``(B, N)`` outputs.
    """
    if arrays.dim() != 3 or arrays.shape[1] != layout.rows:
        raise InvalidSpec(f"expected arrays of shape (B, {layout.rows}, W), got "
                          f"{tuple(arrays.shape)}")
    depth = layout.depth_of(arrays.shape[2])
    H = layout.rows
    w = arrays[..., :layout.weight_cols(depth)] if weights is None else weights
    if x.shape[-1] != layout.n_in:
        raise InvalidSpec(f"inputs have {x.shape[-1]} features, the MLPs {layout.n_in}")
    act = activation_fn(activation, negative_slope)
    off = layout.input_offset
    # The first block restricted to the input rows: (B, n_in, H).
    h = torch.matmul(x.to(w.dtype), w[:, off:off + layout.n_in, :H])
    h = act(h)
    for l in range(1, depth):
        h = act(torch.matmul(h, w[:, :, l * H:(l + 1) * H]))
    return torch.matmul(h, w[:, :, depth * H:depth * H + 1]).squeeze(-1)
