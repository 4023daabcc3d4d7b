"""What the benchmark scripts share: the machine record, writing a results file, timing a call
(wall and process-CPU seconds), and holding a job's claim (one worker per run, at most N jobs at
once) through :mod:`archopt.runs.locking`.

A script runs as ``python benchmarks/NAME.py``, so this folder is on ``sys.path``:
``import benchlib``.
"""

from __future__ import annotations

import contextlib
import os
import platform
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from archopt.errors import FolderInUse
from archopt.runs import atomic_write_json, environment_info, read_json
from archopt.runs.locking import lock_folder

__all__ = ["claim", "clock", "cpu_name", "job_slot", "machine", "machine_under_load",
           "recorded_runs", "write_results"]


def cpu_name() -> str:
    """The CPU's model name (``/proc/cpuinfo``), else what :mod:`platform` knows."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def clock(fn: Callable[[], object], steps: int, device: Any = None) -> tuple[float, float]:
    """(wall seconds, process-CPU seconds) per call of ``fn``, the mean of ``steps`` calls; a
    CUDA ``device`` (a ``torch.device``) is synchronised before and after."""

    def sync() -> None:
        if device is not None and device.type == "cuda":
            import torch

            torch.cuda.synchronize(device)

    sync()
    t0, c0 = time.perf_counter(), time.process_time()
    for _ in range(steps):
        fn()
    sync()
    return (time.perf_counter() - t0) / steps, (time.process_time() - c0) / steps


def machine(**extra: Any) -> dict[str, Any]:
    """The machine record of a results file: versions and platform
    (:func:`archopt.runs.environment_info`), the CPU, the core count, plus ``extra``."""
    return {**environment_info(), "processor": cpu_name(), "cpu_count": os.cpu_count(), **extra}


def machine_under_load(load_start: list[float]) -> dict[str, Any]:
    """:func:`machine` with the 1/5/15-minute load averages at the start (``load_start``, from
    ``os.getloadavg()``) and now, the end of a timing."""
    return machine(load_average_1_5_15_at_start=load_start,
                   load_average_1_5_15_at_end=list(os.getloadavg()))


def write_results(path: str | os.PathLike[str], obj: Any) -> Path:
    """Write a results file atomically (its folder is created)."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write_json(p, obj)


def recorded_runs(path: str | os.PathLike[str], section: str | None = None
                  ) -> dict[str, dict[str, Any]]:
    """The finished runs a results file records (its ``runs`` list, or that of its
    ``section``), by name; empty when the file does not exist. A run folder does not outlive its
    machine; the committed results file does, so a grid continues from it."""
    p = Path(path)
    if not p.exists():
        return {}
    doc = read_json(p)
    if section is not None:
        doc = doc.get(section) or {}
    return {r["name"]: r for r in doc.get("runs", [])}


@contextlib.contextmanager
def claim(folder: str | os.PathLike[str], *, wait: bool = False) -> Iterator[bool]:
    """Hold ``folder``'s lock (:func:`archopt.runs.locking.lock_folder`) for the ``with`` block.

    Yields True when this process holds it; False when another process does (with
    ``wait=True`` it waits for it instead). The operating system drops the lock of a process that
    dies, so a killed worker never blocks the others.
    """
    stack = contextlib.ExitStack()
    while True:
        try:
            stack.enter_context(lock_folder(folder))
            break
        except FolderInUse:
            if not wait:
                yield False
                return
            time.sleep(1.0)
    with stack:
        yield True


@contextlib.contextmanager
def job_slot(folder: str | os.PathLike[str], jobs: int) -> Iterator[int | None]:
    """One of ``jobs`` slots under ``folder`` (``slot0`` ...): yields its number, or None when
    ``jobs`` other processes hold them all -- at most ``jobs`` jobs at once."""
    for i in range(jobs):
        with claim(Path(folder) / f"slot{i}") as mine:
            if mine:
                yield i
                return
    yield None
