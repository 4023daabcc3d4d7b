"""DeepMAD's claim at CPU scale (issue 20): at the same MACs and params budgets, a network designed
by entropy under an effectiveness bound beats the hand-designed one once trained; and does the
design score rank trained accuracy at all?

Claim grid (``claim_*`` runs): full Fashion-MNIST and MNIST (60,000 / 10,000 images, 28x28),
MACs / params budgets ``BUDGETS``; per budget the DeepMAD design (resnet space, evolution, 100,000
candidates, design seed 0, rho <= 0.5) against the largest CIFAR-style ResNet-(6n+2) and the
largest MobileNetV2 within **both** budgets (:mod:`archopt.pipeline.baseline`); seeds 0, 1, 2
(training seeds: initialisation and data order; the design is the same network for every seed).

Ranking (``rank_*`` runs): at the first budget on Fashion-MNIST, ``RANK_ARCHS`` - 1 architectures
drawn at random from the same resnet space within the same budgets (MACs, params and rho: random
walks of the design search's own mutations from its seed structure, every step kept within the
budgets, endpoints taken 1 in ``WALK`` steps) plus the design; seed 0, and a second seed for the
design and the first ``RANK_SECOND_SEED`` - 1 random ones to show the noise floor. Every ranking
network trains with the claim's recipe on the same seeded random ``RANK_TRAIN`` of the 60,000
training images (``ImageDataset.subset``, seed 0; the full 10,000 test images): a sixth of the
claim's cost per network, so that the ranking fits this machine (one network costs about 900
CPU-s on the full set). It ranks architectures under that recipe, which is said beside its figures.
The first 12 architectures are trained first; the rest extend the ranking when time allows.
Spearman and Kendall rank correlation (scipy.stats) between trained test accuracy and (a) the
DeepMAD objective, (b) entropy, (c) params, (d) MACs.

One recipe for every network (the ``archopt run`` default recipe): SGD with Nesterov momentum
0.9, lr 0.05, weight decay 5e-4, batch 128, 1 warm-up epoch then cosine to 0 over ``EPOCHS``
epochs, pad-4 random crop (+ horizontal flip on Fashion-MNIST), channels-last tensors (the same
model; 1.3-1.8x faster convolutions on this CPU).

MobileNetV2 here keeps a final map of at least 4x4 (``min_side=4``: three stride-2 places at
28x28, the usual CIFAR variant's floor), where ``archopt run`` keeps 2x2: the claim's first runs
were made with it, and its seeds stay comparable. At 5 M MACs that is width 0.1.

rho: 0.5, not archopt's resnet default 0.3: at 28x28 the smallest resnet seed structure that
meets rho <= 0.3 needs 16.2 M MACs, over the 5 M budget (``archopt design`` says so).

Resumable: each run trains in ``--runs/<name>/`` (checkpoint every epoch) and writes
``--runs/<name>.json`` when done; a run held by another process (archopt.runs.locking) is skipped.
``--collect`` writes ``benchmarks/results/design_claim.json`` and ``design_claim.png`` from
whatever has finished (partial grids are marked as such). The results file keeps every finished
run's record (``runs``), so a worker on a new machine skips them and a collect without the
run folder loses none.

    python benchmarks/design_claim.py --only claim_fashion-mnist_5M     # one worker
    python benchmarks/design_claim.py --collect
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np

import benchlib
from archopt.data import load_dataset
from archopt.design import Budgets, DesignOptions, design, score_spec
from archopt.design.ranking import rank_correlations, spearman_difference
from archopt.design.search import make_problem
from archopt.errors import FolderInUse
from archopt.pipeline.baseline import BASELINE_FAMILIES
from archopt.runs import atomic_write_json, read_json
from archopt.runs.locking import lock_folder
from archopt.spaces import ArchSpec

RESULTS = Path(__file__).parent / "results"
DATASETS = ("fashion-mnist", "mnist")
#: label -> (MACs, params) of the whole network at 28x28, classifier included
BUDGETS = {"5M": (5e6, 5e5), "20M": (2e7, 1e6)}
RHO = 0.5
CANDIDATES = 100_000
SEEDS = (0, 1, 2)
EPOCHS = 10
NETWORKS = ("design", "resnet", "mbv2")
RANK_ARCHS = 20
RANK_FIRST = 12  # trained first (design + 11 random); the other RANK_ARCHS - RANK_FIRST after
RANK_SECOND_SEED = 4
RANK_TRAIN = 10_000
WALK = 25


def recipe(data: str, seed: int, epochs: int) -> dict[str, Any]:
    """The one training recipe (module docstring)."""
    return {"optimizer": "sgd", "nesterov": True, "momentum": 0.9, "lr": 0.05,
            "weight_decay": 5e-4, "batch_size": 128, "epochs": epochs, "warmup_epochs": 1,
            "schedule": "cosine", "augment": "crop-flip" if data == "fashion-mnist" else "crop",
            "channels_last": True, "seed": seed, "device": "cpu", "threads": 1}


def budgets(label: str) -> Budgets:
    macs, params = BUDGETS[label]
    return Budgets(macs=macs, params=params, rho=RHO)


def designed(label: str) -> ArchSpec:
    """The DeepMAD design at budget ``label`` (deterministic for its seed)."""
    r = design("resnet", budgets(label), resolution=28, in_channels=1, num_classes=10,
               options=DesignOptions(candidates=CANDIDATES, seed=0))
    return r.spec.replace(name=f"DeepMAD design ({label})")


def random_archs(label: str, n: int, seed: int = 0) -> list[ArchSpec]:
    """``n`` architectures of the resnet space within the budgets: random walks of the design
    search's mutations from its seed structure, each step kept only when it stays within every
    budget (MACs, params, rho); one endpoint every ``WALK`` accepted steps, walks restarted from
    the seed so that the draws spread over the space's sizes."""
    problem = make_problem("resnet", budgets(label), resolution=28, in_channels=1,
                           num_classes=10)
    rng = np.random.default_rng(seed)
    out: list[ArchSpec] = []
    row = problem.seed_row.copy()
    steps = 0
    walk_len = WALK * int(rng.integers(1, 9))
    while len(out) < n:
        child = problem.mutate(row[None, :], rng, 2)
        ev = problem.evaluate(child)
        if bool(np.asarray(ev.feasible)[0]):
            row = child[0]
            steps += 1
        if steps >= walk_len:
            out.append(problem.decode(row, name=f"random {len(out) + 1} ({label})"))
            row, steps, walk_len = problem.seed_row.copy(), 0, WALK * int(rng.integers(1, 9))
    return out


