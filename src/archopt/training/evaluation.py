"""Evaluate a classifier on uint8 images: cross-entropy loss, accuracy, macro-F1 (torchmetrics).

The images are normalised exactly as in training (the dataset's ``mean`` / ``std``), batch by
batch, so a whole test split never needs a float copy.
"""

from __future__ import annotations

from contextlib import nullcontext
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics import MetricCollection
from torchmetrics.classification import MulticlassAccuracy, MulticlassF1Score

from archopt.data.dataset import normalize
from archopt.runtime.devices import resolve_device

__all__ = ["autocast", "evaluate", "predict"]


def autocast(device: torch.device, dtype: torch.dtype | None) -> Any:
    """``torch.autocast`` for mixed precision on ``device`` when ``dtype`` is set, else a no-op."""
    if dtype is None:
        return nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def _batches(x: torch.Tensor, batch_size: int, mean: tuple[float, ...], std: tuple[float, ...],
             device: torch.device, channels_last: bool):
    for i in range(0, len(x), batch_size):
        xb = normalize(x[i:i + batch_size].to(device, non_blocking=True), mean, std)
        if channels_last and xb.dim() == 4:
            xb = xb.contiguous(memory_format=torch.channels_last)
        yield i, xb


def _model_device(model: nn.Module) -> torch.device:
    p = next(iter(model.parameters()), None)
    return p.device if p is not None else torch.device("cpu")


@torch.no_grad()
def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, mean: tuple[float, ...],
             std: tuple[float, ...], num_classes: int, batch_size: int = 1024,
             device: str | torch.device | None = None, amp_dtype: torch.dtype | None = None,
             channels_last: bool = False, distributed: bool = False) -> dict[str, float]:
    """Loss, accuracy and macro-F1 of ``model`` on ``(x, y)``.

    Args:
        model: a classifier returning (B, num_classes) logits; evaluated in eval mode (its mode
            is restored afterwards).
        x: (N, C, H, W) uint8 images (or float images in [0, 1]).
        y: (N,) int64 labels in ``[0, num_classes)``.
        mean, std: per-channel normalisation of training (``ImageDataset.mean`` / ``.std``).
        num_classes: number of classes.
        batch_size: examples per forward pass.
        device: where to run (default: the model's device); the model is not moved.
        amp_dtype: autocast dtype (mixed precision) or None.
        channels_last: feed 4-D batches in NHWC memory format.
        distributed: under ``torch.distributed``, every rank passes the same ``(x, y)``, scores
            an interleaved shard, and the counts are summed across ranks (every rank returns
            the full-set figures). Every rank must call it.

    Returns: ``{"loss": mean cross-entropy (nats, no label smoothing), "accuracy": fraction
    correct, "macro_f1": macro-averaged F1 (scikit-learn's definition)}`` as floats.
    Raises: ValueError for an empty set or mismatched lengths.
    """
    if len(x) != len(y):
        raise ValueError(f"x has {len(x)} examples but y has {len(y)}")
    if len(y) == 0:
        raise ValueError("cannot evaluate on an empty set")
    dev = resolve_device(device) if device is not None else _model_device(model)
    if distributed:
        import torch.distributed as dist

        rank, world = dist.get_rank(), dist.get_world_size()
        x, y = x[rank::world], y[rank::world]
    metrics = MetricCollection({
        "accuracy": MulticlassAccuracy(num_classes, average="micro"),
        "macro_f1": MulticlassF1Score(num_classes, average="macro"),
    }, compute_groups=False)
    for m in metrics.values():
        m.sync_on_compute = distributed
    metrics = metrics.to(dev)
    loss_sum = torch.zeros((), dtype=torch.float64, device=dev)
    count = torch.zeros((), dtype=torch.float64, device=dev)
    was_training = model.training
    model.eval()
    try:
        for i, xb in _batches(x, batch_size, mean, std, dev, channels_last):
            yb = y[i:i + batch_size].to(dev, non_blocking=True)
            with autocast(dev, amp_dtype):
                logits = model(xb)
            logits = logits.float()
            loss_sum += F.cross_entropy(logits, yb, reduction="sum").double()
            count += len(yb)
            metrics.update(logits.argmax(1), yb)
    finally:
        model.train(was_training)
    if distributed:
        import torch.distributed as dist

        both = torch.stack([loss_sum, count])
        dist.all_reduce(both)
        loss_sum, count = both[0], both[1]
    scores = metrics.compute()
    return {"loss": float(loss_sum / count), "accuracy": float(scores["accuracy"]),
            "macro_f1": float(scores["macro_f1"])}


@torch.no_grad()
def predict(model: nn.Module, x: torch.Tensor, *, mean: tuple[float, ...],
            std: tuple[float, ...], batch_size: int = 1024,
            device: str | torch.device | None = None) -> torch.Tensor:
    """Predicted classes: (N, C, H, W) uint8 images -> (N,) int64 on the evaluation device.

    The model runs in eval mode (restored afterwards); see :func:`evaluate` for the arguments.
    """
    dev = resolve_device(device) if device is not None else _model_device(model)
    was_training = model.training
    model.eval()
    try:
        out = [model(xb).argmax(1) for _, xb in _batches(x, batch_size, mean, std, dev, False)]
    finally:
        model.train(was_training)
    return torch.cat(out) if out else torch.zeros(0, dtype=torch.long, device=dev)
