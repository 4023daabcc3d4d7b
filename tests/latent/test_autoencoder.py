"""Multi-scale autoencoder: shapes, clean decoding, the min-over-decoders loss, training,
checkpoint/resume and MdPE."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from archopt.errors import CheckpointError, InvalidSpec
from archopt.latent import (
    AutoencoderConfig,
    MultiScaleAutoencoder,
    TrainConfig,
    input_grid,
    load_autoencoder,
    min_decoder_loss,
    mlp_from_array,
    percentage_errors,
    train_autoencoder,
    training_batch,
)


def _batch(cfg: AutoencoderConfig, n: int = 8, seed: int = 0) -> dict[int, torch.Tensor]:
    return training_batch(n, cfg.layout, generator=torch.Generator().manual_seed(seed))


def test_paper_feature_sizes_sum_to_6144():
    # 7 x W -> 128 x 2 x ceil(ceil(W/2)/2): W = 9, 17, 25, 33 -> 3, 5, 7, 9 columns.
    model = MultiScaleAutoencoder(AutoencoderConfig.paper())
    assert model.feature_sizes == [128 * 2 * 3, 128 * 2 * 5, 128 * 2 * 7, 128 * 2 * 9]
    assert sum(model.feature_sizes) == 6144
    assert model.embed[0].in_features == 6144 and model.embed[-1].out_features == 128
    assert len(model.encoders) == len(model.decoders) == 4
    convs = [m for m in model.encoders[0].modules() if isinstance(m, torch.nn.Conv2d)
             and m.kernel_size == (3, 3)]
    assert len(convs) == 7


def test_decoded_arrays_are_clean_encodings_for_every_depth(tiny):
    torch.manual_seed(0)
    model = MultiScaleAutoencoder(tiny())
    out = model(_batch(model.config))
    inputs = model.layout.input_mask().numpy()
    for L, arrays in out.items():
        assert arrays.shape == (8, 7, model.layout.width(L))
        wc = model.layout.weight_cols(L)
        for a in arrays.detach().numpy():
            masks = a[:, wc:]
            assert set(np.unique(masks)) <= {0.0, 1.0}
            prev = inputs
            for l in range(L):  # an entry may be non-zero only if both of its units exist
                cur = masks[:, l] > 0.5
                block = a[:, l * 7:(l + 1) * 7]
                assert not block[~np.outer(prev, cur)].any()
                prev = cur
            assert not a[~prev, L * 7].any()


def test_input_grid_is_the_paper_grid():
    g = input_grid(3, 10)
    axis = np.linspace(-1, 1, 10)
    expected = {tuple(np.round(p, 6)) for p in itertools.product(axis, axis, axis)}
    assert g.shape == (1000, 3)
    assert {tuple(np.round(p, 6)) for p in g.numpy().astype(np.float64)} == expected
    big = input_grid(6, 10, max_points=512)
    assert big.shape == (512, 6) and float(big.abs().max()) <= 1


@pytest.mark.parametrize("activation", ["sigmoid", "leaky_relu", "linear"])
def test_loss_is_the_minimum_over_decoders(activation, tiny):
    torch.manual_seed(1)  # the spec's output MSE (the presets use "relative" for leaky/linear)
    model = MultiScaleAutoencoder(tiny(activation).model_copy(update={"loss": "mse"})).eval()
    cfg = model.config
    batch = _batch(cfg, 8, seed=2)
    grid = input_grid(cfg.n_in, cfg.grid_points)
    with torch.no_grad():
        loss, best = min_decoder_loss(model, batch, grid)
        z = model.encode(batch)
        decoded = {L: model.decode(z, L) for L in model.depths}
    # Independent: every MLP as a real nn.Module, MSE in float64, min over decoders.
    xs = grid.double()
    originals = [a for L in sorted(batch) for a in batch[L]]

    def run(array: torch.Tensor) -> np.ndarray:
        spec, state = mlp_from_array(array, cfg.layout, activation, cfg.negative_slope)
        m = spec.build().double()
        m.load_state_dict({k: v.double() for k, v in state.items()})
        return m(xs).squeeze(-1).detach().numpy()

    mse = np.array([[np.mean((run(decoded[L][b]) - run(orig)) ** 2) for L in model.depths]
                    for b, orig in enumerate(originals)])
    assert float(loss) == pytest.approx(mse.min(1).mean(), rel=1e-4)
    # The chosen decoder is the argmin (up to float32 ties).
    chosen = mse[np.arange(len(mse)), best.numpy()]
    np.testing.assert_allclose(chosen, mse.min(1), rtol=1e-4)
    # It is the minimum, not an average: strictly below the mean over decoders here.
    assert mse.min(1).mean() < mse.mean()


def test_gradients_reach_only_the_best_decoders_and_their_mask_columns(tiny):
    torch.manual_seed(0)
    model = MultiScaleAutoencoder(tiny())
    cfg = model.config
    loss, best = min_decoder_loss(model, _batch(cfg, 16), input_grid(3, cfg.grid_points))
    loss.backward()
    winners = {int(b) + 1 for b in best}
    assert winners  # at least one decoder wins
    for L in model.depths:
        grad = model.decoders[L - 1].net[-1].weight.grad
        if L not in winners:  # min-loss: a decoder that is never the best gets nothing
            assert grad is None or float(grad.abs().sum()) == 0.0
            continue
        rows = grad.view(7, model.layout.width(L), -1)
        # The thresholded masks pass gradients straight through to the mask columns.
        assert float(rows[:, model.layout.weight_cols(L):].abs().sum()) > 0


def test_percentage_errors_formula():
    y = torch.tensor([[1.0, -3.0, 2.0], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    pred = torch.tensor([[1.5, -3.0, 1.0], [0.0, 0.0, 0.0], [1.0, 0.0, 0.0]])
    pe = percentage_errors(pred, y)
    assert float(pe[0]) == pytest.approx(100 * (0.5 + 0 + 1) / 3 / (6 / 3))
    assert float(pe[1]) == 0.0 and float(pe[2]) == float("inf")


def _train_cfg(steps: int) -> TrainConfig:
    return TrainConfig(steps=steps, batch_size=8, val_every=2, val_batches=1,
                       checkpoint_every=2, log_every=1, seed=3)


def test_resume_gives_the_same_weights_as_an_uninterrupted_run(tmp_path, tiny):
    cfg = tiny()
    full = train_autoencoder(tmp_path / "a", cfg, _train_cfg(4), device="cpu")
    train_autoencoder(tmp_path / "b", cfg, _train_cfg(2), device="cpu")
    resumed = train_autoencoder(tmp_path / "b", cfg, _train_cfg(4), device="cpu")
    a, _ = load_autoencoder(tmp_path / "a")
    b, info = load_autoencoder(tmp_path / "b")
    assert info["step"] == 4 and full["steps"] == resumed["steps"] == 4
    for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        assert ka == kb and torch.equal(va, vb), ka
    la = [r["loss"] for r in _rows(tmp_path / "a") if "loss" in r]
    lb = [r["loss"] for r in _rows(tmp_path / "b") if "loss" in r]
    assert la == lb and len(la) == 4
    assert full["val_mdpe"] == resumed["val_mdpe"]
    for name in ("config.json", "summary.json", "training.png", "autoencoder.pt"):
        assert (tmp_path / "b" / name).exists()


def _rows(path):
    from archopt.runs import read_jsonl

    return read_jsonl(path / "metrics.jsonl")


def test_resume_refuses_other_settings_and_no_resume_starts_over(tmp_path, tiny):
    cfg = tiny()
    train_autoencoder(tmp_path, cfg, _train_cfg(2), device="cpu")
    with pytest.raises(CheckpointError, match="lr"):
        train_autoencoder(tmp_path, cfg, TrainConfig(**{**_train_cfg(4).model_dump(),
                                                        "lr": 1e-3}), device="cpu")
    with pytest.raises(CheckpointError, match="activation"):
        train_autoencoder(tmp_path, tiny("linear"), _train_cfg(4), device="cpu")
    s = train_autoencoder(tmp_path, cfg, _train_cfg(1), device="cpu", resume=False)
    assert s["steps"] == 1
    assert max(r["step"] for r in _rows(tmp_path)) == 1


def test_max_minutes_stops_with_a_checkpoint(tmp_path, tiny):
    s = train_autoencoder(tmp_path, tiny(), _train_cfg(50), device="cpu", max_minutes=0)
    assert s["steps"] == 0
    assert load_autoencoder(tmp_path)[1]["step"] == 0


def test_checkpoint_errors(tmp_path):
    with pytest.raises(CheckpointError, match="no autoencoder checkpoint"):
        load_autoencoder(tmp_path)
    (tmp_path / "autoencoder.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="not a readable autoencoder checkpoint"):
        load_autoencoder(tmp_path)
    torch.save({"format": "something else"}, tmp_path / "autoencoder.pt")
    with pytest.raises(CheckpointError, match="not an archopt"):
        load_autoencoder(tmp_path)


def test_config_errors(tiny):
    with pytest.raises(InvalidSpec, match="widths"):
        AutoencoderConfig(widths=(3, 9))
    with pytest.raises(InvalidSpec, match="activation"):
        AutoencoderConfig(activation="relu")
    with pytest.raises(InvalidSpec, match="depth"):
        MultiScaleAutoencoder(tiny()).decode(torch.zeros(1, 16), 5)


def test_fine_tuning_starts_from_the_given_weights(tiny, tmp_path):
    from archopt.latent import TrainConfig, load_autoencoder, train_autoencoder

    torch.manual_seed(3)
    src = MultiScaleAutoencoder(tiny("sigmoid"))
    cfg = tiny("sigmoid").model_copy(update={"contrastive_weight": 1.0})
    train_autoencoder(tmp_path / "ft", cfg, TrainConfig(steps=0, val_batches=1),
                      device="cpu", init=src.state_dict(), init_source="src")
    model, _ = load_autoencoder(tmp_path / "ft")
    for k, v in src.state_dict().items():
        assert torch.equal(model.state_dict()[k], v)
