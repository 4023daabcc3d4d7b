"""``archopt run``: design -> train -> baseline -> (structure) -> (refine) -> report, on the
embedded digits by default. Thin: options -> :class:`~archopt.pipeline.config.RunConfig` ->
:func:`~archopt.pipeline.run.run_pipeline`."""

from __future__ import annotations

import datetime as _dt
from pathlib import Path
from typing import Annotated, Any

import typer

from archopt.cli.common import (
    DeviceOpt,
    JsonOpt,
    ThreadsOpt,
    err_console,
    handle_errors,
    print_json,
    print_table,
    size_options,
    use_threads,
    with_options,
)
from archopt.pipeline.config import RunConfig
from archopt.pipeline.report import baseline_rows, results_rows
from archopt.pipeline.run import run_pipeline


def _mega(v: Any) -> str | None:
    return None if v is None else f"{v / 1e6:.3f}M"


def print_results(summary: dict[str, Any], out: Path) -> None:
    """The results table of a run, as ``report.md`` shows it (short row labels, ``+ structure``
    for ``designed + structure``; the baseline's name goes in the caption so that the table
    fits an 80-column terminal)."""
    def pct(v: Any) -> str | None:
        return None if v is None else f"{100 * v:.2f}%"

    def with_ratio(v: str | None, ratio: Any) -> str | None:
        return v if v is None or ratio is None else f"{v} x{ratio:.2f}"

    rows = [(r[0], pct(r[1]), pct(r[2]), with_ratio(_mega(r[3]), r[10]),
             with_ratio(_mega(r[4]), r[11]),
             with_ratio(None if r[5] is None else f"{r[5]:.2f}", r[12]),
             None if r[7] is None else f"{r[7]:.3f}",
             None if r[8] is None else f"{r[8]:,.0f}", None if r[9] is None else f"{r[9]:.3f}")
            for r in results_rows(summary, short=True)]
    names = "; ".join(f"{k}: {m.get('name')}" for k, m in baseline_rows(summary).items())
    stages = "design + training" + "".join(f" + {name}" for key, name in (
        ("structured", "structure"), ("refined", (summary.get("refined") or {}).get(
            "method") or "HBDE")) if summary.get(key))
    verdict = (summary.get("comparison") or {}).get("verdict")
    print_table(f"archopt run: {summary['data']} (test split)",
                ["model", "acc", "F1", "params", "MACs", "ms", "ort", "entropy", "rho"],
                rows,
                caption=(f"{names}; x = baseline / design; " if names else "")
                + "F1 = macro-F1; ms = batch-1 latency (torch)"
                + (", ort = onnxruntime's" if any(r[6] is not None for r in rows) else "")
                + f"; {summary['seconds']:.1f} s of {stages}; report: {out / 'report.md'}"
                + (f"\n{verdict}" if verdict else ""))


