"""SWAT-NN throughput: autoencoder training steps per CPU-second, CPU preset vs the paper's preset.

For each preset (``cpu``: the MLP autoencoder shipped by archopt; ``paper``: the paper's CNNs),
per activation: build the model and fused Adam as ``archopt latent train`` does, run
``--warmup`` steps, then ``--steps`` timed steps of the real training step
(``training_batch`` -> :func:`archopt.latent.autoencoder.training_loss` -> backward -> Adam), and
report steps per CPU-second (process CPU time, so the figure does not depend on what else the
machine runs; with one thread it equals the wall-clock rate on an idle core) and the profile split:
batch generation, the originals' outputs on the grid + the decoded MLPs' outputs
(``array_forward``), encoder, decoders (``decode_all``: the shared expand MLP runs once per step),
the rest of the loss, backward, optimizer step. FLOPs per step come from
``torch.utils.flop_counter`` (forward + backward) and are set against a bare torch matmul loop of
the same thread count (the machine's floor for dense float32 work). Repeated ``--repeats`` times;
medians reported.

    python benchmarks/latent.py
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections import defaultdict
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode

import archopt.latent.autoencoder as ae_mod
from archopt.latent.autoencoder import PRESETS, MultiScaleAutoencoder, input_grid, training_loss
from archopt.latent.generator import training_batch
from archopt.runs import atomic_write_json, environment_info


class _Timer:
    """Accumulates process-CPU seconds per section; ``wrap`` times a function's calls."""

    def __init__(self) -> None:
        self.s: dict[str, float] = defaultdict(float)
        self.depth = 0

    def wrap(self, name: str, fn: Any) -> Any:
        def timed(*a: Any, **k: Any) -> Any:
            if self.depth:  # nested call: the outer section holds it
                return fn(*a, **k)
            self.depth += 1
            c = time.process_time()
            try:
                return fn(*a, **k)
            finally:
                self.s[name] += time.process_time() - c
                self.depth -= 1
        return timed


def _matmul_gflops(seconds: float = 2.0, n: int = 512) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    for _ in range(3):
        a @ b
    k, c = 0, time.process_time()
    while time.process_time() - c < seconds:
        a @ b
        k += 1
    return 2 * n ** 3 * k / (time.process_time() - c) / 1e9


def profile(preset: str, act: str, args: argparse.Namespace) -> dict[str, Any]:
    config = PRESETS[preset](act)
    torch.manual_seed(0)
    model = MultiScaleAutoencoder(config)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4, fused=True)
    grid = input_grid(config.n_in, config.grid_points)
    timer = _Timer()
    orig_af, orig_enc, orig_dec = ae_mod.array_forward, model.encode, model.decode_all
    ae_mod.array_forward = timer.wrap("array_forward", orig_af)
    model.encode = timer.wrap("encoder", orig_enc)
    model.decode_all = timer.wrap("decoders", orig_dec)

    def step(i: int) -> None:
        g = torch.Generator().manual_seed(i)
        c = time.process_time()
        arrays = training_batch(32, config.layout, generator=g, sparsities=config.sparsities,
                                widths=config.widths, weight_range=config.weight_range)
        timer.s["batch"] += time.process_time() - c
        c = time.process_time()
        loss, _ = training_loss(model, arrays, grid, generator=g)
        timer.s["forward"] += time.process_time() - c
        c = time.process_time()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        timer.s["backward"] += time.process_time() - c
        c = time.process_time()
        opt.step()
        timer.s["optimizer"] += time.process_time() - c

    try:
        arrays = training_batch(32, config.layout, generator=torch.Generator().manual_seed(0),
                                sparsities=config.sparsities, widths=config.widths,
                                weight_range=config.weight_range)
        with FlopCounterMode(display=False) as fc:
            loss, _ = training_loss(model, arrays, grid)
            loss.backward()
        flops = fc.get_total_flops()
        opt.zero_grad(set_to_none=True)
        for i in range(args.warmup):
            step(i)
        rates, splits = [], []
        for r in range(args.repeats):
            timer.s.clear()
            c = time.process_time()
            n = args.paper_steps if preset == "paper" else args.steps
            for i in range(n):
                step(1000 * (r + 1) + i)
            total = time.process_time() - c
            rates.append(n / total)
            s = dict(timer.s)
            inner = s.get("array_forward", 0) + s.get("encoder", 0) + s.get("decoders", 0)
            s["loss_rest"] = max(s["forward"] - inner, 0.0)
            splits.append({k: s.get(k, 0.0) / total for k in (
                "batch", "array_forward", "encoder", "decoders", "loss_rest", "backward",
                "optimizer")})
    finally:
        ae_mod.array_forward = orig_af
    rate = statistics.median(rates)
    return {"preset": preset, "activation": act,
            "params": sum(p.numel() for p in model.parameters()),
            "steps_per_cpu_s": rate, "steps_per_cpu_s_runs": rates,
            "profile_share": {k: statistics.median(sp[k] for sp in splits) for k in splits[0]},
            "flops_per_step": flops, "gflops_per_cpu_s": flops * rate / 1e9}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--presets", default="cpu,paper")
    p.add_argument("--activations", default="sigmoid")
    p.add_argument("--steps", type=int, default=60, help="timed steps per repeat (cpu preset)")
    p.add_argument("--paper-steps", type=int, default=10,
                   help="timed steps per repeat of the paper preset (about 1 step/s)")
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--out", default="benchmarks/results/latent_throughput.json")
    args = p.parse_args()
    threads = int(os.environ.get("ARCHOPT_THREADS", "1"))
    torch.set_num_threads(threads)
    load0 = os.getloadavg()
    floor = _matmul_gflops()
    rows = []
    for preset in args.presets.split(","):
        for act in args.activations.split(","):
            row = profile(preset, act, args)
            row["share_of_matmul_floor"] = row["gflops_per_cpu_s"] / floor
            rows.append(row)
            floor_pct = 100 * row["share_of_matmul_floor"]
            print(f"{preset} {act}: {row['steps_per_cpu_s']:.2f} steps/CPU-s, "
                  f"{row['gflops_per_cpu_s']:.1f} GFLOP/CPU-s ({floor_pct:.0f} % of the matmul "
                  "floor), split " + ", ".join(
                      f"{k} {100 * v:.0f}%" for k, v in row["profile_share"].items()), flush=True)
    atomic_write_json(args.out, {
        "benchmark": "latent_throughput (SWAT-NN autoencoder training step, CPU)",
        "environment": environment_info(), "threads": threads,
        "load_average": {"start": load0, "end": os.getloadavg()},
        "settings": vars(args), "matmul_floor_gflops": floor,
        "units": {"steps_per_cpu_s": "training steps (batch of 32 MLPs) per process-CPU second",
                  "profile_share": "fraction of the step's CPU time"},
        "results": rows})
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
