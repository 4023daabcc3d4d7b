"""The bad-input suite: every input a user can get wrong is one line on stderr, exit 2, and
leaves nothing behind (issue 13). Each case names the kind of input it stands for."""

from __future__ import annotations

import json
from pathlib import Path

import pytest


def one_line_exit_2(res) -> str:
    assert res.exit_code == 2, res.output
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, res.stderr
    assert "Traceback" not in res.output
    return lines[0]


def _write(path: Path, obj) -> Path:
    path.write_text(obj if isinstance(obj, str) else json.dumps(obj))
    return path


DEEP_RESNET = {"space": "resnet", "in_channels": 1, "resolution": 8, "stem": {"out": 8},
               "blocks": [{"out": 8, "btn": 4, "L": 10**6}]}
WIDE_MLP = {"space": "mlp", "in_features": 64, "widths": [10**9]}


# -- oversized specs: refused before allocating, naming the estimate against the machine ----
@pytest.mark.parametrize("spec", [DEEP_RESNET, WIDE_MLP], ids=["resnet-1e6-layers", "mlp-1e9-wide"])
@pytest.mark.parametrize("verb", ["train", "summary"])
def test_oversized_spec_refused_before_allocating(cli, tmp_path, spec, verb):
    path = _write(tmp_path / "big.json", spec)
    out = tmp_path / "out"
    args = ["train", path, "--data", "digits", "--epochs", "1", "--out", out] \
        if verb == "train" else ["summary", path]
    line = one_line_exit_2(cli(*args))
    assert "of memory (estimate)" in line and "is available here" in line
    assert "refused before allocating" in line
    assert not out.exists()


def test_memory_estimate_counts_the_built_module():
    """The estimate's parameter count is the built module's (an independent count)."""
    from archopt.spaces import load_spec

    for name in ("cnn-small", "resnet18"):
        spec = load_spec(name)
        est = spec.memory_estimate()
        model = spec.build()
        weights = sum(p.numel() for n, p in model.named_parameters() if "bn" not in n)
        assert est["params"] == spec.params()
        assert est["params"] >= weights  # conv/linear weights at least (BN is extra)
        assert est["module"] >= 4 * est["params"]


def test_check_memory_refuses_against_given_memory():
    from archopt.errors import ResourceLimit
    from archopt.spaces import load_spec

    spec = load_spec("resnet18")
    est = spec.check_memory(available=1 << 40)  # 1 TB: fits
    with pytest.raises(ResourceLimit) as info:
        spec.check_memory(available=int(est["total"]))  # needs more than 90 % of it
    assert info.value.needed == int(est["total"]) and "ResNet-18" in str(info.value)


def test_memory_check_can_be_switched_off(monkeypatch):
    from archopt.runtime.memory import require_memory

    monkeypatch.setenv("ARCHOPT_NO_MEMORY_CHECK", "1")
    require_memory(1e30, "anything", available=1)


# -- spec files --------------------------------------------------------------------------------
@pytest.mark.parametrize("text", [
    "[" * 100_000 + "]" * 100_000,
    '{"space": ' + "[" * 100_000 + "]" * 100_000 + "}",
    '{"space": "mlp", "in_features": ' + "{" * 50_000,
], ids=["nested-list", "nested-in-object", "truncated-nested"])
@pytest.mark.parametrize("verb", ["score", "summary"])
def test_deeply_nested_spec_json(cli, tmp_path, text, verb):
    path = _write(tmp_path / "nested.json", text)
    line = one_line_exit_2(cli(verb, path))
    assert "nested.json" in line


def test_spec_error_prefix_once(cli, tmp_path):
    path = _write(tmp_path / "bad.json", {"space": "mlp", "in_features": "x"})
    line = one_line_exit_2(cli("score", path))
    assert line.count("invalid mlp spec") == 1 and "in_features" in line


# -- result folders read back ------------------------------------------------------------------
def _fake_run(folder: Path, summary_text: str) -> Path:
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"run": {}}))
    (folder / "summary.json").write_text(summary_text)
    return folder


@pytest.mark.parametrize("summary", [
    '{"designed": {"test_accuracy": 0.98', "", "\xff\xfe", "[" * 100_000 + "]" * 100_000,
], ids=["truncated", "empty", "not-utf8", "nested"])
def test_report_on_damaged_summary(cli, tmp_path, summary):
    folder = _fake_run(tmp_path / "run", summary)
    before = sorted(p.name for p in folder.iterdir())
    line = one_line_exit_2(cli("report", folder))
    assert "summary.json" in line
    assert sorted(p.name for p in folder.iterdir()) == before


@pytest.mark.parametrize("make", ["empty-folder", "train-folder", "absent", "a-file"])
def test_report_on_a_folder_that_is_not_a_run(cli, tmp_path, make):
    folder = tmp_path / "x"
    if make == "empty-folder":
        folder.mkdir()
    elif make == "train-folder":
        folder.mkdir()
        (folder / "summary.json").write_text("{}")
    elif make == "a-file":
        folder.write_text("hello")
    line = one_line_exit_2(cli("report", folder))
    assert "x" in line
    assert folder.exists() == (make != "absent")
    if make == "empty-folder":
        assert list(folder.iterdir()) == []


