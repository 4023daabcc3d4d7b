"""Rank correlations against their definitions: Spearman by the closed form on distinct ranks,
Kendall's tau by counting concordant and discordant pairs."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from archopt.design.ranking import rank_correlations


def _spearman(x, y):
    rx, ry = np.argsort(np.argsort(x)), np.argsort(np.argsort(y))
    n = len(x)
    return 1 - 6 * float(((rx - ry) ** 2).sum()) / (n * (n * n - 1))


def _kendall(x, y):
    s = sum(np.sign(x[i] - x[j]) * np.sign(y[i] - y[j])
            for i, j in itertools.combinations(range(len(x)), 2))
    return s / (len(x) * (len(x) - 1) / 2)


@pytest.mark.parametrize("seed", range(5))
def test_against_definitions(seed):
    rng = np.random.default_rng(seed)
    acc = rng.random(12)
    proxy = acc + rng.normal(0, 0.3, 12)
    got = rank_correlations(acc, {"p": proxy, "neg": -acc})
    assert got["p"]["spearman"] == pytest.approx(_spearman(proxy, acc))
    assert got["p"]["kendall"] == pytest.approx(_kendall(proxy, acc))
    assert got["neg"]["spearman"] == pytest.approx(-1.0)
    assert got["neg"]["kendall"] == pytest.approx(-1.0)


def test_refuses_mismatched_or_too_few():
    with pytest.raises(ValueError, match="3 architectures"):
        rank_correlations([0.1, 0.2], {"p": [1, 2]})
    with pytest.raises(ValueError, match="has 2 values"):
        rank_correlations([0.1, 0.2, 0.3], {"p": [1, 2]})


def test_spearman_difference_point_and_interval():
    from archopt.design.ranking import spearman_difference

    rng = np.random.default_rng(0)
    acc = rng.random(20)
    good, noise = acc + rng.normal(0, 0.05, 20), rng.random(20)
    got = spearman_difference(acc, good, noise, resamples=500)
    assert got["difference"] == pytest.approx(_spearman(good, acc) - _spearman(noise, acc))
    assert 0 < got["low"] <= got["difference"] <= got["high"]   # a real gap is resolved
    same = spearman_difference(acc, good, good, resamples=200)
    assert same["difference"] == 0 and same["low"] == 0 and same["high"] == 0
    with pytest.raises(ValueError, match="equal-length"):
        spearman_difference(acc, good[:5], noise)
