"""CPU thread policy: how many intra-op threads torch may use, chosen so that a busy machine is
not oversubscribed.

torch's default is one OpenMP thread per core, whatever else runs. On a machine whose cores are
already busy, every parallel region then waits at a barrier for threads that the scheduler has
parked behind another process, and small tensor ops slow down by orders of magnitude (measured:
``archopt run`` on the embedded digits took 322 s and 531 s with torch's default on a 2-core
machine with other work running, 52 s with one thread). Every verb that trains applies this
policy through its ``--threads`` option.

Order of precedence (:func:`resolve_threads`):

1. an explicit count (``--threads N``, ``threads=N``);
2. ``$ARCHOPT_THREADS``;
3. ``$OMP_NUM_THREADS`` (torch reads it too; honoured as the user's choice);
4. ``auto``: the cores this process may run on (``os.sched_getaffinity``), shared among the
   ranks of a ``torchrun`` job on this node (``$LOCAL_WORLD_SIZE``), minus the machine's load
   (the larger of the 1-minute load average and the processes runnable right now, other than
   this one), rounded, and at least 1.

``auto`` is a snapshot taken when the command starts: work that starts later is not seen.
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass

from archopt.errors import ArchoptError

__all__ = [
    "ENV",
    "ThreadChoice",
    "apply_threads",
    "available_cores",
    "machine_load",
    "resolve_threads",
    "thread_limit",
]

#: Environment variable that sets the thread count of every archopt command.
ENV = "ARCHOPT_THREADS"


@dataclass(frozen=True)
class ThreadChoice:
    """A thread count and why it was chosen.

    Attributes:
        threads: torch intra-op threads (>= 1).
        source: ``"option"``, ``"ARCHOPT_THREADS"``, ``"OMP_NUM_THREADS"`` or ``"auto"``.
        cores: cores available to this process (per local rank under torchrun).
        load: the machine's load that ``auto`` subtracted (None for the other sources).
    """

    threads: int
    source: str
    cores: int
    load: float | None = None

    @property
    def reduced(self) -> bool:
        """True when ``auto`` chose fewer threads than there are cores (a busy machine)."""
        return self.source == "auto" and self.threads < self.cores

    def describe(self) -> str:
        """One line, e.g. ``1 torch thread (auto: 2 cores, load 1.2; --threads to override)``."""
        n = f"{self.threads} torch thread{'s' if self.threads != 1 else ''}"
        if self.source == "auto":
            return (f"{n} (auto: {self.cores} core{'s' if self.cores != 1 else ''} available, "
                    f"load {self.load:.1f}; --threads N to override)")
        if self.source == "option":
            return f"{n} (--threads)"
        return f"{n} (${self.source})"


def available_cores() -> int:
    """Cores this process may run on (its CPU affinity; ``os.cpu_count()`` where the platform
    has no affinity), divided among the local ranks of a ``torchrun`` job, at least 1."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover - macOS, Windows
        cores = os.cpu_count() or 1
    try:
        ranks = max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
    except ValueError:
        ranks = 1
    return max(1, cores // ranks)


def _runnable_now() -> int | None:
    """Processes runnable at this instant, this one excluded (Linux ``/proc/loadavg``)."""
    try:
        with open("/proc/loadavg", encoding="ascii") as fh:
            running = fh.read().split()[3].split("/")[0]
        return max(0, int(running) - 1)
    except (OSError, IndexError, ValueError):
        return None


def machine_load() -> float:
    """The machine's load in cores: the larger of the 1-minute load average and the number of
    other processes runnable now (0.0 where neither is known).

    The load average lags by about a minute (a job started 10 s ago shows about 0.15); the
    instantaneous count sees it at once but is noisy. Taking the larger errs towards fewer
    threads, which costs little: one thread is never far from the best on a CPU that is
    shared.
    """
    try:
        avg = os.getloadavg()[0]
    except (AttributeError, OSError):  # pragma: no cover - Windows
        avg = 0.0
    now = _runnable_now()
    return max(avg, float(now) if now is not None else 0.0)


def _env_int(name: str) -> int | None:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return None
    try:
        n = int(raw)
    except ValueError:
        raise ArchoptError(f"${name} must be a positive integer, got {raw!r}") from None
    if n < 1:
        raise ArchoptError(f"${name} must be a positive integer, got {raw!r}")
    return n


def resolve_threads(threads: int | None = None) -> ThreadChoice:
    """The thread count to use (see the module docstring for the order of precedence).

    Args:
        threads: an explicit count (>= 1), or None for the environment / ``auto``.

    Returns: a :class:`ThreadChoice`.
    Raises: ArchoptError when ``threads`` or an environment variable is not a positive integer.
    """
    cores = available_cores()
    if threads is not None:
        if isinstance(threads, bool) or int(threads) != threads or threads < 1:
            raise ArchoptError(f"--threads must be a positive integer, got {threads!r}")
        return ThreadChoice(int(threads), "option", cores)
    for name in (ENV, "OMP_NUM_THREADS"):
        n = _env_int(name)
        if n is not None:
            return ThreadChoice(n, name, cores)
    load = machine_load()
    n = max(1, min(cores, math.floor(cores - load + 0.5)))
    return ThreadChoice(n, "auto", cores, round(load, 2))


def apply_threads(threads: int | None = None) -> ThreadChoice:
    """Resolve the thread count and set it for torch (``torch.set_num_threads``), for the rest
    of the process. Returns the :class:`ThreadChoice`."""
    import torch

    choice = resolve_threads(threads)
    torch.set_num_threads(choice.threads)
    return choice


@contextlib.contextmanager
def thread_limit(threads: int | None = None) -> Iterator[ThreadChoice]:
    """Apply the policy inside a ``with`` block and restore torch's previous count after."""
    import torch

    before = torch.get_num_threads()
    try:
        yield apply_threads(threads)
    finally:
        torch.set_num_threads(before)
