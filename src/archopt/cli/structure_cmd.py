"""``archopt structure``: learn a network's structure together with its weights (SNG / ASNG with
a model-complexity penalty), and ``archopt structure sweep`` for the eps0 trade-off curve.

Thin: options -> :class:`~archopt.structure.loop.StructureConfig` + a
:class:`~archopt.training.TrainConfig` -> :func:`archopt.structure.run_structure` /
:func:`archopt.structure.sweep.run_sweep` -> print.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Annotated, Any

import typer

from archopt.cli.common import (
    DataDirOpt,
    DataOpt,
    RuntimeArgs,
    console,
    fail,
    handle_errors,
    print_json,
    print_kv,
    print_table,
    runtime_options,
    size_options,
    use_threads,
    with_options,
)
from archopt.cli.sweep_common import echo as sweep_echo
from archopt.cli.sweep_common import finish_sweep, print_sweep_json, sweep_options

TaskOpt = Annotated[str | None, typer.Option(
    "--task", help="mlp-units (unit selection) | densenet-connections (connection selection) "
                   "| resnet-channels (shrink a trained ResNet's bottlenecks; needs --from).")]
SpaceOpt = Annotated[str | None, typer.Option(
    "--space", help="The supernet: a catalog name or JSON spec (default: mlp-3x784 / "
                    "densenet-40-12).")]
OptimizerOpt = Annotated[str, typer.Option(
    "--optimizer", help="sng (fixed step eta, the ICANN paper) | asng (adaptive step).")]
EpochsOpt = Annotated[int, typer.Option("--epochs", help="Passes over the training set.")]
BatchOpt = Annotated[int, typer.Option(
    "--batch-size", help="Minibatch N of the method (each of the lambda structures sees it).")]
LrOpt = Annotated[float | None, typer.Option(
    "--lr", help="SGD learning rate of the weights (default: 0.01 mlp, 0.1 densenet).")]
ThetaLrOpt = Annotated[float | None, typer.Option(
    "--theta-lr", help="SNG step eta (default: 1/d).")]
LamOpt = Annotated[int, typer.Option("--lam", help="Structures per minibatch (lambda).")]
StepsOpt = Annotated[int | None, typer.Option(
    "--max-steps-per-epoch", help="Cap the steps of each epoch (short schedules).")]
AugOpt = Annotated[str | None, typer.Option(
    "--augment", help="none | crop | flip | crop-flip (default: none mlp, crop-flip "
                      "densenet).")]
ResumeOpt = Annotated[bool, typer.Option(
    "--resume", help="Continue the run(s) in --out from their checkpoints.")]
NoLatencyOpt = Annotated[bool, typer.Option("--no-latency", help="Skip CPU latency.")]
FinetuneOpt = Annotated[int, typer.Option(
    "--finetune-epochs", help="Fine-tune the compact M* network this many epochs with the run's "
                              "recipe at lambda x batch (0 = the paper's M* alone).")]
RescaleOpt = Annotated[str, typer.Option(
    "--rescale", help="none (the paper) | theta: multiply M*'s kept units by their theta "
                      "(dropout's weight-scaling rule), folded into the compact weights.")]
BnRecalOpt = Annotated[bool, typer.Option(
    "--bn-recalibrate/--no-bn-recalibrate",
    help="Re-estimate M*'s BatchNorm statistics on training images (the paper: no).")]


def _structure_config(optimizer: str, penalty: float, lo: SimpleNamespace, **after: Any) -> Any:
    from archopt.errors import UnknownName
    from archopt.structure.loop import StructureConfig

    if optimizer not in ("sng", "asng"):
        raise UnknownName(f"unknown structure optimiser {optimizer!r} (one of: sng, asng)")
    if after.get("rescale", "none") not in ("none", "theta"):
        raise UnknownName(f"unknown --rescale {after['rescale']!r} (one of: none, theta)")
    return StructureConfig(optimizer=optimizer, penalty=penalty, lam=lo.lam,
                           theta_lr=lo.theta_lr, max_steps_per_epoch=lo.max_steps_per_epoch,
                           train_subset=lo.train_subset, test_subset=lo.test_subset, **after)


@with_options(sizes=size_options)
def loop_options(
    batch_size: BatchOpt = 32,
    lr: LrOpt = None,
    theta_lr: ThetaLrOpt = None,
    lam: LamOpt = 2,
    max_steps_per_epoch: StepsOpt = None,
    sizes: Any = None,
    augment: AugOpt = None,
) -> SimpleNamespace:
    """The training-loop options ``structure`` and ``structure sweep`` share, as one record (an
    option block: :func:`~archopt.cli.common.with_options`); the subsets under their new or
    old names resolved."""
    return SimpleNamespace(batch_size=batch_size, lr=lr, theta_lr=theta_lr, lam=lam,
                           max_steps_per_epoch=max_steps_per_epoch, train_subset=sizes.train,
                           test_subset=sizes.test, augment=augment)


def _configs(task: str, optimizer: str, penalty: float, epochs: int, lo: SimpleNamespace,
             rt: RuntimeArgs, **after: Any) -> tuple[Any, Any]:
    from archopt.structure.run import default_train_config

    sc = _structure_config(optimizer, penalty, lo, **after)
    tc = default_train_config(task, epochs=epochs, batch_size=lo.batch_size, lr=lo.lr,
                              augment=lo.augment, seed=rt.seed, device=rt.device)
    return sc, tc


_PER = {"units_per_layer": "units per layer", "connections_per_block": "connections per block",
        "btn_per_superblock": "bottleneck channels per superblock"}


def _finetune_config(epochs: int, lo: SimpleNamespace, rt: RuntimeArgs) -> Any:
    """Fine-tuning recipe of ``--task resnet-channels`` (the weights start trained): SGD with
    Nesterov momentum, lr 0.01 unless given, cosine, no warm-up."""
    from archopt.training import TrainConfig

    return TrainConfig(epochs=epochs, batch_size=lo.batch_size, optimizer="sgd",
                       lr=0.01 if lo.lr is None else lo.lr, schedule="cosine",
                       augment=lo.augment or "none", seed=rt.seed, device=rt.device)


def _model_line(b: dict[str, Any]) -> str:
    lat = f", {b['latency_ms']:.4f} ms" if b.get("latency_ms") is not None else ""
    return (f"accuracy {b['test_accuracy']:.4f}, {b['params']:,} params, {b['macs']:,} MACs"
            f"{lat}")


def _print_run(s: dict[str, Any], out: Path) -> None:
    from archopt.structure.run import undecided_warning

    key = next(k for k in _PER if k in s)
    per = s[key]
    models = [(label, _model_line(s[k])) for k, label in (
        ("mstar", "M* (the paper's)"), ("mstar_adjusted", "M* adjusted"),
        ("finetuned", f"fine-tuned ({s.get('finetuned', {}).get('epochs')} epochs)"))
        if k in s]
    print_kv(f"structure {s['task']} on {s['dataset']} (eps0 = {s['penalty']:g}, "
             f"{s['optimizer']})", [
        *models, (f"shipped ({s.get('shipped', 'mstar')}) test accuracy", s["test_accuracy"]),
        ("test error", s["test_error"]),
        ("weight usage rate", s["weight_usage_rate"]),
        ("cost usage rate (sum c m / sum c)", s["cost_usage_rate"]),
        (_PER[key], " / ".join(map(str, per))),
        ("params (compact / full)", f"{s['params']:,} / {s['params_full']:,}"),
        ("latency ms (compact / masked full)",
         f"{s['latency_ms']:.4f} / {s['latency_ms_supernet']:.4f}"
         if s.get("latency_ms") is not None and "latency_ms_supernet" in s else "not measured"),
        *((("latency ms onnxruntime (compact)", f"{s['latency_ms_onnxruntime']:.4f}"),)
          if s.get("latency_ms_onnxruntime") is not None else ()),
        ("epochs / steps", f"{s['epochs']} / {s['steps']}"),
        ("decided bits", f"{100 * s['decided_fraction']:.1f} %" if "decided_fraction" in s
         else "not recorded"),
        ("train seconds (joint / fine-tune)",
         f"{s['train_seconds']} / {s.get('finetune_seconds') or 0}"),
    ])
    warning = undecided_warning(s)
    if warning:
        console.print(warning, style="yellow", highlight=False, soft_wrap=True)
    console.print(f"results in {out}", highlight=False)


def register(app: typer.Typer) -> None:
    sapp = typer.Typer(help="Learn structure and weights together (SNG/ASNG + complexity "
                            "penalty).", no_args_is_help=False)

    @sapp.callback(invoke_without_command=True)
    @handle_errors
    @with_options(lo=loop_options, rt=runtime_options)
    def structure(
        ctx: typer.Context,
        task: TaskOpt = None,
        data: DataOpt = "mnist",
        penalty: Annotated[str, typer.Option(
            "--penalty", help="eps0: a number or a power of two (2^-7; a negative value as "
                              "--penalty=-2^-3). eps = eps0 / max(c).")] = "0",
        optimizer: OptimizerOpt = "asng",  # benchmarks/results/structure_digits.json
        epochs: EpochsOpt = 30,
        out: Annotated[Path | None, typer.Option("--out", help="Result folder.")] = None,
        space: SpaceOpt = None,
        init: Annotated[Path | None, typer.Option(
            "--from", help="resnet-channels: the trained ResNet (checkpoint.pt or its result "
                           "folder), e.g. an archopt run's designed/ folder.")] = None,
        lo: Any = None,
        data_dir: DataDirOpt = None,
        resume: ResumeOpt = False,
        no_latency: NoLatencyOpt = False,
        finetune_epochs: FinetuneOpt = 5,
        rescale: RescaleOpt = "none",
        bn_recalibrate: BnRecalOpt = False,
        rt: Any = None,
    ) -> None:
        """Train a supernet's weights and its structure distribution in one run; keep the
        deterministic structure M* (theta >= 0.5) as a physically smaller network, then
        fine-tune it (--finetune-epochs; 0 ships the paper's M* alone).

        Defaults: ASNG, 30 epochs (on digits with eps0 = 2^-6 ASNG reached 97.3 / 96.9 % test
        accuracy at 19.6 / 18.6 % weight usage, SNG 94.4 / 90.2 % at the same 1,260 steps;
        benchmarks/results/structure_digits.json). The paper's own recipe is --optimizer sng
        with 500 epochs.

        Writes OUT/{config.json, metrics.jsonl, checkpoint.pt, structure.json, arch.json,
        mstar.pt (the paper's M*), model.pt (the shipped model), summary.json, finetune/}.
        """
        if ctx.invoked_subcommand is not None:
            return
        use_threads(rt.threads)
        if task is None or out is None:
            raise fail("--task and --out are required (e.g. archopt structure --task "
                       "mlp-units --data mnist --penalty 2^-7 --epochs 10 --out runs/s)")
        from archopt.runs.locking import lock_folder
        from archopt.structure.run import run_structure
        from archopt.structure.sweep import parse_penalty

        after = {"finetune_epochs": finetune_epochs, "rescale": rescale,
                 "bn_recalibrate": bn_recalibrate}
        if finetune_epochs < 0:
            raise fail("--finetune-epochs must be >= 0")
        with lock_folder(out):  # one writer per folder
            if task == "resnet-channels":
                from archopt.structure.resnet import run_resnet_structure

                if init is None:
                    raise fail("--task resnet-channels needs --from CHECKPOINT (a trained ResNet, "
                               "e.g. runs/run-digits/designed)")
                sc = _structure_config(optimizer, parse_penalty(penalty), lo, **after)
                tc = _finetune_config(epochs, lo, rt)
                s = run_resnet_structure(init / "checkpoint.pt" if init.is_dir() else init, data,
                                         out=out, train=tc, structure=sc, data_dir=data_dir,
                                         resume=resume, latency=not no_latency)
            else:
                sc, tc = _configs(task, optimizer, parse_penalty(penalty), epochs, lo, rt,
                                  **after)
                s = run_structure(task, data, out=out, structure=sc, train=tc, space=space,
                                  data_dir=data_dir, resume=resume, latency=not no_latency)
        if rt.json:
            print_json({**s, "out": str(out)})
        else:
            _print_run(s, out)

    @sapp.command("sweep")
    @handle_errors
    @with_options(lo=loop_options, sw=sweep_options, rt=runtime_options)
    def sweep(
        out: Annotated[Path, typer.Option("--out", help="Sweep folder (one sub-folder per "
                                                        "run).")],
        task: Annotated[str, typer.Option("--task", help="mlp-units | densenet-connections."
                                          )] = "mlp-units",
        penalties: Annotated[str, typer.Option(
            "--penalties", help="Comma-separated eps0 values (numbers or powers of two).")
        ] = "2^-6,2^-7,2^-8,2^-9,0,-2^-3",
        data: DataOpt = "mnist",
        optimizer: OptimizerOpt = "sng",
        epochs: EpochsOpt = 10,
        space: SpaceOpt = None,
        lo: Any = None,
        no_baselines: Annotated[bool, typer.Option(
            "--no-baselines", help="Skip the fixed-structure baselines.")] = False,
        sw: Any = None,
        data_dir: DataDirOpt = None,
        no_latency: NoLatencyOpt = False,
        rt: Any = None,
    ) -> None:
        """Train every eps0 of the grid (x --seeds) and the fixed-structure baselines
        (uniformly thinned to matching weight counts; lambda x batch, lambda x epochs = the
        same steps) as Ray tasks (--workers N on a local Ray, or --address), or in this
        process without Ray; write OUT/sweep.json (the table), OUT/tradeoff.png, OUT/grid.json
        and OUT/status.json (per trial: pending / running / done / failed). Rerunning resumes:
        finished trials are skipped, failed and interrupted ones run again. Exit 1 when a
        trial failed (the others finish)."""
        from archopt.runs.sweeps import parse_list, parse_seeds
        from archopt.structure.sweep import parse_penalty, run_sweep

        values = parse_list(penalties, "--penalties", parse_penalty)
        seed_list = parse_seeds(sw.seeds)
        backend = sw.backend
        sc, tc = _configs(task, optimizer, 0.0, epochs, lo, rt,
                          finetune_epochs=0)  # the paper's trade-off curve: M* itself
        t = run_sweep(task, data, values, out=out, structure=sc, train=tc, space=space,
                      data_dir=data_dir, baselines=not no_baselines, latency=not no_latency,
                      seeds=seed_list, backend=backend, workers=sw.workers, address=sw.address,
                      threads=rt.threads, progress=not rt.json, echo=sweep_echo)
        runners = [t["runner"]["method"], *([t["runner"]["baselines"]]
                                            if "baselines" in t["runner"] else [])]
        rows = [*t["method"], *t["baselines"]]
        if rt.json:
            print_sweep_json(t, out, rows, runners)
            return
        per_key = "units_per_layer" if task == "mlp-units" else "connections_per_block"
        print_table("learned structures", ["eps0", "seed", "weight usage", "cost usage",
                                           per_key, "params", "test error", "train s"],
                    [(r["label"], r.get("seed"), r.get("weight_usage_rate"),
                      r.get("cost_usage_rate"), " / ".join(map(str, r.get(per_key) or [])),
                      r.get("params"), r.get("test_error"), r.get("train_seconds"))
                     for r in t["method"]])
        if t["baselines"]:
            print_table("fixed-structure baselines", ["baseline", "seed", "weight usage",
                                                      "params", "test error", "train s"],
                        [(b["label"], b.get("seed"), b.get("weight_usage_rate"),
                          b.get("params"), b.get("test_error"), b.get("train_seconds"))
                         for b in t["baselines"]])
        if t.get("cost") and t["cost"]["ratio_median"] is not None:
            console.print(f"training cost, method / fixed ({t['cost']['reference']}, same "
                          f"steps): median {t['cost']['ratio_median']:.3f}", highlight=False)
        finish_sweep(rows, runners, f"table in {out / 'sweep.json'}, plot in "
                                    f"{out / 'tradeoff.png'}")

    app.add_typer(sapp, name="structure")
