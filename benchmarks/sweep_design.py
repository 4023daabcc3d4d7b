"""A design sweep over 5 MACs budgets (DeepMAD, ResNet space, 32x32 inputs, rho <= 0.3): the table
with its Pareto front (objective vs MACs) and the plot.

The real command (``archopt design sweep ...``) in a subprocess, once with ``--json`` (the
table) and once more into the same folder without it (every trial is reused; the printed table
is kept for the README):

    python benchmarks/sweep_design.py

Writes benchmarks/results/sweep_design.json and benchmarks/results/sweep_design_pareto.png.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--budgets", default="10M,20M,40M,80M,160M")
    ap.add_argument("--candidates", type=int, default=20_000)
    ap.add_argument("--backend", default="--in-process",
                    help="--in-process, or e.g. '--workers 2' (Ray)")
    ap.add_argument("--runs", type=Path, default=Path("runs") / "bench_design")
    ap.add_argument("--results", type=Path, default=Path("benchmarks/results"))
    args = ap.parse_args()
    shutil.rmtree(args.runs, ignore_errors=True)
    cmd = ["design", "sweep", "--space", "resnet", "--resolution", "32", "--rho", "0.3",
           "--budget-macs", args.budgets, "--candidates", str(args.candidates), "--out",
           str(args.runs), *args.backend.split()]
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "archopt", *cmd, "--json"], capture_output=True,
                       text=True, check=False)
    wall = time.perf_counter() - t0
    if r.returncode != 0:
        raise SystemExit(f"design sweep failed ({r.returncode}): {r.stderr[-2000:]}")
    table = json.loads(r.stdout)
    env = {**os.environ, "COLUMNS": "100"}
    printed = subprocess.run([sys.executable, "-m", "archopt", *cmd], capture_output=True,
                             text=True, check=False, env=env)
    args.results.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(args.runs / "pareto.png", args.results / "sweep_design_pareto.png")
    out = {"benchmark": "sweep_design", "command": "archopt " + " ".join(cmd),
           "wall_seconds": round(wall, 2), "cpu_count": os.cpu_count(),
           "load_average_start": os.getloadavg()[0], **table,
           "printed_on_rerun": printed.stdout.splitlines(),
           "rerun_stderr": printed.stderr.splitlines()}
    path = args.results / "sweep_design.json"
    path.write_text(json.dumps(out, indent=2) + "\n")
    print(printed.stdout)
    print(f"wrote {path} and {args.results / 'sweep_design_pareto.png'}")


if __name__ == "__main__":
    main()
