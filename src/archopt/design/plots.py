"""Plots of a design run (PNG, matplotlib's Agg backend): convergence, the designed network,
and the power-law fit of stage entropies (densenet)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from archopt.runs.plotting import new_figure, save_png
from archopt.spaces.base import ArchSpec

__all__ = ["plot_convergence", "plot_network", "plot_power_law"]


def plot_convergence(history: Sequence[dict[str, Any]], path: Path, *, title: str,
                     xlabel: str = "candidates", reference: float | None = None,
                     reference_label: str = "") -> Path:
    """Best objective vs candidates (or nodes); an optional horizontal reference line."""
    fig = new_figure((6.4, 4.0))
    ax = fig.subplots()
    if history:
        x = [h["candidates"] for h in history]
        y = [h["best_objective"] for h in history]
        ax.step(x, y, where="post", color="C0", label="best objective")
    if reference is not None:
        ax.axhline(reference, color="C3", ls="--", lw=1, label=reference_label or "reference")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("objective")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    return save_png(fig, path)


def _units(spec: ArchSpec) -> tuple[list[str], list[int], list[int], list[str]]:
    """Labels, widths, depths and annotations of the units to draw."""
    if spec.space in ("resnet", "mbv2"):
        labels = ["stem"] + [f"b{i + 1}" for i in range(len(spec.blocks))]  # type: ignore[attr-defined]
        widths = [spec.stem.out] + [b.out for b in spec.blocks]  # type: ignore[attr-defined]
        depths = [1] + [b.L for b in spec.blocks]  # type: ignore[attr-defined]
        notes = [f"k{spec.stem.k} s{spec.stem.stride}"] + [  # type: ignore[attr-defined]
            f"btn {b.btn}\nk{b.k} s{b.stride}" for b in spec.blocks]  # type: ignore[attr-defined]
        if spec.space == "mbv2" and spec.head_conv:  # type: ignore[attr-defined]
            labels.append("1x1")
            widths.append(spec.head_conv)  # type: ignore[attr-defined]
            depths.append(1)
            notes.append("final conv")
        return labels, widths, depths, notes
    if spec.space == "densenet":
        labels = ["stem"] + [f"stage {i + 1}" for i in range(len(spec.stages))]  # type: ignore[attr-defined]
        lives = spec.live_connections()  # type: ignore[attr-defined]
        widths = [spec.stem.out] + [lv.out_channels for lv in lives]  # type: ignore[attr-defined]
        depths = [1] + [s.layers for s in spec.stages]  # type: ignore[attr-defined]
        notes = [f"k{spec.stem.k}"] + [f"g {s.growth}\nk{s.k}" for s in spec.stages]  # type: ignore[attr-defined]
        return labels, widths, depths, notes
    widths = list(spec.kept_widths())  # type: ignore[attr-defined]
    return [f"h{i + 1}" for i in range(len(widths))], widths, [1] * len(widths), [""] * len(widths)


def plot_network(spec: ArchSpec, path: Path, *, title: str | None = None,
                 stage_of_unit: Sequence[int] | None = None) -> Path:
    """The designed network: output width per unit (bars, colour = stage) and depth per unit."""
    labels, widths, depths, notes = _units(spec)
    x = np.arange(len(labels))
    colors = [f"C{(s - 1) % 10}" for s in stage_of_unit] if stage_of_unit else "C0"
    fig = new_figure((max(6.0, 0.8 * len(labels) + 2), 5.6))
    ax1, ax2 = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 2]})
    bars = ax1.bar(x, widths, color=colors)
    for bar, note in zip(bars, notes, strict=True):
        if note:
            ax1.annotate(note, (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                         ha="center", va="bottom", fontsize=7)
    ax1.set_ylabel("output width (channels)")
    ax1.set_title(title or (spec.name or spec.space))
    ax1.margins(y=0.25)
    ax2.bar(x, depths, color=colors)
    ax2.set_ylabel("depth (layers / blocks)")
    ax2.set_xticks(x, labels, rotation=45 if len(labels) > 12 else 0)
    for ax in (ax1, ax2):
        ax.grid(axis="y", alpha=0.3)
    return save_png(fig, path)


def plot_power_law(stage_entropies: Sequence[float], a: float, b: float, path: Path, *,
                   title: str = "stage entropies and power-law fit") -> Path:
    """Stage entropies H_i (points) with the fitted curve a * i^b (Dense Optimizer)."""
    h = np.asarray(stage_entropies, dtype=float)
    i = np.arange(1, len(h) + 1)
    fine = np.linspace(1, len(h), 100)
    fig = new_figure((5.6, 4.0))
    ax = fig.subplots()
    ax.plot(i, h, "o", color="C0", label="stage entropy $H_i$")
    ax.plot(fine, a * fine**b, "-", color="C1", label=f"${a:.4g}\\, i^{{{b:.3f}}}$")
    ax.set_xlabel("stage i")
    ax.set_ylabel("entropy")
    ax.set_xticks(i)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    return save_png(fig, path)
