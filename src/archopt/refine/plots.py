"""The convergence plot of an HBDE run (``convergence.png``)."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from archopt.runs.plotting import new_figure, save_png

__all__ = ["plot_convergence"]


def plot_convergence(rows: Sequence[Mapping[str, Any]], path: str | os.PathLike[str], *,
                     metric: str = "f1", title: str | None = None,
                     references: Mapping[str, float] | None = None,
                     rescored: bool = False) -> Path:
    """Best / mean objective on the super-batch per generation (left) and the best member's
    test metric (right), written atomically as a PNG.

    Args:
        rows: ``metrics.jsonl`` rows (``generation``, ``best_objective``, ``mean_objective``,
            optional ``test_metric``).
        path: the PNG to write.
        metric: the metric's name, for the labels.
        title: figure title.
        references: horizontal lines on the test panel, e.g. ``{"pre-trained": 0.89}``.
        rescored: whether the parents were re-scored on each generation's super-batch (else
            each parent keeps the objective of the super-batch it was accepted on).
    """
    gen = [r["generation"] for r in rows]
    fig = new_figure((11, 4))
    ax1, ax2 = fig.subplots(1, 2)
    ax1.plot(gen, [r["best_objective"] for r in rows], label="best")
    ax1.plot(gen, [r["mean_objective"] for r in rows], label="population mean", alpha=0.7)
    ax1.set_xlabel("generation")
    ax1.set_ylabel(f"1 - {metric}, " + ("current super-batch" if rescored
                                         else "super-batch of acceptance"))
    ax1.legend()
    ax1.grid(alpha=0.3)
    test = [(r["generation"], r["test_metric"]) for r in rows
            if r.get("test_metric") is not None]
    if test:
        ax2.plot([g for g, _ in test], [v for _, v in test], marker="o", label="best member")
    for i, (name, value) in enumerate((references or {}).items()):
        ax2.axhline(value, linestyle="--", color=f"C{i + 1}", label=name)
    ax2.set_xlabel("generation")
    ax2.set_ylabel(f"test {metric}")
    ax2.grid(alpha=0.3)
    if test or references:
        ax2.legend()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return save_png(fig, path, tight=False)
