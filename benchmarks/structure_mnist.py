"""Unit selection on MNIST with the paper's MLP (784-784-784-784-10): the eps0 sweep, the
fixed-structure baselines at matching weight counts, and the training-cost ratio.

Writes ``benchmarks/results/structure_mnist.json`` (the trade-off table, units per layer, cost
figures, machine load) and ``benchmarks/results/structure_mnist.png`` (test error vs weight
usage rate). Run folders (checkpoints, metrics) go to ``--runs`` (default
``runs/structure_mnist``, not tracked); a rerun reuses finished runs, so the sweep can be split
across processes (``--phase method --penalties ...`` in parallel, then ``--phase all``).

Schedule: the paper trains 500 epochs (~9.4e5 steps) with eta = 1/d. A CPU run affords a few
epochs; with eta = 1/d theta then hardly leaves 0.5 (M* is a coin flip per unit), so by default
eta is scaled to keep eta * steps equal to the paper's (--theta-lr paper keeps 1/d).

Cost: ``--cost-steps`` optimiser steps of the method (lambda = 2, batch 32) and of fixed
training (batch 64, the full MLP) are timed alternately, ``--cost-repeats`` times; the JSON
reports the medians and their ratio (same rows per step, same machinery).

    python benchmarks/structure_mnist.py --epochs 3
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import torch

from archopt.data import load_dataset
from archopt.runs import atomic_write_json
from archopt.spaces import load_spec
from archopt.structure import SNG, Bernoulli, MaskedMLP
from archopt.structure.loop import StructureConfig, train_loop
from archopt.structure.mlp import he_init
from archopt.structure.run import adapt, default_train_config
from archopt.structure.sweep import PAPER_PENALTIES, parse_penalty, plot_tradeoff, run_sweep

PAPER_STEPS = 500 * 60000 // 32  # 937,500 steps of the method in the paper
D = 3 * 784


def load() -> float:
    return os.getloadavg()[0]


def cost_benchmark(steps: int, repeats: int, seed: int = 0) -> dict:
    """Median seconds per optimiser step of the joint method vs fixed training, both through
    :func:`~archopt.structure.loop.train_loop` (the same code path), timed alternately."""
    ds = load_dataset("mnist")
    spec = adapt(load_spec("mlp-3x784"), ds)
    torch.manual_seed(seed)
    net = MaskedMLP(spec)
    fixed = he_init(spec.build())
    opt = SNG(Bernoulli(net.d), penalty=2**-7, eta=0.05, seed=seed)
    cfg_m = default_train_config("mlp-units", epochs=1, batch_size=32, device="cpu", seed=seed)
    cfg_f = default_train_config("mlp-units", epochs=1, batch_size=64, device="cpu", seed=seed)

    def method() -> float:
        r = train_loop(net, ds, cfg_m, structure=opt, max_steps_per_epoch=steps)
        return r.train_seconds / r.steps

    def fixed_() -> float:
        r = train_loop(fixed, ds, cfg_f, max_steps_per_epoch=steps)
        return r.train_seconds / r.steps

    method()  # warm-up
    fixed_()
    m, f, loads = [], [], []
    for _ in range(repeats):
        loads.append(load())
        m.append(method())
        f.append(fixed_())
    mm, fm = statistics.median(m), statistics.median(f)
    return {"steps_per_repeat": steps, "repeats": repeats,
            "method_ms_per_step": [1000 * v for v in m],
            "fixed_ms_per_step": [1000 * v for v in f],
            "method_ms_median": 1000 * mm, "fixed_ms_median": 1000 * fm, "ratio": mm / fm,
            "ratio_per_repeat": [a / b for a, b in zip(m, f, strict=True)],
            "load_average_1min": loads,
            "note": "train_loop for both: method = lambda 2 structures x batch 32 (one fused "
                    "pass) + ask/tell; fixed = the full MLP at batch 64; same optimiser, "
                    "same rows per step"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--epochs", type=int, default=3, help="method epochs (baselines: 2x)")
    ap.add_argument("--penalties", default=",".join(map(str, PAPER_PENALTIES)))
    ap.add_argument("--theta-lr", default="scaled",
                    help="'scaled' (eta * steps = the paper's), 'paper' (1/d) or a number")
    ap.add_argument("--optimizer", default="sng", choices=["sng", "asng"])
    ap.add_argument("--phase", default="all", choices=["method", "all"])
    ap.add_argument("--runs", type=Path, default=Path("runs/structure_mnist"))
    ap.add_argument("--results", type=Path, default=Path("benchmarks/results"))
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--cost-steps", type=int, default=200)
    ap.add_argument("--cost-repeats", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    penalties = [parse_penalty(p) for p in args.penalties.split(",")]
    steps = args.epochs * (60000 // 32)
    eta = {"scaled": PAPER_STEPS / D / steps, "paper": 1 / D}.get(args.theta_lr)
    eta = float(args.theta_lr) if eta is None else eta
    sc = StructureConfig(optimizer=args.optimizer, theta_lr=eta)
    tc = default_train_config("mlp-units", epochs=args.epochs, seed=args.seed, device="cpu")
    load0, t0, c0 = load(), time.perf_counter(), time.process_time()
    table = run_sweep("mlp-units", "mnist", penalties, out=args.runs, structure=sc, train=tc,
                      baselines=args.phase == "all", plot=False)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    if args.phase != "all":
        print(f"method runs done in {wall:.0f} s wall")
        return
    cost = cost_benchmark(args.cost_steps, args.cost_repeats, args.seed)
    run_seconds = sum(r.get("train_seconds", 0) for r in table["method"]) + \
        sum(b["train_seconds"] for b in table["baselines"])
    out = {"benchmark": "structure_mnist", "epochs_method": args.epochs,
           "epochs_baselines": 2 * args.epochs, "steps_method": steps,
           "theta_lr": eta, "theta_lr_rule": args.theta_lr, "d": D,
           "threads": args.threads, "cpu_count": os.cpu_count(),
           "load_average_start": load0, "load_average_end": load(),
           "this_process_wall_seconds": wall, "this_process_cpu_seconds": cpu,
           "train_seconds_all_runs": run_seconds, **table, "cost_benchmark": cost,
           "paper_table1_units": {"2^-6": [92, 31, 24], "2^-7": [340, 141, 126],
                                  "2^-8": [599, 380, 379], "2^-9": [704, 544, 567],
                                  "0": [770, 717, 724], "-2^-3": [784, 784, 784]},
           "paper_usage_percent": {"2^-6": 6.6, "2^-7": 26.1, "2^-8": 57.8, "2^-9": 77.7,
                                   "0": 93.7, "-2^-3": 100.0}}
    args.results.mkdir(parents=True, exist_ok=True)
    atomic_write_json(args.results / "structure_mnist.json", out)
    plot_tradeoff(table, args.results / "structure_mnist.png")
    for r in table["comparison"]:
        print(f"eps0={r['label']:>6}  usage={r['weight_usage_rate']:.3f}  "
              f"err={r['test_error']:.4f}  baseline {r['baseline']} "
              f"err={r['baseline_test_error']:.4f}")
    print(f"cost ratio (median): {cost['ratio']:.3f}; sweep cost ratio "
          f"{(table.get('cost') or {}).get('ratio_median')}")


if __name__ == "__main__":
    main()
