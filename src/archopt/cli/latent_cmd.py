"""``archopt latent train`` and ``archopt latent search``: SWAT-NN from the command line.

Thin: options -> :mod:`archopt.latent` calls -> a result folder and a printed summary.

    archopt latent train --activation sigmoid --preset small --steps 5000 --out ae-sigmoid
    archopt latent search --autoencoder ae-sigmoid --out swat-sigmoid            # paper's target
    archopt latent search --autoencoder ae-sigmoid --data my.csv --out swat-mine --baseline
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from archopt.cli.common import (
    OutOpt,
    comma_list,
    handle_errors,
    print_json,
    print_kv,
    print_table,
    runtime_options,
    use_threads,
    with_options,
)
from archopt.errors import InvalidSpec

latent_app = typer.Typer(
    name="latent", no_args_is_help=True, add_completion=False,
    help="SWAT-NN: an autoencoder over MLPs, then weights + architecture found by search in its "
         "latent space (arXiv 2410.08339).")

ActivationOpt = Annotated[str, typer.Option(
    "--activation", help="The MLP family's activation: sigmoid | leaky_relu (slope 0.1) | "
                         "linear (one autoencoder per activation).")]


def _depths_error(text: str) -> InvalidSpec:
    return InvalidSpec(f"--depths: expected comma-separated integers, got {text!r}")


def _pct(v: Any) -> str:
    return "-" if v is None else f"{v:.1f}"


def _validation_rows(s: dict[str, Any]) -> list[tuple[Any, ...]]:
    by = {str(k): v for k, v in (s.get("by_depth") or {}).items()}
    rows = []
    for name, f in [*((k, by[k]) for k in sorted(by)), ("all", s)]:
        rows.append((name, _pct(f.get("val_mdpe")), _pct(f.get("val_mdpe_authors")),
                     _pct(f.get("constant_mdpe")), _pct(f.get("affine_mdpe")),
                     _pct(None if f.get("beats_constant") is None
                          else 100 * f["beats_constant"]),
                     _pct(f.get("coverage_mdpe")), _pct(f.get("coverage_mdpe_authors"))))
    return rows


def _print_train(s: dict[str, Any]) -> None:
    print_kv(f"autoencoder ({s['activation']})", [
        ("steps", s["steps"]), ("minutes (wall / CPU)",
                                f"{s['minutes']:.1f} / {s.get('cpu_minutes', 0):.1f}"),
        ("final loss", s["final_loss"]), ("params", s["params"]), ("device", s["device"]),
        ("checkpoint", s["checkpoint"])])
    print_table("validation (%): MdPE ours / authors', references, MLPs beating the constant, "
                "decoder coverage", ["depth", "MdPE", "authors'", "constant", "affine",
                                     "beat const", "coverage", "cov. authors'"],
                _validation_rows(s))


def _print_search(s: dict[str, Any]) -> None:
    print_kv("SWAT-NN compact MLP", [
        ("test MSE", s["test_mse"]), ("predict-the-mean test MSE", s["mean_predictor_test_mse"]),
        ("val MSE", s["val_mse"]),
        ("hidden layers", s["hidden_layers"]), ("widths", str(s["widths"])),
        ("active neurons", s["active_neurons"]), ("non-zero weights", s["nonzero_weights"]),
        ("threshold t", s["threshold"]), ("model", s["model"])])
    print_table("per decoder depth", ["depth", "val MSE", "test MSE", "neurons", "weights", "t"],
                [(r["depth"], r["val_mse"], r["test_mse"], r["active_neurons"],
                  r["nonzero_weights"], r["threshold"]) for r in s["per_depth"]])
    if s.get("baseline"):
        b = s["baseline"]
        print_kv("baseline: dense Adam, pruned to the same count, fine-tuned", [
            ("dense test MSE", b["dense_test_mse"]),
            ("pruned test MSE (before fine-tuning)", b["pruned_test_mse"]),
            ("fine-tuned test MSE", b["test_mse"]), ("non-zero weights", b["nonzero_weights"]),
            ("live weights (dead units removed)", b["live_weights"]),
            ("active neurons", b["active_neurons"])])


@latent_app.command("train")
@handle_errors
@with_options(rt=runtime_options)
def train_cmd(
    out: OutOpt,
    activation: ActivationOpt = "sigmoid",
    preset: Annotated[str, typer.Option(
        "--preset", help="auto (cpu on a CPU, paper on a GPU) | cpu (MLP autoencoder, the "
                         "shipped ones) | paper (the paper's CNNs and schedule) | small | tiny.")
    ] = "auto",
    steps: Annotated[int | None, typer.Option(
        "--steps",
        help="Total training batches (cpu preset: 100,000, ~55 CPU-minutes; paper: 150,001 x 10).")
    ] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", help="MLPs per batch.")] = 32,
    lr: Annotated[float | None, typer.Option(
        "--lr", help="Adam learning rate (cpu: 1e-3 cosine; paper: 1e-4 step decay).")] = None,
    epoch_steps: Annotated[int, typer.Option(
        "--epoch-steps", help="Paper schedule: batches per 'epoch' (lr x0.5 every 2 epochs).")
    ] = 150_001,
    val_every: Annotated[int | None, typer.Option(
        "--val-every", help="Validate every N steps (cpu: 5,000; paper: 500).")] = None,
    val_batches: Annotated[int, typer.Option(
        "--val-batches", help="Fixed-seed validation batches of 32 MLPs.")] = 8,
    coverage_mlps: Annotated[int, typer.Option(
        "--coverage-mlps", help="Validation MLPs in the decoder-coverage figure (0: none).")
    ] = 128,
    max_minutes: Annotated[float | None, typer.Option(
        "--max-minutes", help="Stop (checkpointed) after this wall time; rerun to continue.")
    ] = None,
    resume: Annotated[bool, typer.Option(
        "--resume/--no-resume", help="Continue the checkpoint in --out (default) or start over.")
    ] = True,
    rt: Any = None,
) -> None:
    """Train the multi-scale autoencoder over random sparse MLPs (resumable)."""
    from archopt.latent import PRESETS, TrainConfig, train_autoencoder
    from archopt.latent.training import PAPER_STEPS
    from archopt.runs.locking import lock_folder
    from archopt.runtime.devices import resolve_device
    from archopt.runtime.progress import progress

    use_threads(rt.threads)
    if preset == "auto":
        preset = "cpu" if resolve_device(rt.device).type == "cpu" else "paper"
    if preset not in PRESETS:
        raise InvalidSpec(f"unknown --preset {preset!r} (use one of: auto, {', '.join(PRESETS)})")
    config = PRESETS[preset](activation)
    changes: dict[str, Any] = {k: v for k, v in (("steps", steps), ("lr", lr),
                                                 ("val_every", val_every)) if v is not None}
    if "val_every" in changes:
        changes["checkpoint_every"] = changes["val_every"]
    common = dict(batch_size=batch_size, seed=rt.seed, val_batches=val_batches,
                  coverage_mlps=coverage_mlps)
    if preset != "cpu":  # the paper's schedule; the paper's scale for the paper's sizes
        changes.setdefault("steps", PAPER_STEPS if preset == "paper" else 2000)
    train = (TrainConfig.cpu(**common, **changes) if preset == "cpu" else
             TrainConfig(**{"checkpoint_every": changes.get("val_every", 500), **common,
                            **changes, "epoch_steps": epoch_steps}))
    with lock_folder(out), progress(train.steps, f"latent train ({activation}, {preset})") as bar:
        summary = train_autoencoder(out, config, train, device=rt.device, resume=resume,
                                    max_minutes=max_minutes, progress=bar)
    summary["preset"] = preset
    if rt.json:
        print_json(summary)
    else:
        _print_train(summary)


@latent_app.command("search")
@handle_errors
@with_options(rt=runtime_options)
def search_cmd(
    out: OutOpt,
    autoencoder: Annotated[Path | None, typer.Option(
        "--autoencoder", help="Result folder of `archopt latent train` (or its .pt); default: "
                              "the autoencoder shipped for --activation.")] = None,
    activation: Annotated[str, typer.Option(
        "--activation", help="Without --autoencoder: which shipped autoencoder (sigmoid | "
                             "leaky_relu).")] = "sigmoid",
    data: Annotated[str | None, typer.Option(
        "--data", help="A .csv (features..., target) or .npz (x, y) file, or 'synthetic' "
                       "(default: the paper's random sparse width-5 target).")] = None,
    target: Annotated[str | None, typer.Option(
        "--target", help="CSV target column (name or 0-based index; default: last).")] = None,
    steps: Annotated[int, typer.Option("--steps", help="Adam steps per decoder depth.")] = 1000,
    depths: Annotated[str | None, typer.Option(
        "--depths", help="Decoder depths to search, e.g. 1,2,3 (default: all).")] = None,
    start: Annotated[str, typer.Option(
        "--start", help="encoded (encodings of family MLPs, the default) | uniform (the "
                        "paper's z ~ U(0,1)).")] = "encoded",
    restarts: Annotated[int, typer.Option(
        "--restarts", help="Latent points searched together per depth (best by val MSE).")
    ] = 4,
    lr_t: Annotated[float | None, typer.Option(
        "--lr-t", help="Adam learning rate of the threshold t (default: SearchConfig's).")
    ] = None,
    scale_x: Annotated[bool, typer.Option(
        "--scale-x/--no-scale-x", help="Min-max scale a file's features to [-1, 1] on the "
                                       "training split (the autoencoder's input domain).")] = True,
    samples: Annotated[int, typer.Option(
        "--samples", help="Synthetic target: samples (split 50/30/20 %).")] = 100_000,
    target_depth: Annotated[int, typer.Option(
        "--target-depth", help="Synthetic target: hidden layers of width 5.")] = 2,
    target_seed: Annotated[int, typer.Option(
        "--target-seed", help="Synthetic target: its own seed.")] = 0,
    baseline: Annotated[bool, typer.Option(
        "--baseline/--no-baseline", help="Also train the baseline: dense Adam, magnitude-pruned "
                                         "to the same non-zero count, fine-tuned with the mask "
                                         "fixed.")] = True,
    baseline_steps: Annotated[int, typer.Option(
        "--baseline-steps", help="Full-batch Adam steps (lr 0.01) of the baseline, dense and "
                                 "again for the fine-tuning.")] = 2000,
    resume: Annotated[bool, typer.Option(
        "--resume/--no-resume", help="Reuse depths already searched in --out.")] = True,
    rt: Any = None,
) -> None:
    """Find a compact MLP (weights + architecture) for regression data by latent search."""
    from archopt.latent import (
        SearchConfig,
        latent_search,
        load_autoencoder,
        load_search_data,
        pruned_baseline,
    )
    from archopt.latent.pretrained import load_pretrained
    from archopt.runs import ResultDir
    from archopt.runs.locking import lock_folder
    from archopt.runtime.progress import progress

    use_threads(rt.threads)
    if autoencoder is None:
        model, info = load_pretrained(activation, rt.device)
        source = f"shipped:{activation}"
    else:
        model, info = load_autoencoder(autoencoder, rt.device)
        source = str(autoencoder)
    cfg = model.config
    dataset, target_info = load_search_data(
        data, activation=cfg.activation, negative_slope=cfg.negative_slope, n_in=cfg.n_in,
        seed=target_seed, target=target,
        synthetic={"depth": target_depth, "samples": samples})
    splits = dataset.split(seed=rt.seed)
    scaling = None
    if target_info is None and scale_x:
        splits, scaling = splits.minmax_scaled()
    search = SearchConfig(steps=steps, depths=comma_list(depths, int, _depths_error),
                          seed=rt.seed, start=start,
                          restarts=restarts, **({} if lr_t is None else {"lr_t": lr_t}))
    with lock_folder(out):  # one writer per folder
        rd = ResultDir(out)
        rd.write_config({"command": "latent search", "autoencoder": source,
                         "autoencoder_steps": info["step"], "autoencoder_config": info["config"],
                         "data": dataset.source, "splits": splits.sizes(), "x_scaling": scaling,
                         "target": target_info, "search": search.model_dump(mode="json"),
                         "baseline": baseline, "device": str(next(model.parameters()).device)})
        n_depths = len(search.depths or model.depths)
        with progress(steps * n_depths, "latent search") as bar:
            result = latent_search(model, splits, search, out=rd.path, resume=resume, progress=bar)
        summary: dict[str, Any] = {"command": "latent search", **result.summary(),
                                   "activation": cfg.activation, "autoencoder": source,
                                   "data": dataset.source,
                                   "splits": splits.sizes(), "x_scaling": scaling,
                                   "target": target_info, "model": str(rd.file("model.pt")),
                                   "arch": str(rd.file(rd.ARCH))}
        if baseline:
            summary["baseline"] = pruned_baseline(
                splits, depth=result.best.depth, nonzero=result.compact.nonzero_weights,
                activation=cfg.activation, negative_slope=cfg.negative_slope,
                width=cfg.max_width, steps=baseline_steps, seed=rt.seed,
                device=next(model.parameters()).device)
        rd.write_summary(summary)
    if rt.json:
        print_json(summary)
    else:
        _print_search(summary)


def register(app: typer.Typer) -> None:
    """Add ``archopt latent train|search``."""
    app.add_typer(latent_app, name="latent")
