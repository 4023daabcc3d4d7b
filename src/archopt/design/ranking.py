"""How well a training-free score ranks trained accuracy: the rank correlations every
zero-cost-proxy and training-free design paper reports (e.g. Mellor et al. 2021; Abdelfattah et
al., ICLR 2021), by scipy.stats.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["rank_correlations", "spearman_difference"]


def rank_correlations(accuracy: Sequence[float],
                      proxies: Mapping[str, Sequence[float]]) -> dict[str, dict[str, Any]]:
    """Spearman's rho and Kendall's tau-b of each proxy with ``accuracy``.

    Args:
        accuracy: (N,) trained test accuracies, one per architecture.
        proxies: name -> (N,) proxy values of the same architectures (e.g. the DeepMAD
            objective, entropy, params, MACs).

    Returns: name -> ``{"spearman", "spearman_p", "kendall", "kendall_p"}`` (floats; NaN
        where a proxy is constant).
    Raises: ValueError when a proxy's length differs from ``accuracy``'s or N < 3.
    Source: scipy.stats.spearmanr / kendalltau (tau-b, ties corrected).
    """
    from scipy import stats

    n = len(accuracy)
    if n < 3:
        raise ValueError(f"rank correlations need at least 3 architectures, got {n}")
    out = {}
    for name, v in proxies.items():
        if len(v) != n:
            raise ValueError(f"proxy {name!r} has {len(v)} values for {n} architectures")
        rho, p_rho = stats.spearmanr(v, accuracy)
        tau, p_tau = stats.kendalltau(v, accuracy)
        out[name] = {"spearman": float(rho), "spearman_p": float(p_rho), "kendall": float(tau),
                     "kendall_p": float(p_tau)}
    return out


def spearman_difference(accuracy: Sequence[float], a: Sequence[float], b: Sequence[float], *,
                        resamples: int = 2000, level: float = 0.95,
                        seed: int = 0) -> dict[str, float]:
    """Whether proxy ``a`` ranks ``accuracy`` better than proxy ``b``: the difference of their
    Spearman rhos with a paired bootstrap interval over architectures.

    Args:
        accuracy: (N,) trained accuracies; a, b: (N,) values of two proxies for the same
            architectures.
        resamples: bootstrap resamples; level: interval coverage (0.95 = 95 %).
    Returns: ``{"difference", "low", "high", "level"}``: rho(a) - rho(b) and its percentile
        interval (NaN bounds where resamples with a constant proxy leave it undefined).
    Raises: ValueError on lengths that differ or N < 3.
    Source: scipy.stats.bootstrap (paired, percentile), scipy.stats.spearmanr.
    """
    import numpy as np
    from scipy import stats

    n = len(accuracy)
    if n < 3 or len(a) != n or len(b) != n:
        raise ValueError(f"need three equal-length sequences of at least 3 values, got "
                         f"{n}, {len(a)}, {len(b)}")

    def diff(acc, x, y):
        return stats.spearmanr(x, acc)[0] - stats.spearmanr(y, acc)[0]

    data = tuple(np.asarray(v, dtype=float) for v in (accuracy, a, b))
    res = stats.bootstrap(data, diff, paired=True, vectorized=False, n_resamples=resamples,
                          confidence_level=level, method="percentile",
                          rng=np.random.default_rng(seed))
    return {"difference": float(diff(*data)), "low": float(res.confidence_interval.low),
            "high": float(res.confidence_interval.high), "level": level}
