"""Validation figures (archopt.latent.validation) against independent computations.

The references and error definitions are recomputed here with numpy from the validation MLPs'
weight matrices (decoded from the generator's arrays and run by a plain numpy forward), never
through the autoencoder code.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from archopt.latent import MultiScaleAutoencoder, TrainConfig, train_autoencoder
from archopt.latent.autoencoder import input_grid
from archopt.latent.encoding import decode
from archopt.latent.generator import training_batch
from archopt.latent.validation import (
    VAL_SEED,
    coverage,
    evaluate,
    median_pointwise_errors,
    percentage_errors,
    reference_predictions,
)
from archopt.runtime.devices import torch_generator


def _np_forward(weights: list[np.ndarray], x: np.ndarray, activation: str) -> np.ndarray:
    h = x.astype(np.float64)
    for i, w in enumerate(weights):
        h = h @ w.T.astype(np.float64)
        if i < len(weights) - 1:
            h = 1 / (1 + np.exp(-h)) if activation == "sigmoid" else np.where(h > 0, h, 0.1 * h)
    return h[:, 0]


def _np_refs(x: np.ndarray, y: np.ndarray) -> tuple[float, float, float, float]:
    """Per-MLP errors of the constant and affine references: (ours, authors') for each."""
    const = np.full_like(y, y.mean())
    design = np.hstack([x, np.ones((len(x), 1))])
    affine = design @ np.linalg.lstsq(design, y, rcond=None)[0]

    def ours(p: np.ndarray) -> float:
        return 100 * np.abs(p - y).mean() / np.abs(y).mean()

    def authors(p: np.ndarray) -> float:
        r = np.sort(100 * np.abs(p - y) / np.abs(y))
        return float(r[(len(r) - 1) // 2])  # the lower median, as torch.median

    return ours(const), authors(const), ours(affine), authors(affine)


def test_error_definitions_match_numpy():
    g = np.random.default_rng(0)
    y = g.normal(size=(5, 12))
    pred = y + g.normal(scale=0.3, size=y.shape)
    ours = percentage_errors(torch.tensor(pred), torch.tensor(y)).numpy()
    authors = median_pointwise_errors(torch.tensor(pred), torch.tensor(y)).numpy()
    for i in range(5):
        assert ours[i] == pytest.approx(100 * np.abs(pred[i] - y[i]).sum() / np.abs(y[i]).sum())
        r = np.sort(100 * np.abs(pred[i] - y[i]) / np.abs(y[i]))
        assert authors[i] == pytest.approx(r[5])  # lower median of 12


def test_references_match_numpy_least_squares():
    g = np.random.default_rng(1)
    x = g.uniform(-1, 1, size=(40, 3))
    y = g.normal(size=(4, 40)) + (x @ g.normal(size=(3, 4))).T
    refs = reference_predictions(torch.tensor(x, dtype=torch.float32),
                                 torch.tensor(y, dtype=torch.float32))
    design = np.hstack([x, np.ones((40, 1))])
    for i in range(4):
        fit = design @ np.linalg.lstsq(design, y[i], rcond=None)[0]
        np.testing.assert_allclose(refs["affine"][i].numpy(), fit, rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(refs["constant"][i].numpy(), y[i].mean(), rtol=1e-5)


def test_evaluate_references_equal_an_independent_computation(tiny):
    torch.manual_seed(0)
    cfg = tiny("sigmoid")
    model = MultiScaleAutoencoder(cfg)
    res = evaluate(model, batches=2, batch_size=8, coverage_mlps=8, coverage_steps=3)
    x = input_grid(cfg.n_in, cfg.grid_points).numpy()
    rows = []  # (depth, const ours, const authors', affine ours, affine authors')
    for b in range(2):
        arrays = training_batch(8, cfg.layout, generator=torch_generator(VAL_SEED + b),
                                sparsities=cfg.sparsities, widths=cfg.widths,
                                weight_range=cfg.weight_range)
        for L, a in sorted(arrays.items()):
            for arr in a:
                ws = [w.numpy() for w in decode(arr, cfg.layout)]
                rows.append((L, *_np_refs(x, _np_forward(ws, x, cfg.activation))))
    rows_np = np.array(rows)
    assert res["val_mlps"] == len(rows) == 16
    for sel, fig in [(np.ones(len(rows), bool), res),
                     *[(rows_np[:, 0] == L, res["by_depth"][L]) for L in model.depths]]:
        r = rows_np[sel]
        # ours: median over MLPs (torch's lower median for an even count)
        for col, key in ((1, "constant_mdpe"), (3, "affine_mdpe")):
            v = np.sort(r[:, col])
            assert fig[key] == pytest.approx(v[(len(v) - 1) // 2], rel=1e-4), key
        # the authors': mean over MLPs of the per-MLP median pointwise error
        assert fig["constant_mdpe_authors"] == pytest.approx(r[:, 2].mean(), rel=1e-4)
        assert fig["affine_mdpe_authors"] == pytest.approx(r[:, 4].mean(), rel=1e-4)
        assert 0.0 <= fig["beats_constant"] <= 1.0
        assert fig["coverage_mdpe"] is not None or not (sel[:8]).any()
    # the affine reference is at least as good as the constant one for every MLP (LS optimum)
    assert (rows_np[:, 3] <= rows_np[:, 1] + 1e-6).all()
    assert res["coverage_mlps"] == 8


def test_coverage_lowers_the_output_error_from_the_encoder_point(tiny):
    torch.manual_seed(1)
    cfg = tiny("sigmoid")
    model = MultiScaleAutoencoder(cfg)
    arrays = training_batch(8, cfg.layout, generator=torch_generator(5),
                            sparsities=cfg.sparsities, widths=cfg.widths,
                            weight_range=cfg.weight_range)
    grid = input_grid(cfg.n_in, cfg.grid_points)
    before = [p.clone() for p in model.parameters()]
    start = coverage(model, arrays, grid, steps=0)
    end = coverage(model, arrays, grid, steps=40)
    assert float(end["mse"].min(1).values.sum()) < float(start["mse"].min(1).values.sum())
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))
    assert all(p.requires_grad for p in model.parameters())


def test_training_writes_every_figure_to_metrics_summary_and_plot(tmp_path, tiny):
    train = TrainConfig(steps=4, batch_size=8, val_every=2, val_batches=1, checkpoint_every=2,
                        log_every=1, seed=3, coverage_mlps=8)
    summary = train_autoencoder(tmp_path, tiny("sigmoid"), train, device="cpu")
    figures = ("val_mdpe", "val_mdpe_authors", "constant_mdpe", "constant_mdpe_authors",
               "affine_mdpe", "affine_mdpe_authors", "beats_constant", "coverage_mdpe",
               "coverage_mdpe_authors", "coverage_beats_constant")
    for k in figures:
        assert summary[k] is not None, k
        assert all(summary["by_depth"][L][k] is not None for L in summary["by_depth"]), k
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    last_val = [r for r in rows if "val_mdpe" in r][-1]
    assert last_val["step"] == 4
    assert all(last_val[k] == pytest.approx(summary[k]) for k in figures)
    assert (tmp_path / "training.png").stat().st_size > 0
