"""SWAT-NN CPU preset ablation: which departures from the paper make the autoencoder learn on a CPU.

Each variant is the CPU preset (``AutoencoderConfig.cpu``, ``TrainConfig.cpu``) with some fields
changed, trained for the same number of steps (cosine over those steps) on one thread, then
validated on the fixed validation batches with decoder coverage (``archopt.latent.validation``).
Every variant is judged by the same yardstick: MdPE (ours and the authors'), beside the constant
and affine references, the fraction of MLPs beating the constant, and coverage.

Resumable: each variant trains in ``--work/<activation>_<variant>`` (a rerun resumes it) and its
result is written to ``--work/result_<activation>_<variant>.json`` when done (skipped on rerun);
``--out`` collects every result file found.

    python benchmarks/latent_preset.py --activation sigmoid \
        --variants preset,no_norm,noise --steps 16000
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

import torch

from archopt.latent import AutoencoderConfig, TrainConfig, train_autoencoder
from archopt.runs import atomic_write_json, environment_info, read_json

#: Variants: changes to the CPU preset's autoencoder config (``ae``) and schedule (``train``).
VARIANTS: dict[str, dict[str, dict[str, Any]]] = {
    "preset": {},
    "no_norm": {"ae": {"latent_norm": False}},
    "noise": {"ae": {"latent_noise": 0.1}},
    "no_recon": {"ae": {"recon_weight": 0.0}},
    "narrow": {"ae": {"mlp_width": 256}},
    "batch64": {"train": {"batch_size": 64}},
    "lr3e-3": {"train": {"lr": 3e-3}},
    "recon_x3": {"ae": {"recon_weight_factor": 3.0}},
    "mse_loss": {"ae": {"loss": "mse"}},
}

_FIGURES = ("val_mdpe", "val_mdpe_authors", "constant_mdpe", "affine_mdpe", "beats_constant",
            "coverage_mdpe", "coverage_mdpe_authors", "coverage_beats_constant")


def _config(act: str, changes: dict[str, Any]) -> AutoencoderConfig:
    changes = dict(changes)
    factor = changes.pop("recon_weight_factor", None)
    base = AutoencoderConfig.cpu(act)
    if factor is not None:
        changes["recon_weight"] = base.recon_weight * factor
    return AutoencoderConfig.cpu(act, **changes)


def run(act: str, name: str, args: argparse.Namespace) -> dict[str, Any]:
    spec = VARIANTS[name]
    config = _config(act, spec.get("ae", {}))
    train = TrainConfig.cpu(**{"steps": args.steps, "val_every": args.steps,
                               "checkpoint_every": max(args.steps // 4, 1), "coverage_every": 0,
                               "coverage_mlps": args.coverage_mlps, **spec.get("train", {})})
    summary = train_autoencoder(Path(args.work) / f"{act}_{name}", config, train, device="cpu")
    return {"activation": act, "variant": name, "changes": spec, "steps": summary["steps"],
            "cpu_minutes": summary["cpu_minutes"], "minutes": summary["minutes"],
            "params": summary["params"], **{k: summary.get(k) for k in _FIGURES},
            "by_depth": summary["by_depth"], "load_average": os.getloadavg()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--activation", default="sigmoid")
    p.add_argument("--variants", default="preset")
    p.add_argument("--steps", type=int, default=16_000)
    p.add_argument("--coverage-mlps", type=int, default=128)
    p.add_argument("--work", default="/tmp/archopt-latent-preset")
    p.add_argument("--out", default="benchmarks/results/latent_preset.json")
    args = p.parse_args()
    torch.set_num_threads(int(os.environ.get("ARCHOPT_THREADS", "1")))
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    for name in [v.strip() for v in args.variants.split(",") if v.strip()]:
        if name not in VARIANTS:
            raise SystemExit(f"unknown variant {name!r} (known: {', '.join(VARIANTS)})")
        f = work / f"result_{args.activation}_{name}_{args.steps}.json"
        if f.exists():
            continue
        row = {**run(args.activation, name, args), "threads": torch.get_num_threads()}
        atomic_write_json(f, row)
        print(f"{args.activation} {name}: " + ", ".join(
            f"{k} {row[k]:.3g}" for k in ("cpu_minutes", *_FIGURES) if row[k] is not None),
            flush=True)
    rows = [read_json(f) for f in sorted(work.glob("result_*.json"))]
    atomic_write_json(args.out, {
        "benchmark": "latent_preset (SWAT-NN CPU preset ablation)",
        "environment": environment_info(),
        "units": {"*_mdpe": "percent (ours: median over MLPs of the relative L1 error; "
                            "_authors: mean over MLPs of the min over decoders of the median "
                            "pointwise relative error)",
                  "beats_constant": "fraction of validation MLPs", "cpu_minutes": "process CPU"},
        "results": rows})
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
