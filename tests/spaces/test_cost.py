"""The analytic cost models agree with torch's own counters and with published figures."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from archopt.measure import count_macs, count_params, module_table
from archopt.spaces import (
    DenseNetSpec,
    MBV2Spec,
    MLPSpec,
    ResNetSpec,
    catalog_names,
    load_spec,
)

HEAVY = {"densenet-bc-190-40", "densenet-bc-250-24"}  # several GMACs: counted at a smaller side


def _check(spec, resolution):
    module = spec.build()
    assert spec.params() == count_params(module)
    assert spec.macs(resolution) == count_macs(module, spec.input_shape(resolution))


@pytest.mark.parametrize("name", catalog_names())
def test_catalog_costs_match_torch(name):
    spec = load_spec(name)
    res = spec.resolution or 28
    _check(spec, 16 if name in HEAVY else res)


@pytest.mark.parametrize("name,res", [("resnet18", 64), ("resnet50", 57), ("cnn-small", 27),
                                      ("densenet-40-12", 30), ("densenet121", 65)])
def test_odd_and_small_resolutions(name, res):
    _check(load_spec(name), res)


def test_per_layer_rows_match_flop_counter_modules():
    spec = load_spec("deepmad-r18", num_classes=0)
    rows = {r.name: r for r in module_table(spec.build(), spec.input_shape(64))}
    for layer in spec.cost_table(64):
        assert rows[layer.name].macs == layer.macs, layer.name


def test_published_resnet_figures():
    # He et al. 2016 / torchvision: ResNet-18 1.82 GMACs, 11.69 M params; ResNet-50 4.09 G, 25.56 M
    r18, r50 = load_spec("resnet18"), load_spec("resnet50")
    assert r18.params() == 11_689_512
    assert abs(r18.macs(224) - 1.82e9) / 1.82e9 < 0.005
    assert r50.params() == 25_557_032
    assert abs(r50.macs(224) - 4.09e9) / 4.09e9 < 0.005
    assert load_spec("resnet18-cifar").params() == 11_173_962  # the common CIFAR ResNet-18


@pytest.mark.parametrize("name,published", [
    ("densenet-bc-100-12", 0.8e6), ("densenet-40-12", 1.0e6), ("densenet-bc-250-24", 15.3e6),
    ("densenet-bc-190-40", 25.6e6)])
def test_published_densenet_params(name, published):
    # Huang et al. 2017, table 2 (CIFAR-10 heads)
    assert abs(load_spec(name).params() - published) / published < 0.05


def test_densenet121_matches_torchvision_count():
    assert load_spec("densenet121").params() == 7_978_856


def test_deepmad_r18_backbone_params_and_stages():
    spec = load_spec("deepmad-r18", num_classes=0)
    table = spec.cost_table(224)
    bn = sum(2 * r.c_out for r in table)
    # The paper's 11.09 M backbone counts conv weights only (DeepMAD table 2)
    assert round((spec.params() - bn) / 1e6, 2) == 11.09
    stages = spec.stage_table(224)
    assert [s.out_res for s in stages] == [112, 56, 28, 14, 7]
    assert [s.out_channels for s in stages] == [32, 96, 384, 1024, 672]
    assert spec.layers() == 1 + 3 * (1 + 6 + 9 + 10 + 12)


def test_headless_returns_features():
    spec = load_spec("resnet18", num_classes=0)
    out = spec.build().eval()(torch.zeros(2, 3, 64, 64))
    assert out.shape == (2, 512)


# -- random specs of every family ---------------------------------------------------------

kernels = st.sampled_from([1, 3, 5])


@st.composite
def resnet_specs(draw):
    n = draw(st.integers(1, 4))
    blocks = [dict(out=draw(st.integers(1, 24)), btn=draw(st.integers(1, 16)), k=draw(kernels),
                   L=draw(st.integers(1, 3)), stride=draw(st.sampled_from([1, 2])),
                   block=draw(st.sampled_from(["bottleneck", "basic"]))) for _ in range(n)]
    return ResNetSpec(in_channels=draw(st.integers(1, 4)), num_classes=draw(st.integers(0, 7)),
                      stem=dict(out=draw(st.integers(1, 16)), k=draw(kernels),
                                stride=draw(st.sampled_from([1, 2])), pool=draw(st.booleans())),
                      blocks=blocks, shortcut=draw(st.sampled_from(["avgpool", "conv"])),
                      project_first=draw(st.booleans()))


@st.composite
def mbv2_specs(draw):
    n = draw(st.integers(1, 3))
    blocks = [dict(out=draw(st.integers(1, 24)), btn=draw(st.integers(1, 40)), k=draw(kernels),
                   L=draw(st.integers(1, 3)), stride=draw(st.sampled_from([1, 2])))
              for _ in range(n)]
    return MBV2Spec(in_channels=3, num_classes=draw(st.integers(0, 5)),
                    stem=dict(out=draw(st.integers(4, 16)), k=3, stride=2), blocks=blocks,
                    head_conv=draw(st.one_of(st.none(), st.integers(8, 64))),
                    se=draw(st.booleans()))


@st.composite
def densenet_specs(draw):
    n = draw(st.integers(1, 3))
    stages = [dict(growth=draw(st.integers(1, 8)), layers=draw(st.integers(1, 4)), k=draw(kernels),
                   bottleneck=draw(st.booleans())) for _ in range(n)]
    masks = None
    if draw(st.booleans()):
        masks = [[[draw(st.booleans()) for _ in range(l + 1)] for l in range(s["layers"])]
                 + [[True] + [draw(st.booleans()) for _ in range(s["layers"])]] for s in stages]
    return DenseNetSpec(in_channels=draw(st.integers(1, 3)), num_classes=draw(st.integers(0, 5)),
                        stem=dict(out=draw(st.integers(1, 12)), k=3, stride=1), stages=stages,
                        compression=draw(st.sampled_from([0.5, 1.0])), connections=masks)


@settings(max_examples=25, deadline=None)
@given(resnet_specs(), st.integers(5, 40))
def test_random_resnet_costs(spec, res):
    _check(spec, res)


@settings(max_examples=20, deadline=None)
@given(mbv2_specs(), st.integers(8, 40))
def test_random_mbv2_costs(spec, res):
    _check(spec, res)


@settings(max_examples=25, deadline=None)
@given(densenet_specs(), st.sampled_from([8, 12, 16, 20]))
def test_random_densenet_costs(spec, res):
    _check(spec, res)


@settings(max_examples=25, deadline=None)
@given(st.lists(st.integers(1, 20), max_size=4), st.integers(1, 30), st.integers(0, 5),
       st.booleans(), st.data())
def test_random_mlp_costs(widths, fin, classes, bias, data):
    masks = None
    if widths and data.draw(st.booleans()):
        masks = [[data.draw(st.booleans()) for _ in range(w)] for w in widths]
    spec = MLPSpec(in_features=fin, widths=widths, num_classes=classes, bias=bias,
                   unit_masks=masks)
    module = spec.build()
    assert spec.params() == count_params(module)
    assert spec.macs() == count_macs(module, (fin,))
