"""The equal-budget baselines: the largest member (most MACs) of each hand-designed family
within both budgets, checked against brute force over the family; the layouts against the
published figures."""

from __future__ import annotations

import pytest

from archopt.errors import InfeasibleBudget
from archopt.pipeline.baseline import (
    MBV2_ALPHAS,
    RESNET_DEPTHS,
    cifar_resnet,
    fits,
    hand_baseline,
    hand_baselines,
    mobilenet_v2,
    mobilenet_v2_strides,
)

CASES = [(2e6, 5e5, 8), (5e6, 5e5, 28), (2e7, 1e6, 28), (4e7, 3e5, 28), (1.5e6, 1e5, 28)]


def _brute_resnet(macs, params, res):
    members = [cifar_resnet(w, n, in_channels=1, resolution=res, num_classes=10)
               for n in RESNET_DEPTHS for w in range(2, 130, 2)]
    ok = [s for s in members if fits(s, macs, params)]
    return max(((s.macs(), s.params()) for s in ok), default=None)


def _brute_mbv2(macs, params, res):
    ok = [s for s in (mobilenet_v2(a, in_channels=1, resolution=res, num_classes=10)
                      for a in MBV2_ALPHAS) if fits(s, macs, params)]
    return max(((s.macs(), s.params()) for s in ok), default=None)


@pytest.mark.parametrize("macs,params,res", CASES)
def test_largest_member_within_both_budgets(macs, params, res):
    got = {b.family: b.spec for b in hand_baselines(macs, params, in_channels=1,
                                                     resolution=res, num_classes=10)}
    for fam, brute in (("resnet", _brute_resnet), ("mbv2", _brute_mbv2)):
        best = brute(macs, params, res)
        if best is None:
            assert fam not in got
            continue
        spec = got[fam]
        assert spec.macs() <= macs and spec.params() <= params
        assert (spec.macs(), spec.params()) == best, fam


def test_fixed_depth_widest_within_target():
    spec = hand_baseline(40e6, in_channels=1, resolution=28, num_classes=10)
    assert spec.macs() <= 40e6
    wider = cifar_resnet(spec.stem.out + 2, 2, in_channels=1, resolution=28, num_classes=10)
    assert wider.macs() > 40e6


def test_resnet20_layout_matches_he_et_al():
    # ResNet-20 on CIFAR-10: 0.27 M params (He et al. 2016, table 6)
    spec = cifar_resnet(16, 3, in_channels=3, resolution=32, num_classes=10)
    assert spec.layers() + 1 == 20  # + the classifier
    assert abs(spec.params() - 0.27e6) / 0.27e6 < 0.03


def test_mobilenet_v2_matches_sandler_et_al():
    # 224x224, width 1.0: 300 M MACs and 3.4 M params (Sandler et al. 2018, table 3); ours
    # keeps the t = 1 block's 1x1 expansion (32 x 32 x 112 x 112 = 12.8 M MACs, 1 k params)
    spec = mobilenet_v2(1.0, in_channels=3, resolution=224, num_classes=1000)
    assert spec.macs() - 32 * 32 * 112 * 112 == pytest.approx(300e6, rel=0.01)
    assert spec.params() == pytest.approx(3.4e6, rel=0.04)
    out = spec.build()(__import__("torch").zeros(1, 3, 224, 224))
    assert out.shape == (1, 1000)


@pytest.mark.parametrize("res,k", [(224, 5), (32, 4), (28, 4), (8, 2), (2, 0)])
def test_mobilenet_v2_strides(res, k):
    assert mobilenet_v2_strides(res) == k


def test_infeasible_target():
    with pytest.raises(InfeasibleBudget) as err:
        hand_baseline(1e3, in_channels=1, resolution=28, num_classes=10)
    assert err.value.budget == "macs" and err.value.needed > 1e3
    assert hand_baselines(1e3, 1e3, in_channels=1, resolution=28, num_classes=10) == []
