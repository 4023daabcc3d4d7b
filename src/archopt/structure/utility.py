"""Ranking-based utility: losses of the lambda sampled structures -> utilities u_i.

``u_i = +w`` for the ``ceil(lambda/4)`` smallest losses, ``-w`` for the ``ceil(lambda/4)``
largest, 0 otherwise; tied losses share the average of the utilities of the ranks they occupy
(so two equal losses with lambda = 2 both get 0 and the loss term of the update vanishes). The
transformation makes the theta update invariant to any order-preserving transformation of the
loss and turns minimisation into maximisation of utility.

Sources: Shirakawa et al., AAAI 2018, eq. (7); Saito et al., ICANN 2019, section 3 ("ranking-
based utility"), with ``w = 1``; Akimoto et al., ICML 2019 (ASNG), with ``w = 1/ceil(lambda/4)``
and the tie rule.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from archopt.errors import ArchoptError

__all__ = ["ranking_utility"]


def ranking_utility(losses: Sequence[float] | np.ndarray, *, weight: float = 1.0) -> np.ndarray:
    """Utilities of ``lambda`` losses (lower loss = better = positive utility).

    Args:
        losses: ``(lambda,)`` losses of the sampled structures, ``lambda >= 2``. NaN counts as
            the worst possible loss (``+inf``); equal values (``inf`` included) are ties.
        weight: the magnitude ``w`` given to the best / worst ranks.

    Returns:
        ``(lambda,)`` float64 utilities, in the order of ``losses``.

    Raises:
        ArchoptError: fewer than two losses, or a non-1-D input.
    """
    f = np.asarray(losses, dtype=np.float64)
    if f.ndim != 1 or f.size < 2:
        raise ArchoptError(f"ranking_utility needs a 1-D array of lambda >= 2 losses, "
                           f"got shape {f.shape}")
    f = np.where(np.isnan(f), np.inf, f)
    lam = f.size
    mu = math.ceil(lam / 4)
    order = np.argsort(f, kind="stable")
    base = np.zeros(lam)
    base[:mu] = weight
    base[lam - mu:] = -weight
    fs = f[order]
    us = base.copy()
    start = 0
    for i in range(1, lam + 1):
        if i == lam or fs[i] != fs[start]:
            us[start:i] = base[start:i].mean()
            start = i
    u = np.empty(lam)
    u[order] = us
    return u
