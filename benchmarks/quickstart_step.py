"""Where the quick start's training time goes (issue 20: ``archopt run`` on digits is meant to
take under a minute beside a CPU-bound job; it takes about 78 s, of which about 70 s train the
three networks): can the digits recipe's steps be made cheaper without changing the recipe?

For each network ``archopt run`` trains by default (the DeepMAD design within 2M MACs / 0.5M
params and the two equal-budget baselines, ResNet and MobileNetV2; the same networks the run
picks, by its own functions), on scikit-learn's digits with the digits recipe (batch 64, pad-crop,
SGD-Nesterov), one thread, in process-CPU seconds, the median of ``--repeats``, alternating:

- ``epoch_cpu_s``: one epoch of archopt's step (:class:`archopt.training.trainer.TrainStep`,
  ``make_optimizer``) over the epoch's batches of :class:`archopt.data.BatchLoader` (made
  beforehand, as the loader's cost is not the question), channels-last (the recipe) and NCHW;
- ``bare_epoch_cpu_s``: a bare torch loop over the same batches (``torch.optim.SGD``, Nesterov,
  the recipe's momentum and weight decay, cross-entropy), channels-last; it uses torch's default
  (for-each) SGD update where archopt's uses the fused kernel, which is why archopt's step can
  come out cheaper;
- ``eval_cpu_s``: one evaluation of the 450 test images (:func:`archopt.training.evaluate`),
  which a run does after every epoch;
- ``projected_run_cpu_s``: (channels-last epoch + evaluation) x the recipe's epochs;
- ``time_share``: ``torch.profiler``'s self CPU time over three of archopt's steps, by operator
  class (convolution, batch norm, activation, other; the classes of ``claim_step.py``).

    python benchmarks/quickstart_step.py            # -> results/quickstart_step.json
"""

from __future__ import annotations

import argparse
import os
import statistics
from pathlib import Path
from typing import Any

import torch
from torch import nn

import benchlib
from archopt.data import BatchLoader, ImageDataset, augmentation, load_dataset
from archopt.pipeline.config import RunConfig
from archopt.pipeline.run import baselines_for, design_for
from archopt.spaces import ArchSpec
from archopt.training import TrainConfig, evaluate
from archopt.training.trainer import TrainStep, make_optimizer
from claim_step import time_share

OUT = Path(__file__).resolve().parent / "results" / "quickstart_step.json"


def networks(cfg: RunConfig, ds: ImageDataset) -> dict[str, ArchSpec]:
    """The quick start's networks, chosen by ``archopt run``'s own functions:
    ``{"design": spec, "resnet": spec, "mbv2": spec}``."""
    return {"design": design_for(cfg, ds).spec,
            **{b.family: b.spec for b in baselines_for(cfg, ds)}}


def bench(spec: ArchSpec, ds: ImageDataset, tc: TrainConfig, *, repeats: int) -> dict[str, Any]:
    """Epoch, bare-loop epoch and evaluation CPU seconds of ``spec`` (module docstring)."""
    loader = BatchLoader(ds.train_x, ds.train_y, tc.batch_size, mean=ds.mean, std=ds.std,
                         shuffle=True, seed=0, augment=augmentation(tc.augment, ds.resolution),
                         drop_last=True)
    batches = list(loader)
    cpu = torch.device("cpu")
    runs: dict[str, Any] = {}
    models: dict[str, nn.Module] = {}
    for layout in ("channels_last", "nchw"):
        torch.manual_seed(0)
        model = spec.build()
        if layout == "channels_last":
            model = model.to(memory_format=torch.channels_last)
        models[layout] = model.train()
        runs[layout] = TrainStep(model, make_optimizer(model.parameters(), tc),
                                 nn.CrossEntropyLoss(), channels_last=layout == "channels_last",
                                 device=cpu)
    torch.manual_seed(0)
    bare_model = spec.build().to(memory_format=torch.channels_last).train()
    opt = torch.optim.SGD(bare_model.parameters(), lr=tc.lr, momentum=tc.momentum,
                          nesterov=True, weight_decay=tc.weight_decay)
    loss_fn = nn.CrossEntropyLoss()
    bare_batches = [(x.contiguous(memory_format=torch.channels_last), y) for x, y in batches]

    def epoch(layout: str) -> None:
        for x, y in batches:
            runs[layout](x, y)

    def bare_epoch() -> None:
        for x, y in bare_batches:
            opt.zero_grad(set_to_none=True)
            loss_fn(bare_model(x), y).backward()
            opt.step()

    def ev() -> None:
        m = models["channels_last"].eval()
        evaluate(m, ds.test_x, ds.test_y, mean=ds.mean, std=ds.std,
                 num_classes=ds.num_classes, channels_last=True)
        m.train()

    jobs = {"epoch_cpu_s": lambda: epoch("channels_last"),
            "nchw_epoch_cpu_s": lambda: epoch("nchw"), "bare_epoch_cpu_s": bare_epoch,
            "eval_cpu_s": ev}
    for fn in jobs.values():
        fn()  # untimed: first-call allocations
    times: dict[str, list[float]] = {k: [] for k in jobs}
    for _ in range(repeats):
        for k, fn in jobs.items():
            times[k].append(benchlib.clock(fn, 1)[1])
    med = {k: statistics.median(v) for k, v in times.items()}
    share = time_share(lambda: [runs["channels_last"](x, y) for x, y in batches[:3]])
    return {"name": spec.name, "macs": spec.macs(ds.resolution),
            "params": sum(p.numel() for p in bare_model.parameters()),
            "steps_per_epoch": len(batches),
            **{k: round(v, 4) for k, v in med.items()},
            "nchw_over_channels_last": round(med["nchw_epoch_cpu_s"] / med["epoch_cpu_s"], 3),
            "trainer_over_bare": round(med["epoch_cpu_s"] / med["bare_epoch_cpu_s"], 3),
            "projected_run_cpu_s": round((med["epoch_cpu_s"] + med["eval_cpu_s"]) * tc.epochs,
                                         1),
            "time_share": share,
            "runs": {k: [round(t, 4) for t in v] for k, v in times.items()}}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=5, help="timed repeats (median reported)")
    p.add_argument("--out", type=Path, default=OUT)
    a = p.parse_args(argv)
    torch.set_num_threads(1)
    load_start = list(os.getloadavg())
    cfg = RunConfig().resolve()
    tc = TrainConfig(**cfg.train)
    ds = load_dataset(cfg.data)
    rows = {}
    for net, spec in networks(cfg, ds).items():
        row = bench(spec, ds, tc, repeats=a.repeats)
        rows[net] = row
        print(f"{net:<7} {row['name']:<28} epoch {row['epoch_cpu_s']:.3f} s (NCHW "
              f"{row['nchw_epoch_cpu_s']:.3f}, bare {row['bare_epoch_cpu_s']:.3f}), eval "
              f"{row['eval_cpu_s']:.3f} s, run {row['projected_run_cpu_s']:.1f} s, shares "
              f"{row['time_share']}", flush=True)
    report = {"benchmark": "quickstart_step", "data": cfg.data, "batch_size": tc.batch_size,
              "epochs": tc.epochs, "augment": tc.augment, "threads": 1,
              "repeats": a.repeats, "networks": rows,
              "projected_training_cpu_s": round(sum(r["projected_run_cpu_s"]
                                                    for r in rows.values()), 1),
              "machine": benchlib.machine_under_load(load_start)}
    benchlib.write_results(a.out, report)
    print(f"wrote {a.out}")
    return report


if __name__ == "__main__":
    main()
