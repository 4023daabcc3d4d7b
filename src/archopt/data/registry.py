"""The dataset registry: names, folders, files, checksums, loaders; ``load_dataset``.

``data_dir`` (``--data-dir``, default ``$ARCHOPT_DATA_DIR``, else ``~/.archopt/data``) holds one
folder per dataset:

=================  ======================  ==========================================
name               folder                  files
=================  ======================  ==========================================
digits             (embedded)              scikit-learn's bundled 8x8 digits
mnist              ``mnist/``              ``{train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]``
fashion-mnist      ``fashion-mnist/``      same names as MNIST
cifar10            ``cifar-10-batches-py/``  ``data_batch_1..5``, ``test_batch``, ``batches.meta``
cifar100           ``cifar-100-python/``   ``train``, ``test``, ``meta``
svhn               ``svhn/``               ``train_32x32.mat``, ``test_32x32.mat``
=================  ======================  ==========================================

Every file is checked against the MD5 of the official distribution (for IDX files, the ``.gz``
archive's or the decompressed content's, so a re-compressed copy of the same data passes). A
missing or corrupt file is a :class:`~archopt.errors.DataError` naming the folder, the files
expected and where to get them.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import json
import os
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import torch

from archopt.data.dataset import ImageDataset
from archopt.data.formats import read_cifar_batch, read_idx, read_svhn_mat
from archopt.errors import DataError, UnknownName

__all__ = [
    "DATASETS",
    "DatasetInfo",
    "FileSpec",
    "dataset_status",
    "default_data_dir",
    "load_dataset",
    "register_dataset",
    "verify_file",
]

ENV_DATA_DIR = "ARCHOPT_DATA_DIR"


def default_data_dir() -> Path:
    """``$ARCHOPT_DATA_DIR`` if set, else ``~/.archopt/data``."""
    env = os.environ.get(ENV_DATA_DIR)
    return Path(env) if env else Path.home() / ".archopt" / "data"


@dataclass(frozen=True)
class FileSpec:
    """A file of a dataset: accepted names (first = the official one) and checksums.

    Attributes:
        names: file names accepted, e.g. ``("train-images-idx3-ubyte.gz",
            "train-images-idx3-ubyte")``.
        md5: MD5 of the official file (``names[0]``).
        content_md5: MD5 of the decompressed content (gzip files) -- accepts a raw copy or a
            re-compressed archive of the same data.
    """

    names: tuple[str, ...]
    md5: str
    content_md5: str | None = None


@dataclass(frozen=True)
class DatasetInfo:
    """A registered dataset."""

    name: str
    folder: str | None
    files: dict[str, FileSpec]
    source: str
    num_classes: int
    in_channels: int
    resolution: int
    loader: Callable[[dict[str, Path]], ImageDataset]
    description: str = ""
    aliases: tuple[str, ...] = field(default=())

    @property
    def embedded(self) -> bool:
        return self.folder is None


DATASETS: dict[str, DatasetInfo] = {}


def register_dataset(info: DatasetInfo) -> DatasetInfo:
    """Add a dataset to the registry (under its name and aliases)."""
    for n in (info.name, *info.aliases):
        DATASETS[n] = info
    return info


def _md5(path: Path, *, gunzip: bool = False) -> str:
    h = hashlib.md5()
    opener = gzip.open if gunzip else open
    with opener(path, "rb") as fh:  # type: ignore[operator]
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@functools.lru_cache(maxsize=64)
def _verified(path: str, size: int, mtime_ns: int, md5: str, content_md5: str | None) -> str | None:
    p = Path(path)
    try:
        digest = _md5(p)
        if digest in (md5, content_md5):
            return None
        if content_md5 and p.suffix == ".gz" and _md5(p, gunzip=True) == content_md5:
            return None
    except (OSError, EOFError, gzip.BadGzipFile, zlib.error) as err:
        return f"unreadable ({err})"
    return f"md5 {digest}, expected {md5}"


def verify_file(path: Path, spec: FileSpec) -> str | None:
    """None when ``path`` matches ``spec``'s checksums, else the reason it does not."""
    st = path.stat()
    return _verified(str(path.resolve()), st.st_size, st.st_mtime_ns, spec.md5, spec.content_md5)


def _info(name: str) -> DatasetInfo:
    key = name.lower()
    if key not in DATASETS:
        names = sorted({i.name for i in DATASETS.values()})
        raise UnknownName(f"unknown dataset {name!r} (known: {', '.join(names)})")
    return DATASETS[key]


def _expected(info: DatasetInfo) -> str:
    return ", ".join(fs.names[0] for fs in info.files.values())


def _resolve(info: DatasetInfo, folder: Path) -> tuple[dict[str, Path], list[str]]:
    found, missing = {}, []
    for key, fs in info.files.items():
        for n in fs.names:
            if (folder / n).is_file():
                found[key] = folder / n
                break
        else:
            missing.append(fs.names[0])
    return found, missing


