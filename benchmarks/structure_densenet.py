"""Connection selection in DenseNet-40 (3 blocks x 12 layers, growth 12, d = 273 connection bits)
on Fashion-MNIST (the paper used CIFAR-10, which these machines do not have).

For each eps0 it trains the supernet's weights and connection distribution together, keeps M*
as a pruned DenseNet, and records weight usage, live connections per block, test error, params
and CPU latency of the masked supernet and of the pruned network. Writes
``benchmarks/results/structure_densenet.json``; run folders go to ``--runs``.

A CPU can afford only a short schedule (``--max-steps-per-epoch``, ``--test-subset``); the
paper's schedule (300 epochs, lr 0.1, batch 32) and its grid 2^-2 .. 2^-6, 0, -2^-3 need a GPU:

    python benchmarks/structure_densenet.py --penalties 2^-4 --epochs 1 \\
        --max-steps-per-epoch 30 --test-subset 1000          # CPU smoke run
    python benchmarks/structure_densenet.py --epochs 30 --device cuda   # GPU
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import torch

from archopt.errors import InvalidSpec
from archopt.runs import atomic_write_json
from archopt.structure.loop import StructureConfig
from archopt.structure.run import default_train_config, run_structure
from archopt.structure.sweep import parse_penalty, penalty_label

KEYS = ("weight_usage_rate", "cost_usage_rate", "connections_per_block",
        "selected_bits_per_block", "test_error", "test_accuracy", "params", "params_full",
        "latency_ms", "latency_ms_supernet", "compact_max_abs_logit_difference", "steps",
        "train_seconds", "seconds_per_step_ms", "theta_mean", "theta_decided", "test_examples")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--penalties", default="2^-2,2^-3,2^-4,2^-5,2^-6,0,-2^-3")
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--max-steps-per-epoch", type=int, default=None)
    ap.add_argument("--test-subset", type=int, default=None)
    ap.add_argument("--theta-lr", type=float, default=None, help="default 1/d (the paper)")
    ap.add_argument("--optimizer", default="sng", choices=["sng", "asng"])
    ap.add_argument("--device", default="auto")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--runs", type=Path, default=Path("runs/structure_densenet"))
    ap.add_argument("--results", type=Path, default=Path("benchmarks/results"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    rows = []
    load0, t0 = os.getloadavg()[0], time.perf_counter()
    for text in args.penalties.split(","):
        eps0 = parse_penalty(text)
        sc = StructureConfig(optimizer=args.optimizer, penalty=eps0, theta_lr=args.theta_lr,
                             max_steps_per_epoch=args.max_steps_per_epoch,
                             test_subset=args.test_subset)
        tc = default_train_config("densenet-connections", epochs=args.epochs,
                                  device=args.device)
        try:
            s = run_structure("densenet-connections", "fashion-mnist",
                              out=args.runs / f"eps0_{penalty_label(eps0)}", structure=sc,
                              train=tc, resume=True)
            rows.append({"penalty": eps0, "label": penalty_label(eps0),
                         **{k: s.get(k) for k in KEYS}})
        except InvalidSpec as err:  # a disconnected structure: record it, go on
            rows.append({"penalty": eps0, "label": penalty_label(eps0), "error": str(err)})
        print(rows[-1], flush=True)
    args.results.mkdir(parents=True, exist_ok=True)
    atomic_write_json(args.results / "structure_densenet.json", {
        "benchmark": "structure_densenet", "space": "densenet-40-12", "dataset": "fashion-mnist",
        "epochs": args.epochs, "max_steps_per_epoch": args.max_steps_per_epoch,
        "test_subset": args.test_subset, "optimizer": args.optimizer,
        "theta_lr": args.theta_lr or 1 / 273, "device": args.device, "threads": args.threads,
        "load_average_start": load0, "load_average_end": os.getloadavg()[0],
        "wall_seconds": time.perf_counter() - t0, "runs": rows})


if __name__ == "__main__":
    main()
