"""Result folders: resolved config, atomic writes, JSONL logs.

Every command writes a self-describing folder (DESIGN.md, "Conventions"):

- ``config.json``   the resolved options, with seed and versions;
- ``arch.json``     the architecture spec, when there is one;
- ``metrics.jsonl`` one JSON object per step / epoch / generation;
- ``summary.json``  the final figures;
- checkpoints (``*.pt``) and plots (``*.png``).

All writes go to a temporary file in the same folder and are renamed over the target
(``os.replace`` is atomic on POSIX), so a reader never sees a half-written file and an interrupted
command never destroys the previous version.
"""

from __future__ import annotations

import datetime as _dt
import errno as _errno
import io
import json
import math
import os
import platform
import re
import sys
import tempfile
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "WRITE_ERRNOS",
    "ResultDir",
    "atomic_torch_save",
    "atomic_write_bytes",
    "atomic_write_json",
    "atomic_write_text",
    "environment_info",
    "read_json",
    "read_jsonl",
    "to_jsonable",
    "torch_load",
    "write_error",
    "write_error_kept",
]

#: The ``OSError`` numbers that mean the user's disk or folder refuses a write (full disk or
#: quota, file too large, not writable, read-only): :func:`write_error` makes them one line.
WRITE_ERRNOS = frozenset({_errno.ENOSPC, _errno.EDQUOT, _errno.EFBIG, _errno.EACCES,
                          _errno.EPERM, _errno.EROFS})


def write_error(path: str | os.PathLike[str], err: OSError, *, kept: bool = False) -> OSError:
    """The one-line :class:`~archopt.errors.WriteError` for a write of ``path`` that failed
    with ``err`` when ``err`` is one of :data:`WRITE_ERRNOS`; otherwise ``err`` itself (a bug
    or an unexpected condition keeps its traceback). ``kept``: the folder keeps completed work
    that ``--resume`` continues from, and the message says so."""
    from archopt.errors import WriteError

    if err.errno not in WRITE_ERRNOS:
        return err
    if isinstance(err, WriteError):
        path = err.path if err.path is not None else path
        reason = err.reason or os.strerror(err.errno)
    else:
        reason = err.strerror or os.strerror(err.errno)
    if err.errno in (_errno.ENOSPC, _errno.EDQUOT, _errno.EFBIG):
        fix = "free some space" + ("" if kept else " (or choose another result folder)")
    else:
        fix = "the folder is not writable: fix its permissions" + (
            "" if kept else " or choose another result folder")
    then = ("and rerun with --resume: the work completed before is kept, no file was left "
            "half-written" if kept else "and rerun; no file was left half-written")
    return WriteError(f"cannot write {path}: {reason}; {fix} {then}", path=path,
                      errno=err.errno, reason=reason)


def write_error_kept(err: OSError) -> OSError:
    """:func:`write_error` with ``kept=True`` for an error it made; other errors unchanged."""
    from archopt.errors import WriteError

    return write_error(err.path, err, kept=True) if isinstance(err, WriteError) else err


