"""Speed of one SNG iteration against fixed training and against the machine's floor
(issue 11, item 2).

Network: the paper's MLP 784-784-784-784-10 (three hidden layers of 784, ReLU), MNIST. Timed,
per thread count (default 1 and 2), alternating, ``--repeats`` times ``--steps`` iterations:

- ``sng``: one iteration of :func:`archopt.structure.loop.train_loop` with SNG (batch 32,
  lambda = 2: ask, one batched forward of the 2 structures = 64 rows, backward, SGD step, tell);
- ``fixed64`` / ``fixed32``: one iteration of the same loop on the fixed full network at batch
  64 (the same rows per iteration: the paper's baseline) and at batch 32;
- ``bare``: a bare torch chain of the same shapes: 64 x 784 input, four ``x @ W.T + b`` with
  ReLU, cross-entropy, ``backward()`` -- no data loader, no optimiser, no masks.

GFLOP/s counts the matmuls of forward and backward with 64 rows (:func:`flops`; equal to
torch.utils.flop_counter's count, ``flop_counter_check``). Writes
``benchmarks/results/structure_step.json`` (medians, every repeat, machine, load).

    python benchmarks/structure_step.py
"""

from __future__ import annotations

import argparse
import itertools
import os
import statistics
import time

import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

import benchlib
from archopt.data import load_dataset
from archopt.runs import atomic_write_json
from archopt.spaces.mlp import MLPSpec
from archopt.structure import SNG, Bernoulli, MaskedMLP
from archopt.structure.loop import train_loop
from archopt.structure.mlp import he_init
from archopt.structure.run import default_train_config

DIMS = [784, 784, 784, 784, 10]
ROWS = 64


def flops(rows: int = ROWS) -> int:
    """Forward (2 rows in out) + backward (2 rows in out for dW, and for dX except the first
    layer's: the input needs no gradient)."""
    return 6 * rows * sum(a * b for a, b in itertools.pairwise(DIMS)) - 2 * rows * DIMS[0] * DIMS[1]


def bare_chain(steps: int) -> float:
    g = torch.Generator().manual_seed(0)
    ws = [(torch.randn(b, a, generator=g) * (2 / a) ** 0.5).requires_grad_()
          for a, b in itertools.pairwise(DIMS)]
    bs = [torch.zeros(b, requires_grad=True) for b in DIMS[1:]]
    x = torch.randn(ROWS, DIMS[0], generator=g)
    y = torch.randint(0, 10, (ROWS,), generator=g)

    def step() -> None:
        h = x
        for i, (w, b) in enumerate(zip(ws, bs, strict=True)):
            h = F.linear(h, w, b)
            if i < len(ws) - 1:
                h = F.relu(h)
        F.cross_entropy(h, y).backward()
        for p in (*ws, *bs):
            p.grad = None

    for _ in range(10):
        step()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    return (time.perf_counter() - t0) / steps


def flop_check() -> int:
    """FLOPs of one bare forward + backward as torch.utils.flop_counter counts them."""
    ws = [torch.randn(b, a, requires_grad=True) for a, b in itertools.pairwise(DIMS)]
    x = torch.randn(ROWS, DIMS[0])
    with FlopCounterMode(display=False) as fc:
        h = x
        for w in ws:
            h = F.linear(h, w)
        h.sum().backward()
    return int(fc.get_total_flops())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--out", default="benchmarks/results/structure_step.json")
    args = ap.parse_args()
    ds = load_dataset("mnist")
    spec = MLPSpec(in_features=784, widths=DIMS[1:-1], num_classes=10)
    torch.manual_seed(0)
    net = MaskedMLP(spec)
    opt = SNG(Bernoulli(net.d), penalty=2**-7, seed=0)
    fixed = he_init(spec.build())
    cfg32 = default_train_config("mlp-units", epochs=1, batch_size=32, device="cpu")
    cfg64 = default_train_config("mlp-units", epochs=1, batch_size=64, device="cpu")

    def loop(kind: str) -> float:
        if kind == "sng":
            r = train_loop(net, ds, cfg32, structure=opt, max_steps_per_epoch=args.steps)
        else:
            r = train_loop(fixed, ds, cfg64 if kind == "fixed64" else cfg32,
                           max_steps_per_epoch=args.steps)
        return r.train_seconds / r.steps

    kinds = {"sng": lambda: loop("sng"), "fixed64": lambda: loop("fixed64"),
             "fixed32": lambda: loop("fixed32"), "bare": lambda: bare_chain(args.steps)}
    results = {}
    t_start = time.perf_counter()
    for threads in args.threads:
        torch.set_num_threads(threads)
        for f in kinds.values():
            f()  # warm-up
        times: dict[str, list[float]] = {k: [] for k in kinds}
        loads = []
        for _ in range(args.repeats):
            loads.append(os.getloadavg()[0])
            for k, f in kinds.items():
                times[k].append(f())
        med = {k: statistics.median(v) for k, v in times.items()}
        fl = flops()
        results[str(threads)] = {
            "ms_per_iteration": {k: 1000 * v for k, v in med.items()},
            "ms_per_iteration_all": {k: [1000 * x for x in v] for k, v in times.items()},
            "gflops": {k: fl / med[k] / 1e9 for k in ("sng", "fixed64", "bare")},
            "ratio_sng_to_fixed64": med["sng"] / med["fixed64"],
            "ratio_sng_to_fixed32": med["sng"] / med["fixed32"],
            "sng_gflops_fraction_of_bare": med["bare"] / med["sng"],
            "loadavg": loads,
        }
        print(threads, results[str(threads)]["ms_per_iteration"],
              round(results[str(threads)]["ratio_sng_to_fixed64"], 3),
              round(results[str(threads)]["sng_gflops_fraction_of_bare"], 3), flush=True)
    atomic_write_json(args.out, {
        "benchmark": "structure_step", "network": "784-784-784-784-10 ReLU (paper 4.1)",
        "sng": "batch 32, lambda 2 (64 rows)", "fixed64": "batch 64 (64 rows)",
        "fixed32": "batch 32", "bare": "64-row linear chain, forward + backward",
        "flops_per_iteration": flops(), "flop_counter_check": flop_check(),
        "steps": args.steps, "repeats": args.repeats, "results": results,
        "targets": {"ratio_sng_to_fixed": 1.15, "fraction_of_bare_gflops": 0.5},
        "machine": benchlib.cpu_name(), "cpu_count": os.cpu_count(),
        "torch": torch.__version__, "wall_seconds": time.perf_counter() - t_start})


if __name__ == "__main__":
    main()
