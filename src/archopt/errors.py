"""The exceptions a user can cause, and nothing else.

Every error a user can fix (a bad spec, an infeasible budget, missing or corrupt data, an unknown
name, an unsafe file) is an :class:`ArchoptError`. The CLI prints such an error on one line and
exits with status 2; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class ArchoptError(Exception):
    """Base class of user-facing errors: the message says what was expected and how to fix it."""

    exit_code = 2


class InvalidSpec(ArchoptError, ValueError):
    """An architecture spec (or structure file) that does not describe a valid network."""


class UnknownName(ArchoptError, KeyError):
    """A name (space, dataset, metric, solver, catalog entry) that no registry holds."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class InfeasibleBudget(ArchoptError):
    """No structure in the space meets the budgets (or the seed structure already breaks one).

    Attributes:
        budget: name of the binding budget ("macs", "params", "layers", "effectiveness").
        limit: the budget asked for.
        needed: the smallest value of that budget that would be feasible, when known.
    """

    def __init__(self, message: str, *, budget: str | None = None, limit: float | None = None,
                 needed: float | None = None) -> None:
        super().__init__(message)
        self.budget = budget
        self.limit = limit
        self.needed = needed


class DataError(ArchoptError):
    """A dataset folder or file that is missing, corrupt (checksum) or malformed."""


class UnsafeFile(DataError):
    """A file that asks to run code or holds types it may not (e.g. a pickle with a payload)."""


class FolderInUse(ArchoptError):
    """A result folder that another process is writing (see :mod:`archopt.runs.locking`).

    Attributes:
        holder: the holder's record (``pid``, ``host``, ``command``, ``started``) or None.
    """

    def __init__(self, message: str, *, holder: dict | None = None) -> None:
        super().__init__(message)
        self.holder = holder


class ResourceLimit(ArchoptError):
    """Work that would need more memory than the machine has (refused before allocating).

    Attributes:
        needed: the estimate, in bytes.
        available: the bytes available when it was refused.
    """

    def __init__(self, message: str, *, needed: int | None = None,
                 available: int | None = None) -> None:
        super().__init__(message)
        self.needed = needed
        self.available = available


class CheckpointError(ArchoptError):
    """A checkpoint that cannot be read, or that does not match the model it is loaded into."""


class TrainingDiverged(ArchoptError):
    """The loss became NaN or infinite; the last good checkpoint was kept."""

    @classmethod
    def at(cls, *, epoch: int, steps: int, last_good_epoch: int, checkpoint: object | None,
           advice: str) -> TrainingDiverged:
        """The error for a run that diverged in ``epoch`` (1-based) after ``steps`` steps;
        ``checkpoint`` is where the last good epoch was saved (None: no result folder)."""
        kept = (f"the last good checkpoint (epoch {last_good_epoch}) is kept in {checkpoint}"
                if checkpoint is not None and last_good_epoch > 0
                else "no checkpoint had been written yet")
        return cls(f"training diverged: the loss became NaN or infinite in epoch {epoch} "
                   f"(after {steps} steps); {kept}; {advice}")


class WriteError(ArchoptError, OSError):
    """A result that cannot be written: the disk (or quota) is full, the file too large for
    the file system, or the folder not writable. Raised by archopt's writers
    (:mod:`archopt.runs`) after removing their temporary file, so nothing is left half-written
    and the files written before are intact. An :class:`OSError` too, for code that expects
    one.

    Attributes:
        path: the file (or folder) that could not be written.
        errno: the operating system's error number (``errno.ENOSPC``, ``errno.EACCES``, ...).
        reason: the operating system's words for it ("No space left on device").
    """

    def __init__(self, message: str, *, path: object | None = None,
                 errno: int | None = None, reason: str | None = None) -> None:
        super().__init__(message)
        self.path = path
        self.errno = errno
        self.reason = reason

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""
