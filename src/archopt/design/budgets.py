"""Design budgets: MACs, parameters, depth (layers) and effectiveness (rho_0).

A design that breaks any budget is never returned by a solver. Budgets count what the cost model
of :mod:`archopt.spaces` counts: MACs of convolutions and linear layers for one input image,
parameters = conv / linear weights (+ biases) + 2 per BatchNorm channel, and the classifier head
only when the spec has one (``num_classes > 0``; ``num_classes = 0`` is the headless backbone
the DeepMAD budgets were set for). Note: the DeepMAD paper quotes R18 at "11.09 M" backbone
parameters, which is the conv-weights-only count; with BN affine parameters (our count) the same
network has 11,153,088.

Source: DeepMAD (Shen et al., CVPR 2023), section 4 ("mathematical program"); TinyNAS budgets
``flops``, ``model_size``, ``layers``, ``efficient_score``.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from archopt.errors import InfeasibleBudget, InvalidSpec

__all__ = ["BUDGET_NAMES", "Budgets", "parse_amount"]

#: Budget names in the order they are checked and reported.
BUDGET_NAMES = ("macs", "params", "layers", "effectiveness")

_SUFFIX = {"": 1.0, "K": 1e3, "M": 1e6, "G": 1e9, "T": 1e12}


def parse_amount(text: str | float | int | None, what: str = "budget") -> float | None:
    """Parse ``"1.82e9"``, ``"1.82G"``, ``"11.69M"``, ``"800k"`` or a number into a float.

    Raises: InvalidSpec for anything else, or a value that is not finite and positive.
    """
    if text is None:
        return None
    if isinstance(text, (int, float)):
        value = float(text)
    else:
        m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*([kKmMgGtT]?)\s*", text)
        if not m:
            raise InvalidSpec(f"{what}: cannot read {text!r} (expected a number such as 1.82e9, "
                              "1.82G, 11.69M or 800k)")
        value = float(m.group(1)) * _SUFFIX[m.group(2).upper()]
    if not math.isfinite(value) or value <= 0:
        raise InvalidSpec(f"{what} must be a positive number, got {text!r}")
    return value


@dataclass(frozen=True)
class Budgets:
    """Upper bounds a design must meet; ``None`` means unconstrained.

    Attributes:
        macs: multiply-accumulates for one input at the design resolution.
        params: trainable parameters (BN affine included; head only when ``num_classes > 0``).
        layers: main-path weight layers (stem, 3 per bottleneck / inverted-bottleneck block, ...).
        rho: the effectiveness bound rho_0 (DeepMAD eq. "rho <= rho_0"; 0.3 for the ResNet-like
            space, 0.5 for the MobileNet-like space in the paper).
    """

    macs: float | None = None
    params: float | None = None
    layers: float | None = None
    rho: float | None = None

    def __post_init__(self) -> None:
        for name, v in asdict(self).items():
            if v is not None and (not math.isfinite(v) or v <= 0):
                raise InvalidSpec(f"budget {name} must be a positive number, got {v!r}")

    def as_dict(self) -> dict[str, float | None]:
        """JSON-ready: ``{"macs": ..., "params": ..., "layers": ..., "rho": ...}``."""
        return asdict(self)

    def limits(self) -> dict[str, float | None]:
        """Limits keyed by the metric names of :data:`BUDGET_NAMES`."""
        return {"macs": self.macs, "params": self.params, "layers": self.layers,
                "effectiveness": self.rho}

    def feasible(self, macs: Any, params: Any, layers: Any, effectiveness: Any) -> np.ndarray:
        """Boolean mask: which candidates meet every budget (arrays broadcast together)."""
        ok = np.ones(np.broadcast(macs, params, layers, effectiveness).shape, dtype=bool)
        for value, limit in zip((macs, params, layers, effectiveness),
                                self.limits().values(), strict=True):
            if limit is not None:
                ok &= np.asarray(value) <= limit
        return ok

    def violations(self, metrics: dict[str, float]) -> list[tuple[str, float, float]]:
        """``(name, limit, value)`` for every budget ``metrics`` breaks (in BUDGET_NAMES order)."""
        out = []
        for name, limit in self.limits().items():
            if limit is not None and metrics[name] > limit:
                out.append((name, float(limit), float(metrics[name])))
        return out

    def require(self, metrics: dict[str, float], what: str, *, hint: str = "") -> None:
        """Raise :class:`InfeasibleBudget` naming the first budget ``metrics`` breaks.

        ``needed`` is the value the structure has, i.e. the smallest budget it would fit.
        """
        bad = self.violations(metrics)
        if not bad:
            return
        name, limit, value = bad[0]
        flag = {"macs": "--budget-macs", "params": "--budget-params",
                "layers": "--budget-layers", "effectiveness": "--rho"}[name]
        others = "".join(f"; also {n} {v:.6g} > {lim:.6g}" for n, lim, v in bad[1:])
        raise InfeasibleBudget(
            f"{what} breaks the {name} budget: {value:.6g} > {limit:.6g}{others}. "
            f"The smallest feasible {name} budget for it is {value:.6g} ({flag} {value:.6g})"
            + (f"; {hint}" if hint else ""),
            budget=name, limit=limit, needed=value)
