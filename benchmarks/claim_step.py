"""Cost of one training step of each network of the design claim, against a bare torch loop,
and where its time goes (issue 20: why a MobileNetV2 run costs 2-3x the CPU seconds per MAC).

For every budget and network of :mod:`design_claim` (the DeepMAD design, the equal-budget
ResNet-44 and MobileNetV2) at its input (28x28x1), batch 128, one thread, channels-last (the
claim's recipe), timed alternating ``--repeats`` times ``--steps`` steps after one untimed
step, in process-CPU seconds:

- ``trainer``: archopt's step as a claim run takes it, end to end: a batch from
  :class:`archopt.data.BatchLoader` with the recipe's augmentation (crop-flip), then
  :class:`archopt.training.trainer.TrainStep` with the recipe's optimiser (``make_optimizer``);
- ``bare``: a bare torch loop on one fixed batch: the same model, ``torch.optim.SGD``
  (Nesterov, the recipe's momentum and weight decay), cross-entropy, backward, step.

FLOPs per step: 3x the forward FLOPs that ``torch.utils.flop_counter`` counts (convolutions and
the classifier; batch norm and activations count 0), the usual convention (backward = grad input
+ grad weight, each the forward's cost); ``forward_flops_over_2_macs_batch`` checks that count
against archopt's MACs. The counter's own backward figure is recorded but not used: for grouped
(depthwise) convolutions torch 2.13 counts the input gradient as if the convolution were dense
(``flop_counter_backward_over_2x_forward`` far above 1 for MobileNetV2 only). GFLOP/s = FLOPs
per step / CPU seconds; ``dense_conv_reference``: the same for one dense 3x3 convolution (64 ->
64 channels, 28x28, batch 128, channels-last, forward and backward), what this CPU's one thread
reaches on the convolution the networks are made of. Where the time goes: ``torch.profiler``'s
self CPU time over two bare steps, by operator class (convolution, batch norm, activation,
other). ``projected_run_cpu_s`` = the trainer step x the claim's steps per run (10 epochs of
60,000 / 128), set beside the median process-CPU seconds that ``design_claim.json`` records for
the finished runs of that network that one process trained whole (``recorded_runs`` of them;
they also include evaluation and a checkpoint per epoch).

Run it with the machine otherwise quiet if you can: CPU seconds of memory-bound operators grow
when the other core's jobs share the memory bandwidth (the load average is recorded).

    python benchmarks/claim_step.py                 # -> results/claim_step.json
    python benchmarks/claim_step.py --refresh-recorded   # recorded runs only, no timing
"""

from __future__ import annotations

import argparse
import os
import statistics
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.profiler import ProfilerActivity, profile
from torch.utils.flop_counter import FlopCounterMode

import benchlib
import design_claim as dc
from archopt.data import BatchLoader, augmentation
from archopt.runs import read_json
from archopt.training import TrainConfig
from archopt.training.trainer import TrainStep, make_optimizer

OUT = Path(__file__).resolve().parent / "results" / "claim_step.json"
TRAIN_IMAGES = 60_000
#: operator class -> substrings of torch operator names (self CPU time, so nothing counts twice)
CLASSES = {"convolution": ("convolution",), "batch norm": ("batch_norm",),
           "activation": ("relu", "threshold", "hardtanh", "clamp")}


def op_class(name: str) -> str:
    """The class of torch operator ``name`` (e.g. ``aten::hardtanh_backward`` -> activation)."""
    return next((c for c, keys in CLASSES.items() if any(k in name for k in keys)), "other")


