"""Write small datasets in the exact distribution formats (IDX, CIFAR python batches, SVHN .mat),
so the loaders are tested on files like the real ones without the real data."""

from __future__ import annotations

import gzip
import pickle
import struct
from pathlib import Path

import numpy as np


def write_idx(path: Path, array: np.ndarray, *, compress: bool = True) -> Path:
    """IDX: magic (0, 0, 0x08, ndim), big-endian dims, uint8 body; ``.gz`` when compressed."""
    array = np.asarray(array, dtype=np.uint8)
    raw = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    raw += array.tobytes()
    if compress:
        path = path.with_name(path.name + ".gz")
        path.write_bytes(gzip.compress(raw))
    else:
        path.write_bytes(raw)
    return path


def write_mnist_like(folder: Path, n_train: int = 30, n_test: int = 10, *, compress: bool = True,
                     seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for split, n in (("train", n_train), ("t10k", n_test)):
        x = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        y = rng.integers(0, 10, size=n, dtype=np.uint8)
        write_idx(folder / f"{split}-images-idx3-ubyte", x, compress=compress)
        write_idx(folder / f"{split}-labels-idx1-ubyte", y, compress=compress)
        out[split] = (x, y)
    return out


def _batch(n: int, rng: np.random.Generator, classes: int, fine: bool) -> dict:
    data = rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)
    labels = [int(v) for v in rng.integers(0, classes, size=n)]
    d = {b"batch_label": b"training batch 1 of 5", b"data": data,
         b"filenames": [f"img_{i}.png".encode() for i in range(n)]}
    if fine:
        d[b"fine_labels"] = labels
        d[b"coarse_labels"] = [v // 5 for v in labels]
    else:
        d[b"labels"] = labels
    return d


def _dump(path: Path, obj: object) -> None:
    # Protocol 2 with bytes keys: what Python 2's cPickle wrote, read back with encoding="bytes".
    path.write_bytes(pickle.dumps(obj, protocol=2))


def write_cifar10_like(folder: Path, n: int = 8, seed: int = 0) -> dict[str, dict]:
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    batches = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batches[name] = _batch(n, rng, 10, fine=False)
        _dump(folder / name, batches[name])
    names = [b"airplane", b"automobile", b"bird", b"cat", b"deer", b"dog", b"frog", b"horse",
             b"ship", b"truck"]
    _dump(folder / "batches.meta", {b"label_names": names, b"num_cases_per_batch": n,
                                    b"num_vis": 3072})
    return batches


def write_cifar100_like(folder: Path, n: int = 12, seed: int = 0) -> dict[str, dict]:
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    out = {"train": _batch(n, rng, 100, fine=True), "test": _batch(n, rng, 100, fine=True)}
    for k, v in out.items():
        _dump(folder / k, v)
    _dump(folder / "meta", {b"fine_label_names": [f"class{i}".encode() for i in range(100)],
                            b"coarse_label_names": [f"super{i}".encode() for i in range(20)]})
    return out


def write_svhn_like(folder: Path, n: int = 6, seed: int = 0) -> dict[str, tuple]:
    from scipy.io import savemat

    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for split in ("train", "test"):
        x = rng.integers(0, 256, size=(32, 32, 3, n), dtype=np.uint8)
        y = rng.integers(1, 11, size=(n, 1)).astype(np.uint8)  # 1..10, 10 = digit 0
        savemat(folder / f"{split}_32x32.mat", {"X": x, "y": y})
        out[split] = (x, y)
    return out


class Evil:
    """A pickle payload that would run a shell command when unpickled by plain ``pickle``."""

    def __init__(self, sentinel: Path) -> None:
        self.sentinel = sentinel

    def __reduce__(self):
        import os

        return (os.system, (f"touch {self.sentinel}",))
