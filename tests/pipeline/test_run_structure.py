"""The structure stage of `archopt run`: the trained designed ResNet shrunk by channel selection,
its row in summary.json and report.md, the recorded options, resume."""

from __future__ import annotations

import pytest
import torch

from archopt.pipeline.config import InvalidRunConfig, RunConfig
from archopt.pipeline.run import run_pipeline
from archopt.runs import read_json
from archopt.spaces import load_spec
from archopt.training import load_model

TINY = dict(budget_macs=1.5e6, budget_params=4e5, candidates=600, train_size=300, test_size=100,
            train={"epochs": 1, "warmup_epochs": 0, "batch_size": 64, "latency": False})
STRUCTURE = {"epochs": 1, "max_steps_per_epoch": 6, "penalty": 8.0}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("run") / "digits"
    cfg = RunConfig(**TINY, structure=True, structure_options=STRUCTURE)
    try:
        yield cfg, run_pipeline(cfg, out, progress=False)
    finally:
        torch.set_num_threads(old)


def test_structured_row_is_a_smaller_resnet(run):
    _, result = run
    s, out = result.summary, result.out
    st = s["structured"]
    for field in ("test_accuracy", "test_macro_f1", "params", "macs", "latency_ms",
                  "weight_usage_rate"):
        assert st[field] is not None, field
    designed = load_spec(out / "design" / "arch.json")
    compact = load_spec(out / "structure" / "arch.json")
    assert st["params"] == compact.params() < designed.params() == s["designed"]["params"]
    assert st["weight_usage_rate"] == pytest.approx(compact.params() / designed.params())
    assert [b.btn for b in compact.blocks] == st["btn_per_superblock"]  # type: ignore[attr-defined]
    assert st["btn_full"] == [b.btn for b in designed.blocks]  # type: ignore[attr-defined]
    assert st["compact_max_abs_logit_difference"] < 1e-4
    model, spec, _ = load_model(out / "structure" / "model.pt")
    assert spec == compact and sum(p.numel() for p in model.parameters()) == st["params"]
    assert s["stage_seconds"]["structure"] > 0
    assert "| designed + structure |" in (out / "report.md").read_text()


def test_resolved_config_records_the_stage_options(run):
    cfg, result = run
    saved = read_json(result.out / "config.json")["run"]["structure_options"]
    assert saved["penalty"] == 8.0 and saved["epochs"] == 1 and saved["max_steps_per_epoch"] == 6
    for key in ("optimizer", "lr", "batch_size", "theta_lr", "lam", "theta_init", "seed"):
        assert key in saved, key
    assert saved["batch_size"] == 32  # half the run's batch
    reread = RunConfig.from_yaml(result.out / "run.yaml")
    assert reread.resolve() == reread == cfg.resolve()
    structure, train = reread.structure_configs()
    assert (structure.penalty, structure.optimizer, train.epochs) == (8.0, "asng", 1)
    stage = read_json(result.out / "structure" / "config.json")
    assert stage["structure"] == structure.to_dict()


def test_resume_skips_the_finished_stage(run, monkeypatch):
    cfg, result = run

    def refuse(*_a, **_k):
        raise AssertionError("the finished structure stage ran again")

    monkeypatch.setattr("archopt.structure.resnet.run_resnet_structure", refuse)
    again = run_pipeline(cfg, result.out, resume=True, progress=False)
    assert again.summary["structured"] == result.summary["structured"]


def test_an_interrupted_stage_resumes_from_its_checkpoint(run):
    """Summary lost after the last epoch's checkpoint: the stage finishes from it without
    training again, to the same result."""
    cfg, result = run
    stage = result.out / "structure"
    (stage / "summary.json").unlink()
    again = run_pipeline(cfg, result.out, resume=True, progress=False)
    for key in ("test_accuracy", "params", "macs", "btn_per_superblock", "weight_usage_rate"):
        assert again.summary["structured"][key] == result.summary["structured"][key], key


def test_bad_stage_options_are_refused_early():
    with pytest.raises(InvalidRunConfig, match="resnet"):
        RunConfig(space="mbv2", structure=True).resolve()
    with pytest.raises(InvalidRunConfig, match="structure_options"):
        RunConfig(structure=True, structure_options={"optimiser": "sng"}).resolve()
    with pytest.raises(InvalidRunConfig, match="structure_options"):
        RunConfig(structure=True, structure_options={"optimizer": "adam"}).resolve()


def test_cli_flags_reach_the_config(cli, tmp_path):
    res = cli("run", "--space", "mbv2", "--structure", "--structure-penalty", "0.5",
              "--out", tmp_path / "r")
    assert res.exit_code == 2 and "resnet" in res.output