def bench(r: dict[str, Any], *, repeats: int, steps: int) -> dict[str, Any]:
    """Trainer and bare step of the claim network of run description ``r``."""
    spec = dc.spec_of(r)
    cfg = TrainConfig(**dc.recipe("fashion-mnist", 0, dc.EPOCHS))
    batch = cfg.batch_size
    g = torch.Generator().manual_seed(0)
    x8 = torch.randint(0, 256, (batch * 4, 1, 28, 28), dtype=torch.uint8, generator=g)
    y8 = torch.randint(0, 10, (batch * 4,), generator=g)
    loader = BatchLoader(x8, y8, batch, mean=(0.29,), std=(0.35,), shuffle=True, seed=0,
                         augment=augmentation(cfg.augment, 28), drop_last=True)
    batches = iter(())

    def next_batch() -> tuple[torch.Tensor, torch.Tensor]:
        nonlocal batches
        b = next(batches, None)
        if b is None:
            batches = iter(loader)
            b = next(batches)
        return b

    torch.manual_seed(0)
    model = spec.build().to(memory_format=torch.channels_last).train()
    step = TrainStep(model, make_optimizer(model.parameters(), cfg), nn.CrossEntropyLoss(),
                     channels_last=True, device=torch.device("cpu"))
    torch.manual_seed(0)
    bare_model = spec.build().to(memory_format=torch.channels_last).train()
    opt = torch.optim.SGD(bare_model.parameters(), lr=cfg.lr, momentum=cfg.momentum,
                          nesterov=True, weight_decay=cfg.weight_decay)
    xb = torch.randn(batch, 1, 28, 28).contiguous(memory_format=torch.channels_last)
    yb = torch.randint(0, 10, (batch,), generator=g)
    loss_fn = nn.CrossEntropyLoss()

    def bare() -> None:
        opt.zero_grad(set_to_none=True)
        loss_fn(bare_model(xb), yb).backward()
        opt.step()

    def trainer() -> None:
        step(*next_batch())

    bare()
    trainer()
    times: dict[str, list[float]] = {"trainer": [], "bare": []}
    for _ in range(repeats):
        times["trainer"].append(benchlib.clock(trainer, steps)[1])
        times["bare"].append(benchlib.clock(bare, steps)[1])
    with FlopCounterMode(display=False) as fc:
        loss = loss_fn(bare_model(xb), yb)
    forward = fc.get_total_flops()
    with FlopCounterMode(display=False) as fc:
        loss.backward()
    backward = fc.get_total_flops()
    opt.zero_grad(set_to_none=True)
    flops = 3 * forward
    share = time_share(lambda: (bare(), bare()))
    med = {k: statistics.median(v) for k, v in times.items()}
    steps_per_run = TRAIN_IMAGES // batch * dc.EPOCHS
    return {"budget": r["budget"], "network": r["network"], "name": spec.name,
            "macs": spec.macs(28), "params": sum(p.numel() for p in model.parameters()),
            "flops_per_step": flops,
            "forward_flops_over_2_macs_batch": round(forward / (2 * spec.macs(28) * batch), 4),
            "flop_counter_backward_over_2x_forward": round(backward / (2 * forward), 3),
            "trainer_cpu_s": round(med["trainer"], 4), "bare_cpu_s": round(med["bare"], 4),
            "trainer_over_bare": round(med["trainer"] / med["bare"], 3),
            "gflops_per_s_trainer": round(flops / med["trainer"] / 1e9, 2),
            "gflops_per_s_bare": round(flops / med["bare"] / 1e9, 2),
            "time_share": share,
            "projected_run_cpu_s": round(med["trainer"] * steps_per_run),
            "runs": {f"{k}_cpu_s": [round(t, 4) for t in v] for k, v in times.items()}}


def time_share(fn: Callable[[], object]) -> dict[str, float]:
    """The share of ``fn``'s self CPU time (``torch.profiler``) in each operator class of
    :data:`CLASSES` and ``other``, rounded to 3 decimals; the shares sum to 1."""
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        fn()
    share: dict[str, float] = dict.fromkeys([*CLASSES, "other"], 0.0)
    for e in prof.key_averages():
        share[op_class(e.key)] += e.self_cpu_time_total
    total = sum(share.values())
    return {k: round(v / total, 3) for k, v in share.items()}