def load_dataset(name: str, data_dir: str | os.PathLike[str] | None = None, *,
                 verify: bool = True) -> ImageDataset:
    """Load a registered dataset, decoded into memory.

    Args:
        name: registry name (``digits``, ``mnist``, ``fashion-mnist``, ``cifar10``, ``cifar100``,
            ``svhn``).
        data_dir: folder holding one sub-folder per dataset (default :func:`default_data_dir`).
        verify: check every file against the official MD5 (False loads a user's own copy in the
            same format -- it is still parsed safely).

    Returns: an :class:`ImageDataset`.
    Raises: UnknownName; DataError (folder or files missing, checksum mismatch, malformed file);
        UnsafeFile (a pickle that asks for code).
    """
    info = _info(name)
    if info.embedded:
        return info.loader({})
    base = Path(data_dir) if data_dir is not None else default_data_dir()
    folder = base / info.folder  # type: ignore[operator]
    where = f"get them from {info.source}"
    if not folder.is_dir():
        raise DataError(f"dataset {info.name}: folder {folder} not found; expected files "
                        f"{_expected(info)} there ({where}); set --data-dir or "
                        f"${ENV_DATA_DIR} to the folder that holds {info.folder}/")
    paths, missing = _resolve(info, folder)
    if missing:
        raise DataError(f"dataset {info.name}: {folder} lacks {', '.join(missing)} (expected "
                        f"{_expected(info)}; {where})")
    if verify:
        for key, path in paths.items():
            problem = verify_file(path, info.files[key])
            if problem:
                raise DataError(f"dataset {info.name}: {path} is corrupt or not the official "
                                f"file ({problem}); re-download it ({where}), or pass "
                                "--no-verify to load your own copy in the same format")
    return _load_cached(info.name, tuple(sorted((k, str(p), p.stat().st_mtime_ns)
                                                for k, p in paths.items())))


@functools.lru_cache(maxsize=4)
def _load_cached(name: str, files: tuple[tuple[str, str, int], ...]) -> ImageDataset:
    return DATASETS[name].loader({k: Path(p) for k, p, _ in files})


def dataset_status(data_dir: str | os.PathLike[str] | None = None, *,
                   verify: bool = False) -> list[dict[str, Any]]:
    """Every registered dataset with its state in ``data_dir``.

    Returns: rows ``{name, status, folder, detail}``; status is ``embedded``, ``absent`` (no
    folder), ``incomplete`` (files missing), ``present`` (not verified), ``ok`` (verified) or
    ``corrupt`` (detail names the file).
    """
    base = Path(data_dir) if data_dir is not None else default_data_dir()
    rows = []
    for info in sorted({i.name: i for i in DATASETS.values()}.values(), key=lambda i: i.name):
        row: dict[str, Any] = {"name": info.name, "folder": None, "detail": info.description}
        if info.embedded:
            rows.append({**row, "status": "embedded"})
            continue
        folder = base / info.folder  # type: ignore[operator]
        row["folder"] = str(folder)
        if not folder.is_dir():
            rows.append({**row, "status": "absent", "detail": f"get it from {info.source}"})
            continue
        paths, missing = _resolve(info, folder)
        if missing:
            rows.append({**row, "status": "incomplete", "detail": f"missing {', '.join(missing)}"})
            continue
        status, detail = "present", info.description
        if verify:
            status = "ok"
            for key, path in paths.items():
                problem = verify_file(path, info.files[key])
                if problem:
                    status, detail = "corrupt", f"{path}: {problem}"
                    break
        rows.append({**row, "status": status, "detail": detail})
    return rows


# -- loaders ---------------------------------------------------------------------------------

