"""Classification metrics from torchmetrics, for one prediction vector or a whole population.

``METRICS[name](preds, target, num_classes)`` scores predictions: ``preds`` of shape ``(N,)``
gives a 0-d score; ``preds`` of shape ``(P, N)`` -- P candidate models' predictions of the same N
examples -- gives ``(P,)`` scores in one torchmetrics call (``multidim_average="samplewise"``),
on the device of ``preds``, without a Python loop over the population (HBDE scores its NP
members this way). ``score_batch`` is the (P, N) form with a shape check.

Definitions (all agree with scikit-learn, which the tests check):

- ``accuracy``: ``trace(C) / N`` (``multiclass_accuracy``, micro average).
- ``f1`` / ``macro_f1``: the unweighted mean over classes of ``2 TP / (2 TP + FP + FN)`` over the
  classes that occur in ``target`` or ``preds`` (``multiclass_f1_score``, macro average: a class
  with ``TP + FP + FN = 0`` gets weight 0, as scikit-learn's ``f1_score(average="macro")`` with
  its default ``labels`` leaves it out).
- ``balanced_accuracy``: the mean recall over the classes that occur in ``target``
  (``sklearn.metrics.balanced_accuracy_score``): per-class recall from ``multiclass_recall``
  (``average="none"``), averaged over the classes with support. torchmetrics' own macro recall
  also averages in classes that are predicted but absent from ``target`` (recall 0), which
  scikit-learn does not.

Scores are returned as float64 (torchmetrics computes them in float32: equal to scikit-learn's
to ~1e-7).

Sources: torchmetrics 1.x ``functional.classification``; scikit-learn user guide,
"Classification metrics" (3.4.2); Brodersen et al., "The balanced accuracy and its posterior
distribution", ICPR 2010.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torchmetrics.functional.classification import (
    multiclass_accuracy,
    multiclass_confusion_matrix,
    multiclass_f1_score,
    multiclass_recall,
)

from archopt.errors import UnknownName

__all__ = [
    "METRICS",
    "MetricFn",
    "accuracy",
    "balanced_accuracy",
    "confusion_matrix",
    "get_metric",
    "macro_f1",
    "register_metric",
    "score_batch",
]

MetricFn = Callable[[torch.Tensor, torch.Tensor, int], torch.Tensor]


def _check(preds: torch.Tensor, target: torch.Tensor) -> None:
    if preds.shape[-1] != target.shape[-1] or target.dim() != 1 or preds.dim() not in (1, 2):
        raise ValueError(f"preds must be (N,) or (P, N) and target (N,); got {tuple(preds.shape)}"
                         f" and {tuple(target.shape)}")


def _args(preds: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, dict]:
    """preds / target as torchmetrics wants them, and the averaging mode."""
    _check(preds, target)
    target = target.to(preds.device).long()
    if preds.dim() == 1:
        return preds.long(), target, {"multidim_average": "global"}
    return preds.long(), target.expand_as(preds), {"multidim_average": "samplewise"}


def confusion_matrix(preds: torch.Tensor, target: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Confusion counts ``C[..., t, p]`` (true class ``t`` predicted as ``p``).

    Args:
        preds: (N,) or (P, N) predicted class indices (integer tensor).
        target: (N,) true class indices.
        num_classes: number of classes K (every index must lie in ``[0, K)``).

    Returns: (K, K) or (P, K, K) int64 counts (``multiclass_confusion_matrix``), on the device
        of ``preds``.
    Raises: ValueError for mismatched shapes.
    """
    _check(preds, target)
    target = target.to(preds.device).long()
    rows = [multiclass_confusion_matrix(p.long(), target, int(num_classes), validate_args=False)
            for p in (preds.reshape(1, -1) if preds.dim() == 1 else preds)]
    cm = torch.stack(rows).long()
    return cm[0] if preds.dim() == 1 else cm


def accuracy(preds: torch.Tensor, target: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Fraction of correct predictions. (N,) preds -> 0-d float64; (P, N) -> (P,)."""
    p, t, kw = _args(preds, target)
    return multiclass_accuracy(p, t, int(num_classes), average="micro", validate_args=False,
                               **kw).double()


def macro_f1(preds: torch.Tensor, target: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Macro-F1 over the classes present in target or predictions (see the module docstring).

    (N,) preds -> 0-d float64; (P, N) -> (P,).
    """
    p, t, kw = _args(preds, target)
    return multiclass_f1_score(p, t, int(num_classes), average="macro", validate_args=False,
                               **kw).double()


def balanced_accuracy(preds: torch.Tensor, target: torch.Tensor,
                      num_classes: int) -> torch.Tensor:
    """Mean recall over the classes present in ``target``. (N,) -> 0-d float64; (P, N) -> (P,)."""
    p, t, kw = _args(preds, target)
    recall = multiclass_recall(p, t, int(num_classes), average="none", validate_args=False,
                               **kw).double()
    present = torch.bincount(target.to(p.device).long(), minlength=int(num_classes)) > 0
    return (recall * present).sum(-1) / present.sum().clamp_min(1)


#: name -> ``fn(preds, target, num_classes) -> score`` (higher is better for every entry).
METRICS: dict[str, MetricFn] = {
    "accuracy": accuracy,
    "f1": macro_f1,
    "macro_f1": macro_f1,
    "balanced_accuracy": balanced_accuracy,
}


def register_metric(name: str, fn: MetricFn) -> MetricFn:
    """Add a metric; it must accept (N,) and (P, N) predictions like the built-in ones."""
    METRICS[name] = fn
    return fn


def get_metric(name: str) -> MetricFn:
    """The metric registered as ``name``. Raises: UnknownName."""
    try:
        return METRICS[name]
    except KeyError:
        raise UnknownName(f"unknown metric {name!r} (known: {', '.join(sorted(METRICS))})"
                          ) from None


def score_batch(name: str, preds: torch.Tensor, target: torch.Tensor,
                num_classes: int) -> torch.Tensor:
    """Scores of a population: ``preds`` (P, N) -> (P,) float64 (one torchmetrics call).

    Raises: UnknownName; ValueError for mismatched shapes.
    """
    if preds.dim() != 2:
        raise ValueError(f"score_batch expects (P, N) predictions, got {tuple(preds.shape)}")
    return get_metric(name)(preds, target, num_classes)
