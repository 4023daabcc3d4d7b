"""Record the tour: run every example command of the manual's verb pages and write its output
to ``docs/_generated/tour/<name>.txt``, which the pages include.

    python benchmarks/render_tour.py                 # all commands (a few CPU-minutes)
    python benchmarks/render_tour.py --only run,refine

The commands run in a scratch folder, one after another (later ones read earlier results:
``refine`` the folder ``train`` wrote), with ``COLUMNS=100``, one torch thread and the data
folder seen as ``data/`` (a link to ``$ARCHOPT_DATA_DIR``), so that no machine path appears.
Each file starts with the command line and ends with a line naming the archopt commit, the
date and the wall time. Unlike the results tables (``render_docs.py``), these outputs hold
timings and are not checked by CI: rerun this script when a verb's output changes.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import os
import re
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "docs" / "_generated" / "tour"

#: (name, command): the tour, in the order it runs.
TOUR: list[tuple[str, str]] = [
    ("score", "archopt score deepmad-r18"),
    ("summary", "archopt summary cnn-small --resolution 8 --num-classes 10"),
    ("datasets", "archopt datasets verify"),
    ("design-resnet", "archopt design --space resnet --budget-macs 1.82e9 --budget-params "
                      "11.69e6 --rho 0.3 --resolution 224 --num-classes 0 --candidates 100000 "
                      "--out runs/design-r18"),
    ("design-densenet", "archopt design --space densenet --budget-params 0.8M --rho 0.5 "
                        "--resolution 32 --out runs/design-dense"),
    ("design-sweep", "archopt design sweep --space resnet --resolution 32 --rho 0.3 "
                     "--budget-macs 10M,20M,40M,80M,160M --candidates 20000 "
                     "--out runs/design-sweep"),
    ("train", "archopt train cnn-small --data digits --epochs 10 --out runs/train-digits"),
    ("structure", "archopt structure --task mlp-units --data digits --optimizer sng "
                  "--epochs 20 --penalty 2^-6 --out runs/structure-digits"),
    ("latent-train", "archopt latent train --out runs/latent-ae --steps 300 --val-every 100 "
                     "--coverage-mlps 32"),
    ("latent-search", "archopt latent search --out runs/latent-search --steps 100 "
                      "--samples 5000 --baseline-steps 500"),
    ("refine", "archopt refine runs/train-digits --data digits --population 20 "
               "--generations 20 --baseline adam --out runs/refine-digits"),
    ("run", "archopt run --out runs/run-digits"),
    ("run-all", "archopt run --structure --refine --out runs/run-digits-all"),
    ("structure-resnet", "archopt structure --task resnet-channels --from "
                         "runs/run-digits/designed --data digits --optimizer asng --penalty "
                         "0.25 --epochs 3 --out runs/structure-resnet"),
    ("report", "archopt report runs/run-digits"),
    ("export", "archopt export runs/train-digits --format onnx --out runs/train-digits.onnx"),
]


_EPOCH = re.compile(r"^(epoch|step) \d+(/\d+)?[: ]")
_PROGRESS = re.compile(r"^\[.*\] [\d,]+/[\d,]+ .*\([\d.]+s\)$")


def trim(text: str) -> str:
    """Shorten the per-epoch and progress lines: of each run of epoch lines the first and the
    last are kept, intermediate progress lines are dropped; ``...`` marks what was cut."""
    out: list[str] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if _PROGRESS.match(line):
            i += 1
            continue
        if _EPOCH.match(line):
            j = i
            run = []
            while j < len(lines) and (_EPOCH.match(lines[j]) or _PROGRESS.match(lines[j])):
                if _EPOCH.match(lines[j]):
                    run.append(lines[j])
                j += 1
            out += run if len(run) <= 3 else [run[0], "...", run[-1]]
            i = j
            continue
        out.append(line)
        i += 1
    return "\n".join(out)


def _commit() -> str:
    try:
        rev = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                             capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--", "src"],
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return rev + ("+uncommitted src" if dirty else "")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", default=None, help="comma-separated names (default: all)")
    args = ap.parse_args(argv)
    only = set(args.only.split(",")) if args.only else None
    commit, day = _commit(), _dt.date.today().isoformat()
    OUT.mkdir(parents=True, exist_ok=True)
    data = os.environ.get("ARCHOPT_DATA_DIR")
    with tempfile.TemporaryDirectory(prefix="archopt-tour-") as tmp:
        work = Path(tmp)
        env = {**os.environ, "COLUMNS": "100", "OMP_NUM_THREADS": "1", "ARCHOPT_THREADS": "1",
               "PYTHONUNBUFFERED": "1", "TERM": "dumb"}
        env.pop("FORCE_COLOR", None)
        if data:
            (work / "data").symlink_to(Path(data).resolve())
            env["ARCHOPT_DATA_DIR"] = "data"
        for name, cmd in TOUR:
            if only is not None and name not in only:
                continue
            argv_ = shlex.split(cmd)
            argv_[0:1] = [sys.executable, "-m", "archopt.cli"]
            t0 = time.perf_counter()
            proc = subprocess.run(argv_, cwd=work, env=env, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, text=True)  # as on a terminal
            wall = time.perf_counter() - t0
            text = proc.stdout.replace(str(work) + "/", "")
            text = text.replace(str(work), ".")
            status = "" if proc.returncode == 0 else f", exit status {proc.returncode}"
            body = (f"$ {cmd}\n{trim(text.rstrip())}\n# archopt at commit {commit}, {day}, one "
                    f"torch thread, {wall:.1f} s wall{status}\n")
            (OUT / f"{name}.txt").write_text(body, encoding="utf-8")
            print(f"{name}: {wall:.1f} s{status}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