def _tensor_split(x: np.ndarray, y: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.from_numpy(np.ascontiguousarray(x)), torch.from_numpy(y.astype(np.int64))


def _idx_loader(name: str, classes: tuple[str, ...]) -> Callable[[dict[str, Path]], ImageDataset]:
    def load(paths: dict[str, Path]) -> ImageDataset:
        parts = {}
        for split in ("train", "test"):
            x = read_idx(paths[f"{split}_images"])
            y = read_idx(paths[f"{split}_labels"])
            if x.ndim != 3 or y.ndim != 1 or len(x) != len(y):
                raise DataError(f"{paths[f'{split}_images']}: expected (N, H, W) images and N "
                                f"labels, got {x.shape} and {y.shape}")
            if y.max(initial=0) >= len(classes):
                raise DataError(f"{paths[f'{split}_labels']}: label {int(y.max())} out of range")
            parts[split] = _tensor_split(x[:, None], y)
        return ImageDataset(name, *parts["train"], *parts["test"], num_classes=len(classes),
                            class_names=classes)

    return load


def _cifar_loader(name: str, train: list[str], test: str, meta: str, label_key: str,
                  names_key: str) -> Callable[[dict[str, Path]], ImageDataset]:
    def load(paths: dict[str, Path]) -> ImageDataset:
        def read(keys: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
            xs, ys = [], []
            for k in keys:
                batch = read_cifar_batch(paths[k])
                if label_key not in batch:
                    raise DataError(f"{paths[k]}: no {label_key!r} entry")
                xs.append(batch["data"])
                ys.append(batch[label_key])
            return _tensor_split(np.concatenate(xs), np.concatenate(ys))

        meta_d = read_cifar_batch(paths[meta])
        classes = tuple(meta_d.get(names_key, []))
        if not classes:
            raise DataError(f"{paths[meta]}: no {names_key!r} entry")
        tx, ty = read(train)
        vx, vy = read([test])
        if int(max(ty.max(), vy.max())) >= len(classes):
            raise DataError(f"{name}: a label is out of range for {len(classes)} classes")
        return ImageDataset(name, tx, ty, vx, vy, num_classes=len(classes), class_names=classes)

    return load


def _svhn(paths: dict[str, Path]) -> ImageDataset:
    tx, ty = _tensor_split(*read_svhn_mat(paths["train"]))
    vx, vy = _tensor_split(*read_svhn_mat(paths["test"]))
    return ImageDataset("svhn", tx, ty, vx, vy, num_classes=10,
                        class_names=tuple(str(i) for i in range(10)))


@functools.lru_cache(maxsize=1)
def _digits(_: Any = None) -> ImageDataset:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    d = load_digits()
    x = np.rint(d.images * (255.0 / 16.0)).astype(np.uint8)[:, None]
    y = d.target.astype(np.int64)
    xtr, xte, ytr, yte = train_test_split(x, y, test_size=0.25, stratify=y, random_state=0)
    return ImageDataset("digits", *_tensor_split(xtr, ytr), *_tensor_split(xte, yte),
                        num_classes=10, class_names=tuple(str(i) for i in range(10)))


@functools.lru_cache(maxsize=1)
def _checksums() -> dict[str, Any]:
    """The checksum table (``checksums.json`` beside this module): dataset -> file key ->
    ``{"names", "md5", "content_md5"}``."""
    text = resources.files("archopt.data").joinpath("checksums.json").read_text("utf-8")
    return json.loads(text)


def _files(dataset: str) -> dict[str, FileSpec]:
    """The files of ``dataset`` as :class:`FileSpec` records, from the checksum table."""
    return {k: FileSpec(tuple(f["names"]), f["md5"], f.get("content_md5"))
            for k, f in _checksums()[dataset].items()}


_DIGITS = tuple(str(i) for i in range(10))
_FASHION = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker",
            "Bag", "Ankle boot")

register_dataset(DatasetInfo(
    "digits", None, {}, "scikit-learn (bundled)", 10, 1, 8, lambda _: _digits(),
    description="scikit-learn's 8x8 handwritten digits (1347 train / 450 test, stratified, "
                "seed 0); embedded, no download"))
register_dataset(DatasetInfo(
    "mnist", "mnist", _files("mnist"), "http://yann.lecun.com/exdb/mnist/", 10, 1, 28,
    _idx_loader("mnist", _DIGITS),
    description="MNIST handwritten digits, 28x28x1, 60k/10k"))
register_dataset(DatasetInfo(
    "fashion-mnist", "fashion-mnist", _files("fashion-mnist"),
    "https://github.com/zalandoresearch/fashion-mnist", 10, 1, 28,
    _idx_loader("fashion-mnist", _FASHION), aliases=("fashion_mnist", "fmnist"),
    description="Fashion-MNIST (Zalando), 28x28x1, 60k/10k"))
register_dataset(DatasetInfo(
    "cifar10", "cifar-10-batches-py", _files("cifar10"),
    "https://www.cs.toronto.edu/~kriz/cifar.html (CIFAR-10 python version)", 10, 3, 32,
    _cifar_loader("cifar10", [f"data_batch_{i}" for i in range(1, 6)], "test_batch",
                  "batches.meta", "labels", "label_names"), aliases=("cifar-10",),
    description="CIFAR-10, 32x32x3, 50k/10k"))
register_dataset(DatasetInfo(
    "cifar100", "cifar-100-python", _files("cifar100"),
    "https://www.cs.toronto.edu/~kriz/cifar.html (CIFAR-100 python version)", 100, 3, 32,
    _cifar_loader("cifar100", ["train"], "test", "meta", "fine_labels", "fine_label_names"),
    aliases=("cifar-100",), description="CIFAR-100 (fine labels), 32x32x3, 50k/10k"))
register_dataset(DatasetInfo(
    "svhn", "svhn", _files("svhn"),
    "http://ufldl.stanford.edu/housenumbers/ (format 2, *_32x32.mat)", 10, 3, 32, _svhn,
    description="SVHN cropped digits, 32x32x3, 73k/26k (label 10 -> 0)"))
