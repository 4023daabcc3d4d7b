"""Compaction: the physically smaller network computes what the masked supernet computes, and
its parameter counts agree with torch's."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from archopt.errors import InvalidSpec
from archopt.measure import count_params
from archopt.spaces import DenseNetSpec, MLPSpec, load_spec
from archopt.structure import MaskedDenseNet, MaskedMLP, compact, max_output_difference
from archopt.structure import weight_usage as usage
from tests.structure.test_supernets import _randomise_bn, _tiny_densenet


@pytest.mark.parametrize("seed", range(4))
def test_mlp_compaction_preserves_outputs(seed):
    spec = MLPSpec(in_features=7, widths=[6, 5, 4], num_classes=3, activation="tanh")
    net = MaskedMLP(spec)
    rng = np.random.default_rng(seed)
    m = rng.random(net.d) < 0.5
    if seed == 0:
        m[6:11] = False  # a whole hidden layer removed: the next layer outputs its bias
    c = compact(net, m)
    x = torch.randn(9, 7)
    assert max_output_difference(net, c, x) < 1e-5
    assert c.spec.kept_widths() == net.units_per_layer(m)
    assert c.spec.params() == count_params(c.module)
    w = net.units_per_layer(m)
    by_hand = 7 * w[0] + w[0] + w[0] * w[1] + w[1] + w[1] * w[2] + w[2] + w[2] * 3 + 3
    u = usage(net, m)
    assert u["params"] == by_hand and u["params_full"] == spec.params()
    assert u["weight_usage_rate"] == pytest.approx(by_hand / spec.params())
    assert u["cost_usage_rate"] == pytest.approx(m.mean())  # c_i = 1: fraction of units


@pytest.mark.parametrize("bottleneck", [False, True])
@pytest.mark.parametrize("seed", range(4))
def test_densenet_compaction_preserves_outputs(bottleneck, seed):
    net = MaskedDenseNet(_tiny_densenet(bottleneck, layers=4))
    _randomise_bn(net, seed)
    rng = np.random.default_rng(seed)
    while True:  # a structure whose stage outputs stay connected (dead layers allowed)
        m = rng.random(net.d) < 0.45
        try:
            c = compact(net, m)
            break
        except InvalidSpec:
            continue
    x = torch.randn(4, 1, 8, 8)
    assert max_output_difference(net, c, x) < 1e-5  # eval mode: running statistics
    net.train()
    c.module.train()
    with net.structure(m):  # training mode too: batch statistics per kept channel
        torch.testing.assert_close(net(x), c.module(x), rtol=1e-4, atol=1e-5)
    assert c.spec.params() == count_params(c.module) == usage(net, m)["params"]


def test_raw_structure_with_a_dead_source_is_canonicalised_before_evaluation():
    """Layer 0 gets no input but layer 1 reads it: un-canonicalised, BN(0) would leak
    non-zeros into layer 1; the supernet drops the connection, as the pruned network does."""
    net = MaskedDenseNet(_tiny_densenet(layers=2))
    _randomise_bn(net)
    m = np.ones(net.d, dtype=bool)
    m[net.site("stages.0.layers.0").bits] = False
    c = compact(net, m)
    assert c.mask[net.site("stages.0.layers.1").offset + 1] == 0  # 0 -> 1 removed
    assert max_output_difference(net, c, torch.randn(3, 1, 8, 8)) < 1e-5


def test_densenet40_compaction_on_fashion_mnist_shape():
    spec = load_spec("densenet-40-12").replace(in_channels=1, resolution=28)
    net = MaskedDenseNet(spec)
    _randomise_bn(net)
    m = np.random.default_rng(0).random(net.d) < 0.5
    for i in range(3):  # keep every stage output connected
        m[net.site(f"stages.{i}.output").offset] = True
    c = compact(net, m)
    assert max_output_difference(net, c, torch.randn(2, 1, 28, 28)) < 1e-4
    assert isinstance(c.spec, DenseNetSpec) and c.spec.params() == count_params(c.module)
    assert c.spec.transition_channels == [160, 304]  # transitions keep the supernet's width
    assert usage(net, m)["weight_usage_rate"] < 1


def test_disconnected_stage_is_a_clear_error():
    net = MaskedDenseNet(_tiny_densenet())
    m = np.ones(net.d, dtype=bool)
    m[net.site("stages.1.output").bits] = False
    with pytest.raises(InvalidSpec, match=r"stage 1 .* disconnected.*lower the penalty"):
        compact(net, m)
