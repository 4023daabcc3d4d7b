"""Training-step throughput of ResNet-18 (CIFAR stem) and data-loader time vs step time.

Measures, on CPU and (when present) CUDA, with the trainer's own pieces
(:class:`archopt.training.trainer.TrainStep`, :class:`archopt.data.BatchLoader`):

- ``step``: one optimiser step (forward, cross-entropy, backward, SGD Nesterov update) on a
  batch already on the device -> images/s;
- ``loader``: producing one batch from in-memory uint8 images (index, move, crop-flip
  augmentation, normalisation) -> ms per batch, and its share of loader + step;
- ``end_to_end``: loader and step together, as the trainer runs them.

Each figure is the median over ``--repeats`` timed repeats (each the mean of ``--steps`` steps)
after ``--warmup`` untimed steps; the three are timed interleaved within each repeat, in wall
and process-CPU seconds (on a shared machine the CPU seconds are the comparable figure). Data
are synthetic uint8 images of CIFAR's shape
(``--resolution`` 32, 3 channels), 10 classes. Results go to a JSON file (machine, versions,
load average, settings, figures).

    python benchmarks/train_throughput.py                      # CPU (+ CUDA when available)
    python benchmarks/train_throughput.py --device cpu --repeats 3 --out results.json
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
from archopt.data import BatchLoader, augmentation
from archopt.runs import atomic_write_json, environment_info
from archopt.spaces import load_spec
from archopt.training import TrainConfig
from archopt.training.trainer import TrainStep, make_optimizer

DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "train_throughput.json"


def bench(device: torch.device, *, spec_name: str, batch_size: int, resolution: int,
          repeats: int, steps: int, warmup: int, channels_last: bool,
          amp_dtype: torch.dtype | None) -> dict[str, Any]:
    """Loader, step and end-to-end timings on one device with one setting."""
    torch.manual_seed(0)
    spec = load_spec(spec_name).with_io(in_channels=3, resolution=resolution, num_classes=10)
    model = spec.build().to(device)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    model.train()
    cfg = TrainConfig(lr=0.1)
    opt = make_optimizer(model.parameters(), cfg)
    scaler = torch.amp.GradScaler("cuda") if amp_dtype == torch.float16 else None
    step = TrainStep(model, opt, nn.CrossEntropyLoss(), amp_dtype=amp_dtype, scaler=scaler,
                     channels_last=channels_last, device=device)

    n = batch_size * 8
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (n, 3, resolution, resolution), dtype=torch.uint8, generator=g)
    y = torch.randint(0, 10, (n,), generator=g)
    if device.type == "cuda":
        x, y = x.to(device), y.to(device)
    loader = BatchLoader(x, y, batch_size, mean=(0.49, 0.48, 0.45), std=(0.25, 0.24, 0.26),
                         shuffle=True, seed=0, augment=augmentation("crop-flip", resolution),
                         drop_last=True, device=device)
    state = {"it": iter(loader), "epoch": 0}

    def next_batch():
        try:
            return next(state["it"])
        except StopIteration:
            state["epoch"] += 1
            loader.set_epoch(state["epoch"])
            state["it"] = iter(loader)
            return next(state["it"])

    xb, yb = next_batch()
    for _ in range(warmup):
        step(xb, yb)
    # Interleaved: loader, step and end-to-end alternate within each repeat, so that a change
    # of machine load or clock during the measurement reaches all three alike (timed one after
    # the other, a busier or cooler minute could make end-to-end look faster than the step).
    runs: dict[str, list[tuple[float, float]]] = {"loader": [], "step": [], "end_to_end": []}
    for _ in range(repeats):
        runs["loader"].append(benchlib.clock(next_batch, max(steps, 4), device))
        runs["step"].append(benchlib.clock(lambda: step(xb, yb), steps, device))
        runs["end_to_end"].append(benchlib.clock(lambda: step(*next_batch()), steps, device))
    wall = {k: statistics.median(w for w, _ in v) for k, v in runs.items()}
    cpu = {k: statistics.median(c for _, c in v) for k, v in runs.items()}
    ls, ss, es = wall["loader"], wall["step"], wall["end_to_end"]
    return {
        "device": str(device),
        "device_name": (torch.cuda.get_device_name(device) if device.type == "cuda"
                        else benchlib.cpu_name()),
        "threads": torch.get_num_threads() if device.type == "cpu" else None,
        "channels_last": channels_last,
        "amp_dtype": str(amp_dtype).removeprefix("torch.") if amp_dtype else None,
        "step_ms": round(ss * 1e3, 3),
        "step_images_per_s": round(batch_size / ss, 2),
        "loader_ms_per_batch": round(ls * 1e3, 3),
        "loader_share_of_step": round(ls / (ls + ss), 4),
        "end_to_end_ms": round(es * 1e3, 3),
        "end_to_end_images_per_s": round(batch_size / es, 2),
        "cpu_seconds": {"step_ms": round(cpu["step"] * 1e3, 3),
                        "loader_ms_per_batch": round(cpu["loader"] * 1e3, 3),
                        "end_to_end_ms": round(cpu["end_to_end"] * 1e3, 3)},
        "order": "interleaved: loader, step, end-to-end in each repeat",
        "runs": {f"{k}_s": [w for w, _ in v] for k, v in runs.items()}
                | {f"{k}_cpu_s": [c for _, c in v] for k, v in runs.items()},
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--spec", default="resnet18-cifar")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--resolution", type=int, default=32)
    p.add_argument("--device", choices=["all", "cpu", "cuda"], default="all")
    p.add_argument("--repeats", type=int, default=5, help="timed repeats (median reported)")
    p.add_argument("--steps", type=int, default=None,
                   help="steps per repeat (default: 1 on CPU, 20 on CUDA)")
    p.add_argument("--warmup", type=int, default=None,
                   help="untimed steps first (default: 1 on CPU, 10 on CUDA)")
    p.add_argument("--threads", default=None,
                   help="torch CPU threads; a comma-separated list times each (e.g. 1,2)")
    p.add_argument("--cpu-channels-last", action="store_true",
                   help="also time channels_last on CPU")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT)
    a = p.parse_args(argv)
    threads = [int(t) for t in a.threads.split(",")] if a.threads else [torch.get_num_threads()]
    load_at_start = list(os.getloadavg())

    results = []
    runs: list[tuple[torch.device, int | None, bool, torch.dtype | None]] = []
    if a.device in ("all", "cpu"):
        for t in threads:
            runs.append((torch.device("cpu"), t, False, None))
            if a.cpu_channels_last:
                runs.append((torch.device("cpu"), t, True, None))
    if a.device in ("all", "cuda") and torch.cuda.is_available():
        amp = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        runs.append((torch.device("cuda"), None, False, None))
        runs.append((torch.device("cuda"), None, True, amp))  # the trainer's CUDA default
    for dev, t, cl, amp_dtype in runs:
        cuda = dev.type == "cuda"
        steps = a.steps or (20 if cuda else 1)
        warmup = a.warmup if a.warmup is not None else (10 if cuda else 1)
        if t is not None:
            torch.set_num_threads(t)
        r = bench(dev, spec_name=a.spec, batch_size=a.batch_size, resolution=a.resolution,
                  repeats=a.repeats, steps=steps, warmup=warmup, channels_last=cl,
                  amp_dtype=amp_dtype)
        print(f"{r['device']:>6} threads={r['threads']} channels_last={cl!s:5} "
              f"amp={r['amp_dtype']}: step {r['step_ms']:.1f} ms ({r['step_images_per_s']:.1f} "
              f"img/s), loader {r['loader_ms_per_batch']:.1f} ms/batch "
              f"({100 * r['loader_share_of_step']:.1f} % of loader+step), end-to-end "
              f"{r['end_to_end_images_per_s']:.1f} img/s", flush=True)
        results.append(r)
    report = {
        "benchmark": "train_throughput",
        "spec": a.spec, "batch_size": a.batch_size,
        "input_shape": [3, a.resolution, a.resolution],
        "macs_per_image": load_spec(a.spec).with_io(in_channels=3, resolution=a.resolution,
                                                    num_classes=10).macs(a.resolution),
        "repeats": a.repeats,
        "machine": {"cpu": benchlib.cpu_name(),
                    "load_average_1_5_15_at_start": load_at_start,
                    "load_average_1_5_15_at_end": list(os.getloadavg()),
                    **environment_info()},
        "results": results,
    }
    atomic_write_json(a.out, report)
    print(f"wrote {a.out}")
    return report


if __name__ == "__main__":
    main()
