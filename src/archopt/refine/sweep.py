"""The N_bins sweep of a trained model: D' and the blocked model's metric for each bin count.

This is the cost-of-blocking curve the paper draws to pick N_bins (it sweeps 100..9,900 for
ResNet-18): few bins give a small search space but a damaged starting point; many bins keep the
model but leave DE more dimensions.

Source: arXiv 2408.07194 section 4; ../specs/hbde.md section 1, step 5.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

import torch
from torch import nn

from archopt.data.dataset import ImageDataset
from archopt.errors import ArchoptError
from archopt.refine.blocking import sweep_bins
from archopt.refine.evaluation import PopulationEvaluator
from archopt.refine.loop import Source, load_source
from archopt.runtime import resolve_device

__all__ = ["blocking_sweep"]


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
