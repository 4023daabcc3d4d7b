"""Connection selection in a DenseNet (Saito, Shirakawa et al., ICANN 2019, section 4.2) at CPU
scale, with the paper's dynamics unscaled, against random connection selection at matched
weight usage.

What is kept from the paper: one bit per connection inside each dense block (including the maps
feeding the transition / classifier), c_i = the weights attached to connection i, eta = 1/d,
theta0 = 0.5, lambda = 2, batch 32, SGD with Nesterov momentum 0.9, weight decay 1e-4, lr 0.1
divided by 10 at 1/2 and 3/4 of training, pad-crop + horizontal-flip augmentation, no dropout;
baselines trained with batch 64 for the same number of iterations (the paper: 600 epochs at
batch 64 vs 300 at batch 32); random selection = "repeatedly sample M such that the weight usage
rate becomes the target percentage, then train the fixed network" (one target per method run:
its own usage, same seed).

What is scaled, because DenseNet-40 (d = 273) costs 387 ms per SNG iteration on one core of this
machine even with a stride-2 stem (``--time-step``: the paper's 4.7e5 iterations would take 51
CPU-hours per run): the network is a DenseNet-16 (3 blocks x 4 layers, growth 12, stem 16
channels with stride 2, so the blocks run at 14x14 / 7x7 / 3x3 on Fashion-MNIST's 28x28; d =
45), trained for ``--epochs`` 4 of Fashion-MNIST at batch 32 (7,500 iterations = 167 d; the
paper: 1,717 d).
Fashion-MNIST stands in for CIFAR-10 (not on these machines). The grid is the paper's upper
half, 2^-2 .. 2^-5 and 0, plus 2^-1 (beyond the paper's grid) because at d = 45 the paper's
2^-2 keeps ~33 % of the weights where the paper's d = 273 network kept 15.8 %.

Two diagnostics beyond the paper, to tell the structure from its one-shot weights: each
method run's M* retrained from scratch with the baselines' recipe (``retrain_*``: same
structure, same iterations, batch 64), and M*'s test error after re-estimating its BatchNorm
statistics under M* alone (``bn_recalibrated_error``, computed by ``--collect``).

Resumable and shardable: each run's summary is kept in ``--runs/<name>/`` and skipped when
complete; several processes share the plan through file locks (a random-selection run waits
for the method run whose usage it matches). ``--collect`` writes
``benchmarks/results/structure_densenet.json`` and ``structure_densenet.png``.

    python benchmarks/structure_densenet.py &  python benchmarks/structure_densenet.py
    python benchmarks/structure_densenet.py --collect
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

import benchlib
from archopt.data import load_dataset
from archopt.data.dataset import normalize
from archopt.errors import InvalidSpec
from archopt.runs import atomic_write_json, read_json
from archopt.spaces import load_spec
from archopt.structure.compaction import weight_usage
from archopt.structure.densenet import MaskedDenseNet
from archopt.structure.loop import StructureConfig
from archopt.structure.run import adapt, default_train_config, run_fixed, run_structure
from archopt.structure.sweep import parse_penalty, penalty_label

TASK = "densenet-connections"
METHOD_KEYS = ("weight_usage_rate", "cost_usage_rate", "connections_per_block",
               "selected_bits_per_block", "connections_full", "test_error", "test_accuracy",
               "params", "params_full", "steps", "train_seconds", "seconds_per_step_ms",
               "theta_mean", "decided_fraction", "d", "eps", "compact_max_abs_logit_difference")


def make_spec(args: argparse.Namespace) -> dict[str, Any]:
    depth = 3 * args.layers + 4
    return dict(space="densenet", name=f"DenseNet-{depth} (3x{args.layers}, k={args.growth}, "
                f"stride-{args.stem_stride} stem)", in_channels=1, num_classes=10,
                resolution=28, stem=dict(out=16, k=3, stride=args.stem_stride),
                stages=[dict(growth=args.growth, layers=args.layers, bottleneck=False)] * 3,
                compression=1.0)


def plan(args: argparse.Namespace) -> list[dict[str, Any]]:
    seeds = [int(s) for s in args.seeds.split(",")]
    runs: list[dict[str, Any]] = []
    for s in seeds:
        runs += [{"kind": "method", "penalty": parse_penalty(p), "seed": s,
                  "name": f"method_eps{penalty_label(parse_penalty(p))}_s{s}"}
                 for p in args.penalties.split(",")]
        if s in seeds[:args.full_seeds]:
            runs.append({"kind": "full", "seed": s, "name": f"full_s{s}"})
    methods = [r for r in runs if r["kind"] == "method"]
    runs += [{"kind": "random", "of": r["name"], "seed": r["seed"],
              "name": f"random_{r['name'][len('method_'):]}"} for r in methods]
    runs += [{"kind": "retrain", "of": r["name"], "seed": r["seed"],
              "name": f"retrain_{r['name'][len('method_'):]}"} for r in methods]
    return runs


def random_mask(sup: MaskedDenseNet, target: float, seed: int, tol: float,
                tries: int = 20000) -> tuple[np.ndarray, int]:
    """A connection mask drawn at random whose weight usage rate is within ``tol`` of
    ``target``: Bernoulli(p) draws, p set by bisection on the mean usage, rejected until close.
    Returns (mask (d,) bool canonical, draws)."""
    rng = np.random.default_rng(seed)
    d = sup.d

    def usage(m: np.ndarray) -> float | None:
        try:
            return float(weight_usage(sup, m[None])["weight_usage_rate"])
        except InvalidSpec:  # a disconnected block: not a network
            return None

    lo, hi = 0.0, 1.0
    for _ in range(12):
        p = (lo + hi) / 2
        us = [usage(rng.random(d) < p) for _ in range(24)]
        mean = float(np.mean([u if u is not None else 0.0 for u in us]))
        lo, hi = (p, hi) if mean < target else (lo, p)
    p = (lo + hi) / 2
    for k in range(1, tries + 1):
        m = rng.random(d) < p
        u = usage(m)
        if u is not None and abs(u - target) <= tol:
            return sup.canonical(m[None])[0], k
    raise RuntimeError(f"no random mask within {tol} of usage {target} in {tries} draws")


def run_one(r: dict[str, Any], args: argparse.Namespace, spec: dict[str, Any]) -> dict[str, Any]:
    out = args.runs / r["name"]
    t0, c0 = time.perf_counter(), time.process_time()
    if r["kind"] == "method":
        sc = StructureConfig(optimizer="sng", penalty=r["penalty"], eval_every=1,
                             max_steps_per_epoch=args.max_steps_per_epoch)
        tc = default_train_config(TASK, epochs=args.epochs, seed=r["seed"], device="cpu")
        try:
            s = run_structure(TASK, "fashion-mnist", out=out, structure=sc, train=tc,
                              space=spec, resume=True, latency=False, progress=False)
        except InvalidSpec as err:  # M* disconnects a block: no network, recorded as such
            s = {"error": str(err), "weight_usage_rate": None, "test_error": None}
        row = {**r, "label": penalty_label(r["penalty"]), "error": s.get("error"),
               **{k: s.get(k) for k in METHOD_KEYS}}
    else:
        ds = load_dataset("fashion-mnist")
        sup = MaskedDenseNet(adapt(load_spec(spec), ds))  # type: ignore[arg-type]
        if r["kind"] == "full":
            mask, draws = np.ones(sup.d, dtype=bool), 0
            target = 1.0
        elif r["kind"] == "retrain":  # the method's own M*, trained from scratch as random is
            st = read_json(args.runs / r["of"] / "structure.json")
            mask, draws = np.asarray(st["canonical"], dtype=bool), 0
            target = float(read_json(args.runs / f"{r['of']}.json")["weight_usage_rate"])
        else:
            target = float(read_json(args.runs / f"{r['of']}.json")["weight_usage_rate"])
            mask, draws = random_mask(sup, target, 1000 + r["seed"], args.usage_tol)
        use = weight_usage(sup, mask[None])
        fixed = sup.compact_spec(mask[None])
        tc = default_train_config(TASK, epochs=2 * args.epochs, batch_size=64, seed=r["seed"],
                                  device="cpu")
        s = run_fixed(fixed, ds, out=out, train=tc, resume=True, progress=False,
                      label=r["kind"], max_steps_per_epoch=args.max_steps_per_epoch and
                      args.max_steps_per_epoch // 2)
        row = {**r, "target_usage": target, "draws": draws,
               "weight_usage_rate": use["weight_usage_rate"], "params": use["params"],
               "params_full": use["params_full"],
               "connections_per_block": sup.connections_per_block(mask[None]),
               "test_error": s["test_error"], "test_accuracy": s["test_accuracy"],
               "steps": s["steps"], "train_seconds": s["train_seconds"],
               "seconds_per_step_ms": s["seconds_per_step_ms"]}
    row.update(wall_seconds=round(time.perf_counter() - t0, 1),
               cpu_seconds=round(time.process_time() - c0, 1),
               load_average=os.getloadavg()[0])
    atomic_write_json(args.runs / f"{r['name']}.json", row)
    return row


@torch.no_grad()
def recalibrated_error(run: Path, ds: Any, batches: int = 100, batch_size: int = 64) -> float:
    """Test error of a method run's M* (its compact ``model.pt``, whose outputs equal the masked
    supernet's) after re-estimating every BatchNorm's running statistics under M* alone: the
    supernet's statistics were averaged over the random structures sampled in training. A
    post-hoc diagnostic, not part of the paper's method: ``batches`` x ``batch_size`` training
    images (seeded, no augmentation), cumulative averages, no weight changes."""
    from archopt.training import evaluate
    from archopt.training.checkpoint import load_model

    model, _, _ = load_model(run / "model.pt")
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.reset_running_stats()
            m.momentum = None
    g = torch.Generator().manual_seed(0)
    idx = torch.randperm(len(ds.train_y), generator=g)[:batches * batch_size]
    model.train()
    for b in idx.split(batch_size):
        model(normalize(ds.train_x[b], ds.mean, ds.std))
    model.eval()
    r = evaluate(model, ds.test_x, ds.test_y, mean=ds.mean, std=ds.std,
                 num_classes=ds.num_classes, batch_size=1000)
    return 1.0 - float(r["accuracy"])


def worker(args: argparse.Namespace) -> None:
    spec = make_spec(args)
    args.runs.mkdir(parents=True, exist_ok=True)
    while True:
        pending = [r for r in plan(args) if not (args.runs / f"{r['name']}.json").exists()]
        if not pending:
            return
        # a random-selection run whose method run is done comes first (it completes a pair),
        # then the retraining of that method run's M*
        pending.sort(key=lambda r: {"random": 0, "retrain": 1}.get(r["kind"], 2))
        ran = False
        for r in pending:
            if r["kind"] in ("random", "retrain"):
                of = args.runs / f"{r['of']}.json"
                if not of.exists():
                    continue
                if read_json(of).get("weight_usage_rate") is None:  # disconnected: no target
                    atomic_write_json(args.runs / f"{r['name']}.json",
                                      {**r, "skipped": "the method run has no network"})
                    continue
            with benchlib.claim(args.runs / f"{r['name']}.lock") as mine:
                if not mine:
                    continue
                if (args.runs / f"{r['name']}.json").exists():
                    continue
                print(f"{time.strftime('%H:%M:%S')} start {r['name']}", flush=True)
                row = run_one(r, args, spec)
                print(f"{time.strftime('%H:%M:%S')} done {r['name']}: usage "
                      f"{row['weight_usage_rate']} error {row['test_error']} "
                      f"({row['wall_seconds']} s)", flush=True)
                ran = True
                break
        if not ran:
            time.sleep(30)  # everything left is locked by another worker or waits for one


def collect(args: argparse.Namespace) -> None:
    rows = {r["name"]: read_json(args.runs / f"{r['name']}.json") for r in plan(args)
            if (args.runs / f"{r['name']}.json").exists()}
    method = [r for r in rows.values() if r["kind"] == "method"
              and r.get("weight_usage_rate") is not None]
    ds = load_dataset("fashion-mnist")
    for m in method:  # the post-hoc BatchNorm diagnostic, computed once and kept in the row
        if "bn_recalibrated_error" not in m:
            m["bn_recalibrated_error"] = recalibrated_error(args.runs / m["name"], ds)
            atomic_write_json(args.runs / f"{m['name']}.json", m)
    random = [r for r in rows.values() if r["kind"] == "random" and "skipped" not in r]
    retrain = [r for r in rows.values() if r["kind"] == "retrain" and "skipped" not in r]
    full = [r for r in rows.values() if r["kind"] == "full"]
    pairs = []
    for m in sorted(method, key=lambda r: r["weight_usage_rate"]):
        rnd = rows.get(f"random_{m['name'][len('method_'):]}")
        if rnd is None or "skipped" in rnd:
            continue
        ret = rows.get(f"retrain_{m['name'][len('method_'):]}")
        ret_err = ret["test_error"] if ret is not None and "skipped" not in ret else None
        pairs.append({"name": m["name"], "label": m["label"], "seed": m["seed"],
                      "usage": m["weight_usage_rate"], "random_usage": rnd["weight_usage_rate"],
                      "method_error": m["test_error"], "random_error": rnd["test_error"],
                      "retrained_mstar_error": ret_err,
                      "method_bn_recalibrated_error": m["bn_recalibrated_error"],
                      "random_minus_method_points": 100 * (rnd["test_error"] - m["test_error"]),
                      "random_minus_retrained_points": None if ret_err is None
                      else 100 * (rnd["test_error"] - ret_err)})

    def band(lo: float, hi: float) -> dict[str, Any]:
        sel = [p for p in pairs if lo <= p["usage"] < hi]
        diffs = [p["random_minus_method_points"] for p in sel]
        rdiffs = [p["random_minus_retrained_points"] for p in sel
                  if p["random_minus_retrained_points"] is not None]
        return {"usage_range": [lo, hi], "pairs": len(sel),
                "method_wins": sum(d > 0 for d in diffs),
                "median_random_minus_method_points": statistics.median(diffs) if diffs else None,
                "retrained_pairs": len(rdiffs), "retrained_wins": sum(d > 0 for d in rdiffs),
                "median_random_minus_retrained_points":
                    statistics.median(rdiffs) if rdiffs else None}

    full_err = statistics.median([r["test_error"] for r in full]) if full else None
    spec = make_spec(args)
    result = {
        "benchmark": "structure_densenet (ICANN 2019 section 4.2 at CPU scale)",
        "spec": spec, "dataset": "fashion-mnist (60k train / 10k test)", "epochs": args.epochs,
        "iterations": method[0]["steps"] if method else None,
        "d": method[0]["d"] if method else None,
        "dynamics": {"eta": "1/d", "theta0": 0.5, "lambda": 2, "batch_method": 32,
                     "batch_baselines": 64, "optimizer": "SGD Nesterov 0.9, wd 1e-4",
                     "lr": "0.1, x0.1 at 1/2 and 3/4", "augment": "pad-crop + flip"},
        "paper": {"network": "DenseNet-40 (k=12), d = 273, CIFAR-10, 4.7e5 iterations",
                  "claim": "the method beats random selection from 15 % to 40 % weight usage; "
                           "no significant difference above 60 %; within 1 point of the full "
                           "net at 40 % usage", "usage_range": [0.158, 1.0]},
        "machine": benchlib.machine(threads=1),
        "full_network_test_error_median": full_err,
        "bands": [band(0.0, 0.4), band(0.4, 0.6), band(0.6, 1.01)],
        "pairs": pairs, "runs": sorted(rows.values(), key=lambda r: r["name"])}
    args.results.mkdir(parents=True, exist_ok=True)
    atomic_write_json(args.results / "structure_densenet.json", result)
    plot(method, random, retrain, full, args.results / "structure_densenet.png")
    for b in result["bands"]:
        print(b)
    for p in pairs:
        print(p)


def plot(method: list[dict], random: list[dict], retrain: list[dict], full: list[dict],
         path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    ax.scatter([100 * r["weight_usage_rate"] for r in random],
               [100 * r["test_error"] for r in random], marker="x", color="tab:gray",
               label="random selection (matched usage)")
    ax.scatter([100 * r["weight_usage_rate"] for r in retrain],
               [100 * r["test_error"] for r in retrain], marker="+", color="tab:green",
               label="proposed M*, retrained from scratch as random")
    ax.scatter([100 * r["weight_usage_rate"] for r in method],
               [100 * r["test_error"] for r in method], color="tab:red",
               label="proposed (SNG, eta = 1/d)")
    for r in method:
        ax.annotate(r["label"], (100 * r["weight_usage_rate"], 100 * r["test_error"]),
                    fontsize=7, xytext=(3, 3), textcoords="offset points")
    for r in full:
        ax.axhline(100 * r["test_error"], color="tab:blue", lw=0.8, ls="--")
    ax.axvline(40, color="k", lw=0.5, ls=":")
    ax.set_xlabel("weight usage rate (%)")
    ax.set_ylabel("test error (%)")
    ax.set_title("DenseNet-16 connection selection, Fashion-MNIST (dashed: full net)",
                 fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def time_step(args: argparse.Namespace) -> None:
    """Cost of one SNG iteration (lambda = 2, batch 32, the real training loop) of DenseNet-40
    (the paper's network, with this script's stride-2 stem) and of the DenseNet-16 used here:
    ``--time-steps`` iterations of one epoch, one thread. Writes
    ``benchmarks/results/structure_densenet_step.json``."""
    import tempfile

    rows = []
    for layers in (12, args.layers):
        spec = make_spec(argparse.Namespace(**{**vars(args), "layers": layers}))
        sc = StructureConfig(optimizer="sng", max_steps_per_epoch=args.time_steps,
                             test_subset=500)
        tc = default_train_config(TASK, epochs=1, seed=0, device="cpu")
        with tempfile.TemporaryDirectory() as tmp:
            try:
                s = run_structure(TASK, "fashion-mnist", out=tmp, structure=sc, train=tc,
                                  space=spec, latency=False, progress=False)
            except InvalidSpec:  # a coin-flip M* may disconnect; the timing is in the summary
                s = read_json(Path(tmp) / "summary.json")
        rows.append({"network": spec["name"], "layers_per_block": layers, "d": s["d"],
                     "params_full": load_spec(spec).params(), "steps": s["steps"],
                     "seconds_per_step_ms": s["seconds_per_step_ms"],
                     "paper_iterations_cpu_hours": 4.7e5 * s["seconds_per_step_ms"] / 3.6e6})
        print(rows[-1], flush=True)
    atomic_write_json(args.results / "structure_densenet_step.json", {
        "benchmark": "structure_densenet_step (one SNG iteration, lambda 2, batch 32)",
        "dataset": "fashion-mnist", "threads": torch.get_num_threads(),
        "load_average": os.getloadavg(), "machine": platform.platform(), "runs": rows})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--penalties", default="2^-1,2^-2,2^-3,2^-4,2^-5,0")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--full-seeds", type=int, default=2)
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--growth", type=int, default=12)
    ap.add_argument("--stem-stride", type=int, default=2)
    ap.add_argument("--usage-tol", type=float, default=0.01)
    ap.add_argument("--max-steps-per-epoch", type=int, default=None, help="smoke runs only")
    ap.add_argument("--runs", type=Path, default=Path("runs/structure_densenet"))
    ap.add_argument("--results", type=Path, default=Path("benchmarks/results"))
    ap.add_argument("--collect", action="store_true")
    ap.add_argument("--time-step", action="store_true",
                    help="time one iteration of DenseNet-40 and of --layers; no runs")
    ap.add_argument("--time-steps", type=int, default=40)
    args = ap.parse_args()
    torch.set_num_threads(int(os.environ.get("ARCHOPT_THREADS", "1")))
    if args.time_step:
        time_step(args)
    elif args.collect:
        collect(args)
    else:
        worker(args)


if __name__ == "__main__":
    main()
