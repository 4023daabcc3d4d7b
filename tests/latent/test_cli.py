"""`archopt latent train|search` end to end (tiny sizes)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from archopt.cli import app
from archopt.runs import read_json
from archopt.spaces import load_spec

runner = CliRunner()


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("ae")
    r = runner.invoke(app, ["latent", "train", "--preset", "tiny", "--activation", "sigmoid",
                            "--steps", "2", "--batch-size", "8", "--val-every", "2",
                            "--val-batches", "1",
                            "--out", str(out), "--json", "--device", "cpu"])
    assert r.exit_code == 0, r.output
    return out, json.loads(r.stdout[r.stdout.index("{"):])


def test_train_writes_a_result_folder(trained):
    out, summary = trained
    assert summary["steps"] == 2 and summary["activation"] == "sigmoid"
    assert summary["val_mdpe"] >= 0
    for name in ("autoencoder.pt", "config.json", "metrics.jsonl", "summary.json",
                 "training.png"):
        assert (out / name).exists()


def test_search_on_the_synthetic_target(trained, tmp_path):
    ae, _ = trained
    r = runner.invoke(app, ["latent", "search", "--autoencoder", str(ae), "--out",
                            str(tmp_path), "--steps", "3", "--samples", "500", "--baseline",
                            "--baseline-steps", "3", "--json", "--device", "cpu"])
    assert r.exit_code == 0, r.output
    s = json.loads(r.stdout[r.stdout.index("{"):])
    for key in ("test_mse", "hidden_layers", "active_neurons", "nonzero_weights", "baseline"):
        assert key in s
    assert s["splits"] == {"train": 250, "val": 150, "test": 100}
    assert s["target"]["width"] == 5
    assert read_json(tmp_path / "summary.json")["test_mse"] == s["test_mse"]
    spec = load_spec(str(tmp_path / "arch.json"))
    assert spec.widths == s["widths"] and len(spec.widths) == s["hidden_layers"]
    state = torch.load(tmp_path / "model.pt", weights_only=True)["state_dict"]
    assert sum(int((v != 0).sum()) for v in state.values()) == s["nonzero_weights"]


def test_search_on_a_csv_file(trained, tmp_path):
    ae, _ = trained
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 10, size=(200, 3))
    y = np.sin(x[:, 0]) + x[:, 1] / 10
    csv = tmp_path / "data.csv"
    np.savetxt(csv, np.column_stack([x, y]), delimiter=",", header="a,b,c,y", comments="")
    r = runner.invoke(app, ["latent", "search", "--autoencoder", str(ae), "--data", str(csv),
                            "--out", str(tmp_path / "s"), "--steps", "2", "--depths", "1,2",
                            "--json", "--device", "cpu"])
    assert r.exit_code == 0, r.output
    s = json.loads(r.stdout[r.stdout.index("{"):])
    assert [d["depth"] for d in s["per_depth"]] == [1, 2]
    assert s["x_scaling"]["high"] == 1.0 and len(s["x_scaling"]["x_min"]) == 3


@pytest.mark.parametrize("args,match", [
    (["--data", "nosuch"], "neither a file nor a known dataset"),
    (["--data", "missing.csv"], "not found"),
    (["--depths", "1,x"], "comma-separated integers"),
])
def test_search_errors_are_one_line(trained, tmp_path, args, match):
    ae, _ = trained
    r = runner.invoke(app, ["latent", "search", "--autoencoder", str(ae), "--out",
                            str(tmp_path), *args])
    assert r.exit_code == 2
    assert match in r.output and "Traceback" not in r.output


def test_missing_autoencoder_and_bad_preset(tmp_path):
    r = runner.invoke(app, ["latent", "search", "--autoencoder", str(tmp_path / "none"),
                            "--out", str(tmp_path / "o")])
    assert r.exit_code == 2 and "no autoencoder checkpoint" in r.output
    r = runner.invoke(app, ["latent", "train", "--preset", "huge", "--out", str(tmp_path)])
    assert r.exit_code == 2 and "unknown --preset" in r.output


@pytest.mark.skipif(not __import__("archopt.latent.pretrained", fromlist=["x"])
                    .pretrained_activations(), reason="no autoencoder shipped yet")
def test_search_without_autoencoder_uses_the_shipped_one(tmp_path):
    r = runner.invoke(app, ["latent", "search", "--out", str(tmp_path), "--steps", "3",
                            "--samples", "500", "--depths", "1,2", "--baseline-steps", "3",
                            "--json", "--device", "cpu"])
    assert r.exit_code == 0, r.output
    s = json.loads(r.stdout[r.stdout.index("{"):])
    assert s["autoencoder"] == "shipped:sigmoid" and s["activation"] == "sigmoid"
    y = np.asarray(s["mean_predictor_test_mse"])
    assert y > 0 and s["test_mse"] >= 0
    # the baseline is pruned to exactly the search's non-zero count
    assert s["baseline"]["nonzero_weights"] == s["nonzero_weights"]
    assert s["baseline"]["pruned_nonzero_weights"] == s["nonzero_weights"]
