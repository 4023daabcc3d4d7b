"""Every block can move: the default initial population spreads one-member blocks too."""

from __future__ import annotations

import pytest
import torch

from archopt.errors import ArchoptError
from archopt.refine.blocking import histogram_blocking, random_blocking
from archopt.refine.config import RefineConfig
from archopt.refine.de import DifferentialEvolution
from archopt.refine.loop import initial_ranges


def _theta() -> torch.Tensor:
    # 400 weights near 0 and one extreme weight 1.0: with 8 bins the top bin holds only it
    g = torch.Generator().manual_seed(0)
    return torch.cat([torch.randn(400, generator=g, dtype=torch.float64) * 0.1,
                      torch.tensor([1.0], dtype=torch.float64)])


def _search(init_range: str, target: float, generations: int = 300) -> tuple[float, int]:
    b = histogram_blocking(_theta(), 8)
    k = int(torch.argmax(b.values))
    assert int(b.counts[k]) == 1 and float(b.values[k]) == 1.0  # a single-member block
    low, high = initial_ranges(b, init_range)
    assert not float(low[k]) <= target <= float(high[k])  # outside the initial range
    de = DifferentialEvolution(low, high, population=20, seed=1, x0=b.values)
    for _ in range(generations):
        pop = de.ask()
        de.tell((pop[:, k] - target) ** 2)  # its optimum lies away from where it starts
    return float(de.best[k]), int((low == high).sum())


def test_single_member_block_moves_to_its_optimum() -> None:
    value, degenerate = _search("bin", target=1.2)
    assert degenerate == 0
    assert value == pytest.approx(1.2, abs=1e-3)


def test_members_range_freezes_single_member_block() -> None:
    # the reference code's range: the gene is identical in every member, so it never moves
    value, degenerate = _search("members", target=1.2)
    assert degenerate >= 1
    assert value == 1.0


def test_default_config_spreads_every_block() -> None:
    assert RefineConfig().init_range == "bin"
    theta = _theta()
    for b in (histogram_blocking(theta, 50), random_blocking(theta, 300, seed=0)):
        low, high = initial_ranges(b, "bin")
        assert bool((high > low).all())
        v = b.values.double()
        assert bool(((low <= v) & (v <= high)).all())  # the block mean lies inside its range
        m_low, m_high = initial_ranges(b, "members")
        assert bool((low <= m_low).all() and (high >= m_high).all())  # never narrower


def test_unknown_init_range() -> None:
    with pytest.raises(ArchoptError, match="init_range"):
        initial_ranges(histogram_blocking(_theta(), 8), "wide")
