"""torchmetrics-based metrics and ``evaluate`` against scikit-learn (an independent check).

torchmetrics computes in float32, hence the 1e-6 tolerance."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import accuracy_score, balanced_accuracy_score, f1_score
from sklearn.metrics import confusion_matrix as sk_confusion_matrix

from archopt.errors import UnknownName
from archopt.training import METRICS, evaluate, get_metric, predict, score_batch
from archopt.training.metrics import confusion_matrix

SKLEARN = {
    "accuracy": accuracy_score,
    "f1": lambda t, p: f1_score(t, p, average="macro", zero_division=0),
    "macro_f1": lambda t, p: f1_score(t, p, average="macro", zero_division=0),
    "balanced_accuracy": balanced_accuracy_score,
}


@st.composite
def labelled(draw, population: int = 1):
    k = draw(st.integers(2, 12))
    n = draw(st.integers(1, 60))
    target = draw(st.lists(st.integers(0, k - 1), min_size=n, max_size=n))
    preds = [draw(st.lists(st.integers(0, k - 1), min_size=n, max_size=n))
             for _ in range(population)]
    return k, np.array(target), np.array(preds)


@settings(max_examples=80, deadline=None)
@given(labelled())
def test_single_metrics_match_sklearn(case):
    k, target, preds = case
    p, t = torch.from_numpy(preds[0]), torch.from_numpy(target)
    assert torch.equal(confusion_matrix(p, t, k),
                       torch.from_numpy(sk_confusion_matrix(target, preds[0], labels=range(k))))
    for name, ref in SKLEARN.items():
        with _quiet():
            expected = ref(target, preds[0])
        got = float(METRICS[name](p, t, k))
        assert got == pytest.approx(expected, abs=1e-6), name


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 9).flatmap(lambda pop: labelled(pop)))
def test_batched_scores_equal_row_by_row_sklearn(case):
    k, target, preds = case
    t = torch.from_numpy(target)
    for name, ref in SKLEARN.items():
        got = score_batch(name, torch.from_numpy(preds), t, k)
        assert got.shape == (len(preds),)
        with _quiet():
            expected = [ref(target, row) for row in preds]
        np.testing.assert_allclose(got.numpy(), expected, atol=1e-6, err_msg=name)


@pytest.mark.parametrize("case", ["binary", "multiclass", "class absent"])
def test_population_scores_equal_sklearn_on_random_predictions(case):
    # 100 candidates scored in one samplewise call, each compared with scikit-learn's score
    g = np.random.default_rng(7)
    k, n = {"binary": (2, 128), "multiclass": (10, 128), "class absent": (10, 128)}[case]
    target = g.integers(0, k, n)
    preds = g.integers(0, k, (100, n))
    if case == "class absent":  # class 3 never occurs in the batch; some candidates predict it
        target[target == 3] = 4
        assert 3 not in target and (preds == 3).any()
    t = torch.from_numpy(target)
    for name, ref in SKLEARN.items():
        got = score_batch(name, torch.from_numpy(preds), t, k)
        with _quiet():
            expected = [ref(target, row) for row in preds]
        np.testing.assert_allclose(got.numpy(), expected, atol=1e-6, err_msg=name)
        single = [float(METRICS[name](torch.from_numpy(row), t, k)) for row in preds[:5]]
        np.testing.assert_allclose(single, expected[:5], atol=1e-6, err_msg=name)


def test_unknown_metric_and_bad_shapes():
    with pytest.raises(UnknownName, match=r"known: .*accuracy"):
        get_metric("auc")
    with pytest.raises(ValueError, match=r"\(P, N\)"):
        score_batch("f1", torch.zeros(5, dtype=torch.long), torch.zeros(5, dtype=torch.long), 2)
    with pytest.raises(ValueError, match="preds must be"):
        confusion_matrix(torch.zeros(4, dtype=torch.long), torch.zeros(5, dtype=torch.long), 2)


def test_evaluate_matches_sklearn_and_torch_loss():
    torch.manual_seed(0)
    k, n = 7, 333
    x = torch.randint(0, 256, (n, 1, 4, 4), dtype=torch.uint8)
    y = torch.randint(0, k, (n,))
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, k))
    mean, std = (0.4,), (0.3,)
    res = evaluate(model, x, y, mean=mean, std=std, num_classes=k, batch_size=50)
    with torch.no_grad():
        logits = model(((x.float() / 255) - 0.4) / 0.3)
    pred = logits.argmax(1).numpy()
    assert res["accuracy"] == pytest.approx(accuracy_score(y, pred), abs=1e-6)
    assert res["macro_f1"] == pytest.approx(f1_score(y, pred, average="macro"), abs=1e-6)
    expected_loss = torch.nn.functional.cross_entropy(logits.double(), y).item()
    assert res["loss"] == pytest.approx(expected_loss, rel=1e-5)
    assert torch.equal(predict(model, x, mean=mean, std=std, batch_size=64), logits.argmax(1))
    assert model.training  # mode restored


class _quiet:
    """Silence scikit-learn's warnings about classes absent from y_true."""

    def __enter__(self):
        import warnings

        self._w = warnings.catch_warnings()
        self._w.__enter__()
        warnings.simplefilter("ignore")

    def __exit__(self, *exc):
        self._w.__exit__(*exc)
