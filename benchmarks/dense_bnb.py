"""Dense Optimizer branch-and-bound speed (issue 4, "Must show").

The 3-stage CIFAR space (32x32x3 input, 10 classes) with g in {8..48 step 4}, L in {4..40},
k in {3, 5} and the stem tied to 2 g_1 (539,353,144 designs), solved to a zero gap on ONE CPU
core at the params budgets of DenseNet-BC (L=100, k=12) = 0.8 M, DenseNet-BC (L=250, k=24) =
15.3 M and DenseNet-BC (L=190, k=40) = 25.6 M (our exact counts of those catalog networks),
rho_0 = 0.5, beta = 0.1 (and every ablation beta at 0.8 M). For each: seconds, nodes explored /
expanded / pruned, the design, and the baseline DenseNet-BC's objective under the same scoring
(the baseline is in the grid, so the optimum can only be at least as good). The evolutionary
solver runs on the same problem for comparison. Writes JSON (default
benchmarks/results/dense_bnb.json).

    python benchmarks/dense_bnb.py [--rho 0.5] [--evolution 100000] [--out FILE]
"""

from __future__ import annotations

import os

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_v] = "1"

import argparse  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

from archopt.design import (  # noqa: E402
    Budgets,
    DenseGrid,
    DesignOptions,
    design,
    score_spec,
)
from archopt.runs import atomic_write_json, environment_info  # noqa: E402
from archopt.spaces import load_spec  # noqa: E402

BASELINES = {"0.8M": "densenet-bc-100-12", "15.3M": "densenet-bc-250-24",
             "25.6M": "densenet-bc-190-40"}


def one_core() -> str:
    try:
        cpu = min(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {cpu})
        return f"pinned to CPU {cpu}"
    except (AttributeError, OSError):  # pragma: no cover
        return "not pinned"


def _design_row(r) -> dict:
    spec = r.spec
    return {"stem": spec.stem.out, "growth": [s.growth for s in spec.stages],
            "layers": [s.layers for s in spec.stages], "kernels": [s.k for s in spec.stages]}


def run_case(label: str, beta: float, rho: float, evolution: int) -> dict:
    base = load_spec(BASELINES[label])
    budget = Budgets(params=float(base.params()), rho=rho)
    grid = DenseGrid()
    t0, c0 = time.perf_counter(), time.process_time()
    r = design("densenet", budget, solver="bnb", resolution=32, in_channels=3, num_classes=10,
               beta=beta, grid=grid)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    ref = score_spec(base, beta=beta)
    row = {
        "budget_label": label, "params_budget": budget.params, "rho": rho, "beta": beta,
        "grid_designs": grid.size(), "seconds": r.seconds, "wall_seconds": wall,
        "cpu_seconds": cpu, "load_average": os.getloadavg()[0], **r.stats,
        "design": _design_row(r), "objective": r.metrics["objective"],
        "entropy": r.metrics["entropy"], "power_law": r.metrics["power_law"],
        "params": r.metrics["params"], "macs": r.metrics["macs"],
        "effectiveness": r.metrics["effectiveness"],
        "baseline": {"name": BASELINES[label], "objective": ref.objective,
                     "entropy": ref.entropy, "effectiveness": ref.effectiveness,
                     "params": base.params(), "macs": base.macs()},
    }
    print(f"{label} beta={beta}: {r.seconds:.2f} s ({cpu:.2f} s CPU), "
          f"{r.stats['nodes_explored']:,} nodes, gap {r.stats['gap']}, design "
          f"{row['design']}, objective {row['objective']:.1f} vs baseline "
          f"{ref.objective:.1f}", file=sys.stderr, flush=True)
    if evolution:
        e = design("densenet", budget, solver="evolution", resolution=32, in_channels=3,
                   num_classes=10, beta=beta, grid=grid,
                   options=DesignOptions(candidates=evolution, seed=0))
        row["evolution"] = {"candidates": e.candidates, "seconds": e.seconds,
                            "objective": e.metrics["objective"], "design": _design_row(e)}
        print(f"   evolution ({evolution:,} candidates, {e.seconds:.1f} s): objective "
              f"{e.metrics['objective']:.1f}", file=sys.stderr, flush=True)
    return row


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rho", type=float, default=0.5)
    ap.add_argument("--evolution", type=int, default=100_000,
                    help="candidates for the evolutionary comparison (0: skip)")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results"
                    / "dense_bnb.json")
    args = ap.parse_args(argv)
    report = {"benchmark": "dense_bnb", "cpu": one_core(), "environment": environment_info(),
              "grid": DenseGrid().as_dict(), "resolution": 32, "in_channels": 3,
              "num_classes": 10, "cases": []}
    cases = [("0.8M", b) for b in (0.0, 0.001, 0.1, 10.0)] + [("15.3M", 0.1), ("25.6M", 0.1)]
    for label, beta in cases:
        report["cases"].append(run_case(label, beta, args.rho, args.evolution))
    atomic_write_json(args.out, report)
    print(f"wrote {args.out}", file=sys.stderr)
    return report


if __name__ == "__main__":
    main()
