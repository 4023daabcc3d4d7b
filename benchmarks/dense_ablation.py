"""Dense Optimizer ablation on real data (issue 4, "Must show").

Designs for beta in {0, 0.001, 0.1, 10} (branch-and-bound, proven optimal on the default grid:
g in 8..48 step 4, L in 4..40, k in {3, 5}, 3 stages, stem 2 g_1) at the params budget of
DenseNet-BC (L=100, k=12) adapted to Fashion-MNIST (28x28x1, 10 classes: 768,730 params),
rho_0 = 0.5; each design and the DenseNet-BC baseline trained with ONE recipe (SGD + Nesterov,
lr 0.1, cosine, batch 64, weight decay 5e-4, no augmentation, seed 0) and scored on the test set.
Designs that coincide for several betas are trained once.

Schedules: ``--schedule cpu`` (default; a subset of the training set and a few epochs, sized for
a laptop CPU), ``--schedule gpu`` (the full 60,000 / 10,000 images, 30 epochs). Any of
``--train``, ``--test``, ``--epochs`` overrides the preset. Results (JSON) are rewritten after
every model, so an interrupted run keeps what it finished; rerunning resumes the training runs
from their checkpoints.

    python benchmarks/dense_ablation.py [--schedule cpu|gpu] [--data-dir ../shared/data]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

from archopt.data import load_dataset
from archopt.design import Budgets, design, score_spec
from archopt.runs import atomic_write_json, environment_info
from archopt.spaces import load_spec
from archopt.training import TrainConfig, train

SCHEDULES = {"cpu": dict(train=2000, test=2000, epochs=2),
             "gpu": dict(train=None, test=None, epochs=30)}
BETAS = (0.0, 0.001, 0.1, 10.0)


def _arch(spec: Any) -> dict[str, Any]:
    return {"stem": spec.stem.out, "growth": [s.growth for s in spec.stages],
            "layers": [s.layers for s in spec.stages], "kernels": [s.k for s in spec.stages]}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--schedule", choices=sorted(SCHEDULES), default="cpu")
    ap.add_argument("--train", type=int, default=None, help="training images (subset)")
    ap.add_argument("--test", type=int, default=None, help="test images (subset)")
    ap.add_argument("--epochs", type=int, default=None)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--rho", type=float, default=0.5)
    ap.add_argument("--betas", type=float, nargs="+", default=list(BETAS))
    ap.add_argument("--device", default="auto")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--data-dir", type=Path, default=None,
                    help="folder with fashion-mnist/ (default: $ARCHOPT_DATA_DIR)")
    ap.add_argument("--runs", type=Path, default=Path("runs") / "dense_ablation",
                    help="training result folders go here")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results"
                    / "dense_ablation.json")
    args = ap.parse_args(argv)
    sched = dict(SCHEDULES[args.schedule])
    for key in ("train", "test", "epochs"):
        if getattr(args, key) is not None:
            sched[key] = getattr(args, key)

    data = load_dataset("fashion-mnist", args.data_dir)
    data = data.subset(train=sched["train"], test=sched["test"], seed=0)
    baseline = load_spec("densenet-bc-100-12").with_io(in_channels=1, resolution=28,
                                                       num_classes=10)
    budgets = Budgets(params=float(baseline.params()), rho=args.rho)
    recipe = TrainConfig(epochs=sched["epochs"], batch_size=args.batch_size, optimizer="sgd",
                         lr=0.1, schedule="cosine", augment="none", seed=0, device=args.device,
                         latency=False, threads=args.threads, eval_every=sched["epochs"])
    report: dict[str, Any] = {
        "benchmark": "dense_ablation", "dataset": "fashion-mnist",
        "train_images": len(data.train_y), "test_images": len(data.test_y),
        "schedule": args.schedule, "recipe": recipe.model_dump(mode="json"),
        "budgets": budgets.as_dict(), "environment": environment_info(), "models": [],
    }

    models: dict[str, dict[str, Any]] = {
        "baseline": {"name": "DenseNet-BC (L=100, k=12)", "folder": "baseline", "betas": [],
                     "spec": baseline, "arch": _arch(baseline)}}  # trained first: the reference
    for beta in args.betas:
        r = design("densenet", budgets, solver="bnb", resolution=28, in_channels=1,
                   num_classes=10, beta=beta)
        key = str(_arch(r.spec))
        entry = models.setdefault(key, {"name": f"dense-opt beta={beta:g}",
                                        "folder": f"dense-opt-beta{beta:g}", "betas": [],
                                        "spec": r.spec, "arch": _arch(r.spec),
                                        "bnb_seconds": r.seconds,
                                        "bnb_nodes": r.stats["nodes_explored"]})
        entry["betas"].append(beta)
        entry.setdefault("objective_by_beta", {})[str(beta)] = r.metrics["objective"]
        print(f"beta={beta:g}: design {entry['arch']} ({r.metrics['params']:,} params, "
              f"{r.metrics['macs']:,} MACs) in {r.seconds:.2f} s", file=sys.stderr, flush=True)

    for entry in models.values():
        spec = entry["spec"]
        t0 = time.perf_counter()
        res = train(spec, data, recipe, out=args.runs / entry["folder"], resume=True,
                    progress=False)
        s = res.summary
        row = {"name": entry["name"], "betas": entry["betas"], "arch": entry["arch"],
               "params": spec.params(), "macs": spec.macs(),
               "entropy": score_spec(spec).entropy,
               "effectiveness": score_spec(spec).effectiveness,
               "test_accuracy": s["test_accuracy"], "test_macro_f1": s["test_macro_f1"],
               "train_seconds": time.perf_counter() - t0,
               **{k: entry[k] for k in ("bnb_seconds", "bnb_nodes", "objective_by_beta")
                  if k in entry}}
        report["models"].append(row)
        atomic_write_json(args.out, report)
        print(f"{row['name']}: test accuracy {row['test_accuracy']:.4f}, macro F1 "
              f"{row['test_macro_f1']:.4f}, {row['params']:,} params, "
              f"{row['train_seconds']:.0f} s", file=sys.stderr, flush=True)
    print(f"wrote {args.out}", file=sys.stderr)
    return report


if __name__ == "__main__":
    os.environ.setdefault("ARCHOPT_DATA_DIR", str(Path(__file__).resolve().parents[2]
                                                  / "shared" / "data"))
    main()
