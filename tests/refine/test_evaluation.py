"""Population evaluation: batched == sequential, both == an independent forward + scikit-learn."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import accuracy_score, balanced_accuracy_score, f1_score

from archopt.errors import ArchoptError, UnknownName
from archopt.refine.blocking import histogram_blocking
from archopt.refine.evaluation import PopulationEvaluator
from archopt.refine.params import ParameterLayout
from archopt.refine.superbatch import CircularSuperBatches

from .conftest import TinyNet


def _population(net, n_bins=300, p=7, seed=0):
    layout = ParameterLayout.of(net)
    b = histogram_blocking(layout.flatten(net), n_bins)
    g = torch.Generator().manual_seed(seed)
    spread = (b.high - b.low).float()
    pop = b.values + (torch.rand(p, b.blocked_dimensions, generator=g) - 0.5) * 4 * spread
    pop[0] = b.values
    return layout, b, pop


def _batch(n=96, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 1, 8, 8, generator=g), torch.randint(0, 10, (n,), generator=g)


def _independent_preds(net, layout, full, x):
    """Load the vector into a fresh module with load_state_dict-style copies and run it."""
    fresh = TinyNet()
    fresh.load_state_dict(net.state_dict())  # buffers (BN running stats) as in the original
    layout.load(fresh, full)
    fresh.eval()
    with torch.no_grad():
        return fresh(x).argmax(1).numpy()


@pytest.mark.parametrize("metric,sk", [
    ("f1", lambda y, p: f1_score(y, p, average="macro")),
    ("accuracy", accuracy_score),
    ("balanced_accuracy", balanced_accuracy_score),
])
def test_objectives_match_independent_forward_and_sklearn(tiny_net, metric, sk):
    layout, b, pop = _population(tiny_net)
    x, y = _batch()
    ev = PopulationEvaluator(tiny_net, 10, blocking=b, metric=metric, path="sequential")
    got = ev.objectives(pop, x, y)
    for i in range(len(pop)):
        preds = _independent_preds(tiny_net, layout, b.unblock(pop[i]), x)
        assert got[i].item() == pytest.approx(1 - sk(y.numpy(), preds), abs=1e-6)


def test_batched_equals_sequential(tiny_net):
    _, b, pop = _population(tiny_net, p=7)
    x, y = _batch()
    ev = PopulationEvaluator(tiny_net, 10, blocking=b)
    seq = ev.logits_sequential(pop, x)
    for chunk in (1, 3, 7):  # 3 leaves a partial last chunk
        bat = ev.logits_batched(pop, x, chunk)
        torch.testing.assert_close(bat, seq, rtol=1e-5, atol=1e-5)
    ev_s = PopulationEvaluator(tiny_net, 10, blocking=b, path="sequential")
    ev_b = PopulationEvaluator(tiny_net, 10, blocking=b, path="batched", chunk=3)
    assert torch.equal(ev_s.objectives(pop, x, y), ev_b.objectives(pop, x, y))
    assert len(set(ev_s.objectives(pop, x, y).tolist())) > 1  # the candidates do differ


def test_batched_equals_sequential_on_a_resnet_with_bn(pretrained, digits):
    from archopt.training.checkpoint import load_model

    net, _, meta = load_model(pretrained)
    _, b, pop = _population(net, n_bins=2000, p=5)
    sb = CircularSuperBatches(digits.train_x, digits.train_y, 128, mean=meta["mean"],
                              std=meta["std"])
    x, y = sb[0]
    ev = PopulationEvaluator(net, 10, blocking=b)
    torch.testing.assert_close(ev.logits_batched(pop, x, 4), ev.logits_sequential(pop, x),
                               rtol=1e-4, atol=1e-4)
    ev.path, ev.chunk = "sequential", None
    seq = ev.objectives(pop, x, y)
    ev.path, ev.chunk = "batched", 4
    assert torch.equal(ev.objectives(pop, x, y), seq)


def test_model_and_buffers_untouched_and_eval_mode(tiny_net):
    before = {k: v.clone() for k, v in tiny_net.state_dict().items()}
    _, b, pop = _population(tiny_net)
    x, y = _batch()
    ev = PopulationEvaluator(tiny_net, 10, blocking=b, path="batched")
    ev.objectives(pop, x, y)
    for k, v in tiny_net.state_dict().items():
        assert torch.equal(v, before[k]), k
    assert not ev.module.training
    # eval mode: one example scored alone equals the same example inside a batch
    one = ev.logits_sequential(pop[:1], x[:1])
    assert torch.allclose(one[0, 0], ev.logits_sequential(pop[:1], x)[0, 0], atol=1e-5)


def test_calibration_measures_and_chooses(tiny_net):
    _, b, pop = _population(tiny_net, p=8)
    x, y = _batch()
    ev = PopulationEvaluator(tiny_net, 10, blocking=b, path="auto")
    ev.objectives(pop, x, y)
    cal = ev.calibration
    assert cal is not None and "sequential" in cal["rates"] and "batched:2" in cal["rates"]
    assert ev.path in ("sequential", "batched") and cal["path"] == ev.path
    best = max(cal["rates"], key=cal["rates"].get)
    assert (ev.path == "sequential") == (best == "sequential")


def test_metric_on_a_whole_split_is_not_a_batch_average(tiny_net, digits):
    layout = ParameterLayout.of(tiny_net)
    theta = layout.flatten(tiny_net)
    ev = PopulationEvaluator(tiny_net, 10)
    got = ev.metric_on(theta, digits.test_x, digits.test_y, mean=digits.mean, std=digits.std,
                       batch_size=64)
    from archopt.data import normalize

    with torch.no_grad():
        preds = tiny_net(normalize(digits.test_x, digits.mean, digits.std)).argmax(1).numpy()
    assert got == pytest.approx(f1_score(digits.test_y.numpy(), preds, average="macro"),
                                abs=1e-6)


def test_errors(tiny_net):
    with pytest.raises(UnknownName):
        PopulationEvaluator(tiny_net, 10, metric="auc-ish")
    with pytest.raises(ArchoptError):
        PopulationEvaluator(tiny_net, 10, path="fast")
    ev = PopulationEvaluator(tiny_net, 10)
    with pytest.raises(ArchoptError, match="parameters"):
        ev.objectives(torch.zeros(2, 5), *_batch())


def test_superbatches_are_circular_and_disjoint():
    x = torch.arange(50, dtype=torch.uint8).reshape(50, 1, 1, 1)
    y = torch.arange(50)
    sb = CircularSuperBatches(x, y, 8, mean=(0.0,), std=(1.0,), order="shuffled", seed=1)
    assert len(sb) == 6  # 48 of 50 examples, the partial batch dropped
    seen = torch.cat([sb[t][1] for t in range(6)])
    assert len(set(seen.tolist())) == 48
    assert torch.equal(sb[7][1], sb[1][1]) and torch.equal(sb[6][1], sb[0][1])
    xb, yb = sb[2]
    assert torch.allclose(xb.flatten(), yb.float() / 255.0)  # images travel with their labels
    ordered = CircularSuperBatches(x, y, 8, mean=(0.0,), std=(1.0,), order="dataset")
    assert ordered[1][1].tolist() == list(range(8, 16))
    with pytest.raises(ArchoptError, match="super-batch"):
        CircularSuperBatches(x, y, 51, mean=(0.0,), std=(1.0,))
    assert np.array_equal(sb.index(13), 1)
