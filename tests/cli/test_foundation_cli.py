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



def _one_line_exit_2(res) -> str:
    assert res.exit_code == 2, res.output
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, res.stderr
    return lines[0]


def test_train_on_corrupt_mnist_file_is_one_line_and_writes_nothing(cli, tmp_path):
    from tests.data.writers import write_mnist_like

    folder = tmp_path / "data" / "mnist"
    write_mnist_like(folder)  # a valid IDX file set, but not the published bytes
    out = tmp_path / "run"
    line = _one_line_exit_2(cli("train", "cnn-small", "--data", "mnist", "--data-dir",
                                tmp_path / "data", "--epochs", "1", "--out", out))
    assert "corrupt" in line and "-ubyte" in line
    assert not out.exists()


def test_train_refuses_a_pickle_that_runs_code(cli, tmp_path):
    import pickle

    from tests.data.writers import Evil

    folder = tmp_path / "data" / "cifar-10-batches-py"
    write_cifar10_like(folder)
    sentinel = tmp_path / "pwned"
    (folder / "data_batch_2").write_bytes(pickle.dumps({b"data": Evil(sentinel)}, protocol=2))
    out = tmp_path / "run"
    line = _one_line_exit_2(cli("train", "resnet18-cifar", "--data", "cifar10", "--data-dir",
                                tmp_path / "data", "--no-verify", "--epochs", "1", "--out", out))
    assert "refusing" in line and "data_batch_2" in line
    assert not sentinel.exists() and not out.exists()
