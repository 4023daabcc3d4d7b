"""``archopt design`` as a library call that writes its result folder, and the design sweep: one
design per budget (a grid of MACs x params budgets, x seeds) run through :mod:`archopt.runs.sweeps`,
the combined table with its Pareto front (objective vs MACs) and the plot.

Sweep folder: one design folder per trial (``macs_<budget>[_params_<budget>][_seed<k>]``,
exactly what ``archopt design --out`` writes), ``grid.json``, ``status.json``, ``sweep.json``
(the table) and ``pareto.png``.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from archopt.errors import ArchoptError
from archopt.runs import ResultDir
from archopt.runs.sweeps import Backend, SweepOutcome, Trial, run_trials

from .budgets import Budgets
from .dense import DenseGrid
from .output import write_design
from .search import DesignOptions, DesignResult, design

__all__ = ["amount_label", "design_to_folder", "design_trial", "pareto_flags", "plot_pareto",
           "run_design_sweep"]


def design_to_folder(out: str | Path, space: str, budgets: Budgets, *, solver: str | None = None,
                     resolution: int | None = None, in_channels: int = 3,
                     num_classes: int | None = None, init: str | None = None,
                     beta: float | None = None, grid: DenseGrid | None = None,
                     options: DesignOptions | None = None, plots: bool = True,
                     progress: Any = None) -> DesignResult:
    """:func:`~archopt.design.design`, then the result folder ``out`` (config.json, arch.json,
    design.json, summary.json, metrics.jsonl, plots) written under the folder's lock -- what
    ``archopt design`` does. Arguments as :func:`~archopt.design.design`; ``progress`` is an
    :class:`archopt.runtime.progress.Progress` or None.

    Raises: as :func:`~archopt.design.design`; FolderInUse when another command holds ``out``.
    """
    from archopt.runs.locking import lock_folder

    options = options or DesignOptions()
    result = design(space, budgets, solver=solver, resolution=resolution,
                    in_channels=in_channels, num_classes=num_classes, init=init, beta=beta,
                    grid=grid, options=options, progress=progress)
    config = {"command": "design", "space": space, "solver": result.solver,
              "budgets": budgets.as_dict(), "resolution": resolution,
              "in_channels": in_channels, "num_classes": num_classes, "init": init,
              "beta": beta, "seed": options.seed, "options": options.__dict__,
              "grid": None if grid is None else grid.as_dict()}
    with lock_folder(out):
        write_design(result, out, config, plots=plots)
    return result


_ROW_KEYS = ("objective", "entropy", "effectiveness", "macs", "params", "layers")


def design_trial(*, out: Path, space: str, budgets: dict[str, Any], seed: int,
                 options: dict[str, Any], grid: dict[str, Any] | None = None,
                 progress: bool = False, **kwargs: Any) -> dict[str, Any]:
    """One design of a sweep (a :class:`~archopt.runs.sweeps.Trial` function): writes ``out`` as
    ``archopt design --out`` does; returns the row: the budgets, the seed, objective,
    entropy, effectiveness, MACs, params, layers, solver seconds, candidates.

    Raises: as :func:`design_to_folder` (InfeasibleBudget for a budget nothing meets)."""
    del progress
    b = Budgets(**budgets)
    result = design_to_folder(out, space, b, grid=None if grid is None else DenseGrid(**grid),
                              options=DesignOptions(**{**options, "seed": seed}), **kwargs)
    m = result.metrics
    return {"folder": Path(out).name, "budget_macs": b.macs, "budget_params": b.params,
            "seed": seed, "solver": result.solver, **{k: m[k] for k in _ROW_KEYS},
            "seconds": result.seconds, "candidates": result.candidates}


def amount_label(value: float) -> str:
    """``1e6`` -> ``1M``, ``2.5e6`` -> ``2.5M``, ``800e3`` -> ``800k``, ``1.82e9`` -> ``1.82G``
    (at most 4 significant digits)."""
    for factor, suffix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= factor:
            return f"{value / factor:.4g}{suffix}"
    return f"{value:.4g}"


def pareto_flags(rows: Sequence[dict[str, Any]]) -> list[bool]:
    """For each row with ``macs`` and ``objective``: True when no other row has MACs <= and
    objective >= with one of them strict (the front of objective vs MACs); False for the
    others and for rows without figures (failed trials)."""
    pts = [(r["macs"], r["objective"]) if "objective" in r else None for r in rows]
    flags = []
    for p in pts:
        if p is None:
            flags.append(False)
            continue
        flags.append(not any(q is not None and q != p and q[0] <= p[0] and q[1] >= p[1]
                             for q in pts))
    return flags


def plot_pareto(table: dict[str, Any], path: str | Path) -> Path:
    """Objective vs MACs of every design of the sweep (labelled by its MACs budget), the
    Pareto front joined by a line; PNG written atomically."""
    from archopt.runs.plotting import new_figure, save_png

    fig = new_figure((6.4, 4.2))
    ax = fig.subplots()
    rows = [r for r in table["rows"] if "objective" in r]
    front = sorted((r for r in rows if r.get("pareto")), key=lambda r: r["macs"])
    ax.plot([r["macs"] for r in rows], [r["objective"] for r in rows], "o", color="tab:gray",
            label="design")
    if front:
        ax.plot([r["macs"] for r in front], [r["objective"] for r in front], "o-",
                color="tab:blue", label="Pareto front")
    for r in rows:
        text = f"budget {amount_label(r['budget_macs'])}" if r.get("budget_macs") else r["folder"]
        ax.annotate(text, (r["macs"], r["objective"]), textcoords="offset points",
                    xytext=(4, -10), fontsize=7)
    ax.set_xscale("log")
    ax.set_xlabel("MACs per image")
    ax.set_ylabel("objective (entropy score)")
    ax.set_title(f"{table['space']} designs: objective vs MACs")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    return save_png(fig, path)


def run_design_sweep(out: str | Path, space: str, *, macs: Sequence[float | None] = (None,),
                     params: Sequence[float | None] = (None,), layers: float | None = None,
                     rho: float | None = None, seeds: Sequence[int] | None = None,
                     solver: str | None = None, resolution: int | None = None,
                     in_channels: int = 3, num_classes: int | None = None,
                     init: str | None = None, beta: float | None = None,
                     grid: DenseGrid | None = None, options: DesignOptions | None = None,
                     plots: bool = True, backend: Backend = "local",
                     workers: int | None = None, address: str | None = None,
                     threads: int | None = None, progress: bool = True,
                     echo: Callable[[str], None] | None = None) -> dict[str, Any]:
    """One design per (MACs budget, params budget, seed); the table and the Pareto plot.

    Args:
        out: the sweep folder.
        space: as :func:`~archopt.design.design`.
        macs, params: budget lists (MACs per image, parameters); every combination is a trial;
            ``(None,)`` leaves that budget open.
        layers, rho: budgets shared by every trial.
        seeds: one trial per seed (``_seed<k>`` folders); default: ``options.seed``, no suffix.
        solver ... options: as :func:`~archopt.design.design` (``options.seed`` is replaced
            per seed).
        plots: each design's plots (the sweep's ``pareto.png`` is always drawn).
        backend, workers, address, threads, progress, echo: :func:`~archopt.runs.sweeps.run_trials`.

    Returns: ``{"space", "rows": [...], "pareto": [folder, ...], "runner": {...}}`` (also
    ``sweep.json``); ``rows`` in grid order, each with ``pareto`` (on the front) or, for a
    failed trial, ``error``.
    Raises: ArchoptError for an empty or repeated budget list, a bad runner request, or a
        sweep folder whose finished trials had other options.
    """
    from archopt.runs.locking import lock_folder

    options = options or DesignOptions()
    for what, vals in (("--budget-macs", macs), ("--budget-params", params)):
        if not vals:
            raise ArchoptError(f"{what}: the list is empty")
        if len(set(vals)) != len(vals):
            raise ArchoptError(f"{what}: a budget is listed twice ({list(vals)})")
    seed_list = list(seeds) if seeds else [options.seed]
    common = {"space": space, "solver": solver, "resolution": resolution,
              "in_channels": in_channels, "num_classes": num_classes, "init": init,
              "beta": beta, "plots": plots, "grid": None if grid is None else grid.as_dict(),
              "options": {k: v for k, v in asdict(options).items() if k != "seed"}}
    trials = []
    for s, m, p in itertools.product(seed_list, macs, params):
        b = Budgets(macs=m, params=p, layers=layers, rho=rho)  # validates
        name = "_".join([*(f"macs_{amount_label(m)}" for _ in [m] if m is not None),
                         *(f"params_{amount_label(p)}" for _ in [p] if p is not None)]
                        ) or "design"
        trials.append(Trial(name + (f"_seed{s}" if seeds else ""),
                            "archopt.design.sweep:design_trial",
                            {**common, "budgets": b.as_dict(), "seed": s}))
    with lock_folder(out):  # one driver per sweep folder
        return _finish(out, space, trials, layers, rho, seed_list, run_trials(
            out, trials, backend=backend, workers=workers, address=address, threads=threads,
            progress=progress, echo=echo))


def _finish(out: str | Path, space: str, trials: list[Trial], layers: float | None,
            rho: float | None, seed_list: list[int], outcome: SweepOutcome) -> dict[str, Any]:
    """The table (rows in grid order, Pareto flags), sweep.json and pareto.png."""
    rows = []
    for t, o in zip(trials, outcome.trials, strict=True):
        b = t.params["budgets"]
        rows.append(o.row if o.state == "done" and o.row is not None else
                    {"folder": t.name, "budget_macs": b["macs"], "budget_params": b["params"],
                     "seed": t.params["seed"], "state": o.state, "error": o.error})
    for r, flag in zip(rows, pareto_flags(rows), strict=True):
        if "objective" in r:
            r["pareto"] = flag
    table = {"space": space, "budgets": {"layers": layers, "rho": rho}, "seeds": seed_list,
             "rows": rows, "pareto": [r["folder"] for r in rows if r.get("pareto")],
             "runner": outcome.as_dict()}
    rd = ResultDir(out)
    rd.write_json("sweep.json", table)
    plot_pareto(table, rd.file("pareto.png"))
    return table
