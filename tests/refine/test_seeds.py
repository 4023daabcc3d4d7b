"""``archopt refine --seeds``: one HBDE run per seed through the sweep runner."""

from __future__ import annotations

import json

from archopt.runs import read_json


def _attempts(out):
    return {k: v["attempts"] for k, v in read_json(out / "status.json").items()}


def test_refine_seeds(cli, tmp_path, pretrained):
    out = tmp_path / "r"
    args = ("refine", pretrained, "--data", "digits", "--bins", "1000", "--population", "6",
            "--generations", "2", "--super-batch", "64", "--eval-path", "sequential",
            "--out", out, "--seeds", "3,4", "--in-process", "--threads", "1", "--json")
    r = cli(*args)
    assert r.exit_code == 0, r.output
    t = json.loads(r.stdout)
    assert [row["seed"] for row in t["rows"]] == [3, 4]
    for row in t["rows"]:
        s = read_json(out / row["folder"] / "summary.json")  # what `refine --out` writes
        assert s["metric_after"] == row["metric_after"] and s["function_evaluations"] == 12
        assert read_json(out / row["folder"] / "config.json")["refine"]["seed"] == row["seed"]
    assert t["std_after"] is not None
    again = cli(*args)
    assert again.exit_code == 0 and _attempts(out) == {"seed_3": 1, "seed_4": 1}
    both = cli("refine", pretrained, "--out", tmp_path / "y", "--seeds", "1", "--sweep", "10")
    assert both.exit_code == 2 and "exclude" in both.output
