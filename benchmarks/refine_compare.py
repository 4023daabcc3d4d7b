"""Tuning a trained CNN for macro-F1: HBDE (published and our variants) against what
practitioners use -- continued Adam, post-hoc logit adjustment, per-class bias tuning -- and
their combinations, on imbalanced Fashion-MNIST, at equal CPU budgets.

Setting (stated in the results JSON):

- Pre-trained models: exactly those of ``hbde_claim.py`` (its ``small_cnn``, ``pretrain``:
  Adam lr 1e-3, batch 128, early-stopped on validation macro-F1 of a seeded 10 % hold-out,
  patience 3, at most 20 epochs), one per seed.
- Profiles (both splits subsampled, seed ``hbde_claim.IMBALANCE_SEED``; validation = the
  hold-out the model was early-stopped on, taken from the imbalanced training split):
  ``geometric-10``: round(n_c * 10^(-c/9)) images of class c (hbde_claim's ``imbalanced``);
  ``longtail-100``: round(n_c * 100^(-c/9)) (the exponential long tail of CIFAR-10-LT).
- Methods, all from the same checkpoint and with the same validation split (passed to
  ``archopt.refine.refine`` as ``validation=``; nothing is selected on the test split):

  - ``pretrained``: the checkpoint itself.
  - ``adam``: Adam continued (lr 1e-3, its saved state, batch 128) for the CPU seconds the
    published HBDE run searched (``hbde_claim.run_adam``).
  - ``logit-adjust``: ``method="logit-adjust"`` (tau in 0, 0.25, ..., 3 by validation
    macro-F1). ``bias``: ``method="bias"`` (scipy differential evolution, 5,000 evaluations).
  - ``hbde``: the published setting (N_bins 10,000, NP 100, F 0.5, CR 0.9, super-batch 128,
    objective 1 - macro-F1, block-mean member, parents not re-scored, bin-wide initial range)
    for ``--seconds`` CPU seconds (clock="cpu", one thread).
  - variants (ours), same budget: ``hbde-rescore`` (parents re-scored each generation),
    ``hbde-layer-<m>`` (initial genes +- m x the std of the members' tensors),
    ``hbde-bias-genes`` (one gene per output bias beside the blocks).
  - combinations: ``<run>+logit-adjust`` / ``<run>+bias`` for every HBDE run and Adam (the
    post-hoc step applied to that run's model; CPU seconds add up).
- Reported: test macro-F1 and balanced accuracy (and accuracy, validation macro-F1) per seed,
  mean and std over seeds, and the CPU seconds (``time.process_time``, one torch thread) each
  method used: the search for HBDE, the steps for Adam, the forward pass on the validation
  split + the search for the post-hoc methods. Monitoring is not counted.

Resumable: every run writes ``<work>/<profile>/seed<k>/<method>.json`` atomically (HBDE and
Adam also their model, for the combinations) and is skipped when present; ``--collect``
rebuilds the results JSON, the plot and (``--markdown``) the table from those files.

Usage: ``python benchmarks/refine_compare.py --profiles geometric-10 --seeds 0
--methods pretrained,hbde,hbde-layer-0.01`` (runs are added to the work folder);
``python benchmarks/refine_compare.py --collect --markdown``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
import hbde_claim  # the shared setting: model, data, pre-training, Adam
from archopt.data.dataset import ImageDataset
from archopt.refine import RefineConfig, refine
from archopt.refine.scores import logits_of, split_scores
from archopt.runs import atomic_torch_save, atomic_write_json, environment_info

ROOT = Path(__file__).resolve().parents[1]
PROFILES = {"geometric-10": "imbalanced", "longtail-100": "longtail"}
POSTHOC = ("logit-adjust", "bias")
BASE = ("pretrained", "logit-adjust", "bias", "hbde", "adam")  # hbde before adam (its budget)
METRICS = ("f1", "balanced_accuracy", "accuracy")


def hbde_config(method: str, seed: int, seconds: float) -> RefineConfig:
    """The published HBDE setting, with the variant ``method`` names (ours)."""
    cfg: dict[str, Any] = dict(n_bins=10_000, population=100, F=0.5, CR=0.9, super_batch=128,
                               metric="f1", generations=None, max_seconds=seconds, clock="cpu",
                               eval_every=5, train_eval_size=5000, seed=seed, device="cpu",
                               eval_path="sequential")
    if method == "hbde-rescore":
        cfg["rescore"] = True
    elif method.startswith("hbde-layer-"):
        cfg.update(init_range="layer", init_spread=float(method.removeprefix("hbde-layer-")))
    elif method == "hbde-bias-genes":
        cfg["bias_genes"] = True
    elif method != "hbde":
        raise SystemExit(f"unknown method {method!r}")
    return RefineConfig(**cfg)


def scores_of(net: nn.Module, data: ImageDataset, val: tuple[torch.Tensor, torch.Tensor]
              ) -> dict[str, dict[str, float]]:
    xs = {"val": val[0], "test": data.test_x}
    lg = {s: logits_of(net, x, mean=data.mean, std=data.std) for s, x in xs.items()}
    return split_scores(lg, {"val": val[1], "test": data.test_y}, data.num_classes)


def load_net(state: dict[str, torch.Tensor]) -> nn.Module:
    net = hbde_claim.small_cnn()
    net.load_state_dict(state)
    return net.eval()


def run_method(method: str, d: Path, data: ImageDataset, val: tuple[torch.Tensor, torch.Tensor],
               pre: dict[str, Any], seed: int, seconds: float) -> dict[str, Any]:
    """One run; returns its JSON row (and saves the model of HBDE / Adam runs)."""
    if method == "pretrained":
        return {"scores": scores_of(load_net(pre["model"]), data, val), "cpu_seconds": 0.0}
    if "+" in method:  # a post-hoc step after an HBDE / Adam run
        first, second = method.split("+")
        prev = json.loads((d / f"{first}.json").read_text())
        net = load_net(torch.load(d / f"{first}.model.pt", weights_only=True))
        s = refine(net, data, RefineConfig(method=second, device="cpu", seed=seed),
                   validation=val, progress=False).summary
        return {"scores": s["scores"]["after"], "adjustment": s["adjustment"],
                "cpu_seconds": round(prev["cpu_seconds"] + s["search_cpu_seconds"], 3),
                "posthoc_cpu_seconds": s["search_cpu_seconds"]}
    if method in POSTHOC:
        s = refine(load_net(pre["model"]), data,
                   RefineConfig(method=method, device="cpu", seed=seed), validation=val,
                   progress=False).summary
        return {"scores": s["scores"]["after"], "adjustment": s["adjustment"],
                "cpu_seconds": s["search_cpu_seconds"], "validation": s["validation"]}
    if method == "adam":
        hb = d / "hbde.json"
        budget = json.loads(hb.read_text())["cpu_seconds"] if hb.is_file() else seconds
        keep: dict[str, nn.Module] = {}
        r = hbde_claim.run_adam(data, pre, seed, budget, keep=keep)
        atomic_torch_save(keep["net"].state_dict(), d / "adam.model.pt")
        return {"scores": scores_of(keep["net"], data, val), "cpu_seconds": r["search_cpu_seconds"],
                "steps": r["steps"], "epochs": r["epochs"], "budget_cpu_seconds": budget,
                "curve": r["curve"]}
    cfg = hbde_config(method, seed, seconds)
    res = refine(load_net(pre["model"]), data, cfg, validation=val, progress=False)
    s = res.summary
    atomic_torch_save(res.model.state_dict(), d / f"{method}.model.pt")
    curve = [[0.0, s["metric_after_blocking"]]] + [
        [r["search_cpu_seconds"], r["test_metric"]] for r in res.history if "test_metric" in r]
    return {"scores": s["scores"]["after"], "cpu_seconds": s["search_cpu_seconds"],
            "variant": s["variant"], "metric_after_blocking": s["metric_after_blocking"],
            "function_evaluations": s["function_evaluations"], "generations": s["generations"],
            "blocked_dimensions": s["blocked_dimensions"], "best_objective": s["best_objective"],
            "wall_seconds": s["search_seconds"], "curve": curve}


def spread_diagnostic(data: ImageDataset, val: tuple[torch.Tensor, torch.Tensor],
                      pre: dict[str, Any], spreads: list[float], members: int = 4
                      ) -> dict[str, Any]:
    """Validation macro-F1 of ``members`` initial-population members (seed 0) at each spread
    multiple (``init_range="layer"``), against the block-mean member: how far the initial
    population reaches."""
    from archopt.refine import DifferentialEvolution
    from archopt.refine.loop import search_space
    from archopt.refine.params import ParameterLayout

    net = load_net(pre["model"])
    layout = ParameterLayout.of(net)
    theta = layout.flatten(net)
    rows = []
    for m in [None, *spreads]:
        cfg = hbde_config("hbde" if m is None else f"hbde-layer-{m}", 0, 1.0)
        b, low, high, _ = search_space(net, layout, theta, cfg, 10, torch.zeros(0))
        pop = DifferentialEvolution(low, high, population=100, seed=0, x0=b.values).ask()
        f1 = []
        for i in range(members + 1):
            layout.load(net, b.unblock(pop[i].to(theta.dtype)))
            f1.append(scores_of(net, data, val)["val"]["f1"])
        rows.append({"spread": m, "init_range": cfg.init_range, "block_mean_val_f1": f1[0],
                     "members_val_f1": f1[1:],
                     "mean_half_width": float(((high - low) / 2).mean())})
        layout.load(net, theta)
    return {"rows": rows}


def _ms(xs: list[float]) -> dict[str, Any]:
    return {"mean": statistics.fmean(xs), "std": statistics.stdev(xs) if len(xs) > 1 else 0.0,
            "per_seed": xs, "n": len(xs)}


def collect(work: Path, args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {
        "benchmark": "refine_compare", "machine": environment_info(),
        "setup": {
            "model": "hbde_claim.small_cnn (206,922 params), early-stopped Adam pre-training "
                     "(hbde_claim.pretrain, patience 3, max 20 epochs)",
            "profiles": {"geometric-10": "round(n_c * 10^(-c/9)) per class c, train and test",
                         "longtail-100": "round(n_c * 100^(-c/9)) per class c, train and test"},
            "imbalance_seed": hbde_claim.IMBALANCE_SEED,
            "validation": "the seeded 10 % hold-out of the (imbalanced) training split the model "
                          f"was early-stopped on (seed {hbde_claim.SPLIT_SEED}); every method "
                          "selects on it; the test split is only reported",
            "hbde": "N_bins 10,000, NP 100, F 0.5, CR 0.9, super-batch 128, 1 - macro-F1, "
                    "block-mean member, no re-scoring, init_range bin (published)",
            "hbde_seconds": args.seconds,
            "adam": "lr 1e-3 with the saved Adam state, batch 128, for the CPU seconds the "
                    "published HBDE run searched",
            "logit_adjust": "tau in {0, 0.25, ..., 3} by validation macro-F1 (Menon et al. 2021)",
            "bias": "scipy differential_evolution, 5,000 evaluations, box +- a quarter of the "
                    "median top-2 validation logit margin, kept only if it beats b = 0 on "
                    "validation",
            "cpu_seconds": "time.process_time, 1 torch thread: HBDE search, Adam steps, "
                           "post-hoc forward pass on validation + search; combinations add up",
            "threads": torch.get_num_threads()},
        "profiles": {}}
    for profile in PROFILES:
        pdir = work / profile
        if not pdir.is_dir():
            continue
        runs: dict[str, dict[str, Any]] = {}
        for sd in sorted(pdir.glob("seed*")):
            row = {}
            for f in sorted(sd.glob("*.json")):
                row[f.stem] = json.loads(f.read_text())
            runs[sd.name.removeprefix("seed")] = row
        methods = sorted({m for r in runs.values() for m in r
                          if m not in ("pretrain", "spread")}, key=_order)
        table: dict[str, Any] = {}
        for m in methods:
            have = [s for s, r in runs.items() if m in r and "pretrained" in r]
            if not have:
                continue
            t: dict[str, Any] = {"seeds": have}
            for k in METRICS:
                t[k] = _ms([runs[s][m]["scores"]["test"][k] for s in have])
                t[f"{k}_minus_pretrained"] = _ms([runs[s][m]["scores"]["test"][k]
                                                  - runs[s]["pretrained"]["scores"]["test"][k]
                                                  for s in have])
            t["val_f1"] = _ms([runs[s][m]["scores"]["val"]["f1"] for s in have])
            t["cpu_seconds"] = [runs[s][m]["cpu_seconds"] for s in have]
            table[m] = t
        out["profiles"][profile] = {"table": table, "runs": runs}
    return out


def _order(m: str) -> tuple[int, str]:
    first = m.split("+")[0]
    rank = {"pretrained": 0, "adam": 1, "logit-adjust": 2, "bias": 3, "hbde": 4}
    return (rank.get(first, 5) + (10 if "+" in m else 0), m)


def markdown(res: dict[str, Any]) -> str:
    lines = ["| profile | method | seeds | test macro-F1 (%) | Δ vs pre-trained (pts) | "
             "test balanced acc. (%) | Δ (pts) | CPU s |", "|---|---|---|---|---|---|---|---|"]
    for profile, p in res["profiles"].items():
        for m, t in p["table"].items():
            f, fd = t["f1"], t["f1_minus_pretrained"]
            b, bd = t["balanced_accuracy"], t["balanced_accuracy_minus_pretrained"]
            cpu = statistics.fmean(t["cpu_seconds"])
            lines.append(f"| {profile} | {m} | {t['f1']['n']} | {100 * f['mean']:.2f} ± "
                         f"{100 * f['std']:.2f} | {100 * fd['mean']:+.2f} ± {100 * fd['std']:.2f}"
                         f" | {100 * b['mean']:.2f} ± {100 * b['std']:.2f} | "
                         f"{100 * bd['mean']:+.2f} ± {100 * bd['std']:.2f} | {cpu:.1f} |")
    return "\n".join(lines)


def plot(res: dict[str, Any], path: Path) -> None:
    from archopt.runs.plotting import new_figure, save_png

    profiles = list(res["profiles"])
    if not profiles:
        return
    fig = new_figure((6.5 * len(profiles), 9.0))
    axes = fig.subplots(2, len(profiles), squeeze=False)
    for j, profile in enumerate(profiles):
        table = res["profiles"][profile]["table"]
        names = [m for m in table if m != "pretrained"]
        for i, (k, label) in enumerate((("f1", "test macro-F1"),
                                        ("balanced_accuracy", "test balanced accuracy"))):
            ax = axes[i][j]
            for y, m in enumerate(names):
                d = table[m][f"{k}_minus_pretrained"]
                color = "C0" if m.startswith("hbde") else "C1" if m.startswith("adam") else "C2"
                ax.barh(y, 100 * d["mean"], xerr=100 * d["std"], color=color, alpha=0.7)
                ax.plot([100 * v for v in d["per_seed"]], [y] * d["n"], "k.", ms=4)
            ax.set_yticks(range(len(names)), names, fontsize=7)
            ax.invert_yaxis()
            ax.axvline(0, color="k", lw=0.8)
            ax.set_xlabel(f"{label}: change vs pre-trained (points)")
            n = table["pretrained"]["f1"]["n"] if "pretrained" in table else 0
            ax.set_title(f"Fashion-MNIST {profile} ({n} seeds; dots = seeds)", fontsize=9)
            ax.grid(alpha=0.3, axis="x")
    save_png(fig, path)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profiles", default=",".join(PROFILES))
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--methods", default=",".join(BASE))
    ap.add_argument("--seconds", type=float, default=100.0, help="HBDE search CPU seconds")
    ap.add_argument("--diagnose-spread", default="",
                    help="comma-separated spread multiples: write spread.json per seed")
    ap.add_argument("--work", type=Path, default=ROOT / "runs" / "refine_compare")
    ap.add_argument("--json", type=Path,
                    default=ROOT / "benchmarks/results/refine_compare.json")
    ap.add_argument("--collect", action="store_true", help="only rebuild the results")
    ap.add_argument("--markdown", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(int(os.environ.get("ARCHOPT_THREADS", "1")))

    def report() -> None:
        res = collect(args.work, args)
        atomic_write_json(args.json, res)
        plot(res, args.json.with_suffix(".png"))

    if not args.collect:
        methods = [m for m in args.methods.split(",") if m]
        for profile in args.profiles.split(","):
            data, val = hbde_claim.make_data(PROFILES[profile])
            for seed in (int(s) for s in args.seeds.split(",")):
                d = args.work / profile / f"seed{seed}"
                d.mkdir(parents=True, exist_ok=True)
                pre = hbde_claim.pretrain(data, val, seed, 3, 20, d / "pretrain.pt")
                atomic_write_json(d / "pretrain.json", {k: v for k, v in pre.items()
                                                        if k not in ("model", "opt")})
                if args.diagnose_spread and not (d / "spread.json").is_file():
                    spreads = [float(x) for x in args.diagnose_spread.split(",")]
                    atomic_write_json(d / "spread.json",
                                      spread_diagnostic(data, val, pre, spreads))
                for m in methods:
                    f = d / f"{m}.json"
                    if f.is_file():
                        continue
                    t0 = time.perf_counter()
                    r = run_method(m, d, data, val, pre, seed, args.seconds)
                    atomic_write_json(f, r)
                    print(f"{profile} seed {seed} {m}: test f1 "
                          f"{r['scores']['test']['f1']:.4f} bal "
                          f"{r['scores']['test']['balanced_accuracy']:.4f} "
                          f"({r['cpu_seconds']} CPU s, {time.perf_counter() - t0:.0f} wall s)",
                          flush=True)
                    report()
    report()
    if args.markdown:
        print(markdown(json.loads(args.json.read_text())))


if __name__ == "__main__":
    main()
