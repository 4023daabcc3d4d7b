"""The relative (scale-invariant) min-loss used for the homogeneous families (leaky_relu, linear).

Regression for the leaky-ReLU autoencoder that never learned (validation MdPE exactly 100 %, a
constant validation loss): with the output MSE, the batch loss of a leaky-ReLU family is the MSE
of its few largest-output MLPs, and the best decoder of almost every MLP predicted ~0.
"""

from __future__ import annotations

import pytest
import torch

from archopt.errors import CheckpointError, InvalidSpec
from archopt.latent import (
    AutoencoderConfig,
    MultiScaleAutoencoder,
    TrainConfig,
    input_grid,
    min_decoder_loss,
    train_autoencoder,
    training_batch,
)
from archopt.latent.autoencoder import decoder_errors, decoder_losses
from archopt.latent.encoding import array_forward


@pytest.mark.parametrize("preset", ["paper", "small", "tiny"])
def test_presets_use_the_relative_loss_for_homogeneous_families(preset):
    make = getattr(AutoencoderConfig, preset)
    assert make("sigmoid").loss == "mse"
    assert make("leaky_relu").loss == "relative"
    assert make("linear").loss == "relative"
    assert make("leaky_relu", loss="mse").loss == "mse"
    # A config written before the field existed keeps the loss it was trained with.
    old = make("leaky_relu").model_dump(mode="json")
    del old["loss"]
    assert AutoencoderConfig(**old).loss == "mse"


def test_relative_loss_is_the_percentage_error_and_scale_invariant():
    torch.manual_seed(0)
    cfg = AutoencoderConfig.tiny("leaky_relu", grid_points=4)
    model = MultiScaleAutoencoder(cfg).eval()
    grid = input_grid(3, cfg.grid_points)
    batch = training_batch(8, cfg.layout, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        mse, y, preds = decoder_errors(model, batch, grid)
        rel = decoder_losses(mse, y, preds, "relative")
        for d, L in enumerate(model.depths):
            expect = (preds[L] - y).abs().mean(1) / y.abs().mean(1)
            torch.testing.assert_close(rel[:, d], expect)
        # Predicting 0 scores exactly 1, whatever the MLP's scale; scaling the original and the
        # prediction by c leaves the relative error unchanged and multiplies the MSE by c^2.
        zero = {L: torch.zeros_like(p) for L, p in preds.items()}
        assert torch.allclose(decoder_losses(mse, y, zero, "relative"), torch.ones_like(rel))
        big = decoder_losses(mse * 1e6, y * 1e3, {L: p * 1e3 for L, p in preds.items()},
                             "relative")
        torch.testing.assert_close(big, rel)
        assert torch.equal(decoder_losses(mse, y, preds, "mse"), mse)
        loss, best = min_decoder_loss(model, batch, grid)
        assert float(loss) == pytest.approx(float(rel.min(1).values.mean()), rel=1e-5)
        assert torch.equal(best, rel.argmin(1))
    with pytest.raises(InvalidSpec):
        decoder_losses(mse, y, preds, "l3")


def test_the_mse_of_a_leaky_relu_batch_is_dominated_by_a_few_mlps():
    # The cause, measured on the data: under the output MSE, the three largest of 32 leaky-ReLU
    # MLPs carry most of a validation batch's "predict 0" loss; not so for sigmoid.
    layout = AutoencoderConfig.tiny().layout
    grid = input_grid(3, 10)
    share = {}
    for act in ("sigmoid", "leaky_relu"):
        batch = training_batch(32, layout, generator=torch.Generator().manual_seed(7))
        y = torch.cat([array_forward(batch[L], grid, layout, act) for L in sorted(batch)])
        ms = (y ** 2).mean(1).sort(descending=True).values
        share[act] = float(ms[:3].sum() / ms.sum())
    assert share["leaky_relu"] > 0.6 > share["sigmoid"]


def test_resuming_an_mse_checkpoint_with_the_relative_preset_is_refused(tmp_path):
    old = AutoencoderConfig.tiny("leaky_relu", grid_points=4, loss="mse")
    train = TrainConfig(steps=1, batch_size=4, val_every=1, val_batches=1, checkpoint_every=1)
    train_autoencoder(tmp_path, old, train, device="cpu")
    new = AutoencoderConfig.tiny("leaky_relu", grid_points=4)
    with pytest.raises(CheckpointError, match="loss"):
        train_autoencoder(tmp_path, new, train.model_copy(update={"steps": 2}), device="cpu")
