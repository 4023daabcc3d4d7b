"""Checkpoints: the loaded model reproduces the evaluation; unsafe / broken files are refused."""

from __future__ import annotations

import pickle

import pytest
import torch
from torch import nn

from archopt.errors import CheckpointError
from archopt.runs import read_json
from archopt.spaces import load_spec, spec_from_dict
from archopt.training import (
    evaluate,
    load_checkpoint,
    load_model,
    save_checkpoint,
    spec_from_checkpoint,
)
from archopt.training.checkpoint import dataset_meta


def test_loaded_model_reproduces_the_run_evaluation(digits_run, digits):
    result, out = digits_run
    model, spec, meta = load_model(out / "checkpoint.pt")
    assert not model.training
    assert spec == result.spec == spec_from_dict(read_json(out / "arch.json"))
    assert meta["dataset"] == "digits" and meta["num_classes"] == 10 and meta["epoch"] == 2
    assert tuple(meta["mean"]) == pytest.approx(digits.mean)
    got = evaluate(model, digits.test_x, digits.test_y, mean=tuple(meta["mean"]),
                   std=tuple(meta["std"]), num_classes=meta["num_classes"])
    summary = read_json(out / "summary.json")
    assert got["accuracy"] == summary["test_accuracy"]
    assert got["macro_f1"] == summary["test_macro_f1"]
    assert got["loss"] == pytest.approx(summary["test_loss"], rel=1e-6)
    for k, v in result.model.state_dict().items():
        assert torch.equal(v.cpu(), model.state_dict()[k])


def test_spec_from_checkpoint_and_load_spec_read_pt(digits_run):
    result, out = digits_run
    assert spec_from_checkpoint(out / "checkpoint.pt") == result.spec
    assert load_spec(str(out / "checkpoint.pt")) == result.spec
    assert load_spec(str(out)) == result.spec  # the result folder (arch.json)


class Tiny(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(64, 10)

    def forward(self, x):
        return self.fc(x.flatten(1))


def test_user_module_checkpoint_needs_the_module(tmp_path, digits):
    torch.manual_seed(0)
    m = Tiny()
    path = save_checkpoint(tmp_path / "m.pt", m, meta=dataset_meta(digits))  # no optimizer
    with pytest.raises(CheckpointError, match="module="):
        load_model(path)
    with pytest.raises(CheckpointError, match="no architecture spec"):
        spec_from_checkpoint(path)
    loaded, spec, meta = load_model(path, module=Tiny())
    assert spec is None and meta["input_shape"] == [1, 8, 8]
    x = torch.randn(3, 1, 8, 8)
    assert torch.equal(loaded(x), m(x))
    with pytest.raises(CheckpointError, match="do not fit"):
        load_model(path, module=nn.Sequential(nn.Flatten(), nn.Linear(64, 3)))


class _Payload:
    def __reduce__(self):
        import os

        return (os.system, ("touch PWNED_MARKER",))


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_unsafe_truncated_and_foreign_files_are_refused(tmp_path, monkeypatch, digits_run):
    monkeypatch.chdir(tmp_path)
    evil = tmp_path / "evil.pt"
    torch.save({"format": "archopt.checkpoint", "model": {}, "x": _Payload()}, evil)
    with pytest.raises(CheckpointError, match="not a safe checkpoint"):
        load_checkpoint(evil)
    raw = tmp_path / "raw.pt"
    raw.write_bytes(pickle.dumps(_Payload()))
    with pytest.raises(CheckpointError):
        load_checkpoint(raw)
    assert not (tmp_path / "PWNED_MARKER").exists()

    _, out = digits_run
    cut = tmp_path / "cut.pt"
    cut.write_bytes((out / "checkpoint.pt").read_bytes()[:5000])
    with pytest.raises(CheckpointError, match="not a readable checkpoint"):
        load_checkpoint(cut)
    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": torch.zeros(2)}, foreign)
    with pytest.raises(CheckpointError, match="not an archopt checkpoint"):
        load_checkpoint(foreign)
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "absent.pt")


def test_save_refuses_what_weights_only_cannot_load(tmp_path):
    with pytest.raises(CheckpointError, match=r"meta\.when"):
        save_checkpoint(tmp_path / "x.pt", Tiny(), meta={"when": object()})
    assert not (tmp_path / "x.pt").exists()
