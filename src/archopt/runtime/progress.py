"""Progress for long work: a rich bar on a terminal, plain lines when not a TTY (CI, logs).

Library loops take a ``progress`` argument (a :class:`Progress` or None); the CLI creates one.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

__all__ = ["Progress", "progress"]


class Progress:
    """A task counter that renders as a rich bar (TTY) or as occasional plain lines.

    Args:
        total: number of steps (None if unknown).
        description: the label.
        enabled: False makes every call a no-op.
        every: plain mode prints a line at most every ``every`` seconds (and at the end).
    """

    def __init__(self, total: float | None, description: str, *, enabled: bool = True,
                 every: float = 10.0, stream: Any = None) -> None:
        self.total = total
        self.description = description
        self.enabled = enabled
        self.every = every
        self.stream = stream or sys.stderr
        self.done = 0.0
        self.fields: dict[str, Any] = {}
        self._bar: Any = None
        self._task: Any = None
        self._last = 0.0
        self._start = time.perf_counter()

    def __enter__(self) -> Progress:
        if self.enabled and getattr(self.stream, "isatty", lambda: False)():
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )
            from rich.progress import Progress as RichProgress

            self._bar = RichProgress(
                TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                TimeElapsedColumn(), TimeRemainingColumn(), TextColumn("{task.fields[info]}"),
                console=Console(file=self.stream), transient=False)
            self._bar.__enter__()
            self._task = self._bar.add_task(self.description, total=self.total, info="")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.__exit__(*exc)
        elif self.enabled and exc[0] is None:
            self._line(final=True)

    def _info(self) -> str:
        return "  ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                         for k, v in self.fields.items())

    def _line(self, final: bool = False) -> None:
        total = f"/{_count(self.total)}" if self.total else ""
        elapsed = time.perf_counter() - self._start
        print(f"[{self.description}] {_count(self.done)}{total} {self._info()} ({elapsed:.1f}s)"
              + (" done" if final else ""), file=self.stream, flush=True)

    def advance(self, n: float = 1, **fields: Any) -> None:
        """Count ``n`` more steps; ``fields`` (loss=..., acc=...) are shown beside the bar."""
        if not self.enabled:
            return
        self.done += n
        self.fields.update(fields)
        if self._bar is not None:
            self._bar.update(self._task, advance=n, info=self._info())
            return
        now = time.perf_counter()
        if now - self._last >= self.every:
            self._last = now
            self._line()

    def log(self, message: str) -> None:
        """Print a message above the bar (or as a line)."""
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.console.print(message)
        else:
            print(message, file=self.stream, flush=True)


@contextmanager
def progress(total: float | None, description: str, *, enabled: bool = True,
             every: float = 10.0) -> Iterator[Progress]:
    """``with progress(n, "train") as p: ... p.advance(loss=...)``."""
    with Progress(total, description, enabled=enabled, every=every) as p:
        yield p


def _count(v: float) -> str:
    """Whole counts with thousands separators (1,583,230), fractions as they are (0.5)."""
    return f"{int(v):,}" if float(v).is_integer() else f"{v:g}"
