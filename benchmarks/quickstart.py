"""The README's quick start (`archopt run`, no options) timed as a user runs it, and two writers
on one result folder.

Cases (each a subprocess running the installed ``archopt`` command, wall seconds including
Python start-up; results merged into one JSON file, each case written as it finishes):

- ``quickstart``: ``archopt run --out DIR`` with the thread settings of the calling environment
  (run it with one thread: ``OMP_NUM_THREADS=1``). Its report figures (test accuracy,
  macro-F1, MACs, params of the designed network and the baseline) are what the quick start
  shows.
- ``busy-auto`` / ``busy-omp1`` / ``busy-torch-default``: the same command while another
  CPU-bound process (a Python busy loop, one per ``--burners``) runs on the machine: with the
  default thread policy (no ``$ARCHOPT_THREADS`` / ``$OMP_NUM_THREADS``), with
  ``OMP_NUM_THREADS=1``, and with ``--threads`` = the machine's cores (what torch does by
  default, i.e. the behaviour before archopt's thread policy; stopped after ``--cap`` seconds).
  Run these alone on the machine, so that nothing else shares the cores.
- ``busy-base``: ``busy-auto`` without the onnx extra, as the README's ``pip install -e .``
  installs it (no onnxruntime latency, no ONNX export).
- every case: ``--repeat N`` runs it N times (``wall_s`` the median, ``wall_s_runs`` each).
- ``concurrent``: two ``archopt run --epochs 1`` on one ``--out`` folder, the second started
  once the first holds the folder's lock: what each prints, its exit status, and the folder
  afterwards.

    python benchmarks/quickstart.py --cases quickstart
    python benchmarks/quickstart.py --cases busy-auto,busy-omp1,concurrent
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from archopt.runs import atomic_write_json, environment_info, read_json

DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "quickstart.json"
THREAD_VARS = ("ARCHOPT_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def _env(**changes: str | None) -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("COLUMNS", "100")
    for k, v in changes.items():
        if v is None:
            env.pop(k, None)
        else:
            env[k] = v
    return env


def _figures(folder: Path) -> dict[str, Any]:
    summary = read_json(folder / "summary.json")
    cfg = read_json(folder / "config.json")
    out: dict[str, Any] = {"torch_threads": cfg.get("environment", {}).get("torch_threads")}
    for key in ("designed", "baselines", "stage_seconds", "seconds"):
        out[key] = summary.get(key)
    return out


def _scrub(obj: Any, root: Path) -> Any:
    """``obj`` with the scratch folder's paths (``root`` and its ``rep<i>`` folders) written as
    ``TMP``, so that no machine path reaches the results file."""
    if isinstance(obj, dict):
        return {k: _scrub(v, root) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_scrub(v, root) for v in obj]
    if isinstance(obj, str):
        return re.sub(re.escape(str(root)) + r"(/rep\d+)?", "TMP", obj)
    return obj


def _run(args: list[str], env: dict[str, str], cap: float | None = None) -> dict[str, Any]:
    load0 = os.getloadavg()
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(["archopt", *args], env=env, capture_output=True, text=True,
                              timeout=cap)
        rc, stderr = proc.returncode, proc.stderr
        timed_out = False
    except subprocess.TimeoutExpired as err:
        rc, timed_out = None, True
        stderr = err.stderr.decode() if isinstance(err.stderr, bytes) else (err.stderr or "")
    wall = time.perf_counter() - t0
    return {"command": "archopt " + " ".join(args), "wall_s": round(wall, 2), "rc": rc,
            "timed_out": timed_out, "load_1_5_15_before": load0,
            "load_1_5_15_after": os.getloadavg(),
            "stderr_tail": stderr.strip().splitlines()[-3:]}


def _burners(n: int) -> list[subprocess.Popen]:
    code = "import time\nwhile True:\n    pass\n"
    return [subprocess.Popen([sys.executable, "-c", code]) for _ in range(n)]


def case_quickstart(tmp: Path, _: argparse.Namespace) -> dict[str, Any]:
    out = tmp / "quickstart"
    res = _run(["run", "--out", str(out)], _env())
    res["threads_env"] = {k: os.environ.get(k) for k in THREAD_VARS}
    if res["rc"] == 0:
        res.update(_figures(out))
    return res


def _busy(tmp: Path, a: argparse.Namespace, name: str, env: dict[str, str],
          extra: list[str], cap: float | None) -> dict[str, Any]:
    burners = _burners(a.burners)
    try:
        time.sleep(a.settle)
        out = tmp / name
        res = _run(["run", "--out", str(out), *extra], env, cap)
    finally:
        for p in burners:
            p.kill()
            p.wait()
    res["burners"] = a.burners
    res["threads_env"] = {k: env.get(k) for k in THREAD_VARS}
    if res["rc"] == 0:
        res.update(_figures(out))
    return res


def case_busy_auto(tmp: Path, a: argparse.Namespace) -> dict[str, Any]:
    return _busy(tmp, a, "busy-auto", _env(**dict.fromkeys(THREAD_VARS)), [], None)


def case_busy_omp1(tmp: Path, a: argparse.Namespace) -> dict[str, Any]:
    env = _env(**dict.fromkeys(THREAD_VARS))
    env["OMP_NUM_THREADS"] = "1"
    return _busy(tmp, a, "busy-omp1", env, [], None)


def case_busy_torch_default(tmp: Path, a: argparse.Namespace) -> dict[str, Any]:
    cores = len(os.sched_getaffinity(0))
    return _busy(tmp, a, "busy-torch-default", _env(**dict.fromkeys(THREAD_VARS)),
                 ["--threads", str(cores)], a.cap)


def case_busy_base(tmp: Path, a: argparse.Namespace) -> dict[str, Any]:
    """``busy-auto`` as the README's base install runs it (``pip install -e .``, no onnx
    extra): onnx, onnxruntime and onnxscript are made unimportable in the child by a
    ``sitecustomize`` on its PYTHONPATH, so that no onnxruntime latency is timed."""
    shim = tmp / "no-onnx"
    shim.mkdir()
    (shim / "sitecustomize.py").write_text(
        "import sys\nfor m in ('onnx', 'onnxruntime', 'onnxscript'):\n    sys.modules[m] = None\n")
    env = _env(**dict.fromkeys(THREAD_VARS))
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(shim), env.get("PYTHONPATH")]))
    res = _busy(tmp, a, "busy-base", env, [], None)
    res["onnx_extra"] = False
    return res


def case_concurrent(tmp: Path, _: argparse.Namespace) -> dict[str, Any]:
    out = tmp / "shared-folder"
    args = ["archopt", "run", "--epochs", "1", "--out", str(out)]
    env = _env()
    first = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True)
    lock = out / ".archopt.lock"
    t0 = time.perf_counter()
    while not lock.exists() and first.poll() is None and time.perf_counter() - t0 < 60:
        time.sleep(0.05)
    second = subprocess.run(args, env=env, capture_output=True, text=True)
    out1, err1 = first.communicate()
    listing = sorted(str(p.relative_to(out)) for p in out.rglob("*")) if out.exists() else []
    rows = [json.loads(line) for line in (out / "designed" / "metrics.jsonl").read_text()
            .splitlines() if line.strip()] if (out / "designed" / "metrics.jsonl").exists() \
        else []
    return {
        "command": " ".join([*args[:-1], "DIR"]),
        "first": {"rc": first.returncode, "stderr_tail": err1.strip().splitlines()[-2:],
                  "stdout_lines": len(out1.splitlines())},
        "second": {"rc": second.returncode, "stderr": second.stderr.strip().splitlines(),
                   "stdout": second.stdout.strip().splitlines()},
        "folder_after": listing,
        "designed_metrics_rows": len(rows),
        "lock_left": lock.exists(),
    }


CASES = {"quickstart": case_quickstart, "busy-auto": case_busy_auto, "busy-base": case_busy_base,
         "busy-omp1": case_busy_omp1, "busy-torch-default": case_busy_torch_default,
         "concurrent": case_concurrent}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cases", default="quickstart",
                   help=f"comma-separated, of: {', '.join(CASES)}")
    p.add_argument("--burners", type=int, default=1, help="busy-loop processes (busy-* cases)")
    p.add_argument("--settle", type=float, default=5.0,
                   help="seconds the burners run before the timed command starts")
    p.add_argument("--cap", type=float, default=150.0,
                   help="seconds after which busy-torch-default is stopped")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT)
    p.add_argument("--repeat", type=int, default=1,
                   help="run each case this many times; the figures are the last run's, "
                        "wall_s the median")
    a = p.parse_args(argv)
    names = [c.strip() for c in a.cases.split(",") if c.strip()]
    unknown = [c for c in names if c not in CASES]
    if unknown:
        p.error(f"unknown cases {unknown}")
    doc = read_json(a.out) if a.out.exists() else {"benchmark": "quickstart", "cases": {}}
    tmp = Path(tempfile.mkdtemp(prefix="archopt-quickstart-"))
    try:
        for name in names:
            reps = []
            for i in range(a.repeat):
                (tmp / f"rep{i}").mkdir()
                reps.append(CASES[name](tmp / f"rep{i}", a))
            res = _scrub(reps[-1], tmp)
            if a.repeat > 1:
                res["wall_s_runs"] = [r["wall_s"] for r in reps]
                res["wall_s"] = statistics.median(res["wall_s_runs"])
            res["machine"] = environment_info()
            res["affinity_cores"] = sorted(os.sched_getaffinity(0))
            res["finished"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            doc["cases"][name] = res
            atomic_write_json(a.out, doc)
            print(name, json.dumps({k: res.get(k) for k in ("wall_s", "rc", "torch_threads")}),
                  flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