def plan() -> list[dict[str, Any]]:
    runs = []
    for data in DATASETS:
        for label in BUDGETS:
            for seed in SEEDS:
                for net in NETWORKS:
                    runs.append({"name": f"claim_{data}_{label}_{net}_s{seed}", "kind": "claim",
                                 "data": data, "budget": label, "network": net, "seed": seed})
    label = next(iter(BUDGETS))

    def rank(net: str, seed: int) -> dict[str, Any]:
        return {"name": f"rank_{label}_{net}_s{seed}", "kind": "rank", "data": "fashion-mnist",
                "budget": label, "network": net, "seed": seed}

    nets = ["design"] + [f"random{i}" for i in range(1, RANK_ARCHS)]
    runs += [rank(n, 0) for n in nets[:RANK_FIRST]]
    runs += [rank(n, 1) for n in nets[:RANK_SECOND_SEED]]
    runs += [rank(n, 0) for n in nets[RANK_FIRST:]]
    return runs


def spec_of(r: dict[str, Any]) -> ArchSpec:
    net, label = r["network"], r["budget"]
    if net == "design":
        return designed(label)
    if net.startswith("random"):
        return random_archs(label, RANK_ARCHS - 1)[int(net[6:]) - 1]
    macs, params = BUDGETS[label]
    extra = {"min_side": 4} if net == "mbv2" else {}
    spec = BASELINE_FAMILIES[net](macs, params, in_channels=1, resolution=28, num_classes=10,
                                  **extra)
    if spec is None:
        raise SystemExit(f"no {net} member fits the {label} budgets")
    return spec


