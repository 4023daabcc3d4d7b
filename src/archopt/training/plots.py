"""Training curves as a PNG (matplotlib on an explicit Agg canvas: no display needed)."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from archopt.runs.plotting import new_figure, save_png

__all__ = ["plot_curves"]


def _series(rows: Sequence[Mapping[str, Any]], key: str) -> tuple[list[float], list[float]]:
    xs, ys = [], []
    for r in rows:
        v = r.get(key)
        if v is not None:
            xs.append(r["epoch"])
            ys.append(float(v))
    return xs, ys


def plot_curves(rows: Sequence[Mapping[str, Any]], path: str | os.PathLike[str], *,
                title: str | None = None) -> Path:
    """Plot loss, accuracy / macro-F1 and learning rate against the epoch; write a PNG
    atomically.

    Args:
        rows: per-epoch rows (``metrics.jsonl``): ``epoch`` and any of ``train_loss``,
            ``test_loss``, ``train_accuracy``, ``test_accuracy``, ``test_macro_f1``, ``lr``
            (missing or None values are skipped).
        path: the PNG file.
        title: figure title.

    Returns: the path written.
    """
    fig = new_figure((13, 3.8))
    axes = fig.subplots(1, 3)
    panels = [
        ("loss (cross-entropy)", [("train_loss", "train"), ("test_loss", "test")]),
        ("accuracy / macro-F1", [("train_accuracy", "train accuracy"),
                                 ("test_accuracy", "test accuracy"),
                                 ("test_macro_f1", "test macro-F1")]),
        ("learning rate (last step of the epoch)", [("lr", "lr")]),
    ]
    for ax, (label, keys) in zip(axes, panels, strict=True):
        for key, name in keys:
            xs, ys = _series(rows, key)
            if xs:
                ax.plot(xs, ys, marker="o" if len(xs) < 30 else None, ms=3, label=name)
        ax.set_xlabel("epoch")
        ax.set_title(label, fontsize=10)
        ax.grid(alpha=0.3)
        if len(keys) > 1 and ax.lines:
            ax.legend(fontsize=8)
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    return save_png(fig, path, tight=False)
