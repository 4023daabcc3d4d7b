"""Ship the SWAT-NN autoencoders: export trained CPU-preset runs into the package and record them.

For each ``--runs`` folder (a result folder of ``archopt latent train`` with the defaults, one per
activation): export it (:func:`archopt.latent.pretrained.export_autoencoder`: float16, xz) to
``src/archopt/latent/pretrained/<activation>.pt.xz``, load it back through the shipped loader
(checksum, safe loader, float32 upcast) and validate it (:func:`archopt.latent.validation.evaluate`
on the fixed validation batches, decoder coverage on ``--coverage-mlps`` of them). Writes the
package index ``pretrained.json`` (file, SHA-256, size, training steps and minutes, figures) and
``--out`` (the validation table with the training run's own figures beside the shipped copy's).

    python benchmarks/latent_ship.py --runs DIR_SIGMOID,DIR_LEAKY
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

import benchlib
from archopt.latent.pretrained import PRETRAINED_DIR, export_autoencoder, load_pretrained, sha256
from archopt.latent.validation import evaluate
from archopt.runs import atomic_write_json, environment_info, read_json

_KEEP = ("val_mdpe", "val_mdpe_authors", "constant_mdpe", "constant_mdpe_authors", "affine_mdpe",
         "affine_mdpe_authors", "beats_constant", "coverage_mdpe", "coverage_mdpe_authors",
         "coverage_beats_constant", "coverage_mlps", "val_mlps", "by_depth")


@contextmanager
def _index_update(path: Path) -> Iterator[dict[str, Any]]:
    """Read-modify-write of the package index under a lock (one ship job per activation may
    run at once)."""
    with benchlib.claim(Path(tempfile.gettempdir()) / "archopt-latent-ship", wait=True):
        index: dict[str, Any] = read_json(path) if path.exists() else {}
        yield index
        atomic_write_json(path, index)


def val_trajectory(run: Path) -> list[dict[str, Any]]:
    """The training run's periodic validation (``metrics.jsonl`` rows holding ``val_mdpe``):
    step, encoder MdPE (ours, float32) and the fraction of MLPs beating their constant."""
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()
            if '"val_mdpe"' in line]
    return [{"step": r["step"], "val_mdpe": r["val_mdpe"],
             "beats_constant": r.get("beats_constant")} for r in rows]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--runs", required=True, help="comma-separated result folders")
    p.add_argument("--coverage-mlps", type=int, default=128)
    p.add_argument("--out", default="benchmarks/results/latent_shipped_{activation}.json")
    args = p.parse_args()
    torch.set_num_threads(int(os.environ.get("ARCHOPT_THREADS", "1")))
    index_path = PRETRAINED_DIR / "pretrained.json"
    rows = []
    for run in [Path(r) for r in args.runs.split(",") if r]:
        summary = read_json(run / "summary.json")
        config = read_json(run / "config.json")
        act = summary["activation"]
        dst = export_autoencoder(run, PRETRAINED_DIR / f"{act}.pt.xz")
        entry = {"file": dst.name, "sha256": sha256(dst), "bytes": dst.stat().st_size,
                 "steps": summary["steps"], "train_minutes": summary["minutes"],
                 "train_cpu_minutes": summary["cpu_minutes"], "params": summary["params"],
                 "command": f"archopt latent train --activation {act} --out DIR",
                 "train_config": config.get("train"), "preset": config.get("preset", "cpu")}
        with _index_update(index_path) as index:
            index[act] = entry
        model, _ = load_pretrained(act)
        shipped = evaluate(model, batches=8, batch_size=32, coverage_mlps=args.coverage_mlps)
        entry["validation"] = {k: shipped.get(k) for k in _KEEP}
        with _index_update(index_path) as index:
            index[act] = entry
        rows.append({"activation": act, **{k: v for k, v in entry.items() if k != "validation"},
                     "val_trajectory": val_trajectory(run),
                     "shipped_float16": entry["validation"],
                     "trained_float32": {k: summary.get(k) for k in _KEEP}})
        print(f"{act}: {entry['bytes']} bytes, val MdPE {shipped['val_mdpe']:.2f} % (constant "
              f"{shipped['constant_mdpe']:.2f} %), coverage {shipped['coverage_mdpe']:.2f} %",
              flush=True)
    out = args.out.format(activation="_".join(r["activation"] for r in rows))
    atomic_write_json(out, {
        "benchmark": "latent_shipped (SWAT-NN autoencoders shipped in the package)",
        "environment": environment_info(), "threads": torch.get_num_threads(),
        "load_average": os.getloadavg(),
        "units": {"*_mdpe": "percent (ours: median over MLPs of the relative L1 error; "
                            "_authors: mean over MLPs of the min over decoders of the median "
                            "pointwise relative error)",
                  "beats_constant": "fraction of validation MLPs",
                  "train_minutes": "wall", "train_cpu_minutes": "process CPU, one thread"},
        "results": rows})
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
