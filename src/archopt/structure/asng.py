"""ASNG: the stochastic natural gradient with an adaptive step size (ask / tell).

The step is a fixed Fisher-norm length ``delta = delta0 / Delta`` along the natural gradient,
and ``Delta`` adapts from the accumulated direction ``s``: consistent directions (signal) make
the step grow, directions that cancel (noise) make it shrink.

    G       = (1/lambda) sum_k u_k (M_k - theta) - eps c theta (1 - theta)
              (u = +-1/ceil(lambda/4); the penalty term as in SNG)
    theta  <- theta + delta * G / ||G||_F          (||G||_F = ||G / sqrt(theta (1 - theta))||)
    beta    = delta / sqrt(N)                      (N = free parameters, d for Bernoulli)
    s      <- (1 - beta) s + sqrt(beta (2 - beta)) F^{1/2} G / ||G||_F
    gamma  <- (1 - beta)^2 gamma + beta (2 - beta)
    Delta  <- min(Delta_max, Delta * exp(beta (gamma - ||s||^2 / alpha)))

then the range restriction. Defaults: alpha = 1.5, delta0 = 1, lambda = 2, Delta_0 = 1.

Source: Akimoto, Shirakawa, Yoshinari, Uchida, Saito, Nishida, "Adaptive Stochastic Natural
Gradient Method for One-Shot Neural Architecture Search", ICML 2019, Algorithm 1 and the
reference implementation (an update is skipped when the natural gradient vanishes, e.g. tied
losses with no penalty). Including the complexity penalty in ``G`` is archopt's combination of
ASNG with Saito et al. (ICANN 2019, eq. (7)).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from archopt.errors import ArchoptError
from archopt.structure.asktell import StructureOptimizer
from archopt.structure.distributions import StructureDistribution
from archopt.structure.utility import ranking_utility

__all__ = ["ASNG"]


class ASNG(StructureOptimizer):
    """Adaptive-step stochastic natural gradient.

    Args:
        distribution, penalty, costs, lam, seed: see
            :class:`~archopt.structure.sng.StructureOptimizer`.
        delta0: initial Fisher-norm step length (1).
        alpha: the threshold of the step-size adaptation (1.5).
        delta_max: upper bound of ``Delta`` (inf); ``delta = delta0 / Delta``.

    Raises:
        ArchoptError: non-positive ``delta0`` / ``alpha`` / ``delta_max``.
    """

    kind = "asng"

    def __init__(self, distribution: StructureDistribution | int, *, penalty: float = 0.0,
                 costs: Sequence[float] | np.ndarray | None = None, lam: int = 2,
                 delta0: float = 1.0, alpha: float = 1.5, delta_max: float = math.inf,
                 seed: int = 0) -> None:
        super().__init__(distribution, penalty=penalty, costs=costs, lam=lam, seed=seed)
        if not (delta0 > 0 and alpha > 0 and delta_max > 0):
            raise ArchoptError("ASNG needs delta0 > 0, alpha > 0 and delta_max > 0")
        self.delta0 = float(delta0)
        self.alpha = float(alpha)
        self.delta_max = float(delta_max)
        self.Delta = 1.0
        self.gamma = 0.0
        self.s = np.zeros(self.dist.dim)

    def __repr__(self) -> str:
        return (f"ASNG({self.dist!r}, eps0={self.penalty:g}, delta={self.delta:.3g}, "
                f"lam={self.lam})")

    @property
    def delta(self) -> float:
        """The current step length ``delta0 / Delta``."""
        return self.delta0 / self.Delta

    def natural_gradient(self, masks: Any, losses: Any) -> np.ndarray:
        """``G = (1/lambda) sum u_k (M_k - theta) - eps c theta (1 - theta)``,
        ``u = +-1/ceil(lambda/4)``."""
        m, f = self._check(masks, losses)
        u = ranking_utility(f, weight=1.0 / math.ceil(len(f) / 4))
        return self.loss_natural_gradient(m, u) - self.penalty_natural_gradient()

    def tell(self, masks: Any, losses: Any) -> None:
        """One adaptive step; a vanishing natural gradient leaves everything unchanged.

        Raises: ArchoptError for masks / losses of the wrong shape or count.
        """
        g = self.natural_gradient(masks, losses)
        self.steps += 1
        if np.all(np.abs(g) < 1e-18):
            return
        delta = self.delta
        beta = delta / math.sqrt(self.dist.dim)
        white = self.dist.fisher_whiten(g)
        norm = float(np.sqrt(np.dot(white, white))) + 1e-8
        self.dist.theta += delta * g / norm
        self.s = (1 - beta) * self.s + math.sqrt(beta * (2 - beta)) * white / norm
        self.gamma = (1 - beta) ** 2 * self.gamma + beta * (2 - beta)
        self.Delta *= math.exp(beta * (self.gamma - float(np.dot(self.s, self.s)) / self.alpha))
        self.Delta = min(self.Delta, self.delta_max)
        self.dist.restrict()

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "delta0": self.delta0, "alpha": self.alpha,
                "delta_max": self.delta_max, "Delta": self.Delta, "gamma": self.gamma,
                "s": self.s.tolist()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.delta0 = float(state["delta0"])
        self.alpha = float(state["alpha"])
        self.delta_max = float(state["delta_max"])
        self.Delta = float(state["Delta"])
        self.gamma = float(state["gamma"])
        self.s = np.asarray(state["s"], dtype=np.float64)
