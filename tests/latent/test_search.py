"""Latent search, compaction and the pruned baseline."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from archopt.data.tabular import TabularSplits
from archopt.errors import DataError, InvalidSpec
from archopt.latent import (
    SearchConfig,
    array_forward,
    compact_mlp,
    decode,
    latent_search,
    magnitude_prune,
    pruned_baseline,
    soft_prune,
)
from archopt.latent import search as search_mod


def _target_splits(model, depth: int, seed: int, n: int = 900) -> TabularSplits:
    """Data from an MLP the decoder itself produces (so the decoder can represent it)."""
    g = torch.Generator().manual_seed(seed)
    z_star = torch.rand(1, model.config.latent_dim, generator=g)
    with torch.no_grad():
        arr = model.decode(z_star, depth)
        x = torch.rand(n, 3, generator=g) * 2 - 1
        y = array_forward(arr, x, model.layout, model.config.activation)[0]
    X, Y = x.numpy(), y.numpy()
    a, b = n * 5 // 9, n * 7 // 9
    return TabularSplits(X[:a], Y[:a], X[a:b], Y[a:b], X[b:], Y[b:])


def test_search_reduces_the_loss_on_a_representable_target(scaled_model):
    splits = _target_splits(scaled_model, depth=2, seed=0)
    before = [p.clone() for p in scaled_model.parameters()]
    rows: list[dict] = []
    r = search_mod.search_depth(scaled_model, 2, splits.tensors(),
                                SearchConfig(steps=100, sparsity_divisor=1e12, seed=10,
                                             log_every=10, restarts=1), log=rows.append)
    # The MSE the search optimises falls by more than 10x; the thresholded compact model keeps it.
    assert rows[-1]["mse"] < 0.1 * rows[0]["mse"]
    assert r.initial_mse == pytest.approx(rows[0]["mse"])
    assert r.train_mse < 0.1 * r.initial_mse
    assert 0.0 <= r.threshold <= 3.0
    # The decoder is frozen: its weights did not move.
    assert all(torch.equal(a, b) for a, b in zip(before, scaled_model.parameters(), strict=True))


def test_sparsity_penalty_prunes_more(scaled_model):
    splits = _target_splits(scaled_model, depth=3, seed=3)
    data = splits.tensors()
    cfg = dict(steps=60, seed=4, lr_t=0.05)
    weak = search_mod.search_depth(scaled_model, 3, data,
                                   SearchConfig(sparsity_divisor=1e12, **cfg))
    strong = search_mod.search_depth(scaled_model, 3, data,
                                     SearchConfig(sparsity_divisor=1.0, **cfg))
    assert strong.c == pytest.approx(strong.initial_mse)
    assert strong.compact.nonzero_weights < weak.compact.nonzero_weights


def test_compact_model_reproduces_the_soft_pruned_predictions(scaled_model):
    lay = scaled_model.layout
    z = torch.rand(1, scaled_model.config.latent_dim, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        arr = scaled_model.decode(z, 3)
    wc = lay.weight_cols(3)
    w = arr[..., :wc]
    mags = np.sort(w[w != 0].abs().numpy())
    # A threshold in the widest gap between weight magnitudes: no weight within 0.05 of t.
    gaps = np.diff(mags)
    i = int(np.argmax(gaps[: len(gaps) // 2 + 1]))
    t = float((mags[i] + mags[i + 1]) / 2)
    assert gaps[i] > 0.1
    x = torch.rand(300, 3) * 2 - 1
    soft = array_forward(arr, x, lay, "sigmoid", weights=soft_prune(w, t))[0]
    hard = array_forward(arr, x, lay, "sigmoid", weights=w * (w.abs() >= t))[0]
    compact = compact_mlp(decode(arr[0], lay), "sigmoid", threshold=t)
    module = compact.build()
    with torch.no_grad():
        out = module(x).squeeze(-1)
    # Exact (float rounding) against the thresholded array, close to the soft-pruned one
    # (sigmoid(100 * 0.05) differs from 0/1 by < 7e-3 of each weight).
    torch.testing.assert_close(out, hard, rtol=1e-5, atol=1e-5)
    scale = float(hard.abs().max()) + 1
    assert float((out - soft).abs().max()) < 0.05 * scale
    assert 0 < compact.nonzero_weights <= int((w.abs() >= t).sum())
    assert all(float(v[v != 0].abs().min()) >= t for v in compact.state_dict.values()
               if (v != 0).any())


def test_compaction_rules_by_hand():
    W0 = torch.tensor([[1.0, 0.0], [0.0, 0.0], [0.5, 2.0]])        # unit 1: no input
    W1 = torch.tensor([[3.0, 4.0, 0.0], [0.0, 0.0, 5.0]])          # unit 1 feeds nothing below
    Wo = torch.tensor([[6.0, 0.0]])                                # layer-2 unit 1: no output
    # leaky_relu: act(0) = 0, so a unit without input is dead; so is one without output.
    c = compact_mlp([W0, W1, Wo], "leaky_relu")
    assert c.kept == [[0], [0]]  # unit 2 of layer 1 only feeds the dead unit 1 of layer 2
    assert c.spec.widths == [1, 1] and c.active_neurons == 2 and c.nonzero_weights == 3
    # sigmoid: unit 1 of layer 1 outputs the constant 0.5 into unit 0 of layer 2: kept.
    s = compact_mlp([W0, W1, Wo], "sigmoid")
    assert s.kept == [[0, 1], [0]]
    assert s.active_neurons == 3 and s.nonzero_weights == 4   # 1 + (3, 4) + 6
    x = torch.rand(20, 2)
    for act, cm in (("leaky_relu", c), ("sigmoid", s)):
        ref = _reference_forward([W0, W1, Wo], act, x)
        torch.testing.assert_close(cm.build()(x).squeeze(-1), ref)


def _reference_forward(weights, act, x):
    f = {"sigmoid": torch.sigmoid, "leaky_relu": lambda v: torch.nn.functional.leaky_relu(v, 0.1),
         "linear": lambda v: v}[act]
    h = x
    for w in weights[:-1]:
        h = f(h @ w.T)
    return (h @ weights[-1].T).squeeze(-1)


def test_a_dead_layer_keeps_a_zero_placeholder():
    W0 = torch.tensor([[1.0, 2.0]])
    W1 = torch.tensor([[0.0]])
    Wo = torch.tensor([[7.0]])
    for act in ("sigmoid", "leaky_relu"):
        c = compact_mlp([W0, W1, Wo], act)
        assert c.spec.widths == [1, 1]
        x = torch.rand(5, 2)
        torch.testing.assert_close(c.build()(x).squeeze(-1), _reference_forward([W0, W1, Wo],
                                                                                act, x))
    assert compact_mlp([W0, W1, Wo], "leaky_relu").active_neurons == 0
    # sigmoid: layer 2's unit outputs the constant 0.5 * 7 and is kept; layer 1 is dead.
    assert compact_mlp([W0, W1, Wo], "sigmoid").kept == [[-1], [0]]


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10**6), act=st.sampled_from(["sigmoid", "leaky_relu", "linear"]),
       t=st.floats(0, 1.5))
def test_compaction_preserves_the_thresholded_function(seed, act, t):
    rng = np.random.default_rng(seed)
    dims = [3, *rng.integers(1, 8, size=rng.integers(1, 5)).tolist(), 1]
    ws = []
    for i in range(len(dims) - 1):
        w = rng.uniform(-2, 2, size=(dims[i + 1], dims[i])) * (rng.random((dims[i + 1],
                                                                             dims[i])) < 0.5)
        ws.append(torch.tensor(w, dtype=torch.float32))
    c = compact_mlp(ws, act, threshold=t)
    pruned = [w * (w.abs() >= t) for w in ws]
    x = torch.rand(40, 3) * 2 - 1
    torch.testing.assert_close(c.build()(x).squeeze(-1), _reference_forward(pruned, act, x),
                               rtol=1e-5, atol=1e-5)
    assert c.nonzero_weights <= sum(int((w != 0).sum()) for w in pruned)
    assert sum(c.spec.widths) <= sum(dims[1:-1])


def test_magnitude_prune_keeps_the_largest():
    rng = np.random.default_rng(0)
    ws = [torch.tensor(rng.normal(size=s), dtype=torch.float32) for s in ((7, 3), (7, 7),
                                                                         (1, 7))]
    out = magnitude_prune(ws, 20)
    flat = np.concatenate([w.numpy().ravel() for w in ws])
    kept = np.concatenate([w.numpy().ravel() for w in out])
    assert (kept != 0).sum() == 20
    expected = np.sort(np.abs(flat))[-20:]
    np.testing.assert_array_equal(np.sort(np.abs(kept[kept != 0])), expected)
    with pytest.raises(InvalidSpec):
        magnitude_prune(ws, -1)


def test_baseline_is_pruned_to_exactly_the_requested_count_then_fine_tuned(scaled_model):
    splits = _target_splits(scaled_model, depth=2, seed=1)
    b = pruned_baseline(splits, depth=2, nonzero=30, activation="sigmoid", steps=60)
    # exactly 30 non-zero weights when pruned, and still 30 after fine-tuning (mask fixed)
    assert b["pruned_nonzero_weights"] == 30 and b["nonzero_weights"] == 30
    assert b["live_weights"] <= 30 and b["widths"] and b["dense_params"] == 3 * 7 + 49 + 7
    # fine-tuning with the mask fixed lowers the error of the pruned network
    assert b["test_mse"] < b["pruned_test_mse"]
    # without fine-tuning, the compacted network is the pruned network (same test MSE)
    raw = pruned_baseline(splits, depth=2, nonzero=30, activation="sigmoid", steps=60,
                          finetune_steps=0)
    assert raw["pruned_nonzero_weights"] == 30
    assert raw["test_mse"] == pytest.approx(raw["pruned_test_mse"], rel=1e-5)
    assert raw["pruned_test_mse"] == pytest.approx(b["pruned_test_mse"], rel=1e-6)


def test_latent_search_writes_a_resumable_result_folder(scaled_model, tmp_path, monkeypatch):
    splits = _target_splits(scaled_model, depth=1, seed=2, n=300)
    cfg = SearchConfig(steps=5, depths=(1, 2))
    r = latent_search(scaled_model, splits, cfg, out=tmp_path)
    for name in ("arch.json", "model.pt", "metrics.jsonl", "search.png", "search_depth1.pt",
                 "search_depth2.pt"):
        assert (tmp_path / name).exists()
    assert r.best.val_mse == min(d.val_mse for d in r.per_depth)
    saved = torch.load(tmp_path / "model.pt", weights_only=True)
    from archopt.spaces import load_spec

    module = load_spec(saved["spec"]).build()
    module.load_state_dict(saved["state_dict"])
    with torch.no_grad():
        mse = float(((module(torch.tensor(splits.x_test)).squeeze(-1)
                      - torch.tensor(splits.y_test)) ** 2).mean())
    assert mse == pytest.approx(r.best.test_mse, rel=1e-5)
    # A rerun reuses both finished depths without searching again.
    def boom(*a, **k):
        raise AssertionError("searched again")
    monkeypatch.setattr(search_mod, "search_depth", boom)
    again = latent_search(scaled_model, splits, cfg, out=tmp_path)
    assert again.summary() == r.summary()
    # Other settings: not reused.
    with pytest.raises(AssertionError, match="searched again"):
        latent_search(scaled_model, splits, SearchConfig(steps=6, depths=(1,)), out=tmp_path)


def test_search_rejects_data_of_another_width(scaled_model):
    x = np.zeros((10, 2), np.float32)
    y = np.zeros(10, np.float32)
    with pytest.raises(DataError, match="2 features"):
        latent_search(scaled_model, TabularSplits(x, y, x, y, x, y))
    with pytest.raises(InvalidSpec):
        SearchConfig(steps=-1)


def test_threshold_cap_keeps_half_the_weights_where_the_paper_rule_prunes_more(scaled_model):
    from archopt.latent.encoding import structure_mask

    splits = _target_splits(scaled_model, depth=3, seed=5)
    data = splits.tensors()
    lay = scaled_model.layout
    # a strong sparsity push and a fast threshold: the paper's rule drives t up
    cfg = dict(steps=80, seed=6, lr_t=0.2, sparsity_divisor=1.0, restarts=1)
    free = search_mod.search_depth(scaled_model, 3, data, SearchConfig(t_quantile=None, **cfg))
    capped = search_mod.search_depth(scaled_model, 3, data, SearchConfig(t_quantile=0.5, **cfg))
    wc = lay.weight_cols(3)

    def present_magnitudes(r):
        """|w| of the weights the decoded structure bits of ``r.z`` keep."""
        with torch.no_grad():
            arr = scaled_model.decode(r.z.unsqueeze(0), 3)
        present = structure_mask((arr[..., wc:] > 0.5).to(arr.dtype), lay)[0] > 0
        return arr[0, :, :wc].abs()[present]

    mags = present_magnitudes(capped)
    # t never exceeds the median |w| of the existing weights: at least half survive
    assert capped.threshold <= float(torch.quantile(mags, 0.5)) + 1e-6
    assert int((mags >= capped.threshold).sum()) >= (mags.numel() + 1) // 2
    assert free.threshold > capped.threshold
    # the paper's rule keeps a smaller share of its own existing weights than the cap does
    free_mags = present_magnitudes(free)
    free_share = float((free_mags >= free.threshold).float().mean())
    assert free_share < float((mags >= capped.threshold).float().mean())
    # Not strict: compaction also drops units that the decoded structure bits leave without a
    # path from input to output, which the threshold does not govern (both can be empty).
    assert capped.compact.nonzero_weights >= free.compact.nonzero_weights
