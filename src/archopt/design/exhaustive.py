"""Exhaustive enumeration of a (small) Dense Optimizer grid: the ground truth for
branch-and-bound.

Every design of the grid is scored with the vectorised scorer
(:meth:`archopt.design.dense.DenseLayout.evaluate`) in chunks; the best feasible one is
returned. The grid size is ``|stem| * (|G| |L| |K|)^S``; grids over ``max_designs`` are refused
with an error rather than run for hours.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from archopt.errors import InfeasibleBudget, InvalidSpec

from .budgets import Budgets
from .dense import DenseGrid, DenseLayout

__all__ = ["DEFAULT_MAX_DESIGNS", "ExhaustiveResult", "enumerate_grid", "exhaustive_dense"]

#: Largest grid :func:`exhaustive_dense` accepts by default (about 10 s on one core).
DEFAULT_MAX_DESIGNS = 10_000_000


@dataclass
class ExhaustiveResult:
    """The best feasible design, its objective, and how many designs were scored / feasible."""

    genotype: np.ndarray
    objective: float
    designs: int
    feasible: int
    seconds: float


def enumerate_grid(grid: DenseGrid, start: int, stop: int) -> np.ndarray:
    """Genotype rows ``[c0, g.., L.., k..]`` of designs ``start..stop-1`` of the grid
    (mixed-radix order: stem option slowest, then stage 1, ..., stage S fastest)."""
    g, L, k = grid.stage_choices()
    nq, s = len(g), grid.stages
    idx = np.arange(start, stop, dtype=np.int64)
    qs = np.empty((len(idx), s), dtype=np.int64)
    rest = idx
    for i in reversed(range(s)):
        rest, qs[:, i] = np.divmod(rest, nq)
    stems = grid.stem_choices()
    c0 = np.asarray(stems, dtype=np.int64)[rest] if stems else 2 * g[qs[:, 0]]
    return np.concatenate([c0[:, None], g[qs], L[qs], k[qs]], axis=1)


def exhaustive_dense(layout: DenseLayout, grid: DenseGrid, budgets: Budgets, *,
                     max_designs: int = DEFAULT_MAX_DESIGNS, chunk: int = 1 << 16,
                     on_chunk: Callable[[int, int], None] | None = None) -> ExhaustiveResult:
    """Score every design of ``grid``; return the best one within ``budgets``.

    Raises: InvalidSpec when the grid holds more than ``max_designs`` designs;
        InfeasibleBudget when no design meets the budgets.
    """
    if layout.stages != grid.stages:
        raise InvalidSpec(f"layout has {layout.stages} stages, grid {grid.stages}")
    total = grid.size()
    if total > max_designs:
        raise InvalidSpec(
            f"the grid holds {total:,} designs, over the exhaustive solver's limit of "
            f"{max_designs:,}; use --solver bnb (exact, prunes) or --solver evolution, or "
            "shrink the grid")
    t0 = time.perf_counter()
    best, best_row, feasible = -np.inf, None, 0
    for start in range(0, total, chunk):
        rows = enumerate_grid(grid, start, min(total, start + chunk))
        ev = layout.evaluate(rows)
        ok = budgets.feasible(ev.macs, ev.params, ev.layers, ev.effectiveness)
        feasible += int(ok.sum())
        if ok.any():
            obj = np.where(ok, ev.objective, -np.inf)
            i = int(np.argmax(obj))
            if obj[i] > best:
                best, best_row = float(obj[i]), rows[i].copy()
        if on_chunk is not None:
            on_chunk(min(total, start + chunk), total)
    if best_row is None:
        raise InfeasibleBudget(f"none of the {total:,} designs of the grid meets the budgets "
                               f"{budgets.as_dict()}", budget=None)
    return ExhaustiveResult(best_row, best, total, feasible, time.perf_counter() - t0)
