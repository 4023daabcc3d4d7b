"""HBDE on Fashion-MNIST: pre-train a CNN with Adam, refine it with HBDE for macro-F1, compare
with Adam and random-block DE at equal search time. Writes benchmarks/results/<tag>_fashion.json.

Stages (each reuses what an earlier invocation left in --work, so an interrupted benchmark picks
up where it stopped):

1. pre-train ``--spec`` (default cnn-small) with Adam (``archopt.training.train``);
2. the blocking cost sweep over N_bins;
3. HBDE with N_bins = 10,000 (``archopt.refine.refine``);
4. the baselines with HBDE's search seconds (``archopt.refine.run_baselines``).

Usage (CPU budget used for the figures in the report):

    ARCHOPT_DATA_DIR=../shared/data python benchmarks/hbde_fashion.py --threads 1 \
        --epochs 1 --population 20 --generations 40 --super-batch 128

The paper's setting (ResNet-18, CIFAR-10, NP = 100) needs a GPU: pass ``--spec resnet18-cifar``
(adapted to 28x28x1) and ``--device cuda``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import torch

from archopt.data import load_dataset
from archopt.refine import RefineConfig, refine, run_baselines
from archopt.refine.sweep import blocking_sweep
from archopt.runs import atomic_write_json, environment_info
from archopt.training import TrainConfig, train

ROOT = Path(__file__).resolve().parents[1]


def _load_avg() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:  # pragma: no cover
        return None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--spec", default="cnn-small")
    ap.add_argument("--data", default="fashion-mnist")
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--bins", type=int, default=10_000)
    ap.add_argument("--population", type=int, default=20)
    ap.add_argument("--generations", type=int, default=40)
    ap.add_argument("--super-batch", type=int, default=128)
    ap.add_argument("--eval-every", type=int, default=10)
    ap.add_argument("--rescore", action="store_true")
    ap.add_argument("--sweep", default="100,1000,10000,100000")
    ap.add_argument("--train-eval-size", type=int, default=5000,
                    help="training examples that price the blocking")
    ap.add_argument("--baselines", default="adam,random-blocks")
    ap.add_argument("--adam-lr", type=float, default=1e-4)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--work", type=Path, default=ROOT / "runs" / "hbde_fashion")
    ap.add_argument("--tag", default=None,
                    help="name of this HBDE run's folder in --work and of the JSON "
                         "[default: hbde, or hbde-rescore with --rescore]")
    ap.add_argument("--json", type=Path, default=None,
                    help="[default: benchmarks/results/<tag>_fashion.json]")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    ds = load_dataset(args.data)
    work = args.work
    load0 = _load_avg()

    t0 = time.perf_counter()
    if (work / "pretrain" / "summary.json").is_file():  # finished by an earlier invocation
        pre_summary = json.loads((work / "pretrain" / "summary.json").read_text())
    else:
        pre_summary = train(args.spec, ds, TrainConfig(optimizer="adam", epochs=args.epochs,
                                                       seed=args.seed, device=args.device,
                                                       latency=False),
                            out=work / "pretrain", resume=True, adapt=True).summary
    pretrain_seconds = time.perf_counter() - t0
    ckpt = work / "pretrain" / "checkpoint.pt"

    sweep_path = work / "sweep.json"
    if sweep_path.exists():
        sweep = json.loads(sweep_path.read_text())
    else:
        sweep = blocking_sweep(ckpt, ds, [int(b) for b in args.sweep.split(",")],
                               device=args.device, seed=args.seed,
                               train_eval_size=args.train_eval_size)
        atomic_write_json(sweep_path, sweep)

    cfg = RefineConfig(n_bins=args.bins, population=args.population,
                       generations=args.generations, super_batch=args.super_batch,
                       eval_every=args.eval_every, rescore=args.rescore, seed=args.seed,
                       device=args.device, train_eval_size=args.train_eval_size)
    tag = args.tag or ("hbde-rescore" if args.rescore else "hbde")
    res = refine(ckpt, ds, cfg, out=work / tag, resume=True)
    names = [b for b in args.baselines.split(",") if b]
    if names:
        run_baselines(res, ckpt, ds, names, adam_lr=args.adam_lr)
    s = res.summary
    report = {
        "benchmark": "hbde_fashion",
        "machine": {"node": platform.node(), **environment_info(),
                    "loadavg_start": load0, "loadavg_end": _load_avg()},
        "budget": {"spec": args.spec, "pretrain_epochs": args.epochs, "n_bins": args.bins,
                   "population": args.population, "generations": args.generations,
                   "super_batch": args.super_batch, "rescore": args.rescore,
                   "threads": torch.get_num_threads(), "adam_lr": args.adam_lr,
                   "train_eval_size": args.train_eval_size},
        "pretrain": {k: pre_summary.get(k) for k in ("test_macro_f1", "test_accuracy",
                                                     "epochs", "seconds", "params")},
        "pretrain_wall_seconds_this_invocation": round(pretrain_seconds, 1),
        "sweep": sweep,
        "hbde": s,
        "table": {
            "D": s["dimensions"], "D_prime": s["blocked_dimensions"],
            "macro_f1_pretrained": s["metric_before"],
            "macro_f1_blocked": s["metric_after_blocking"],
            "macro_f1_hbde": s["metric_after"],
            **{f"macro_f1_{k}": v.get("metric_after")
               for k, v in s.get("baselines", {}).items()},
            **{f"search_seconds_{k}": v.get("search_seconds")
               for k, v in s.get("baselines", {}).items()},
            **{f"search_cpu_seconds_{k}": v.get("search_cpu_seconds")
               for k, v in s.get("baselines", {}).items()},
            "function_evaluations": s["function_evaluations"],
            "function_evaluations_random_blocks": s.get("baselines", {}).get(
                "random-blocks", {}).get("function_evaluations"),
            "adam_steps": s.get("baselines", {}).get("adam", {}).get("steps"),
            "search_seconds": s["search_seconds"],
            "search_cpu_seconds": s.get("search_cpu_seconds"), "seconds": s["seconds"]},
    }
    atomic_write_json(args.json or ROOT / "benchmarks" / "results" / f"{tag}_fashion.json",
                      report)
    print(json.dumps(report["table"], indent=2))


if __name__ == "__main__":
    main()
