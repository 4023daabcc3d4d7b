"""Result folders: atomic writes keep the old file on failure; logs survive a torn last line."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from archopt.runs import ResultDir, atomic_write_json, read_jsonl, to_jsonable


def test_atomic_write_keeps_previous_on_failure(tmp_path):
    target = tmp_path / "summary.json"
    atomic_write_json(target, {"a": 1})
    with pytest.raises(TypeError):
        atomic_write_json(target, {"a": object()})  # not serialisable: fails before the rename
    assert json.loads(target.read_text()) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["summary.json"]  # no temp file left


def test_jsonable_converts_numpy_torch_and_nan():
    out = to_jsonable({"x": np.float32(1.5), "n": np.int64(3), "t": torch.tensor([1, 2]),
                       "nan": math.nan, "arr": np.arange(2)})
    assert out == {"x": 1.5, "n": 3, "t": [1, 2], "nan": None, "arr": [0, 1]}


def test_metrics_log_tolerates_torn_line_and_keep(tmp_path):
    rd = ResultDir(tmp_path / "run")
    for e in range(3):
        rd.append_metrics({"epoch": e, "loss": 1.0 / (e + 1)})
    with open(rd.file("metrics.jsonl"), "a") as fh:
        fh.write('{"epoch": 3, "lo')  # a crash mid-append
    assert [r["epoch"] for r in rd.read_metrics()] == [0, 1, 2]
    rd.keep_metrics(lambda r: r["epoch"] < 2)
    assert [r["epoch"] for r in read_jsonl(rd.file("metrics.jsonl"))] == [0, 1]


def test_config_records_versions(tmp_path):
    rd = ResultDir(tmp_path)
    rd.write_config({"seed": 3})
    cfg = rd.read_config()
    assert cfg["seed"] == 3 and cfg["environment"]["torch"] == torch.__version__
