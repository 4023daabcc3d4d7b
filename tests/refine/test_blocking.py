"""Histogram / random blocking against independent computations (numpy's histogram, loops)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from archopt.errors import ArchoptError
from archopt.refine.blocking import (
    blocking_cost,
    histogram_blocking,
    random_blocking,
    sweep_bins,
)
from archopt.refine.params import ParameterLayout


def _theta(n: int = 5000, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    # a heavy-tailed, network-like distribution: many near zero, few large
    return (torch.randn(n, generator=g) * torch.rand(n, generator=g) ** 3).float()


def test_hand_example_max_in_last_bin_and_empty_bins_dropped():
    theta = torch.tensor([0.0, 0.1, 0.5, 1.0])
    b = histogram_blocking(theta, 4)  # bins [0,.25) [.25,.5) [.5,.75) [.75,1]
    assert b.blocked_dimensions == 3  # bin 1 is empty
    assert b.inverse.tolist() == [0, 0, 1, 2]
    assert b.bin_index.tolist() == [0, 2, 3]
    assert torch.equal(b.values, torch.tensor([0.05, 0.5, 1.0]))
    assert b.counts.tolist() == [2, 1, 1]
    b2 = histogram_blocking(theta, 2)  # [0, .5) [.5, 1]: the maximum joins 0.5
    assert b2.inverse.tolist() == [0, 0, 1, 1]
    assert torch.equal(b2.values, torch.tensor([0.05, 0.75]))


def test_counts_match_numpy_histogram():
    theta = _theta()
    b = histogram_blocking(theta, 1000)
    counts, _ = np.histogram(theta.double().numpy(), bins=b.edges.numpy())
    assert counts.sum() == theta.numel()  # numpy keeps the max too (last bin closed)
    assert b.counts.tolist() == counts[counts > 0].tolist()
    assert b.bin_index.tolist() == np.nonzero(counts)[0].tolist()
    # numpy's own equal-width edges agree with ours
    assert np.allclose(np.histogram_bin_edges(theta.double().numpy(), 1000), b.edges.numpy(),
                       rtol=0, atol=1e-12)


def test_unblock_of_block_equals_block_means_exactly():
    theta = _theta(20000, seed=1)
    b = histogram_blocking(theta, 500)
    full = b.unblock(b.block(theta))
    t = theta.double().numpy()
    inv = b.inverse.numpy()
    expected = np.empty(len(t), dtype=np.float32)
    for k in range(b.blocked_dimensions):  # an independent per-block mean
        members = inv == k
        expected[members] = np.float32(t[members].mean())
    assert np.array_equal(full.numpy(), expected)
    assert torch.equal(b.values, b.block(theta))


def test_every_parameter_in_exactly_one_block_and_inside_its_bin():
    theta = _theta(30000, seed=2)
    b = histogram_blocking(theta, 2000)
    assert b.inverse.shape == theta.shape
    assert int(b.inverse.min()) == 0 and int(b.inverse.max()) == b.blocked_dimensions - 1
    assert torch.equal(torch.bincount(b.inverse, minlength=b.blocked_dimensions), b.counts)
    assert int(b.counts.sum()) == theta.numel() and bool((b.counts > 0).all())
    lo = b.edges[b.bin_index][b.inverse]
    hi = b.edges[b.bin_index + 1][b.inverse]
    t = theta.double()
    last = b.bin_index[b.inverse] == b.n_bins - 1
    assert bool(((t >= lo) & ((t < hi) | (last & (t <= hi)))).all())
    assert int(b.inverse[t.argmax()]) == b.blocked_dimensions - 1  # the max: last block,
    assert int(b.bin_index[-1]) == b.n_bins - 1                      # which is the last bin
    assert float(b.high.max()) == float(t.max())  # the maximum is not lost
    assert bool((b.low <= b.values.double()).all() and (b.values.double() <= b.high).all())


def test_unblock_is_a_gather_for_batches():
    theta = _theta(3000)
    b = histogram_blocking(theta, 100)
    v = torch.randn(5, b.blocked_dimensions)
    full = b.unblock(v)
    assert full.shape == (5, theta.numel())
    for i in range(5):
        assert torch.equal(full[i], torch.tensor([v[i, int(k)] for k in b.inverse]))
    with pytest.raises(ArchoptError):
        b.unblock(torch.zeros(b.blocked_dimensions + 1))


@settings(max_examples=60, deadline=None)
@given(arrays(np.float32, st.integers(1, 400),
              elements=st.floats(-4, 4, width=32, allow_nan=False)),
       st.integers(1, 64))
def test_partition_invariants_property(values, n_bins):
    theta = torch.from_numpy(values)
    b = histogram_blocking(theta, n_bins)
    assert b.blocked_dimensions <= n_bins
    assert int(b.counts.sum()) == theta.numel()
    counts, _ = np.histogram(values.astype(np.float64), bins=b.edges.numpy()) if \
        values.min() < values.max() else (np.array([values.size]), None)
    assert b.counts.tolist() == counts[counts > 0].tolist()
    # equal values always share a block; block ranges hold their members
    t = theta.double()
    assert bool((b.low[b.inverse] <= t).all() and (t <= b.high[b.inverse]).all())


def test_constant_theta_is_one_block():
    b = histogram_blocking(torch.full((10,), 0.3), 10)
    assert b.blocked_dimensions == 1 and b.values.item() == pytest.approx(0.3)


@pytest.mark.parametrize("bad", [0, -3, 2.5, True])
def test_bad_n_bins(bad):
    with pytest.raises(ArchoptError, match="n_bins"):
        histogram_blocking(torch.randn(10), bad)


def test_non_finite_theta():
    with pytest.raises(ArchoptError, match="NaN"):
        histogram_blocking(torch.tensor([0.0, float("nan")]), 10)
    with pytest.raises(ArchoptError):
        histogram_blocking(torch.zeros(0), 10)


def test_random_blocking_same_count_near_equal_sizes():
    theta = _theta(1003)
    b = random_blocking(theta, 10, seed=3)
    assert b.blocked_dimensions == 10
    assert int(b.counts.max()) - int(b.counts.min()) <= 1
    assert torch.equal(b.inverse, random_blocking(theta, 10, seed=3).inverse)
    assert not torch.equal(b.inverse, random_blocking(theta, 10, seed=4).inverse)
    assert torch.equal(b.unblock(b.block(theta)), b.unblock(b.values))
    with pytest.raises(ArchoptError):
        random_blocking(theta, 0)


def test_sweep_and_cost_report():
    theta = _theta(5000)
    rows = sweep_bins(theta, [50, 100, 200, 400], lambda th: {"l2": float(th.norm())})
    d = [r["blocked_dimensions"] for r in rows]
    assert d == sorted(d) and d[0] < d[-1]  # nested bins (each doubles) never merge blocks
    err = [abs(r["l2"] - float(theta.norm())) for r in rows]
    assert err[-1] < err[0]  # finer bins distort the vector less
    b = histogram_blocking(theta, 100)
    cost = blocking_cost(theta, b, lambda th: {"l2": float(th.norm())})
    assert cost["before"]["l2"] == float(theta.norm())
    assert cost["after"]["l2"] == float(b.unblock(b.values).norm())
    assert cost["blocked_dimensions"] == b.blocked_dimensions == rows[1]["blocked_dimensions"]


def test_layout_roundtrip(tiny_net):
    layout = ParameterLayout.of(tiny_net)
    theta = layout.flatten(tiny_net)
    assert layout.dimensions == sum(p.numel() for p in tiny_net.parameters())
    assert "bn.running_mean" not in layout.names  # buffers are not blocked
    net2 = type(tiny_net)()
    layout.load(net2, theta)
    assert torch.equal(layout.flatten(net2), theta)
    assert torch.equal(layout.split(theta)["fc.bias"], tiny_net.fc.bias.detach())
    batched = layout.split(torch.stack([theta, 2 * theta]))
    assert torch.equal(batched["conv.weight"][1], 2 * tiny_net.conv.weight.detach())
