"""How well a training-free score ranks trained accuracy: the rank correlations every
zero-cost-proxy and training-free design paper reports (e.g. Mellor et al. 2021; Abdelfattah et
al., ICLR 2021), by scipy.stats.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["rank_correlations"]


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
