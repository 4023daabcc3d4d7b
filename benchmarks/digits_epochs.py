"""How many epochs the quick start needs (issue 20: ``archopt run`` on digits must stay under a
minute beside a CPU-bound job): test accuracy of the designed network and both equal-budget
baselines on scikit-learn's digits (1,347 training / 450 test images, 8x8) at several epoch
counts (and, as a second question, batch sizes), the rest of the digits recipe unchanged
(SGD-Nesterov, lr 0.05, batch 64, 1 warm-up epoch then cosine, pad-crop), each with the same
seeds.

Each case is ``archopt run --epochs E --seeds S --threads 1 --json`` in a scratch folder (the
design is the same network at every E: the design search does not depend on the epochs);
its per-seed test accuracies and training seconds are recorded. The training seconds are
wall seconds, taken while other jobs shared the machine: a rough cost, not a timing (the quick
start's own timing is ``benchmarks/quickstart.py``). Resumable: a case already in the results
file is skipped.

    python benchmarks/digits_epochs.py --epochs 8,10,15 --seeds 3
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import benchlib

DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "digits_epochs.json"


def _network(rec: dict[str, Any]) -> dict[str, Any]:
    acc = rec["test_accuracy_seeds"]
    return {"name": rec["name"], "params": rec["params"], "macs": rec["macs"],
            "test_accuracy_seeds": acc, "test_accuracy_mean": statistics.fmean(acc),
            "train_seconds": rec["seconds"]}


def run_case(epochs: int, seeds: int, batch: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        proc = subprocess.run(
            ["archopt", "run", "--epochs", str(epochs), "--seeds", str(seeds), "--batch-size",
             str(batch), "--threads", "1",
             "--out", str(Path(tmp) / "run"), "--json"],
            capture_output=True, text=True, check=True)
    s = json.loads(proc.stdout)
    nets = {"design": _network(s["designed"])}
    nets.update({fam: _network(b) for fam, b in s["baselines"].items()})
    return {"epochs": epochs, "seeds": seeds, "batch_size": batch, "networks": nets,
            "verdict": s["comparison"]["verdict"],
            "design_minus_baseline_points": {
                fam: c["points_per_seed"]
                for fam, c in s["comparison"]["design_minus_baseline"].items()}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--epochs", default="8,10,15", help="comma-separated epoch counts")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=64, help="the digits recipe's is 64")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = ap.parse_args()
    res: dict[str, Any] = (json.loads(args.out.read_text()) if args.out.exists()
                           else {"benchmark": "digits_epochs", "what": __doc__.split("\n\n")[0],
                                 "cases": {}})
    for e in (int(x) for x in args.epochs.split(",")):
        key = (f"{e}ep_{args.seeds}seeds"
               + ("" if args.batch_size == 64 else f"_b{args.batch_size}"))
        if key in res["cases"]:
            continue
        res["cases"][key] = run_case(e, args.seeds, args.batch_size)
        res["machine"] = benchlib.machine()
        benchlib.write_results(args.out, res)
        print(key, {n: round(100 * v["test_accuracy_mean"], 2)
                    for n, v in res["cases"][key]["networks"].items()}, flush=True)


if __name__ == "__main__":
    main()