def to_jsonable(obj: Any) -> Any:
    """Convert numpy / torch scalars and arrays, paths, pydantic models and sets to JSON types.

    Non-finite floats become ``None`` (JSON has no NaN); everything else passes through.
    """
    if hasattr(obj, "model_dump") and callable(obj.model_dump):
        return to_jsonable(obj.model_dump(mode="json"))
    if isinstance(obj, Mapping):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set, frozenset)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        f = float(obj)
        return f if math.isfinite(f) else None
    if isinstance(obj, np.ndarray):
        return to_jsonable(obj.tolist())
    if type(obj).__module__.startswith("torch") and hasattr(obj, "tolist"):
        return to_jsonable(obj.tolist())
    return obj


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (temp file in the same folder, fsync, rename).

    Raises:
        WriteError: the disk is full or the folder not writable (:func:`write_error`); the
            temporary file is removed and a previous ``path`` is left as it was.
    """
    target = Path(path)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    except OSError as err:
        raise write_error(target, err) from None
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException as err:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(err, OSError) and err.errno in WRITE_ERRNOS:
            raise write_error(target, err) from None
        raise
    _fsync_dir(target.parent)
    return target


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Write UTF-8 ``text`` atomically."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike[str], obj: Any, *, indent: int = 2) -> Path:
    """Write ``obj`` as JSON atomically (numpy / torch values converted by :func:`to_jsonable`)."""
    text = json.dumps(to_jsonable(obj), indent=indent, allow_nan=False) + "\n"
    return atomic_write_text(path, text)


def atomic_torch_save(obj: Any, path: str | os.PathLike[str]) -> Path:
    """``torch.save`` to memory, then write the bytes atomically."""
    import torch

    buf = io.BytesIO()
    torch.save(obj, buf)
    return atomic_write_bytes(path, buf.getvalue())


def read_json(path: str | os.PathLike[str]) -> Any:
    """Read a JSON file.

    Raises: DataError (one line naming the file) when it is missing, unreadable, not UTF-8,
        not valid JSON (e.g. truncated) or nested too deeply to parse.
    """
    from archopt.errors import DataError

    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except FileNotFoundError:
        raise DataError(f"{path} is missing") from None
    except json.JSONDecodeError as err:
        raise DataError(f"{path}: invalid JSON at line {err.lineno} column {err.colno}: "
                        f"{err.msg} (truncated or not a JSON file?)") from None
    except RecursionError:
        raise DataError(f"{path}: JSON nested too deeply to read") from None
    except (OSError, UnicodeDecodeError) as err:
        raise DataError(f"cannot read {path}: {err}") from None


_TORCH_ADVICE = ("weights_only", "weights only load failed", "trusted source", "trust the",
                 "documentation of torch.load", "torch.serialization.", "can still be loaded")


def _torch_global(err: BaseException) -> str | None:
    """The global (``posix.system``, ``__main__.C``) an unsafe pickle asked for, if any."""
    m = re.search(r"GLOBAL\s+([\w.]+)", str(err))
    return m.group(1) if m else None


def _torch_reason(err: BaseException) -> str:
    """The informative line of a torch.load error, without torch's advice (to reload with
    ``weights_only=False``, i.e. to run the file's code: wrong advice for a hostile file)."""
    name = _torch_global(err)
    if name is not None:
        return f"it asks for {name}, which weights_only loading does not allow"
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(err))
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    keep = [line for line in lines if not any(a in line.lower() for a in _TORCH_ADVICE)]
    return keep[0] if keep else type(err).__name__


def torch_load(path: str | os.PathLike[str], *, map_location: Any = "cpu",
               what: str = "checkpoint", advice: str = "") -> Any:
    """``torch.load(path, weights_only=True)`` with every failure one line.

    Args:
        what: what the file should be, for the message ("checkpoint", "search state").
        advice: appended to the message for a damaged (not an unsafe) file, e.g. "remove it
            to start afresh".

    Raises:
        CheckpointError: the file is missing or damaged (truncated, not a torch file), or
            asks to run code or build types that weights_only loading refuses (an unsafe
            pickle: refused, never executed; torch's advice to retry unsafely is dropped).
    """
    import pickle
    import zipfile

    import torch

    from archopt.errors import CheckpointError

    p = Path(path)
    if not p.is_file():
        raise CheckpointError(f"{what} {p} not found")
    try:
        return torch.load(p, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        if _torch_global(err) is None:  # garbage, not a payload
            raise CheckpointError(f"{p} is not a readable {what} (truncated or not a torch "
                                  f"file): {_torch_reason(err)}"
                                  + (f"; {advice}" if advice else "")) from None
        raise CheckpointError(f"{p} is not a safe {what}: {_torch_reason(err)}; refused, "
                              "nothing in it was run") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError, KeyError,
            AttributeError, ImportError, IndexError, TypeError, RecursionError,
            MemoryError) as err:
        raise CheckpointError(f"{p} is not a readable {what} (truncated or not a torch file): "
                              f"{_torch_reason(err)}" + (f"; {advice}" if advice else "")
                              ) from None


