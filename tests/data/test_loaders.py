"""Loaders read the distribution formats exactly, verify checksums, and fail clearly and safely."""

from __future__ import annotations

import gzip
import pickle
import shutil

import numpy as np
import pytest
import torch

from archopt.data import dataset_status, load_dataset
from archopt.data.formats import read_idx
from archopt.errors import DataError, UnknownName, UnsafeFile
from tests.data.writers import (
    Evil,
    write_cifar10_like,
    write_cifar100_like,
    write_idx,
    write_mnist_like,
    write_svhn_like,
)


def test_digits_is_embedded_and_stratified():
    ds = load_dataset("digits")
    assert ds.train_x.shape == (1347, 1, 8, 8) and ds.test_x.shape == (450, 1, 8, 8)
    assert ds.train_x.dtype == torch.uint8 and int(ds.train_x.max()) == 255
    test_counts = torch.bincount(ds.test_y, minlength=10)
    all_counts = test_counts + torch.bincount(ds.train_y, minlength=10)
    # stratified: every class keeps a quarter of its examples in the test split (+-1)
    assert torch.all((test_counts - all_counts * 0.25).abs() <= 1)
    again = load_dataset("digits")
    assert torch.equal(again.test_y, ds.test_y)


@pytest.mark.parametrize("compress", [True, False])
def test_idx_round_trip(tmp_path, compress):
    written = write_mnist_like(tmp_path / "mnist", compress=compress)
    ds = load_dataset("mnist", tmp_path, verify=False)
    x, y = written["train"]
    assert torch.equal(ds.train_x[:, 0], torch.from_numpy(x))
    assert torch.equal(ds.train_y, torch.from_numpy(y.astype(np.int64)))
    assert ds.test_x.shape == (10, 1, 28, 28)


def test_own_copy_fails_checksum_naming_the_file(tmp_path):
    write_mnist_like(tmp_path / "mnist")
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte\.gz is corrupt"):
        load_dataset("mnist", tmp_path)


def test_truncated_idx_is_a_data_error(tmp_path):
    p = write_idx(tmp_path / "x-idx3-ubyte", np.zeros((4, 5, 5), np.uint8), compress=False)
    p.write_bytes(p.read_bytes()[:-3])
    with pytest.raises(DataError, match="truncated"):
        read_idx(p)


def test_missing_folder_names_folder_and_files(tmp_path):
    with pytest.raises(DataError) as err:
        load_dataset("fashion-mnist", tmp_path)
    msg = str(err.value)
    assert str(tmp_path / "fashion-mnist") in msg
    assert "train-images-idx3-ubyte.gz" in msg and "zalandoresearch" in msg


def test_unknown_dataset():
    with pytest.raises(UnknownName, match="fashion-mnist"):
        load_dataset("imagenet")


def test_real_fashion_mnist(shared_data):
    ds = load_dataset("fashion-mnist", shared_data)
    assert ds.train_x.shape == (60000, 1, 28, 28) and ds.test_x.shape == (10000, 1, 28, 28)
    assert torch.bincount(ds.train_y).tolist() == [6000] * 10
    assert torch.bincount(ds.test_y).tolist() == [1000] * 10
    assert ds.class_names[9] == "Ankle boot"


def test_real_mnist_and_recompressed_copy(shared_data, tmp_path):
    ds = load_dataset("mnist", shared_data)
    assert ds.train_x.shape == (60000, 1, 28, 28) and int(ds.train_y.max()) == 9
    # A re-compressed copy (other gzip header, same content) still verifies: Debian's copies.
    dst = tmp_path / "mnist"
    dst.mkdir()
    for f in (shared_data / "mnist").iterdir():
        dst.joinpath(f.name).write_bytes(gzip.compress(gzip.decompress(f.read_bytes()), mtime=0))
    again = load_dataset("mnist", tmp_path)
    assert torch.equal(again.test_y, ds.test_y)


def test_corrupt_real_file_is_detected(shared_data, tmp_path):
    dst = tmp_path / "fashion-mnist"
    shutil.copytree(shared_data / "fashion-mnist", dst)
    target = dst / "t10k-labels-idx1-ubyte.gz"
    raw = bytearray(gzip.decompress(target.read_bytes()))
    raw[100] = (raw[100] + 1) % 10  # one label changed
    target.write_bytes(gzip.compress(bytes(raw)))
    with pytest.raises(DataError, match=r"t10k-labels-idx1-ubyte\.gz is corrupt"):
        load_dataset("fashion-mnist", tmp_path)
    rows = {r["name"]: r for r in dataset_status(tmp_path, verify=True)}
    assert rows["fashion-mnist"]["status"] == "corrupt"
    assert "t10k-labels" in rows["fashion-mnist"]["detail"]


def test_cifar10_batches(tmp_path):
    written = write_cifar10_like(tmp_path / "cifar-10-batches-py", n=8)
    ds = load_dataset("cifar10", tmp_path, verify=False)
    assert ds.train_x.shape == (40, 3, 32, 32) and ds.test_x.shape == (8, 3, 32, 32)
    first = written["data_batch_1"]
    assert torch.equal(ds.train_x[:8].reshape(8, -1), torch.from_numpy(first[b"data"]))
    assert ds.train_y[:8].tolist() == first[b"labels"]
    assert ds.class_names[1] == "automobile"
    with pytest.raises(DataError, match="data_batch_1 is corrupt"):
        load_dataset("cifar10", tmp_path)  # not the official files


def test_cifar100_fine_labels(tmp_path):
    written = write_cifar100_like(tmp_path / "cifar-100-python")
    ds = load_dataset("cifar100", tmp_path, verify=False)
    assert ds.num_classes == 100
    assert ds.test_y.tolist() == written["test"][b"fine_labels"]


def test_svhn_mat(tmp_path):
    written = write_svhn_like(tmp_path / "svhn")
    ds = load_dataset("svhn", tmp_path, verify=False)
    x, y = written["test"]
    assert torch.equal(ds.test_x, torch.from_numpy(x.transpose(3, 2, 0, 1).copy()))
    assert ds.test_y.tolist() == [int(v) % 10 for v in y[:, 0]]


def test_pickle_payload_is_refused_and_not_executed(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    write_cifar10_like(folder)
    sentinel = tmp_path / "pwned"
    (folder / "data_batch_3").write_bytes(pickle.dumps({b"data": Evil(sentinel)}, protocol=2))
    with pytest.raises(UnsafeFile, match="refusing"):
        load_dataset("cifar10", tmp_path, verify=False)
    assert not sentinel.exists()
    # the same payload through plain pickle would have run (the test's own control)
    pickle.loads((folder / "data_batch_3").read_bytes())
    assert sentinel.exists()
