"""Equivalent-pair constructions compute the same function; geometry figures match brute force."""

from __future__ import annotations

import pytest
import torch
from scipy.stats import spearmanr

from archopt.errors import InvalidSpec
from archopt.latent import MultiScaleAutoencoder
from archopt.latent.encoding import ArrayLayout, decode, encode
from archopt.latent.equivalence import (
    EQUIVALENCES,
    add_dead_unit,
    add_identity_layer,
    equivalent_variant,
    permute_units,
    split_unit,
)
from archopt.latent.generator import random_mlps
from archopt.latent.geometry import geometry, make_pairs
from archopt.spaces import MLPSpec

LAYOUT = ArrayLayout()
X = torch.rand(500, 3, generator=torch.Generator().manual_seed(9), dtype=torch.float64) * 2 - 1


def torch_forward(weights, activation, slope=0.1):
    """An independent forward: the MLPSpec module (nn.Linear layers) in float64."""
    spec = MLPSpec(in_features=3, widths=[w.shape[0] for w in weights[:-1]], num_classes=1,
                   activation=activation, negative_slope=slope, bias=False)
    m = spec.build().double()
    m.load_state_dict({f"layers.{i}.weight": w.double() for i, w in enumerate(weights)})
    with torch.no_grad():
        return m(X).squeeze(-1)


