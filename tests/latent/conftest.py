"""Shared fixtures: a tiny autoencoder whose decoders give O(1) weights that vary with z."""

from __future__ import annotations

import pytest
import torch

from archopt.latent import AutoencoderConfig, MultiScaleAutoencoder


def tiny_config(activation: str = "sigmoid") -> AutoencoderConfig:
    return AutoencoderConfig.tiny(activation, grid_points=4)


@pytest.fixture
def tiny():
    """The factory ``tiny(activation) -> AutoencoderConfig`` (tiny preset, 4^3 grid)."""
    return tiny_config


@pytest.fixture(scope="module")
def scaled_model() -> MultiScaleAutoencoder:
    """A randomly initialised tiny autoencoder, its decoder heads rescaled so that the decoded
    entries have mean 0 and standard deviation ~3 across latent points (an untrained head
    gives ~1e-3, a useless target)."""
    torch.manual_seed(0)
    model = MultiScaleAutoencoder(tiny_config()).eval()
    z = torch.rand(64, model.config.latent_dim, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        for L in model.depths:
            last = model.decoders[L - 1].net[-1]
            last.bias.zero_()
            raw = model.decode_raw(z, L)
            k = 3 / raw.std(0).mean()
            last.weight.mul_(k)
            last.bias.copy_(-k * raw.mean(0).flatten())
    return model
