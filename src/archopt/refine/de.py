"""Differential Evolution, DE/rand/1/bin with deferred selection, as an ask/tell optimiser.

One generation: from the current population X (NP, D') build NP trials

    mutant   v_i = x_r0 + F (x_r1 - x_r2),    r0, r1, r2 distinct and != i
    trial    u_ij = v_ij if rand_ij < CR or j == j_rand(i) else x_ij     (binomial crossover)

evaluate all of them (the caller does: ``ask`` -> objectives -> ``tell``), then each trial
replaces its parent when its objective is strictly lower (deferred, i.e. generational, updating:
every trial of a generation is built from the same population). No bounds are applied.

The first ``ask`` returns the initial population: each gene uniform in ``[low_j, high_j]`` (the
range of the original parameters in block j), optionally with ``x0`` (the block means) as
member 0 -- with it the best objective can never be worse than that of the blocked model on the
same data.

Objectives are minimised. Randomness comes from a private CPU generator seeded by ``seed``, so
the same seed gives the same trials on every device; ``state_dict`` captures it for resume.

Sources: Storn & Price, "Differential Evolution -- A Simple and Efficient Heuristic for Global
Optimization over Continuous Spaces", J. Global Optim. 11, 1997 (DE/rand/1/bin); arXiv 2408.07194
section 3.2 (DE on the block vector, F = 0.5, CR = 0.9, NP = 100); ../specs/hbde.md section 2.
"""

from __future__ import annotations

from typing import Any

import torch

from archopt.errors import ArchoptError

__all__ = ["DifferentialEvolution"]


