"""One writer per result folder, and nothing left behind by a command that fails before it has
a result.

:func:`lock_folder` takes an exclusive lock on a result folder for the duration of a command:
``OUT/.archopt.lock``, locked with ``flock`` and holding the holder's pid, host, command line and
start time. A second writer meets :class:`~archopt.errors.FolderInUse`, a one-line error naming
the holder. The operating system drops an ``flock`` when its process ends, however it ends
(``kill -9`` included), so the lock of a dead process is stale and the next command takes it over
without asking. The lock is re-entrant within a process (a pipeline that locks ``OUT`` may call a
function that locks ``OUT`` again) and released -- the lock file removed, and the folder too when
the lock created it and it is empty -- when the command ends.

:func:`discard_on_failure` removes the files a command created when it fails before anything
worth keeping exists (for a training run: before its first checkpoint), so that the corrected
rerun is not refused as "already holds a run".

Platform: ``fcntl`` (Linux, macOS, other POSIX systems). Where it is missing (Windows) the lock is
not taken.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import os
import shutil
import socket
import sys
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from archopt.errors import ArchoptError, FolderInUse
from archopt.runs import write_error

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

__all__ = ["LOCK_NAME", "FolderLock", "describe_holder", "discard_on_failure", "lock_folder",
           "read_holder"]

#: The lock file inside a locked result folder.
LOCK_NAME = ".archopt.lock"


@dataclass
class FolderLock:
    """A held folder lock.

    Attributes:
        path: the folder.
        holder: what the lock file says about this holder (pid, host, command, started).
        created: the lock created the folder (it is removed on release when left empty).
        stale: the record of a previous holder whose process had ended without releasing the
            lock (taken over), or None.
    """

    path: Path
    holder: dict[str, Any]
    created: bool = False
    stale: dict[str, Any] | None = None
    _fd: int | None = field(default=None, repr=False)
    _count: int = field(default=1, repr=False)


_HELD: dict[str, FolderLock] = {}
_GUARD = threading.Lock()


def _command_line() -> str:
    argv = list(sys.argv) or ["python"]
    name = Path(argv[0]).name
    if name in ("__main__.py", "-m"):
        name = "python -m archopt"
    return " ".join([name, *argv[1:]])


def _holder() -> dict[str, Any]:
    return {"pid": os.getpid(), "host": socket.gethostname(), "command": _command_line(),
            "started": _dt.datetime.now().astimezone().isoformat(timespec="seconds")}


def _read(fd: int) -> dict[str, Any] | None:
    try:
        raw = os.pread(fd, 65536, 0)
        rec = json.loads(raw.decode("utf-8")) if raw.strip() else None
    except (OSError, ValueError):
        return None
    return rec if isinstance(rec, dict) else None


def read_holder(folder: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The holder record in ``folder``'s lock file (None when there is none or it is
    unreadable). It is stale unless the lock is actually held."""
    try:
        fd = os.open(Path(folder) / LOCK_NAME, os.O_RDONLY)
    except OSError:
        return None
    try:
        return _read(fd)
    finally:
        os.close(fd)


def describe_holder(rec: dict[str, Any] | None) -> str:
    """``pid 123 on host h, started 2025-01-01T12:00:00+00:00: archopt run --out x``."""
    if not rec:
        return "holder unknown (its record is being written)"
    return (f"pid {rec.get('pid', '?')} on host {rec.get('host', '?')}, started "
            f"{rec.get('started', '?')}: {rec.get('command', '?')}")


def _acquire(path: Path) -> FolderLock:
    created = not path.exists()
    try:
        path.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise ArchoptError(f"--out {path} is a file, not a folder; choose a folder") from None
    except OSError as err:
        err = write_error(path, err)
        if isinstance(err, ArchoptError):
            raise err from None
        raise ArchoptError(f"cannot create result folder {path}: {err.strerror}") from None
    lock_path = path / LOCK_NAME
    if fcntl is None:  # pragma: no cover - Windows: no lock
        return FolderLock(path, _holder(), created)
    while True:
        try:
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as err:
            if created:
                with contextlib.suppress(OSError):
                    path.rmdir()
            raise write_error(lock_path, err) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            rec = _read(fd)
            os.close(fd)
            raise FolderInUse(f"{path} is in use by another archopt command ("
                              f"{describe_holder(rec)}); wait for it to finish, or choose "
                              "another --out", holder=rec) from None
        # The previous holder may have released (unlinked) the file between our open and our
        # flock: then we hold a lock on a file nobody else will see; try again.
        try:
            same = os.fstat(fd).st_ino == os.stat(lock_path).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    stale = _read(fd)
    me = _holder()
    data = (json.dumps(me) + "\n").encode("utf-8")
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, data, 0)
        os.fsync(fd)
    except OSError as err:  # a full disk: give the lock up and leave nothing behind
        _release(FolderLock(path, me, created, stale, fd))
        raise write_error(lock_path, err) from None
    return FolderLock(path, me, created, stale, fd)


def _release(lock: FolderLock) -> None:
    if lock._fd is not None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(lock.path / LOCK_NAME)  # while still holding the flock
        os.close(lock._fd)  # releases the flock
        lock._fd = None
    if lock.created:
        with contextlib.suppress(OSError):
            lock.path.rmdir()  # only when empty: a failed first command leaves nothing


@contextlib.contextmanager
def lock_folder(folder: str | os.PathLike[str]) -> Iterator[FolderLock]:
    """Hold the result folder ``folder`` exclusively for the ``with`` block (created if absent).

    Raises:
        FolderInUse: another process holds it; the message names that process (pid, host,
            command, start time).
        ArchoptError: the folder cannot be created (a file of that name, no permission).
    """
    path = Path(folder)
    key = os.path.realpath(path)
    with _GUARD:
        lock = _HELD.get(key)
        if lock is not None:
            lock._count += 1
        else:
            lock = _HELD[key] = _acquire(path)
    try:
        yield lock
    finally:
        with _GUARD:
            lock._count -= 1
            if lock._count == 0:
                del _HELD[key]
                _release(lock)


def _remove(p: Path) -> None:
    if p.is_dir() and not p.is_symlink():
        shutil.rmtree(p, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            p.unlink()


@contextlib.contextmanager
def discard_on_failure(folder: str | os.PathLike[str], names: Iterable[str],
                       worth_keeping: Callable[[], bool]) -> Iterator[None]:
    """If the ``with`` block raises (an error, Ctrl-C) and ``worth_keeping()`` is False, remove
    each of ``names`` (files or folders inside ``folder``) that did not exist when the block
    began, and the temporary files of interrupted atomic writes; then re-raise.

    Args:
        folder: the result folder.
        names: what the command may create there before it has a result.
        worth_keeping: True once the folder holds something that took real work (e.g. a
            checkpoint); then nothing is removed and ``--resume`` continues from it.
    """
    base = Path(folder)
    names = list(names)
    before = {n for n in names if (base / n).exists() or (base / n).is_symlink()}
    try:
        yield
    except BaseException:
        try:
            keep = worth_keeping()
        except Exception:  # never mask the real error
            keep = True
        if not keep:
            for n in names:
                if n not in before:
                    _remove(base / n)
            for tmp in base.glob(".*.tmp") if base.is_dir() else ():
                _remove(tmp)
        raise
