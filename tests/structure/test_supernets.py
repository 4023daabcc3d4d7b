"""Masked supernets: masks after the activation / after BN-ReLU, lambda structures in one pass
equal to separate passes, connection costs and liveness against the spec's own rules, hooks."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch import nn

from archopt.errors import ArchoptError
from archopt.spaces import DenseNetSpec, MLPSpec, load_spec
from archopt.structure import HookedSupernet, MaskedDenseNet, MaskedMLP


def _tiny_densenet(bottleneck: bool = False, layers: int = 3) -> DenseNetSpec:
    return DenseNetSpec(in_channels=1, resolution=8, num_classes=3, stem=dict(out=5, k=3),
                        stages=[dict(growth=4, layers=layers, bottleneck=bottleneck,
                                     bottleneck_width=2),
                                dict(growth=3, layers=2, bottleneck=bottleneck,
                                     bottleneck_width=2)],
                        compression=0.5)


def _randomise_bn(net: nn.Module, seed: int = 0) -> None:
    g = torch.Generator().manual_seed(seed)
    for m in net.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(torch.rand(m.num_features, generator=g) - 0.5)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.bias.data.copy_(torch.rand(m.num_features, generator=g) - 0.5)


# -- MLP ----------------------------------------------------------------------------------------


def test_masked_mlp_masks_after_the_activation():
    spec = MLPSpec(in_features=5, widths=[4, 3], num_classes=2, activation="sigmoid")
    net = MaskedMLP(spec)
    assert net.d == 7 and net.costs.tolist() == [1.0] * 7
    assert set(net.state_dict()) == set(spec.build().state_dict())
    x = torch.randn(6, 5)
    m = np.array([1, 0, 1, 1, 0, 1, 1], dtype=bool)
    with net.structure(m):
        got = net(x)
    w = [layer.weight for layer in net.layers]
    b = [layer.bias for layer in net.layers]
    h = torch.sigmoid(x @ w[0].T + b[0]) * torch.tensor(m[:4], dtype=torch.float32)
    h = torch.sigmoid(h @ w[1].T + b[1]) * torch.tensor(m[4:], dtype=torch.float32)
    torch.testing.assert_close(got, h @ w[2].T + b[2])  # sigmoid(0) = 0.5 is masked to 0
    plain = spec.build()
    plain.load_state_dict(net.state_dict())
    torch.testing.assert_close(net(x), plain(x))  # no structure set = the full network
    with net.structure(np.ones(7, dtype=bool)):
        torch.testing.assert_close(net(x), plain(x))


def test_lambda_structures_in_one_pass_equal_separate_passes_mlp():
    net = MaskedMLP(MLPSpec(in_features=6, widths=[5, 5], num_classes=3))
    x = torch.randn(4, 6)
    y = torch.tensor([0, 2, 1, 1])
    masks = np.random.default_rng(0).random((2, net.d)) < 0.5
    net.set_structure(masks)
    out = net(x)
    assert out.shape == (8, 3)
    per = nn.functional.cross_entropy(out, y.repeat(2), reduction="none").view(2, 4).mean(1)
    per.mean().backward()
    fused = [p.grad.clone() for p in net.parameters()]
    net.zero_grad()
    losses = []
    for m in masks:
        with net.structure(m):
            losses.append(nn.functional.cross_entropy(net(x), y))
    torch.testing.assert_close(per, torch.stack(losses))
    (sum(losses) / 2).backward()
    for a, p in zip(fused, net.parameters(), strict=True):
        torch.testing.assert_close(a, p.grad)


def test_cost_option_weights():
    net = MaskedMLP(MLPSpec(in_features=6, widths=[5, 4], num_classes=3), costs="weights")
    # unit of layer 0: 6 in + 1 bias + 4 out; layer 1: 5 in + 1 bias + 3 out
    assert net.costs.tolist() == [11.0] * 5 + [9.0] * 4


# -- DenseNet ----------------------------------------------------------------------------------


def test_densenet40_bits_and_costs():
    spec = load_spec("densenet-40-12").replace(in_channels=1, resolution=28)
    net = MaskedDenseNet(spec)
    assert net.d == 273 and [net.stage_bits(i).stop - net.stage_bits(i).start
                             for i in range(3)] == [91, 91, 91]
    first = net.site("stages.0.layers.1")
    assert first.costs.tolist() == [16 * 12 * 9, 12 * 12 * 9]  # the spec's examples
    # the costs add up to every weight a connection can remove: dense-layer convs, transition
    # convs and the classifier's weight matrix (counted on the built module)
    removable = sum(p.numel() for n, p in net.named_parameters()
                    if n.endswith("conv2.weight")
                    or (n.startswith("transitions") and n.endswith("conv.weight"))
                    or n == "head.fc.weight")
    assert net.costs.sum() == removable
    assert set(net.state_dict()) == set(spec.build().state_dict())


@pytest.mark.parametrize("seed", range(8))
def test_canonical_structure_matches_the_spec_liveness_rule(seed):
    spec = _tiny_densenet(layers=4)
    net = MaskedDenseNet(spec)
    rng = np.random.default_rng(seed)
    m = rng.random(net.d) < rng.uniform(0.2, 0.8)
    canon = net.canonical(m[None])[0]
    nested = [[[bool(b) for b in m[net.sites[k].bits]] for k in idx] for idx in net._stage_sites]
    try:
        lives = net.spec.replace(connections=nested).live_connections()
    except Exception:  # a stage output without live sources: canonical keeps nothing there
        assert any(not canon[net.stage_bits(i)].any() for i in range(2))
        return
    for i, live in enumerate(lives):
        L = spec.stages[i].layers
        for l in range(L + 1):
            bits = canon[net.site(f"stages.{i}.layers.{l}" if l < L else f"stages.{i}.output")
                         .bits]
            src = live.layer_sources[l] if l < L else live.output_sources
            assert sorted(np.flatnonzero(bits).tolist()) == sorted(src or [])
    assert np.all(canon <= m)  # only turns bits off


@pytest.mark.parametrize("bottleneck", [False, True])
def test_lambda_structures_in_one_pass_equal_separate_passes_densenet(bottleneck):
    """Training mode: BatchNorm takes per-structure statistics and updates its running
    statistics as two separate passes would."""
    net = MaskedDenseNet(_tiny_densenet(bottleneck))
    _randomise_bn(net)
    other = copy.deepcopy(net)
    net.train()
    other.train()
    x = torch.randn(5, 1, 8, 8)
    masks = np.random.default_rng(1).random((2, net.d)) < 0.6
    net.set_structure(masks)
    fused = net(x)
    sep = []
    for m in masks:
        with other.structure(m):
            sep.append(other(x))
    torch.testing.assert_close(fused, torch.cat(sep))
    for a, b in zip(net.buffers(), other.buffers(), strict=True):
        torch.testing.assert_close(a, b)


def test_masked_connection_is_cut_after_bn_relu():
    """With every connection into the stage output of stage 0 cut except the input's, the
    network's output does not depend on stage 0's layers at all."""
    net = MaskedDenseNet(_tiny_densenet())
    _randomise_bn(net)
    net.eval()
    m = np.ones(net.d, dtype=bool)
    out_site = net.site("stages.0.output")
    m[out_site.bits] = False
    m[out_site.offset] = True  # only the stage input feeds the transition
    x = torch.randn(3, 1, 8, 8)
    with net.structure(m):
        before = net(x)
        with torch.no_grad():
            for p in net.stages[0].parameters():
                p.add_(torch.randn_like(p))
        torch.testing.assert_close(net(x), before)


def test_set_structure_errors():
    net = MaskedMLP(MLPSpec(in_features=3, widths=[2], num_classes=2))
    with pytest.raises(ArchoptError, match=r"d = 2"):
        net.set_structure(np.ones(3, dtype=bool))
    with pytest.raises(ArchoptError, match="0/1"):
        net.set_structure(np.array([0.5, 1.0]))
    with pytest.raises(ArchoptError, match="hidden layer"):
        MaskedMLP(MLPSpec(in_features=3, widths=[], num_classes=2))


# -- user hooks ---------------------------------------------------------------------------------


def test_hooked_supernet_masks_a_users_channels():
    torch.manual_seed(0)
    body = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Flatten(),
                         nn.Linear(4 * 5 * 5, 6), nn.Tanh(), nn.Linear(6, 2))
    net = HookedSupernet(body)
    net.add_site("1", 4, costs=[9.0] * 4)
    net.add_site(body[4], 6)
    assert net.d == 10 and net.sites[1].name == "4" and net.costs[0] == 9.0
    x = torch.randn(3, 1, 5, 5)
    m = np.array([1, 0, 1, 0, 1, 1, 0, 1, 0, 1], dtype=bool)  # 4 channels, 6 units
    with net.structure(m):
        got = net(x)
    h = torch.relu(body[0](x)) * torch.tensor(m[:4], dtype=torch.float32).view(1, 4, 1, 1)
    h = torch.tanh(body[3](h.flatten(1))) * torch.tensor(m[4:], dtype=torch.float32)
    torch.testing.assert_close(got, body[5](h))
    masks = np.random.default_rng(0).random((2, 10)) < 0.5
    net.set_structure(masks)
    fused = net(x)
    for g in range(2):
        with net.structure(masks[g]):
            torch.testing.assert_close(fused[3 * g:3 * g + 3], net(x))
    with pytest.raises(ArchoptError, match="no submodule"):
        net.add_site("nope", 3)


def test_hooked_supernet_separate_passes_keep_batchnorm_per_structure():
    body = nn.Sequential(nn.Linear(4, 5), nn.BatchNorm1d(5), nn.ReLU(), nn.Linear(5, 2))
    fused = HookedSupernet(copy.deepcopy(body))
    fused.add_site("2", 5)
    sep = HookedSupernet(copy.deepcopy(body), separate_passes=True)
    sep.add_site("2", 5)
    x = torch.randn(6, 4)
    masks = np.random.default_rng(0).random((2, 5)) < 0.5
    sep.set_structure(masks)
    out = sep(x)
    for g in range(2):
        with fused.structure(masks[g]):
            torch.testing.assert_close(out[6 * g:6 * g + 6], fused(x))
