"""DeepMAD search speed and quality at the published budgets (issue 3, "Must show").

For the DeepMAD-R18 / R34 / R50 budgets (ImageNet 224, headless backbone as the reference
toolbox counts, rho_0 = 0.3) run the evolutionary search with 500,000 candidates on ONE CPU
core and compare the objective found with the published structure's objective under the same
scoring (archopt.design.score_spec). Writes a JSON file (default
benchmarks/results/design_speed.json) with wall and CPU seconds per run (wall time on a shared
machine includes waiting for the core; CPU time is the work) and the 1-minute load average.

    python benchmarks/design_speed.py [--candidates 500000] [--seeds 0 1 2] [--out FILE]
"""

from __future__ import annotations

import os

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_v] = "1"

import argparse  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

from archopt.design import Budgets, DesignOptions, design, score_spec  # noqa: E402
from archopt.runs import atomic_write_json, environment_info  # noqa: E402
from archopt.spaces import load_spec  # noqa: E402

BUDGETS = {  # specs/deepmad.md section 8 (paper table 2)
    "R18": dict(macs=1.82e9, params=11.69e6, rho=0.3, published="deepmad-r18"),
    "R34": dict(macs=3.68e9, params=21.80e6, rho=0.3, published="deepmad-r34"),
    "R50": dict(macs=4.13e9, params=25.55e6, rho=0.3, published="deepmad-r50"),
}


def one_core() -> str:
    """Pin this process to one CPU core (Linux); returns a description."""
    try:
        cpu = min(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {cpu})
        return f"pinned to CPU {cpu}"
    except (AttributeError, OSError):  # pragma: no cover - non-Linux
        return "not pinned (sched_setaffinity unavailable); numpy threads = 1"


def _structure(spec) -> dict:
    return {"stem": spec.stem.out,
            "blocks": [[b.out, b.btn, b.k, b.L, b.stride] for b in spec.blocks]}


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--candidates", type=int, default=500_000)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--only", nargs="*", choices=sorted(BUDGETS), default=None)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results"
                    / "design_speed.json")
    args = ap.parse_args(argv)
    pin = one_core()
    report: dict = {"benchmark": "design_speed", "candidates": args.candidates,
                    "cpu": pin, "environment": environment_info(), "budgets": {}}
    for name, cfg in BUDGETS.items():
        if args.only and name not in args.only:
            continue
        budgets = Budgets(macs=cfg["macs"], params=cfg["params"], rho=cfg["rho"])
        pub_spec = load_spec(cfg["published"], num_classes=0)
        pub = score_spec(pub_spec)
        runs = []
        for seed in args.seeds:
            t0, c0 = time.perf_counter(), time.process_time()
            r = design("resnet", budgets, resolution=224, num_classes=0,
                       options=DesignOptions(candidates=args.candidates, seed=seed))
            wall, cpu = time.perf_counter() - t0, time.process_time() - c0
            runs.append({
                "seed": seed, "search_seconds": r.seconds, "total_seconds": wall,
                "cpu_seconds": cpu, "load_average": os.getloadavg()[0],
                "candidates": r.candidates, "candidates_per_second": r.candidates_per_second,
                "feasible_candidates": r.stats["feasible_candidates"],
                "objective": r.metrics["objective"], "entropy": r.metrics["entropy"],
                "effectiveness": r.metrics["effectiveness"], "macs": r.metrics["macs"],
                "params": r.metrics["params"], "layers": r.metrics["layers"],
                "structure": _structure(r.spec),
                "beats_published": r.metrics["objective"] >= pub.objective,
            })
            print(f"{name} seed {seed}: {r.seconds:.1f} s wall ({cpu:.1f} s CPU), "
                  f"{r.candidates_per_second:,.0f} cand/s, objective "
                  f"{r.metrics['objective']:.1f} (published {pub.objective:.1f})",
                  file=sys.stderr, flush=True)
        report["budgets"][name] = {
            "budgets": budgets.as_dict(), "resolution": 224, "num_classes": 0,
            "published": {"name": cfg["published"], "objective": pub.objective,
                          "entropy": pub.entropy, "effectiveness": pub.effectiveness,
                          "macs": pub_spec.macs(), "params": pub_spec.params()},
            "runs": runs,
            "median_search_seconds": statistics.median(r["search_seconds"] for r in runs),
            "median_cpu_seconds": statistics.median(r["cpu_seconds"] for r in runs),
            "median_candidates_per_second": statistics.median(
                r["candidates_per_second"] for r in runs),
            "best_objective": max(r["objective"] for r in runs),
            "all_beat_published": all(r["beats_published"] for r in runs),
        }
    atomic_write_json(args.out, report)
    print(f"wrote {args.out}", file=sys.stderr)
    return report


if __name__ == "__main__":
    main()
