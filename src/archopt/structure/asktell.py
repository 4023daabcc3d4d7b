"""The ask / tell machinery shared by the structure optimisers (:class:`~archopt.structure.sng.SNG`,
:class:`~archopt.structure.asng.ASNG`): sampling, the natural gradients of the ranked losses and
of the complexity penalty, state for resuming.

Sources: Shirakawa, Iwata, Akimoto, AAAI 2018; Saito, Shirakawa et al., ICANN 2019, eqs. (4)-(7).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from archopt.errors import ArchoptError, CheckpointError
from archopt.structure.distributions import Bernoulli, StructureDistribution

__all__ = ["DECIDED_TOL", "StructureOptimizer", "decided_fraction"]


#: A bit is "decided" when its probability is within this distance of a bound (issue 11).
DECIDED_TOL = 0.05


def decided_fraction(theta: np.ndarray, margin: float, tol: float = DECIDED_TOL) -> float:
    """Fraction of Bernoulli probabilities ``theta`` within ``tol`` of ``margin`` or
    ``1 - margin`` (the bounds of the range restriction)."""
    t = np.asarray(theta, dtype=np.float64).ravel()
    return float(np.mean((t <= margin + tol) | (t >= 1.0 - margin - tol))) if t.size else 1.0


class StructureOptimizer:
    """Common ask/tell machinery of SNG and ASNG.

    Args:
        distribution: a :class:`Bernoulli` / :class:`Categorical` (or any
            :class:`StructureDistribution`), or an int ``d`` for ``Bernoulli(d)``.
        penalty: ``eps0``, the penalty coefficient before normalisation (0 = no penalty; < 0
            favours more active bits). ``eps = eps0 / max(c)``.
        costs: ``c``, the complexity of each variable, shape ``theta.shape`` (default all ones).
            Must be >= 0 with a positive maximum.
        lam: structures per iteration (``lambda``, >= 2; the paper: 2).
        seed: seed of the optimiser's own sampling generator (numpy PCG64).

    Raises:
        ArchoptError: bad costs, ``lam < 2`` or a non-finite penalty.
    """

    kind = ""

    def __init__(self, distribution: StructureDistribution | int, *, penalty: float = 0.0,
                 costs: Sequence[float] | np.ndarray | None = None, lam: int = 2,
                 seed: int = 0) -> None:
        dist = Bernoulli(distribution) if isinstance(distribution, (int, np.integer)) \
            else distribution
        self.dist: StructureDistribution = dist
        if int(lam) < 2:
            raise ArchoptError(f"lambda (structures per iteration) must be >= 2, got {lam}")
        self.lam = int(lam)
        if costs is None:
            c = np.ones_like(dist.theta)
        else:
            c = np.asarray(costs, dtype=np.float64)
            if c.shape != dist.theta.shape:
                raise ArchoptError(f"costs: expected shape {dist.theta.shape} (one per "
                                   f"structure variable), got {c.shape}")
        if not np.all(np.isfinite(c)) or np.any(c < 0) or c.max() <= 0:
            raise ArchoptError("costs must be finite, >= 0, with a positive maximum")
        self.costs = c
        if not np.isfinite(penalty):
            raise ArchoptError(f"penalty must be finite, got {penalty}")
        self.penalty = float(penalty)
        self.rng = np.random.Generator(np.random.PCG64(int(seed)))
        self.steps = 0

    # -- the penalty ------------------------------------------------------------------------
    @property
    def eps(self) -> float:
        """The normalised penalty coefficient ``eps = eps0 / max(c)``."""
        return self.penalty / float(self.costs.max())

    def penalty_natural_gradient(self) -> np.ndarray:
        """``eps * F^-1 grad_theta E[sum c_i m_i]`` (Bernoulli: ``eps c theta (1 - theta)``)."""
        return self.eps * self.dist.natural_grad_expected_cost(self.costs)

    def expected_penalty(self) -> float:
        """``eps * sum_i c_i theta_i``."""
        return self.eps * self.dist.expected_cost(self.costs)

    # -- ask / tell -------------------------------------------------------------------------
    @property
    def theta(self) -> np.ndarray:
        return self.dist.theta

    def ask(self, n: int | None = None) -> np.ndarray:
        """Sample ``n`` (default ``lambda``) structures: bool ``(n, *theta.shape)``."""
        return self.dist.sample(self.lam if n is None else int(n), self.rng)

    def loss_natural_gradient(self, masks: np.ndarray, utilities: np.ndarray) -> np.ndarray:
        """``(1/lambda) sum_i u_i (M_i - theta)``, the Monte-Carlo natural gradient of the
        expected utility (eq. (5) with the ranking utility)."""
        g = self.dist.natural_grad_log_prob(masks)
        return np.tensordot(utilities, g, axes=1) / len(utilities)

    def _check(self, masks: Any, losses: Any) -> tuple[np.ndarray, np.ndarray]:
        m = self.dist.check_samples(masks)
        f = np.asarray(losses, dtype=np.float64).ravel()
        if f.size != m.shape[0]:
            raise ArchoptError(f"tell: {m.shape[0]} structures but {f.size} losses")
        if f.size < 2:
            raise ArchoptError("tell needs at least two structures (lambda >= 2)")
        return m, f

    def tell(self, masks: Any, losses: Any) -> None:
        """Update theta from ``lambda`` structures and their losses on one minibatch."""
        raise NotImplementedError

    def mode(self) -> np.ndarray:
        """The deterministic structure ``M* = argmax_M p(M | theta)`` (Bernoulli: theta >= 0.5)."""
        return self.dist.mode()

    def decided_fraction(self, tol: float = DECIDED_TOL) -> float:
        """Fraction of bits whose probability is within ``tol`` of a bound of its range
        (Bernoulli: ``theta <= 1/d + tol`` or ``theta >= 1 - 1/d - tol``). An undecided bit
        (theta near 0.5) makes ``M*`` a coin flip for that unit / connection."""
        return decided_fraction(self.theta, getattr(self.dist, "margin", 0.0), tol)

    # -- checkpoints ------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue exactly: theta, counters, the sampling generator."""
        return {"kind": self.kind, "distribution": self.dist.state_dict(),
                "penalty": self.penalty, "costs": self.costs.tolist(), "lam": self.lam,
                "steps": self.steps, "rng": self.rng.bit_generator.state}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`.

        Raises: CheckpointError when the state belongs to another optimiser or shape.
        """
        if state.get("kind") != self.kind:
            raise CheckpointError(f"optimiser state is for {state.get('kind')!r}, "
                                  f"not {self.kind!r}")
        try:
            self.dist.load_state_dict(state["distribution"])
            costs = np.asarray(state["costs"], dtype=np.float64)
            if costs.shape != self.costs.shape:
                raise CheckpointError(f"optimiser state has costs of shape {costs.shape}, "
                                      f"expected {self.costs.shape}")
            self.costs = costs
            self.penalty = float(state["penalty"])
            self.lam = int(state["lam"])
            self.steps = int(state["steps"])
            self.rng.bit_generator.state = state["rng"]
        except (KeyError, TypeError, ValueError, ArchoptError) as err:
            if isinstance(err, CheckpointError):
                raise
            raise CheckpointError(f"optimiser state does not match: {err}") from None
