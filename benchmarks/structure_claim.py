"""The paper's unit-selection experiment (Saito, Shirakawa et al., ICANN 2019, section 4.1) at
CPU scale, with the paper's dynamics unscaled.

What is kept from the paper: eta = 1/d, theta0 = 0.5, lambda = 2, batch 32, SGD with Nesterov
momentum 0.9, weight decay 1e-4, weight lr 0.01 divided by 10 at 1/2 and 3/4 of training, He
init, full MNIST (60k train / 10k test), ~400 iterations per bit (the paper: 500 epochs of
1,875 iterations = 9.4e5 iterations for d = 2,352, i.e. 399 d). What is scaled: the hidden width
(``--width``, default 32: 784-32-32-32-10, d = 96), and with it the number of iterations
(``--epochs`` 20 = 37,500 iterations = 391 d at width 32).

Baselines, as the paper (section 4.1): fixed structures uniformly thinned (``--fixed-widths``
units per hidden layer) and the full network with dropout 0.5 after each hidden layer, each
trained with batch 64 for the same number of iterations as the method (the paper: 1000 epochs
at batch 64 vs 500 epochs at batch 32; the method evaluates lambda = 2 structures on each
minibatch of 32, so both see 64 example-forward passes per iteration).

Per run it records: eps0, seed, fraction of units kept by the deterministic structure
M* = [theta >= 0.5], weight usage rate (weights + biases of the compacted network / the full
one's), units per layer, test error of M*, fraction of decided bits (theta within 0.05 of a
bound of [1/d, 1 - 1/d]), wall time, and a per-epoch trajectory.

Resumable: each run's result is written atomically to ``--runs/<name>.json`` when it finishes;
finished runs are skipped. Split across processes with ``--shard i/n``; ``--collect`` writes
``benchmarks/results/structure_claim.json`` and ``structure_claim.png`` from what exists.

    python benchmarks/structure_claim.py --shard 0/2     # and 1/2 in a second process
    python benchmarks/structure_claim.py --collect
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

import benchlib
from archopt.data import load_dataset
from archopt.runs import atomic_write_json
from archopt.spaces.mlp import MLPSpec
from archopt.structure import SNG, Bernoulli, MaskedMLP
from archopt.structure.loop import evaluate_structure, train_loop
from archopt.structure.mlp import he_init
from archopt.structure.run import default_train_config

PENALTIES = (2**-6, 2**-7, 2**-8, 2**-9, 0.0, -(2**-3), -1.0)
# Beyond the paper's grid (``--extra-penalties``): at d = 96 the ranking signal per bit is
# stronger than at d = 2,352, so the paper's eps0 keep most units; larger eps0 reach low usage.
EXTRA_PENALTIES = (2**-5, 2**-4, 2**-3, 2**-2)
LABELS = {2**-2: "2^-2", 2**-3: "2^-3", 2**-4: "2^-4", 2**-5: "2^-5",
          2**-6: "2^-6", 2**-7: "2^-7", 2**-8: "2^-8", 2**-9: "2^-9", 0.0: "0",
          -(2**-3): "-2^-3", -1.0: "-1"}
# The paper's Table 1: per-layer medians of the units kept (of 784) and the rate it labels
# "weight usage rate"; the labelled rate equals the fraction of units kept computed from the
# per-layer medians (e.g. 2^-8: (599 + 380 + 379) / 2352 = 57.7 %, labelled 57.8 %), not the
# fraction of weights (that would be 45.6 %).
PAPER_TABLE1 = {2**-6: ([92, 31, 24], 6.6), 2**-7: ([340, 141, 126], 26.1),
                2**-8: ([599, 380, 379], 57.8), 2**-9: ([704, 544, 567], 77.7),
                0.0: ([770, 717, 724], 93.7), -(2**-3): ([784, 784, 784], 100.0)}
DECIDED = 0.05


def weights_used(widths_in: list[int], kept: list[int], classes: int = 10) -> int:
    dims = [widths_in[0], *kept, classes]
    return sum(dims[i] * dims[i + 1] + dims[i + 1] for i in range(len(dims) - 1))


def decided_fraction(theta: np.ndarray, d: int) -> float:
    lo, hi = 1.0 / d, 1.0 - 1.0 / d
    return float(np.mean((theta <= lo + DECIDED) | (theta >= hi - DECIDED)))


def penalties(args: argparse.Namespace) -> tuple[float, ...]:
    return EXTRA_PENALTIES + PENALTIES if args.extra_penalties else PENALTIES


def plan(args: argparse.Namespace) -> list[dict]:
    runs = []
    for seed in args.seeds:
        for p in penalties(args):
            runs.append({"name": f"method_eps{LABELS[p]}_s{seed}", "kind": "method",
                         "penalty": p, "seed": seed})
        for w in args.fixed_widths:
            runs.append({"name": f"fixed_w{w}_s{seed}", "kind": "fixed", "units": w,
                         "seed": seed})
        runs.append({"name": f"dropout_s{seed}", "kind": "dropout", "seed": seed})
    return runs


class DropoutMLP(nn.Module):
    """784-w-w-w-10 ReLU with dropout 0.5 after each hidden layer (the paper's baseline)."""

    def __init__(self, width: int, depth: int) -> None:
        super().__init__()
        dims = [784] + [width] * depth
        layers: list[nn.Module] = [nn.Flatten()]
        for a, b in itertools.pairwise(dims):
            layers += [nn.Linear(a, b), nn.ReLU(), nn.Dropout(0.5)]
        layers.append(nn.Linear(dims[-1], 10))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def run_one(r: dict, args: argparse.Namespace, ds) -> dict:
    seed = r["seed"]
    torch.manual_seed(seed)
    depth, width = 3, args.width
    full = weights_used([784], [width] * depth)
    traj: list[dict] = []
    t0 = time.perf_counter()
    if r["kind"] == "method":
        spec = MLPSpec(in_features=784, widths=[width] * depth, num_classes=10)
        net = MaskedMLP(spec)
        opt = SNG(Bernoulli(net.d), penalty=r["penalty"], seed=seed)  # eta = 1/d
        cfg = default_train_config("mlp-units", epochs=args.epochs, batch_size=32,
                                   device="cpu", seed=seed)

        def on_epoch(row: dict) -> None:
            theta = opt.theta.ravel()
            traj.append({"epoch": row["epoch"], "step": row["step"],
                         "train_loss": row["train_loss"], "units_kept": row["mode_bits"],
                         "theta_mean": row["theta_mean"],
                         "decided": decided_fraction(theta, net.d)})

        res = train_loop(net, ds, cfg, structure=opt, on_epoch=on_epoch)
        ev = evaluate_structure(net, opt, ds, cfg)
        mode = opt.mode().ravel()
        kept = net.units_per_layer(mode)
        theta = opt.theta.ravel()
        out = {"eps0": r["penalty"], "eps0_label": LABELS[r["penalty"]], "eta": opt.eta,
               "d": net.d, "decided_fraction": decided_fraction(theta, net.d),
               "theta_quantiles": [float(q) for q in np.quantile(theta, [0, .25, .5, .75, 1])]}
    else:
        if r["kind"] == "fixed":
            kept = [r["units"]] * depth
            model = he_init(MLPSpec(in_features=784, widths=kept, num_classes=10).build())
        else:
            kept = [width] * depth
            model = he_init(DropoutMLP(width, depth))
        # batch 64, the same number of iterations as the method (paper: 1000 vs 500 epochs)
        cfg = default_train_config("mlp-units", epochs=2 * args.epochs, batch_size=64,
                                   device="cpu", seed=seed)

        def on_epoch(row: dict) -> None:
            traj.append({"epoch": row["epoch"], "step": row["step"],
                         "train_loss": row["train_loss"]})

        res = train_loop(model, ds, cfg, on_epoch=on_epoch)
        ev = evaluate_structure(model, None, ds, cfg)
        out = {}
    wall = time.perf_counter() - t0
    return {**r, **out, "width": width, "units_per_layer": kept,
            "units_kept_fraction": sum(kept) / (depth * width),
            "weight_usage_rate": weights_used([784], kept) / full,
            "test_error": ev["error"], "test_accuracy": ev["accuracy"],
            "iterations": res.steps, "batch_size": cfg.batch_size, "epochs": cfg.epochs,
            "train_seconds": res.train_seconds, "wall_seconds": wall,
            "ms_per_iteration": 1000 * res.train_seconds / max(res.steps, 1),
            "threads": torch.get_num_threads(), "loadavg_end": os.getloadavg()[0],
            "trajectory": traj}


def collect(args: argparse.Namespace) -> None:
    runs_dir = Path(args.runs)
    rows = [json.loads(p.read_text()) for p in sorted(runs_dir.glob("*.json"))]
    planned = plan(args)
    done = {r["name"] for r in rows}
    method = [r for r in rows if r["kind"] == "method"]

    def q(vals: list[float]) -> dict:
        a = np.asarray(vals, float)
        return {"median": float(np.median(a)), "q1": float(np.quantile(a, .25)),
                "q3": float(np.quantile(a, .75)), "n": len(a)}

    groups = {}
    for key, sel in ([(f"method eps0={LABELS[p]}", [r for r in method if r["eps0"] == p])
                      for p in penalties(args)]
                     + [(f"fixed {w} units/layer",
                         [r for r in rows if r["kind"] == "fixed" and r["units"] == w])
                        for w in args.fixed_widths]
                     + [("dropout 0.5", [r for r in rows if r["kind"] == "dropout"])]):
        if not sel:
            continue
        g = {"kind": sel[0]["kind"], "units_kept_fraction": q([r["units_kept_fraction"]
                                                               for r in sel]),
             "weight_usage_rate": q([r["weight_usage_rate"] for r in sel]),
             "test_error": q([r["test_error"] for r in sel]),
             "wall_seconds_median": statistics.median(r["wall_seconds"] for r in sel)}
        if sel[0]["kind"] == "method":
            g["decided_fraction"] = q([r["decided_fraction"] for r in sel])
            g["eps0"] = sel[0]["eps0"]
            paper = PAPER_TABLE1.get(sel[0]["eps0"])
            if paper is not None:
                g["paper_table1_units_per_layer"] = paper[0]
                g["paper_table1_units_kept_percent"] = round(100 * sum(paper[0]) / 2352, 1)
                g["paper_table1_labelled_rate_percent"] = paper[1]
        groups[key] = g
    verdict = compare(method, [r for r in rows if r["kind"] == "fixed"])
    table = {
        "benchmark": "structure_claim", "paper": "Saito, Shirakawa et al., ICANN 2019, 4.1",
        "setup": {"network": f"784-{args.width}-{args.width}-{args.width}-10 ReLU",
                  "d": 3 * args.width, "eta": "1/d", "theta0": 0.5, "lambda": 2,
                  "method_batch": 32, "method_epochs": args.epochs,
                  "baseline_batch": 64, "baseline_epochs": 2 * args.epochs,
                  "optimizer": "SGD Nesterov 0.9, wd 1e-4, lr 0.01, x0.1 at 1/2 and 3/4",
                  "init": "He normal", "data": "MNIST 60k/10k", "decided": f"theta within "
                  f"{DECIDED} of 1/d or 1-1/d", "seeds": args.seeds,
                  "eps0_grid": [LABELS[p] for p in penalties(args)],
                  "beyond_paper_grid": [LABELS[p] for p in EXTRA_PENALTIES]
                  if args.extra_penalties else []},
        "complete": done >= {r["name"] for r in planned},
        "missing_runs": sorted({r["name"] for r in planned} - done),
        "machine": benchlib.cpu_name(), "torch": torch.__version__,
        "groups": groups, "comparison": verdict,
        "runs": [{k: v for k, v in r.items() if k != "trajectory"} for r in rows],
        "trajectories": {r["name"]: r["trajectory"] for r in rows},
    }
    out = Path(args.results)
    atomic_write_json(out / "structure_claim.json", table)
    plot(groups, out / "structure_claim.png", args)
    print(json.dumps(verdict, indent=1))


def compare(method: list[dict], fixed: list[dict]) -> dict:
    """Each method run against the fixed-structure curve (median over seeds, interpolated
    linearly in weight usage rate) at the same weight usage."""
    if not method or not fixed:
        return {}
    by_w: dict[float, list[float]] = {}
    for r in fixed:
        by_w.setdefault(r["weight_usage_rate"], []).append(r["test_error"])
    xs = sorted(by_w)
    ys = [statistics.median(by_w[x]) for x in xs]
    rows = []
    for r in method:
        u = r["weight_usage_rate"]
        if not xs[0] <= u <= xs[-1]:
            continue
        base = float(np.interp(u, xs, ys))
        rows.append({"name": r["name"], "weight_usage_rate": u, "test_error": r["test_error"],
                     "fixed_curve_error": base, "method_better": r["test_error"] < base})
    band = [r for r in rows if 0.25 <= r["weight_usage_rate"] <= 1.0]
    return {"per_run": rows, "runs_in_25_100_percent_usage": len(band),
            "method_better_in_25_100": sum(r["method_better"] for r in band),
            "usage_range": [min(r["weight_usage_rate"] for r in method),
                            max(r["weight_usage_rate"] for r in method)],
            "units_kept_range": [min(r["units_kept_fraction"] for r in method),
                                 max(r["units_kept_fraction"] for r in method)]}


def plot(groups: dict, path: Path, args: argparse.Namespace) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.4))
    styles = {"method": ("o", "tab:blue", "learned (SNG, eta=1/d)"),
              "fixed": ("s", "tab:gray", "fixed, uniformly thinned"),
              "dropout": ("^", "tab:red", "full + dropout 0.5")}
    for ax, xkey, xlabel in ((axes[0], "units_kept_fraction", "units kept (%)"),
                             (axes[1], "weight_usage_rate", "weight usage rate (%)")):
        for kind, (marker, color, label) in styles.items():
            gs = [g for g in groups.values() if g["kind"] == kind]
            gs.sort(key=lambda g: g[xkey]["median"])
            if not gs:
                continue
            x = [100 * g[xkey]["median"] for g in gs]
            y = [100 * g["test_error"]["median"] for g in gs]
            yerr = [[100 * (g["test_error"]["median"] - g["test_error"]["q1"]) for g in gs],
                    [100 * (g["test_error"]["q3"] - g["test_error"]["median"]) for g in gs]]
            xerr = [[100 * (g[xkey]["median"] - g[xkey]["q1"]) for g in gs],
                    [100 * (g[xkey]["q3"] - g[xkey]["median"]) for g in gs]]
            ax.errorbar(x, y, yerr=yerr, xerr=xerr, fmt=marker + ("--" if kind == "fixed"
                                                                  else ""),
                        color=color, label=label, capsize=2, ms=5)
        ax.set_xlabel(xlabel)
        ax.set_ylabel("test error (%), median and quartiles (log scale)")
        ax.set_yscale("log")
        ax.grid(alpha=0.3, which="both")
    axes[0].legend(fontsize=8)
    fig.suptitle(f"MNIST, 784-{args.width}x3-10, eta=1/d, {args.epochs} epochs "
                 f"(~{round(args.epochs * 1875 / (3 * args.width))} iterations per bit)")
    fig.tight_layout()
    tmp = path.with_name(f".{path.stem}.tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    tmp.replace(path)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--width", type=int, default=32)
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--fixed-widths", type=int, nargs="+", default=[2, 4, 8, 16, 24, 32])
    ap.add_argument("--runs", default="runs/structure_claim")
    ap.add_argument("--results", default="benchmarks/results")
    ap.add_argument("--shard", default="0/1")
    ap.add_argument("--collect", action="store_true")
    ap.add_argument("--extra-penalties", action="store_true",
                    help="add eps0 2^-5 .. 2^-2 (beyond the paper's grid) to the plan")
    args = ap.parse_args()
    torch.set_num_threads(int(os.environ.get("ARCHOPT_THREADS", "1")))
    if args.collect:
        collect(args)
        return
    i, n = (int(v) for v in args.shard.split("/"))
    runs_dir = Path(args.runs)
    runs_dir.mkdir(parents=True, exist_ok=True)
    ds = load_dataset("mnist")
    for k, r in enumerate(plan(args)):
        path = runs_dir / f"{r['name']}.json"
        if k % n != i or path.exists():
            continue
        res = run_one(r, args, ds)
        atomic_write_json(path, res)
        print(f"{r['name']}: units {res['units_per_layer']} error {res['test_error']:.4f} "
              f"decided {res.get('decided_fraction', '-')} {res['wall_seconds']:.0f}s",
              flush=True)


if __name__ == "__main__":
    main()
