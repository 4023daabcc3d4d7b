"""Logit adjustment and bias tuning: identity at tau = 0, only the output bias changes (logits
+ offsets exactly), the validation metric never falls, the test split is never looked at, and
the validation rule shared with HBDE."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from sklearn.metrics import f1_score

from archopt.data import normalize
from archopt.errors import ArchoptError
from archopt.refine import (
    RefineConfig,
    class_prior,
    logit_adjustment,
    refine,
    resolve_validation,
    tune_biases,
)
from archopt.refine.posthoc import default_bound
from archopt.refine.scores import COMMON_KEYS
from archopt.training import load_model

BIAS = dict(method="bias", device="cpu", bias_evaluations=3000)


def _logits(net, x, meta):
    with torch.no_grad():
        return net.eval()(normalize(x, meta["mean"], meta["std"])).double()


def _state(net):
    return {k: v.clone() for k, v in net.state_dict().items()}


def test_logit_adjustment_at_tau_zero_is_the_identity(pretrained, digits, tmp_path):
    res = refine(pretrained, digits, RefineConfig(method="logit-adjust", taus=(0.0,),
                                                  device="cpu"), out=tmp_path, progress=False)
    before, _, _ = load_model(pretrained)
    after, _, _ = load_model(tmp_path / "checkpoint.pt")
    for k, v in before.state_dict().items():
        assert torch.equal(v, after.state_dict()[k]), k
    s = res.summary
    assert s["adjustment"]["tau"] == 0.0 and s["adjustment"]["offsets"] == [0.0] * 10
    assert s["metric_after"] == s["metric_before"]
    assert s["val_metric_after"] == s["val_metric_before"]


def test_logit_adjustment_picks_the_best_tau_by_brute_force():
    g = torch.Generator().manual_seed(0)
    y = torch.randint(0, 4, (300,), generator=g)
    logits = torch.randn(300, 4, generator=g) + 1.5 * torch.nn.functional.one_hot(y, 4)
    logits[:, 0] += 1.0  # a model biased towards class 0
    prior = torch.tensor([0.55, 0.2, 0.15, 0.1], dtype=torch.float64)
    taus = (0.0, 0.5, 1.0, 1.5, 2.0)
    tau, offsets, rows = logit_adjustment(logits, y, prior, taus, metric="f1")
    ref = [f1_score(y.numpy(), (logits.double().numpy() - t * np.log(prior.numpy())).argmax(1),
                    average="macro") for t in taus]
    assert [r["val_metric"] for r in rows] == pytest.approx(ref, abs=1e-6)
    assert tau == taus[int(np.argmax(ref))]  # first (smallest) tau of the maximum
    assert torch.allclose(offsets, -tau * prior.log())


def test_class_prior_counts_the_labels_and_stays_finite():
    p = class_prior(torch.tensor([0, 0, 1, 1, 1, 1]), 3)
    assert p.tolist() == pytest.approx([2 / 7, 4 / 7, 1 / 7])  # the absent class counts as one


def test_bias_tuning_changes_only_the_output_bias_by_the_offsets(pretrained, digits, tmp_path):
    res = refine(pretrained, digits, RefineConfig(**BIAS), out=tmp_path, progress=False)
    s = res.summary
    before, _, meta = load_model(pretrained)
    after, spec, meta_after = load_model(tmp_path / "checkpoint.pt")  # a plain model
    assert spec is not None and meta_after["refined"]["method"] == "bias"
    name = s["adjustment"]["folded_into"]
    offsets = torch.tensor(s["adjustment"]["offsets"], dtype=torch.float64)
    sb, sa = before.state_dict(), after.state_dict()
    assert [k for k in sb if not torch.equal(sb[k], sa[k])] == ([name] if offsets.any() else [])
    lb, la = _logits(before, digits.test_x, meta), _logits(after, digits.test_x, meta)
    assert torch.allclose(la, lb + offsets, atol=1e-5)


def test_bias_tuning_can_only_raise_the_validation_metric(pretrained, digits):
    res = refine(pretrained, digits, RefineConfig(**BIAS), progress=False)
    s = res.summary
    assert s["val_metric_after"] >= s["val_metric_before"]
    # the reported validation figure, recomputed independently with scikit-learn
    _, val = resolve_validation(digits, fraction=0.1, seed=0)
    net, _, meta = load_model(pretrained)
    offsets = torch.tensor(s["adjustment"]["offsets"], dtype=torch.float64)
    preds = (_logits(net, val.x, meta) + offsets).argmax(1)
    assert s["val_metric_after"] == pytest.approx(f1_score(val.y, preds, average="macro"),
                                                  abs=1e-6)


def test_tune_biases_keeps_the_identity_when_nothing_beats_it():
    y = torch.arange(5).repeat(20)
    logits = 10.0 * torch.nn.functional.one_hot(y, 5).float()  # already perfect
    b, info, rows = tune_biases(logits, y, evaluations=500, seed=0)
    assert not info["accepted"] and torch.equal(b, torch.zeros(5, dtype=torch.float64))
    assert info["val_metric_identity"] == 1.0 and rows


def test_tune_biases_finds_the_shift_of_a_biased_model():
    g = torch.Generator().manual_seed(1)
    y = torch.randint(0, 3, (600,), generator=g)
    logits = torch.randn(600, 3, generator=g) + 2.0 * torch.nn.functional.one_hot(y, 3)
    logits[:, 2] += 3.0  # every example leans to class 2
    b, info, _ = tune_biases(logits, y, evaluations=3000, seed=0, bound=4.0)
    base = f1_score(y, logits.argmax(1), average="macro")
    assert info["accepted"] and info["val_metric_found"] > base + 0.2
    assert b[2] - b[:2].mean() < -1.5  # it undid most of the lean


def test_default_bound_is_a_quarter_of_the_median_top2_margin():
    logits = torch.tensor([[3.0, 1.0, 0.0], [0.0, 5.0, 1.0], [2.0, 2.5, 9.0]])
    assert default_bound(logits) == pytest.approx(0.25 * 4.0)  # margins 2, 4, 6.5


def test_cma_is_an_optional_optimizer():
    pytest.importorskip("cma")
    g = torch.Generator().manual_seed(2)
    y = torch.randint(0, 3, (300,), generator=g)
    logits = torch.randn(300, 3, generator=g) + 2.0 * torch.nn.functional.one_hot(y, 3)
    logits[:, 0] += 2.5
    _, info, _ = tune_biases(logits, y, optimizer="cma", evaluations=800, seed=0)
    assert info["optimizer"] == "cma" and info["evaluations"] <= 800 + 20
    assert info["val_metric_found"] >= info["val_metric_identity"]


def test_selection_never_looks_at_the_test_split(pretrained, digits):
    shuffled = dataclasses.replace(digits, test_y=digits.test_y.flip(0))
    for cfg in (RefineConfig(**BIAS), RefineConfig(method="logit-adjust", device="cpu")):
        a = refine(pretrained, digits, cfg, progress=False).summary
        b = refine(pretrained, shuffled, cfg, progress=False).summary
        assert a["adjustment"]["offsets"] == b["adjustment"]["offsets"]
        assert a["val_metric_after"] == b["val_metric_after"]
        assert a["metric_after"] != b["metric_after"]  # the test figure did see the change


@pytest.mark.parametrize("method", ["hbde", "logit-adjust", "bias"])
def test_a_dataset_without_validation_split_gets_one_seeded_and_recorded(method, pretrained,
                                                                         digits, tmp_path):
    cfg = RefineConfig(method=method, device="cpu", val_fraction=0.2, val_seed=3,
                       n_bins=1000, population=6, generations=2, eval_path="sequential",
                       bias_evaluations=600)
    s = refine(pretrained, digits, cfg, out=tmp_path, progress=False).summary
    _, val = resolve_validation(digits, fraction=0.2, seed=3)
    counts = torch.bincount(digits.train_y, minlength=10)
    v = s["validation"]
    assert v["source"] == "held-out" and v["fraction"] == 0.2 and v["seed"] == 3
    assert v["class_counts"] == [round(0.2 * int(c)) for c in counts]  # stratified
    assert v["size"] == len(val.y) and v["train_size"] == len(digits.train_y) - len(val.y)
    assert set(COMMON_KEYS) <= set(s)
    for name in ("config.json", "summary.json", "metrics.jsonl", "checkpoint.pt",
                 "convergence.png"):
        assert (tmp_path / name).is_file(), name


def test_a_given_validation_split_is_used_as_given(pretrained, digits):
    vx, vy = digits.test_x[:100], digits.test_y[:100]  # any labelled images the caller names
    s = refine(pretrained, digits, RefineConfig(method="logit-adjust", device="cpu"),
               validation=(vx, vy), progress=False).summary
    assert s["validation"]["source"] == "given" and s["validation"]["size"] == 100
    assert s["validation"]["train_size"] == len(digits.train_y)
    with pytest.raises(ArchoptError, match="validation"):
        refine(pretrained, digits, RefineConfig(method="bias", device="cpu"),
               validation=(vx, vy[:50]), progress=False)


def test_a_model_whose_logits_are_not_the_output_bias_is_refused(tiny_net, digits):
    class Doubled(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, x):
            return 2.0 * self.inner(x)

    for method in ("logit-adjust", "bias"):
        with pytest.raises(ArchoptError, match="cannot be folded"):
            refine(Doubled(tiny_net), digits, RefineConfig(method=method, device="cpu"),
                   progress=False)


def test_a_folder_holding_a_run_is_refused_without_resume(pretrained, digits, tmp_path):
    cfg = RefineConfig(method="logit-adjust", device="cpu")
    refine(pretrained, digits, cfg, out=tmp_path, progress=False)
    with pytest.raises(ArchoptError, match="--resume"):
        refine(pretrained, digits, cfg, out=tmp_path, progress=False)
    again = refine(pretrained, digits, cfg, out=tmp_path, resume=True, progress=False)
    assert again.summary["metric_after"] is not None
