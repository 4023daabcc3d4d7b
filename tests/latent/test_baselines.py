"""Sparse-MLP baselines land on the requested count; the protocol selects by validation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from archopt.data.tabular import TabularData
from archopt.errors import InvalidSpec
from archopt.latent.baselines import (
    BASELINES,
    dense_narrow,
    expected_l0,
    fit_best,
    forward,
    imp_rewind,
    init_weights,
    l0_hard_concrete,
    narrow_width,
    prune_finetune,
    topk_mask,
)
from archopt.latent.compact import compact_mlp
from archopt.spaces import MLPSpec


def _data(n=400, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 3, generator=g) * 2 - 1
    y = torch.sigmoid(3 * x[:, 0] - 2 * x[:, 1]) * 4 - torch.sigmoid(2 * x[:, 2]) * 3
    return x, y


def _nonzero(ws):
    return [int(sum(int((w[r] != 0).sum()) for w in ws)) for r in range(ws[0].shape[0])]


@pytest.mark.parametrize("k", [5, 17, 40])
def test_topk_mask_is_the_global_top_k_per_restart(k):
    g = torch.Generator().manual_seed(3)
    scores = [torch.rand(3, 7, 3, generator=g), torch.rand(3, 7, 7, generator=g),
              torch.rand(3, 1, 7, generator=g)]
    masks = topk_mask(scores, k)
    for r in range(3):
        flat = np.concatenate([s[r].numpy().ravel() for s in scores])
        kept = np.concatenate([m[r].numpy().ravel() for m in masks]) > 0
        assert kept.sum() == k
        assert set(np.flatnonzero(kept)) == set(np.argsort(-flat, kind="stable")[:k])
    eligible = [s > 0.5 for s in scores]
    masks = topk_mask(scores, 1000, eligible)
    for m, e in zip(masks, eligible, strict=True):
        assert torch.equal(m > 0, e)
    with pytest.raises(InvalidSpec):
        topk_mask(scores, -1)


def test_forward_matches_the_mlp_module():
    g = torch.Generator().manual_seed(1)
    ws = init_weights(3, [4, 5], 2, g)
    x, _ = _data(50)
    out = forward(ws, x, "leaky_relu", 0.1)
    for r in range(2):
        spec = MLPSpec(in_features=3, widths=[4, 5], num_classes=1, activation="leaky_relu",
                       negative_slope=0.1, bias=False)
        m = spec.build()
        m.load_state_dict({f"layers.{i}.weight": w[r] for i, w in enumerate(ws)})
        with torch.no_grad():
            assert torch.allclose(m(x).squeeze(-1), out[r], atol=1e-6)


@pytest.mark.parametrize("method", [l0_hard_concrete, imp_rewind, prune_finetune])
@pytest.mark.parametrize("k", [9, 26])
def test_sparse_baselines_land_on_the_requested_count(method, k):
    x, y = _data()
    fit = method(x, y, depth=2, width=7, nonzero=k, activation="sigmoid", steps=60, lr=0.05,
                 restarts=3, generator=torch.Generator().manual_seed(0))
    assert _nonzero(fit.weights) == [k, k, k]


def test_imp_prunes_geometrically_over_its_rounds():
    x, y = _data()
    fit = imp_rewind(x, y, depth=2, width=7, nonzero=10, activation="sigmoid", steps=100,
                     restarts=1, generator=torch.Generator().manual_seed(0), rounds=3)
    total = 3 * 7 + 49 + 7
    expected = [round(total * (10 / total) ** (r / 3)) for r in (1, 2)] + [10]
    assert fit.info["round_counts"] == expected
    assert fit.info["segment_steps"] == 25 and fit.info["rewind_step"] == 2


def test_l0_penalty_brings_the_expected_count_to_the_budget():
    x, y = _data()
    fit = l0_hard_concrete(x, y, depth=2, width=7, nonzero=20, activation="sigmoid", steps=400,
                           lr=0.05, restarts=2, generator=torch.Generator().manual_seed(0))
    # from ~0.83 * 77 = 64 expected open gates at init to about the budget
    assert all(e < 30 for e in fit.per_restart["expected_l0"])
    assert float(expected_l0(torch.zeros(1))) == pytest.approx(0.8320, abs=1e-3)


def test_dense_narrow_has_at_most_the_count():
    assert narrow_width(3, 1, 28) == 7 and narrow_width(3, 1, 27) == 6
    assert narrow_width(3, 3, 30) == 3  # 9 + 2 * 9 + 3 = 30
    assert narrow_width(3, 4, 5) == 1  # even width 1 has 3 + 3 + 1 = 7 > 5: width 1
    x, y = _data()
    fit = dense_narrow(x, y, depth=2, width=7, nonzero=30, activation="sigmoid", steps=20,
                       restarts=2, generator=torch.Generator().manual_seed(0))
    assert fit.info["narrow_width"] == 3  # 3w + w^2 + w: 21 at w = 3, 32 > 30 at w = 4
    assert _nonzero(fit.weights) == [21, 21]


def test_fit_best_selects_by_validation_and_reports_target_units():
    x, y = _data(600, seed=2)
    splits = TabularData(x.numpy(), (10 * y).numpy(), ("a", "b", "c"), "y", "t").split(seed=0)
    b = fit_best(BASELINES["prune_finetune"], splits, nonzero=15, activation="sigmoid",
                 depths=(1, 2), restarts=2, steps=80, lr=0.05)
    vals = [v for d in b.row["per_depth"] for v in d["restart_val_mse"]]
    assert b.row["val_mse"] == min(vals)
    assert b.row["nonzero_weights"] == 15
    # the returned weights (output layer rescaled to target units) give the reported test MSE
    small = compact_mlp(b.weights, "sigmoid")
    with torch.no_grad():
        pred = small.build()(torch.as_tensor(splits.x_test)).squeeze(-1)
    mse = float(((pred - torch.as_tensor(splits.y_test)) ** 2).mean())
    assert mse == pytest.approx(b.row["test_mse"], rel=1e-5)
    assert b.row["y_scale"] == pytest.approx(float(np.std(splits.y_train, ddof=1)), rel=1e-5)
    with pytest.raises(InvalidSpec):
        fit_best(BASELINES["l0"], splits, nonzero=0, activation="sigmoid")
