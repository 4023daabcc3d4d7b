"""DistributedDataParallel under torchrun on CPU (gloo, 2 processes).

The check is an identity that holds exactly in real arithmetic: each rank takes an interleaved
shard of the same permutation, so rank 0's batch k and rank 1's batch k together are the
single-process batch k of twice the size; DDP averages the two ranks' mean gradients, which is
the mean gradient of the big batch. With plain SGD and a model without batch statistics or
dropout (an MLP), 2 ranks x batch b must end with the weights and metrics of 1 process x batch 2b
(up to float summation order).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

from archopt.runs import read_json, read_jsonl
from archopt.training import load_checkpoint

SPEC = {"space": "mlp", "name": "mlp-64-32", "in_features": 64, "widths": [32],
        "num_classes": 10}


def _args(spec, out, batch):
    return ["train", str(spec), "--data", "digits", "--epochs", "3", "--batch-size", str(batch),
            "--lr", "0.05", "--device", "cpu", "--no-latency", "--json", "--out", str(out)]


def test_torchrun_two_gloo_ranks_equal_one_process_with_double_batch(tmp_path):
    spec = tmp_path / "mlp.json"
    spec.write_text(json.dumps(SPEC))
    script = tmp_path / "archopt_main.py"
    script.write_text("from archopt.cli import main\nmain()\n")
    env = {k: v for k, v in os.environ.items()
           if k not in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")}
    env["OMP_NUM_THREADS"] = "1"
    ddp = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
         str(script), *_args(spec, tmp_path / "ddp", 32)],
        env=env, capture_output=True, text=True, timeout=600)
    assert ddp.returncode == 0, ddp.stderr[-3000:]
    single = subprocess.run([sys.executable, str(script), *_args(spec, tmp_path / "one", 64)],
                            env=env, capture_output=True, text=True, timeout=600)
    assert single.returncode == 0, single.stderr[-3000:]

    # only rank 0 printed its summary (one JSON document on stdout)
    printed = json.loads(ddp.stdout)
    assert printed["world_size"] == 2
    cfg = read_json(tmp_path / "ddp" / "config.json")
    assert cfg["resolved"]["backend"] == "gloo" and cfg["resolved"]["effective_batch_size"] == 64

    rows_ddp = read_jsonl(tmp_path / "ddp" / "metrics.jsonl")
    rows_one = read_jsonl(tmp_path / "one" / "metrics.jsonl")
    assert len(rows_ddp) == len(rows_one) == 3
    for a, b in zip(rows_ddp, rows_one, strict=True):
        for k in ("train_loss", "train_accuracy", "test_loss", "test_accuracy", "test_macro_f1",
                  "lr"):
            assert a[k] == pytest.approx(b[k], rel=1e-4, abs=1e-5), (a["epoch"], k)
    wa = load_checkpoint(tmp_path / "ddp" / "checkpoint.pt")["model"]
    wb = load_checkpoint(tmp_path / "one" / "checkpoint.pt")["model"]
    for k in wa:
        torch.testing.assert_close(wa[k], wb[k], rtol=1e-4, atol=1e-5)
    # and the run really moved away from its initialisation
    assert rows_one[-1]["test_accuracy"] > 0.8
