"""The paper's full-width unit-selection run (issue 11, item 4): 784-784-784-784-10 on MNIST,
eps0 = 2^-7 by default, SNG with eta = 1/d (d = 2352), lambda = 2, batch 32, 500 epochs
(937,500 iterations), SGD-Nesterov lr 0.01 (x0.1 at 1/2 and 3/4), He init -- resumable.

Each invocation continues the run in ``--runs`` from its last epoch checkpoint (an
interruption loses at most one epoch); bound a session's share with ``timeout``::

    timeout 600 python benchmarks/structure_fullwidth.py          # run up to 10 minutes
    python benchmarks/structure_fullwidth.py --collect            # trajectory -> JSON

``--collect`` writes ``benchmarks/results/structure_fullwidth.json``: per epoch the units kept
by M*, the fraction of decided bits, mean theta, train loss, test error of M* (every
``--eval-every`` epochs), seconds per epoch, and the projected cost of the whole run at the
measured speed. On a GPU: add ``--device cuda``.
"""

from __future__ import annotations

import argparse
import os
import statistics

import torch

import benchlib
from archopt.runs import ResultDir, atomic_write_json
from archopt.structure.loop import StructureConfig
from archopt.structure.run import default_train_config, run_structure

PAPER_EPOCHS = 500


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--penalty", type=float, default=2**-7)
    ap.add_argument("--epochs", type=int, default=PAPER_EPOCHS)
    ap.add_argument("--eval-every", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--runs", default="runs/structure_fullwidth")
    ap.add_argument("--out", default="benchmarks/results/structure_fullwidth.json")
    ap.add_argument("--collect", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(int(os.environ.get("ARCHOPT_THREADS", "1")))
    if not args.collect:
        run_structure("mlp-units", "mnist", out=args.runs, resume=True, latency=False,
                      progress=False,
                      structure=StructureConfig(penalty=args.penalty,
                                                eval_every=args.eval_every),
                      train=default_train_config("mlp-units", epochs=args.epochs,
                                                 seed=args.seed, device=args.device))
        return
    rd = ResultDir(args.runs)
    rows = rd.read_metrics()
    if not rows:
        raise SystemExit(f"{args.runs} holds no finished epoch yet")
    keep = ("epoch", "step", "lr", "train_loss", "seconds", "mode_bits", "decided_fraction",
            "theta_mean", "mode_cost_rate", "test_error", "test_accuracy")
    traj = [{k: r[k] for k in keep if k in r} for r in rows]
    sec = statistics.median(r["seconds"] for r in rows)
    summary = rd.read_summary() if rd.exists(ResultDir.SUMMARY) else {}
    atomic_write_json(args.out, {
        "benchmark": "structure_fullwidth", "penalty": args.penalty, "d": 2352,
        "eta": 1 / 2352, "epochs_planned": args.epochs, "epochs_done": rows[-1]["epoch"],
        "iterations_done": rows[-1]["step"], "complete": bool(summary.get("complete")),
        "seconds_per_epoch_median": sec,
        "projected_hours_for_all_epochs": sec * args.epochs / 3600,
        "device": args.device, "threads": torch.get_num_threads(),
        "machine": benchlib.cpu_name(), "torch": torch.__version__,
        "trajectory": traj, "summary": {k: v for k, v in summary.items() if k != "arch"}})
    print(f"{rows[-1]['epoch']} epochs, {sec:.1f} s/epoch, projected "
          f"{sec * args.epochs / 3600:.1f} h")


if __name__ == "__main__":
    main()
