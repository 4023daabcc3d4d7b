"""Fixtures for the training tests: the embedded digits, a short trained run."""

from __future__ import annotations

import pytest

from archopt.training import TrainConfig, train


@pytest.fixture(scope="session")
def digits_run(digits, tmp_path_factory):
    """cnn-small adapted to digits, 2 epochs, CPU, with a result folder."""
    out = tmp_path_factory.mktemp("digits_run")
    result = train("cnn-small", digits, TrainConfig(epochs=2, device="cpu", latency=False), out,
                   adapt=True, progress=False)
    return result, out
