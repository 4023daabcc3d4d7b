"""score / summary / datasets from the command line: right figures, one-line errors, exit 2."""

from __future__ import annotations

import json

from tests.data.writers import write_cifar10_like


def test_score_json_matches_published_resnet18(cli):
    res = cli("score", "resnet18", "--json")
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["params"] == 11_689_512 and out["macs"] == 1_814_073_344
    assert [s["stage"] for s in out["stages"]] == [1, 2, 3, 4, 0]


def test_score_table_and_summary(cli):
    res = cli("score", "cnn-small")
    assert res.exit_code == 0 and "MACs" in res.stdout and "stages" in res.stdout
    res = cli("summary", "cnn-small", "--json")
    rows = json.loads(res.stdout)
    assert sum(r["params"] for r in rows) == 74_474


def test_invalid_spec_is_one_line_exit_2(cli, tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"space": "resnet", "stem": {"out": 8, "k": 2},
                               "blocks": [{"out": 8, "btn": 8}]}))
    res = cli("score", bad)
    assert res.exit_code == 2
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "kernel must be odd" in lines[0]


def test_datasets_verify_names_corrupt_cifar_batch(cli, tmp_path):
    write_cifar10_like(tmp_path / "cifar-10-batches-py")
    res = cli("datasets", "verify", "--data-dir", tmp_path)
    assert res.exit_code == 2
    assert "data_batch_1" in res.stderr and "error" in res.stderr


def test_datasets_verify_real_data(cli, shared_data):
    res = cli("datasets", "verify", "--data-dir", shared_data, "--json")
    assert res.exit_code == 0, res.output
    rows = {r["name"]: r["status"] for r in json.loads(res.stdout)}
    assert rows["mnist"] == rows["fashion-mnist"] == "ok" and rows["cifar10"] == "absent"


def test_wrong_data_dir(cli, tmp_path):
    res = cli("datasets", "verify", "--data-dir", tmp_path / "nope")
    assert res.exit_code == 2 and "does not exist" in res.stderr

