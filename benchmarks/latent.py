"""SWAT-NN benchmark: autoencoder training + latent search vs the pruned-Adam baseline.

For each activation (sigmoid, leaky_relu, linear):

1. train a multi-scale autoencoder (``--preset``, ``--ae-steps`` batches, optionally capped by
   ``--ae-minutes``; resumable: a rerun continues the folders under ``--work``);
2. run the latent search on the paper's synthetic target (a seeded random sparse MLP of width 5,
   100k samples split 50k / 30k / 20k);
3. train the baseline (same max size: ``depth`` x 7 hidden units, full-batch Adam) and prune it by
   magnitude to the search's non-zero weight count.

Writes one JSON per activation under ``--work`` and the combined table to ``--out`` (atomic; with
several processes, e.g. one per activation, the last to finish writes the full table). Timings
are wall-clock on whatever else the machine runs; the JSON records the load average.

    python benchmarks/latent.py                              # all activations, CPU scale
    python benchmarks/latent.py --activations sigmoid --preset paper --ae-steps 150001 \
        --device cuda --out benchmarks/results/latent_gpu.json
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path
from typing import Any

import torch

from archopt.latent import (
    AutoencoderConfig,
    SearchConfig,
    TrainConfig,
    latent_search,
    load_autoencoder,
    pruned_baseline,
    synthetic_target,
    train_autoencoder,
)
from archopt.latent.autoencoder import PRESETS
from archopt.progress import progress
from archopt.runs import atomic_write_json, environment_info, read_json


def _load() -> list[float] | None:
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:  # pragma: no cover
        return None


def run_activation(act: str, args: argparse.Namespace) -> dict[str, Any]:
    work = Path(args.work)
    config: AutoencoderConfig = PRESETS[args.preset](act)
    train = TrainConfig(steps=args.ae_steps, lr=args.lr, seed=args.seed, val_every=args.val_every,
                        checkpoint_every=args.val_every, val_batches=args.val_batches)
    load0 = _load()
    with progress(args.ae_steps, f"autoencoder {act}", every=60) as bar:
        ae = train_autoencoder(work / f"ae_{act}", config, train, device=args.device,
                               max_minutes=args.ae_minutes, progress=bar)
    model, _ = load_autoencoder(work / f"ae_{act}", args.device)
    data, target = synthetic_target(act, config.negative_slope, n_in=config.n_in,
                                    depth=args.target_depth, samples=args.samples, seed=0)
    splits = data.split(seed=args.seed)
    search = SearchConfig(steps=args.search_steps, seed=args.seed)
    t0 = time.perf_counter()
    with progress(args.search_steps * len(model.depths), f"search {act}", every=60) as bar:
        result = latent_search(model, splits, search, out=work / f"search_{act}", progress=bar)
    search_min = (time.perf_counter() - t0) / 60
    t0 = time.perf_counter()
    base = pruned_baseline(splits, depth=result.best.depth,
                           nonzero=result.compact.nonzero_weights, activation=act,
                           negative_slope=config.negative_slope, width=config.max_width,
                           steps=args.baseline_steps, seed=args.seed,
                           device=next(model.parameters()).device)
    base["minutes"] = (time.perf_counter() - t0) / 60
    y_test = torch.as_tensor(splits.y_test, dtype=torch.float64)
    return {
        "activation": act,
        "autoencoder": {k: ae[k] for k in ("steps", "minutes", "final_loss", "val_mdpe",
                                           "val_mdpe_by_depth", "decoder_share", "params")},
        "target": target,
        "reference": {"predict_mean_test_mse": float(((y_test - y_test.mean()) ** 2).mean()),
                      "predict_zero_test_mse": float((y_test ** 2).mean())},
        "swat": {**result.summary(), "minutes": search_min},
        "baseline": base,
        "load_average": {"start": load0, "end": _load()},
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--activations", default="sigmoid,leaky_relu,linear")
    p.add_argument("--preset", default="small", choices=sorted(PRESETS))
    p.add_argument("--ae-steps", type=int, default=3000)
    p.add_argument("--ae-minutes", type=float, default=None,
                   help="cap on autoencoder training wall time per activation")
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--val-every", type=int, default=500)
    p.add_argument("--val-batches", type=int, default=8)
    p.add_argument("--search-steps", type=int, default=1000)
    p.add_argument("--baseline-steps", type=int, default=2000)
    p.add_argument("--samples", type=int, default=100_000)
    p.add_argument("--target-depth", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--work", default="/tmp/archopt-bench-latent",
                   help="result folders (autoencoders, searches); reruns resume them")
    p.add_argument("--out", default="benchmarks/results/latent_cpu.json")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    settings = {k: v for k, v in vars(args).items() if k not in ("out", "work")}
    for act in [a.strip() for a in args.activations.split(",") if a.strip()]:
        row = run_activation(act, args)
        atomic_write_json(work / f"result_{act}.json", {"settings": settings, **row})
        print(f"{act}: AE {row['autoencoder']['steps']} steps "
              f"{row['autoencoder']['minutes']:.1f} min MdPE {row['autoencoder']['val_mdpe']:.1f}%"
              f" | SWAT test MSE {row['swat']['test_mse']:.4g} neurons "
              f"{row['swat']['active_neurons']} weights {row['swat']['nonzero_weights']}"
              f" | baseline {row['baseline']['test_mse']:.4g} "
              f"(dense {row['baseline']['dense_test_mse']:.4g})", flush=True)
    rows = [read_json(f) for f in sorted(work.glob("result_*.json"))]
    atomic_write_json(args.out, {
        "benchmark": "latent (SWAT-NN, arXiv 2410.08339)", "environment": environment_info(),
        "units": {"mse": "target units squared", "minutes": "wall clock",
                  "val_mdpe": "percent, median over validation MLPs of the best decoder's "
                              "relative L1 error on the 10^3 grid"},
        "results": rows,
        "table": [{"activation": r["activation"],
                   "ae_steps": r["autoencoder"]["steps"],
                   "ae_minutes": r["autoencoder"]["minutes"],
                   "ae_val_mdpe": r["autoencoder"]["val_mdpe"],
                   "swat_test_mse": r["swat"]["test_mse"],
                   "swat_hidden_layers": r["swat"]["hidden_layers"],
                   "swat_active_neurons": r["swat"]["active_neurons"],
                   "swat_nonzero_weights": r["swat"]["nonzero_weights"],
                   "baseline_test_mse": r["baseline"]["test_mse"],
                   "baseline_dense_test_mse": r["baseline"]["dense_test_mse"],
                   "baseline_active_neurons": r["baseline"]["active_neurons"],
                   "baseline_nonzero_weights": r["baseline"]["nonzero_weights"],
                   "predict_mean_test_mse": r["reference"]["predict_mean_test_mse"]}
                  for r in rows],
    })
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
