"""``archopt train SPEC --data NAME --epochs N --out DIR``: train a spec on a dataset.

Thin: parses options into a :class:`~archopt.training.TrainConfig`, loads the data, calls
:func:`archopt.training.train`, prints the summary. Works unchanged under ``torchrun`` (only
rank 0 prints and writes).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from archopt.cli.common import (
    DataDirOpt,
    DataOpt,
    DeviceOpt,
    JsonOpt,
    OutOpt,
    SeedOpt,
    ThreadsOpt,
    TrainSizeOpt,
    TrainSubsetAlias,
    alias,
    comma_list,
    console,
    err_console,
    handle_errors,
    latency_items,
    print_json,
    print_kv,
    use_threads,
)

SpecArg = Annotated[str, typer.Argument(
    help="A catalog name (cnn-small, resnet18-cifar, mlp-3x784, ...), a JSON spec, a TinyNAS "
         "structure file, a result folder with arch.json, or a checkpoint (.pt).")]


def _numbers_error(text: str) -> typer.BadParameter:
    return typer.BadParameter(f"expected comma-separated numbers, got {text!r}")


def register(app: typer.Typer) -> None:
    @app.command("train")
    @handle_errors
    def train_cmd(
        spec: SpecArg,
        out: OutOpt,
        data: DataOpt = "digits",
        data_dir: DataDirOpt = None,
        verify: Annotated[bool, typer.Option(
            "--verify/--no-verify", help="Check the dataset files' checksums.")] = True,
        epochs: Annotated[int | None, typer.Option("--epochs", help="Passes over the "
                                                   "training set [default: 10].")] = None,
        batch_size: Annotated[int | None, typer.Option(
            "--batch-size", help="Examples per step (per process under torchrun) "
                                 "[default: 128].")] = None,
        optimizer: Annotated[str | None, typer.Option(
            "--optimizer", help="sgd (Nesterov momentum) | adam | adamw [default: sgd].")] = None,
        lr: Annotated[float | None, typer.Option(
            "--lr", help="Peak learning rate [default: 0.1 for sgd, 1e-3 for adam/adamw].")
        ] = None,
        momentum: Annotated[float | None, typer.Option(
            "--momentum", help="SGD momentum [default: 0.9].")] = None,
        weight_decay: Annotated[float | None, typer.Option(
            "--weight-decay", help="L2 penalty [default: 5e-4 sgd, 0 adam, 0.05 adamw].")] = None,
        schedule: Annotated[str | None, typer.Option(
            "--schedule", help="cosine | step | constant [default: cosine].")] = None,
        milestones: Annotated[str | None, typer.Option(
            "--milestones", help="Step schedule: fractions of the epochs, e.g. 0.5,0.75.")
        ] = None,
        gamma: Annotated[float | None, typer.Option(
            "--gamma", help="Step schedule factor [default: 0.1].")] = None,
        warmup: Annotated[float | None, typer.Option(
            "--warmup", help="Linear warm-up epochs [default: 0].")] = None,
        augment: Annotated[str | None, typer.Option(
            "--augment", help="none | crop | flip | crop-flip [default: none].")] = None,
        label_smoothing: Annotated[float | None, typer.Option(
            "--label-smoothing", help="Cross-entropy label smoothing [default: 0].")] = None,
        grad_clip: Annotated[float | None, typer.Option(
            "--grad-clip", help="Clip the gradient norm to this value.")] = None,
        amp: Annotated[bool | None, typer.Option(
            "--amp/--no-amp", help="Mixed precision [default: on for CUDA].")] = None,
        channels_last: Annotated[bool | None, typer.Option(
            "--channels-last/--no-channels-last", help="NHWC memory format [default: on for "
                                                       "CUDA].")] = None,
        eval_every: Annotated[int | None, typer.Option(
            "--eval-every", help="Evaluate every N epochs (and after the last) [default: 1].")
        ] = None,
        train_subset: TrainSizeOpt = None,
        train_subset_alias: TrainSubsetAlias = None,
        threads: ThreadsOpt = None,
        resume: Annotated[bool, typer.Option(
            "--resume", help="Continue the run in --out from its checkpoint.pt.")] = False,
        no_latency: Annotated[bool, typer.Option(
            "--no-latency", help="Skip the CPU latency measurement.")] = False,
        seed: SeedOpt = 0,
        device: DeviceOpt = "auto",
        json_: JsonOpt = False,
    ) -> None:
        """Train SPEC on a dataset; write OUT/{config.json, arch.json, metrics.jsonl,
        checkpoint.pt, summary.json, curves.png}.

        The spec is adapted to the dataset (input channels, resolution, classes) with a note.
        Runs under torchrun unchanged (DistributedDataParallel).
        """
        from archopt.data import load_dataset
        from archopt.spaces import load_spec
        from archopt.training import TrainConfig, train
        from archopt.training.distributed import env_world
        from archopt.training.trainer import adapt_spec

        main = env_world()[0] == 0
        train_subset = alias(train_subset, train_subset_alias, "--train-size", "--train-subset")
        threads = use_threads(threads).threads
        cfg = TrainConfig.from_any(
            None, epochs=epochs, batch_size=batch_size, optimizer=optimizer, lr=lr,
            momentum=momentum, weight_decay=weight_decay, schedule=schedule,
            milestones=comma_list(milestones, float, _numbers_error), gamma=gamma,
            warmup_epochs=warmup, augment=augment,
            label_smoothing=label_smoothing, grad_clip=grad_clip, amp=amp,
            channels_last=channels_last, eval_every=eval_every, seed=seed, device=device,
            threads=threads,
            latency=False if no_latency else None)
        ds = load_dataset(data, data_dir, verify=verify)
        if train_subset is not None:
            ds = ds.subset(train=train_subset, seed=seed)
        arch, note = adapt_spec(load_spec(spec), ds, adapt=True)
        if note and main:
            err_console.print(f"note: {note}", highlight=False, soft_wrap=True)
        result = train(arch, ds, cfg, out, resume=resume, progress=True)
        if not result.is_main:
            return
        s = result.summary
        if json_:
            print_json({**s, "out": str(Path(out))})
            return
        print_kv(f"{s['model']} on {s['dataset']}", [
            ("test accuracy", s["test_accuracy"]), ("test macro-F1", s["test_macro_f1"]),
            ("test loss", s["test_loss"]), ("train loss", s["train_loss"]),
            ("epochs", s["epochs"]), ("params", s["params"]), ("MACs", s["macs"]),
            *latency_items(s), ("seconds", s["seconds"]),
            ("device", s["device"] + (f" x{s['world_size']}" if s["world_size"] > 1 else "")),
        ])
        console.print(f"results in {out}", highlight=False)
