"""``design()``: budgets in, an architecture spec out -- the library entry point of
``archopt design``.

A :class:`DesignProblem` binds a space's vectorised scorer (:mod:`~archopt.design.cnn`,
:mod:`~archopt.design.mlp`, :mod:`~archopt.design.dense`) to the budgets; solvers are looked up
by name in :data:`SOLVERS` (``evolution`` for every space; ``bnb`` and ``exhaustive`` for
``densenet``), and :func:`register_solver` adds new ones. Every solver returns a
:class:`DesignResult`, which the CLI writes as ``arch.json`` + ``design.json``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from archopt.errors import InvalidSpec, UnknownName
from archopt.runtime.progress import Progress
from archopt.spaces import load_spec
from archopt.spaces.base import ArchSpec

from .bnb import DenseBnB
from .budgets import Budgets
from .cnn import CNNLayout
from .dense import DenseGrid, DenseLayout
from .evolution import run_evolution
from .exhaustive import DEFAULT_MAX_DESIGNS, exhaustive_dense
from .mlp import MLPLayout, mlp_seed
from .scores import DEFAULT_DENSE_BETA, DEFAULT_DEPTH_PENALTY
from .seeds import default_seed, fit_seed

__all__ = ["SOLVERS", "DesignOptions", "DesignProblem", "DesignResult", "design",
           "make_problem", "register_solver"]

DESIGN_SPACES = ("resnet", "mbv2", "mlp", "densenet")


@dataclass
class DesignOptions:
    """Solver settings (each solver reads the ones it uses).

    Attributes:
        candidates: children the evolutionary search generates (DeepMAD: 500,000).
        population, mutations, batch: evolution's population size (256), mutations per child
            (2) and children per ask/tell round (256).
        seed: random seed (evolution); the same seed gives the same design.
        top_k: how many distinct best designs to report.
        time_limit: seconds after which a solver stops (evolution, bnb); None = no limit.
        node_limit: bnb's node limit (None = none).
        max_designs: the exhaustive solver's refusal threshold.
    """

    candidates: int = 500_000
    population: int = 256
    mutations: int = 2
    batch: int = 256
    seed: int = 0
    top_k: int = 10
    time_limit: float | None = None
    node_limit: int | None = None
    max_designs: int = DEFAULT_MAX_DESIGNS


@dataclass
class DesignResult:
    """What a solver found.

    Attributes:
        spec: the best design (feasible for every budget).
        metrics: its objective, entropy, effectiveness, stage entropies, MACs, params, layers
            (+ ``power_law`` for densenet).
        top: the best distinct designs, best first: ``{"rank", "spec", **metrics}``.
        history: convergence trace rows ``{"candidates", "best_objective", ...}``.
        stats: solver-specific figures (bnb: nodes explored / pruned, gap).
    """

    space: str
    solver: str
    spec: ArchSpec
    metrics: dict[str, Any]
    budgets: Budgets
    seconds: float
    candidates: int
    top: list[dict[str, Any]] = field(default_factory=list)
    history: list[dict[str, Any]] = field(default_factory=list)
    stats: dict[str, Any] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def candidates_per_second(self) -> float:
        return self.candidates / self.seconds if self.seconds > 0 else float("inf")

    def to_dict(self, history_points: int = 500) -> dict[str, Any]:
        """``design.json``: the figures, the budgets, timing, the top-k and a thinned trace."""
        hist = self.history
        if len(hist) > history_points:
            idx = np.unique(np.linspace(0, len(hist) - 1, history_points).round().astype(int))
            hist = [hist[i] for i in idx]
        return {
            "space": self.space, "solver": self.solver, **self.metrics,
            "budgets": self.budgets.as_dict(), "seconds": self.seconds,
            "candidates": self.candidates, "candidates_per_second": self.candidates_per_second,
            "stats": self.stats, "settings": self.settings, "spec": self.spec.to_dict(),
            "top_k": self.top, "history": hist,
        }


class DesignProblem:
    """A space's scorer bound to budgets: ``evaluate`` marks ``feasible``; ``mutate`` and
    ``decode`` come from the layout (plus the grid for densenet)."""

    def __init__(self, space: str, layout: Any, budgets: Budgets, seed_row: np.ndarray,
                 grid: DenseGrid | None = None) -> None:
        self.space, self.layout, self.budgets, self.grid = space, layout, budgets, grid
        self.seed_row = np.asarray(seed_row, dtype=np.int64)

    def evaluate(self, g: np.ndarray) -> Any:
        ev = self.layout.evaluate(g)
        ev.feasible = self.budgets.feasible(ev.macs, ev.params, ev.layers, ev.effectiveness)
        return ev

    def mutate(self, parents: np.ndarray, rng: np.random.Generator,
               n_mutations: int) -> np.ndarray:
        if self.grid is not None:
            return _dense_mutate(self.layout, self.grid, parents, rng, n_mutations)
        return self.layout.mutate(parents, rng, n_mutations)

    def decode(self, row: np.ndarray, name: str | None = None) -> ArchSpec:
        return self.layout.decode(row, name=name)

    def metrics(self, rows: np.ndarray) -> list[dict[str, Any]]:
        ev = self.evaluate(np.atleast_2d(rows))
        return [ev.metrics(i) for i in range(len(ev.objective))]


def _dense_mutate(layout: DenseLayout, grid: DenseGrid, parents: np.ndarray,
                  rng: np.random.Generator, n_mutations: int) -> np.ndarray:
    """Evolution over the dense grid: a stage and one of g / L / k (or the stem width, when it is
    searched) moves 1 or 2 grid steps (k: to another kernel); the stem follows 2 g_1 when tied."""
    g = np.array(parents, dtype=np.int64, copy=True)
    s = layout.stages
    axes = [np.asarray(grid.growth), np.asarray(grid.layers), np.asarray(grid.kernels)]
    n = len(g)
    for _ in range(n_mutations):
        stage = rng.integers(0, s, n)
        attr = rng.integers(0, 4 if grid.stem else 3, n)
        step = rng.choice(np.array([-2, -1, 1, 2]), n)
        for a, vals in enumerate(axes):
            rows = np.nonzero(attr == a)[0]
            if not rows.size:
                continue
            col = 1 + a * s + stage[rows]
            pos = np.searchsorted(vals, g[rows, col])
            if a == 2:  # another kernel
                hop = 1 + (np.abs(step[rows]) - 1) % max(1, len(vals) - 1)
                new = (pos + hop) % len(vals)
            else:
                new = np.clip(pos + step[rows], 0, len(vals) - 1)
            g[rows, col] = vals[new]
        if grid.stem:
            stems = np.asarray(grid.stem)
            rows = np.nonzero(attr == 3)[0]
            pos = np.searchsorted(stems, g[rows, 0])
            g[rows, 0] = stems[np.clip(pos + step[rows], 0, len(stems) - 1)]
    if not grid.stem:
        g[:, 0] = 2 * g[:, 1]
    return g


# -- problems ------------------------------------------------------------------------------
def make_problem(space: str, budgets: Budgets, *, resolution: int | None = None,
                 in_channels: int = 3, num_classes: int | None = None,
                 init: ArchSpec | str | None = None, alpha: Sequence[float] | None = None,
                 beta: float | None = None, grid: DenseGrid | None = None) -> DesignProblem:
    """Build the :class:`DesignProblem` for ``space`` (see :func:`design` for the arguments).

    Raises: UnknownName (space), InvalidSpec (inputs), InfeasibleBudget (seed over budget).
    """
    if space not in DESIGN_SPACES:
        raise UnknownName(f"unknown design space {space!r} (known: {', '.join(DESIGN_SPACES)})")
    seed_spec: ArchSpec | None = None
    if init is not None:
        seed_spec = load_spec(init) if not isinstance(init, ArchSpec) else init
        if seed_spec.space != space:
            raise InvalidSpec(f"--init spec is for space {seed_spec.space!r}, not {space!r}")
        if num_classes is not None and seed_spec.num_classes != num_classes:
            seed_spec = seed_spec.replace(num_classes=num_classes)
        if resolution is None:
            resolution = seed_spec.resolution
    if space == "mlp":
        return _mlp_problem(budgets, seed_spec, in_channels, resolution, num_classes)
    if resolution is None:
        raise InvalidSpec(f"the {space} space needs --resolution (the input side length)")
    if space == "densenet":
        return _dense_problem(budgets, seed_spec, resolution, in_channels, num_classes, alpha,
                              beta, grid)
    k = 0 if num_classes is None else num_classes
    pen = DEFAULT_DEPTH_PENALTY if beta is None else float(beta)
    if seed_spec is None:
        base = default_seed(space, resolution, in_channels, k)
        layout = CNNLayout.from_spec(base, alpha=alpha, depth_penalty=pen)
        layout, row = fit_seed(layout, layout.encode(base), budgets)
    else:
        layout = CNNLayout.from_spec(seed_spec, resolution, alpha=alpha, depth_penalty=pen)
        row = layout.encode(seed_spec)
        _require_seed(layout, row, budgets)
    return DesignProblem(space, layout, budgets, row)


def _require_seed(layout: Any, row: np.ndarray, budgets: Budgets) -> None:
    ev = layout.evaluate(row[None, :])
    budgets.require({"macs": float(ev.macs[0]), "params": float(ev.params[0]),
                     "layers": float(ev.layers[0]),
                     "effectiveness": float(ev.effectiveness[0])},
                    "the seed structure (--init)",
                    hint="start from a smaller seed or relax the budgets")


def _mlp_problem(budgets: Budgets, seed_spec: ArchSpec | None, in_channels: int,
                 resolution: int | None, num_classes: int | None) -> DesignProblem:
    if seed_spec is None:
        feats = in_channels * (resolution or 1) ** 2
        seed_spec = mlp_seed(feats, 10 if num_classes is None else num_classes, budgets.rho)
        layout = MLPLayout.from_spec(seed_spec)
        row = layout.encode(seed_spec)
        # shrink the single hidden layer until the cost budgets hold (rho needs it wide)
        while True:
            ev = layout.evaluate(row[None, :])
            over = not budgets.feasible(ev.macs, ev.params, ev.layers, 0.0)[0]
            if not over or row[1] <= 8:
                break
            row[1] = max(8, int(row[1]) // 2 // 8 * 8)
    else:
        layout = MLPLayout.from_spec(seed_spec)
        row = layout.encode(seed_spec)
    _require_seed(layout, row, budgets)
    return DesignProblem("mlp", layout, budgets, row)


def _dense_problem(budgets: Budgets, seed_spec: ArchSpec | None, resolution: int,
                   in_channels: int, num_classes: int | None, alpha: Sequence[float] | None,
                   beta: float | None, grid: DenseGrid | None) -> DesignProblem:
    b = DEFAULT_DENSE_BETA if beta is None else float(beta)
    grid = grid or DenseGrid()
    if seed_spec is not None:
        layout = DenseLayout.from_spec(seed_spec, resolution, alpha=alpha, beta=b)
        if layout.stages != grid.stages:
            grid = DenseGrid(grid.growth, grid.layers, grid.kernels, grid.stem, layout.stages)
    else:
        layout = DenseLayout(stages=grid.stages, in_channels=in_channels,
                             num_classes=10 if num_classes is None else num_classes,
                             resolution=resolution, alpha=None if alpha is None else tuple(alpha),
                             beta=b)
    s = grid.stages
    c0 = min(grid.stem) if grid.stem else 2 * min(grid.growth)
    row = np.asarray([c0, *[min(grid.growth)] * s, *[min(grid.layers)] * s,
                      *[min(grid.kernels)] * s], dtype=np.int64)
    if seed_spec is not None:  # evolution starts from the user's spec when it is on the grid
        own = layout.encode(seed_spec)
        on_grid = all(set(own[1 + a * s: 1 + (a + 1) * s].tolist()) <= set(vals)
                      for a, vals in enumerate((grid.growth, grid.layers, grid.kernels)))
        stem_ok = own[0] in grid.stem if grid.stem else own[0] == 2 * own[1]
        if on_grid and stem_ok:
            row = own
    return DesignProblem("densenet", layout, budgets, row, grid)


# -- solvers -------------------------------------------------------------------------------
Solver = Callable[[DesignProblem, DesignOptions, "Progress | None"], DesignResult]


@dataclass(frozen=True)
class SolverInfo:
    name: str
    fn: Solver
    spaces: tuple[str, ...]
    summary: str


SOLVERS: dict[str, SolverInfo] = {}


def register_solver(name: str, spaces: Sequence[str], summary: str = "") -> Callable[[Solver],
                                                                                      Solver]:
    """Decorator: register ``fn(problem, options, progress) -> DesignResult`` under ``name``."""

    def deco(fn: Solver) -> Solver:
        SOLVERS[name] = SolverInfo(name, fn, tuple(spaces), summary)
        return fn

    return deco


def _result(problem: DesignProblem, solver: str, rows: np.ndarray, seconds: float,
            candidates: int, options: DesignOptions, **extra: Any) -> DesignResult:
    rows = np.atleast_2d(rows)[: max(1, options.top_k)]
    metrics = problem.metrics(rows)
    name = f"{problem.space} design ({solver})"
    top = [{"rank": i + 1, **m, "spec": problem.decode(r, name=name).to_dict()}
           for i, (r, m) in enumerate(zip(rows, metrics, strict=True))]
    return DesignResult(space=problem.space, solver=solver, spec=problem.decode(rows[0], name),
                        metrics=metrics[0], budgets=problem.budgets, seconds=seconds,
                        candidates=candidates, top=top, **extra)


@register_solver("evolution", DESIGN_SPACES,
                 "DeepMAD's mutation-only evolution with truncation selection")
def solve_evolution(problem: DesignProblem, options: DesignOptions,
                    progress: Progress | None = None) -> DesignResult:
    seed_ev = problem.evaluate(problem.seed_row[None, :])
    if not seed_ev.feasible[0]:
        _require_seed(problem.layout, problem.seed_row, problem.budgets)
    seed_obj = seed_ev.objective

    def tick(evo: Any, n: int) -> None:
        if progress is not None:
            progress.advance(n, best=evo.best[1])

    res = run_evolution(problem, problem.seed_row[None, :], seed_obj,
                        candidates=options.candidates, population=options.population,
                        n_mutations=options.mutations, batch=options.batch, seed=options.seed,
                        time_limit=options.time_limit, on_batch=tick)
    settings = {"population": options.population, "mutations": options.mutations,
                "batch": options.batch, "seed": options.seed,
                "seed_structure": problem.decode(problem.seed_row).to_dict()}
    return _result(problem, "evolution", res.genotypes, res.seconds, res.candidates, options,
                   history=res.history, settings=settings,
                   stats={"feasible_candidates": res.feasible})


def _dense_only(problem: DesignProblem, solver: str) -> DenseGrid:
    if problem.grid is None:
        raise InvalidSpec(f"solver {solver!r} works on the densenet space only")
    return problem.grid


@register_solver("bnb", ("densenet",), "exact branch-and-bound over the dense grid")
def solve_bnb(problem: DesignProblem, options: DesignOptions,
              progress: Progress | None = None) -> DesignResult:
    grid = _dense_only(problem, "bnb")
    bb = DenseBnB(problem.layout, grid, problem.budgets)

    seen = [0]  # the progress count is nodes explored

    def tick(st: Any, best: float) -> None:
        if progress is not None:
            progress.advance(st.nodes_explored - seen[0], best=best)
            seen[0] = st.nodes_explored

    res = bb.solve(time_limit=options.time_limit, node_limit=options.node_limit,
                   on_progress=tick)
    st = res.stats
    if progress is not None:
        progress.advance(st.nodes_explored - seen[0], best=res.objective)
    stats = {**st.as_dict(), "grid_designs": grid.size(),
             "relative_gap": st.gap / abs(res.objective) if res.objective else 0.0}
    hist = [{"seconds": t, "candidates": n, "best_objective": f} for t, n, f in st.trace]
    return _result(problem, "bnb", res.genotype, st.seconds, st.nodes_explored, options,
                   history=hist, stats=stats, settings={"grid": grid.as_dict()})


@register_solver("exhaustive", ("densenet",), "score every design of a small dense grid")
def solve_exhaustive(problem: DesignProblem, options: DesignOptions,
                     progress: Progress | None = None) -> DesignResult:
    grid = _dense_only(problem, "exhaustive")

    seen = [0]  # the progress count is designs scored

    def tick(done: int, total: int) -> None:
        if progress is not None:
            progress.advance(done - seen[0])
            seen[0] = done

    res = exhaustive_dense(problem.layout, grid, problem.budgets,
                           max_designs=options.max_designs, on_chunk=tick)
    return _result(problem, "exhaustive", res.genotype, res.seconds, res.designs, options,
                   stats={"grid_designs": res.designs, "feasible_designs": res.feasible},
                   settings={"grid": grid.as_dict()})


def design(space: str, budgets: Budgets, *, solver: str | None = None,
           resolution: int | None = None, in_channels: int = 3, num_classes: int | None = None,
           init: ArchSpec | str | None = None, alpha: Sequence[float] | None = None,
           beta: float | None = None, grid: DenseGrid | None = None,
           options: DesignOptions | None = None, progress: Progress | None = None
           ) -> DesignResult:
    """Design an architecture of ``space`` within ``budgets``, without training.

    Args:
        space: ``resnet``, ``mbv2`` (DeepMAD), ``mlp`` (DeepMAD's MLP form) or ``densenet``
            (Dense Optimizer).
        budgets: MACs / params / layers / rho bounds; the returned design meets all of them.
        solver: a name in :data:`SOLVERS` (default ``evolution``; ``bnb`` for densenet).
        resolution, in_channels, num_classes: the input and the classifier (``num_classes=0``
            is a headless backbone, as DeepMAD's budgets count; default 0 for resnet / mbv2,
            10 for densenet / mlp).
        init: a seed spec (name, path or spec); default: the TinyNAS start scaled to fit
            (:mod:`~archopt.design.seeds`) or, for densenet, the grid's smallest design (a
            densenet ``init`` fixes the layout -- input, classes, stages -- and seeds the
            evolution when its values lie on the grid).
        alpha: stage weights (default [1, 1, 1, 1, 8] aligned on the last stage).
        beta: DeepMAD depth-penalty ratio (default 10) or Dense Optimizer power-law weight
            (default 0.1).
        grid: the dense grid (default: g 8..48 step 4, L 4..40, k {3, 5}, 3 stages).
        options: solver settings (:class:`DesignOptions`).

    Returns: :class:`DesignResult`.
    Raises: UnknownName (space / solver), InvalidSpec, InfeasibleBudget.
    """
    options = options or DesignOptions()
    if space not in DESIGN_SPACES:
        raise UnknownName(f"unknown design space {space!r} (known: {', '.join(DESIGN_SPACES)})")
    name = solver or ("bnb" if space == "densenet" else "evolution")
    if name not in SOLVERS:
        raise UnknownName(f"unknown solver {name!r} (known: {', '.join(sorted(SOLVERS))})")
    info = SOLVERS[name]
    if space not in info.spaces:
        raise InvalidSpec(f"solver {name!r} supports the {', '.join(info.spaces)} space(s), "
                          f"not {space!r}")
    t0 = time.perf_counter()
    problem = make_problem(space, budgets, resolution=resolution, in_channels=in_channels,
                           num_classes=num_classes, init=init, alpha=alpha, beta=beta, grid=grid)
    result = info.fn(problem, options, progress)
    result.settings.setdefault("setup_seconds", time.perf_counter() - t0 - result.seconds)
    if not math.isfinite(result.metrics["objective"]):
        raise InvalidSpec("the design's objective is not finite")  # pragma: no cover
    return result
