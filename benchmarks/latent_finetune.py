"""Fine-tune a shipped SWAT-NN autoencoder, with or without the contrastive term (ours), and
measure what changed: validation (MdPE beside the constant reference) and latent geometry.

For each ``--variants`` entry ``label=weight`` (``weight``: ``contrastive_weight``; 0 = the
preset's own losses, a control for "more training"), the shipped autoencoder of ``--activation``
is trained ``--steps`` more batches into ``--runs/<activation>-<label>`` (Adam ``--lr``, 100
warm-up steps, cosine to 0; resumable: a finished folder is reused), then validated on the fixed
validation batches (no coverage) and measured with :func:`archopt.latent.geometry.geometry` on
the same pair set as ``benchmarks/latent_geometry.py`` (its defaults). Rows (one per activation
and label, the shipped model as ``shipped``) are merged into ``--out``.

    python benchmarks/latent_finetune.py --activation leaky_relu --variants ctl=0,ours=1
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

import torch

from archopt.latent import AutoencoderConfig, TrainConfig, load_autoencoder, train_autoencoder
from archopt.latent.geometry import geometry, make_pairs, outputs
from archopt.latent.pretrained import load_pretrained
from archopt.latent.validation import evaluate
from archopt.runs import atomic_write_json, environment_info, read_json

_VAL = ("val_mdpe", "constant_mdpe", "affine_mdpe", "beats_constant")


def measure(model: Any, pairs: Any, x: torch.Tensor, y: torch.Tensor) -> dict[str, Any]:
    v = evaluate(model, batches=8, batch_size=32)
    return {**{k: v[k] for k in _VAL}, "geometry": geometry(model, pairs, x, y)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--activation", default="leaky_relu")
    p.add_argument("--variants", default="ctl=0,ours=1", help="label=contrastive_weight,...")
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--lr", type=float, default=3e-4)
    p.add_argument("--temperature", type=float, default=0.1)
    p.add_argument("--runs", default="runs/latent_finetune")
    p.add_argument("--out", default="benchmarks/results/latent_finetune.json")
    args = p.parse_args()
    torch.set_num_threads(int(os.environ.get("ARCHOPT_THREADS", "1")))
    act = args.activation
    shipped, info = load_pretrained(act)
    cfg = shipped.config
    pairs = make_pairs(cfg.layout, act, cfg.negative_slope, bases=64, unrelated=8, seed=0,
                       widths=cfg.widths, weight_range=cfg.weight_range)
    x = torch.rand(1000, cfg.n_in, generator=torch.Generator().manual_seed(12345)) * 2 - 1
    y = outputs(pairs.nets, x, cfg.layout, act, cfg.negative_slope)
    rows = [{"activation": act, "model": "shipped", "steps": info["step"],
             **measure(shipped, pairs, x, y)}]
    for item in args.variants.split(","):
        label, weight = item.split("=")
        config = AutoencoderConfig(**{**info["config"], "contrastive_weight": float(weight),
                                      "contrastive_temperature": args.temperature})
        train = TrainConfig.cpu(steps=args.steps, lr=args.lr, warmup_steps=100, val_every=1000,
                                checkpoint_every=500, coverage_mlps=0, seed=1)
        folder = Path(args.runs) / f"{act}-{label}"
        summary = train_autoencoder(folder, config, train, device="cpu",
                                    init=shipped.state_dict(), init_source=f"shipped:{act}")
        model, _ = load_autoencoder(folder)
        rows.append({"activation": act, "model": label, "contrastive_weight": float(weight),
                     "steps": info["step"] + summary["steps"], "finetune_steps": summary["steps"],
                     "finetune_cpu_minutes": summary["cpu_minutes"],
                     **measure(model, pairs, x, y)})
    for r in rows:
        g = r["geometry"]
        print(f"{act} {r['model']:8s} MdPE {r['val_mdpe']:.1f} (const {r['constant_mdpe']:.1f})"
              f" spearman {g['spearman']['all']:.3f}/{g['spearman']['unrelated']:.3f}/"
              f"{g['spearman']['perturbed']:.3f} closer {g['closer']['equivalent']:.3f}",
              flush=True)
    out = Path(args.out)
    old = read_json(out)["results"] if out.exists() else []
    keys = {(r["activation"], r["model"]) for r in rows}
    merged = [r for r in old if (r["activation"], r["model"]) not in keys] + rows
    atomic_write_json(out, {
        "benchmark": "latent_finetune (shipped autoencoder fine-tuned with / without the "
                     "contrastive term on equivalent pairs (ours); validation and geometry)",
        "environment": environment_info(), "threads": torch.get_num_threads(),
        "settings": {k: v for k, v in vars(args).items() if k not in ("out", "runs")},
        "units": {"*_mdpe": "percent (ours)", "finetune_cpu_minutes": "process CPU, one thread",
                  "geometry": "as latent_geometry.json"},
        "results": sorted(merged, key=lambda r: (r["activation"], r["model"]))})
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
