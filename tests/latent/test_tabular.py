"""The tabular regression loader (CSV / NPZ), splits and scaling."""

from __future__ import annotations

import numpy as np
import pytest

from archopt.data.tabular import TabularData, load_tabular
from archopt.errors import DataError


def test_csv_with_header_and_named_target(tmp_path):
    p = tmp_path / "d.csv"
    p.write_text("a,target,b\n1,2,3\n4,5,6\n\n7,8,9\n")
    d = load_tabular(p, target="target")
    np.testing.assert_array_equal(d.x, [[1, 3], [4, 6], [7, 9]])
    np.testing.assert_array_equal(d.y, [2, 5, 8])
    assert d.feature_names == ("a", "b") and d.target_name == "target"
    d2 = load_tabular(p, target=0)
    np.testing.assert_array_equal(d2.y, [1, 4, 7])


def test_csv_without_header_uses_the_last_column(tmp_path):
    p = tmp_path / "d.csv"
    p.write_text("0.5,-1,2e-1\n1,2,3\n")
    d = load_tabular(p)
    assert d.x.dtype == np.float32 and d.x.shape == (2, 2)
    np.testing.assert_allclose(d.y, [0.2, 3])
    assert d.feature_names == ("x0", "x1")


def test_npz(tmp_path):
    p = tmp_path / "d.npz"
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(20, 3)), rng.normal(size=(20, 1))
    np.savez(p, x=x, y=y)
    d = load_tabular(p)
    np.testing.assert_allclose(d.x, x.astype(np.float32))
    np.testing.assert_allclose(d.y, y[:, 0].astype(np.float32))


@pytest.mark.parametrize("text,match", [
    ("a,b\n1,x\n", "line 2, column 2"),
    ("1,2\n3\n", "line 2: 1 fields"),
    ("1,2\n3,nan\n", "NaN or infinite"),
    ("a,b\n", "no data rows"),
    ("", "empty"),
    ("1\n2\n", "at least 2 columns"),
])
def test_csv_errors(tmp_path, text, match):
    p = tmp_path / "d.csv"
    p.write_text(text)
    with pytest.raises(DataError, match=match):
        load_tabular(p)


def test_file_errors(tmp_path):
    with pytest.raises(DataError, match="not found"):
        load_tabular(tmp_path / "missing.csv")
    (tmp_path / "d.txt").write_text("1,2\n")
    with pytest.raises(DataError, match="unknown format"):
        load_tabular(tmp_path / "d.txt")
    p = tmp_path / "d.csv"
    p.write_text("a,b\n1,2\n")
    with pytest.raises(DataError, match="no column named 'c'"):
        load_tabular(p, target="c")
    np.savez(tmp_path / "o.npz", x=np.array([{"a": 1}], dtype=object), y=np.zeros(1))
    with pytest.raises(DataError, match="unpickling"):
        load_tabular(tmp_path / "o.npz")
    np.savez(tmp_path / "k.npz", inputs=np.zeros((2, 2)), y=np.zeros(2))
    with pytest.raises(DataError, match="expected arrays 'x' and 'y'"):
        load_tabular(tmp_path / "k.npz")
    np.savez(tmp_path / "n.npz", x=np.zeros((3, 2)), y=np.zeros(2))
    with pytest.raises(DataError, match="3 rows, y 2"):
        load_tabular(tmp_path / "n.npz")


def test_split_sizes_disjoint_and_seeded():
    n = 100
    d = TabularData(np.arange(n * 2, dtype=np.float32).reshape(n, 2),
                    np.arange(n, dtype=np.float32), ("a", "b"))
    s = d.split((0.5, 0.3, 0.2), seed=1)
    assert s.sizes() == {"train": 50, "val": 30, "test": 20}
    ids = np.concatenate([s.y_train, s.y_val, s.y_test])
    assert sorted(ids.tolist()) == list(range(n))
    assert np.array_equal(d.split(seed=1).y_train, s.y_train)
    assert not np.array_equal(d.split(seed=2).y_train, s.y_train)
    np.testing.assert_array_equal(d.split(seed=None).y_train, np.arange(50))
    with pytest.raises(DataError):
        d.split((0.5, 0.5, 0.0))


def test_minmax_scaling_uses_the_training_split():
    x = np.array([[0, 5], [10, 5], [5, 5], [20, 5]], np.float32)
    y = np.zeros(4, np.float32)
    d = TabularData(x, y, ("a", "b"))
    s = d.split((0.5, 0.25, 0.25), seed=None)
    scaled, info = s.minmax_scaled()
    np.testing.assert_allclose(scaled.x_train, [[-1, 0], [1, 0]])   # constant feature -> 0
    np.testing.assert_allclose(scaled.x_val, [[0, 0]])
    np.testing.assert_allclose(scaled.x_test, [[3, 0]])              # outside: not clipped
    assert info["x_min"] == [0, 5] and info["x_max"] == [10, 5]
