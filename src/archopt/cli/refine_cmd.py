"""``archopt refine CHECKPOINT --method hbde|logit-adjust|bias --metric f1 --out DIR``: refine a
trained classifier for a metric (HBDE: ``--bins N --population NP --generations G
--super-batch B``; logit adjustment: ``--taus``; bias tuning: ``--bias-optimizer``).

Thin: parses options into a :class:`~archopt.refine.RefineConfig`, loads the checkpoint and the
data, calls :func:`archopt.refine.refine` (and the baselines / the N_bins sweep), prints.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from archopt.cli.common import (
    DataDirOpt,
    OutOpt,
    RuntimeArgs,
    comma_list,
    console,
    handle_errors,
    print_json,
    print_kv,
    print_table,
    runtime_options,
    use_threads,
    with_options,
)
from archopt.cli.sweep_common import SweepArgs, finish_sweep, print_sweep_json, sweep_options
from archopt.cli.sweep_common import echo as sweep_echo
from archopt.errors import ArchoptError

CheckpointArg = Annotated[Path, typer.Argument(
    help="A checkpoint (.pt) that `archopt train` or `archopt run` wrote, or its result folder.")]


def _list_error(option: str, kind: str) -> Callable[[str], ArchoptError]:
    """The error of an option's comma-separated list that does not parse (:func:`comma_list`)."""
    return lambda text: ArchoptError(f"{option} expects comma-separated {kind}, got {text!r}")


def _print_summary(s: dict) -> None:
    m, v = s["metric"], s["validation"]
    rows: list[tuple[str, Any]] = [
        (f"validation {m}: before -> after", f"{s['val_metric_before']:.4f} -> "
                                             f"{s['val_metric_after']:.4f}"),
        (f"test {m}: before -> after", f"{s['metric_before']:.4f} -> {s['metric_after']:.4f}"),
        ("validation split", f"{v['size']} images, {v['source']}"
                             + (f" (fraction {v['fraction']}, seed {v['seed']})"
                                if v["source"] == "held-out" else "")),
        ("function evaluations", s["function_evaluations"])]
    adj = s.get("adjustment")
    if adj is not None:
        if "tau" in adj:
            rows.append(("tau", adj["tau"]))
        else:
            rows.append(("optimizer", f"{adj['optimizer']} (bound {adj['bound']:.3g}, "
                                      f"{'accepted' if adj['accepted'] else 'kept identity'})"))
        rows.append(("offsets folded into", adj["folded_into"]))
    else:
        rows += [
            ("dimensions D -> D'", f"{s['dimensions']:,} -> {s['blocked_dimensions']:,}"),
            (f"test {m}: blocked", s["metric_after_blocking"]),
            ("generations", s["generations"]),
            ("evaluation path", f"{s['evaluation']['path']}"
                                + (f" (chunk {s['evaluation']['chunk']})"
                                   if s["evaluation"].get("chunk") else "")),
            ("parents re-scored", s["rescore"]),
            ("variant (ours)", ", ".join(f"{k}={x}" for k, x in s["variant"].items()) or
             "none (published)")]
    rows += [("search CPU seconds", s["search_cpu_seconds"]), ("seconds", s["seconds"]),
             ("device", s["device"])]
    print_kv(f"{s['method']} on {s['dataset']}", rows)
    if s.get("baselines"):
        print_table(f"baselines (equal search time, test {m})",
                    ["baseline", m, "seconds", "FE / steps"],
                    [(k, v.get("metric_after"), v.get("search_seconds"),
                      v.get("function_evaluations") or v.get("steps"))
                     for k, v in s["baselines"].items()])


def _run_seeds(checkpoint: Path, ds: Any, out: Path, cfg: Any, sw: SweepArgs,
               baseline: list[str] | None, adam_lr: float, sweep: str | None, resume: bool,
               rt: RuntimeArgs) -> None:
    """``refine --seeds``: one HBDE run per seed through the sweep runner; print the table."""
    from archopt.refine.sweep import refine_seeds
    from archopt.runs.sweeps import parse_seeds

    if sweep is not None:
        raise ArchoptError("--seeds and --sweep exclude each other (--sweep prices the "
                           "blocking only)")
    del resume  # a seed sweep always resumes
    t = refine_seeds(checkpoint, ds, parse_seeds(sw.seeds) or [], out=out,
                     config=cfg.to_dict(), baselines=baseline, adam_lr=adam_lr,
                     backend=sw.backend, workers=sw.workers, address=sw.address,
                     threads=rt.threads, progress=not rt.json, echo=sweep_echo)
    if rt.json:
        print_sweep_json(t, out, t["rows"], [t["runner"]])
        return
    m = t["metric"]
    print_table(f"{cfg.method} per seed (test {m})", ["seed", "pre-trained", "blocked", "refined",
                                              "FE", "search s"],
                [(r.get("seed"), r.get("metric_before"), r.get("metric_after_blocking"),
                  r.get("metric_after"), r.get("function_evaluations"),
                  r.get("search_seconds")) for r in t["rows"]])
    if t["std_after"] is not None:
        console.print(f"refined {m}: mean {t['mean_after']:.4f}, std {t['std_after']:.4f} "
                      f"over {len(sw.seeds.split(','))} seeds", highlight=False)
    finish_sweep(t["rows"], [t["runner"]], f"table in {out / 'sweep.json'}")


