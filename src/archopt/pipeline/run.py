"""``archopt run``: design a CNN with DeepMAD within budgets, train it and the hand-designed
baselines at equal budgets (of each family the largest member within both the MACs and the
params budget: :mod:`archopt.pipeline.baseline`) with the same recipe, optionally shrink the
design (structure) and refine it with HBDE, and report.

Result folder::

    OUT/config.json  run.yaml       resolved options (run.yaml reproduces the run)
    OUT/design/      arch.json design.json convergence.png network.png   (archopt design)
    OUT/designed/    checkpoint.pt metrics.jsonl summary.json ...        (archopt train)
    OUT/baseline-resnet/, OUT/baseline-mbv2/   the same for each baseline
    OUT/seeds/<network>-s<seed>/   the trainings of the extra seeds (``seeds`` > 1)
    OUT/structure/   (optional) channel selection on designed/checkpoint.pt: the supernet's
                     checkpoint.pt, structure.json, arch.json + model.pt of the compact network
    OUT/refine/      (optional) refine designed/checkpoint.pt (archopt refine; the method
                     of refine_options, by default the comparison's best)
    OUT/summary.json report.md *.png

Every stage writes its own folder and is skipped when its ``summary.json`` exists, and the
training stages checkpoint every epoch, so an interrupted run continues with ``resume=True``
(``--resume``) to the same result: the design is deterministic for its seed, and a resumed
training run sees the same batches as an uninterrupted one.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from archopt.data import ImageDataset, load_dataset
from archopt.errors import ArchoptError, WriteError
from archopt.pipeline.baseline import RESNET_DEPTHS, Baseline, hand_baselines
from archopt.pipeline.config import RunConfig
from archopt.runs import ResultDir, atomic_write_text, read_json, write_error_kept
from archopt.runs.locking import discard_on_failure, lock_folder
from archopt.spaces import ArchSpec, load_spec

__all__ = ["RunResult", "baselines_for", "design_for", "run_pipeline"]

MODEL_KEYS = ("test_accuracy", "test_macro_f1", "params", "macs", "latency_ms", "latency_ms_b64",
              "latency_ms_onnxruntime", "latency_ms_onnxruntime_b64", "latency_threads",
              "epochs", "seconds")


@dataclass
class RunResult:
    """What :func:`run_pipeline` returns: the summary (as in ``summary.json``) and the folder."""

    summary: dict[str, Any]
    out: Path
    notes: list[str] = field(default_factory=list)


#: What a run writes in its folder (besides plots): removed again when a fresh run fails
#: before it has a result (:func:`_has_results`), so that its corrected rerun is not refused.
STAGES = ("design", "designed", "baseline-resnet", "baseline-mbv2", "seeds", "structure",
          "refine")
RUN_FILES = (ResultDir.CONFIG, "run.yaml", *STAGES, ResultDir.SUMMARY, "report.md")


def _has_results(rd: ResultDir) -> bool:
    """Whether the folder holds work worth keeping: a training checkpoint or a finished run.
    (A design alone is not: it is recomputed, identically, in seconds.)"""
    return rd.exists(ResultDir.SUMMARY) or any(
        (rd.file(stage) / "checkpoint.pt").exists() for stage in STAGES)


def _check_folder(rd: ResultDir, cfg: RunConfig, resume: bool) -> None:
    """Refuse a folder that holds another run (unless ``resume`` with the same options); clear
    the leftovers of a run that never got to a result (killed, or failed before the cleanup)."""
    if not rd.exists(ResultDir.CONFIG):
        return
    if not _has_results(rd):
        for name in RUN_FILES:
            p = rd.file(name)
            if p.is_dir():
                shutil.rmtree(p)
            else:
                p.unlink(missing_ok=True)
        return
    if not resume:
        raise ArchoptError(f"{rd.path} already holds a run; pass --resume to continue it, or "
                           "choose another --out")
    saved = rd.read_config().get("run", {})
    diffs = cfg.differences(saved)
    if diffs:
        raise ArchoptError(f"cannot resume {rd.path}: the options differ from the saved run "
                           f"({'; '.join(diffs)})")


def _dataset(cfg: RunConfig) -> ImageDataset:
    ds = load_dataset(cfg.data, cfg.data_dir, verify=cfg.verify)
    if cfg.train_size or cfg.test_size:
        ds = ds.subset(cfg.train_size, cfg.test_size, seed=cfg.seed)
    return ds


def design_for(cfg: RunConfig, ds: ImageDataset) -> Any:
    """The DeepMAD design a run of ``cfg`` trains on ``ds`` (deterministic for ``cfg.seed``).

    Args:
        cfg: a resolved :class:`RunConfig` (budgets, rho, space, candidates, seed).
        ds: the dataset (its resolution, channels and classes set the network's input/output).
    Returns: the :class:`archopt.design.DesignResult`.
    Raises: InfeasibleBudget when no network of the space fits the budgets.
    Source: DeepMAD (Shen et al., CVPR 2023), via :func:`archopt.design.design`.
    """
    from archopt.design import Budgets, DesignOptions, design

    budgets = Budgets(macs=cfg.budget_macs, params=cfg.budget_params,
                      layers=cfg.budget_layers, rho=cfg.rho)
    return design(cfg.space, budgets, resolution=ds.resolution, in_channels=ds.in_channels,
                  num_classes=ds.num_classes,
                  options=DesignOptions(candidates=cfg.candidates, seed=cfg.seed))


def _design_stage(cfg: RunConfig, ds: ImageDataset, out: Path, progress: bool) -> dict[str, Any]:
    from archopt.design.output import write_design

    if not (out / "summary.json").exists():
        result = design_for(cfg, ds)
        write_design(result, out, {"space": cfg.space, "budgets": result.budgets.as_dict(),
                                   "candidates": cfg.candidates, "seed": cfg.seed,
                                   "resolution": ds.resolution, "in_channels": ds.in_channels,
                                   "num_classes": ds.num_classes, "data": cfg.data})
    return read_json(out / "design.json")


def _train_stage(spec: ArchSpec, ds: ImageDataset, cfg: RunConfig, out: Path,
                 resume: bool, progress: bool, seed: int | None = None,
                 latency: bool | str | None = None) -> dict[str, Any]:
    from archopt.training import TrainConfig, train

    if (out / "summary.json").exists():
        return read_json(out / "summary.json")
    train_cfg = {**cfg.train, **({} if seed is None else {"seed": seed})}
    if latency is not None and cfg.train.get("latency", True):
        train_cfg["latency"] = latency
    result = train(spec, ds, TrainConfig(**train_cfg), out, resume=resume, progress=progress)
    return result.summary


def _train_seeds(name: str, spec: ArchSpec, ds: ImageDataset, cfg: RunConfig, rd: ResultDir,
                 resume: bool, progress: bool) -> list[dict[str, Any]]:
    """The network's trainings, one per seed: ``OUT/<name>/`` for the run's seed, then
    ``OUT/seeds/<name>-s<seed>/`` for the others. Latency is timed once per network, on the
    first seed's model (the same architecture); onnxruntime's only for the design (the network
    the run ships: exporting each baseline to ONNX cost more than its training on digits)."""
    runs = [_train_stage(spec, ds, cfg, rd.file(name), resume, progress,
                         latency=None if name == "designed" else "torch")]
    for k in range(1, cfg.seeds):
        seed = cfg.seed + k
        runs.append(_train_stage(spec, ds, cfg, rd.file("seeds") / f"{name}-s{seed}", resume,
                                 progress, seed=seed, latency=False))
    return runs


def baselines_for(cfg: RunConfig, ds: ImageDataset) -> list[Baseline]:
    """The hand-designed baselines a run of ``cfg`` trains on ``ds``: of each family in
    ``cfg.baselines`` the member with the most MACs within both budgets
    (:func:`archopt.pipeline.baseline.hand_baselines`; ResNet depths: ``cfg.baseline_blocks``
    or all of :data:`RESNET_DEPTHS`). Returns: one :class:`Baseline` per family that has a
    member within the budgets."""
    return hand_baselines(cfg.budget_macs, cfg.budget_params, in_channels=ds.in_channels,
                          resolution=ds.resolution, num_classes=ds.num_classes,
                          families=cfg.baselines,
                          resnet_depths=(RESNET_DEPTHS if cfg.baseline_blocks is None
                                         else (cfg.baseline_blocks,)))


def _seeds_row(runs: list[dict[str, Any]], spec: ArchSpec) -> dict[str, Any]:
    """A network's row: the first seed's figures, test accuracy and macro-F1 as the mean over
    seeds (each seed's in ``test_accuracy_seeds``)."""
    row = _model_row(runs[0], spec)
    for key in ("test_accuracy", "test_macro_f1"):
        vals = [r.get(key) for r in runs]
        if all(v is not None for v in vals):
            row[key] = sum(vals) / len(vals)
            row[f"{key}_seeds"] = vals
    row["seconds"] = sum(r.get("seconds") or 0.0 for r in runs)
    return row


def _ratio(a: Any, b: Any) -> float | None:
    return None if a is None or not b else float(a) / float(b)


def compare(designed: dict[str, Any], baselines: dict[str, dict[str, Any]],
            seeds: int) -> dict[str, Any]:
    """Each baseline's cost ratios to the design (``*_ratio`` = baseline / design, set in the
    baseline rows) and the paired test-accuracy differences, design minus baseline, per seed;
    ``verdict``: one line naming who won by how much over how many seeds."""
    parts, out = [], {}
    d_acc = designed.get("test_accuracy_seeds") or [designed["test_accuracy"]]
    for fam, row in baselines.items():
        for key in ("params", "macs", "latency_ms"):
            row[f"{key}_ratio"] = _ratio(row.get(key), designed.get(key))
        b_acc = row.get("test_accuracy_seeds") or [row["test_accuracy"]]
        diffs = [100 * (a - b) for a, b in zip(d_acc, b_acc, strict=True)]
        mean = sum(diffs) / len(diffs)
        wins = sum(d > 0 for d in diffs)
        out[fam] = {"baseline": row["name"], "points_per_seed": diffs, "mean_points": mean,
                    "design_wins": wins, "seeds": len(diffs)}
        tie = round(abs(mean), 2) == 0  # what would print as 0.00 points is a tie
        who = "a tie" if tie else "design wins" if mean > 0 else f"{row['name']} wins"
        parts.append(f"vs {row['name']}: {who}" + ("" if tie else f" by {abs(mean):.2f} points")
                     + (f" (design ahead on {wins} of {len(diffs)} seeds)" if seeds > 1 else ""))
    verdict = (f"test accuracy, designed (DeepMAD) {100 * designed['test_accuracy']:.2f} % "
               f"over {seeds} seed{'s' if seeds > 1 else ''}: " + "; ".join(parts))
    return {"seeds": seeds, "design_minus_baseline": out, "verdict": verdict}


def _refine_stage(ds: ImageDataset, cfg: RunConfig, checkpoint: Path, out: Path, resume: bool,
                  progress: bool) -> dict[str, Any]:
    from archopt.refine import RefineConfig, refine

    if (out / "summary.json").exists():
        return read_json(out / "summary.json")
    return refine(checkpoint, ds, RefineConfig(**cfg.refine_options), out, resume=resume,
                  progress=progress).summary


def _structure_stage(ds: ImageDataset, cfg: RunConfig, checkpoint: Path, out: Path,
                     resume: bool, progress: bool) -> dict[str, Any]:
    from archopt.structure.resnet import run_resnet_structure

    if (out / "summary.json").exists():
        done = read_json(out / "summary.json")
        if done.get("complete"):
            return done
    structure, train = cfg.structure_configs()
    return run_resnet_structure(checkpoint, ds, out=out, train=train, structure=structure,
                                resume=resume, progress=progress)


def _structured_row(st: dict[str, Any]) -> dict[str, Any]:
    row = _model_row({**st, "seconds": st.get("seconds", st.get("train_seconds"))},
                     load_spec(st["arch"]))
    row.update({k: st.get(k) for k in (
        "weight_usage_rate", "cost_usage_rate", "params_full", "macs_full", "btn_per_superblock",
        "btn_full", "optimizer", "penalty", "steps", "compact_max_abs_logit_difference")})
    return row


def _model_row(summary: dict[str, Any], spec: ArchSpec) -> dict[str, Any]:
    from archopt.design import score_spec

    row = {k: summary.get(k) for k in MODEL_KEYS}
    scores = score_spec(spec)
    row.update(name=spec.name, entropy=scores.entropy, effectiveness=scores.effectiveness,
               objective=scores.objective, layers=spec.layers())
    return row


def run_pipeline(config: RunConfig, out: str | Path, *, resume: bool = False,
                 progress: bool = True,
                 log: Callable[[str], None] | None = None) -> RunResult:
    """Design -> train -> baseline -> (structure) -> (refine) -> report, in the result folder
    ``out``.

    Args:
        config: the options (dataset defaults are filled in; the resolved config is saved).
        out: the result folder.
        resume: continue an interrupted run in ``out`` (its saved options must match).
        progress: show progress bars / lines.
        log: where stage messages go (default: nowhere).

    Returns: :class:`RunResult`; ``summary`` has ``designed`` and ``baselines`` (family ->
        row) objects (each with ``test_accuracy``, ``test_macro_f1`` -- means over the seeds --,
        ``params``, ``macs``, ``latency_ms``, entropy, effectiveness; a baseline row also the
        ratios to the design, ``params_ratio``, ``macs_ratio``, ``latency_ms_ratio``),
        ``comparison`` (paired differences per seed and a one-line ``verdict``: see
        :func:`compare`), ``structured`` when the structure stage ran (the same
        figures for the compact network, plus ``weight_usage_rate``), ``refined`` when
        refinement ran, and ``seconds``.
    Raises: ArchoptError subclasses (bad options, data, infeasible budgets, a folder holding
        another run); FolderInUse when another process is writing ``out``. A fresh run that
        fails before it has a result (a training checkpoint) removes what it wrote.
    """
    cfg = config.resolve()
    with lock_folder(out):  # one writer per folder
        rd = ResultDir(out)
        _check_folder(rd, cfg, resume)
        try:
            with discard_on_failure(rd.path, RUN_FILES, lambda: _has_results(rd)):
                return _run(cfg, rd, resume, progress, log or (lambda _msg: None))
        except WriteError as err:  # a full disk: say that the completed stages are kept
            if _has_results(rd):
                raise write_error_kept(err) from None
            raise


def _run(cfg: RunConfig, rd: ResultDir, resume: bool, progress: bool,
         say: Callable[[str], None]) -> RunResult:
    if not rd.exists(ResultDir.CONFIG):
        atomic_write_text(rd.file("run.yaml"), cfg.to_yaml())
        rd.write_config({"command": "run", "run": cfg.model_dump(mode="json")})
    t0 = time.perf_counter()
    ds = _dataset(cfg)
    say(f"data: {ds.name} ({len(ds.train_y)} train / {len(ds.test_y)} test, "
        f"{'x'.join(map(str, ds.input_shape))})")

    say(f"design: DeepMAD {cfg.space} space, MACs <= {cfg.budget_macs:,.0f}, params <= "
        f"{cfg.budget_params:,.0f}, rho <= {cfg.rho}, {cfg.candidates:,} candidates")
    design = _design_stage(cfg, ds, rd.file("design"), progress)
    designed_spec = load_spec(rd.file("design") / "arch.json")
    say(f"designed: {designed_spec.macs():,} MACs, {designed_spec.params():,} params, "
        f"{designed_spec.layers()} layers ({design['seconds']:.1f} s)")

    baselines = baselines_for(cfg, ds)
    for b in baselines:
        say(f"baseline ({b.family}): {b.spec.name}, {b.spec.macs():,} MACs, "
            f"{b.spec.params():,} params (the largest within both budgets)")
    missing = [f for f in cfg.baselines if f not in {b.family for b in baselines}]
    if missing:
        say(f"no {' / '.join(missing)} baseline fits the budgets")

    seeds = f" ({cfg.seeds} seeds)" if cfg.seeds > 1 else ""
    say(f"train: designed network{seeds}")
    designed = _train_seeds("designed", designed_spec, ds, cfg, rd, resume, progress)
    trained = {}
    for b in baselines:
        say(f"train: baseline {b.spec.name}{seeds}")
        trained[b.family] = _train_seeds(f"baseline-{b.family}", b.spec, ds, cfg, rd, resume,
                                         progress)
    rows = {b.family: {**_seeds_row(trained[b.family], b.spec), "family": b.family}
            for b in baselines}
    designed_row = _seeds_row(designed, designed_spec)

    summary: dict[str, Any] = {
        "data": ds.name, "train_examples": len(ds.train_y), "test_examples": len(ds.test_y),
        "budgets": {"macs": cfg.budget_macs, "params": cfg.budget_params,
                    "layers": cfg.budget_layers, "rho": cfg.rho},
        "design": {k: design.get(k) for k in ("objective", "entropy", "effectiveness",
                                               "seconds", "candidates",
                                               "candidates_per_second")},
        "designed": designed_row,
        "baselines": rows,
        "comparison": compare(designed_row, rows, cfg.seeds),
    }
    say(summary["comparison"]["verdict"])
    stage_seconds = {"design": design["seconds"], "designed": designed_row["seconds"],
                     **{f"baseline-{f}": r["seconds"] for f, r in rows.items()}}
    if cfg.structure:
        so = cfg.structure_options
        say(f"structure: {so['optimizer']} channel selection on the designed network, eps0 = "
            f"{so['penalty']:g}, {so['epochs']} epochs")
        st = _structure_stage(ds, cfg, rd.file("designed") / "checkpoint.pt",
                              rd.file("structure"), resume, progress)
        summary["structured"] = _structured_row(st)
        stage_seconds["structure"] = st.get("seconds", st.get("train_seconds", 0.0))
        say(f"structured: {st['params']:,} params ({100 * st['weight_usage_rate']:.1f} % of the "
            f"designed network), inner channels {st['btn_full']} -> {st['btn_per_superblock']}"
            f", shipped: {st.get('shipped', 'mstar')}")
    if cfg.refine:
        ro = cfg.refine_options
        say(f"refine: {ro['method']} on the designed network ({ro['metric']})")
        ref = _refine_stage(ds, cfg, rd.file("designed") / "checkpoint.pt", rd.file("refine"),
                            resume, progress)
        summary["refined"] = {
            "method": ref.get("method"), "val_metric_before": ref.get("val_metric_before"),
            "val_metric_after": ref.get("val_metric_after"),
            "test_macro_f1": ref.get("metric_after") if ref.get("metric") == "f1" else None,
            "metric": ref.get("metric"), "metric_before": ref.get("metric_before"),
            "metric_after_blocking": ref.get("metric_after_blocking"),
            "metric_after": ref.get("metric_after"), "dimensions": ref.get("dimensions"),
            "blocked_dimensions": ref.get("blocked_dimensions"),
            "function_evaluations": ref.get("function_evaluations"),
            "seconds": ref.get("seconds"), "params": designed_spec.params(),
            "macs": designed_spec.macs()}
        stage_seconds["refine"] = ref.get("seconds", 0.0)
    summary["stage_seconds"] = stage_seconds
    summary["seconds"] = float(sum(v or 0.0 for v in stage_seconds.values()))
    summary["wall_seconds_this_invocation"] = time.perf_counter() - t0
    rd.write_summary(summary)

    from archopt.pipeline.report import build_report

    build_report(rd.path)
    say(f"report: {rd.file('report.md')}")
    return RunResult(summary, rd.path)
