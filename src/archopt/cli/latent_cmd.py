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
    DeviceOpt,
    JsonOpt,
    OutOpt,
    SeedOpt,
    ThreadsOpt,
    handle_errors,
    print_json,
    print_kv,
    print_table,
    use_threads,
)
from archopt.errors import InvalidSpec

latent_app = typer.Typer(
    name="latent", no_args_is_help=True, add_completion=False,
    help="SWAT-NN: an autoencoder over MLPs, then weights + architecture found by search in its "
         "latent space (arXiv 2410.08339).")

ActivationOpt = Annotated[str, typer.Option(
    "--activation", help="The MLP family's activation: sigmoid | leaky_relu (slope 0.1) | "
                         "linear (one autoencoder per activation).")]


def _depths(text: str | None) -> tuple[int, ...] | None:
    if text is None:
        return None
    try:
        return tuple(int(t) for t in text.split(",") if t.strip())
    except ValueError:
        raise InvalidSpec(f"--depths: expected comma-separated integers, got {text!r}") from None


def _print_train(s: dict[str, Any]) -> None:
    print_kv(f"autoencoder ({s['activation']})", [
        ("steps", s["steps"]), ("minutes", s["minutes"]), ("final loss", s["final_loss"]),
        ("val MdPE (%)", s["val_mdpe"]), ("params", s["params"]), ("device", s["device"]),
        ("checkpoint", s["checkpoint"])])
    print_table("validation by depth of the original MLP",
                ["depth", "MdPE (%)", "best-decoder share"],
                [(int(d), s["val_mdpe_by_depth"].get(d, s["val_mdpe_by_depth"].get(str(d))),
                  s["decoder_share"].get(d, s["decoder_share"].get(str(d))))
                 for d in sorted(int(k) for k in s["decoder_share"])])


def _print_search(s: dict[str, Any]) -> None:
    print_kv("SWAT-NN compact MLP", [
        ("test MSE", s["test_mse"]), ("val MSE", s["val_mse"]),
        ("hidden layers", s["hidden_layers"]), ("widths", str(s["widths"])),
        ("active neurons", s["active_neurons"]), ("non-zero weights", s["nonzero_weights"]),
        ("threshold t", s["threshold"]), ("model", s["model"])])
    print_table("per decoder depth", ["depth", "val MSE", "test MSE", "neurons", "weights", "t"],
                [(r["depth"], r["val_mse"], r["test_mse"], r["active_neurons"],
                  r["nonzero_weights"], r["threshold"]) for r in s["per_depth"]])
    if s.get("baseline"):
        b = s["baseline"]
        print_kv("baseline: dense Adam, magnitude-pruned to the same weights", [
            ("dense test MSE", b["dense_test_mse"]), ("pruned test MSE", b["test_mse"]),
            ("active neurons", b["active_neurons"]), ("non-zero weights", b["nonzero_weights"])])


