"""Fixtures of the HBDE tests: the embedded digits data, a small pre-trained CNN, a user's net."""

from __future__ import annotations

import pytest
import torch
from torch import nn


class TinyNet(nn.Module):
    """A user's own module (no archopt spec): conv -> BN -> ReLU -> pool -> linear."""

    def __init__(self, classes: int = 10) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.fc = nn.Linear(8 * 4 * 4, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = nn.functional.max_pool2d(torch.relu(self.bn(self.conv(x))), 2)
        return self.fc(h.flatten(1))


@pytest.fixture(scope="session")
def pretrained(digits, tmp_path_factory):
    """cnn-small trained 8 epochs with Adam on digits (~92% test); returns the checkpoint path."""
    from archopt.training import TrainConfig, train

    out = tmp_path_factory.mktemp("pretrain")
    train("cnn-small", digits, TrainConfig(optimizer="adam", epochs=8, device="cpu",
                                           latency=False, seed=0),
          out=out, adapt=True, progress=False)
    return out / "checkpoint.pt"


@pytest.fixture()
def tiny_net():
    torch.manual_seed(0)
    net = TinyNet()
    with torch.no_grad():  # non-trivial running statistics, so eval mode matters
        net.bn.running_mean.uniform_(-0.5, 0.5)
        net.bn.running_var.uniform_(0.5, 2.0)
    return net.eval()
