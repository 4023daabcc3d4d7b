"""The HBDE loop end to end on the embedded digits data: figures, files, resume, baselines."""

from __future__ import annotations

import itertools
import json

import pytest
import torch
from sklearn.metrics import f1_score

from archopt.data import normalize
from archopt.errors import ArchoptError
from archopt.refine import (
    RefineConfig,
    histogram_blocking,
    refine,
    run_baselines,
)
from archopt.refine.params import ParameterLayout
from archopt.runs import read_jsonl
from archopt.training import evaluate, load_model

FAST = dict(n_bins=2000, population=8, generations=5, super_batch=128, eval_every=2,
            eval_path="sequential", device="cpu")


@pytest.fixture(scope="module")
def run(pretrained, digits, tmp_path_factory):
    out = tmp_path_factory.mktemp("hbde")
    return refine(pretrained, digits, RefineConfig(**FAST), out=out, progress=False)


def test_summary_figures_against_independent_computations(run, pretrained, digits):
    s = run.summary
    net, _, meta = load_model(pretrained)
    theta = ParameterLayout.of(net).flatten(net)
    assert s["dimensions"] == theta.numel() == sum(p.numel() for p in net.parameters())
    assert s["blocked_dimensions"] == histogram_blocking(theta, 2000).blocked_dimensions
    assert s["function_evaluations"] == 8 * 5 and s["generations"] == 5
    ref = evaluate(net, digits.test_x, digits.test_y, mean=tuple(meta["mean"]),
                   std=tuple(meta["std"]), num_classes=10)  # torchmetrics, not ours
    assert s["metric_before"] == pytest.approx(ref["macro_f1"], abs=1e-6)  # float32
    b = histogram_blocking(theta, 2000)
    ParameterLayout.of(net).load(net, b.unblock(b.values))
    with torch.no_grad():
        preds = net(normalize(digits.test_x, meta["mean"], meta["std"])).argmax(1)
    assert s["metric_after_blocking"] == pytest.approx(
        f1_score(digits.test_y, preds, average="macro"), abs=1e-6)
    assert s["rescore"] is False and s["evaluation"]["path"] == "sequential"
    for key in ("metric_after", "seconds", "search_seconds"):
        assert isinstance(s[key], float)


def test_refined_checkpoint_loads_and_evaluates_as_reported(run, digits):
    net, spec, meta = load_model(run.out / "checkpoint.pt")
    assert spec is not None and meta["dataset"] == "digits"
    ev = evaluate(net, digits.test_x, digits.test_y, mean=tuple(meta["mean"]),
                  std=tuple(meta["std"]), num_classes=10)
    assert ev["macro_f1"] == pytest.approx(run.summary["metric_after"], abs=1e-6)
    # the refined weights take exactly D' distinct values (weight sharing)
    theta = ParameterLayout.of(net).flatten(net)
    assert theta.unique().numel() <= run.summary["blocked_dimensions"]
    assert torch.equal(theta, run.blocking.unblock(run.best_blocks))


