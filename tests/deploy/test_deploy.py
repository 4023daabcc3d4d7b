"""``archopt.load_model`` on every family's result folder, and the errors of ``archopt
export`` that need no onnx (bad folder, unknown format, unwritable --out, the extra missing)."""

from __future__ import annotations

import shutil
import sys

import pytest
import torch

import archopt
from archopt.errors import ArchoptError, CheckpointError
from archopt.runs import atomic_torch_save
from tests.families import FAMILIES

KINDS = {"trained": ("trained", "checkpoint.pt"), "design": ("design", "arch.json"),
         "structure-mlp": ("structure", "model.pt"),
         "structure-densenet": ("structure", "model.pt"),
         "refined": ("refined", "checkpoint.pt"), "latent": ("latent", "model.pt")}


@pytest.mark.parametrize("family", FAMILIES)
def test_load_model_of_every_family(families, family):
    folder = families[family]
    model = archopt.load_model(folder)
    kind, name = KINDS[family]
    assert model.archopt_kind == kind and model.archopt_source == str(folder / name)
    assert not model.training
    x = torch.randn(4, *model.archopt_input_shape)
    with torch.no_grad():
        y = model(x)
    classes = 1 if family == "latent" else 10
    assert y.shape == (4, classes)
    if family != "design":  # the weights are the ones in the file
        again = archopt.load_model(folder / name)
        with torch.no_grad():
            assert torch.equal(again(x), y)
    assert model.archopt_spec.space == {"latent": "mlp", "structure-mlp": "mlp",
                                        "structure-densenet": "densenet"}.get(family, "resnet")


def test_design_is_built_with_its_seed(families):
    a, b = archopt.load_model(families["design"]), archopt.load_model(families["design"])
    for p, q in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.equal(p, q)
    assert a.archopt_meta == {"seed": 0, "trained": False}


def test_a_run_folder_loads_its_designed_network(families, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(families["trained"], run / "designed")
    (run / "design").mkdir()
    model = archopt.load_model(run)
    assert model.archopt_source == str(run / "designed" / "checkpoint.pt")


def test_structure_supernet_checkpoint_is_refused_with_advice(families):
    with pytest.raises(CheckpointError, match=r"finished result folder's model\.pt"):
        archopt.load_model(families["structure-mlp"] / "checkpoint.pt")


def test_not_a_result(tmp_path):
    with pytest.raises(ArchoptError, match="not an archopt result folder"):
        archopt.load_model(tmp_path)
    with pytest.raises(ArchoptError, match="does not exist"):
        archopt.load_model(tmp_path / "nothing")
    atomic_torch_save({"weights": torch.zeros(2)}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="not a model archopt wrote"):
        archopt.load_model(tmp_path / "other.pt")


def one_line_exit_2(res) -> str:
    assert res.exit_code == 2, res.output
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in res.output, res.stderr
    return lines[0]


def test_export_errors_are_one_line(cli, families, tmp_path):
    src = families["latent"]
    assert "not an archopt result folder" in one_line_exit_2(
        cli("export", tmp_path, "--out", tmp_path / "m.onnx"))
    assert "unknown export format 'tflite'" in one_line_exit_2(
        cli("export", src, "--format", "tflite", "--out", tmp_path / "m.onnx"))
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert "not a writable folder" in one_line_exit_2(
        cli("export", src, "--out", blocker / "m.onnx"))
    assert "is a folder; name the file" in one_line_exit_2(cli("export", src, "--out", tmp_path))
    assert not list(tmp_path.glob("*.onnx"))


def test_export_without_the_extra_names_the_pip_command(cli, families, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import onnxruntime -> ImportError
    line = one_line_exit_2(cli("export", families["latent"], "--out", tmp_path / "m.onnx"))
    assert "pip install 'archopt[onnx]'" in line and "onnxruntime" in line
    assert not (tmp_path / "m.onnx").exists()
