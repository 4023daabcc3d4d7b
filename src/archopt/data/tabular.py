"""Tabular regression data: ``(x, y)`` from a CSV or NPZ file, splits, and input scaling.

Formats:

- **CSV**: comma-separated numbers, one example per row, an optional header row (detected: a
  first row with any non-numeric field). The target is the last column unless ``target`` names a
  column (header name or 0-based index); every other column is a feature.
- **NPZ** (``numpy.savez``): arrays ``x`` (N, d) or (N,) and ``y`` (N,) or (N, 1) (upper-case
  ``X``/``Y`` accepted). Read with ``allow_pickle=False``: a file holding pickled objects is
  rejected, never unpickled.

Every value must be a finite number; anything else raises :class:`~archopt.errors.DataError`
naming the file, the row/column and what to fix.
"""

from __future__ import annotations

import csv
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from archopt.errors import DataError

__all__ = ["TabularData", "TabularSplits", "load_tabular"]


@dataclass(frozen=True)
class TabularSplits:
    """Train / validation / test arrays (``x``: (N, d) float32, ``y``: (N,) float32)."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray

    @property
    def n_features(self) -> int:
        return int(self.x_train.shape[1])

    def sizes(self) -> dict[str, int]:
        return {"train": len(self.y_train), "val": len(self.y_val), "test": len(self.y_test)}

    def tensors(self, device: torch.device | str = "cpu") -> dict[str, torch.Tensor]:
        """The six arrays as float32 tensors on ``device`` (keys as the attribute names)."""
        return {k: torch.as_tensor(getattr(self, k), dtype=torch.float32, device=device)
                for k in ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test")}

    def fingerprint(self) -> str:
        """SHA-256 of all six arrays (identifies the data a result was computed on)."""
        h = hashlib.sha256()
        for k in ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test"):
            a = np.ascontiguousarray(getattr(self, k), dtype=np.float32)
            h.update(str(a.shape).encode())
            h.update(a.tobytes())
        return h.hexdigest()

    def minmax_scaled(self, low: float = -1.0, high: float = 1.0
                      ) -> tuple[TabularSplits, dict[str, Any]]:
        """Scale every feature affinely so the *training* split spans ``[low, high]``.

        The same map is applied to validation and test (which may fall slightly outside). A
        constant feature is mapped to the middle of the range.

        Returns: ``(scaled splits, {"x_min": [...], "x_max": [...], "low", "high"})``;
        ``x_scaled = low + (x - x_min) / (x_max - x_min) * (high - low)``.
        """
        lo = self.x_train.min(axis=0).astype(np.float64)
        hi = self.x_train.max(axis=0).astype(np.float64)
        span = np.where(hi > lo, hi - lo, 1.0)
        mid = np.where(hi > lo, 0.0, 0.5 * (high - low))

        def f(x: np.ndarray) -> np.ndarray:
            s = np.where(hi > lo, (x - lo) / span, 0.0) * (high - low) + low + mid
            return s.astype(np.float32)

        scaled = TabularSplits(f(self.x_train), self.y_train, f(self.x_val), self.y_val,
                               f(self.x_test), self.y_test)
        return scaled, {"x_min": lo.tolist(), "x_max": hi.tolist(), "low": low, "high": high}


@dataclass(frozen=True)
class TabularData:
    """A regression dataset held in memory.

    Attributes:
        x: (N, d) float32 features.
        y: (N,) float32 target.
        feature_names: d names (``x0, x1, ...`` when the file has none).
        target_name: the target's name.
        source: the file (or generator) it came from.
    """

    x: np.ndarray
    y: np.ndarray
    feature_names: tuple[str, ...]
    target_name: str = "y"
    source: str = ""

    def __post_init__(self) -> None:
        if self.x.ndim != 2 or self.y.ndim != 1 or len(self.x) != len(self.y):
            raise DataError(f"{self.source or 'data'}: x must be (N, d) and y (N,), got "
                            f"{self.x.shape} and {self.y.shape}")
        if len(self.feature_names) != self.x.shape[1]:
            raise DataError(f"{self.source or 'data'}: {len(self.feature_names)} feature names "
                            f"for {self.x.shape[1]} features")

    def __len__(self) -> int:
        return len(self.y)

    def split(self, fractions: tuple[float, float, float] = (0.5, 0.3, 0.2), *,
              seed: int | None = 0) -> TabularSplits:
        """Train / validation / test splits by ``fractions`` (paper: 50k / 30k / 20k of 100k).

        ``seed``: rows are shuffled with ``numpy.random.default_rng(seed)`` first; None keeps the
        file order. Sizes: ``floor(f * N)`` for train and val, the rest for test.

        Raises: DataError when a split would be empty or the fractions do not sum to 1.
        """
        if len(fractions) != 3 or any(f <= 0 for f in fractions) or abs(sum(fractions) - 1) > 1e-6:
            raise DataError(f"split fractions must be 3 positive numbers summing to 1, got "
                            f"{fractions}")
        n = len(self)
        n_tr, n_va = int(fractions[0] * n), int(fractions[1] * n)
        if n_tr < 1 or n_va < 1 or n - n_tr - n_va < 1:
            raise DataError(f"{self.source or 'data'}: {n} rows are too few for a train / val / "
                            f"test split of {fractions}")
        idx = (np.arange(n) if seed is None else np.random.default_rng(seed).permutation(n))
        a, b = idx[:n_tr], idx[n_tr:n_tr + n_va]
        c = idx[n_tr + n_va:]
        return TabularSplits(self.x[a], self.y[a], self.x[b], self.y[b], self.x[c], self.y[c])


def _is_number(s: str) -> bool:
    try:
        float(s)
    except ValueError:
        return False
    return True


def _target_index(target: str | int | None, header: list[str] | None, ncol: int,
                  path: Path) -> int:
    if target is None:
        return ncol - 1
    if isinstance(target, int) or (isinstance(target, str) and target.lstrip("-").isdigit()):
        i = int(target)
        if not -ncol <= i < ncol:
            raise DataError(f"{path}: target column {i} out of range (the file has {ncol} "
                            "columns)")
        return i % ncol
    if header is None or target not in header:
        have = ", ".join(header) if header else "no header row"
        raise DataError(f"{path}: no column named {target!r} ({have}); pass a column name or a "
                        "0-based index")
    return header.index(target)


def _read_csv(path: Path, target: str | int | None) -> TabularData:
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            rows = [r for r in csv.reader(fh) if r and any(c.strip() for c in r)]
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise DataError(f"cannot read CSV {path}: {err}") from None
    if not rows:
        raise DataError(f"{path} is empty; expected rows of numbers (features..., target)")
    header = None
    if not all(_is_number(c) for c in rows[0]):
        header = [c.strip() for c in rows[0]]
        rows = rows[1:]
    if not rows:
        raise DataError(f"{path} has a header but no data rows")
    ncol = len(header) if header else len(rows[0])
    if ncol < 2:
        raise DataError(f"{path}: need at least 2 columns (a feature and the target), got {ncol}")
    data = np.empty((len(rows), ncol), dtype=np.float64)
    for i, r in enumerate(rows):
        line = i + (2 if header else 1)
        if len(r) != ncol:
            raise DataError(f"{path}, line {line}: {len(r)} fields, expected {ncol}")
        for j, c in enumerate(r):
            try:
                data[i, j] = float(c)
            except ValueError:
                raise DataError(f"{path}, line {line}, column {j + 1}: {c!r} is not a number"
                                ) from None
    ti = _target_index(target, header, ncol, path)
    feats = [j for j in range(ncol) if j != ti]
    if header:
        fnames, tname = tuple(header[j] for j in feats), header[ti]
    else:
        fnames, tname = tuple(f"x{k}" for k in range(len(feats))), "y"
    return _finish(data[:, feats], data[:, ti], fnames, tname, path)


def _read_npz(path: Path) -> TabularData:
    try:
        with np.load(path, allow_pickle=False) as z:
            keys = set(z.files)
            kx = "x" if "x" in keys else "X" if "X" in keys else None
            ky = "y" if "y" in keys else "Y" if "Y" in keys else None
            if kx is None or ky is None:
                raise DataError(f"{path}: expected arrays 'x' and 'y' (found: "
                                f"{', '.join(sorted(keys)) or 'none'})")
            x, y = z[kx], z[ky]
    except DataError:
        raise
    except ValueError as err:  # object arrays need pickle: refused
        raise DataError(f"{path}: cannot read without unpickling ({err}); save plain numeric "
                        "arrays with numpy.savez") from None
    except (OSError, EOFError) as err:
        raise DataError(f"cannot read NPZ {path}: {err}") from None
    if x.ndim == 1:
        x = x[:, None]
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if x.ndim != 2 or y.ndim != 1:
        raise DataError(f"{path}: x must be (N, d) and y (N,) for one regression target, got "
                        f"{x.shape} and {y.shape}")
    if len(x) != len(y):
        raise DataError(f"{path}: x has {len(x)} rows, y {len(y)}")
    if not (np.issubdtype(x.dtype, np.number) and np.issubdtype(y.dtype, np.number)):
        raise DataError(f"{path}: x and y must be numeric, got {x.dtype} and {y.dtype}")
    return _finish(x.astype(np.float64), y.astype(np.float64),
                   tuple(f"x{j}" for j in range(x.shape[1])), "y", path)


def _finish(x: np.ndarray, y: np.ndarray, names: tuple[str, ...], tname: str,
            path: Path) -> TabularData:
    if len(y) == 0:
        raise DataError(f"{path} holds no rows")
    bad = ~np.isfinite(x).all(axis=1) | ~np.isfinite(y)
    if bad.any():
        i = int(np.argmax(bad))
        raise DataError(f"{path}: row {i} (0-based, data rows) has a NaN or infinite value; "
                        "remove or impute it")
    return TabularData(x.astype(np.float32), y.astype(np.float32), names, tname, str(path))


def load_tabular(path: str | Path, *, target: str | int | None = None) -> TabularData:
    """Read a tabular regression dataset from ``.csv`` or ``.npz``.

    Args:
        path: the file.
        target: CSV only: the target column (header name or 0-based index); default the last.

    Raises: DataError (missing file, unknown format, malformed or non-finite content).
    """
    p = Path(path)
    if not p.exists():
        raise DataError(f"data file {p} not found (expected a .csv of rows 'features..., target' "
                        "or a .npz with arrays x and y)")
    if p.is_dir():
        raise DataError(f"{p} is a folder; pass a .csv or .npz file")
    suffix = p.suffix.lower()
    if suffix == ".csv":
        return _read_csv(p, target)
    if suffix == ".npz":
        if target is not None:
            raise DataError(f"{p}: 'target' applies to CSV files; an NPZ has its own y array")
        return _read_npz(p)
    raise DataError(f"{p}: unknown format {suffix or '(no suffix)'!r}; use .csv or .npz")
