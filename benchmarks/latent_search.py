"""SWAT-NN search that pays? The latent search against predict-the-mean and prune-and-fine-tune.

On the paper's synthetic targets (a seeded random sparse MLP of width 5, depth ``--target-depth``,
100,000 samples split 50k / 30k / 20k; target seed = run seed), per activation and seed:

- the latent search with the shipped autoencoder of that activation
  (:func:`archopt.latent.pretrained.load_pretrained`), or ``--autoencoders act=DIR,...``;
- predict-the-mean: the training split's mean target (test MSE);
- the baseline at exactly the search's non-zero count (:func:`archopt.latent.pruned_baseline`:
  dense Adam of the same max size, magnitude-pruned to that count, fine-tuned with the mask
  fixed).

``--variants`` compares threshold rules (the issue's "threshold dynamics that do not prune a
fitting network to a constant"): ``default`` (SearchConfig's defaults), ``spec`` (the paper's
lr_t 0.01, t only clamped to [0, 3]), ``slow_t`` (lr_t 0.001), ``cap`` (t capped at the median
|w| of the decoded weights), ``no_t`` (lr_t 0: no pruning threshold, t stays 0).

Resumable: each (activation, variant, seed) result is written to ``--work`` as it finishes and
skipped on a rerun; ``--out`` collects every result found there.

    python benchmarks/latent_search.py --seeds 0,1,2 --variants default
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path
from typing import Any

import torch

from archopt.latent import SearchConfig, latent_search, load_autoencoder, pruned_baseline
from archopt.latent.pretrained import load_pretrained
from archopt.latent.targets import synthetic_target
from archopt.runs import atomic_write_json, environment_info, read_json

VARIANTS: dict[str, dict[str, Any]] = {
    "default": {},
    "spec": {"lr_t": 0.01, "t_quantile": None},
    "slow_t": {"lr_t": 0.001, "t_quantile": None},
    "cap": {"lr_t": 0.01, "t_quantile": 0.5},
    "no_t": {"lr_t": 0.0, "t_quantile": None},
}


def run(act: str, variant: str, seed: int, args: argparse.Namespace,
        sources: dict[str, str]) -> dict[str, Any]:
    if act in sources:
        model, info = load_autoencoder(sources[act], "cpu")
        source = sources[act]
    else:
        model, info = load_pretrained(act, "cpu")
        source = f"shipped:{act}"
    cfg = model.config
    data, target = synthetic_target(act, cfg.negative_slope, n_in=cfg.n_in,
                                    depth=args.target_depth, samples=args.samples, seed=seed)
    splits = data.split(seed=seed)
    search = SearchConfig(steps=args.steps, seed=seed, **VARIANTS[variant])
    t0, c0 = time.perf_counter(), time.process_time()
    result = latent_search(model, splits, search)
    search_s = time.perf_counter() - t0, time.process_time() - c0
    s = result.summary()
    t0 = time.perf_counter()
    base = pruned_baseline(splits, depth=result.best.depth,
                           nonzero=result.compact.nonzero_weights, activation=act,
                           negative_slope=cfg.negative_slope, width=cfg.max_width,
                           steps=args.baseline_steps, seed=seed)
    base["seconds"] = time.perf_counter() - t0
    return {"activation": act, "variant": variant, "seed": seed, "autoencoder": source,
            "autoencoder_steps": info["step"], "search": search.model_dump(mode="json"),
            "target": target, "test_mse": s["test_mse"],
            "mean_predictor_test_mse": s["mean_predictor_test_mse"],
            "nonzero_weights": s["nonzero_weights"], "active_neurons": s["active_neurons"],
            "hidden_layers": s["hidden_layers"], "widths": s["widths"],
            "threshold": s["threshold"], "depth": s["depth"],
            "per_depth": [{k: r[k] for k in ("depth", "test_mse", "val_mse", "initial_mse",
                                             "threshold", "nonzero_weights", "active_neurons",
                                             "restart", "restart_val_mse")}
                          for r in s["per_depth"]],
            "baseline": base, "search_wall_s": search_s[0], "search_cpu_s": search_s[1],
            "load_average": os.getloadavg()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--activations", default="sigmoid,leaky_relu")
    p.add_argument("--variants", default="default")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--autoencoders", default="", help="act=DIR,... (default: the shipped ones)")
    p.add_argument("--steps", type=int, default=1000, help="search steps per depth")
    p.add_argument("--baseline-steps", type=int, default=2000)
    p.add_argument("--target-depth", type=int, default=2)
    p.add_argument("--samples", type=int, default=100_000)
    p.add_argument("--work", default="/tmp/archopt-latent-search")
    p.add_argument("--out", default="benchmarks/results/latent_search.json")
    args = p.parse_args()
    torch.set_num_threads(int(os.environ.get("ARCHOPT_THREADS", "1")))
    sources = dict(s.split("=", 1) for s in args.autoencoders.split(",") if s)
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    for variant in args.variants.split(","):
        for seed in [int(s) for s in args.seeds.split(",")]:
            for act in args.activations.split(","):
                f = work / f"{act}_{variant}_{seed}.json"
                if f.exists():
                    continue
                row = run(act, variant, seed, args, sources)
                atomic_write_json(f, row)
                b = row["baseline"]
                print(f"{act} {variant} seed {seed}: SWAT {row['test_mse']:.4g} "
                      f"({row['nonzero_weights']} w, {row['active_neurons']} n, depth "
                      f"{row['depth']}), baseline {b['test_mse']:.4g} ({b['nonzero_weights']} w), "
                      f"mean {row['mean_predictor_test_mse']:.4g}, {row['search_cpu_s']:.0f} "
                      "CPU-s", flush=True)
    rows = [read_json(f) for f in sorted(work.glob("*.json"))]
    atomic_write_json(args.out, {
        "benchmark": "latent_search (SWAT-NN search vs predict-the-mean vs prune+fine-tune)",
        "environment": environment_info(), "threads": torch.get_num_threads(),
        "settings": {k: v for k, v in vars(args).items() if k not in ("work", "out")},
        "variants": VARIANTS,
        "units": {"*_mse": "target units squared", "search_cpu_s": "process CPU seconds"},
        "results": rows})
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
