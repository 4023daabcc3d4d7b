"""Fashion-MNIST (real data, ../shared/data): a small CNN reaches >= 90 % test accuracy on CPU.

Slow (minutes on 2 cores): run with ``pytest -m slow tests/training``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from archopt.data import load_dataset
from archopt.spaces import load_spec
from archopt.training import TrainConfig, train

SPEC = Path(__file__).parent / "specs" / "cnn-fmnist.json"


@pytest.mark.slow
def test_cnn_fmnist_reaches_90_percent(shared_data, tmp_path):
    ds = load_dataset("fashion-mnist", shared_data)
    result = train(load_spec(SPEC), ds, TrainConfig(epochs=4, device="cpu"), tmp_path / "run",
                   progress=False)
    assert result.summary["test_accuracy"] >= 0.90, result.summary
