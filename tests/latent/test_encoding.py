"""MLP <-> array encoding: layout of the spec, exact round trip, forward on arrays."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from archopt.errors import InvalidSpec
from archopt.latent.encoding import (
    ArrayLayout,
    array_forward,
    decode,
    encode,
    encode_mlp,
    mlp_from_array,
    structure_mask,
)
from archopt.spaces import MLPSpec


def test_widths_of_the_paper_layout():
    lay = ArrayLayout()
    assert [lay.width(L) for L in (1, 2, 3, 4)] == [9, 17, 25, 33]
    assert [lay.depth_of(w) for w in (9, 17, 25, 33)] == [1, 2, 3, 4]
    with pytest.raises(InvalidSpec):
        lay.depth_of(10)
    with pytest.raises(InvalidSpec):
        lay.width(5)


def test_hand_written_layout():
    # 3 inputs -> 2 hidden -> 3 hidden -> 1 output, H = 7: input rows centred at 2..4.
    w0 = torch.tensor([[1., 2., 3.], [4., 5., 6.]])            # (2, 3)
    w1 = torch.tensor([[7., 8.], [9., 10.], [11., 12.]])        # (3, 2)
    wo = torch.tensor([[13., 14., 15.]])                        # (1, 3)
    a = encode([w0, w1, wo], ArrayLayout())
    expected = np.zeros((7, 17))
    expected[2:5, 0:2] = [[1, 4], [2, 5], [3, 6]]               # W0^T, rows 2..4
    expected[0:2, 7:10] = [[7, 9, 11], [8, 10, 12]]             # W1^T
    expected[0:3, 14] = [13, 14, 15]                            # output column
    expected[0:2, 15] = 1                                       # masks: 2 units
    expected[0:3, 16] = 1                                       # 3 units
    np.testing.assert_array_equal(a.numpy(), expected)


def _random_weights(rng: np.random.Generator, n_in: int, widths: list[int]) -> list[torch.Tensor]:
    dims = [n_in, *widths, 1]
    return [torch.tensor(rng.uniform(-10, 10, size=(dims[i + 1], dims[i])), dtype=torch.float32)
            for i in range(len(dims) - 1)]


@settings(max_examples=60, deadline=None)
@given(n_in=st.integers(1, 7), extra=st.integers(0, 2), depth=st.integers(1, 4),
       seed=st.integers(0, 2**32 - 1))
def test_round_trip_exact(n_in, extra, depth, seed):
    max_width = max(n_in, 1) + extra
    lay = ArrayLayout(n_in=n_in, max_width=max_width)
    rng = np.random.default_rng(seed)
    widths = [int(rng.integers(1, max_width + 1)) for _ in range(depth)]
    weights = _random_weights(rng, n_in, widths)
    arr = encode(weights, lay)
    assert arr.shape == (max_width, lay.width(depth))
    back = decode(arr, lay)
    assert len(back) == depth + 1
    for w, b in zip(weights, back, strict=True):
        assert torch.equal(w, b)
    # And through a spec + module.
    spec, state = mlp_from_array(arr, lay, "sigmoid")
    assert spec.widths == widths
    assert torch.equal(encode_mlp(spec, state, lay), arr)


@pytest.mark.parametrize("activation", ["sigmoid", "leaky_relu", "linear"])
def test_array_forward_matches_the_built_module(activation):
    lay = ArrayLayout()
    rng = np.random.default_rng(1)
    arrays, modules = [], []
    for _ in range(3):
        weights = _random_weights(rng, 3, [3, 6, 2])
        arrays.append(encode(weights, lay))
        spec = MLPSpec(in_features=3, widths=[3, 6, 2], num_classes=1, activation=activation,
                       negative_slope=0.1, bias=False)
        m = spec.build()
        m.load_state_dict({f"layers.{i}.weight": w for i, w in enumerate(weights)})
        modules.append(m)
    x = torch.rand(50, 3) * 2 - 1
    got = array_forward(torch.stack(arrays), x, lay, activation, 0.1)
    for b, m in enumerate(modules):
        torch.testing.assert_close(got[b], m(x).squeeze(-1), rtol=1e-5, atol=1e-4)


def test_encode_rejects_shapes_outside_the_family():
    lay = ArrayLayout()
    with pytest.raises(InvalidSpec, match="units"):
        encode([torch.zeros(8, 3), torch.zeros(1, 8)], lay)      # too wide
    with pytest.raises(InvalidSpec, match="depth"):
        encode([torch.zeros(2, 3)] + [torch.zeros(2, 2)] * 4 + [torch.zeros(1, 2)], lay)
    with pytest.raises(InvalidSpec, match="shape"):
        encode([torch.zeros(2, 4), torch.zeros(1, 2)], lay)      # 4 inputs, layout has 3
    with pytest.raises(InvalidSpec, match="bias"):
        encode_mlp(MLPSpec(in_features=3, widths=[2], num_classes=1), {}, lay)
    with pytest.raises(InvalidSpec):
        ArrayLayout(n_in=8, max_width=7)


def test_structure_mask_is_the_product_of_unit_masks():
    lay = ArrayLayout(n_in=3, max_width=4)
    units = torch.tensor([[1., 0.], [1., 1.], [0., 0.], [1., 0.]])   # (H=4, L=2)
    m = structure_mask(units, lay)
    inp = torch.tensor([1., 1., 1., 0.])  # offset (4 - 3) // 2 = 0: rows 0..2 carry the inputs
    assert torch.equal(lay.input_mask().float(), inp)
    np.testing.assert_array_equal(m[:, 0:4].numpy(), torch.outer(inp, units[:, 0]).numpy())
    np.testing.assert_array_equal(m[:, 4:8].numpy(),
                                  torch.outer(units[:, 0], units[:, 1]).numpy())
    np.testing.assert_array_equal(m[:, 8].numpy(), units[:, 1].numpy())


def test_decode_drops_inactive_units_and_keeps_a_placeholder_for_an_empty_layer():
    lay = ArrayLayout()
    arr = torch.zeros(7, 17)
    arr[2:5, 0:7] = 1.0          # first block full
    arr[:, 7:14] = 2.0           # second block full
    arr[:, 14] = 3.0
    arr[[1, 4], 15] = 1.0        # layer 1: units 1 and 4 only
    # layer 2: no unit at all
    w = decode(arr, lay)
    assert [tuple(t.shape) for t in w] == [(2, 3), (1, 2), (1, 1)]
    assert float(w[1].abs().sum()) == 0 and float(w[2].abs().sum()) == 0
