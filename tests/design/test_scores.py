"""Entropy, effectiveness, penalty and power law against hand computations and published
structures."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from archopt.design import (
    CNNLayout,
    DenseLayout,
    block_log_sum,
    power_law_fit,
    score_spec,
    stage_weights,
)
from archopt.errors import InvalidSpec
from archopt.spaces import DenseNetSpec, MBV2Spec, MLPSpec, ResNetSpec, load_spec

log = math.log


def _tiny_resnet() -> ResNetSpec:
    # stem 3->8 k3 s2 (32 -> 16), one superblock of 2 bottleneck blocks, out 16, btn 8, k3, s2
    return ResNetSpec(in_channels=3, num_classes=0, resolution=32,
                      stem=dict(out=8, k=3, stride=2),
                      blocks=[dict(out=16, btn=8, k=3, L=2, stride=2)])


def test_tiny_resnet_by_hand():
    spec = _tiny_resnet()
    # main-path fan-ins written out: stem 3*9; block 1: 8, 8*9, 8; block 2: 16, 8*9, 8
    fans = [27, 8, 72, 8, 16, 72, 8]
    # stages: the stem alone (followed by a stride-2 unit), then the superblock
    h1 = (log(8) + log(16**2)) * 0.5 * log(27)  # stem out 8 channels at 16x16
    h2 = (log(16) + log(8**2)) * 0.5 * sum(log(f) for f in fans)  # 16 channels at 8x8
    entropy = 1 * h1 + 8 * h2  # two stages: the last one weighs 8
    rho1 = 1 / 27
    rho2 = 7 / math.exp(sum(log(f) for f in fans) / 7)
    pen = 10 * math.exp(0.0)  # one superblock: nothing left after dropping the first
    r = score_spec(spec)
    assert r.stage_entropies == pytest.approx([h1, h2], rel=1e-12)
    assert r.entropy == pytest.approx(entropy, rel=1e-12)
    assert r.effectiveness == pytest.approx(max(rho1, rho2), rel=1e-12)
    assert r.objective == pytest.approx(entropy - pen, rel=1e-12)
    lay = CNNLayout.from_spec(spec)
    ev = lay.evaluate(lay.encode(spec)[None, :])
    assert ev.objective[0] == pytest.approx(entropy - pen, rel=1e-12)
    assert ev.effectiveness[0] == pytest.approx(max(rho1, rho2), rel=1e-12)


def test_tiny_mbv2_by_hand():
    spec = MBV2Spec(in_channels=1, num_classes=10, resolution=28,
                    stem=dict(out=8, k=3, stride=1),
                    blocks=[dict(out=16, btn=48, k=5, L=1, stride=2),
                            dict(out=16, btn=32, k=3, L=2, stride=1)], head_conv=64)
    # fan-ins: stem 1*9; block a: 8 (expand), 5^2 (depthwise), 48 (project); block b x2:
    # 16, 9, 32; final 1x1 conv: 16. SE layers contribute nothing.
    fans = [9, 8, 25, 48, 16, 9, 32, 16, 9, 32, 16]
    h1 = (log(8) + log(28**2)) * 0.5 * log(9)
    h2 = (log(64) + log(14**2)) * 0.5 * sum(log(f) for f in fans)  # last stage: the final conv
    r = score_spec(spec)
    assert r.stage_entropies == pytest.approx([h1, h2], rel=1e-12)
    assert r.entropy == pytest.approx(h1 + 8 * h2, rel=1e-12)
    std = np.std([2.0])  # depths but the first superblock
    assert r.depth_penalty == pytest.approx(10 * math.exp(std))
    rho = len(fans) / math.exp(np.mean(np.log(fans)))
    assert r.effectiveness == pytest.approx(max(1 / 9, rho), rel=1e-12)


def test_mlp_form():
    spec = MLPSpec(in_features=20, widths=[16, 32, 8], num_classes=3)
    r = score_spec(spec)
    assert r.entropy == pytest.approx(log(16) + log(32) + log(8))
    assert r.effectiveness == pytest.approx(3 / (16 * 32 * 8) ** (1 / 3))
    assert r.objective == r.entropy


def _dense_by_hand(c_in: int, res: int, c0: int, stages: list[tuple[int, int, int]],
                   theta: float = 0.5) -> tuple[list[float], list[float]]:
    """Stage entropies and rho_i from the definitions, layer by layer."""
    fans = [c_in * 9]
    ends = []
    c, side = c0, res
    for i, (g, L, k) in enumerate(stages):
        if i > 0:
            fans.append(c)  # transition 1x1 conv reads c channels; it opens stage i+1
            c = math.floor(theta * c)
            side //= 2
        for l in range(1, L + 1):
            fans.append(c + (l - 1) * g)  # bottleneck 1x1 reads the concatenation
            fans.append(4 * g * k * k)  # kxk conv on 4g channels
        c = c + L * g
        ends.append((len(fans), c, side))
    hs, rhos = [], []
    for n, c_out, side in ends:
        t = 0.5 * sum(log(f) for f in fans[:n])
        hs.append((log(c_out) + 2 * log(side)) * t)
        rhos.append(n / math.exp(sum(log(f) for f in fans[:n]) / n))
    return hs, rhos


def test_dense_by_hand():
    stages = [(12, 5, 3), (8, 3, 5), (16, 4, 3)]
    spec = DenseNetSpec(in_channels=3, num_classes=10, resolution=32, stem=dict(out=24, k=3),
                        stages=[dict(growth=g, layers=L, k=k) for g, L, k in stages])
    hs, rhos = _dense_by_hand(3, 32, 24, stages)
    r = score_spec(spec, beta=0.1)
    assert r.stage_entropies == pytest.approx(hs, rel=1e-12)
    assert r.stage_effectiveness == pytest.approx(rhos, rel=1e-12)
    # power law by numpy's own polynomial fit in log-log space
    b, log_a = np.polyfit(np.log([1, 2, 3]), np.log(hs), 1)
    assert r.power_law.a == pytest.approx(math.exp(log_a), rel=1e-10)
    assert r.power_law.b == pytest.approx(b, rel=1e-10)
    entropy = hs[0] + hs[1] + 8 * hs[2]
    assert r.objective == pytest.approx(entropy + 0.1 * (math.exp(log_a) - b), rel=1e-12)
    lay = DenseLayout.from_spec(spec, beta=0.1)
    ev = lay.evaluate(lay.encode(spec)[None, :])
    assert ev.stage_entropies[0] == pytest.approx(hs, rel=1e-12)
    assert ev.objective[0] == pytest.approx(r.objective, rel=1e-12)


@settings(max_examples=200, deadline=None)
@given(w0=st.integers(1, 3000), g=st.integers(1, 64), L=st.integers(1, 60))
def test_log_gamma_closed_form_equals_direct_sum(w0, g, L):
    direct = math.fsum(math.log(w0 + (l - 1) * g) for l in range(1, L + 1))
    assert block_log_sum(w0, g, L) == pytest.approx(direct, rel=1e-10, abs=1e-9)


def test_power_law_fit_recovers_exact_law_and_r2():
    h = [3.0 * i**0.7 for i in (1, 2, 3, 4)]
    fit = power_law_fit(h)
    assert fit.a == pytest.approx(3.0) and fit.b == pytest.approx(0.7)
    assert fit.r2 == pytest.approx(1.0) and fit.score == pytest.approx(3.0 - 0.7)
    noisy = [10.0, 30.0, 25.0, 60.0]
    fit = power_law_fit(noisy)
    y, x = np.log(noisy), np.log([1, 2, 3, 4])
    pred = np.polyval(np.polyfit(x, y, 1), x)
    r2 = 1 - ((y - pred) ** 2).sum() / ((y - y.mean()) ** 2).sum()
    assert fit.r2 == pytest.approx(r2)
    with pytest.raises(InvalidSpec, match="positive"):
        power_law_fit([1.0, -2.0])


def test_stage_weights_rule():
    assert stage_weights(5).tolist() == [1, 1, 1, 1, 8]
    assert stage_weights(3).tolist() == [1, 1, 8]  # CIFAR-sized: last stage still 8
    assert stage_weights(7).tolist() == [1, 1, 1, 1, 1, 1, 8]
    assert stage_weights(2, [2, 5]).tolist() == [2, 5]
    with pytest.raises(InvalidSpec):
        stage_weights(0)


@pytest.mark.parametrize("name", ["deepmad-r18", "deepmad-r34", "deepmad-r50"])
def test_published_deepmad_structures_sit_at_rho_0_3(name):
    # the paper's structures were searched under rho_0 = 0.3: under our definitions (which are
    # the toolbox's) each must come out just below it -- an independent check of rho
    r = score_spec(load_spec(name, num_classes=0))
    assert 0.29 < r.effectiveness <= 0.3
    assert len(r.stage_entropies) == 5


def test_published_r18_counts():
    spec = load_spec("deepmad-r18", num_classes=0)
    assert spec.macs() == 1_810_902_016  # paper: 1.8 G FLOPs (MACs), budget 1.82e9
    conv_weights = sum(r.c_in // r.groups * r.c_out * r.kernel**2 for r in spec.cost_table())
    assert round(conv_weights / 1e6, 2) == 11.09  # the paper's "11.09 M" backbone parameters
    assert spec.params() == 11_153_088  # ours: + 2 per BN channel


def test_score_rejects_basic_blocks_for_search_but_scores_them():
    spec = load_spec("resnet18")
    assert score_spec(spec).entropy > 0
    with pytest.raises(InvalidSpec, match="bottleneck"):
        CNNLayout.from_spec(spec)
