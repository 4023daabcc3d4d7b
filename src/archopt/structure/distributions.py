"""Distributions over network structures: multivariate Bernoulli and categorical.

A structure is a binary vector ``M`` (Bernoulli: which units / connections exist) or a set of
one-hot choices (categorical: which operation each slot takes). Both families are exponential
families in their expectation parameters ``theta``, so the natural gradient of ``ln p`` is simply
``x - theta`` and the inverse Fisher matrix is known in closed form. That is all SNG and ASNG
need (:mod:`archopt.structure.sng`, :mod:`archopt.structure.asng`).

Sources:
- Saito, Shirakawa et al., "Controlling Model Complexity in Probabilistic Model-Based Dynamic
  Optimization of Neural Network Structures", ICANN 2019, section 3: Bernoulli model,
  ``F(theta)^-1 = diag(theta (1 - theta))``, natural gradients ``M - theta`` and
  ``c theta (1 - theta)`` (the penalty), range restriction ``[1/d, 1 - 1/d]``.
- Akimoto et al., "Adaptive Stochastic Natural Gradient Method for One-Shot Neural Architecture
  Search", ICML 2019: categorical model, Fisher norm, range restriction
  ``theta >= 1 / (D (K - 1))``.

Arrays are numpy ``float64`` (theta) and ``bool`` (samples); samples are batched along axis 0.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np

from archopt.errors import ArchoptError

__all__ = ["Bernoulli", "Categorical", "StructureDistribution"]


class StructureDistribution(Protocol):
    """What the SNG / ASNG optimisers need from a distribution family.

    ``theta`` holds the expectation parameters; samples ``x`` are boolean arrays of shape
    ``(n, *theta.shape)``. ``dim`` is the number of free parameters (N in the ASNG paper).
    """

    theta: np.ndarray

    @property
    def dim(self) -> int: ...

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray: ...

    def log_prob(self, x: np.ndarray) -> np.ndarray: ...

    def natural_grad_log_prob(self, x: np.ndarray) -> np.ndarray: ...

    def expected_cost(self, c: np.ndarray) -> float: ...

    def natural_grad_expected_cost(self, c: np.ndarray) -> np.ndarray: ...

    def fisher_whiten(self, g: np.ndarray) -> np.ndarray: ...

    def restrict(self) -> None: ...

    def mode(self) -> np.ndarray: ...

    def check_samples(self, x: np.ndarray) -> np.ndarray: ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


def _as_float(x: Any, shape: tuple[int, ...], what: str) -> np.ndarray:
    arr = np.asarray(x, dtype=np.float64)
    if arr.shape != shape:
        raise ArchoptError(f"{what}: expected shape {shape}, got {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ArchoptError(f"{what}: values must be finite")
    return arr


class Bernoulli:
    """Multivariate Bernoulli ``p(M | theta) = prod_i theta_i^m_i (1 - theta_i)^(1 - m_i)``.

    Args:
        d: number of bits (structure variables).
        theta0: initial probability of every bit being 1 (the paper: 0.5), or a (d,) array.
        margin: range restriction ``theta in [margin, 1 - margin]``; default ``1/d``
            (ICANN 2019, "Implementation Remark"). 0 disables it.

    Raises:
        ArchoptError: ``d < 1``, ``theta0`` outside (0, 1), or a margin outside [0, 0.5).
    """

    def __init__(self, d: int, theta0: float | Sequence[float] | np.ndarray = 0.5, *,
                 margin: float | None = None) -> None:
        if int(d) < 1:
            raise ArchoptError(f"a Bernoulli distribution needs d >= 1 bits, got {d}")
        self.d = int(d)
        theta = np.broadcast_to(np.asarray(theta0, dtype=np.float64), (self.d,)).copy()
        if not np.all((theta > 0) & (theta < 1)):
            raise ArchoptError("theta0 must lie strictly between 0 and 1")
        self.margin = 1.0 / self.d if margin is None else float(margin)
        if not 0 <= self.margin < 0.5:
            raise ArchoptError(f"margin must be in [0, 0.5), got {self.margin}")
        self.theta = theta
        self.restrict()

    def __repr__(self) -> str:
        return f"Bernoulli(d={self.d}, mean theta={self.theta.mean():.4f})"

    @property
    def dim(self) -> int:
        """Free parameters: ``d``."""
        return self.d

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """``n`` structures, bool ``(n, d)``: ``m_i = [U_i < theta_i]``."""
        return rng.random((int(n), self.d)) < self.theta

    def check_samples(self, x: Any) -> np.ndarray:
        """Validate samples: a bool / 0-1 array of shape ``(n, d)``.

        Raises: ArchoptError naming the expected shape.
        """
        arr = np.asarray(x)
        if arr.ndim == 1:
            arr = arr[None]
        if arr.ndim != 2 or arr.shape[1] != self.d:
            raise ArchoptError(f"masks: expected shape (lambda, {self.d}), got {np.shape(x)}")
        if arr.dtype != np.bool_:
            if not np.all((arr == 0) | (arr == 1)):
                raise ArchoptError("masks must hold only 0/1 (or bool) values")
            arr = arr.astype(bool)
        return arr

    def log_prob(self, x: np.ndarray) -> np.ndarray:
        """``ln p(M | theta)`` of each row of ``x`` (n, d) -> (n,)."""
        x = self.check_samples(x)
        return np.where(x, np.log(self.theta), np.log1p(-self.theta)).sum(axis=1)

    def natural_grad_log_prob(self, x: np.ndarray) -> np.ndarray:
        """``F^-1 grad_theta ln p(M | theta) = M - theta`` for each row: (n, d)."""
        return self.check_samples(x).astype(np.float64) - self.theta

    def inverse_fisher(self) -> np.ndarray:
        """``F(theta)^-1 = diag(theta (1 - theta))`` as a (d, d) matrix (for checks / small d)."""
        return np.diag(self.theta * (1 - self.theta))

    def expected_cost(self, c: np.ndarray) -> float:
        """``E[sum_i c_i m_i] = sum_i c_i theta_i``."""
        return float(np.dot(np.asarray(c, dtype=np.float64), self.theta))

    def natural_grad_expected_cost(self, c: np.ndarray) -> np.ndarray:
        """Natural gradient of ``sum_i c_i theta_i``: ``c theta (1 - theta)`` (ICANN 2019,
        eq. (5))."""
        return np.asarray(c, dtype=np.float64) * self.theta * (1 - self.theta)

    def fisher_whiten(self, g: np.ndarray) -> np.ndarray:
        """``F^{1/2} g = g / sqrt(theta (1 - theta))``: its Euclidean norm is the Fisher norm of
        the natural-gradient vector ``g`` (ASNG)."""
        return np.asarray(g, dtype=np.float64) / np.sqrt(self.theta * (1 - self.theta))

    def restrict(self) -> None:
        """Clip theta to ``[margin, 1 - margin]`` in place."""
        np.clip(self.theta, self.margin, 1 - self.margin, out=self.theta)

    def mode(self) -> np.ndarray:
        """The most likely structure ``M*``: ``m_i = [theta_i >= 0.5]`` (bool, (d,))."""
        return self.theta >= 0.5

    def state_dict(self) -> dict[str, Any]:
        return {"family": "bernoulli", "theta": self.theta.tolist(), "margin": self.margin}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("family") != "bernoulli":
            raise ArchoptError(f"state is for a {state.get('family')!r} distribution, "
                               "not a Bernoulli")
        self.theta = _as_float(state["theta"], (self.d,), "theta")
        self.margin = float(state["margin"])


class Categorical:
    """Independent categorical variables with ``K_j`` choices each, one-hot samples.

    ``theta`` has shape ``(D, K_max)``; row ``j`` holds the probabilities of variable ``j``'s
    choices, padded with zeros beyond ``K_j``. A sample is a bool one-hot array
    ``(n, D, K_max)``. Bernoulli is the case ``K = 2`` (with choices "0" and "1").

    Args:
        categories: ``K_j`` for every variable (each >= 1).
        theta0: initial ``(D, K_max)`` probabilities; default uniform ``1 / K_j``.
        margin: range restriction ``theta_jk >= margin_j``; default ``1 / (D' (K_j - 1))`` where
            ``D'`` counts variables with ``K_j > 1`` (Akimoto et al. 2019). 0 disables it.

    Raises:
        ArchoptError: an empty or non-positive ``categories``, or a bad ``theta0``.
    """

    def __init__(self, categories: Sequence[int], theta0: np.ndarray | None = None, *,
                 margin: float | None = None) -> None:
        cats = np.asarray(list(categories), dtype=np.int64)
        if cats.ndim != 1 or len(cats) == 0 or np.any(cats < 1):
            raise ArchoptError(f"categories must be a non-empty list of K >= 1, got {categories}")
        self.categories = cats
        self.D = len(cats)
        self.K = int(cats.max())
        self.valid = np.arange(self.K)[None, :] < cats[:, None]  # (D, K) real choices
        if theta0 is None:
            theta = np.where(self.valid, 1.0 / cats[:, None], 0.0)
        else:
            theta = _as_float(theta0, (self.D, self.K), "theta0")
            if np.any(theta[~self.valid] != 0) or np.any(theta < 0) or \
                    not np.allclose(theta.sum(1), 1):
                raise ArchoptError("theta0 rows must be probabilities over the K_j choices")
        self.theta = theta.astype(np.float64)
        n_multi = int(np.sum(cats > 1))
        if margin is None:
            self.margins = np.where(cats > 1, 1.0 / (max(n_multi, 1) * np.maximum(cats - 1, 1)),
                                    0.0)
        else:
            self.margins = np.where(cats > 1, float(margin), 0.0)
        if np.any(self.margins * cats > 1):
            raise ArchoptError("margin too large: margin * K_j must be <= 1")
        self.restrict()

    def __repr__(self) -> str:
        return f"Categorical(D={self.D}, K_max={self.K})"

    @property
    def dim(self) -> int:
        """Free parameters: ``sum_j (K_j - 1)``."""
        return int(np.sum(self.categories - 1))

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """``n`` one-hot structures, bool ``(n, D, K_max)`` (inverse-CDF sampling)."""
        u = rng.random((int(n), self.D, 1))
        cum = np.cumsum(self.theta, axis=1)[None]  # (1, D, K)
        idx = np.minimum((u >= cum).sum(axis=2), self.categories - 1)  # round-off guard
        x = np.zeros((int(n), self.D, self.K), dtype=bool)
        np.put_along_axis(x, idx[..., None], True, axis=2)
        return x

    def check_samples(self, x: Any) -> np.ndarray:
        """Validate one-hot samples of shape ``(n, D, K_max)`` (or ``(D, K_max)``).

        Raises: ArchoptError naming the expected shape.
        """
        arr = np.asarray(x)
        if arr.ndim == 2:
            arr = arr[None]
        if arr.ndim != 3 or arr.shape[1:] != (self.D, self.K):
            raise ArchoptError(f"samples: expected shape (lambda, {self.D}, {self.K}), "
                               f"got {np.shape(x)}")
        arr = arr.astype(bool) if arr.dtype != np.bool_ else arr
        if np.any(arr & ~self.valid[None]) or np.any(arr.sum(axis=2) != 1):
            raise ArchoptError("samples must be one-hot over each variable's K_j choices")
        return arr

    def log_prob(self, x: np.ndarray) -> np.ndarray:
        """``ln p(x | theta)`` per sample: (n,)."""
        x = self.check_samples(x)
        logt = np.log(np.where(self.valid, self.theta, 1.0))
        return np.where(x, logt[None], 0.0).sum(axis=(1, 2))

    def natural_grad_log_prob(self, x: np.ndarray) -> np.ndarray:
        """``x - theta`` per sample: (n, D, K_max) (zero on padded choices)."""
        return np.where(self.valid[None], self.check_samples(x) - self.theta[None], 0.0)

    def expected_cost(self, c: np.ndarray) -> float:
        """``E[sum_jk c_jk x_jk] = sum_jk c_jk theta_jk``; ``c`` has shape (D, K_max)."""
        c = np.asarray(c, dtype=np.float64)
        return float(np.sum(np.where(self.valid, c * self.theta, 0.0)))

    def natural_grad_expected_cost(self, c: np.ndarray) -> np.ndarray:
        """Natural gradient of ``sum c theta``: ``theta_jk (c_jk - sum_l theta_jl c_jl)``.

        For K = 2 with ``c = (c_1, 0)`` this is the Bernoulli ``c theta (1 - theta)``.
        """
        c = np.where(self.valid, np.asarray(c, dtype=np.float64), 0.0)
        mean = np.sum(self.theta * c, axis=1, keepdims=True)
        return np.where(self.valid, self.theta * (c - mean), 0.0)

    def fisher_whiten(self, g: np.ndarray) -> np.ndarray:
        """A vector (length ``dim``) whose Euclidean norm is the Fisher norm of the natural-
        gradient ``g`` (D, K_max); the last choice of every variable is the dependent one
        (Akimoto et al. 2019, reference implementation)."""
        g = np.asarray(g, dtype=np.float64)
        out = []
        for j, k in enumerate(self.categories):
            if k < 2:
                continue
            t = self.theta[j, :k - 1]
            tk = self.theta[j, k - 1]
            gj = g[j, :k - 1]
            out.append(gj / np.sqrt(t) + np.sqrt(t) * gj.sum() / (tk + np.sqrt(tk)))
        return np.concatenate(out) if out else np.zeros(0)

    def restrict(self) -> None:
        """Range restriction: ``theta_jk >= margin_j`` and rows summing to 1 (ASNG's rule)."""
        for j, k in enumerate(self.categories):
            m = self.margins[j]
            row = np.maximum(self.theta[j, :k], m)
            excess = row.sum() - m * k
            if excess > 0:
                row = row - (row.sum() - 1.0) * (row - m) / excess
            row = row / row.sum()
            self.theta[j, :k] = row

    def mode(self) -> np.ndarray:
        """The most likely choice of every variable, one-hot bool ``(D, K_max)``."""
        x = np.zeros_like(self.valid)
        x[np.arange(self.D), np.argmax(np.where(self.valid, self.theta, -1.0), axis=1)] = True
        return x

    def state_dict(self) -> dict[str, Any]:
        return {"family": "categorical", "theta": self.theta.tolist(),
                "margins": self.margins.tolist()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("family") != "categorical":
            raise ArchoptError(f"state is for a {state.get('family')!r} distribution, "
                               "not a categorical")
        self.theta = _as_float(state["theta"], (self.D, self.K), "theta")
        self.margins = _as_float(state["margins"], (self.D,), "margins")
