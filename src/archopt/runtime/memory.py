"""How much memory this process may still allocate, and a refusal naming the estimate when a
piece of work would need more.

A spec of a million layers or a billion units validates, but building it (or taking one training
step) would allocate for minutes and then die in the allocator, or exhaust the machine. Callers
estimate what they need (:meth:`archopt.spaces.base.ArchSpec.memory_estimate`) and call
:func:`require_memory` before allocating.

``$ARCHOPT_NO_MEMORY_CHECK=1`` turns the refusal off (the estimates are deliberately on the high
side; a machine with swap may manage more).
"""

from __future__ import annotations

import os
import resource
from pathlib import Path

from archopt.errors import ResourceLimit

__all__ = ["available_memory", "format_bytes", "require_memory"]

#: Share of the available memory one piece of work may plan to use.
HEADROOM = 0.9


def format_bytes(n: float) -> str:
    """``1.5 GB``, ``320 MB``, ``4.0 TB`` (decimal units)."""
    for unit, scale in (("EB", 1e18), ("PB", 1e15), ("TB", 1e12), ("GB", 1e9), ("MB", 1e6),
                        ("KB", 1e3)):
        if abs(n) >= scale:
            value = n / scale
            if value >= 1e6:
                return f"{value:.3g} {unit}"
            return f"{value:.1f} {unit}"
    return f"{int(n)} bytes"


def _meminfo_available() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def _cgroup_available() -> int | None:
    """cgroup v2 limit minus usage, for containers."""
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        if limit == "max":
            return None
        used = int(Path("/sys/fs/cgroup/memory.current").read_text().strip())
        return max(0, int(limit) - used)
    except (OSError, ValueError):
        return None


def _rlimit_available() -> int | None:
    """The address-space limit (``ulimit -v``) minus what this process has mapped."""
    try:
        soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    except (OSError, ValueError):  # pragma: no cover
        return None
    if soft == resource.RLIM_INFINITY:
        return None
    try:
        size = int(Path("/proc/self/statm").read_text().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        size = 0
    return max(0, soft - size)


def available_memory() -> int:
    """Bytes this process can still allocate: the smallest of the machine's available memory
    (``MemAvailable``), a container's cgroup limit and the process's ``ulimit -v``."""
    known = [v for v in (_meminfo_available(), _cgroup_available(), _rlimit_available())
             if v is not None]
    if not known:  # pragma: no cover - not Linux
        try:
            known.append(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
        except (ValueError, OSError):
            return 1 << 62
    return min(known)


def require_memory(needed: float, what: str, *, available: int | None = None,
                   hint: str = "") -> None:
    """Raise :class:`~archopt.errors.ResourceLimit` when ``needed`` bytes exceed
    :data:`HEADROOM` of the available memory.

    Args:
        needed: the estimate, in bytes.
        what: what would need it, e.g. ``"building resnet spec 'x'"``.
        available: bytes available (default :func:`available_memory`; e.g. free GPU memory).
        hint: how to make it fit, appended to the message.
    """
    if os.environ.get("ARCHOPT_NO_MEMORY_CHECK", "").strip() not in ("", "0"):
        return
    avail = available_memory() if available is None else available
    if needed > HEADROOM * avail:
        raise ResourceLimit(
            f"{what} needs about {format_bytes(needed)} of memory (estimate), but "
            f"{format_bytes(avail)} is available here; refused before allocating"
            + (f"; {hint}" if hint else "")
            + " ($ARCHOPT_NO_MEMORY_CHECK=1 skips this check)",
            needed=int(min(needed, 1 << 62)), available=avail)
