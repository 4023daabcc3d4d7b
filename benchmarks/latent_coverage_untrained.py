"""Is decoder coverage a sign of learning? Coverage of the shipped autoencoder vs an untrained one.

Decoder coverage (:func:`archopt.latent.validation.coverage`: decoders frozen, 400 Adam steps on z
per validation MLP and decoder) is computed for the shipped autoencoder of each activation and for
the same architecture at its seed-0 initialisation, on the same fixed validation MLPs
(``--batches`` x 32). If the untrained decoders cover the family as well, coverage does not
measure what training learned. Rows are merged into ``--out`` by (activation, model), so one
activation can be re-run alone (e.g. after its shipped autoencoder changed).

    python benchmarks/latent_coverage_untrained.py --activations sigmoid --batches 4
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import torch

from archopt.latent import AutoencoderConfig, MultiScaleAutoencoder
from archopt.latent.pretrained import load_pretrained
from archopt.latent.validation import evaluate
from archopt.runs import atomic_write_json, environment_info, read_json

_KEYS = ("val_mdpe", "constant_mdpe", "affine_mdpe", "beats_constant", "coverage_mdpe",
         "coverage_mdpe_authors", "coverage_beats_constant", "coverage_mlps")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--activations", default="sigmoid,leaky_relu")
    p.add_argument("--batches", type=int, default=4)
    p.add_argument("--out", default="benchmarks/results/latent_coverage_untrained.json")
    args = p.parse_args()
    torch.set_num_threads(int(os.environ.get("ARCHOPT_THREADS", "1")))
    rows = []
    for act in args.activations.split(","):
        shipped, info = load_pretrained(act)
        torch.manual_seed(0)
        init = MultiScaleAutoencoder(AutoencoderConfig(**info["config"])).eval()
        for name, model, steps in (("untrained", init, 0), ("shipped", shipped, info["step"])):
            c0 = time.process_time()
            v = evaluate(model, batches=args.batches, batch_size=32,
                         coverage_mlps=32 * args.batches)
            row = {"activation": act, "model": name, "steps": steps,
                   **{k: v.get(k) for k in _KEYS}, "cpu_s": time.process_time() - c0,
                   "created": environment_info()["created"]}
            rows.append(row)
            print(act, name, {k: row[k] for k in _KEYS}, flush=True)
    out = Path(args.out)
    keys = {(r["activation"], r["model"]) for r in rows}
    old = read_json(out)["results"] if out.exists() else []
    rows = [r for r in old if (r["activation"], r["model"]) not in keys] + rows
    atomic_write_json(out, {
        "benchmark": "latent_coverage_untrained (decoder coverage: shipped vs untrained)",
        "environment": environment_info(), "threads": torch.get_num_threads(),
        "load_average": os.getloadavg(), "settings": vars(args),
        "units": {"*_mdpe": "percent (ours unless _authors)", "*beats_constant": "fraction"},
        "results": rows})
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
