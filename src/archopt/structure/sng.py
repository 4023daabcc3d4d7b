"""SNG: the stochastic natural-gradient update of a structure distribution, with a complexity
penalty (ask / tell).

Each iteration a training loop asks for ``lambda`` structures, evaluates their losses on one
minibatch, and tells them back. The update (Saito et al., ICANN 2019, eq. (7)) is

    theta <- theta + eta * [ (1/lambda) sum_i u_i (M_i - theta) - eps * c * theta * (1 - theta) ]

followed by the range restriction theta in [1/d, 1 - 1/d]. ``u_i`` are ranking utilities
(:func:`~archopt.structure.utility.ranking_utility`), ``c_i`` the complexity of bit i (number of
weights attached to it, or 1 per unit), ``eps = eps0 / max(c)`` and ``eta = 1/d`` by default.
The second term is the natural gradient of the expected penalty ``eps * sum_i c_i theta_i``
(eq. (5)); ``eps0 < 0`` rewards more active bits. With a :class:`Categorical` distribution the
same update runs on one-hot samples (the penalty's natural gradient is
``theta (c - <theta, c>)``).

Sources: Shirakawa, Iwata, Akimoto, AAAI 2018 (dynamic structure optimisation, eta = 1/d,
lambda = 2, theta0 = 0.5); Saito, Shirakawa et al., ICANN 2019, eqs. (4)-(7) and Algorithm 1.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from archopt.errors import ArchoptError
from archopt.structure.asktell import DECIDED_TOL, StructureOptimizer, decided_fraction
from archopt.structure.distributions import StructureDistribution
from archopt.structure.utility import ranking_utility

__all__ = ["DECIDED_TOL", "SNG", "StructureOptimizer", "decided_fraction", "steps_to_decide"]


def steps_to_decide(eta: float, eps: float, margin: float, tol: float = DECIDED_TOL) -> float:
    """SNG iterations for the penalty alone to carry a bit from ``theta = 0.5`` to within
    ``tol`` of the lower bound ``margin`` (a useless bit switched off).

    The penalty moves ``theta`` by ``-eta eps theta (1 - theta)`` per iteration, i.e. its logit
    by ``-eta eps``, so the rule is ``T = ln((1 - margin - tol) / (margin + tol)) / (eta eps)``
    (``inf`` for ``eps <= 0``). With the paper's ``eta = 1/d``, ``d = 2352``, ``eps = 2^-7``:
    ``T ~ 376 d``, the paper's ~400 iterations per bit.

    The ranking utility adds a random walk of ``+-eta / 2`` whenever the ``lambda = 2`` samples
    differ in the bit (probability ``2 theta (1 - theta)``); balanced against the penalty
    (Fokker-Planck) a useless bit settles to a density ``~ exp(-4 eps theta / eta) /
    (theta (1 - theta))`` above the bound: scale ``eta / (4 eps)``. The bit only ends decided
    when that scale is well below ``tol`` (``1 / (4 d eps)`` for ``eta = 1/d``: 0.014 at the
    paper's d = 2352 and eps = 2^-7, 0.33 at d = 96, where it never settles).
    """
    if eps <= 0 or eta <= 0:
        return math.inf
    return math.log((1.0 - margin - tol) / (margin + tol)) / (eta * eps)


class SNG(StructureOptimizer):
    """Stochastic natural gradient with a fixed step ``eta`` and a complexity penalty.

    Args:
        distribution, penalty, costs, lam, seed: see :class:`StructureOptimizer`.
        eta: the theta learning rate; default ``1 / dim`` (``1/d`` for Bernoulli, the paper).

    Example::

        opt = SNG(Bernoulli(d), penalty=2**-7)
        masks = opt.ask()                  # (2, d) bool
        opt.tell(masks, [loss1, loss2])    # one minibatch's losses
    """

    kind = "sng"

    def __init__(self, distribution: StructureDistribution | int, *, penalty: float = 0.0,
                 costs: Sequence[float] | np.ndarray | None = None, lam: int = 2,
                 eta: float | None = None, seed: int = 0) -> None:
        super().__init__(distribution, penalty=penalty, costs=costs, lam=lam, seed=seed)
        self.eta = 1.0 / self.dist.dim if eta is None else float(eta)
        if not self.eta > 0:
            raise ArchoptError(f"eta (theta learning rate) must be > 0, got {eta}")

    def __repr__(self) -> str:
        return f"SNG({self.dist!r}, eps0={self.penalty:g}, eta={self.eta:.3g}, lam={self.lam})"

    def natural_gradient(self, masks: Any, losses: Any) -> np.ndarray:
        """The update direction ``(1/lambda) sum u_i (M_i - theta) - eps c theta (1 - theta)``."""
        m, f = self._check(masks, losses)
        u = ranking_utility(f)
        return self.loss_natural_gradient(m, u) - self.penalty_natural_gradient()

    def tell(self, masks: Any, losses: Any) -> None:
        """One step of eq. (7), then the range restriction.

        Raises: ArchoptError for masks / losses of the wrong shape or count.
        """
        g = self.natural_gradient(masks, losses)
        self.dist.theta += self.eta * g
        self.dist.restrict()
        self.steps += 1

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "eta": self.eta}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.eta = float(state.get("eta", self.eta))
