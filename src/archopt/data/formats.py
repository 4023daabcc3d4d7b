"""Readers for the datasets' original distribution formats.

- IDX (MNIST, Fashion-MNIST), gzip-compressed or raw: a big-endian header (magic, dims), then
  uint8 data.
- CIFAR-10/100 "python version" batches: pickled dicts. They are read through
  :class:`RestrictedUnpickler`, which resolves only the numpy reconstruction helpers a CIFAR batch
  needs and refuses every other global, so a crafted file cannot run code.
- SVHN ``*_32x32.mat`` (MATLAB v5) through ``scipy.io.loadmat``.
"""

from __future__ import annotations

import gzip
import importlib
import io
import pickle
import struct
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from archopt.errors import DataError, UnsafeFile

__all__ = ["RestrictedUnpickler", "read_cifar_batch", "read_idx", "read_svhn_mat"]

_IDX_TYPES = {0x08: np.uint8}


def _read_bytes(path: Path) -> bytes:
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as fh:
                return fh.read()
        return path.read_bytes()
    except (OSError, EOFError, gzip.BadGzipFile, zlib.error) as err:
        raise DataError(f"cannot read {path}: {err}") from None


def read_idx(path: str | Path) -> np.ndarray:
    """Read an IDX file (``.gz`` or raw) into a uint8 array of its declared shape.

    Raises: DataError for a bad magic number, an unsupported type or a truncated body.
    """
    path = Path(path)
    data = _read_bytes(path)
    if len(data) < 4:
        raise DataError(f"{path}: too short for an IDX header")
    zero, dtype_code, ndim = data[0] << 8 | data[1], data[2], data[3]
    if zero != 0 or dtype_code not in _IDX_TYPES or not 1 <= ndim <= 4:
        raise DataError(f"{path}: not an IDX file of unsigned bytes (magic "
                        f"{int.from_bytes(data[:4], 'big')})")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(f"{path}: truncated IDX header")
    dims = struct.unpack(f">{ndim}I", data[4:header])
    expected = int(np.prod(dims))
    if len(data) - header != expected:
        raise DataError(f"{path}: IDX body holds {len(data) - header} bytes, header declares "
                        f"{expected} (shape {dims}); the file is truncated or corrupt")
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(dims).copy()


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler for CIFAR batches: only numpy's array reconstruction is allowed.

    Raises: UnsafeFile when the pickle names any other global (e.g. ``os.system``), before
    anything is called.
    """

    ALLOWED = frozenset({
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("_codecs", "encode"),  # bytes pickled by Python 3 with protocol 2
    })

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in self.ALLOWED:
            raise UnsafeFile(f"refusing to load {module}.{name} from a pickle: a CIFAR batch "
                             "holds only numpy arrays, lists and strings")
        if module == "numpy.core.multiarray":
            module = "numpy._core.multiarray" if hasattr(np, "_core") else module
        return getattr(importlib.import_module(module), name)


def _text(v: Any) -> str:
    return v.decode("latin1") if isinstance(v, bytes) else str(v)


def read_cifar_batch(path: str | Path) -> dict[str, Any]:
    """Read one CIFAR python batch (``data_batch_1``, ``test_batch``, ``train``, ``meta``...).

    Returns: a dict with str keys; ``data`` as a (N, 3, 32, 32) uint8 array when present,
    labels as an int64 array (``labels``, ``fine_labels``, ``coarse_labels``), name lists as str.
    Raises: UnsafeFile (forbidden globals), DataError (not a CIFAR batch).
    """
    path = Path(path)
    raw = _read_bytes(path)
    try:
        obj = RestrictedUnpickler(io.BytesIO(raw), encoding="bytes").load()
    except UnsafeFile as err:
        raise UnsafeFile(f"{path}: {err}") from None
    except Exception as err:  # any other unpickling failure means a malformed file
        raise DataError(f"{path}: not a CIFAR python batch ({type(err).__name__}: {err})") from None
    if not isinstance(obj, dict):
        raise DataError(f"{path}: not a CIFAR python batch (a dict is expected)")
    out: dict[str, Any] = {}
    for k, v in obj.items():
        key = _text(k)
        if key == "data":
            arr = np.asarray(v)
            if arr.dtype != np.uint8 or arr.ndim != 2 or arr.shape[1] != 3072:
                raise DataError(f"{path}: 'data' must be uint8 of shape (N, 3072), got "
                                f"{arr.dtype} {arr.shape}")
            out[key] = arr.reshape(-1, 3, 32, 32)
        elif key.endswith("labels") and not key.endswith("label_names"):
            out[key] = np.asarray(v, dtype=np.int64)
        elif isinstance(v, list):
            out[key] = [_text(x) for x in v]
        else:
            out[key] = _text(v) if isinstance(v, bytes) else v
    if "data" in out:
        labels = out.get("labels", out.get("fine_labels"))
        if labels is None or len(labels) != len(out["data"]):
            raise DataError(f"{path}: labels missing or not one per image")
    return out


def read_svhn_mat(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Read an SVHN ``*_32x32.mat`` file.

    Returns: (N, 3, 32, 32) uint8 images and (N,) int64 labels in 0..9 (SVHN's label 10 is
    the digit 0).
    Raises: DataError for anything else.
    """
    from scipy.io import loadmat

    path = Path(path)
    try:
        mat = loadmat(path)
    except Exception as err:  # scipy raises several types for malformed files
        raise DataError(f"{path}: not a MATLAB file ({type(err).__name__}: {err})") from None
    if "X" not in mat or "y" not in mat:
        raise DataError(f"{path}: expected variables 'X' and 'y'")
    x, y = np.asarray(mat["X"]), np.asarray(mat["y"]).reshape(-1)
    if x.ndim != 4 or x.shape[:3] != (32, 32, 3) or x.shape[3] != len(y):
        raise DataError(f"{path}: 'X' must be (32, 32, 3, N) with one label per image, got "
                        f"{x.shape} and {len(y)} labels")
    return (np.ascontiguousarray(x.transpose(3, 2, 0, 1)).astype(np.uint8),
            (y.astype(np.int64) % 10))
