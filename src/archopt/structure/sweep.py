"""The eps0 sweep: one structure run per penalty, fixed-structure baselines at matching weight
counts, the trade-off table and plot (test error vs weight usage rate).

Baselines (Saito et al., ICANN 2019, section 4): for the MLP, the hidden layers are thinned
*uniformly* (every layer the same width ``w``) to the weight count of each learned structure,
plus the full network; for the DenseNet, connections are removed at random until the weight
count matches (the paper's "random selection"). A baseline trains with ``lambda`` times the
batch and ``lambda`` times the epochs (the paper: batch 64 for 1000 epochs vs. batch 32 for
500), so both see the same examples per step and take the same number of steps; the full-width
baseline is also the reference of the training-cost ratio.

Every run is a trial of the sweep runner (:mod:`archopt.runs.sweeps`): Ray tasks or in-process,
resumed per trial. Result folder: ``eps0_<value>/`` and ``fixed_<label>/`` run folders (``_seed<k>``
appended with ``seeds``), each what ``archopt structure`` / a fixed run writes; ``grid.json`` and
``status.json`` (the runner's), ``sweep.json`` (the table) and ``tradeoff.png``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from archopt.data import ImageDataset, load_dataset
from archopt.errors import ArchoptError, InvalidSpec
from archopt.runs import ResultDir
from archopt.runs.sweeps import Backend, SweepOutcome, Trial, run_trials, sweep_session
from archopt.spaces import DenseNetSpec, MLPSpec, load_spec
from archopt.structure.densenet import MaskedDenseNet
from archopt.structure.loop import StructureConfig
from archopt.structure.run import (
    adapt,
    build_supernet,
    default_train_config,
    run_fixed,
    run_structure,
)

if TYPE_CHECKING:
    from archopt.training import TrainConfig

__all__ = ["PAPER_PENALTIES", "fixed_trial", "parse_penalty", "plot_tradeoff", "run_sweep",
           "structure_trial", "uniform_width"]

#: The ICANN paper's unit-selection grid: 2^-6 .. 2^-9, 0, -2^-3.
PAPER_PENALTIES = (2**-6, 2**-7, 2**-8, 2**-9, 0.0, -(2**-3))

_POW = re.compile(r"^\s*([+-]?)\s*2\s*\^\s*\(?\s*([+-]?\d+)\s*\)?\s*$")


def _short(text: str, n: int = 40) -> str:
    text = text.strip()
    return text if len(text) <= n else f"{text[:n]}... ({len(text):,} characters)"


def parse_penalty(text: str | float) -> float:
    """``"2^-7"``, ``"-2^-3"``, ``"0.0078125"`` or a number -> float.

    Raises: ArchoptError for anything else.
    """
    if isinstance(text, (int, float)):
        value = float(text)
    else:
        m = _POW.match(text)
        if m:
            digits = m.group(2).lstrip("+-").lstrip("0") or "0"
            e = int(m.group(2)) if len(digits) <= 5 else (1 << 20)
            if not -1074 <= e <= 1023:  # 2^e is no float: overflow, or a silent 0
                raise ArchoptError(f"penalty {_short(text)!r} is out of range: a power of two "
                                   "from 2^-1074 to 2^1023 is expected (the paper's: 2^-9 to "
                                   "2^-6)")
            value = math.ldexp(-1.0 if m.group(1) == "-" else 1.0, e)
        else:
            try:
                value = float(text)
            except ValueError:
                raise ArchoptError(f"cannot read penalty {_short(text)!r}: write a number "
                                   "(0.0078125) or a power of two (2^-7, -2^-3)") from None
    if not math.isfinite(value):
        raise ArchoptError(f"penalty must be finite, got {_short(str(text))!r}")
    return value


def penalty_label(value: float) -> str:
    """``2^-7`` for powers of two (with sign), else the shortest float text."""
    if value == 0:
        return "0"
    e = math.log2(abs(value))
    if e == int(e):
        return f"{'-' if value < 0 else ''}2^{int(e)}"
    return f"{value:g}"


def uniform_width(spec: MLPSpec, params: int) -> int:
    """The hidden width ``w`` (same in every layer, 1..full width) whose MLP's parameter count is
    closest to ``params``."""
    full = max(spec.widths)
    best, best_gap = 1, math.inf
    for w in range(1, full + 1):
        gap = abs(spec.replace(widths=[w] * len(spec.widths)).params() - params)
        if gap < best_gap:
            best, best_gap = w, gap
    return best


def random_connections(supernet: MaskedDenseNet, params: int, seed: int) -> np.ndarray:
    """A random structure of ``supernet`` with about ``params`` parameters: bits turned off in
    random order (skipping those that would disconnect a stage) until the count is reached."""
    rng = np.random.default_rng(seed)
    m = np.ones(supernet.d, dtype=bool)
    for i in rng.permutation(supernet.d):
        if supernet.compact_spec(m).params() <= params:
            break
        m[i] = False
        try:
            supernet.compact_spec(m)
        except InvalidSpec:
            m[i] = True
    return supernet.canonical(m[None])[0]


def _baseline_specs(task: str, supernet: Any, targets: list[int], seed: int
                    ) -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    seen: set[str] = set()
    full = supernet.spec
    if isinstance(full, MLPSpec):
        widths = sorted({uniform_width(full, p) for p in targets} | {max(full.widths)},
                        reverse=True)
        kept: list[tuple[int, int]] = []  # (width, params); near-duplicates (< 1 %) merged
        for w in widths:
            spec = full.replace(widths=[w] * len(full.widths))
            if kept and abs(kept[-1][1] - spec.params()) < 0.01 * kept[-1][1]:
                continue
            kept.append((w, spec.params()))
            out.append((f"w{w}", spec))
        return out
    assert isinstance(full, DenseNetSpec)
    out.append(("full", full))
    for p in sorted(set(targets), reverse=True):
        if p >= full.params():
            continue
        m = random_connections(supernet, p, seed)
        spec = supernet.compact_spec(m)
        label = f"random{spec.params()}"
        if label not in seen:
            seen.add(label)
            out.append((label, spec))
    return out


_METHOD_KEYS = ("weight_usage_rate", "cost_usage_rate", "params", "params_full", "units_per_layer",
                "connections_per_block", "test_error", "test_accuracy", "train_seconds",
                "seconds_per_step_ms", "steps", "latency_ms", "latency_ms_supernet")


def structure_trial(*, out: Path, task: str, data: ImageDataset | str, penalty: float,
                    structure: dict[str, Any], train: dict[str, Any], space: Any = None,
                    data_dir: str | None = None, latency: bool = True, progress: bool = False,
                    ) -> dict[str, Any]:
    """One eps0 run of a sweep (a :class:`~archopt.runs.sweeps.Trial` function): writes ``out``
    exactly as ``archopt structure`` does (continuing it when interrupted) and returns the
    table row. Raises what :func:`~archopt.structure.run.run_structure` raises; a structure
    that disconnects the network is a row with an ``error`` instead."""
    from archopt.training import TrainConfig

    cfg = StructureConfig(**{**structure, "penalty": float(penalty)})
    tc = TrainConfig(**train)
    row: dict[str, Any] = {"penalty": penalty, "label": penalty_label(penalty), "seed": tc.seed}
    try:
        s = run_structure(task, data, out=out, structure=cfg, train=tc, space=space,
                          data_dir=data_dir, resume=True, latency=latency, progress=progress)
    except InvalidSpec as err:  # a structure that disconnects the network
        return {**row, "error": str(err)}
    return {**row, "folder": Path(out).name, **{k: s[k] for k in _METHOD_KEYS if k in s}}


def fixed_trial(*, out: Path, data: ImageDataset | str, spec: dict[str, Any], label: str,
                train: dict[str, Any], full_params: int, max_steps_per_epoch: int | None = None,
                train_subset: int | None = None, test_subset: int | None = None,
                data_dir: str | None = None, progress: bool = False) -> dict[str, Any]:
    """One fixed-structure baseline of a sweep (a :class:`~archopt.runs.sweeps.Trial` function):
    trains ``spec`` with :func:`~archopt.structure.run.run_fixed` into ``out``; returns the
    baseline row (``weight_usage_rate`` = params / ``full_params``)."""
    from archopt.spaces import load_spec
    from archopt.training import TrainConfig

    tc = TrainConfig(**train)
    sp = load_spec(spec)
    s = run_fixed(sp, data, out=out, train=tc, max_steps_per_epoch=max_steps_per_epoch,
                  train_subset=train_subset, test_subset=test_subset, data_dir=data_dir,
                  resume=True, progress=progress, label=f"fixed {label}")
    row = {"label": label, "seed": tc.seed, "folder": Path(out).name, "params": s["params"],
           "weight_usage_rate": s["params"] / full_params,
           "test_error": s["test_error"], "test_accuracy": s["test_accuracy"],
           "train_seconds": s["train_seconds"], "steps": s["steps"],
           "seconds_per_step_ms": s["seconds_per_step_ms"]}
    if isinstance(sp, MLPSpec):
        row["widths"] = list(sp.kept_widths())
    else:
        row["connections_per_block"] = [sum(map(sum, st)) for st in sp.connections] \
            if sp.connections else None
    return row


def _rows(outcome: SweepOutcome, grid: list[Trial], base: Callable[[Trial], dict[str, Any]]
          ) -> list[dict[str, Any]]:
    """Rows in grid order; a failed trial is its identifying fields plus its error."""
    rows = []
    for t, o in zip(grid, outcome.trials, strict=True):
        rows.append(o.row if o.state == "done" and o.row is not None else
                    {**base(t), "folder": t.name, "state": o.state, "error": o.error})
    return rows


def run_sweep(task: str, data: ImageDataset | str, penalties: list[float], *,
              out: str | Path, structure: StructureConfig | None = None,
              train: TrainConfig | None = None, space: Any = None,
              data_dir: str | Path | None = None, baselines: bool = True,
              resume: bool = True, progress: bool = True, latency: bool = True,
              plot: bool = True, seeds: list[int] | None = None, backend: Backend = "local",
              workers: int | None = None, address: str | None = None,
              threads: int | None = None, echo: Any = None) -> dict[str, Any]:
    """Train the eps0 grid (x seeds) and the fixed-structure baselines through the sweep runner
    (:mod:`archopt.runs.sweeps`); write the table and the plot.

    Args:
        task, data, space, data_dir: as :func:`~archopt.structure.run.run_structure`.
        penalties: the eps0 values (e.g. :data:`PAPER_PENALTIES`).
        out: the sweep's folder: one run folder per trial (``eps0_<label>`` and
            ``fixed_<label>``, with ``_seed<k>`` when ``seeds`` is given), ``grid.json``,
            ``status.json``, ``sweep.json`` (the table), ``tradeoff.png``.
        structure: options shared by every run (its ``penalty`` is replaced per run).
        train: weights' options of the method (default: the paper's recipe); baselines use
            ``lambda * batch_size`` and ``lambda * epochs``.
        baselines: train the fixed-structure baselines (one set, sized on the learned
            structures of all seeds, trained with every seed).
        resume: kept for compatibility: finished trials are always reused (status.json) and
            interrupted ones continued.
        plot: draw ``tradeoff.png``.
        seeds: train every eps0 (and baseline) with each of these seeds (default: ``train``'s).
        backend, workers, address, threads: how the trials run
            (:func:`~archopt.runs.sweeps.run_trials`; the library's default is in-process, the
            CLI's is Ray when installed).

    Returns: ``{"method": [...], "baselines": [...], "comparison": [...], "cost": {...},
    "runner": {...}}`` (also ``sweep.json``); a failed trial is a row with ``error``.
    Raises: ArchoptError for an empty grid, a bad runner request, or a sweep folder whose
        finished trials had other options.
    """
    from archopt.runs.locking import lock_folder

    del resume
    if not penalties:
        raise ArchoptError("the sweep needs at least one penalty (eps0)")
    with lock_folder(out), sweep_session(backend, workers, address, echo) as chosen:
        # one driver per sweep folder, one Ray session, over both phases
        return _sweep(task, data, penalties, out=out, structure=structure, train=train,
                      space=space, data_dir=data_dir, baselines=baselines, progress=progress,
                      latency=latency, plot=plot, seeds=seeds,
                      run=dict(backend=chosen, workers=workers, address=address,
                               threads=threads, progress=progress, echo=echo))


def _sweep(task: str, data: ImageDataset | str, penalties: list[float], *, out: str | Path,
           structure: StructureConfig | None, train: TrainConfig | None, space: Any,
           data_dir: str | Path | None, baselines: bool, progress: bool, latency: bool,
           plot: bool, seeds: list[int] | None, run: dict[str, Any]) -> dict[str, Any]:
    structure = structure or StructureConfig()
    train = train or default_train_config(task)
    rd = ResultDir(out)
    ds = data if isinstance(data, ImageDataset) else load_dataset(data, data_dir=data_dir)
    seed_list = list(seeds) if seeds else [train.seed]
    suffix = (lambda s: f"_seed{s}") if seeds else (lambda s: "")
    space_json = None if space is None else load_spec(space).to_dict()
    common: dict[str, Any] = {"data": ds.name,
                              "data_dir": None if data_dir is None else str(data_dir)}
    run = {**run, "shared": {"data": ds}}
    grid = [Trial(f"eps0_{penalty_label(p)}{suffix(s)}", f"{__name__}:structure_trial",
                  {"task": task, "penalty": float(p), "space": space_json, "latency": latency,
                   "structure": structure.model_dump(mode="json"),
                   "train": train.model_copy(update={"seed": s}).to_dict(), **common})
            for s in seed_list for p in penalties]
    outcome = run_trials(rd.path, grid, **run)
    method = _rows(outcome, grid, lambda t: {"penalty": t.params["penalty"],
                                              "label": penalty_label(t.params["penalty"]),
                                              "seed": t.params["train"]["seed"]})
    table: dict[str, Any] = {"task": task, "dataset": ds.name, "optimizer": structure.optimizer,
                             "epochs": train.epochs, "batch_size": train.batch_size,
                             "lam": structure.lam, "seeds": seed_list, "method": method,
                             "baselines": []}
    runner = {"method": outcome.as_dict()}
    if baselines:
        supernet = build_supernet(task, space_json, ds)
        full_params = supernet.spec.params()
        targets = [int(r["params"]) for r in method if "params" in r]
        base_train = train.model_copy(update={
            "batch_size": train.batch_size * structure.lam,
            "epochs": train.epochs * structure.lam})
        bgrid = [Trial(f"fixed_{label}{suffix(s)}", f"{__name__}:fixed_trial",
                       {"spec": adapt(spec, ds).to_dict(), "label": label,
                        "train": base_train.model_copy(update={"seed": s}).to_dict(),
                        "full_params": full_params,
                        "max_steps_per_epoch": structure.max_steps_per_epoch,
                        "train_subset": structure.train_subset,
                        "test_subset": structure.test_subset, **common})
                 for s in seed_list
                 for label, spec in _baseline_specs(task, supernet, targets, train.seed)]
        boutcome = run_trials(rd.path, bgrid, **run)
        runner["baselines"] = boutcome.as_dict()
        table["baselines"] = _rows(boutcome, bgrid, lambda t: {
            "label": t.params["label"], "seed": t.params["train"]["seed"]})
        done = [b for b in table["baselines"] if "test_error" in b]
        table["comparison"] = _compare(method, done)
        fulls = {b["seed"]: b for b in done if b["params"] == full_params}
        ratios = [r["train_seconds"] / fulls[r["seed"]]["train_seconds"] for r in method
                  if "train_seconds" in r and r["seed"] in fulls
                  and fulls[r["seed"]]["train_seconds"]]
        if fulls:
            full = fulls.get(seed_list[0]) or next(iter(fulls.values()))
            table["cost"] = {
                "reference": full["label"], "reference_train_seconds": full["train_seconds"],
                "reference_steps": full["steps"],
                "method_train_seconds": [r.get("train_seconds") for r in method],
                "ratio_per_run": ratios,
                "ratio_median": float(np.median(ratios)) if ratios else None}
    table["runner"] = runner
    rd.write_json("sweep.json", table)
    if plot:
        plot_tradeoff(table, rd.file("tradeoff.png"))
    return table


def _compare(method: list[dict[str, Any]], base: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each learned structure against the baseline nearest in weight count."""
    rows = []
    for r in method:
        if "params" not in r or not base:
            continue
        same = [b for b in base if b.get("seed") == r.get("seed")] or base
        b = min(same, key=lambda b: abs(b["params"] - r["params"]))
        rows.append({"penalty": r["penalty"], "label": r["label"], "seed": r.get("seed"),
                     "weight_usage_rate": r["weight_usage_rate"],
                     "test_error": r["test_error"], "baseline": b["label"],
                     "baseline_weight_usage_rate": b["weight_usage_rate"],
                     "baseline_test_error": b["test_error"],
                     "method_better": r["test_error"] < b["test_error"]})
    return rows


def plot_tradeoff(table: dict[str, Any], path: str | Path) -> Path:
    """Test error (%) vs weight usage rate (%): learned structures (labelled by eps0) and the
    fixed-structure baselines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    base = sorted(table.get("baselines", []), key=lambda b: b["weight_usage_rate"])
    if base:
        ax.plot([100 * b["weight_usage_rate"] for b in base],
                [100 * b["test_error"] for b in base], "s--", color="tab:gray",
                label="fixed structure (uniformly thinned)" if "widths" in base[0]
                else "fixed structure (random connections)")
    pts = [r for r in table["method"] if "test_error" in r]
    ax.plot([100 * r["weight_usage_rate"] for r in pts], [100 * r["test_error"] for r in pts],
            "o", color="tab:blue", label=f"learned structure ({table.get('optimizer', 'sng')})")
    for r in pts:
        ax.annotate(f"eps0={r['label']}", (100 * r["weight_usage_rate"], 100 * r["test_error"]),
                    textcoords="offset points", xytext=(4, 4), fontsize=7)
    ax.set_xlabel("weight usage rate (%)")
    ax.set_ylabel("test error (%)")
    ax.set_title(f"{table['task']} on {table['dataset']}, {table['epochs']} epochs")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    from archopt.runs.plotting import save_png

    try:
        return save_png(fig, path, dpi=120, tight=False)  # atomic
    finally:
        plt.close(fig)
