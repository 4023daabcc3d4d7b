"""ResNet channel selection: masks on the inner channels, lambda structures in one pass, costs,
compaction to a smaller ResNetSpec, and the penalty at work."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch import nn

from archopt.data import load_dataset
from archopt.errors import InvalidSpec
from archopt.measure import count_macs, count_params
from archopt.spaces import ResNetSpec, load_spec
from archopt.structure import Bernoulli, compact, make_optimizer, train_loop
from archopt.structure import weight_usage as usage
from archopt.structure.compaction import max_output_difference
from archopt.structure.resnet import MaskedResNet
from archopt.training import TrainConfig, save_checkpoint
from tests.structure.test_supernets import _randomise_bn


def _tiny_resnet(shortcut: str = "avgpool", classes: int = 3) -> ResNetSpec:
    return ResNetSpec(in_channels=1, resolution=8, num_classes=classes, shortcut=shortcut,
                      stem=dict(out=4, k=3),
                      blocks=[dict(out=6, btn=4, k=3, L=2, stride=1),
                              dict(out=8, btn=5, k=3, L=1, stride=2, block="basic"),
                              dict(out=10, btn=3, k=1, L=2, stride=2)])


def _masks(net: MaskedResNet, seed: int, lam: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).random((lam, net.d)) < 0.5


def test_sites_names_and_full_network():
    spec = _tiny_resnet()
    net = MaskedResNet(spec)
    assert [(s.name, s.size) for s in net.sites] == [("blocks.0", 4), ("blocks.1", 5),
                                                      ("blocks.2", 3)]
    assert set(net.state_dict()) == set(spec.build().state_dict())
    _randomise_bn(net)
    plain = spec.build()
    plain.load_state_dict(net.state_dict())
    net.eval()
    plain.eval()
    x = torch.randn(5, 1, 8, 8)
    torch.testing.assert_close(net(x), plain(x))  # no structure: the full network
    with net.structure(np.ones(net.d, dtype=bool)):
        torch.testing.assert_close(net(x), plain(x))
    with pytest.raises(InvalidSpec, match="resnet"):
        MaskedResNet(load_spec("densenet-40-12"))  # type: ignore[arg-type]


def test_costs_sum_to_the_removable_params():
    spec = _tiny_resnet()
    net = MaskedResNet(spec)
    removable = {s: 0 for s in range(len(spec.blocks))}
    for name, p in net.named_parameters():
        part = name.split(".")
        if part[0] == "blocks" and part[3] in ("conv1", "conv2", "conv3"):
            is_inner_bn = part[4] == "bn" and (part[3] == "conv1" or (
                part[3] == "conv2" and spec.blocks[int(part[1])].block == "bottleneck"))
            if part[4] == "conv" or is_inner_bn:
                removable[int(part[1])] += p.numel()
    for s, site in enumerate(net.sites):
        assert site.costs.sum() == removable[s]
    # one channel kept per superblock: the removable params go but one channel's worth, whose
    # conv2 (bottleneck) is 1 x 1 channels, not the btn / 2 + btn / 2 its cost splits off
    one = np.zeros(net.d, dtype=bool)
    one[[site.offset for site in net.sites]] = True
    expected = (spec.params() - net.costs.sum() + sum(site.costs[0] for site in net.sites)
                - sum(b.L * (b.btn - 1) * b.k**2 for b in spec.blocks if b.block == "bottleneck"))
    assert usage(net, one)["params"] == expected


@pytest.mark.parametrize("shortcut", ["avgpool", "conv"])
@pytest.mark.parametrize("seed", range(3))
def test_compaction_equals_the_masked_supernet(shortcut, seed):
    spec = _tiny_resnet(shortcut)
    net = MaskedResNet(spec)
    _randomise_bn(net, seed)
    m = _masks(net, seed)[0]
    if seed == 0:
        m[net.site("blocks.1").bits] = False  # an empty superblock keeps one channel
    c = compact(net, m)
    assert c.spec.blocks[1].btn == int(c.mask[net.site("blocks.1").bits].sum())
    assert [b.btn for b in c.spec.blocks] == net.channels_per_superblock(m)
    assert all(b.btn >= 1 for b in c.spec.blocks)
    x = torch.randn(6, 1, 8, 8)
    assert max_output_difference(net, c, x) < 1e-4
    assert c.spec.params() == count_params(c.module) == usage(net, m)["params"]
    assert c.spec.macs() == count_macs(c.module, c.spec.input_shape())
    assert c.spec.params() < spec.params()


def test_an_empty_superblock_keeps_its_most_probable_channel():
    net = MaskedResNet(_tiny_resnet())
    opt = make_optimizer("sng", Bernoulli(net.d), costs=net.costs)
    net.bind_optimizer(opt)
    site = net.site("blocks.2")
    opt.dist.theta[site.bits] = [0.1, 0.3, 0.2]  # the site's most probable channel: 1
    m = np.ones((2, net.d), dtype=bool)
    m[1, site.bits] = False
    canon = net.canonical(m)
    assert canon[0].all() and canon[1, site.bits].tolist() == [False, True, False]
    assert m[1, site.bits].sum() == 0  # the caller's array is left alone


def _loss_alone(net: MaskedResNet, mask: np.ndarray, x: torch.Tensor, y: torch.Tensor
                ) -> torch.Tensor:
    with net.structure(mask):
        return nn.functional.cross_entropy(net(x), y)


@pytest.mark.parametrize("shortcut", ["avgpool", "conv"])
def test_lambda_structures_in_one_pass_equal_separate_passes(shortcut):
    """Training mode: outputs, losses, gradients and BatchNorm running statistics of one
    batched pass over 3 structures equal those of 3 separate passes."""
    torch.manual_seed(0)
    net = MaskedResNet(_tiny_resnet(shortcut))
    _randomise_bn(net)
    fused, sep = (copy.deepcopy(net).train() for _ in range(2))
    x = torch.randn(4, 1, 8, 8)
    y = torch.tensor([0, 2, 1, 1])
    masks = _masks(fused, 1, lam=3)
    fused.set_structure(masks)
    out = fused(x)
    assert out.shape == (12, 3)
    per = nn.functional.cross_entropy(out, y.repeat(3), reduction="none").view(3, 4).mean(1)
    per.mean().backward()
    alone = torch.stack([_loss_alone(sep, m, x, y) for m in masks])
    torch.testing.assert_close(per, alone)
    alone.mean().backward()
    for (name, a), b in zip(fused.named_parameters(), sep.parameters(), strict=True):
        torch.testing.assert_close(a.grad, b.grad, msg=name)
    for a, b in zip(fused.buffers(), sep.buffers(), strict=True):  # running statistics
        torch.testing.assert_close(a, b)


def test_from_checkpoint_loads_the_trained_weights(tmp_path):
    spec = _tiny_resnet()
    model = spec.build()
    _randomise_bn(model)
    path = save_checkpoint(tmp_path / "m.pt", model, spec=spec)
    net = MaskedResNet.from_checkpoint(path)
    for k, v in model.state_dict().items():
        torch.testing.assert_close(net.state_dict()[k], v)


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits").subset(256, 64, seed=0)


def _train(data, penalty: float) -> tuple[float, float]:
    torch.manual_seed(0)
    net = MaskedResNet(_tiny_resnet(classes=10))
    opt = make_optimizer("sng", Bernoulli(net.d), penalty=penalty, costs=net.costs, eta=0.1)
    net.bind_optimizer(opt)
    cfg = TrainConfig(epochs=1, batch_size=16, lr=0.05, device="cpu", latency=False)
    train_loop(net, data, cfg, structure=opt, max_steps_per_epoch=12)
    c = net.costs
    return float(opt.theta @ c / c.sum()), usage(net, opt.mode())["weight_usage_rate"]


def test_a_large_penalty_drives_usage_down(digits):
    free_cost, free_usage = _train(digits, 0.0)
    pen_cost, pen_usage = _train(digits, 4.0)
    # 12 steps of eta = 0.1 with eps = 4 / max(c): theta of the costliest bits falls by ~0.1 a
    # step, the ranking alone moves it by at most +-0.05
    assert pen_cost < free_cost - 0.15
    assert pen_usage < free_usage
