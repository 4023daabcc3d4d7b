"""The N_bins sweep of a trained model: D' and the blocked model's metric for each bin count.

This is the cost-of-blocking curve the paper draws to pick N_bins (it sweeps 100..9,900 for
ResNet-18): few bins give a small search space but a damaged starting point; many bins keep the
model but leave DE more dimensions.

Source: arXiv 2408.07194 section 4; ../specs/hbde.md section 1, step 5.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from archopt.data.dataset import ImageDataset
from archopt.errors import ArchoptError
from archopt.refine.blocking import sweep_bins
from archopt.refine.evaluation import PopulationEvaluator
from archopt.refine.model_io import Source, load_source
from archopt.runs.sweeps import Backend, Trial, run_trials
from archopt.runtime.devices import resolve_device

__all__ = ["blocking_sweep", "refine_seeds", "refine_trial"]


def blocking_sweep(model: nn.Module | str | os.PathLike[str] | Source, data: ImageDataset,
                   bins: Iterable[int], *, metric: str = "f1", device: str = "auto",
                   train_eval_size: int | None = 10_000, eval_batch_size: int = 1000,
                   seed: int = 0) -> dict[str, Any]:
    """Price histogram blocking at each N_bins in ``bins``.

    Args:
        model: the trained model (module, checkpoint, result folder).
        data: the dataset.
        bins: N_bins values (each >= 1).
        metric: metric name (``archopt.training.metrics``).
        device: where to evaluate.
        train_eval_size: training examples scored (a seeded random subset; None = all).
        eval_batch_size: batch size of evaluation.
        seed: seed of the training subset.

    Returns: ``{"dimensions": D, "metric": name, "original": {"train", "test"}, "rows": [{"n_bins",
    "blocked_dimensions", "reduction", "train", "test"}, ...]}``.
    Raises: ArchoptError for an empty ``bins`` or a bad N_bins.
    """
    bins = [int(b) for b in bins]
    if not bins:
        raise ArchoptError("give at least one N_bins value to sweep")
    src = load_source(model)
    dev = resolve_device(device)
    ev = PopulationEvaluator(src.module, data.num_classes, metric=metric, device=dev,
                             path="sequential")
    mean = tuple(src.meta.get("mean") or data.mean)
    std = tuple(src.meta.get("std") or data.std)
    n = min(train_eval_size or len(data.train_y), len(data.train_y))
    idx = torch.randperm(len(data.train_y), generator=torch.Generator().manual_seed(seed))[:n]
    splits = {"train": (data.train_x[idx], data.train_y[idx]), "test": (data.test_x, data.test_y)}

    def score(theta: torch.Tensor) -> dict[str, float]:
        return {name: ev.metric_on(theta, x, y, mean=mean, std=std, batch_size=eval_batch_size,
                                   full=True) for name, (x, y) in splits.items()}

    theta = ev.layout.flatten(ev.module)
    return {"dimensions": int(theta.numel()), "metric": metric, "train_eval_size": n,
            "original": score(theta), "rows": sweep_bins(theta, bins, score)}


_SEED_KEYS = ("metric", "metric_before", "metric_after_blocking", "metric_after",
              "function_evaluations", "generations", "search_seconds", "seconds")


def refine_trial(*, out: Path, checkpoint: str, data: str | ImageDataset,
                 config: dict[str, Any], data_dir: str | None = None,
                 baselines: list[str] | None = None, adam_lr: float = 1e-4,
                 progress: bool = False) -> dict[str, Any]:
    """One seed of ``archopt refine --seeds`` (a :class:`~archopt.runs.sweeps.Trial` function):
    HBDE from ``checkpoint`` into ``out`` exactly as ``archopt refine --out`` writes it
    (continuing an interrupted run), then the named baselines; returns the row: the seed,
    the test metric before / after blocking / after, FE, generations, seconds.

    Raises: what :func:`~archopt.refine.refine` raises."""
    from archopt.data import load_dataset
    from archopt.refine.baselines import run_baselines
    from archopt.refine.config import RefineConfig
    from archopt.refine.methods import refine

    cfg = RefineConfig(**config)
    src = load_source(checkpoint)
    ds = data if isinstance(data, ImageDataset) else load_dataset(data, data_dir)
    result = refine(src, ds, cfg, out, resume=True, progress=progress)
    if baselines:
        run_baselines(result, src, ds, baselines, adam_lr=adam_lr, progress=progress)
    s = result.summary
    row = {"folder": Path(out).name, "seed": cfg.seed, **{k: s.get(k) for k in _SEED_KEYS}}
    for name, b in (s.get("baselines") or {}).items():
        row[f"baseline_{name}"] = b.get("metric_after")
    return row


def refine_seeds(checkpoint: str | os.PathLike[str], data: ImageDataset, seeds: list[int], *,
                 out: str | os.PathLike[str], config: dict[str, Any],
                 baselines: list[str] | None = None, adam_lr: float = 1e-4,
                 backend: Backend = "local", workers: int | None = None,
                 address: str | None = None, threads: int | None = None,
                 progress: bool = True, echo: Any = None) -> dict[str, Any]:
    """HBDE once per seed from the same checkpoint, through :mod:`archopt.runs.sweeps`.

    Args:
        checkpoint: the trained model (checkpoint or result folder).
        data: the dataset (passed to every trial; under Ray through the object store).
        seeds: one trial per seed, folders ``seed_<k>``.
        out: the sweep folder (``grid.json``, ``status.json``, ``sweep.json``).
        config: :class:`~archopt.refine.RefineConfig` fields (``seed`` replaced per trial).
        baselines, adam_lr: as ``archopt refine --baseline``.
        backend, workers, address, threads, progress, echo: :func:`~archopt.runs.sweeps.run_trials`.

    Returns: ``{"metric", "rows": [...], "mean_after", "std_after", "runner"}`` (also
    ``sweep.json``); a failed seed is a row with ``error``.
    Raises: ArchoptError for no seed, a bad runner request, or a sweep folder whose finished
        trials had other options.
    """
    import numpy as np

    from archopt.runs import atomic_write_json
    from archopt.runs.locking import lock_folder

    if not seeds:
        raise ArchoptError("--seeds: give at least one seed")
    trials = [Trial(f"seed_{s}", "archopt.refine.sweep:refine_trial",
                    {"checkpoint": str(Path(checkpoint).resolve()), "data": data.name,
                     "config": {**config, "seed": s}, "baselines": list(baselines or []),
                     "adam_lr": adam_lr}) for s in seeds]
    with lock_folder(out):
        outcome = run_trials(out, trials, backend=backend, workers=workers, address=address,
                             threads=threads, shared={"data": data}, progress=progress,
                             echo=echo)
        rows = [o.row if o.state == "done" and o.row is not None else
                {"folder": t.name, "seed": t.params["config"]["seed"], "state": o.state,
                 "error": o.error} for t, o in zip(trials, outcome.trials, strict=True)]
        after = [r["metric_after"] for r in rows if r.get("metric_after") is not None]
        table = {"metric": config.get("metric", "f1"), "checkpoint": str(checkpoint),
                 "dataset": data.name, "rows": rows,
                 "mean_after": float(np.mean(after)) if after else None,
                 "std_after": float(np.std(after, ddof=1)) if len(after) > 1 else None,
                 "runner": outcome.as_dict()}
        atomic_write_json(Path(out) / "sweep.json", table)
    return table
