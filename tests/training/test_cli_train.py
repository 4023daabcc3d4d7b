"""``archopt train``: JSON summary, adaptation note, one-line errors with exit 2."""

from __future__ import annotations

import json

from archopt.runs import read_json


def test_train_json_summary_and_note(cli, tmp_path):
    out = tmp_path / "run"
    r = cli("train", "cnn-small", "--data", "digits", "--epochs", "1", "--device", "cpu",
            "--no-latency", "--json", "--out", out)
    assert r.exit_code == 0, r.output
    start = r.stdout.index("{")
    summary = json.loads(r.stdout[start:])
    assert summary["epochs"] == 1 and summary["out"] == str(out)
    assert summary == {**read_json(out / "summary.json"), "out": str(out)}
    assert "adapted small CNN (resnet space) to digits: resolution 28 -> 8" in r.stderr


def test_train_table_output(cli, tmp_path):
    r = cli("train", "mlp-3x784", "--data", "digits", "--epochs", "1", "--device", "cpu",
            "--batch-size", "64", "--optimizer", "adam", "--out", tmp_path / "t")
    assert r.exit_code == 0, r.output
    assert "test accuracy" in r.stdout and "results in" in r.stdout
    assert "in_features 784 -> 64" in r.stderr


def _one_line_error(r, *needles):
    assert r.exit_code == 2, r.output
    lines = [ln for ln in r.stderr.strip().splitlines() if ln.startswith("error:")]
    assert len(lines) == 1, r.stderr
    for n in needles:
        assert n in lines[0], lines[0]


def test_errors_are_one_line_exit_2(cli, tmp_path):
    bad_spec = tmp_path / "bad.json"
    bad_spec.write_text('{"space": "resnet", "stem": {"out": 8, "k": 4}, "blocks": []}')
    out = tmp_path / "never"
    _one_line_error(cli("train", bad_spec, "--epochs", "1", "--out", out), "invalid resnet spec")
    _one_line_error(cli("train", "cnn-small", "--optimizer", "rmsprop", "--out", out),
                    "optimizer")
    _one_line_error(cli("train", "cnn-small", "--data", "mnist", "--data-dir", tmp_path / "nod",
                        "--out", out), "mnist")
    _one_line_error(cli("train", "no-such-net", "--out", out), "no-such-net")
    assert not out.exists()  # nothing written by a failed start


def test_divergence_is_a_clear_error(cli, tmp_path):
    r = cli("train", "cnn-small", "--epochs", "2", "--lr", "1e12", "--momentum", "0",
            "--device", "cpu", "--out", tmp_path / "nan")
    _one_line_error(r, "diverged", "NaN or infinite")
