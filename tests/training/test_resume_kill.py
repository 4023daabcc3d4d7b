"""A run killed (SIGKILL) after its first checkpoint and resumed with --resume ends with the same
weights and metrics as an uninterrupted run (same seed, same device, same thread count)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from archopt.runs import read_json, read_jsonl
from archopt.training import load_checkpoint

EPOCHS = 10
ARGS = ["train", "cnn-small", "--data", "digits", "--train-subset", "600", "--epochs",
        str(EPOCHS), "--device", "cpu", "--augment", "crop", "--threads", "1", "--no-latency",
        "--seed", "3"]


def _cli(out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-c", "from archopt.cli import main; main()", *ARGS, "--out",
            str(out), *extra]


def _strip(rows):
    return [{k: v for k, v in r.items() if k not in ("seconds", "elapsed")} for r in rows]


def test_sigkill_then_resume_equals_uninterrupted(tmp_path):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    killed = tmp_path / "killed"
    proc = subprocess.Popen(_cli(killed), env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    ckpt = killed / "checkpoint.pt"
    deadline = time.monotonic() + 300
    while not ckpt.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail("the run ended or stalled before its first checkpoint")
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    reached = load_checkpoint(ckpt)["state"]["epoch"]
    assert 1 <= reached < EPOCHS, "the kill must land mid-run"
    assert not (killed / "summary.json").exists()

    subprocess.run(_cli(killed, "--resume"), env=env, check=True, capture_output=True)
    full = tmp_path / "full"
    subprocess.run(_cli(full), env=env, check=True, capture_output=True)

    a, b = read_json(full / "summary.json"), read_json(killed / "summary.json")
    for k in ("test_accuracy", "test_macro_f1", "test_loss", "train_loss", "epochs"):
        assert a[k] == b[k], k
    rows_full = _strip(read_jsonl(full / "metrics.jsonl"))
    assert rows_full == _strip(read_jsonl(killed / "metrics.jsonl"))
    assert len(rows_full) == EPOCHS
    wa = load_checkpoint(full / "checkpoint.pt")["model"]
    wb = load_checkpoint(killed / "checkpoint.pt")["model"]
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)