class DifferentialEvolution:
    """DE/rand/1/bin over a D'-dimensional vector, ask/tell, deferred selection.

    Args:
        low, high: (D',) the range each initial gene is drawn from (``low <= high``).
        population: NP, the population size (>= 4: a trial needs three others).
        F: differential weight (scale factor), > 0 (typically 0.4..1).
        CR: crossover rate in [0, 1].
        seed: seed of the private generator.
        x0: (D',) optional member 0 of the initial population (e.g. the block means).
        dtype: dtype of the population (default: ``x0``'s, else float32).

    Attributes:
        population: (NP, D') current parents (None before the first ``tell``).
        fitness: (NP,) float64 objectives of the parents.
        generation: completed generations (the initial population is generation 0).
        evaluations: function evaluations told so far (FE).

    Raises: ArchoptError for an invalid setting.
    """

    def __init__(self, low: torch.Tensor, high: torch.Tensor, *, population: int = 100,
                 F: float = 0.5, CR: float = 0.9, seed: int = 0,
                 x0: torch.Tensor | None = None, dtype: torch.dtype | None = None) -> None:
        low = torch.as_tensor(low, dtype=torch.float64).cpu()
        high = torch.as_tensor(high, dtype=torch.float64).cpu()
        if low.dim() != 1 or low.shape != high.shape or low.numel() == 0:
            raise ArchoptError("low and high must be 1-D tensors of the same non-zero length")
        if not (torch.isfinite(low).all() and torch.isfinite(high).all()) or bool(
                (low > high).any()):
            raise ArchoptError("the initial ranges must be finite with low <= high")
        if isinstance(population, bool) or not isinstance(population, int) or population < 4:
            raise ArchoptError(f"population (NP) must be an integer >= 4 (DE/rand/1 needs three "
                               f"other members per trial), got {population!r}")
        if not F > 0:
            raise ArchoptError(f"F (differential weight) must be > 0, got {F}")
        if not 0.0 <= CR <= 1.0:
            raise ArchoptError(f"CR (crossover rate) must be in [0, 1], got {CR}")
        if x0 is not None:
            x0 = torch.as_tensor(x0).detach().cpu()
            if x0.shape != low.shape:
                raise ArchoptError(f"x0 has shape {tuple(x0.shape)}, expected {tuple(low.shape)}")
        self.low, self.high = low, high
        self.NP = population
        self.F, self.CR = float(F), float(CR)
        self.seed = int(seed)
        self.dtype = dtype or (x0.dtype if x0 is not None else torch.float32)
        self.x0 = None if x0 is None else x0.to(self.dtype)
        self._g = torch.Generator().manual_seed(self.seed)
        self.population: torch.Tensor | None = None
        self.fitness: torch.Tensor | None = None
        self.generation = 0
        self.evaluations = 0
        self._pending: torch.Tensor | None = None

    @property
    def dimensions(self) -> int:
        return int(self.low.numel())

    # -- ask / tell ----------------------------------------------------------------------------
    def initial_population(self) -> torch.Tensor:
        """(NP, D'): genes uniform in [low, high]; member 0 is ``x0`` when given."""
        u = torch.rand(self.NP, self.dimensions, generator=self._g, dtype=torch.float64)
        pop = (self.low + u * (self.high - self.low)).to(self.dtype)
        if self.x0 is not None:
            pop[0] = self.x0
        return pop

    def trials(self) -> torch.Tensor:
        """(NP, D') DE/rand/1/bin trials from the current population (no state change but RNG)."""
        if self.population is None:
            raise ArchoptError("no population yet: ask() and tell() the initial population first")
        x = self.population
        n, d = x.shape
        keys = torch.rand(n, n, generator=self._g)
        keys.fill_diagonal_(2.0)  # never pick i itself
        r = keys.argsort(dim=1)[:, :3]
        mutant = x[r[:, 0]] + self.F * (x[r[:, 1]] - x[r[:, 2]])
        cross = torch.rand(n, d, generator=self._g) < self.CR
        j_rand = torch.randint(d, (n,), generator=self._g)
        cross[torch.arange(n), j_rand] = True
        return torch.where(cross, mutant, x)

    def ask(self) -> torch.Tensor:
        """The next NP candidates to evaluate: (NP, D') on CPU (a copy).

        Raises: ArchoptError when the previous ``ask`` has not been told.
        """
        if self._pending is not None:
            raise ArchoptError("tell() the objectives of the previous ask() first")
        self._pending = self.initial_population() if self.population is None else self.trials()
        return self._pending.clone()

    def _as_fitness(self, fitness: Any) -> torch.Tensor:
        f = torch.as_tensor(fitness, dtype=torch.float64).detach().cpu().reshape(-1)
        if f.numel() != self.NP:
            raise ArchoptError(f"expected {self.NP} objective values, got {f.numel()}")
        return torch.nan_to_num(f, nan=float("inf"))  # a failed evaluation never wins

    def tell(self, fitness: Any) -> torch.Tensor:
        """Objectives (NP,) of the last ``ask``; returns the (NP,) bool mask of replaced parents.

        NaN counts as +inf. A trial replaces its parent only when strictly better.
        """
        if self._pending is None:
            raise ArchoptError("tell() without a pending ask()")
        f = self._as_fitness(fitness)
        trials, self._pending = self._pending, None
        self.evaluations += self.NP
        if self.population is None:
            self.population, self.fitness = trials, f
            return torch.ones(self.NP, dtype=torch.bool)
        assert self.fitness is not None
        better = f < self.fitness
        self.population = torch.where(better[:, None], trials, self.population)
        self.fitness = torch.where(better, f, self.fitness)
        self.generation += 1
        return better

    def rescore(self, fitness: Any) -> None:
        """Replace the parents' objectives (e.g. re-scored on a new super-batch); counts NP FE."""
        if self.population is None:
            raise ArchoptError("no population to re-score yet")
        self.fitness = self._as_fitness(fitness)
        self.evaluations += self.NP

    # -- results -------------------------------------------------------------------------------
    @property
    def best_index(self) -> int:
        if self.fitness is None:
            raise ArchoptError("no objectives told yet")
        return int(torch.argmin(self.fitness))

    @property
    def best(self) -> torch.Tensor:
        """(D',) the parent with the lowest objective."""
        assert self.population is not None
        return self.population[self.best_index].clone()

    @property
    def best_fitness(self) -> float:
        assert self.fitness is not None
        return float(self.fitness.min())

    # -- resume ----------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue bit-for-bit (tensors + plain values)."""
        if self._pending is not None:
            raise ArchoptError("cannot save DE state between ask() and tell()")
        return {"population": self.population, "fitness": self.fitness,
                "generation": self.generation, "evaluations": self.evaluations,
                "rng": self._g.get_state(), "NP": self.NP, "F": self.F, "CR": self.CR,
                "seed": self.seed, "dimensions": self.dimensions}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a ``state_dict`` taken from an optimiser with the same settings.

        Raises: ArchoptError when NP, F, CR, seed or D' differ.
        """
        for key, mine in (("NP", self.NP), ("F", self.F), ("CR", self.CR), ("seed", self.seed),
                          ("dimensions", self.dimensions)):
            if state.get(key) != mine:
                raise ArchoptError(f"saved DE state has {key}={state.get(key)!r}, this run has "
                                   f"{mine!r}; resume with the same settings")
        self.population = state["population"]
        self.fitness = state["fitness"]
        self.generation = int(state["generation"])
        self.evaluations = int(state["evaluations"])
        self._g.set_state(state["rng"])
        self._pending = None
