"""Logits of a model on a split, and the figures every refine summary reports.

Every refine method reports the same keys (:data:`COMMON_KEYS`): the chosen metric on the
test split before / after (``metric_before`` / ``metric_after``) and on the validation split
(``val_metric_before`` / ``val_metric_after``), and under ``scores`` all of
:data:`REPORTED` (macro-F1, balanced accuracy, accuracy) on both splits before and after, so
that a comparison can read any of them without re-evaluating the models.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from archopt.data.dataset import normalize
from archopt.training.metrics import get_metric

__all__ = ["COMMON_KEYS", "REPORTED", "before_after", "logits_of", "metrics_of", "split_scores"]

#: metrics reported for every split (names in ``archopt.training.metrics.METRICS``)
REPORTED = ("f1", "balanced_accuracy", "accuracy")

#: summary keys every refine method writes
COMMON_KEYS = ("method", "dataset", "metric", "metric_before", "metric_after",
               "val_metric_before", "val_metric_after", "scores", "validation",
               "function_evaluations", "search_seconds", "search_cpu_seconds", "seconds",
               "device")


@torch.no_grad()
def logits_of(module: nn.Module, x: torch.Tensor, *, mean: tuple[float, ...],
              std: tuple[float, ...], batch_size: int = 1000,
              device: str | torch.device = "cpu") -> torch.Tensor:
    """(N, K) float32 logits of ``module`` (eval mode) for uint8 images x (N, C, H, W), on
    ``device``; images are normalised batch by batch."""
    was = module.training
    module.eval()
    try:
        out = [module(normalize(x[s:s + batch_size].to(device), mean, std)).float()
               for s in range(0, len(x), batch_size)]
    finally:
        module.train(was)
    return torch.cat(out)


def metrics_of(preds: torch.Tensor, y: torch.Tensor, num_classes: int,
               metric: str | None = None) -> dict[str, float]:
    """Every metric of :data:`REPORTED` (and ``metric``) for predictions (N,) against labels
    (N,)."""
    y = y.to(preds.device)
    names = REPORTED if metric in (None, *REPORTED) else (*REPORTED, metric)
    return {name: float(get_metric(name)(preds, y, num_classes)) for name in names}


def split_scores(logits: dict[str, torch.Tensor], labels: dict[str, torch.Tensor],
                 num_classes: int, metric: str | None = None) -> dict[str, dict[str, float]]:
    """``{split: {metric: value}}`` from each split's logits (N, K) and labels (N,)."""
    return {s: metrics_of(logits[s].argmax(-1), labels[s], num_classes, metric)
            for s in logits}


def before_after(before: dict[str, dict[str, float]], after: dict[str, dict[str, float]],
                 metric: str) -> dict[str, Any]:
    """The common figures from :func:`split_scores` of the model before and after."""
    return {"metric_before": before["test"][metric], "metric_after": after["test"][metric],
            "val_metric_before": before["val"][metric], "val_metric_after": after["val"][metric],
            "scores": {"before": before, "after": after}}
