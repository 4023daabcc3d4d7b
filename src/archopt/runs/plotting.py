"""Figures for result folders: matplotlib on an explicit Agg canvas (no display, no global
pyplot state), saved as PNG atomically.

    fig = new_figure((6.4, 4.0)); ax = fig.subplots(); ...; save_png(fig, "plot.png")
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

from archopt.runs import atomic_write_bytes

__all__ = ["new_figure", "save_png"]


def new_figure(size: tuple[float, float] = (6.4, 4.0)) -> Any:
    """A matplotlib ``Figure`` with its own Agg canvas (thread-safe, no pyplot)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=size)
    FigureCanvasAgg(fig)
    return fig


def save_png(fig: Any, path: str | os.PathLike[str], *, dpi: int = 110,
             tight: bool = True) -> Path:
    """Render ``fig`` to PNG (cropped to its content when ``tight``) and write it atomically;
    returns the path."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight" if tight else None)
    return atomic_write_bytes(path, buf.getvalue())