def run_one(r: dict[str, Any], runs: Path, epochs: int) -> dict[str, Any] | None:
    from archopt.training import TrainConfig, train

    out = runs / r["name"]
    try:
        with lock_folder(out.parent / f"{r['name']}.lockdir"):
            if (runs / f"{r['name']}.json").exists():
                return None
            spec = spec_of(r)
            ds = load_dataset(r["data"])
            if r["kind"] == "rank":
                ds = ds.subset(train=RANK_TRAIN, seed=0)
            c0, t0 = time.process_time(), time.perf_counter()
            res = train(spec, ds, TrainConfig(**recipe(r["data"], r["seed"], epochs)), out,
                        resume=True, progress=False)
            s = res.summary
            sc = score_spec(spec)
            row = {**r, "spec_name": spec.name, "arch": spec.to_dict(), "macs": spec.macs(),
                   "params": spec.params(), "layers": spec.layers(),
                   "objective": sc.objective, "entropy": sc.entropy,
                   "effectiveness": sc.effectiveness,
                   "test_accuracy": s["test_accuracy"], "test_macro_f1": s["test_macro_f1"],
                   "best_test_accuracy": s.get("best_test_accuracy"),
                   "latency_ms": s.get("latency_ms"), "latency_ms_b64": s.get("latency_ms_b64"),
                   "epochs": s["epochs"], "train_seconds": s.get("seconds"),
                   "cpu_seconds_this_process": round(time.process_time() - c0, 1),
                   "wall_seconds_this_process": round(time.perf_counter() - t0, 1),
                   "curve": [{"epoch": m["epoch"], "test_accuracy": m.get("test_accuracy")}
                             for m in res.history]}
            atomic_write_json(runs / f"{r['name']}.json", row)
            return row
    except FolderInUse:
        return None


def worker(args: argparse.Namespace) -> None:
    args.runs.mkdir(parents=True, exist_ok=True)
    old = previous()
    for r in plan():
        if args.only and not any(r["name"].startswith(p) for p in args.only):
            continue
        if (args.runs / f"{r['name']}.json").exists() or r["name"] in old:
            continue
        print(f"{time.strftime('%H:%M:%S')} start {r['name']}", flush=True)
        row = run_one(r, args.runs, args.epochs)
        if row:
            print(f"{time.strftime('%H:%M:%S')} done {r['name']}: acc {row['test_accuracy']:.4f}"
                  f" ({row['cpu_seconds_this_process']} CPU-s)", flush=True)


def _stats(v: list[float]) -> dict[str, Any]:
    a = np.asarray(v, dtype=float)
    return {"n": int(a.size), "mean": float(a.mean()), "std": float(a.std(ddof=1)) if a.size > 1
            else None, "min": float(a.min()), "max": float(a.max())}


def previous() -> dict[str, dict[str, Any]]:
    """The finished runs the committed results file records (a run folder does not outlive its
    machine): every row of ``runs``; for a file written before ``runs`` held the ranking's
    rows, those are rebuilt from ``ranking.rows`` / ``ranking.second_seed``."""
    path = RESULTS / "design_claim.json"
    rows = benchlib.recorded_runs(path)
    rk = (read_json(path).get("ranking") or {}) if rows else {}
    base = {"kind": "rank", "data": rk.get("dataset"), "budget": rk.get("budget")}
    for r in rk.get("rows", []):
        name = f"rank_{rk['budget']}_{r['network']}_s0"
        rows.setdefault(name, {"name": name, **base, "seed": 0, **r})
    for r in rk.get("second_seed", []):
        name = f"rank_{rk['budget']}_{r['network']}_s1"
        rows.setdefault(name, {"name": name, **base, "seed": 1, "network": r["network"],
                               "test_accuracy": r["seed1"]})
    return rows


