"""`archopt run` end to end on the embedded digits: outputs, config round trip, resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from archopt.errors import ArchoptError
from archopt.measure.onnx import onnx_available
from archopt.pipeline.config import RunConfig
from archopt.pipeline.run import run_pipeline
from archopt.spaces import load_spec

TINY = dict(budget_macs=1.5e6, budget_params=4e5, candidates=600,
            train={"epochs": 2, "batch_size": 128})


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "digits"
    return run_pipeline(RunConfig(**TINY), out, progress=False)


def test_summary_report_and_budgets(tiny_run):
    s, out = tiny_run.summary, tiny_run.out
    rows = {"designed": s["designed"], **s["baselines"]}
    for key, row in rows.items():
        for field in ("test_accuracy", "test_macro_f1", "params", "macs", "latency_ms"):
            assert row[field] is not None, (key, field)
    designed = load_spec(out / "design" / "arch.json")
    assert designed.macs() <= 1.5e6 and designed.params() <= 4e5
    assert s["designed"]["macs"] == designed.macs()
    # every baseline fits both budgets the design used; the ratios are to the design
    assert set(s["baselines"]) <= {"resnet", "mbv2"} and "resnet" in s["baselines"]
    for fam, row in s["baselines"].items():
        spec = load_spec(out / f"baseline-{fam}" / "arch.json")
        assert row["macs"] == spec.macs() <= 1.5e6 and row["params"] == spec.params() <= 4e5
        assert row["params_ratio"] == pytest.approx(row["params"] / designed.params())
        diff = s["comparison"]["design_minus_baseline"][fam]["points_per_seed"]
        assert diff == [pytest.approx(100 * (s["designed"]["test_accuracy"]
                                             - row["test_accuracy"]))]
    assert "over 1 seed" in s["comparison"]["verdict"]
    # onnxruntime's latency (an ONNX export per network) is timed for the design only
    if onnx_available():
        assert s["designed"]["latency_ms_onnxruntime"] is not None
    assert all(row.get("latency_ms_onnxruntime") is None for row in s["baselines"].values())
    for name in ("report.md", "architecture.png", "scores.png", "curves.png", "run.yaml",
                 "designed/checkpoint.pt", "baseline-resnet/checkpoint.pt"):
        assert (out / name).exists(), name
    assert "| designed (DeepMAD) |" in (out / "report.md").read_text()


def test_run_yaml_reproduces_the_options(tiny_run, tmp_path):
    cfg = RunConfig.from_yaml(tiny_run.out / "run.yaml")
    assert cfg.resolve() == cfg  # the file holds the resolved options
    assert cfg.budget_macs == 1.5e6 and cfg.train["epochs"] == 2


def test_folder_with_a_run_needs_resume_and_same_options(tiny_run):
    with pytest.raises(ArchoptError, match="--resume"):
        run_pipeline(RunConfig(**TINY), tiny_run.out, progress=False)
    with pytest.raises(ArchoptError, match="budget_macs"):
        run_pipeline(RunConfig(**{**TINY, "budget_macs": 5e5}), tiny_run.out, resume=True,
                     progress=False)


def test_report_rebuilds_from_folder(tiny_run, cli):
    (tiny_run.out / "report.md").unlink()
    res = cli("report", tiny_run.out, "--json")
    assert res.exit_code == 0, res.output
    assert (tiny_run.out / "report.md").exists()
    assert json.loads(res.stdout)["designed"]["macs"] == tiny_run.summary["designed"]["macs"]


def _cmd(out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "archopt.cli", "run", "--budget-macs", "1.5e6",
            "--budget-params", "4e5", "--candidates", "600", "--epochs", "3", "--batch-size",
            "128", "--json", "--out", str(out), *extra]


def test_ctrl_c_then_resume_gives_the_same_result(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    whole = subprocess.run(_cmd(tmp_path / "whole"), env=env, capture_output=True, text=True,
                           timeout=600)
    assert whole.returncode == 0, whole.stderr
    ref = json.loads(whole.stdout)

    out = tmp_path / "cut"
    # Ctrl-C handling is default in the child even when this suite runs in the background
    # (a background job of a non-interactive shell inherits SIGINT ignored)
    proc = subprocess.Popen(_cmd(out), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    ckpt = out / "designed" / "checkpoint.pt"
    deadline = time.time() + 300
    while not ckpt.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    assert proc.poll() is None, "the run ended before it could be interrupted"
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "interrupted" in err
    assert not (out / "summary.json").exists()

    again = subprocess.run(_cmd(out, "--resume"), env=env, capture_output=True, text=True,
                           timeout=600)
    assert again.returncode == 0, again.stderr
    got = json.loads(again.stdout)
    for key in ("designed", "baselines"):
        rows = got[key] if key == "baselines" else {key: got[key]}
        refs = ref[key] if key == "baselines" else {key: ref[key]}
        assert rows.keys() == refs.keys()
        for name in rows:
            for field in ("test_accuracy", "test_macro_f1", "params", "macs"):
                assert rows[name][field] == refs[name][field], (name, field)


def test_verdict_names_the_winner_and_calls_a_zero_difference_a_tie():
    from archopt.pipeline.run import compare

    designed = {"name": "d", "test_accuracy": 0.99, "test_accuracy_seeds": [0.99, 0.97]}
    base = {"a": {"name": "A", "test_accuracy": 0.98, "test_accuracy_seeds": [0.98, 0.98]},
            "b": {"name": "B", "test_accuracy": 0.99,
                  "test_accuracy_seeds": [0.99 + 1e-9, 0.97 + 1e-9]}}
    c = compare(designed, base, seeds=2)
    assert c["design_minus_baseline"]["a"]["points_per_seed"] == pytest.approx([1.0, -1.0])
    assert c["design_minus_baseline"]["a"]["design_wins"] == 1
    assert "vs A: a tie (design ahead on 1 of 2 seeds)" in c["verdict"]
    assert "vs B: a tie" in c["verdict"] and "B wins" not in c["verdict"]
    c = compare(designed, {"a": {**base["a"], "test_accuracy_seeds": [0.995, 0.99]}}, seeds=2)
    assert "vs A: A wins by 1.25 points (design ahead on 0 of 2 seeds)" in c["verdict"]
