"""The sweep runner (archopt.runs.sweeps) under the sweep verbs: Ray-backed and in-process sweeps
give the same table, resume skips finished trials, a failing trial is reported and the others
finish, and bad requests are one-line errors with exit status 2."""

from __future__ import annotations

import json

import pytest

from archopt.runs import atomic_write_json, read_json, sweeps

TINY_MLP = {"space": "mlp", "in_features": 64, "widths": [24, 24], "num_classes": 10}
TIMING = ("train_seconds", "seconds_per_step_ms", "seconds", "wall_seconds")


def _structure_args(tmp_path, out, *extra):
    spec = tmp_path / "mlp.json"
    spec.write_text(json.dumps(TINY_MLP))
    return ("structure", "sweep", "--task", "mlp-units", "--data", "digits", "--space", spec,
            "--penalties", "2^-3,0", "--theta-lr", "0.05", "--epochs", "1",
            "--max-steps-per-epoch", "10", "--out", out, "--device", "cpu", "--no-latency",
            "--threads", "1", "--json", *extra)


def _design_args(out, budgets, *extra):
    return ("design", "sweep", "--space", "resnet", "--resolution", "32", "--budget-macs",
            budgets, "--candidates", "300", "--no-plots", "--out", out, "--json", *extra)


def _untimed(rows):
    return [{k: v for k, v in r.items() if k not in TIMING} for r in rows]


def _attempts(out):
    return {k: v["attempts"] for k, v in read_json(out / "status.json").items()}


@pytest.fixture(scope="module")
def local_ray():
    """A local Ray of 2 CPUs for the module (the runner reuses a session that is up)."""
    ray = pytest.importorskip("ray", reason="Ray is not installed (pip install "
                                            "'archopt[distributed]'); the Ray-backed sweep "
                                            "is not tested")
    import logging

    try:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
                 logging_level=logging.ERROR)
    except Exception as err:  # a sandbox without the sockets / shared memory Ray needs
        pytest.skip(f"a local Ray cannot start here: {type(err).__name__}: {err}")
    yield ray
    ray.shutdown()


def test_ray_and_in_process_sweeps_give_the_same_table(cli, tmp_path, local_ray):
    local = cli(*_structure_args(tmp_path, tmp_path / "local", "--seeds", "0,1",
                                 "--in-process"))
    assert local.exit_code == 0, local.output
    on_ray = cli(*_structure_args(tmp_path, tmp_path / "ray", "--seeds", "0,1",
                                  "--workers", "2"))
    assert on_ray.exit_code == 0, on_ray.output
    a, b = json.loads(local.stdout), json.loads(on_ray.stdout)
    assert a["runner"]["method"]["backend"] == "local"
    assert b["runner"]["method"]["backend"] == "ray" and b["runner"]["method"]["workers"] == 2
    assert [(r["label"], r["seed"]) for r in a["method"]] == \
        [("2^-3", 0), ("0", 0), ("2^-3", 1), ("0", 1)]
    assert _untimed(a["method"]) == _untimed(b["method"])
    assert _untimed(a["baselines"]) == _untimed(b["baselines"]) and a["baselines"]
    # each trial's folder is what a single run writes, in both
    for out in (tmp_path / "local", tmp_path / "ray"):
        for r in a["method"]:
            for f in ("config.json", "summary.json", "model.pt", "structure.json"):
                assert (out / r["folder"] / f).is_file(), (out, r["folder"], f)
    # Ray runs the trials in its worker processes
    pids = {v["pid"] for v in read_json(tmp_path / "ray" / "status.json").values()}
    assert len(pids) >= 1 and all(p != __import__("os").getpid() for p in pids)


def test_a_failing_trial_on_ray_is_reported_and_the_others_finish(cli, tmp_path, local_ray):
    out = tmp_path / "d"
    r = cli(*_design_args(out, "10,2M,4M", "--workers", "2"))
    assert r.exit_code == 1, r.output
    t = json.loads(r.stdout)
    assert [row["folder"] for row in t["rows"]] == ["macs_10", "macs_2M", "macs_4M"]
    assert "breaks the macs budget" in t["rows"][0]["error"]
    assert all("objective" in row for row in t["rows"][1:])
    assert "error: trial macs_10" in r.stderr
    status = read_json(out / "status.json")
    assert status["macs_10"]["state"] == "failed" and "macs budget" in status["macs_10"]["error"]
    assert status["macs_2M"]["state"] == status["macs_4M"]["state"] == "done"