def collect(args: argparse.Namespace) -> None:
    planned = plan()
    old = previous()
    done = {r["name"]: read_json(args.runs / f"{r['name']}.json")
            if (args.runs / f"{r['name']}.json").exists() else old[r["name"]]
            for r in planned if (args.runs / f"{r['name']}.json").exists() or r["name"] in old}
    strip = ("arch", "curve")
    all_rows = [{k: v for k, v in d.items() if k not in strip} for d in done.values()]
    claim_rows = [d for d in all_rows if d["kind"] == "claim"]
    groups = []
    for data in DATASETS:
        for label in BUDGETS:
            rows = {(d["network"], d["seed"]): d for d in claim_rows
                    if d["data"] == data and d["budget"] == label}
            if not rows:
                continue
            g: dict[str, Any] = {"dataset": data, "budget": label,
                                 "budget_macs": BUDGETS[label][0],
                                 "budget_params": BUDGETS[label][1], "networks": {}}
            for net in NETWORKS:
                accs = [rows[(net, s)]["test_accuracy"] for s in SEEDS if (net, s) in rows]
                any_row = next((rows[(net, s)] for s in SEEDS if (net, s) in rows), None)
                if any_row is None:
                    continue
                g["networks"][net] = {"name": any_row["spec_name"], "macs": any_row["macs"],
                                      "params": any_row["params"], "layers": any_row["layers"],
                                      "latency_ms": statistics.median(
                                          [rows[(net, s)]["latency_ms"] for s in SEEDS
                                           if (net, s) in rows]),
                                      "seeds": [s for s in SEEDS if (net, s) in rows],
                                      "test_accuracy": _stats(accs)}
            paired = {}
            for base in ("resnet", "mbv2"):
                diffs = {s: rows[("design", s)]["test_accuracy"] - rows[(base, s)]["test_accuracy"]
                         for s in SEEDS if ("design", s) in rows and (base, s) in rows}
                if diffs:
                    paired[base] = {"per_seed": {str(s): d for s, d in diffs.items()},
                                    **_stats(list(diffs.values())),
                                    "design_wins": sum(d > 0 for d in diffs.values()),
                                    "ties": sum(d == 0 for d in diffs.values())}
            g["design_minus_baseline"] = paired
            g["complete"] = all((n, s) in rows for n in NETWORKS for s in SEEDS)
            groups.append(g)
    label = next(iter(BUDGETS))
    rank = [d for d in done.values() if d["kind"] == "rank"]
    seed0 = [d for d in rank if d["seed"] == 0]
    ranking: dict[str, Any] = {"dataset": "fashion-mnist", "budget": label,
                               "budget_macs": BUDGETS[label][0],
                               "budget_params": BUDGETS[label][1], "seed": 0,
                               "train_images": RANK_TRAIN, "test_images": 10_000,
                               "architectures": len(seed0),
                               "architectures_planned": RANK_ARCHS,
                               "seeds_per_architecture": "1 (a second for the design and "
                               f"{RANK_SECOND_SEED - 1} random ones)"}
    if len(seed0) >= 3:
        acc = [d["test_accuracy"] for d in seed0]
        ranking["correlations"] = rank_correlations(acc, {
            p: [d[p] for d in seed0] for p in ("objective", "entropy", "params", "macs")})
        ranking["spearman"] = {p: c["spearman"] for p, c in ranking["correlations"].items()}
        ranking["kendall"] = {p: c["kendall"] for p, c in ranking["correlations"].items()}
        ranking["objective_minus"] = {
            p: spearman_difference(acc, [d["objective"] for d in seed0], [d[p] for d in seed0])
            for p in ("params", "macs")}
        order = sorted(seed0, key=lambda d: -d["test_accuracy"])
        design_row = next((d for d in seed0 if d["network"] == "design"), None)
        if design_row is not None:
            ranking["design_rank"] = 1 + order.index(design_row)
            ranking["design_behind_best"] = order[0]["test_accuracy"] - design_row["test_accuracy"]
            ranking["design_objective_rank"] = 1 + sum(d["objective"] > design_row["objective"]
                                                       for d in seed0)
    ranking["rows"] = [{k: d[k] for k in ("network", "spec_name", "macs", "params", "layers",
                                          "objective", "entropy", "effectiveness",
                                          "test_accuracy")} for d in seed0]
    pairs = []
    for d in rank:
        if d["seed"] == 1:
            first = done.get(f"rank_{label}_{d['network']}_s0")
            if first:
                pairs.append({"network": d["network"], "seed0": first["test_accuracy"],
                              "seed1": d["test_accuracy"]})
    ranking["second_seed"] = pairs
    if pairs:
        ranking["seed_noise_abs_diff_median"] = float(np.median(
            [abs(p["seed0"] - p["seed1"]) for p in pairs]))
    result = {
        "what": "DeepMAD design vs equal-budget hand-designed networks, trained (issue 20)",
        "verdict": verdict(groups, ranking),
        "recipe": {**recipe("<dataset>", 0, args.epochs),
                   "augment": {ds: recipe(ds, 0, args.epochs)["augment"] for ds in DATASETS}},
        "rho": RHO, "candidates": CANDIDATES,
        "epochs": args.epochs, "seeds": list(SEEDS), "budgets": BUDGETS,
        "runs_done": len(done), "runs_planned": len(planned),
        "claim": groups, "ranking": ranking,
        "runs": sorted(all_rows, key=lambda d: d["name"]),
        "machine": {"processor": platform.processor() or platform.machine(),
                    "python": platform.python_version()},
    }
    atomic_write_json(RESULTS / "design_claim.json", result)
    plot(groups, ranking, RESULTS / "design_claim.png")
    print(f"{len(done)} of {len(planned)} runs done -> {RESULTS / 'design_claim.json'}")