def family(depth, n=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    arrays = random_mlps(n, depth, LAYOUT, generator=g, sparsity=[0.5, 0.9] * (n // 2),
                         dtype=torch.float64)
    return [decode(a, LAYOUT) for a in arrays]


@pytest.mark.parametrize("activation", ["sigmoid", "leaky_relu", "linear"])
@pytest.mark.parametrize("kind", EQUIVALENCES)
def test_equivalent_variants_compute_the_same_function(activation, kind):
    g = torch.Generator().manual_seed(1)
    made = 0
    for depth in (1, 2, 3, 4):
        for w in family(depth, seed=depth):
            v = equivalent_variant(w, kind, activation=activation, negative_slope=0.1,
                                   layout=LAYOUT, generator=g)
            if v is None:
                assert kind == "deeper" and (activation == "sigmoid" or depth == 4)
                continue
            made += 1
            y, yv = torch_forward(w, activation), torch_forward(v, activation)
            assert y.abs().max() > 1e-3  # a non-trivial function
            assert (y - yv).abs().max() < 1e-6
            # ... in another array: the construction really changed the network
            a, av = encode(w, LAYOUT), encode(v, LAYOUT)
            assert a.shape != av.shape or not torch.equal(a, av)
            if kind in ("split", "dead"):
                assert sum(x.shape[0] for x in v[:-1]) == sum(x.shape[0] for x in w[:-1]) + 1
            if kind == "deeper":
                assert len(v) > len(w)
    assert made > 0 or (kind == "deeper" and activation == "sigmoid")


def test_constructions_by_hand():
    w0 = torch.tensor([[1.0, -2.0, 0.5], [3.0, 0.0, -1.0]])
    wo = torch.tensor([[2.0, -4.0]])
    s = split_unit([w0, wo], 0, 1, 0.25)
    assert torch.equal(s[0], torch.cat([w0, w0[1:2]]))
    assert torch.equal(s[1], torch.tensor([[2.0, -1.0, -3.0]]))
    p = permute_units([w0, wo], 0, [1, 0])
    assert torch.equal(p[0], w0.flip(0)) and torch.equal(p[1], wo.flip(1))
    d = add_dead_unit([w0, wo], 0, torch.tensor([5.0, 6.0, 7.0]))
    assert torch.equal(d[1], torch.tensor([[2.0, -4.0, 0.0]]))
    deep = add_identity_layer([w0, wo], "leaky_relu", 0.1)
    assert torch.equal(deep[1], torch.cat([wo, -wo]))
    assert torch.allclose(deep[2], torch.tensor([[1.0, -1.0]]) / 1.1)
    with pytest.raises(InvalidSpec):
        add_identity_layer([w0, wo], "sigmoid")
    with pytest.raises(InvalidSpec):
        permute_units([w0, wo], 0, [0, 0])
    with pytest.raises(InvalidSpec):
        split_unit([w0, wo], 1, 0)  # the output layer is not hidden


@pytest.mark.parametrize("activation", ["sigmoid", "leaky_relu"])
def test_pair_set(activation):
    ps = make_pairs(LAYOUT, activation, bases=3, unrelated=2, seed=0)
    kinds = ps.kinds()
    assert ("deeper" in kinds) == (activation == "leaky_relu")
    partner_depth = {}
    for i, j, kind, anchor in ps.pairs:
        assert anchor == i
        if kind in EQUIVALENCES:
            y, yv = torch_forward(ps.nets[i], activation), torch_forward(ps.nets[j], activation)
            assert (y - yv).abs().max() < 1e-6
            partner_depth[i] = len(ps.nets[j])
    for i, j, kind, _ in ps.pairs:  # unrelated partners share the equivalent partner's depth
        if kind == "unrelated":
            assert len(ps.nets[j]) == partner_depth[i]


def test_geometry_matches_brute_force(tiny):
    torch.manual_seed(0)
    model = MultiScaleAutoencoder(tiny("leaky_relu")).eval()
    ps = make_pairs(model.layout, "leaky_relu", bases=2, unrelated=3, seed=1)
    x = X[:100].float()
    out = geometry(model, ps, x)

    def z(net):  # one network at a time through its depth's encoder
        with torch.no_grad():
            return model.encode({len(net) - 1: encode([w.float() for w in net],
                                                      model.layout)[None]})[0].double()

    def f(net):
        return torch_forward(net, "leaky_relu")[:100]

    dz = [float((z(ps.nets[i]) - z(ps.nets[j])).norm()) for i, j, _, _ in ps.pairs]
    dy = [float(((f(ps.nets[i]) - f(ps.nets[j])) ** 2).mean().sqrt()) for i, j, _, _ in ps.pairs]
    dy = [0.0 if d < 1e-9 else d for d in dy]
    assert out["spearman"]["all"] == pytest.approx(spearmanr(dz, dy).statistic, abs=1e-6)
    wins = total = 0
    for n, (_, _, kind, a) in enumerate(ps.pairs):
        if kind not in EQUIVALENCES:
            continue
        for m, (_, _, k2, a2) in enumerate(ps.pairs):
            if k2 == "unrelated" and a2 == a:
                wins += dz[n] < dz[m]
                total += 1
    assert out["closer"]["equivalent"] == pytest.approx(wins / total)
    assert out["max_equivalent_output_distance"] < 1e-6


@pytest.mark.parametrize("activation", ["sigmoid", "leaky_relu"])
def test_equivalent_arrays_pair_every_batch_mlp_with_an_equal_function(activation):
    from archopt.latent.encoding import array_forward
    from archopt.latent.equivalence import equivalent_arrays
    from archopt.latent.generator import training_batch

    g = torch.Generator().manual_seed(4)
    arrays = training_batch(16, LAYOUT, generator=g)
    partners, order = equivalent_arrays(arrays, LAYOUT, activation=activation,
                                        negative_slope=0.1, generator=g)
    x = X[:64].float()
    y = torch.cat([array_forward(arrays[L], x, LAYOUT, activation) for L in sorted(arrays)])
    yp = torch.cat([array_forward(partners[L], x, LAYOUT, activation)
                    for L in sorted(partners)])[order]
    assert torch.allclose(yp, y, rtol=1e-4, atol=1e-4 * float(y.abs().max()))
    assert sorted(order.tolist()) == list(range(16))


def test_contrastive_loss_is_infonce_on_partner_distances(tiny):
    import torch.nn.functional as F

    from archopt.latent.autoencoder import contrastive_loss, input_grid, training_loss
    from archopt.latent.equivalence import equivalent_arrays
    from archopt.latent.generator import training_batch

    torch.manual_seed(0)
    cfg = tiny("leaky_relu").model_copy(update={"contrastive_weight": 2.0})
    model = MultiScaleAutoencoder(cfg)
    arrays = training_batch(8, cfg.layout, generator=torch.Generator().manual_seed(1))
    z = model.encode(arrays)
    loss = contrastive_loss(model, arrays, z, torch.Generator().manual_seed(5))
    partners, order = equivalent_arrays(arrays, cfg.layout, activation="leaky_relu",
                                        negative_slope=0.1,
                                        generator=torch.Generator().manual_seed(5))
    zp = model.encode(partners)[order].detach()
    z = z.detach()
    d = torch.tensor([[float(((z[i] - zp[j]) ** 2).sum()) for j in range(8)] for i in range(8)])
    expected = F.cross_entropy(-d / (0.1 * d.mean()), torch.arange(8))
    assert float(loss) == pytest.approx(float(expected), rel=1e-4)
    total, parts = training_loss(model, arrays, input_grid(3, 4),
                                 generator=torch.Generator().manual_seed(5))
    assert "contrastive" in parts
    total.backward()
    assert next(model.encoders[0].parameters()).grad.abs().sum() > 0
