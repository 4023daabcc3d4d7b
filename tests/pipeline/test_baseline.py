"""The hand-designed baseline is the widest CIFAR-style ResNet within the MACs target."""

from __future__ import annotations

import pytest

from archopt.errors import InfeasibleBudget
from archopt.pipeline.baseline import cifar_resnet, hand_baseline


@pytest.mark.parametrize("target,res", [(2e6, 8), (40e6, 28), (555e6, 32), (1.5e6, 28)])
def test_widest_within_target(target, res):
    spec = hand_baseline(target, in_channels=1, resolution=res, num_classes=10)
    width = spec.stem.out
    assert spec.macs() <= target
    assert width % 2 == 0
    wider = cifar_resnet(width + 2, 2, in_channels=1, resolution=res, num_classes=10)
    assert wider.macs() > target


def test_resnet20_layout_matches_he_et_al():
    # ResNet-20 on CIFAR-10: 0.27 M params (He et al. 2016, table 6)
    spec = cifar_resnet(16, 3, in_channels=3, resolution=32, num_classes=10)
    assert spec.layers() + 1 == 20  # + the classifier
    assert abs(spec.params() - 0.27e6) / 0.27e6 < 0.03


def test_infeasible_target():
    with pytest.raises(InfeasibleBudget) as err:
        hand_baseline(1e3, in_channels=1, resolution=28, num_classes=10)
    assert err.value.budget == "macs" and err.value.needed > 1e3
