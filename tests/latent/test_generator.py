"""Random sparse MLPs: seeded, the requested sparsity, a guaranteed input -> output path."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from archopt.errors import InvalidSpec
from archopt.latent.encoding import ArrayLayout, decode, encode
from archopt.latent.generator import random_mlps, training_batch


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _reaches_output(weights: list[torch.Tensor]) -> bool:
    """Independent check: boolean reachability from any input through non-zero weights."""
    reach = np.ones(weights[0].shape[1], dtype=bool)
    for w in weights:
        reach = (np.abs(w.numpy()) > 0)[:, reach].any(axis=1)
    return bool(reach[0])


@pytest.mark.parametrize("depth", [1, 2, 3, 4])
@pytest.mark.parametrize("sparsity", [0.0, 0.5, 0.9])
def test_sparsity_path_and_structure(depth, sparsity):
    lay = ArrayLayout()
    arrays = random_mlps(64, depth, lay, generator=_gen(depth), sparsity=sparsity)
    assert arrays.shape == (64, 7, lay.width(depth))
    for a in arrays:
        weights = decode(a, lay)
        # Nothing outside the existing units (the array is a clean encoding).
        assert torch.equal(encode(weights, lay), a)
        widths = [w.shape[0] for w in weights[:-1]]
        assert all(3 <= n <= 6 for n in widths)
        dims = [3, *widths, 1]
        possible = sum(dims[i] * dims[i + 1] for i in range(len(dims) - 1))
        expected = max(depth + 1, round((1 - sparsity) * possible))
        nonzero = sum(int((w != 0).sum()) for w in weights)
        assert nonzero == expected
        assert _reaches_output(weights)
        assert max(float(w.abs().max()) for w in weights) <= 10.0


def test_per_mlp_sparsity_and_width_range():
    lay = ArrayLayout()
    s = [0.5, 0.9] * 8
    arrays = random_mlps(16, 2, lay, generator=_gen(0), sparsity=s, widths=(5, 5))
    for a, sp in zip(arrays, s, strict=True):
        weights = decode(a, lay)
        assert [w.shape[0] for w in weights[:-1]] == [5, 5]
        assert sum(int((w != 0).sum()) for w in weights) == max(3, round((1 - sp) * 45))


def test_seeded_and_independent_of_the_global_stream():
    lay = ArrayLayout()
    a = random_mlps(8, 3, lay, generator=_gen(7), sparsity=0.7)
    torch.manual_seed(123)
    torch.rand(10)
    b = random_mlps(8, 3, lay, generator=_gen(7), sparsity=0.7)
    c = random_mlps(8, 3, lay, generator=_gen(8), sparsity=0.7)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_every_width_and_input_is_used():
    lay = ArrayLayout()
    arrays = random_mlps(400, 1, lay, generator=_gen(3), sparsity=0.9)
    widths = {decode(a, lay)[0].shape[0] for a in arrays}
    assert widths == {3, 4, 5, 6}
    # Only the centred input rows 2..4 carry first-layer weights, and all three are used.
    rows = {int(r) for r in torch.nonzero(arrays[:, :, :7].abs().sum((0, 2))).flatten()}
    assert rows == {2, 3, 4}


def test_training_batch_covers_depths_and_sparsities():
    lay = ArrayLayout()
    batch = training_batch(32, lay, generator=_gen(0))
    assert sorted(batch) == [1, 2, 3, 4]
    assert all(v.shape[0] == 8 for v in batch.values())
    for L, arrays in batch.items():
        nz = [sum(int((w != 0).sum()) for w in decode(a, lay)) for a in arrays]
        dims = [[3, *[w.shape[0] for w in decode(a, lay)[:-1]], 1] for a in arrays]
        possible = [sum(d[i] * d[i + 1] for i in range(len(d) - 1)) for d in dims]
        for i, (n, p) in enumerate(zip(nz, possible, strict=True)):
            s = (0.5, 0.7, 0.8, 0.9)[i % 4]
            assert n == max(L + 1, round((1 - s) * p))


def test_bad_arguments():
    lay = ArrayLayout()
    with pytest.raises(InvalidSpec):
        random_mlps(4, 5, lay, generator=_gen(0))
    with pytest.raises(InvalidSpec):
        random_mlps(4, 2, lay, generator=_gen(0), sparsity=1.0)
    with pytest.raises(InvalidSpec):
        random_mlps(4, 2, lay, generator=_gen(0), widths=(3, 8))
    with pytest.raises(InvalidSpec):
        random_mlps(4, 2, lay, generator=_gen(0), sparsity=[0.5, 0.5])
