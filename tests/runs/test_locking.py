"""One writer per result folder (archopt.runs.locking), and nothing left behind by a command that
fails before it has a result."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from archopt.errors import FolderInUse
from archopt.runs.locking import LOCK_NAME, discard_on_failure, lock_folder, read_holder

SRC = str(Path(__file__).resolve().parents[2] / "src")


def _holder_process(folder: Path, ready: Path) -> subprocess.Popen:
    """Another process that takes the lock on ``folder`` and sleeps (until killed)."""
    code = textwrap.dedent(f"""
        import time, pathlib
        from archopt.runs.locking import lock_folder
        with lock_folder({str(folder)!r}):
            pathlib.Path({str(ready)!r}).write_text("ok")
            time.sleep(120)
    """)
    env = {**os.environ, "PYTHONPATH": SRC}
    proc = subprocess.Popen([sys.executable, "-c", code, "--out", str(folder)], env=env)
    for _ in range(600):
        if ready.exists():
            return proc
        time.sleep(0.05)
    proc.kill()
    raise AssertionError("the holder process did not take the lock")


def test_a_second_writer_is_refused_naming_the_holder(tmp_path):
    folder = tmp_path / "out"
    proc = _holder_process(folder, tmp_path / "ready")
    try:
        with pytest.raises(FolderInUse) as info, lock_folder(folder):
            pass
        msg = str(info.value)
        assert "\n" not in msg
        assert f"pid {proc.pid} on host {socket.gethostname()}" in msg
        assert "--out" in msg and "started 20" in msg  # the command line and the start time
        assert info.value.holder["pid"] == proc.pid
    finally:
        proc.kill()
        proc.wait()


def test_the_lock_of_a_killed_process_is_taken_over(tmp_path):
    folder = tmp_path / "out"
    proc = _holder_process(folder, tmp_path / "ready")
    proc.send_signal(signal.SIGKILL)  # no cleanup: the lock file stays, its flock is gone
    proc.wait()
    assert read_holder(folder)["pid"] == proc.pid
    with lock_folder(folder) as lock:
        assert lock.stale is not None and lock.stale["pid"] == proc.pid
        assert read_holder(folder)["pid"] == os.getpid()
    assert not (folder / LOCK_NAME).exists()


def test_reentrant_in_one_process_and_released_cleanly(tmp_path):
    folder = tmp_path / "a" / "out"
    with lock_folder(folder) as outer:
        assert outer.created
        with lock_folder(folder) as inner:  # a pipeline calling a function that locks too
            assert inner is outer
        assert (folder / LOCK_NAME).exists()  # still held by the outer block
        rec = json.loads((folder / LOCK_NAME).read_text())
        assert rec["pid"] == os.getpid() and rec["host"] == socket.gethostname()
    assert not folder.exists()  # created by the lock, left empty: removed
    assert (tmp_path / "a").exists()  # only the leaf it made

    folder.mkdir()
    (folder / "keep.txt").write_text("x")
    with lock_folder(folder) as lock:
        assert not lock.created
    assert (folder / "keep.txt").exists() and not (folder / LOCK_NAME).exists()


def test_a_file_named_like_the_folder_is_a_user_error(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(Exception, match="is a file, not a folder"), lock_folder(tmp_path / "f"):
        pass


def test_discard_on_failure_removes_only_what_the_block_created(tmp_path):
    (tmp_path / "old.json").write_text("{}")
    with pytest.raises(RuntimeError), discard_on_failure(
            tmp_path, ["old.json", "config.json", "stage"], lambda: False):
        (tmp_path / "config.json").write_text("{}")
        (tmp_path / "stage").mkdir()
        (tmp_path / "stage" / "x").write_text("x")
        (tmp_path / ".summary.json.abc.tmp").write_text("half")
        raise RuntimeError("boom")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["old.json"]


def test_discard_on_failure_keeps_work_worth_keeping(tmp_path):
    with pytest.raises(KeyboardInterrupt), discard_on_failure(
            tmp_path, ["config.json", "checkpoint.pt"],
            lambda: (tmp_path / "checkpoint.pt").exists()):
        (tmp_path / "config.json").write_text("{}")
        (tmp_path / "checkpoint.pt").write_text("w")
        raise KeyboardInterrupt
    assert (tmp_path / "config.json").exists() and (tmp_path / "checkpoint.pt").exists()


def test_cli_second_writer_gets_one_line_and_the_folder_is_untouched(tmp_path, cli):
    folder = tmp_path / "out"
    proc = _holder_process(folder, tmp_path / "ready")
    try:
        before = sorted(p.name for p in folder.iterdir())
        r = cli("train", "cnn-small", "--data", "digits", "--epochs", "1", "--out", folder)
        assert r.exit_code == 2
        errors = [x for x in r.stderr.splitlines() if x.startswith("error: ")]
        assert len(errors) == 1 and r.stderr.strip().endswith(errors[0])  # one line, last
        assert f"pid {proc.pid}" in errors[0] and "in use by another archopt command" in errors[0]
        assert sorted(p.name for p in folder.iterdir()) == before == [LOCK_NAME]
    finally:
        proc.kill()
        proc.wait()


def test_failed_run_leaves_nothing_and_the_corrected_rerun_works(tmp_path, cli,
                                                                  one_torch_thread):
    out = tmp_path / "run"
    r = cli("run", "--budget-macs", "1000", "--out", out)  # infeasible: fails in the design
    assert r.exit_code == 2 and "budget" in r.stderr
    assert "--init`" not in r.stderr and "archopt design --init" in r.stderr
    assert not out.exists()
    # a killed run (config.json + run.yaml, no checkpoint) does not block a different rerun
    out.mkdir()
    (out / "config.json").write_text(json.dumps({"command": "run", "run": {"budget_macs": 1}}))
    (out / "run.yaml").write_text("budget_macs: 1\n")
    (out / "design").mkdir()
    (out / "design" / "summary.json").write_text("{}")
    r = cli("run", "--budget-macs", "1.5e6", "--budget-params", "4e5", "--candidates", "600",
            "--epochs", "1", "--out", out, "--json")
    assert r.exit_code == 0, r.output
    assert json.loads((out / "config.json").read_text())["run"]["budget_macs"] == 1.5e6
    assert not (out / LOCK_NAME).exists()