def read_jsonl(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Read a JSON-lines file; a truncated last line (an interrupted append) is ignored."""
    p = Path(path)
    if not p.exists():
        return []
    rows: list[dict[str, Any]] = []
    with open(p, encoding="utf-8") as fh:
        for line in fh:
            line = line.strip()
            if not line:
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                break
    return rows


def environment_info() -> dict[str, Any]:
    """Versions and machine facts recorded in every ``config.json``."""
    import torch

    from archopt._version import __version__

    info: dict[str, Any] = {
        "archopt": __version__,
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "numpy": np.__version__,
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "cuda": torch.cuda.is_available(),
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    if torch.cuda.is_available():
        info["cuda_device"] = torch.cuda.get_device_name(0)
    return info


class ResultDir:
    """A command's result folder (created on first use).

    Args:
        path: the folder (``--out DIR``).
    """

    CONFIG = "config.json"
    ARCH = "arch.json"
    METRICS = "metrics.jsonl"
    SUMMARY = "summary.json"

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise write_error(self.path, err) from None

    def __repr__(self) -> str:
        return f"ResultDir({str(self.path)!r})"

    def file(self, name: str) -> Path:
        """Path of a file in the folder."""
        return self.path / name

    def exists(self, name: str) -> bool:
        return (self.path / name).exists()

    # -- whole-file records ---------------------------------------------------------------
    def write_config(self, config: Mapping[str, Any], *, name: str = CONFIG) -> Path:
        """Write the resolved config with an ``environment`` block (versions, machine, time)."""
        return atomic_write_json(self.file(name), {**config, "environment": environment_info()})

    def write_json(self, name: str, obj: Any) -> Path:
        return atomic_write_json(self.file(name), obj)

    def read_json(self, name: str) -> Any:
        return read_json(self.file(name))

    def write_summary(self, summary: Mapping[str, Any]) -> Path:
        return self.write_json(self.SUMMARY, summary)

    def read_summary(self) -> dict[str, Any]:
        return self.read_json(self.SUMMARY)

    def read_config(self) -> dict[str, Any]:
        return self.read_json(self.CONFIG)

    def write_arch(self, spec: Any) -> Path:
        """Write an architecture spec (a spec, with its ``space`` tag, or a dict) as
        ``arch.json``."""
        return self.write_json(self.ARCH, spec.to_dict() if hasattr(spec, "to_dict") else spec)

    # -- metrics log ------------------------------------------------------------------------
    def append_metrics(self, row: Mapping[str, Any], *, name: str = METRICS) -> None:
        """Append one JSON line and flush it to disk.

        Raises: WriteError (disk full, not writable): the file is cut back to its previous
            lines, so no partial line is left.
        """
        line = json.dumps(to_jsonable(row), allow_nan=False) + "\n"
        p = self.file(name)
        existed = p.exists()
        start = p.stat().st_size if existed else 0
        try:
            with open(p, "a", encoding="utf-8") as fh:
                fh.write(line)
                fh.flush()
                os.fsync(fh.fileno())
        except OSError as err:
            try:
                if existed:
                    os.truncate(p, start)
                else:
                    p.unlink(missing_ok=True)
            except OSError:
                pass  # the error below is the one to report
            raise write_error(p, err) from None

    def read_metrics(self, *, name: str = METRICS) -> list[dict[str, Any]]:
        return read_jsonl(self.file(name))

    def keep_metrics(self, keep: Callable[[dict[str, Any]], bool], *, name: str = METRICS) -> None:
        """Rewrite the log atomically with only the rows ``keep`` accepts (used on resume)."""
        rows = [r for r in self.read_metrics(name=name) if keep(r)]
        self.write_lines(name, rows)

    def write_lines(self, name: str, rows: Iterable[Mapping[str, Any]]) -> Path:
        text = "".join(json.dumps(to_jsonable(r), allow_nan=False) + "\n" for r in rows)
        return atomic_write_text(self.file(name), text)
