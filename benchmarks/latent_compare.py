"""A fair comparison: the SWAT-NN search (trained vs untrained autoencoder) against sparse-MLP
baselines at the same non-zero weight count, the same restarts, steps and validation selection.

Targets (``--targets``):

- ``sigmoid`` / ``leaky_relu``: the paper's synthetic target (a seeded random sparse MLP of width
  5, depth 2, that activation; :func:`archopt.latent.targets.synthetic_target`, target seed = run
  seed), ``--samples`` rows (default 10,000, not the paper's 100,000: the search's cost is linear
  in the rows; a smooth 3-input function is well determined by 5,000 training rows) split
  50 / 30 / 20 %; searched with that activation's autoencoder;
- ``diabetes``: scikit-learn's diabetes regression (442 patients), the 3 features with the largest
  absolute correlation with the target *on the training split* (the autoencoders' MLPs have 3
  inputs), min-max scaled to [-1, 1] on the training split, target standardised with the
  training split's mean and standard deviation (the family has no biases; MSE in units of the
  target's variance); searched with the sigmoid autoencoder and the sigmoid family.

Per (target, seed), each row written as soon as it is done (resumable: rows already in ``--out``
are skipped):

- ``search_trained``: :func:`archopt.latent.latent_search` with the shipped autoencoder
  (SearchConfig defaults: 4 depths x 4 restarts x ``--steps`` Adam steps, best by validation);
- ``search_untrained``: the same with that autoencoder's architecture at its seed-``seed``
  initialisation;
- ``search_<label>``: the same with ``--models label=act:DIR`` (e.g. a fine-tuned autoencoder);
- at the non-zero count of each search (``matched_to``), the baselines of
  :mod:`archopt.latent.baselines` with the same protocol (4 depths x 4 restarts x ``--steps`` Adam
  steps, width 7, best by validation MSE): ``l0``, ``imp_rewind``, ``prune_finetune``,
  ``dense_narrow`` (at most the count);
- ``mean``: predicting the training mean (test MSE).

CPU seconds are ``time.process_time`` of each method's whole run (one thread).

    python benchmarks/latent_compare.py --seeds 0,1,2,3,4
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from archopt.data.tabular import TabularData, TabularSplits
from archopt.latent import (
    AutoencoderConfig,
    MultiScaleAutoencoder,
    SearchConfig,
    latent_search,
    load_autoencoder,
)
from archopt.latent.baselines import BASELINES, fit_best
from archopt.latent.pretrained import load_pretrained
from archopt.latent.targets import synthetic_target
from archopt.runs import atomic_write_json, environment_info, read_json

TARGETS = ("sigmoid", "leaky_relu", "diabetes")


def diabetes_splits(seed: int) -> tuple[TabularSplits, dict[str, Any]]:
    """Diabetes: 3 features chosen on the training split, x in [-1, 1], y standardised."""
    from sklearn.datasets import load_diabetes

    d = load_diabetes()
    data = TabularData(d.data.astype(np.float32), d.target.astype(np.float32),
                       tuple(d.feature_names), "progression", "sklearn diabetes")
    sp = data.split(seed=seed)
    corr = [abs(np.corrcoef(sp.x_train[:, j], sp.y_train)[0, 1]) for j in range(10)]
    cols = sorted(np.argsort(corr)[::-1][:3].tolist())
    mu, sd = float(sp.y_train.mean()), float(sp.y_train.std())

    def y(v: np.ndarray) -> np.ndarray:
        return ((v - mu) / sd).astype(np.float32)

    sub = TabularSplits(sp.x_train[:, cols], y(sp.y_train), sp.x_val[:, cols], y(sp.y_val),
                        sp.x_test[:, cols], y(sp.y_test))
    scaled, _ = sub.minmax_scaled()
    return scaled, {"features": [d.feature_names[c] for c in cols], "y_mean": mu, "y_std": sd,
                    "sizes": scaled.sizes()}


def target_splits(target: str, seed: int, samples: int) -> tuple[TabularSplits, str,
                                                                    dict[str, Any]]:
    """``(splits, activation, info)`` of a target."""
    if target == "diabetes":
        sp, info = diabetes_splits(seed)
        return sp, "sigmoid", info
    data, info = synthetic_target(target, 0.1, samples=samples, seed=seed)
    return data.split(seed=seed), target, info


def autoencoder(kind: str, act: str, seed: int, extra: dict[str, tuple[str, str]]
                ) -> tuple[MultiScaleAutoencoder, dict[str, Any]]:
    shipped, info = load_pretrained(act)
    if kind == "trained":
        return shipped, {"autoencoder": f"shipped:{act}", "autoencoder_steps": info["step"]}
    if kind == "untrained":
        torch.manual_seed(seed)
        m = MultiScaleAutoencoder(AutoencoderConfig(**info["config"])).eval()
        return m, {"autoencoder": f"untrained (init seed {seed})", "autoencoder_steps": 0}
    ext_act, folder = extra[kind]
    if ext_act != act:
        raise SystemExit(f"--models {kind}: autoencoder for {ext_act}, target needs {act}")
    m, minfo = load_autoencoder(folder)
    return m, {"autoencoder": f"{kind} ({Path(folder).name})", "autoencoder_steps": minfo["step"]}


def run_search(kind: str, target: str, seed: int, sp: TabularSplits, act: str,
               args: argparse.Namespace, extra: dict[str, tuple[str, str]]) -> dict[str, Any]:
    model, meta = autoencoder(kind, act, seed, extra)
    cfg = SearchConfig(steps=args.steps, seed=seed)
    c0 = time.process_time()
    result = latent_search(model, sp, cfg)
    cpu = time.process_time() - c0
    s = result.summary()
    return {"target": target, "seed": seed, "method": f"search_{kind}", **meta,
            "test_mse": s["test_mse"], "val_mse": s["val_mse"], "train_mse": s["train_mse"],
            "nonzero_weights": s["nonzero_weights"], "live_weights": s["nonzero_weights"],
            "active_neurons": s["active_neurons"], "depth": s["depth"], "widths": s["widths"],
            "threshold": s["threshold"], "cpu_s": cpu,
            "mean_predictor_test_mse": s["mean_predictor_test_mse"],
            "per_depth": [{k: r[k] for k in ("depth", "val_mse", "test_mse", "nonzero_weights",
                                             "restart_val_mse")} for r in s["per_depth"]]}


def run_baseline(name: str, target: str, seed: int, sp: TabularSplits, act: str, nonzero: int,
                 matched_to: str, args: argparse.Namespace) -> dict[str, Any]:
    b = fit_best(BASELINES[name], sp, nonzero=nonzero, activation=act, negative_slope=0.1,
                 restarts=args.restarts, steps=args.steps, lr=args.lr, seed=seed, name=name)
    return {"target": target, "seed": seed, "method": name, "matched_to": matched_to,
            "requested_nonzero": nonzero, **b.row}


def summarise(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per target and method (baselines per matched search): medians over seeds, and on how many
    seeds the method's test MSE is below the matched search's."""
    out = []
    by_key: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    searches = {(r["target"], r["seed"], r["method"]): r for r in rows
                if r["method"].startswith("search_")}
    for r in rows:
        by_key.setdefault((r["target"], r["method"], r.get("matched_to", "")), []).append(r)
    for (target, method, matched), rs in sorted(by_key.items()):
        row: dict[str, Any] = {
            "target": target, "method": method, "matched_to": matched or None,
            "seeds": sorted(r["seed"] for r in rs),
            "median_test_mse": statistics.median(r["test_mse"] for r in rs)}
        if method != "mean":
            row.update({
                "median_nonzero": statistics.median(r["nonzero_weights"] for r in rs),
                "median_cpu_s": statistics.median(r["cpu_s"] for r in rs)})
        ref = f"search_{matched}" if matched else None
        if ref:
            pairs = [(r["test_mse"], searches[(target, r["seed"], ref)]["test_mse"])
                     for r in rs if (target, r["seed"], ref) in searches]
            row["beats_search"] = f"{sum(a < b for a, b in pairs)}/{len(pairs)}"
        out.append(row)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--targets", default=",".join(TARGETS))
    p.add_argument("--seeds", default="0,1,2,3,4")
    p.add_argument("--searches", default="trained,untrained",
                   help="autoencoders to search with: trained, untrained, and --models labels")
    p.add_argument("--models", default="", help="label=act:DIR,... extra autoencoders")
    p.add_argument("--baselines", default=",".join(BASELINES))
    p.add_argument("--steps", type=int, default=1000, help="Adam steps per depth and restart")
    p.add_argument("--restarts", type=int, default=4)
    p.add_argument("--lr", type=float, default=0.01, help="baselines' Adam learning rate")
    p.add_argument("--samples", type=int, default=10_000, help="rows of the synthetic targets")
    p.add_argument("--out", default="benchmarks/results/latent_compare.json")
    args = p.parse_args()
    torch.set_num_threads(int(os.environ.get("ARCHOPT_THREADS", "1")))
    extra = {}
    for item in filter(None, args.models.split(",")):
        label, spec = item.split("=", 1)
        act, folder = spec.split(":", 1)
        extra[label] = (act, folder)
    out = Path(args.out)
    rows: list[dict[str, Any]] = read_json(out)["results"] if out.exists() else []
    settings = {k: v for k, v in vars(args).items() if k not in ("out", "models")}

    def have(target: str, seed: int, method: str, matched: str | None = None
             ) -> dict[str, Any] | None:
        for r in rows:
            if (r["target"], r["seed"], r["method"], r.get("matched_to")) == (target, seed,
                                                                              method, matched):
                return r
        return None

    def save(row: dict[str, Any]) -> None:
        rows.append(row)
        rows.sort(key=lambda r: (r["target"], r["seed"], r["method"], r.get("matched_to") or ""))
        atomic_write_json(out, {
            "benchmark": "latent_compare (SWAT-NN search, trained vs untrained autoencoder, vs "
                         "L0 / IMP with rewinding / prune + fine-tune / dense narrow at the "
                         "search's non-zero count)",
            "environment": environment_info(), "threads": torch.get_num_threads(),
            "settings": settings,
            "protocol": "every method: depths 1-4 x `restarts` restarts x `steps` Adam steps, "
                        "full batch, the network with the lowest validation MSE kept; baselines "
                        "at the non-zero count of the search named in matched_to (dense_narrow: "
                        "at most that count)",
            "units": {"*_mse": "target units squared (diabetes: standardised target)",
                      "cpu_s": "process CPU seconds, one thread"},
            "summary": summarise(rows), "results": rows})

    for seed in (int(s) for s in args.seeds.split(",")):
        for target in args.targets.split(","):
            sp, act, info = target_splits(target, seed, args.samples)
            if have(target, seed, "mean") is None:
                y_mean = float(sp.y_train.mean())
                save({"target": target, "seed": seed, "method": "mean", "target_info": info,
                      "test_mse": float(((sp.y_test - y_mean) ** 2).mean())})
            for kind in args.searches.split(","):
                s = have(target, seed, f"search_{kind}")
                if s is None:
                    s = run_search(kind, target, seed, sp, act, args, extra)
                    save(s)
                    print(f"{target} seed {seed} search_{kind}: {s['test_mse']:.4g} "
                          f"({s['nonzero_weights']} w) {s['cpu_s']:.0f} CPU-s", flush=True)
                for name in args.baselines.split(","):
                    if have(target, seed, name, kind) is None:
                        b = run_baseline(name, target, seed, sp, act, s["nonzero_weights"], kind,
                                         args)
                        save(b)
                        print(f"  {name} @ {s['nonzero_weights']}: {b['test_mse']:.4g} "
                              f"({b['nonzero_weights']} w, depth {b['depth']}) "
                              f"{b['cpu_s']:.0f} CPU-s", flush=True)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