def test_resume_skips_finished_trials_and_reruns_failed_and_interrupted(cli, tmp_path):
    out = tmp_path / "d"
    first = cli(*_design_args(out, "2M,3M,4M,5M", "--in-process"))
    assert first.exit_code == 0, first.output
    assert _attempts(out) == {"macs_2M": 1, "macs_3M": 1, "macs_4M": 1, "macs_5M": 1}
    # a sweep killed midway: one trial left running, one failed
    status = read_json(out / "status.json")
    status["macs_3M"].update(state="running")
    status["macs_5M"].update(state="failed", error="killed")
    atomic_write_json(out / "status.json", status)
    again = cli(*_design_args(out, "2M,3M,4M,5M", "--in-process"))
    assert again.exit_code == 0, again.output
    assert _attempts(out) == {"macs_2M": 1, "macs_3M": 2, "macs_4M": 1, "macs_5M": 2}
    ran = {t["name"]: t["ran"] for t in json.loads(again.stdout)["runner"]["trials"]}
    assert ran == {"macs_2M": False, "macs_3M": True, "macs_4M": False, "macs_5M": True}
    assert _untimed(json.loads(again.stdout)["rows"]) == _untimed(json.loads(first.stdout)["rows"])
    # a third time: nothing runs
    third = cli(*_design_args(out, "2M,3M,4M,5M", "--in-process"))
    assert third.exit_code == 0 and set(_attempts(out).values()) == {1, 2}
    assert not any(t["ran"] for t in json.loads(third.stdout)["runner"]["trials"])
    # other options for a finished trial: refused before anything runs
    other = cli("design", "sweep", "--space", "resnet", "--resolution", "32", "--budget-macs",
                "2M", "--candidates", "600", "--out", out, "--in-process")
    assert other.exit_code == 2 and "other options" in other.output


def test_a_failed_trial_in_process_is_retried_by_the_rerun(cli, tmp_path):
    out = tmp_path / "d"
    r = cli(*_design_args(out, "10,2M", "--in-process"))
    assert r.exit_code == 1 and "error: trial macs_10" in r.stderr
    assert "rerun the same command" in r.stderr
    assert (out / "macs_2M" / "arch.json").is_file() and not (out / "macs_10").exists()
    t = read_json(out / "sweep.json")
    assert t["rows"][1]["pareto"] and (out / "pareto.png").stat().st_size > 1000
    again = cli(*_design_args(out, "10,2M", "--in-process"))
    assert again.exit_code == 1 and _attempts(out) == {"macs_10": 2, "macs_2M": 1}


def test_design_sweep_pareto_front(cli, tmp_path):
    out = tmp_path / "d"
    r = cli(*_design_args(out, "2M,4M,8M", "--in-process", "--seeds", "0,1"))
    assert r.exit_code == 0, r.output
    t = json.loads(r.stdout)
    assert [row["folder"] for row in t["rows"]] == [
        "macs_2M_seed0", "macs_4M_seed0", "macs_8M_seed0",
        "macs_2M_seed1", "macs_4M_seed1", "macs_8M_seed1"]
    rows = t["rows"]
    assert all(row["macs"] <= row["budget_macs"] for row in rows)
    for row in rows:  # the front: no design with fewer (or equal) MACs and a higher objective
        dominated = any(o is not row and o["macs"] <= row["macs"] and
                        o["objective"] >= row["objective"] and
                        (o["macs"], o["objective"]) != (row["macs"], row["objective"])
                        for o in rows)
        assert row["pareto"] == (not dominated)
    assert t["pareto"] == [row["folder"] for row in rows if row["pareto"]]
    single = read_json(out / "macs_4M_seed1" / "config.json")
    assert single["command"] == "design" and single["seed"] == 1


def test_without_ray_the_sweep_runs_in_process_and_says_how_to_get_ray(cli, tmp_path,
                                                                       monkeypatch):
    monkeypatch.setattr(sweeps, "ray_available", lambda: False)
    r = cli(*_design_args(tmp_path / "d", "2M"))
    assert r.exit_code == 0, r.output
    assert sweeps.RAY_HINT.split(":")[0] in r.stderr and "archopt[distributed]" in r.stderr
    assert json.loads(r.stdout)["runner"]["backend"] == "local"
    r = cli(*_design_args(tmp_path / "e", "2M", "--address", "auto"))
    assert r.exit_code == 2 and "archopt[distributed]" in r.output


@pytest.mark.parametrize(("args", "message"), [
    (["--budget-macs", ","], "the list is empty"),
    (["--budget-macs", ""], "the list is empty"),
    (["--budget-macs", "1M,,2M"], "empty item"),
    (["--budget-macs", "1M,lots"], "cannot read 'lots'"),
    (["--budget-macs", "1M,-2M"], "cannot read"),
    (["--budget-macs", "1M,1M"], "listed twice"),
    ([], "needs --budget-macs"),
    (["--budget-macs", "1M", "--seeds", "0,x"], "--seeds"),
    (["--budget-macs", "1M", "--seeds", "1,1"], "distinct"),
    (["--budget-macs", "1M", "--address", "nohost"], "HOST:PORT"),
    (["--budget-macs", "1M", "--address", "127.0.0.1:1"], "cannot reach"),
    (["--budget-macs", "1M", "--address", "127.0.0.1:1", "--in-process"], "exclude"),
    (["--budget-macs", "1M", "--workers", "0"], "--workers"),
])
def test_bad_sweep_input_is_one_line_exit_2(cli, tmp_path, args, message):
    if "--address" in args and "--in-process" not in args and not sweeps.ray_available():
        message = "archopt[distributed]"
    out = tmp_path / "x"
    r = cli("design", "sweep", "--out", out, *args)
    assert r.exit_code == 2, r.output
    lines = [ln for ln in r.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and message in lines[0], r.output
    assert not out.exists()  # nothing written


def test_structure_sweep_bad_penalty_list(cli, tmp_path):
    for penalties, message in (("", "the list is empty"), ("2^-3,two", "cannot read penalty")):
        r = cli("structure", "sweep", "--penalties", penalties, "--out", tmp_path / "s")
        assert r.exit_code == 2 and message in r.output, r.output