# -- data files --------------------------------------------------------------------------------
def _damaged_mnist(folder: Path) -> Path:
    """An MNIST-format folder whose training images' deflate stream is damaged (the gzip
    header is intact: the damage shows only while decompressing)."""
    import gzip
    import zlib

    import numpy as np

    from tests.data.writers import write_mnist_like

    write_mnist_like(folder, n_train=40, n_test=10)
    images = np.tile(np.arange(28, dtype=np.uint8) * 9, (40, 28, 1))  # compressible
    raw = bytes([0, 0, 8, 3]) + (40).to_bytes(4, "big") + (28).to_bytes(4, "big") * 2
    blob = bytearray(gzip.compress(raw + images.tobytes()))
    for i in range(12, len(blob) - 8):  # the deflate stream, not the header or trailer
        blob[i] ^= 0xA5
    path = folder / "train-images-idx3-ubyte.gz"
    path.write_bytes(bytes(blob))
    with pytest.raises(zlib.error):  # the case is genuine: zlib itself fails on it
        gzip.decompress(bytes(blob))
    return path


@pytest.mark.parametrize("how", ["train", "train-no-verify", "datasets-verify"])
def test_damaged_gzip_stream(cli, tmp_path, how):
    _damaged_mnist(tmp_path / "data" / "mnist")
    out = tmp_path / "out"
    if how == "datasets-verify":
        res = cli("datasets", "verify", "--data-dir", tmp_path / "data")
    else:
        res = cli("train", "cnn-small", "--data", "mnist", "--data-dir", tmp_path / "data",
                  "--epochs", "1", "--out", out, *(["--no-verify"] if how != "train" else []))
    line = one_line_exit_2(res)
    assert "train-images-idx3-ubyte.gz" in line
    assert not out.exists()


# -- numbers -----------------------------------------------------------------------------------
@pytest.mark.parametrize("penalty", ["2^99999", "-2^99999", "2^-99999", "2^" + "9" * 5000,
                                     "9" * 400, "1e99999", "nan", "2^x"])
def test_penalty_out_of_range(cli, tmp_path, penalty):
    out = tmp_path / "out"
    line = one_line_exit_2(cli("structure", "--task", "mlp-units", "--data", "digits",
                               f"--penalty={penalty}", "--epochs", "1", "--out", out))
    assert "penalty" in line and len(line) < 300
    assert not out.exists()


def test_penalty_powers_of_two_exact():
    from archopt.structure.sweep import parse_penalty

    assert parse_penalty("2^-7") == 2.0**-7 and parse_penalty("-2^-3") == -0.125
    assert parse_penalty("2^1023") == 2.0**1023 and parse_penalty("2^-1074") == 5e-324


# -- checkpoints -------------------------------------------------------------------------------
class _Payload:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        import os

        return (os.mkdir, (str(self.marker),))


@pytest.mark.parametrize("verb", ["score", "train", "refine"])
def test_unsafe_checkpoint_refused_without_torch_advice(cli, tmp_path, verb):
    import torch

    marker = tmp_path / "PAYLOAD_RAN"
    evil = tmp_path / "evil.pt"
    torch.save({"format": "archopt-checkpoint", "model": _Payload(marker)}, evil)
    out = tmp_path / "out"
    args = {"score": ["score", evil],
            "train": ["train", evil, "--data", "digits", "--epochs", "1", "--out", out],
            "refine": ["refine", evil, "--data", "digits", "--out", out]}[verb]
    line = one_line_exit_2(cli(*args))
    assert "not a safe checkpoint" in line and "evil.pt" in line
    for advice in ("weights_only=False", "set to `False`", "Re-running", "trusted source"):
        assert advice not in line
    assert not marker.exists() and not out.exists()


@pytest.mark.parametrize("damage", ["truncated", "empty", "text"])
def test_damaged_checkpoint(cli, tmp_path, damage):
    import torch

    good = tmp_path / "good.pt"
    torch.save({"x": torch.zeros(1000)}, good)
    bad = tmp_path / "bad.pt"
    bad.write_bytes({"truncated": good.read_bytes()[:300], "empty": b"",
                     "text": b"hello"}[damage])
    line = one_line_exit_2(cli("score", bad))
    assert "bad.pt" in line and "not a readable checkpoint" in line


# -- sizes given on the command line -------------------------------------------------------------
@pytest.mark.parametrize("args", [
    ["summary", "cnn-small", "--resolution", "100000"],
    ["summary", "resnet18", "--resolution", "30000"],
    ["train", "cnn-small", "--data", "digits", "--batch-size", "100000000", "--epochs", "1"],
], ids=["summary-cnn-res1e5", "summary-resnet18-res3e4", "train-batch1e8"])
def test_oversized_input_or_batch_refused(cli, tmp_path, args):
    out = tmp_path / "out"
    res = cli(*args, *(["--out", out] if args[0] == "train" else []))
    assert res.exit_code == 2 and "Traceback" not in res.output
    errors = [line for line in res.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "refused before allocating" in errors[0]
    assert not out.exists()


@pytest.mark.parametrize("value", ["nan", "1e999", "-5", "abc", "0"])
def test_budget_values(cli, tmp_path, value):
    out = tmp_path / "d"
    line = one_line_exit_2(cli("design", f"--budget-macs={value}", "--out", out))
    assert "--budget-macs" in line
    assert not out.exists()


# -- run configs -----------------------------------------------------------------------------
@pytest.mark.parametrize("text", ["a: [", "a: " + "[" * 5000 + "]" * 5000, "- just\n- a list\n",
                                  "budget_macs: lots\n", "\udcff"],
                         ids=["truncated", "nested", "not-a-mapping", "bad-value", "not-utf8"])
def test_bad_run_config(cli, tmp_path, text):
    cfg = tmp_path / "run.yaml"
    cfg.write_bytes(text.encode("utf-8", "surrogateescape"))
    out = tmp_path / "run"
    line = one_line_exit_2(cli("run", "--config", cfg, "--out", out))
    assert "run.yaml" in line or "budget_macs" in line
    assert not out.exists()
