"""Does the latent space place functionally similar MLPs close together? Trained vs untrained.

For each activation, on one fixed pair set (:func:`archopt.latent.geometry.make_pairs`: per depth
``--bases`` family MLPs with their split / permuted / dead-unit variants (and, for leaky-ReLU,
depth-1 MLPs with an exactly equivalent deeper one), ``--unrelated`` unrelated partners each, and
perturbed copies), the figures of :func:`archopt.latent.geometry.geometry` for

- ``shipped``: the shipped autoencoder of that activation;
- ``untrained:<s>``: the same architecture at its seed-``s`` initialisation (``--init-seeds``);
- any ``--models label=act:DIR`` (a trained result folder, e.g. a fine-tuned autoencoder).

Rows are merged into ``--out`` by (activation, model): rows of models not given this time are
kept (so a fine-tuned model's row survives a rerun without its folder).

    python benchmarks/latent_geometry.py
    python benchmarks/latent_geometry.py --models "ours=sigmoid:runs/ae-ft" --activations sigmoid
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import torch

from archopt.latent import AutoencoderConfig, MultiScaleAutoencoder, load_autoencoder
from archopt.latent.geometry import geometry as measure
from archopt.latent.geometry import make_pairs, outputs
from archopt.latent.pretrained import load_pretrained
from archopt.runs import atomic_write_json, environment_info, read_json


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--activations", default="sigmoid,leaky_relu")
    p.add_argument("--init-seeds", default="0,1,2")
    p.add_argument("--models", default="", help="label=act:DIR,... extra autoencoders")
    p.add_argument("--bases", type=int, default=64, help="anchor MLPs per depth")
    p.add_argument("--unrelated", type=int, default=8, help="unrelated partners per anchor")
    p.add_argument("--points", type=int, default=1000, help="inputs of the output distance")
    p.add_argument("--seed", type=int, default=0, help="pair-set seed")
    p.add_argument("--out", default="benchmarks/results/latent_geometry.json")
    args = p.parse_args()
    torch.set_num_threads(int(os.environ.get("ARCHOPT_THREADS", "1")))
    extra: dict[str, list[tuple[str, str]]] = {}
    for item in filter(None, args.models.split(",")):
        label, spec = item.split("=", 1)
        act, folder = spec.split(":", 1)
        extra.setdefault(act, []).append((label, folder))
    out = Path(args.out)
    old = read_json(out)["results"] if out.exists() else []
    rows = []
    for act in args.activations.split(","):
        shipped, info = load_pretrained(act)
        cfg = shipped.config
        c0 = time.process_time()
        pairs = make_pairs(cfg.layout, act, cfg.negative_slope, bases=args.bases,
                           unrelated=args.unrelated, seed=args.seed, widths=cfg.widths,
                           weight_range=cfg.weight_range)
        x = torch.rand(args.points, cfg.n_in,
                       generator=torch.Generator().manual_seed(args.seed + 12345)) * 2 - 1
        y = outputs(pairs.nets, x, cfg.layout, act, cfg.negative_slope)
        models: list[tuple[str, MultiScaleAutoencoder, int, str]] = [
            ("shipped", shipped, info["step"], info["pretrained"]["sha256"])]
        for s in (int(v) for v in args.init_seeds.split(",") if v):
            torch.manual_seed(s)
            init = MultiScaleAutoencoder(AutoencoderConfig(**info["config"])).eval()
            models.append((f"untrained:{s}", init, 0, f"init seed {s}"))
        for label, folder in extra.get(act, []):
            m, minfo = load_autoencoder(folder)
            models.append((label, m, minfo["step"], Path(folder).name))
        for label, model, steps, source in models:
            g = measure(model, pairs, x, y)
            rows.append({"activation": act, "model": label, "steps": steps, "source": source,
                         **g})
            print(f"{act:10s} {label:14s} spearman all {g['spearman']['all']:.3f} unrelated "
                  f"{g['spearman']['unrelated']:.3f} perturbed {g['spearman']['perturbed']:.3f}"
                  f" | closer {g['closer']['equivalent']:.3f} "
                  + " ".join(f"{k} {v:.3f}" for k, v in g["closer"].items()
                             if k != "equivalent"), flush=True)
        print(f"{act}: {time.process_time() - c0:.1f} CPU-s", flush=True)
    keys = {(r["activation"], r["model"]) for r in rows}
    rows = [r for r in old if (r["activation"], r["model"]) not in keys] + rows
    rows.sort(key=lambda r: (r["activation"], r["model"]))
    atomic_write_json(out, {
        "benchmark": "latent_geometry (is latent distance functional distance? trained vs "
                     "untrained autoencoders on pairs of known functional relation)",
        "environment": environment_info(), "threads": torch.get_num_threads(),
        "settings": {k: v for k, v in vars(args).items() if k not in ("out", "models")},
        "definitions": {
            "spearman": "Spearman rank correlation of latent L2 distance and output RMS "
                        "distance (on `points` U(-1,1)^3 inputs) over all pairs / unrelated / "
                        "perturbed pairs",
            "closer": "fraction of (equivalent pair, unrelated pair of the same anchor and "
                      "partner depth) comparisons where the equivalent partner is closer in "
                      "latent space (0.5 = chance)",
            "ratio": "median latent distance of equivalent pairs / median of the unrelated "
                     "pairs of the same anchors",
            "deeper": "leaky-ReLU only: no exact bias-free construction exists for sigmoid",
            "models": "shipped: the packaged autoencoder; untrained:<s>: its architecture at "
                      "init seed s; finetune_ctl / finetune_ours: shipped + `steps` more "
                      "batches without / with the contrastive term "
                      "(benchmarks/latent_finetune.py, latent_finetune.json)"},
        "results": rows})
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
