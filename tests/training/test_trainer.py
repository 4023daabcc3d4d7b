"""The trainer: accuracy on the embedded digits, result folder, spec checks, NaN stop, resume
refusals, callbacks, reproducibility."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from archopt.errors import ArchoptError, InvalidSpec, TrainingDiverged
from archopt.runs import read_json, read_jsonl
from archopt.spaces import load_spec
from archopt.training import StopTraining, TrainConfig, load_checkpoint, train

ROW_KEYS = {"epoch", "train_loss", "train_accuracy", "test_loss", "test_accuracy",
            "test_macro_f1", "lr", "seconds"}


def test_cnn_small_reaches_95_percent_on_digits(digits, tmp_path):
    result = train("cnn-small", digits, TrainConfig(epochs=5, device="cpu"), tmp_path / "run",
                   adapt=True, progress=False)
    s = result.summary
    assert s["test_accuracy"] >= 0.95, s
    assert s["epochs"] == 5 and s["params"] == result.spec.params()
    assert s["macs"] == result.spec.macs(8) and s["latency_ms"] > 0
    assert not result.model.training


def test_result_folder_is_as_designed(digits_run):
    result, out = digits_run
    assert {p.name for p in out.iterdir()} == {"config.json", "arch.json", "metrics.jsonl",
                                               "summary.json", "checkpoint.pt", "curves.png"}
    cfg = read_json(out / "config.json")
    assert cfg["seed"] == 0 and cfg["train"]["epochs"] == 2
    assert {"torch", "python", "archopt"} <= set(cfg["environment"])
    assert cfg["resolved"]["device"] == "cpu" and cfg["dataset"]["name"] == "digits"
    rows = read_jsonl(out / "metrics.jsonl")
    assert [r["epoch"] for r in rows] == [1, 2] and set(rows[0]) >= ROW_KEYS
    assert rows == result.history
    summary = read_json(out / "summary.json")
    for k in ("test_accuracy", "test_macro_f1", "test_loss", "params", "macs", "latency_ms",
              "seconds", "epochs"):
        assert k in summary
    assert summary["test_accuracy"] == rows[-1]["test_accuracy"]
    assert (out / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert load_checkpoint(out / "checkpoint.pt")["state"]["epoch"] == 2


def test_spec_that_does_not_fit_needs_adapt(digits):
    spec = load_spec("resnet18-cifar")  # 3 channels, 32x32
    with pytest.raises(InvalidSpec, match=r"in_channels 3 -> 1.*adapt=True"):
        train(spec, digits, TrainConfig(epochs=1), progress=False)


class Flat(nn.Module):
    def __init__(self, out: int = 10) -> None:
        super().__init__()
        self.fc = nn.Linear(64, out)
        self.poison = False

    def forward(self, x):
        y = self.fc(x.flatten(1))
        return y * float("nan") if self.poison else y


def test_user_module_with_wrong_output_is_refused(digits):
    with pytest.raises(InvalidSpec, match=r"returns \(2, 3\).*expected \(2, 10\)"):
        train(Flat(out=3), digits, TrainConfig(epochs=1), progress=False)
    with pytest.raises(InvalidSpec, match="cannot take digits images"):
        train(nn.Linear(10, 10), digits, TrainConfig(epochs=1), progress=False)


def test_nan_loss_stops_with_last_good_checkpoint_kept(digits, tmp_path):
    out = tmp_path / "nan"
    snapshot = {}

    def poison_after_first_epoch(row, model):
        if row["epoch"] == 1:
            snapshot.update({k: v.clone() for k, v in model.state_dict().items()})
            model.poison = True

    torch.manual_seed(0)
    with pytest.raises(TrainingDiverged, match=r"NaN or infinite in epoch 2.*epoch 1\) is kept"):
        train(Flat(), digits, TrainConfig(epochs=3, device="cpu", latency=False), out,
              callbacks=[poison_after_first_epoch], progress=False)
    ckpt = load_checkpoint(out / "checkpoint.pt")
    assert ckpt["state"]["epoch"] == 1
    for k, v in ckpt["model"].items():
        assert torch.isfinite(v).all() and torch.equal(v, snapshot[k])
    assert [r["epoch"] for r in read_jsonl(out / "metrics.jsonl")] == [1]
    assert not (out / "summary.json").exists()


def test_diverging_lr_raises_before_any_checkpoint(digits, tmp_path):
    with pytest.raises(TrainingDiverged, match="no checkpoint had been written"):
        train("cnn-small", digits, TrainConfig(epochs=2, lr=1e12, momentum=0.0, device="cpu"),
              tmp_path / "boom", adapt=True, progress=False)
    assert not (tmp_path / "boom" / "checkpoint.pt").exists()


def test_existing_run_is_not_overwritten_and_resume_refuses_other_setups(digits_run, digits):
    result, out = digits_run
    before = (out / "metrics.jsonl").read_bytes(), (out / "checkpoint.pt").read_bytes()
    with pytest.raises(ArchoptError, match="already holds a training run"):
        train(result.spec, digits, TrainConfig(epochs=2, device="cpu"), out, progress=False)
    with pytest.raises(ArchoptError, match=r"different setup \(epochs: 2 -> 3; lr: 0.1 -> 0.2\)"):
        train(result.spec, digits, TrainConfig(epochs=3, lr=0.2, device="cpu"), out, resume=True,
              progress=False)
    other = result.spec.replace(stem={"out": 16, "k": 3, "stride": 1})
    with pytest.raises(ArchoptError, match="architecture spec"):
        train(other, digits, TrainConfig(epochs=2, device="cpu"), out, resume=True,
              progress=False)
    with pytest.raises(ArchoptError, match="train_size: 1347 -> 500"):
        train(result.spec, digits.subset(train=500), TrainConfig(epochs=2, device="cpu"), out,
              resume=True, progress=False)
    assert ((out / "metrics.jsonl").read_bytes(), (out / "checkpoint.pt").read_bytes()) == before


def test_stop_training_callback_ends_run_with_summary(digits, tmp_path):
    def stop(row, model):
        raise StopTraining

    result = train(Flat(), digits, TrainConfig(epochs=4, device="cpu", latency=False),
                   tmp_path / "stop", callbacks=[stop], progress=False)
    assert result.summary["epochs"] == 1 and result.summary["stopped_early"] is True
    assert json.loads((tmp_path / "stop" / "summary.json").read_text())["epochs"] == 1


def test_same_seed_same_weights_and_in_process_resume_matches(digits, tmp_path):
    digits = digits.subset(train=600, seed=1)
    cfg = TrainConfig(epochs=3, device="cpu", augment="crop", latency=False,
                      label_smoothing=0.1, optimizer="adamw", batch_size=64)
    full = train("cnn-small", digits, cfg, tmp_path / "a", adapt=True, progress=False)

    def stop_at_2(row, model):
        if row["epoch"] == 2:
            raise StopTraining

    train("cnn-small", digits, cfg, tmp_path / "b", adapt=True, progress=False,
          callbacks=[stop_at_2])
    resumed = train("cnn-small", digits, cfg, tmp_path / "b", adapt=True, progress=False,
                    resume=True)
    strip = [{k: v for k, v in r.items() if k not in ("seconds", "elapsed")}
             for r in full.history]
    assert [{k: v for k, v in r.items() if k not in ("seconds", "elapsed")}
            for r in resumed.history] == strip
    for k, v in full.model.state_dict().items():
        assert torch.equal(v, resumed.model.state_dict()[k]), k