def _pts(v: float) -> str:
    return f"{100 * v:+.2f}"


def verdict(groups: list[dict[str, Any]], ranking: dict[str, Any]) -> dict[str, Any]:
    """Plain sentences from the figures: per claim group, who won by how much over how many
    seeds (partial groups say so); for the ranking, whether the DeepMAD objective ranks trained
    accuracy better than the naive proxies (params, MACs) by Spearman's rho."""
    claim = []
    for g in groups:
        parts = []
        for base, p in g["design_minus_baseline"].items():
            name = g["networks"][base]["name"]
            side = "ahead of" if p["mean"] > 0 else "behind" if p["mean"] < 0 else "level with"
            level = f", level on {p['ties']}" if p.get("ties") else ""
            parts.append(f"{side} {name} by {abs(100 * p['mean']):.2f} points (ahead on "
                         f"{p['design_wins']}{level} of {p['n']} seeds)")
        claim.append(f"{g['dataset']}, {g['budget']} MACs"
                     + ("" if g["complete"] else " (partial)") + ": "
                     + ("the design is " + "; ".join(parts) if parts
                        else "no seed has both the design and a baseline trained yet"))
    out: dict[str, Any] = {"claim": claim}
    sp = ranking.get("spearman")
    if sp:
        naive = max(("params", "macs"), key=lambda k: sp[k])
        shown = {"params": "params", "macs": "MACs"}[naive]
        diff = ranking.get("objective_minus", {}).get(naive)
        if diff is None:
            judged = ("better" if sp["objective"] > sp[naive] else "no better") + f" than {shown}"
        elif diff["low"] > 0:
            judged = f"better than {shown} (the whole bootstrap interval is above 0)"
        elif diff["high"] < 0:
            judged = f"worse than {shown} (the whole bootstrap interval is below 0)"
        else:
            judged = f"about as well as {shown}, no measurable difference"
        sentence = (
            f"over {ranking['architectures']} architectures ({ranking['train_images']:,} "
            f"training images), Spearman rho with trained accuracy: DeepMAD objective "
            f"{sp['objective']:.2f}, entropy {sp['entropy']:.2f}, params {sp['params']:.2f}, "
            f"MACs {sp['macs']:.2f}: the objective ranks {judged}")
        if diff is not None:
            sentence += (f" (difference {diff['difference']:+.2f}, {100 * diff['level']:.0f} % "
                         f"paired bootstrap interval {diff['low']:+.2f} to {diff['high']:+.2f})")
        if "design_rank" in ranking:
            by_objective = ("the highest objective" if ranking["design_objective_rank"] == 1
                            else f"objective rank {ranking['design_objective_rank']}")
            sentence += (f"; the design, which has {by_objective}, ranks "
                         f"{ranking['design_rank']} of {ranking['architectures']} by trained "
                         f"accuracy, {100 * ranking['design_behind_best']:.2f} points behind "
                         "the best")
        out["ranking"] = sentence
    return out


