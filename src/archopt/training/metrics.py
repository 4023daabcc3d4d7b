"""Classification metrics computed on the device from confusion matrices, one or many at a time.

``METRICS[name](preds, target, num_classes)`` scores one prediction vector; ``score_batch(name,
preds, target, num_classes)`` scores a population: ``preds`` of shape ``(P, N)`` (P candidate
models' predictions of the same N examples) gives ``(P,)`` scores from one ``bincount``, without a
Python loop over the population (HBDE evaluates a whole population this way).

Definitions follow scikit-learn (and torchmetrics, which agrees):

- ``accuracy``: ``trace(C) / N``.
- ``f1`` / ``macro_f1``: the unweighted mean over classes of ``2 TP / (2 TP + FP + FN)``, over the
  classes that occur in ``target`` or ``preds`` (scikit-learn's ``f1_score(average="macro")``
  with its default ``labels``; a class with ``TP + FP + FN = 0`` is left out).
- ``balanced_accuracy``: the mean recall over the classes that occur in ``target``
  (``sklearn.metrics.balanced_accuracy_score``).

Sources: scikit-learn user guide, "Classification metrics" (3.4.2); Brodersen et al.,
"The balanced accuracy and its posterior distribution", ICPR 2010.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

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


def confusion_matrix(preds: torch.Tensor, target: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Confusion counts ``C[..., t, p]`` (true class ``t`` predicted as ``p``).

    Args:
        preds: (N,) or (P, N) predicted class indices (integer tensor).
        target: (N,) true class indices, on the same device.
        num_classes: number of classes K (every index must lie in ``[0, K)``).

    Returns: (K, K) or (P, K, K) int64 counts, on the device of ``preds``.
    Raises: ValueError for mismatched shapes.
    """
    if preds.shape[-1] != target.shape[-1] or target.dim() != 1 or preds.dim() not in (1, 2):
        raise ValueError(f"preds must be (N,) or (P, N) and target (N,); got {tuple(preds.shape)}"
                         f" and {tuple(target.shape)}")
    k = int(num_classes)
    single = preds.dim() == 1
    p2 = preds.reshape(1, -1) if single else preds
    pop = p2.shape[0]
    offset = torch.arange(pop, device=p2.device).unsqueeze(1) * (k * k)
    codes = offset + target.to(p2.device).long().unsqueeze(0) * k + p2.long()
    cm = torch.bincount(codes.reshape(-1), minlength=pop * k * k).reshape(pop, k, k)
    return cm[0] if single else cm


def _per_class(cm: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    tp = cm.diagonal(dim1=-2, dim2=-1).double()
    actual = cm.sum(dim=-1).double()     # TP + FN (row sums)
    predicted = cm.sum(dim=-2).double()  # TP + FP (column sums)
    return tp, actual, predicted


def accuracy_from_cm(cm: torch.Tensor) -> torch.Tensor:
    """``trace / total`` of (K, K) or (P, K, K) confusion counts."""
    tp, actual, _ = _per_class(cm)
    return tp.sum(-1) / actual.sum(-1).clamp_min(1)


def macro_f1_from_cm(cm: torch.Tensor) -> torch.Tensor:
    """Macro-F1 over the classes present in target or predictions (see module docstring)."""
    tp, actual, predicted = _per_class(cm)
    denom = actual + predicted  # 2 TP + FP + FN
    present = denom > 0
    f1 = torch.where(present, 2 * tp / denom.clamp_min(1), torch.zeros_like(tp))
    return f1.sum(-1) / present.sum(-1).clamp_min(1)


def balanced_accuracy_from_cm(cm: torch.Tensor) -> torch.Tensor:
    """Mean recall over the classes present in the target."""
    tp, actual, _ = _per_class(cm)
    present = actual > 0
    recall = torch.where(present, tp / actual.clamp_min(1), torch.zeros_like(tp))
    return recall.sum(-1) / present.sum(-1).clamp_min(1)


def _from_cm(fn: Callable[[torch.Tensor], torch.Tensor]) -> MetricFn:
    def metric(preds: torch.Tensor, target: torch.Tensor, num_classes: int) -> torch.Tensor:
        return fn(confusion_matrix(preds, target, num_classes))

    metric.__name__ = fn.__name__.removesuffix("_from_cm")
    metric.__doc__ = (f"{fn.__doc__}\n\n    (N,) preds -> 0-d float64 tensor; (P, N) preds -> "
                      "(P,). See :func:`confusion_matrix` for the arguments.")
    return metric


accuracy = _from_cm(accuracy_from_cm)
macro_f1 = _from_cm(macro_f1_from_cm)
balanced_accuracy = _from_cm(balanced_accuracy_from_cm)

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
    """Scores of a population: ``preds`` (P, N) -> (P,) float64 (one bincount for all P).

    Raises: UnknownName; ValueError for mismatched shapes.
    """
    if preds.dim() != 2:
        raise ValueError(f"score_batch expects (P, N) predictions, got {tuple(preds.shape)}")
    return get_metric(name)(preds, target, num_classes)