def register(app: typer.Typer) -> None:
    @app.command("refine")
    @handle_errors
    @with_options(sw=sweep_options, rt=runtime_options)
    def refine_cmd(
        checkpoint: CheckpointArg,
        out: OutOpt,
        method: Annotated[str, typer.Option(
            "--method", help="hbde (the paper) | logit-adjust (Menon et al. 2021, tau on the "
                             "validation split) | bias (per-class output biases tuned on the "
                             "validation split).")] = "hbde",
        val_fraction: Annotated[float, typer.Option(
            "--val-fraction", help="Stratified share of the training split held out as the "
                                   "validation split (every method).")] = 0.1,
        val_seed: Annotated[int, typer.Option(
            "--val-seed", help="Seed of the validation hold-out.")] = 0,
        taus: Annotated[str | None, typer.Option(
            "--taus", help="logit-adjust: comma-separated tau grid [default: 0,0.25,...,3].")
        ] = None,
        bias_optimizer: Annotated[str, typer.Option(
            "--bias-optimizer", help="bias: differential-evolution (scipy) | cma (needs "
                                     "archopt[cma]).")] = "differential-evolution",
        bias_evaluations: Annotated[int, typer.Option(
            "--bias-evaluations", help="bias: offsets scored by the optimiser.")] = 5000,
        bias_bound: Annotated[float | None, typer.Option(
            "--bias-bound", help="bias: search box +-bound in logit units [default: a quarter "
                                 "of the median top-2 logit margin on validation].")] = None,
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
                                 "move) | layer (ours: +- --init-spread x its tensors' std)."
        )] = "bin",
        init_spread: Annotated[float, typer.Option(
            "--init-spread", help="With --init-range layer: the multiple of the tensors' "
                                  "standard deviation.")] = 1.0,
        bias_genes: Annotated[bool, typer.Option(
            "--bias-genes/--no-bias-genes", help="Ours: one gene per output bias beside the "
                                                 "blocks.")] = False,
        bias_gene_range: Annotated[float, typer.Option(
            "--bias-gene-range", help="With --bias-genes: initial range +- this (logits).")
        ] = 1.0,
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
        sw: Any = None,
        rt: Any = None,
    ) -> None:
        """Refine a trained classifier for a metric: HBDE (histogram blocking + differential
        evolution, the paper), post-hoc logit adjustment or per-class bias tuning on a
        validation split held out of the training split; write OUT/{summary.json,
        metrics.jsonl, checkpoint.pt, convergence.png, config.json}. With --seeds: one run
        per seed in OUT/seed_<k>/ as Ray tasks (--workers, --address) or in this process
        without Ray, and OUT/sweep.json (the table), grid.json, status.json; rerunning
        resumes; exit 1 when a seed failed."""
        from archopt.data import load_dataset
        from archopt.refine import RefineConfig, load_source, refine, run_baselines
        from archopt.refine.sweep import blocking_sweep
        from archopt.runs import ResultDir
        from archopt.runs.locking import lock_folder

        use_threads(rt.threads)
        src = load_source(checkpoint)
        cfg = RefineConfig.from_any(
            None, method=method, val_fraction=val_fraction, val_seed=val_seed,
            taus=comma_list(taus, float, _list_error("--taus", "numbers")),
            bias_optimizer=bias_optimizer,
            bias_evaluations=bias_evaluations, bias_bound=bias_bound,
            init_spread=init_spread, bias_genes=bias_genes, bias_gene_range=bias_gene_range,
            n_bins=bins, population=population, generations=generations,
            super_batch=super_batch, metric=metric, F=f_weight, CR=cr, rescore=rescore,
            block_mean_member=block_mean, init_range=init_range, eval_every=eval_every,
            eval_path=eval_path, chunk=chunk, max_seconds=max_seconds, clock=clock,
            train_eval_size=train_eval_size, seed=rt.seed, device=rt.device)
        name = data or src.meta.get("dataset")
        if not name:
            raise ArchoptError(f"{checkpoint} names no dataset; pass --data NAME")
        ds = load_dataset(name, data_dir)
        if cfg.method != "hbde" and (baseline or sweep is not None):
            raise ArchoptError(f"--baseline and --sweep go with --method hbde, not {cfg.method}")
        if sw.seeds is not None:
            _run_seeds(checkpoint, ds, out, cfg, sw, baseline, adam_lr, sweep, resume, rt)
            return
        with lock_folder(out):  # one writer per folder
            if sweep is not None:
                bins_list = list(comma_list(sweep, int, _list_error("--sweep", "integers")))
                rep = blocking_sweep(src, ds, bins_list, metric=metric, device=rt.device,
                                     train_eval_size=train_eval_size, seed=rt.seed)
                ResultDir(out).write_json("sweep.json", rep)
            else:
                rep = None
                result = refine(src, ds, cfg, out, resume=resume, progress=not rt.json)
                if baseline:
                    run_baselines(result, src, ds, baseline, adam_lr=adam_lr,
                                  progress=not rt.json)
        if rep is not None:
            if rt.json:
                print_json(rep)
                return
            print_table(f"blocking cost, D = {rep['dimensions']:,} (original: test "
                        f"{rep['original']['test']:.4f})",
                        ["N_bins", "D'", "D/D'", f"train {metric}", f"test {metric}"],
                        [(r["n_bins"], r["blocked_dimensions"], round(r["reduction"], 1),
                          r["train"], r["test"]) for r in rep["rows"]])
            return
        if rt.json:
            print_json({**result.summary, "out": str(out)})
            return
        _print_summary(result.summary)
        console.print(f"results in {out}", highlight=False)
