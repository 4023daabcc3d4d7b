"""Does ASNG decide faster than SNG at equal iterations? The data behind the defaults of
``archopt structure --task mlp-units --data digits`` (issue 11, item 6).

Runs ``run_structure`` on digits (the paper's 784-784-784 MLP adapted to 64 inputs, d = 2352)
with eps0 = 2^-6 for each optimiser, epoch count and seed, and records the fraction of decided
bits, test accuracy and weight usage rate. Resumable: finished runs (summary.json) are reused.

    python benchmarks/structure_digits.py
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import torch

import benchlib
from archopt.runs import atomic_write_json
from archopt.structure.loop import StructureConfig
from archopt.structure.run import default_train_config, run_structure


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--optimizers", nargs="+", default=["sng", "asng"])
    ap.add_argument("--epochs", type=int, nargs="+", default=[10, 30])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--penalty", type=float, default=2**-6)
    ap.add_argument("--runs", default="runs/structure_digits")
    ap.add_argument("--out", default="benchmarks/results/structure_digits.json")
    args = ap.parse_args()
    torch.set_num_threads(int(os.environ.get("ARCHOPT_THREADS", "1")))
    rows = []
    t0 = time.perf_counter()
    for epochs in args.epochs:
        for opt in args.optimizers:
            for seed in args.seeds:
                sub = Path(args.runs) / f"{opt}_e{epochs}_s{seed}"
                s = run_structure("mlp-units", "digits", out=sub, resume=True, latency=False,
                                  progress=False,
                                  structure=StructureConfig(optimizer=opt, penalty=args.penalty),
                                  train=default_train_config("mlp-units", epochs=epochs,
                                                             seed=seed, device="cpu"))
                row = {"optimizer": opt, "epochs": epochs, "seed": seed,
                       **{k: s.get(k) for k in ("steps", "d", "decided_fraction",
                                                "steps_to_decide", "test_accuracy",
                                                "weight_usage_rate", "units_per_layer",
                                                "train_seconds")}}
                rows.append(row)
                print(row, flush=True)
    atomic_write_json(args.out, {
        "benchmark": "structure_digits", "penalty": args.penalty, "runs": rows,
        "machine": benchlib.cpu_name(), "torch": torch.__version__,
        "threads": torch.get_num_threads(), "loadavg": os.getloadavg()[0],
        "wall_seconds": time.perf_counter() - t0})


if __name__ == "__main__":
    main()
