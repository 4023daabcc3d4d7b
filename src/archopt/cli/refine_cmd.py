"""``archopt refine CHECKPOINT --data NAME --bins N --population NP --generations G
--super-batch B --metric f1 --out DIR``: HBDE fine-tuning for any metric.

Thin: parses options into a :class:`~archopt.refine.RefineConfig`, loads the checkpoint and the
data, calls :func:`archopt.refine.refine` (and the baselines / the N_bins sweep), prints.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from archopt.cli.common import (
    DataDirOpt,
    DeviceOpt,
    JsonOpt,
    OutOpt,
    SeedOpt,
    ThreadsOpt,
    console,
    handle_errors,
    print_json,
    print_kv,
    print_table,
    use_threads,
)
from archopt.cli.sweep_common import (
    AddressOpt,
    InProcessOpt,
    SeedsOpt,
    WorkersOpt,
    backend_of,
    finish_sweep,
)
from archopt.cli.sweep_common import echo as sweep_echo
from archopt.errors import ArchoptError

CheckpointArg = Annotated[Path, typer.Argument(
    help="A checkpoint (.pt) that `archopt train` or `archopt run` wrote, or its result folder.")]


def _ints(text: str) -> list[int]:
    try:
        return [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise ArchoptError(f"--sweep expects comma-separated integers, got {text!r}") from None


def _print_summary(s: dict) -> None:
    m = s["metric"]
    print_kv(f"{s['method']} on {s['dataset']}", [
        ("dimensions D", s["dimensions"]), ("blocked dimensions D'", s["blocked_dimensions"]),
        (f"test {m}: pre-trained", s["metric_before"]),
        (f"test {m}: blocked", s["metric_after_blocking"]),
        (f"test {m}: refined", s["metric_after"]),
        ("function evaluations", s["function_evaluations"]),
        ("generations", s["generations"]),
        ("evaluation path", f"{s['evaluation']['path']}"
                            + (f" (chunk {s['evaluation']['chunk']})"
                               if s["evaluation"].get("chunk") else "")),
        ("parents re-scored", s["rescore"]),
        ("search seconds", s["search_seconds"]), ("seconds", s["seconds"]),
        ("device", s["device"]),
    ])
    if s.get("baselines"):
        print_table(f"baselines (equal search time, test {m})",
                    ["baseline", m, "seconds", "FE / steps"],
                    [(k, v.get("metric_after"), v.get("search_seconds"),
                      v.get("function_evaluations") or v.get("steps"))
                     for k, v in s["baselines"].items()])


def _run_seeds(checkpoint: Path, ds: Any, out: Path, cfg: Any, seeds: str,
               baseline: list[str] | None, adam_lr: float, sweep: str | None, resume: bool,
               backend: str, workers: int | None, address: str | None, threads: int | None,
               json_: bool) -> None:
    """``refine --seeds``: one HBDE run per seed through the sweep runner; print the table."""
    from archopt.refine.sweep import refine_seeds
    from archopt.sweeps import parse_seeds

    if sweep is not None:
        raise ArchoptError("--seeds and --sweep exclude each other (--sweep prices the "
                           "blocking only)")
    del resume  # a seed sweep always resumes
    t = refine_seeds(checkpoint, ds, parse_seeds(seeds) or [], out=out,
                     config=cfg.to_dict(), baselines=baseline, adam_lr=adam_lr,
                     backend=backend, workers=workers, address=address, threads=threads,
                     progress=not json_, echo=sweep_echo)
    if json_:
        print_json({**t, "out": str(out)})
        finish_sweep(t["rows"], [t["runner"]], "", quiet=True)
        return
    m = t["metric"]
    print_table(f"HBDE per seed (test {m})", ["seed", "pre-trained", "blocked", "refined",
                                              "FE", "search s"],
                [(r.get("seed"), r.get("metric_before"), r.get("metric_after_blocking"),
                  r.get("metric_after"), r.get("function_evaluations"),
                  r.get("search_seconds")) for r in t["rows"]])
    if t["std_after"] is not None:
        console.print(f"refined {m}: mean {t['mean_after']:.4f}, std {t['std_after']:.4f} "
                      f"over {len(seeds.split(','))} seeds", highlight=False)
    finish_sweep(t["rows"], [t["runner"]], f"table in {out / 'sweep.json'}")


def register(app: typer.Typer) -> None:
    @app.command("refine")
    @handle_errors
    def refine_cmd(
        checkpoint: CheckpointArg,
        out: OutOpt,
        data: Annotated[str | None, typer.Option(
            "--data", help="Dataset name [default: the checkpoint's].")] = None,
        data_dir: DataDirOpt = None,
        bins: Annotated[int, typer.Option("--bins", help="N_bins, histogram bins.")] = 10_000,
        population: Annotated[int, typer.Option("--population", help="NP, DE population.")
                              ] = 100,
        generations: Annotated[int, typer.Option(
            "--generations", help="G; FE = NP x G (the initial population is generation 0).")
        ] = 100,
        super_batch: Annotated[int, typer.Option(
            "--super-batch", help="B, training examples per circular super-batch.")] = 128,
        metric: Annotated[str, typer.Option(
            "--metric", help="f1 (macro-F1) | accuracy | balanced_accuracy.")] = "f1",
        f_weight: Annotated[float, typer.Option("--F", help="DE differential weight.")] = 0.5,
        cr: Annotated[float, typer.Option("--CR", help="DE crossover rate.")] = 0.9,
        rescore: Annotated[bool, typer.Option(
            "--rescore/--no-rescore", help="Re-score parents on each new super-batch.")] = False,
        block_mean: Annotated[bool, typer.Option(
            "--block-mean/--no-block-mean", help="Block-mean vector as a member of the "
                                                 "initial population.")] = True,
        init_range: Annotated[str, typer.Option(
            "--init-range", help="bin (over each block's bin width: every block can move) | "
                                 "members (range of its parameters; one-member blocks never "
                                 "move).")] = "bin",
        eval_every: Annotated[int, typer.Option(
            "--eval-every", help="Test metric of the best every k generations.")] = 10,
        eval_path: Annotated[str, typer.Option(
            "--eval-path", help="auto (measured) | sequential | batched.")] = "auto",
        chunk: Annotated[int | None, typer.Option(
            "--chunk", help="Candidates per batched call [default: measured].")] = None,
        max_seconds: Annotated[float | None, typer.Option(
            "--max-seconds", help="Stop once the search has taken this many seconds.")] = None,
        clock: Annotated[str, typer.Option(
            "--clock", help="What --max-seconds (and the baselines' budget) counts: wall | cpu "
                            "(process CPU seconds; fair on a shared machine).")] = "wall",
        train_eval_size: Annotated[int | None, typer.Option(
            "--train-eval-size", help="Training examples used to price the blocking "
                                      "[default: all].")] = None,
        baseline: Annotated[list[str] | None, typer.Option(
            "--baseline", help="adam | random-blocks (repeatable), run after HBDE for the same "
                               "search time.")] = None,
        adam_lr: Annotated[float, typer.Option(
            "--adam-lr", help="Learning rate of the Adam baseline.")] = 1e-4,
        sweep: Annotated[str | None, typer.Option(
            "--sweep", help="Only price the blocking at these N_bins (e.g. 100,1000,10000); "
                            "writes OUT/sweep.json.")] = None,
        resume: Annotated[bool, typer.Option(
            "--resume", help="Continue the run in --out (G may be raised).")] = False,
        seeds: SeedsOpt = None,
        workers: WorkersOpt = None,
        address: AddressOpt = None,
        in_process: InProcessOpt = False,
        seed: SeedOpt = 0,
        device: DeviceOpt = "auto",
        threads: ThreadsOpt = None,
        json_: JsonOpt = False,
    ) -> None:
        """Fine-tune a trained classifier with HBDE (histogram blocking + differential
        evolution) for any metric; write OUT/{summary.json, metrics.jsonl, checkpoint.pt,
        convergence.png, config.json}. With --seeds: one run per seed in OUT/seed_<k>/ as
        Ray tasks (--workers, --address) or in this process without Ray, and OUT/sweep.json
        (the table), grid.json, status.json; rerunning resumes; exit 1 when a seed failed."""
        from archopt.data import load_dataset
        from archopt.locking import lock_folder
        from archopt.refine import RefineConfig, load_source, refine, run_baselines
        from archopt.refine.sweep import blocking_sweep
        from archopt.runs import ResultDir

        use_threads(threads)
        src = load_source(checkpoint)
        cfg = RefineConfig.from_any(
            None, n_bins=bins, population=population, generations=generations,
            super_batch=super_batch, metric=metric, F=f_weight, CR=cr, rescore=rescore,
            block_mean_member=block_mean, init_range=init_range, eval_every=eval_every,
            eval_path=eval_path, chunk=chunk, max_seconds=max_seconds, clock=clock,
            train_eval_size=train_eval_size, seed=seed, device=device)
        name = data or src.meta.get("dataset")
        if not name:
            raise ArchoptError(f"{checkpoint} names no dataset; pass --data NAME")
        ds = load_dataset(name, data_dir)
        if seeds is not None:
            _run_seeds(checkpoint, ds, out, cfg, seeds, baseline, adam_lr, sweep, resume,
                       backend_of(in_process, address), workers, address, threads, json_)
            return
        with lock_folder(out):  # one writer per folder
            if sweep is not None:
                rep = blocking_sweep(src, ds, _ints(sweep), metric=metric, device=device,
                                     train_eval_size=train_eval_size, seed=seed)
                ResultDir(out).write_json("sweep.json", rep)
            else:
                rep = None
                result = refine(src, ds, cfg, out, resume=resume, progress=not json_)
                if baseline:
                    run_baselines(result, src, ds, baseline, adam_lr=adam_lr,
                                  progress=not json_)
        if rep is not None:
            if json_:
                print_json(rep)
                return
            print_table(f"blocking cost, D = {rep['dimensions']:,} (original: test "
                        f"{rep['original']['test']:.4f})",
                        ["N_bins", "D'", "D/D'", f"train {metric}", f"test {metric}"],
                        [(r["n_bins"], r["blocked_dimensions"], round(r["reduction"], 1),
                          r["train"], r["test"]) for r in rep["rows"]])
            return
        if json_:
            print_json({**result.summary, "out": str(out)})
            return
        _print_summary(result.summary)
        console.print(f"results in {out}", highlight=False)