@latent_app.command("train")
@handle_errors
def train_cmd(
    out: OutOpt,
    activation: ActivationOpt = "sigmoid",
    steps: Annotated[int, typer.Option("--steps", help="Total training batches "
                                       "(paper: 150,001 x 10 epochs).")] = 2000,
    preset: Annotated[str, typer.Option(
        "--preset", help="Autoencoder size: paper (GPU) | small (CPU) | tiny (smoke tests).")
    ] = "small",
    batch_size: Annotated[int, typer.Option("--batch-size", help="MLPs per batch.")] = 32,
    lr: Annotated[float, typer.Option("--lr", help="Adam learning rate.")] = 1e-4,
    epoch_steps: Annotated[int, typer.Option(
        "--epoch-steps", help="Batches per 'epoch' of the lr schedule (x0.5 every 2 epochs).")
    ] = 150_001,
    val_every: Annotated[int, typer.Option("--val-every", help="Validate every N steps.")] = 500,
    val_batches: Annotated[int, typer.Option(
        "--val-batches", help="Fixed-seed validation batches (MdPE).")] = 8,
    max_minutes: Annotated[float | None, typer.Option(
        "--max-minutes", help="Stop (checkpointed) after this wall time; rerun to continue.")
    ] = None,
    resume: Annotated[bool, typer.Option(
        "--resume/--no-resume", help="Continue the checkpoint in --out (default) or start over.")
    ] = True,
    seed: SeedOpt = 0,
    device: DeviceOpt = "auto",
    threads: ThreadsOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Train the multi-scale autoencoder over random sparse MLPs (resumable)."""
    from archopt.latent import PRESETS, TrainConfig, train_autoencoder
    from archopt.locking import lock_folder
    from archopt.progress import progress

    use_threads(threads)
    if preset not in PRESETS:
        raise InvalidSpec(f"unknown --preset {preset!r} (use one of: {', '.join(PRESETS)})")
    config = PRESETS[preset](activation)
    train = TrainConfig(steps=steps, batch_size=batch_size, lr=lr, epoch_steps=epoch_steps,
                        seed=seed, val_every=val_every, checkpoint_every=val_every,
                        val_batches=val_batches)
    with lock_folder(out), progress(steps, f"latent train ({activation})") as bar:
        summary = train_autoencoder(out, config, train, device=device, resume=resume,
                                    max_minutes=max_minutes, progress=bar)
    summary["preset"] = preset
    if json_:
        print_json(summary)
    else:
        _print_train(summary)


@latent_app.command("search")
@handle_errors
def search_cmd(
    autoencoder: Annotated[Path, typer.Option(
        "--autoencoder", help="Result folder of `archopt latent train` (or its .pt).")],
    out: OutOpt,
    data: Annotated[str | None, typer.Option(
        "--data", help="A .csv (features..., target) or .npz (x, y) file, or 'synthetic' "
                       "(default: the paper's random sparse width-5 target).")] = None,
    target: Annotated[str | None, typer.Option(
        "--target", help="CSV target column (name or 0-based index; default: last).")] = None,
    steps: Annotated[int, typer.Option("--steps", help="Adam steps per decoder depth.")] = 1000,
    depths: Annotated[str | None, typer.Option(
        "--depths", help="Decoder depths to search, e.g. 1,2,3 (default: all).")] = None,
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
        "--baseline", help="Also train the dense Adam baseline and prune it to the same "
                           "number of non-zero weights.")] = False,
    baseline_steps: Annotated[int, typer.Option(
        "--baseline-steps", help="Full-batch Adam steps (lr 0.01) of the baseline.")] = 2000,
    resume: Annotated[bool, typer.Option(
        "--resume/--no-resume", help="Reuse depths already searched in --out.")] = True,
    seed: SeedOpt = 0,
    device: DeviceOpt = "auto",
    threads: ThreadsOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Find a compact MLP (weights + architecture) for regression data by latent search."""
    from archopt.latent import (
        SearchConfig,
        latent_search,
        load_autoencoder,
        load_search_data,
        pruned_baseline,
    )
    from archopt.locking import lock_folder
    from archopt.progress import progress
    from archopt.runs import ResultDir

    use_threads(threads)
    model, info = load_autoencoder(autoencoder, device)
    cfg = model.config
    dataset, target_info = load_search_data(
        data, activation=cfg.activation, negative_slope=cfg.negative_slope, n_in=cfg.n_in,
        seed=target_seed, target=target,
        synthetic={"depth": target_depth, "samples": samples})
    splits = dataset.split(seed=seed)
    scaling = None
    if target_info is None and scale_x:
        splits, scaling = splits.minmax_scaled()
    search = SearchConfig(steps=steps, depths=_depths(depths), seed=seed)
    with lock_folder(out):  # one writer per folder
        rd = ResultDir(out)
        rd.write_config({"command": "latent search", "autoencoder": str(autoencoder),
                         "autoencoder_steps": info["step"], "autoencoder_config": info["config"],
                         "data": dataset.source, "splits": splits.sizes(), "x_scaling": scaling,
                         "target": target_info, "search": search.model_dump(mode="json"),
                         "baseline": baseline, "device": str(next(model.parameters()).device)})
        n_depths = len(search.depths or model.depths)
        with progress(steps * n_depths, "latent search") as bar:
            result = latent_search(model, splits, search, out=rd.path, resume=resume, progress=bar)
        summary: dict[str, Any] = {"command": "latent search", **result.summary(),
                                   "activation": cfg.activation, "data": dataset.source,
                                   "splits": splits.sizes(), "x_scaling": scaling,
                                   "target": target_info, "model": str(rd.file("model.pt")),
                                   "arch": str(rd.file(rd.ARCH))}
        if baseline:
            summary["baseline"] = pruned_baseline(
                splits, depth=result.best.depth, nonzero=result.compact.nonzero_weights,
                activation=cfg.activation, negative_slope=cfg.negative_slope,
                width=cfg.max_width, steps=baseline_steps, seed=seed,
                device=next(model.parameters()).device)
        rd.write_summary(summary)
    if json_:
        print_json(summary)
    else:
        _print_search(summary)


def register(app: typer.Typer) -> None:
    """Add ``archopt latent train|search``."""
    app.add_typer(latent_app, name="latent")