def plot(groups: list[dict[str, Any]], ranking: dict[str, Any], path: Path) -> None:
    from archopt.runs.plotting import new_figure, save_png

    fig = new_figure((11.0, 4.0))
    ax1, ax2 = fig.subplots(1, 2)
    ticks, labels = [], []
    labels_seen: set[str] = set()
    for x, g in enumerate(groups):
        for i, (base, p) in enumerate(g.get("design_minus_baseline", {}).items()):
            c = f"C{NETWORKS.index(base)}"
            pts = [100 * v for v in p["per_seed"].values()]
            xs = [x + 0.3 * i] * len(pts)
            ax1.scatter(xs, pts, color=c, alpha=0.5, s=18)
            ax1.scatter([x + 0.3 * i], [100 * p["mean"]], color=c, marker="_", s=400,
                        label=f"vs {base}" if base not in labels_seen else None)
            labels_seen.add(base)
        ticks.append(x + 0.15)
        labels.append(f"{g['dataset']}\n{g['budget']} MACs"
                      + ("" if g["complete"] else " (partial)"))
    ax1.axhline(0, color="0.3", lw=0.8)
    ax1.set_xticks(ticks, labels, fontsize=8)
    ax1.set_ylabel("design - baseline, test accuracy (points)\ndots: seeds, bar: mean")
    ax1.legend(fontsize=8)
    ax1.grid(alpha=0.3)
    rows = ranking.get("rows", [])
    if rows:
        for is_design, color, label in ((False, "C0", "random, same budgets"),
                                        (True, "C3", "the design")):
            sel = [r for r in rows if (r["network"] == "design") == is_design]
            ax2.scatter([r["objective"] for r in sel], [100 * r["test_accuracy"] for r in sel],
                        color=color, label=label)
        ax2.legend(fontsize=8)
        rho = ranking.get("spearman", {}).get("objective")
        ax2.set_title(f"ranking at {ranking['budget']} MACs ({len(rows)} architectures"
                      + (f", Spearman {rho:.2f})" if rho is not None else ")"), fontsize=10)
    ax2.set_xlabel("DeepMAD objective")
    ax2.set_ylabel("test accuracy (%)")
    ax2.grid(alpha=0.3)
    save_png(fig, path)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=Path, default=Path("runs/design_claim"))
    ap.add_argument("--epochs", type=int, default=EPOCHS)
    ap.add_argument("--only", nargs="*", help="run names starting with these prefixes")
    ap.add_argument("--collect", action="store_true")
    ap.add_argument("--show", action="store_true", help="print the plan's specs and exit")
    args = ap.parse_args()
    if args.show:
        for label in BUDGETS:
            for s in [designed(label), *random_archs(label, RANK_ARCHS - 1),
                      *[spec_of({"network": n, "budget": label}) for n in ("resnet", "mbv2")]]:
                sc = score_spec(s)
                print(f"{label} {s.name:36s} MACs {s.macs():>11,} params {s.params():>9,} "
                      f"layers {s.layers():3d} objective {sc.objective:9.1f} "
                      f"rho {sc.effectiveness:.3f}")
        return
    if args.collect:
        collect(args)
    else:
        worker(args)


if __name__ == "__main__":
    main()
