"""RefineConfig: the paper's defaults, validation, resume rules; the initial ranges."""

from __future__ import annotations

import pytest
import torch

from archopt.errors import UnknownName
from archopt.refine import InvalidRefineConfig, RefineConfig, histogram_blocking, make_blocking
from archopt.refine.loop import initial_ranges


def test_defaults_are_the_papers():
    c = RefineConfig()
    assert (c.n_bins, c.population, c.F, c.CR, c.metric) == (10_000, 100, 0.5, 0.9, "f1")
    assert c.rescore is False and c.block_mean_member is True and c.blocks == "histogram"


@pytest.mark.parametrize("bad", [dict(population=3), dict(CR=1.1), dict(F=0), dict(n_bins=0),
                                 dict(generations=None), dict(init_range="wide"),
                                 dict(super_batch=0), dict(colour="red")])
def test_invalid(bad):
    with pytest.raises(InvalidRefineConfig):
        RefineConfig(**bad)


def test_unknown_metric_is_refused_at_once():
    with pytest.raises(UnknownName, match="metric"):
        RefineConfig(metric="auroc")


def test_time_bounded_run_and_resume_rules():
    c = RefineConfig(generations=None, max_seconds=5.0)
    assert c.generations is None
    saved = RefineConfig(generations=10, device="cpu").to_dict()
    assert RefineConfig(generations=50, device="cuda", eval_every=3).differences(saved) == []
    assert RefineConfig(population=50).differences(saved) == ["population: 100 -> 50"]


def test_initial_ranges():
    g = torch.Generator().manual_seed(0)
    theta = torch.randn(2000, generator=g)
    b = histogram_blocking(theta, 50)
    low, high = initial_ranges(b, RefineConfig(n_bins=50, init_range="members").init_range)
    assert torch.equal(low, b.low) and torch.equal(high, b.high)
    wide_lo, wide_hi = initial_ranges(b, RefineConfig(n_bins=50).init_range)
    assert bool((wide_lo <= b.low).all() and (b.high <= wide_hi).all())
    assert torch.allclose(wide_hi - wide_lo, (b.edges[1] - b.edges[0]).expand(len(low)))
    rnd = make_blocking(theta, RefineConfig(n_bins=50, blocks="random"))
    assert rnd.blocked_dimensions == b.blocked_dimensions and rnd.scheme == "random"
    r_lo, r_hi = initial_ranges(rnd, "bin")  # random blocks: widened to a bin's width
    span = float(theta.max() - theta.min())
    assert bool((r_hi - r_lo >= span / rnd.blocked_dimensions - 1e-12).all())
