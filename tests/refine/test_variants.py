"""HBDE variants (ours, not the paper's): a wider initial spread and genes for the output biases."""

from __future__ import annotations

import pytest
import torch

from archopt.errors import ArchoptError
from archopt.refine import RefineConfig, histogram_blocking, refine
from archopt.refine.blocking import with_own_blocks
from archopt.refine.loop import initial_ranges
from archopt.refine.params import ParameterLayout
from archopt.training import load_model

FAST = dict(n_bins=1000, population=6, generations=3, eval_path="sequential", device="cpu")


def test_tensor_std_and_positions(tiny_net):
    layout = ParameterLayout.of(tiny_net)
    theta = layout.flatten(tiny_net)
    std = layout.tensor_std(theta)
    for name, p in tiny_net.named_parameters():
        pos = layout.positions(name)
        assert torch.equal(theta[pos], p.detach().flatten())
        assert torch.allclose(std[pos], torch.full((p.numel(),), float(p.detach().double()
                                                                         .std(correction=0)),
                                                   dtype=torch.float64))
    with pytest.raises(ArchoptError, match="not a trainable"):
        layout.positions("nope.bias")


def test_layer_range_is_block_mean_plus_minus_spread_times_member_tensor_std():
    g = torch.Generator().manual_seed(0)
    theta = torch.cat([torch.randn(50, generator=g) * 0.1, torch.randn(30, generator=g)])
    layer_std = torch.cat([torch.full((50,), 0.1), torch.full((30,), 1.0)]).double()
    b = histogram_blocking(theta, 20)
    bin_low, bin_high = initial_ranges(b, "bin")
    low, high = initial_ranges(b, "layer", layer_std=layer_std, spread=0.5)
    for k in range(b.blocked_dimensions):
        members = (b.inverse == k).nonzero().flatten()
        sigma = float(layer_std[members].mean())
        v = float(b.values[k])
        assert float(low[k]) == pytest.approx(min(float(bin_low[k]), v - 0.5 * sigma))
        assert float(high[k]) == pytest.approx(max(float(bin_high[k]), v + 0.5 * sigma))
    with pytest.raises(ArchoptError, match="layer"):
        initial_ranges(b, "layer")


def test_own_blocks_give_each_position_its_own_gene():
    theta = torch.tensor([0.0, 0.01, 0.02, 0.5, 0.51, 1.0, 0.015])
    b = histogram_blocking(theta, 4)
    pos = torch.tensor([6, 3])
    nb, origin = with_own_blocks(b, theta, pos)
    assert nb.inverse[6] == nb.blocked_dimensions - 2 and nb.inverse[3] == nb.blocked_dimensions - 1
    assert origin.tolist()[-2:] == [-1, -1] and (origin[:-2] >= 0).all()
    assert torch.equal(nb.unblock(nb.values)[pos], theta[pos])  # own genes hold the values
    for k in range(nb.blocked_dimensions - 2):  # the rest: means of the remaining members
        members = (nb.inverse == k).nonzero().flatten()
        assert float(nb.values[k]) == pytest.approx(float(theta[members].mean()))
        assert set(members.tolist()) <= set((b.inverse == origin[k]).nonzero().flatten().tolist())
    with pytest.raises(ArchoptError, match="distinct"):
        with_own_blocks(b, theta, torch.tensor([1, 1]))


def test_bias_genes_search_the_output_bias_beside_the_blocks(pretrained, digits, tmp_path):
    res = refine(pretrained, digits, RefineConfig(**FAST, bias_genes=True), out=tmp_path,
                 progress=False)
    s = res.summary
    assert s["variant"] == {"bias_genes": "head.fc.bias", "bias_gene_range": 1.0}
    net, _, _ = load_model(tmp_path / "checkpoint.pt")
    layout = ParameterLayout.of(net)
    assert torch.equal(dict(net.named_parameters())["head.fc.bias"].detach(),
                       res.best_blocks[-10:].to(torch.float32))
    assert torch.equal(layout.flatten(net), res.blocking.unblock(res.best_blocks))
    before, _, _ = load_model(pretrained)
    hist = histogram_blocking(ParameterLayout.of(before).flatten(before), 1000)
    assert hist.blocked_dimensions < s["blocked_dimensions"] <= hist.blocked_dimensions + 10


def test_layer_spread_variant_is_recorded_and_the_published_setting_has_none(pretrained, digits):
    wide = refine(pretrained, digits, RefineConfig(**FAST, init_range="layer", init_spread=0.1),
                  progress=False).summary
    assert wide["variant"] == {"init_range": "layer", "init_spread": 0.1}
    assert refine(pretrained, digits, RefineConfig(**FAST), progress=False).summary[
        "variant"] == {}
