"""Mutation-only evolutionary search with truncation selection, as an ask/tell optimiser.

The algorithm is DeepMAD's / TinyNAS's (Shen et al., CVPR 2023, section 4; specs/deepmad.md
section 7): start from a seed structure, repeatedly pick a random parent from the population,
apply ``n_mutations`` mutations, reject children that break a budget, insert the rest, and when
the population exceeds its size sort by objective, drop duplicates and keep the best.

The optimiser is generic over a *problem*: anything with

- ``mutate(parents, rng, n_mutations) -> children`` on integer genotype rows ``(N, D)``;
- ``evaluate(genotypes) -> obj`` with array attributes ``objective`` and ``feasible``.

:class:`Evolution` holds the population and only does selection; :meth:`Evolution.ask` returns a
batch of children to score, :meth:`Evolution.tell` takes their objectives back, so any caller (a
different loop, another solver, a parallel evaluator) can drive it. :func:`run_evolution` is the
standard loop.

Batching: the toolbox is a steady-state algorithm run by 64 MPI workers that each keep a copy of
the population and synchronise every 256 candidates; here one process asks for ``batch``
children at a time (default 256: the same synchronisation interval, one worker), scores them as
arrays and inserts them together. ``batch=1`` is the textbook steady-state form.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from archopt.errors import InvalidSpec

__all__ = ["Evolution", "EvolutionResult", "Problem", "run_evolution"]


class Problem(Protocol):
    """What :class:`Evolution` needs from a search space (see module docstring)."""

    def mutate(self, parents: np.ndarray, rng: np.random.Generator,
               n_mutations: int) -> np.ndarray: ...

    def evaluate(self, genotypes: np.ndarray) -> Any: ...


class Evolution:
    """Population state of the evolutionary search, driven by :meth:`ask` / :meth:`tell`.

    Args:
        problem: supplies ``mutate`` (see :class:`Problem`).
        seeds: ``(k, D)`` integer genotypes of the initial population (every one feasible).
        seed_objectives: their objectives, shape ``(k,)``.
        population: population size after truncation (DeepMAD: 256).
        n_mutations: mutations per child (DeepMAD: 2).
        seed: seed of the private ``numpy.random.Generator`` (PCG64).

    Raises: InvalidSpec for an empty seed set or non-positive sizes.
    """

    def __init__(self, problem: Problem, seeds: np.ndarray, seed_objectives: np.ndarray, *,
                 population: int = 256, n_mutations: int = 2, seed: int = 0) -> None:
        seeds = np.atleast_2d(np.asarray(seeds, dtype=np.int64))
        if seeds.shape[0] == 0:
            raise InvalidSpec("evolution needs at least one seed structure")
        if population < 1 or n_mutations < 1:
            raise InvalidSpec(f"population and mutations must be >= 1, got {population}, "
                              f"{n_mutations}")
        self.problem = problem
        self.size = int(population)
        self.n_mutations = int(n_mutations)
        self.rng = np.random.default_rng(seed)
        self.genotypes = seeds
        self.objectives = np.asarray(seed_objectives, dtype=float).reshape(-1)
        self.asked = 0
        self.feasible = 0
        self._truncate()

    def ask(self, n: int) -> np.ndarray:
        """``n`` children: a uniformly drawn parent each, ``n_mutations`` mutations apiece."""
        parents = self.genotypes[self.rng.integers(0, len(self.genotypes), n)]
        children = self.problem.mutate(parents, self.rng, self.n_mutations)
        self.asked += n
        return children

    def tell(self, children: np.ndarray, objective: np.ndarray, feasible: np.ndarray) -> None:
        """Insert the feasible children, then sort, de-duplicate and truncate."""
        feasible = np.asarray(feasible, dtype=bool)
        self.feasible += int(feasible.sum())
        if feasible.any():
            self.genotypes = np.concatenate([self.genotypes, children[feasible]])
            self.objectives = np.concatenate([self.objectives,
                                              np.asarray(objective, dtype=float)[feasible]])
            self._truncate()

    def _truncate(self) -> None:
        order = np.argsort(-self.objectives, kind="stable")
        g, f = self.genotypes[order], self.objectives[order]
        _, first = np.unique(g, axis=0, return_index=True)
        keep = np.sort(first)[: self.size]
        self.genotypes, self.objectives = g[keep], f[keep]

    @property
    def best(self) -> tuple[np.ndarray, float]:
        """The best genotype and its objective."""
        return self.genotypes[0], float(self.objectives[0])


@dataclass
class EvolutionResult:
    """Outcome of :func:`run_evolution`.

    Attributes:
        genotypes, objectives: the final population, best first (distinct rows).
        candidates: children generated (feasible or not); feasible: those within budget.
        seconds: wall time of the loop.
        history: rows ``{"candidates", "best_objective", "feasible"}`` after each batch.
    """

    genotypes: np.ndarray
    objectives: np.ndarray
    candidates: int
    feasible: int
    seconds: float
    history: list[dict[str, float]] = field(default_factory=list)


def run_evolution(problem: Problem, seeds: np.ndarray, seed_objectives: np.ndarray, *,
                  candidates: int = 500_000, population: int = 256, n_mutations: int = 2,
                  batch: int = 256, seed: int = 0, time_limit: float | None = None,
                  on_batch: Callable[[Evolution, int], None] | None = None) -> EvolutionResult:
    """The standard loop: ask a batch, score it with ``problem.evaluate``, tell, repeat.

    Args:
        candidates: how many children to generate in all (DeepMAD: 500,000).
        batch: children per ask/tell round (see module docstring).
        time_limit: stop early after this many seconds (None: run all candidates).
        on_batch: called after every round with the optimiser and the batch size (progress).

    Returns: :class:`EvolutionResult`. Deterministic for a given ``seed``.
    """
    if candidates < 0 or batch < 1:
        raise InvalidSpec(f"candidates must be >= 0 and batch >= 1, got {candidates}, {batch}")
    evo = Evolution(problem, seeds, seed_objectives, population=population,
                    n_mutations=n_mutations, seed=seed)
    history: list[dict[str, float]] = []
    t0 = time.perf_counter()
    while evo.asked < candidates:
        n = min(batch, candidates - evo.asked)
        children = evo.ask(n)
        ev = problem.evaluate(children)
        evo.tell(children, ev.objective, ev.feasible)
        history.append({"candidates": evo.asked, "best_objective": evo.best[1],
                        "feasible": evo.feasible})
        if on_batch is not None:
            on_batch(evo, n)
        if time_limit is not None and time.perf_counter() - t0 > time_limit:
            break
    return EvolutionResult(evo.genotypes, evo.objectives, evo.asked, evo.feasible,
                           time.perf_counter() - t0, history)