def dense_conv(*, repeats: int, steps: int) -> dict[str, Any]:
    """GFLOP/s of one dense 3x3 convolution's forward and backward (module docstring)."""
    conv = nn.Conv2d(64, 64, 3, padding=1, bias=False).to(memory_format=torch.channels_last)
    x = torch.randn(128, 64, 28, 28).contiguous(memory_format=torch.channels_last)
    x.requires_grad_()

    def step() -> None:
        conv(x).sum().backward()

    step()
    t = statistics.median(benchlib.clock(step, steps)[1] for _ in range(repeats))
    flops = 3 * 2 * 128 * 28 * 28 * 64 * 64 * 9
    return {"flops_per_step": flops, "cpu_s": round(t, 4),
            "gflops_per_s": round(flops / t / 1e9, 2)}


def recorded_cpu(results: Path) -> dict[tuple[str, str], list[float]]:
    """Process-CPU seconds of the finished claim runs, by (budget, network); a run resumed
    from a checkpoint (its process ran for less wall time than its training took) is left out,
    as its process's CPU seconds cover only part of the run."""
    by: dict[tuple[str, str], list[float]] = {}
    for r in benchlib.recorded_runs(results).values():
        whole = (r.get("wall_seconds_this_process") or 0) >= (r.get("train_seconds") or 0)
        if r.get("kind") == "claim" and r.get("cpu_seconds_this_process") and whole:
            by.setdefault((r["budget"], r["network"]), []).append(r["cpu_seconds_this_process"])
    return by


def set_recorded(row: dict[str, Any], recorded: dict[tuple[str, str], list[float]]) -> None:
    """Set a row's ``recorded_run_cpu_s_median`` and ``recorded_runs`` from
    :func:`recorded_cpu`'s runs of its (budget, network)."""
    runs = recorded.get((row["budget"], row["network"]), [])
    row["recorded_run_cpu_s_median"] = statistics.median(runs) if runs else None
    row["recorded_runs"] = len(runs)


def refresh_recorded(out: Path) -> dict[str, Any]:
    """Re-read the recorded runs from ``design_claim.json`` into an existing ``out`` without
    timing anything (the step timings stay as measured). Raises: FileNotFoundError."""
    report = read_json(out)
    recorded = recorded_cpu(dc.RESULTS / "design_claim.json")
    for row in report["results"]:
        set_recorded(row, recorded)
    benchlib.write_results(out, report)
    return report


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=5, help="timed repeats (median reported)")
    p.add_argument("--steps", type=int, default=2, help="steps per repeat")
    p.add_argument("--refresh-recorded", action="store_true",
                   help="only re-read the recorded runs of design_claim.json into --out")
    p.add_argument("--out", type=Path, default=OUT)
    a = p.parse_args(argv)
    if a.refresh_recorded:
        report = refresh_recorded(a.out)
        print(f"wrote {a.out} (recorded runs refreshed)")
        return report
    torch.set_num_threads(1)
    load_start = list(os.getloadavg())
    recorded = recorded_cpu(dc.RESULTS / "design_claim.json")
    ref = dense_conv(repeats=a.repeats, steps=a.steps)
    print(f"dense 3x3 conv reference: {ref['gflops_per_s']:.1f} GFLOP/s", flush=True)
    rows = []
    for label in dc.BUDGETS:
        for net in dc.NETWORKS:
            row = bench({"budget": label, "network": net}, repeats=a.repeats, steps=a.steps)
            set_recorded(row, recorded)
            print(f"{label:>4} {row['name']:<28} trainer {row['trainer_cpu_s']:.3f} s, bare "
                  f"{row['bare_cpu_s']:.3f} s, {row['gflops_per_s_trainer']:.1f} GFLOP/s, "
                  f"shares {row['time_share']}", flush=True)
            rows.append(row)
    report = {"benchmark": "claim_step", "batch_size": 128, "input_shape": [1, 28, 28],
              "threads": 1, "channels_last": True, "repeats": a.repeats, "steps": a.steps,
              "steps_per_run": TRAIN_IMAGES // 128 * dc.EPOCHS, "dense_conv_reference": ref,
              "results": rows,
              "machine": benchlib.machine_under_load(load_start)}
    benchlib.write_results(a.out, report)
    print(f"wrote {a.out}")
    return report


if __name__ == "__main__":
    main()