def register(app: typer.Typer) -> None:
    @app.command("run")
    @handle_errors
    @with_options(sizes=size_options)
    def run(
        data: Annotated[str | None, typer.Option(
            "--data", help="digits (embedded default), mnist, fashion-mnist, cifar10, "
            "cifar100, svhn.")] = None,
        data_dir: Annotated[str | None, typer.Option(
            "--data-dir", help="Folder with one sub-folder per dataset "
            "(default $ARCHOPT_DATA_DIR).")] = None,
        budget_macs: Annotated[float | None, typer.Option(
            "--budget-macs", help="MACs per image of the designed network (classifier "
            "included). Default: 2e6 on digits, 4e7 otherwise.")] = None,
        budget_params: Annotated[float | None, typer.Option(
            "--budget-params", help="Parameters (default: 5e5 on digits, 1e6 otherwise).")]
            = None,
        budget_layers: Annotated[int | None, typer.Option(
            "--budget-layers", help="Layers (default: unbounded).")] = None,
        rho: Annotated[float | None, typer.Option(
            "--rho", help="Effectiveness bound (default 0.3 resnet, 0.5 mbv2).")] = None,
        space: Annotated[str | None, typer.Option("--space", help="resnet | mbv2.")] = None,
        candidates: Annotated[int | None, typer.Option(
            "--candidates", help="Candidates the design search scores (default 20000).")]
            = None,
        epochs: Annotated[int | None, typer.Option(
            "--epochs", help="Training epochs (both networks).")] = None,
        batch_size: Annotated[int | None, typer.Option(
            "--batch-size", help="Examples per step (default: 64 on digits, 128 otherwise).")]
            = None,
        lr: Annotated[float | None, typer.Option(
            "--lr", help="Peak learning rate of SGD (default 0.05).")] = None,
        seeds: Annotated[int | None, typer.Option(
            "--seeds", help="Train every network with this many seeds (seed, seed + 1, ...) "
            "and compare the paired differences (default 1).")] = None,
        sizes: Any = None,
        refine: Annotated[bool | None, typer.Option(
            "--refine/--no-refine", help="Add the macro-F1 refine stage (method: the refine "
                                         "comparison's best, or refine_options.method).")
        ] = None,
        structure: Annotated[bool | None, typer.Option(
            "--structure/--no-structure", help="Add the structure stage: shrink the trained "
            "designed network's inner channels (ASNG + complexity penalty, 3 epochs).")]
            = None,
        structure_penalty: Annotated[float | None, typer.Option(
            "--structure-penalty", help="eps0 of the structure stage (default 0.25; larger "
            "keeps fewer channels).")] = None,
        config: Annotated[Path | None, typer.Option(
            "--config", help="A YAML file holding any of these options (flags win).")] = None,
        out: Annotated[Path | None, typer.Option(
            "--out", help="Result folder (default runs/<data>-<time>).")] = None,
        resume: Annotated[bool, typer.Option(
            "--resume", help="Continue an interrupted run in --out.")] = False,
        no_verify: Annotated[bool, typer.Option(
            "--no-verify", help="Skip dataset checksums (your own copy).")] = False,
        seed: Annotated[int | None, typer.Option(
            "--seed", help="Seed for design, training and refinement (default 0).")] = None,
        device: DeviceOpt = "auto",
        threads: ThreadsOpt = None,
        json_: JsonOpt = False,
    ) -> None:
        """Design a CNN within budgets, train it and hand-designed baselines at equal budgets with
        the same recipe, and write a report (report.md + plots)."""
        choice = use_threads(threads)
        train = {k: v for k, v in (("epochs", epochs), ("batch_size", batch_size), ("lr", lr))
                 if v is not None}
        flags: dict[str, Any] = dict(
            data=data, data_dir=data_dir, budget_macs=budget_macs, budget_params=budget_params,
            budget_layers=budget_layers, rho=rho, space=space, candidates=candidates,
            train_size=sizes.train, test_size=sizes.test, refine=refine, structure=structure,
            seed=seed, seeds=seeds,
            device=device if device != "auto" else None,
            verify=False if no_verify else None)
        if config is not None:
            cfg = RunConfig.from_yaml(config, **flags)
        else:
            cfg = RunConfig(**{k: v for k, v in flags.items() if v is not None})
        nested = {"train": train, "structure_options": {} if structure_penalty is None
                  else {"penalty": structure_penalty}}
        cfg = cfg.model_copy(update={k: {**getattr(cfg, k), **v} for k, v in nested.items()
                                     if v})
        if out is None:
            if resume:
                raise typer.BadParameter("--resume needs --out (the folder to continue)")
            stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
            out = Path("runs") / f"{cfg.data}-{stamp}"
        log = (lambda _m: None) if json_ else (lambda m: err_console.print(f"[bold]>[/] {m}"))
        log(f"threads: {choice.describe()}")
        result = run_pipeline(cfg, out, resume=resume, progress=not json_, log=log)
        if json_:
            print_json(result.summary)
        else:
            print_results(result.summary, result.out)
