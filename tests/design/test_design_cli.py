"""``archopt design`` and the training-free figures of ``archopt score`` from the command line."""

from __future__ import annotations

import json

import pytest

from archopt.design import Budgets, score_spec
from archopt.spaces import load_spec

R18_TINYNAS = """{ 'best_structures':[ [
    {'class': 'ConvKXBNRELU', 'in': 3, 'k': 3, 'out': 32, 's': 2},
    { 'L': 1, 'btn': 40, 'class': 'SuperResK1KXK1', 'in': 32, 'k': 5, 'out': 96, 's': 2},
    { 'L': 6, 'btn': 40, 'class': 'SuperResK1KXK1', 'in': 96, 'k': 5, 'out': 384, 's': 2},
    { 'L': 9, 'btn': 64, 'class': 'SuperResK1KXK1', 'in': 384, 'k': 5, 'out': 384, 's': 2},
    { 'L': 10, 'btn': 104, 'class': 'SuperResK1KXK1', 'in': 384, 'k': 3, 'out': 1024, 's': 1},
    { 'L': 12, 'btn': 104, 'class': 'SuperResK1KXK1', 'in': 1024, 'k': 5, 'out': 672, 's': 2}]],
'space_arch': 'CnnNet'}
"""


def test_design_resnet_writes_result_folder(cli, tmp_path):
    out = tmp_path / "r"
    res = cli("design", "--space", "resnet", "--budget-macs", "0.6G", "--budget-params", "5M",
              "--rho", "0.3", "--resolution", "224", "--num-classes", "0", "--candidates",
              "3000", "--seed", "4", "--out", out, "--json")
    assert res.exit_code == 0, res.output
    body = json.loads(res.stdout)
    for name in ("arch.json", "design.json", "summary.json", "config.json", "metrics.jsonl",
                 "convergence.png", "network.png"):
        assert (out / name).is_file(), name
    spec = load_spec(out / "arch.json")  # what `archopt train` reads
    assert spec.macs() == body["macs"] <= 0.6e9 and spec.params() == body["params"] <= 5e6
    ref = score_spec(spec)
    assert body["objective"] == pytest.approx(ref.objective, rel=1e-12)
    assert body["effectiveness"] == pytest.approx(ref.effectiveness) and ref.effectiveness <= 0.3
    assert body["candidates"] == 3000 and body["candidates_per_second"] > 0
    assert body["budgets"] == Budgets(macs=0.6e9, params=5e6, rho=0.3).as_dict()
    assert len(body["top_k"]) >= 1 and body["top_k"][0]["objective"] == body["objective"]
    assert json.loads((out / "design.json").read_text())["spec"] == spec.to_dict()


def test_design_densenet_bnb_and_table(cli, tmp_path):
    out = tmp_path / "d"
    res = cli("design", "--space", "densenet", "--solver", "bnb", "--beta", "0.1",
              "--budget-params", "300k", "--rho", "0.5", "--resolution", "28",
              "--in-channels", "1", "--grid-growth", "8:24:4", "--grid-layers", "4:16:2",
              "--out", out)
    assert res.exit_code == 0, res.output
    for word in ("nodes explored", "pruned by budget", "pruned by bound", "gap", "R^2"):
        assert word in res.stdout
    body = json.loads((out / "design.json").read_text())
    assert body["stats"]["complete"] and body["params"] <= 300_000
    assert (out / "powerlaw.png").is_file()
    spec = load_spec(out / "arch.json")
    assert spec.space == "densenet" and spec.in_channels == 1


def test_design_mlp(cli, tmp_path):
    res = cli("design", "--space", "mlp", "--budget-params", "200k", "--rho", "0.1",
              "--resolution", "8", "--in-channels", "1", "--num-classes", "10",
              "--candidates", "2000", "--out", tmp_path / "m", "--json", "--no-plots")
    assert res.exit_code == 0, res.output
    body = json.loads(res.stdout)
    spec = load_spec(tmp_path / "m" / "arch.json")
    assert spec.in_features == 64 and spec.params() == body["params"] <= 200_000
    assert body["effectiveness"] <= 0.1


def test_infeasible_budget_is_one_line_exit_2(cli, tmp_path):
    res = cli("design", "--space", "resnet", "--budget-macs", "1000", "--rho", "0.3",
              "--resolution", "224", "--out", tmp_path / "x")
    assert res.exit_code == 2
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "macs budget" in lines[0] and "--budget-macs" in lines[0]
    assert not (tmp_path / "x").exists()  # nothing half-written


@pytest.mark.parametrize("args,msg", [
    (["--space", "vit", "--budget-params", "1M"], "unknown design space"),
    (["--space", "resnet", "--solver", "bnb", "--budget-params", "1M", "--resolution", "32"],
     "supports the densenet"),
    (["--space", "densenet", "--solver", "exhaustive", "--budget-params", "1M",
      "--resolution", "32"], "over the exhaustive solver's limit"),
    (["--space", "densenet", "--grid-layers", "4:x", "--budget-params", "1M"], "--grid-layers"),
    (["--space", "resnet", "--budget-macs", "lots"], "--budget-macs"),
])
def test_bad_requests(cli, tmp_path, args, msg):
    res = cli("design", *args, "--out", tmp_path / "y")
    assert res.exit_code == 2 and msg in res.stderr


def test_score_adds_entropy_and_reads_tinynas_files(cli, tmp_path):
    res = cli("score", "deepmad-r18", "--num-classes", "0", "--json")
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    ref = score_spec(load_spec("deepmad-r18", num_classes=0))
    assert out["entropy"] == pytest.approx(ref.entropy)
    assert out["effectiveness"] == pytest.approx(ref.effectiveness)
    assert out["objective"] == pytest.approx(ref.objective)
    assert [s["entropy"] for s in out["stages"]] == pytest.approx(ref.stage_entropies)
    f = tmp_path / "deepmad-R18.txt"
    f.write_text(R18_TINYNAS)
    res = cli("score", f, "--num-classes", "0", "--json")
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["objective"] == pytest.approx(ref.objective)
    res = cli("score", "densenet-bc-100-12", "--beta", "10", "--json")
    pl = json.loads(res.stdout)["power_law"]
    assert set(pl) == {"a", "b", "S", "r2"} and json.loads(res.stdout)["beta"] == 10
