"""A structure sweep (eps0 grid x 2 seeds, digits) on a local Ray with 2 workers vs in-process:
wall time of each, per-trial results compared; then the Ray sweep killed midway (SIGKILL of the
driver) and resumed: the trials that had finished are not run again.

Every sweep is the real command (``archopt structure sweep ... --json``) in a subprocess, with
``--threads 1`` per trial in both backends (so that their results can be compared: a different
thread count changes float reductions). Run it alone on the machine for the wall times:

    python benchmarks/sweep_structure.py

Writes benchmarks/results/sweep_structure.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

TIMING = ("train_seconds", "seconds_per_step_ms", "seconds", "wall_seconds")


def sweep_cmd(out: Path, args: argparse.Namespace, *backend: str) -> list[str]:
    return [sys.executable, "-m", "archopt", "structure", "sweep", "--task", "mlp-units",
            "--data", "digits", "--penalties", args.penalties, "--seeds", args.seeds,
            "--epochs", str(args.epochs), "--optimizer", args.optimizer, "--no-baselines",
            "--no-latency", "--device", "cpu", "--threads", "1", "--out", str(out), "--json",
            *backend]


def untimed(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in r.items() if k not in TIMING} for r in rows]


def timed_sweep(out: Path, args: argparse.Namespace, *backend: str) -> dict[str, Any]:
    t0, load0 = time.perf_counter(), os.getloadavg()[0]
    r = subprocess.run(sweep_cmd(out, args, *backend), capture_output=True, text=True,
                       check=False)
    wall = time.perf_counter() - t0
    if r.returncode != 0:
        raise SystemExit(f"sweep failed ({r.returncode}): {r.stderr[-2000:]}")
    table = json.loads(r.stdout)
    runner = table["runner"]["method"]
    return {"wall_seconds": round(wall, 2), "load_average_start": load0,
            "backend": runner["backend"], "workers": runner["workers"],
            "threads_per_trial": runner["threads_per_trial"],
            "runner_wall_seconds": round(runner["wall_seconds"], 2),
            "trial_seconds": {t["name"]: round(t["seconds"], 2) for t in runner["trials"]},
            "rows": table["method"]}


def status(out: Path) -> dict[str, Any]:
    try:
        return json.loads((out / "status.json").read_text())
    except (OSError, ValueError):
        return {}


def session_processes(sid: int) -> list[str]:
    """Processes left in the killed sweep's session (Ray's daemons and workers, if any)."""
    r = subprocess.run(["ps", "-eo", "pid,sid,comm"], capture_output=True, text=True,
                       check=False)
    return [line.strip() for line in r.stdout.splitlines()[1:]
            if line.split()[1:2] == [str(sid)]]


def kill_and_resume(out: Path, args: argparse.Namespace) -> dict[str, Any]:
    proc = subprocess.Popen(sweep_cmd(out, args, "--workers", "2"), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    t0 = time.perf_counter()
    while True:
        st = status(out)
        done = [k for k, v in st.items() if v.get("state") == "done"]
        if len(done) >= args.kill_after:
            break
        if proc.poll() is not None:
            raise SystemExit("the sweep ended before it could be killed")
        time.sleep(0.2)
    os.kill(proc.pid, signal.SIGKILL)  # the driver only, as a crash or `kill -9` would
    proc.wait()
    killed_at = time.perf_counter() - t0
    time.sleep(3)
    left = session_processes(proc.pid)
    if left:  # clean up what the killed driver left (our own process group)
        with __import__("contextlib").suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    time.sleep(1)
    at_kill = {k: {"state": v["state"], "attempts": v["attempts"]}
               for k, v in status(out).items()}
    t1 = time.perf_counter()
    r = subprocess.run(sweep_cmd(out, args, "--workers", "2"), capture_output=True, text=True,
                       check=False)
    if r.returncode != 0:
        raise SystemExit(f"resume failed ({r.returncode}): {r.stderr[-2000:]}")
    table = json.loads(r.stdout)
    after = {k: {"state": v["state"], "attempts": v["attempts"]}
             for k, v in status(out).items()}
    ran = {t["name"]: t["ran"] for t in table["runner"]["method"]["trials"]}
    finished_before = [k for k, v in at_kill.items() if v["state"] == "done"]
    return {"killed_after_seconds": round(killed_at, 2),
            "processes_left_in_the_killed_sweeps_session": left,
            "status_at_kill": at_kill, "status_after_resume": after,
            "ran_in_resume": ran, "resume_wall_seconds": round(time.perf_counter() - t1, 2),
            "finished_before_kill": finished_before,
            "finished_trials_rerun": [k for k in finished_before if ran[k]],
            "finished_trials_attempts_after_resume": {k: after[k]["attempts"]
                                                      for k in finished_before},
            "trials_run_by_resume": sorted(k for k, v in ran.items() if v),
            "rows": table["method"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--penalties", default="2^-5,2^-6,2^-7,0")
    ap.add_argument("--seeds", default="0,1")
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--optimizer", default="asng")
    ap.add_argument("--kill-after", type=int, default=3, help="finished trials before SIGKILL")
    ap.add_argument("--runs", type=Path, default=Path("runs") / "bench_structure")
    ap.add_argument("--results", type=Path, default=Path("benchmarks/results"))
    ap.add_argument("--only-kill", action="store_true",
                    help="run only the kill-and-resume part (its own --epochs) and add it to "
                         "the results file")
    args = ap.parse_args()
    args.results.mkdir(parents=True, exist_ok=True)
    path = args.results / "sweep_structure.json"
    if args.only_kill:
        shutil.rmtree(args.runs / "killed", ignore_errors=True)
        res = json.loads(path.read_text())
        kill = kill_and_resume(args.runs / "killed", args)
        res["kill_and_resume"] = {"epochs": args.epochs, "command": " ".join(
            sweep_cmd(Path("OUT"), args, "--workers", "2")), **kill}
        path.write_text(json.dumps(res, indent=2) + "\n")
        print(f"killed after {len(kill['finished_before_kill'])} finished, re-run on resume: "
              f"{kill['finished_trials_rerun']}; wrote {path}")
        return
    shutil.rmtree(args.runs, ignore_errors=True)
    out: dict[str, Any] = {
        "benchmark": "sweep_structure",
        "command": " ".join(sweep_cmd(Path("OUT"), args, "<--in-process | --workers 2>")),
        "grid": {"penalties": args.penalties, "seeds": args.seeds, "epochs": args.epochs,
                 "optimizer": args.optimizer, "dataset": "digits",
                 "space": "mlp-3x784 (default), 64 inputs"},
        "cpu_count": os.cpu_count()}

    def save() -> None:  # after each phase: a stopped run keeps what it measured
        path.write_text(json.dumps(out, indent=2) + "\n")

    out["in_process"] = local = timed_sweep(args.runs / "local", args, "--in-process")
    save()
    out["ray_2_workers"] = on_ray = timed_sweep(args.runs / "ray", args, "--workers", "2")
    out["speedup_wall"] = round(local["wall_seconds"] / on_ray["wall_seconds"], 3)
    out["per_trial_results_identical_ray_vs_in_process"] = \
        untimed(local["rows"]) == untimed(on_ray["rows"])
    save()
    out["kill_and_resume"] = kill = kill_and_resume(args.runs / "killed", args)
    out["per_trial_results_identical_resumed_vs_in_process"] = \
        untimed(local["rows"]) == untimed(kill["rows"])
    out["differing_after_resume"] = [
        a["folder"] for a, b in zip(untimed(local["rows"]), untimed(kill["rows"]), strict=True)
        if a != b]
    save()
    print(f"in-process {local['wall_seconds']} s, Ray 2 workers {on_ray['wall_seconds']} s, "
          f"identical {out['per_trial_results_identical_ray_vs_in_process']}; killed after "
          f"{len(kill['finished_before_kill'])} finished, re-run on resume: "
          f"{kill['finished_trials_rerun']}; wrote {path}")


if __name__ == "__main__":
    main()
