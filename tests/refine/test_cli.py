"""``archopt refine``: a real run, the sweep, and one-line errors with exit status 2."""

from __future__ import annotations

import json

import pytest

from archopt.runs import read_jsonl
from archopt.training import load_model


def test_refine_command(cli, pretrained, tmp_path):
    out = tmp_path / "r"
    res = cli("refine", pretrained.parent, "--data", "digits", "--bins", "1000",
              "--population", "6", "--generations", "3", "--super-batch", "64", "--metric", "f1",
              "--eval-path", "sequential", "--eval-every", "1", "--out", out, "--json")
    assert res.exit_code == 0, res.output
    s = json.loads(res.stdout)
    for key in ("dimensions", "blocked_dimensions", "metric_before", "metric_after_blocking",
                "metric_after", "function_evaluations", "seconds"):
        assert key in s
    assert s["function_evaluations"] == 18
    assert len(read_jsonl(out / "metrics.jsonl")) == 3
    _, _, meta = load_model(out / "checkpoint.pt")
    assert meta["refined"]["metric_after"] == s["metric_after"]
    # the same folder again without --resume is refused, with --resume it is a no-op
    again = cli("refine", pretrained, "--data", "digits", "--out", out, "--bins", "1000",
                "--population", "6", "--generations", "3", "--super-batch", "64")
    assert again.exit_code == 2 and "--resume" in again.output


def test_sweep(cli, pretrained, tmp_path):
    res = cli("refine", pretrained, "--sweep", "10,1000", "--out", tmp_path, "--json")
    assert res.exit_code == 0, res.output
    rep = json.loads(res.stdout)
    assert [r["n_bins"] for r in rep["rows"]] == [10, 1000]
    assert rep["rows"][0]["blocked_dimensions"] <= 10
    assert (tmp_path / "sweep.json").is_file()


@pytest.mark.parametrize("args,message", [
    (["--population", "3"], "population"),
    (["--metric", "auroc"], "unknown metric"),
    (["--bins", "0"], "n_bins"),
    (["--data", "nope"], "unknown dataset"),
    (["--super-batch", "100000"], "super-batch"),
])
def test_bad_input_is_one_line_exit_2(cli, pretrained, tmp_path, args, message):
    res = cli("refine", pretrained, "--out", tmp_path / "x", "--eval-path", "sequential", *args)
    assert res.exit_code == 2
    lines = [line for line in res.output.splitlines() if line.strip()]
    assert len(lines) == 1 and message in lines[0].lower(), res.output


def test_missing_checkpoint(cli, tmp_path):
    res = cli("refine", tmp_path / "none.pt", "--out", tmp_path / "x")
    assert res.exit_code == 2 and "not found" in res.output


def test_refine_method_bias(cli, pretrained, tmp_path):
    out = tmp_path / "b"
    res = cli("refine", pretrained, "--method", "bias", "--bias-evaluations", "600",
              "--out", out, "--json")
    assert res.exit_code == 0, res.output
    s = json.loads(res.stdout)
    assert s["method"] == "bias" and s["validation"]["source"] == "held-out"
    assert s["val_metric_after"] >= s["val_metric_before"]
    _, _, meta = load_model(out / "checkpoint.pt")
    assert meta["refined"]["folded_into"] == s["adjustment"]["folded_into"]
    table = cli("refine", pretrained, "--method", "logit-adjust", "--taus", "0,1",
                "--out", tmp_path / "la")
    assert table.exit_code == 0 and "tau" in table.output


@pytest.mark.parametrize("args,message", [
    (["--method", "nope"], "method"),
    (["--method", "bias", "--baseline", "adam"], "--method hbde"),
    (["--method", "logit-adjust", "--taus", "a,b"], "--taus"),
    (["--method", "bias", "--val-fraction", "1.5"], "val_fraction"),
])
def test_method_bad_input_is_one_line_exit_2(cli, pretrained, tmp_path, args, message):
    res = cli("refine", pretrained, "--out", tmp_path / "x", *args)
    assert res.exit_code == 2
    lines = [line for line in res.output.splitlines() if line.strip()]
    assert len(lines) == 1 and message in lines[0], res.output