def test_result_folder(run):
    out = run.out
    for name in ("config.json", "arch.json", "summary.json", "metrics.jsonl", "checkpoint.pt",
                 "convergence.png", "state.pt"):
        assert (out / name).is_file(), name
    rows = read_jsonl(out / "metrics.jsonl")
    assert [r["generation"] for r in rows] == list(range(5))
    assert [r["generation"] for r in rows if "test_metric" in r] == [1, 3, 4]
    assert [r["evaluations"] for r in rows] == [8, 16, 24, 32, 40]
    assert rows[-1]["test_metric"] == pytest.approx(run.summary["metric_after"])
    assert [r["superbatch"] for r in rows] == [0, 1, 2, 3, 4]
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["refine"]["n_bins"] == 2000 and "environment" in cfg
    assert (out / "convergence.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_block_mean_member_never_regresses_on_a_fixed_super_batch(pretrained, digits, tmp_path):
    n = len(digits.train_y)
    cfg = RefineConfig(**{**FAST, "super_batch": n, "generations": 6, "population": 6,
                          "order": "dataset", "n_bins": 300})
    res = refine(pretrained, digits, cfg, progress=False)
    net, _, meta = load_model(pretrained)
    layout = ParameterLayout.of(net)
    b = histogram_blocking(layout.flatten(net), 300)
    layout.load(net, b.unblock(b.values))
    with torch.no_grad():
        preds = net(normalize(digits.train_x[: n], meta["mean"], meta["std"])).argmax(1)
    blocked_objective = 1 - f1_score(digits.train_y, preds, average="macro")
    best = [r["best_objective"] for r in res.history]
    assert best[0] <= blocked_objective + 1e-6  # torchmetrics computes in float32
    assert all(b2 <= b1 for b1, b2 in itertools.pairwise(best))


def test_resume_continues_bit_for_bit(pretrained, digits, tmp_path):
    cfg = dict(FAST, generations=4)
    whole = refine(pretrained, digits, RefineConfig(**cfg), out=tmp_path / "a", progress=False)
    refine(pretrained, digits, RefineConfig(**{**cfg, "generations": 2}), out=tmp_path / "b",
           progress=False)
    with pytest.raises(ArchoptError, match="resume"):
        refine(pretrained, digits, RefineConfig(**cfg), out=tmp_path / "b", progress=False)
    with pytest.raises(ArchoptError, match="population"):
        refine(pretrained, digits, RefineConfig(**{**cfg, "population": 10}),
               out=tmp_path / "b", resume=True, progress=False)
    resumed = refine(pretrained, digits, RefineConfig(**cfg), out=tmp_path / "b", resume=True,
                     progress=False)
    assert torch.equal(resumed.best_blocks, whole.best_blocks)
    assert resumed.summary["function_evaluations"] == whole.summary["function_evaluations"]
    rows_a = read_jsonl(tmp_path / "a" / "metrics.jsonl")
    rows_b = read_jsonl(tmp_path / "b" / "metrics.jsonl")
    strip = ("search_seconds", "search_cpu_seconds")
    assert [{k: v for k, v in r.items() if k not in strip} for r in rows_a] == \
        [{k: v for k, v in r.items() if k not in strip} for r in rows_b]


def test_rescore_counts_parent_evaluations(pretrained, digits):
    res = refine(pretrained, digits, RefineConfig(**{**FAST, "rescore": True, "generations": 3}),
                 progress=False)
    assert res.summary["function_evaluations"] == 8 + 2 * 8 * 2
    assert res.summary["rescore"] is True


def test_users_own_module(tiny_net, digits, tmp_path):
    from .conftest import TinyNet

    res = refine(tiny_net, digits, RefineConfig(**{**FAST, "generations": 2}),
                 out=tmp_path / "own", progress=False)
    assert res.summary["dimensions"] == sum(p.numel() for p in tiny_net.parameters())
    assert res.spec is None and not (tmp_path / "own" / "arch.json").exists()
    with pytest.raises(ArchoptError, match="module"):
        load_model(tmp_path / "own" / "checkpoint.pt")
    net, spec, _ = load_model(tmp_path / "own" / "checkpoint.pt", module=TinyNet())
    assert spec is None
    assert torch.equal(ParameterLayout.of(net).flatten(net),
                       res.blocking.unblock(res.best_blocks))


def test_model_data_mismatch(pretrained, digits):
    wrong = digits.subset(train=200)
    object.__setattr__(wrong, "num_classes", 7)
    with pytest.raises(ArchoptError, match="classes"):
        refine(pretrained, wrong, RefineConfig(**FAST), progress=False)


def test_baselines_at_equal_search_time(run, pretrained, digits):
    found = run_baselines(run, pretrained, digits, ["adam", "random-blocks"], progress=False)
    budget = run.summary["search_seconds"]
    assert set(found) == {"adam", "random-blocks"}
    assert found["adam"]["search_seconds"] >= budget and found["adam"]["steps"] >= 1
    rb = json.loads((run.out / "baselines" / "random-blocks" / "summary.json").read_text())
    assert rb["blocked_dimensions"] == run.summary["blocked_dimensions"]
    assert rb["method"] == "bde-random-blocks" and rb["search_seconds"] >= budget
    # random blocks destroy the pre-trained model; histogram blocks keep it
    assert rb["metric_after_blocking"] < run.summary["metric_after_blocking"] - 0.3
    summary = json.loads((run.out / "summary.json").read_text())
    assert set(summary["baselines"]) == {"adam", "random-blocks"}
    with pytest.raises(ArchoptError, match="baseline"):
        run_baselines(run, pretrained, digits, ["sgd"], progress=False)


def test_cpu_clock_bounds_the_search_and_its_baselines(pretrained, digits, tmp_path):
    cfg = RefineConfig(**{**FAST, "generations": None, "max_seconds": 0.05, "clock": "cpu"})
    res = refine(pretrained, digits, cfg, out=tmp_path / "h", progress=False)
    s = res.summary
    assert s["clock"] == "cpu" and s["search_cpu_seconds"] >= 0.05
    rows = read_jsonl(tmp_path / "h" / "metrics.jsonl")
    assert all("search_cpu_seconds" in r for r in rows)
    # the search stops at the first generation past the budget (one generation can be enough
    # on a busy machine)
    assert all(r["search_cpu_seconds"] < 0.05 for r in rows[:-1])
    assert rows[-1]["search_cpu_seconds"] >= 0.05
    found = run_baselines(res, pretrained, digits, ["adam", "random-blocks"], progress=False)
    for name in ("adam", "random-blocks"):
        assert found[name]["search_cpu_seconds"] >= s["search_cpu_seconds"]
    with pytest.raises(ArchoptError, match="clock"):
        from archopt.refine import adam_baseline

        adam_baseline(pretrained, digits, 1.0, clock="gpu", progress=False)
