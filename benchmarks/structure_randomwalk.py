"""The random walk of SNG's theta for bits that never change the loss (issue 11): lambda = 2,
ranking utilities, eta = 1/d, losses drawn at random. Records, per (d, eps0), the fraction of
bits decided (within 0.05 of a bound), the fraction kept by M* and the mean of theta - 1/d,
beside the rule's drift time (structure.sng.steps_to_decide) and the predicted stationary scale
eta / (4 eps). Writes benchmarks/results/structure_randomwalk.json.

    python benchmarks/structure_randomwalk.py
"""

from __future__ import annotations

import time

import numpy as np

import benchlib
from archopt.runs import atomic_write_json
from archopt.structure import SNG, Bernoulli
from archopt.structure.sng import steps_to_decide

CASES = ((96, 2**-7, 400 * 96), (96, 2**-4, 400 * 96), (2352, 2**-7, 60_000))


def main() -> None:
    rows = []
    t0 = time.perf_counter()
    for d, eps, steps in CASES:
        rng = np.random.default_rng(0)
        opt = SNG(Bernoulli(d), penalty=eps, seed=0)
        for _ in range(steps):
            m = opt.ask()
            opt.tell(m, rng.random(2))
        th = opt.theta
        rows.append({"d": d, "eps0": eps, "eta": 1 / d, "iterations": steps,
                     "rule_drift_time": steps_to_decide(1 / d, eps, 1 / d),
                     "predicted_scale": 1 / (4 * d * eps),
                     "decided_fraction": opt.decided_fraction(),
                     "kept_by_mode": float((th >= 0.5).mean()),
                     "mean_theta_above_bound": float((th - 1 / d).mean())})
        print(rows[-1], flush=True)
    atomic_write_json("benchmarks/results/structure_randomwalk.json", {
        "benchmark": "structure_randomwalk", "seed": 0, "rows": rows,
        "machine": benchlib.cpu_name(),
        "wall_seconds": time.perf_counter() - t0})


if __name__ == "__main__":
    main()
