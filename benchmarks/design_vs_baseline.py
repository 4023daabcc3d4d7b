"""DeepMAD design vs a hand-designed CNN at equal MACs on Fashion-MNIST (issue 3, "Must show").

The hand-designed baseline is ResNet-20 in the CIFAR layout (He et al. 2016: base width 16,
3 basic blocks per stage, stride-1 3x3 stem) built for 28x28x1 inputs. A ``resnet``-space
network is designed at the baseline's MACs (params free unless ``--params-factor``; rho_0 = 0.3,
``--candidates`` structures, seed 0), then both are trained with ONE recipe (SGD + Nesterov,
lr 0.05, cosine, 1 warm-up epoch, weight decay 5e-4, batch 128, random crop (pad 4) + flip) and
scored on the test set. ``--schedule cpu`` (default) trains on a seeded subset for a few
epochs; ``--schedule gpu`` on all 60,000 images for 30 epochs; ``--train/--test/--epochs``
override. Training folders under ``--runs`` resume after an interruption; the JSON is rewritten
after every model.

    python benchmarks/design_vs_baseline.py [--schedule cpu|gpu] [--data-dir ../shared/data]
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path
from typing import Any

from archopt.data import load_dataset
from archopt.design import Budgets, DesignOptions, design, score_spec
from archopt.pipeline.baseline import cifar_resnet
from archopt.runs import atomic_write_json, environment_info
from archopt.training import TrainConfig, train

SCHEDULES = {"cpu": dict(train=20000, test=10000, epochs=5),
             "gpu": dict(train=None, test=None, epochs=30)}
RECIPE = dict(optimizer="sgd", lr=0.05, nesterov=True, momentum=0.9, weight_decay=5e-4,
              schedule="cosine", warmup_epochs=1, batch_size=128, augment="crop-flip", seed=0)


def _load() -> list[float]:
    return [round(v, 2) for v in os.getloadavg()]


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--schedule", choices=sorted(SCHEDULES), default="cpu")
    ap.add_argument("--train", type=int, default=None, help="training images (seeded subset)")
    ap.add_argument("--test", type=int, default=None, help="test images (seeded subset)")
    ap.add_argument("--epochs", type=int, default=None)
    ap.add_argument("--candidates", type=int, default=100_000)
    ap.add_argument("--rho", type=float, default=0.3)
    ap.add_argument("--params-factor", type=float, default=None,
                    help="also cap params at this multiple of the baseline's (default: MACs only)")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--data-dir", type=Path, default=None,
                    help="folder with fashion-mnist/ (default: $ARCHOPT_DATA_DIR)")
    ap.add_argument("--runs", type=Path, default=Path("runs") / "design_vs_baseline")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results"
                    / "design_vs_baseline.json")
    args = ap.parse_args(argv)
    preset = SCHEDULES[args.schedule]
    n_train = args.train if args.train is not None else preset["train"]
    n_test = args.test if args.test is not None else preset["test"]
    epochs = args.epochs or preset["epochs"]

    data = load_dataset("fashion-mnist", args.data_dir)
    if n_train or n_test:
        data = data.subset(n_train, n_test, seed=0)
    baseline = cifar_resnet(16, 3, in_channels=1, resolution=28, num_classes=10)
    budgets = Budgets(macs=baseline.macs(), params=args.params_factor * baseline.params()
                      if args.params_factor else None, rho=args.rho)
    t0 = time.perf_counter()
    found = design("resnet", budgets, resolution=28, in_channels=1, num_classes=10,
                   options=DesignOptions(candidates=args.candidates, seed=0))
    design_seconds = time.perf_counter() - t0
    designed = found.spec

    recipe = TrainConfig(**RECIPE, epochs=epochs, device=args.device, threads=args.threads)
    report: dict[str, Any] = {
        "benchmark": "design_vs_baseline", "dataset": "fashion-mnist", "schedule": args.schedule,
        "train_images": len(data.train_y), "test_images": len(data.test_y),
        "recipe": recipe.model_dump(mode="json"), "budgets": budgets.as_dict(),
        "candidates": args.candidates, "design_seconds": design_seconds,
        "environment": environment_info(), "load_average_start": _load(), "models": []}
    for key, spec in (("baseline", baseline), ("designed", designed)):
        t0 = time.perf_counter()
        res = train(spec, data, recipe, out=args.runs / key, resume=True, progress=True)
        scores = score_spec(spec)
        report["models"].append({
            "role": key, "name": spec.name, "spec": spec.to_dict(), "params": spec.params(),
            "macs": spec.macs(), "layers": spec.layers(), "entropy": scores.entropy,
            "effectiveness": scores.effectiveness,
            "test_accuracy": res.summary["test_accuracy"],
            "test_macro_f1": res.summary["test_macro_f1"],
            "train_seconds": res.summary.get("seconds"),
            "wall_seconds_this_invocation": time.perf_counter() - t0})
        report["load_average_end"] = _load()
        atomic_write_json(args.out, report)
    for m in report["models"]:
        print(f"{m['role']:9s} {m['name']:32s} acc {100 * m['test_accuracy']:.2f}%  "
              f"F1 {100 * m['test_macro_f1']:.2f}%  params {m['params']:,}  MACs {m['macs']:,}")
    return report


if __name__ == "__main__":
    main()
