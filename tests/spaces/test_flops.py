"""FLOPs under the DeepMAD / TinyNAS toolbox's convention: each term against an independent
count on the built module (torch.utils.flop_counter for the convolutions, forward hooks for
BatchNorm, activations, pooling and residual additions), and one block by the toolbox's own
formula written out by hand."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from archopt.errors import InvalidSpec
from archopt.spaces import load_spec, spec_from_dict
from archopt.spaces.flops import toolbox_flops
from tests.spaces.test_specs import R18_TXT

RES = 32


def _specs():
    resnet = {"space": "resnet", "in_channels": 3, "num_classes": 0, "resolution": RES,
              "stem": {"out": 16, "k": 3, "stride": 2},
              "blocks": [{"out": 32, "btn": 8, "k": 3, "L": 2, "stride": 2},
                         {"out": 32, "btn": 16, "k": 5, "L": 2, "stride": 1},
                         {"out": 48, "btn": 16, "k": 3, "L": 1, "stride": 2, "block": "basic"}]}
    yield "resnet-avgpool", resnet
    yield "resnet-conv-shortcut", {**resnet, "shortcut": "conv", "project_first": False}
    yield "resnet-stem-pool", {**resnet, "stem": {"out": 16, "k": 7, "stride": 2, "pool": True},
                               "resolution": 64}
    yield "mbv2", {"space": "mbv2", "in_channels": 3, "num_classes": 0, "resolution": RES,
                   "se": False, "stem": {"out": 16, "k": 3, "stride": 2},
                   "blocks": [{"out": 16, "btn": 48, "k": 3, "L": 2, "stride": 2},
                              {"out": 24, "btn": 64, "k": 5, "L": 2, "stride": 2}],
                   "head_conv": 64}


def _independent_count(spec) -> dict[str, int]:
    model = spec.build().eval()
    counts = {"bn": 0, "activation": 0, "addition": 0, "pooling": 0}

    def hook(kind):
        def fn(module, inputs, output):
            if kind == "pooling":
                counts[kind] += inputs[0].numel()
            elif kind == "bn":
                counts[kind] += 2 * output.numel()
            elif kind == "addition":
                if not isinstance(module.shortcut.proj, nn.Identity):
                    counts[kind] += output.numel()
            else:
                counts[kind] += output.numel()
        return fn

    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.register_forward_hook(hook("bn"))
        elif isinstance(m, (nn.ReLU, nn.SiLU)):
            m.register_forward_hook(hook("activation"))
        elif isinstance(m, (nn.AvgPool2d, nn.MaxPool2d)):
            m.register_forward_hook(hook("pooling"))
        elif type(m).__name__ == "_Block":  # a ResNet block: input + shortcut
            m.register_forward_hook(hook("addition"))
    x = torch.zeros(1, *spec.input_shape())
    with FlopCounterMode(display=False) as fc, torch.no_grad():
        model(x)
    conv_flops = sum(v for op, v in fc.get_flop_counts()["Global"].items()
                     if "convolution" in str(op))
    counts["conv"] = conv_flops // 2  # torch counts 2 FLOPs per multiply-accumulate
    return counts


@pytest.mark.parametrize("case", list(_specs()), ids=[n for n, _ in _specs()])
def test_each_term_matches_an_independent_count(case):
    _, data = case
    spec = spec_from_dict(data)
    got = toolbox_flops(spec)
    ref = _independent_count(spec)
    assert got.conv == ref["conv"]
    assert got.bn == ref["bn"]
    assert got.activation == ref["activation"]
    assert got.pooling == ref["pooling"]
    if spec.space == "resnet":
        assert got.addition == ref["addition"]
    else:
        assert got.addition == 0  # identity shortcuts: the toolbox counts no addition
    assert got.total == sum(ref.values()) > got.conv


def test_one_bottleneck_by_the_toolbox_formula():
    """Stem ConvKXBNRELU(3->8, k3, s1) then one ResK1KXK1(8->16, btn 4, k3, s2) at r = 8,
    summed exactly as the toolbox's get_flops does (per-pixel terms times r^2)."""
    spec = spec_from_dict({"space": "resnet", "in_channels": 3, "num_classes": 0,
                           "resolution": 8, "stem": {"out": 8, "k": 3, "stride": 1},
                           "blocks": [{"out": 16, "btn": 4, "k": 3, "L": 1, "stride": 2}]})
    r, s = 8, 2
    stem = (3 * 8 * 9 + 2 * 8 + 8) * r**2
    conv1 = (8 * 4 + 2 * 4) * r**2
    conv2 = (4 * 4 * 9 / s**2 + 2 * 4 / s**2) * r**2
    conv3 = (4 * 16 + 2 * 16) * (r / s) ** 2
    relu = (4 + 4 / s**2 + 16 / s**2) * r**2
    pool = 8 * r**2
    proj = (8 * 16 + 2 * 16) * (r / s) ** 2 + 16 * (r / s) ** 2  # conv + BN, then the addition
    assert toolbox_flops(spec).total == stem + conv1 + conv2 + conv3 + relu + pool + proj


def test_other_spaces_refused():
    with pytest.raises(InvalidSpec, match="resnet and mbv2"):
        toolbox_flops(load_spec("mlp-3x784"))


R18 = R18_TXT  # the TinyNAS repository's deepmad-R18 structure file


def test_score_tinynas_file_headless_with_flops(cli, tmp_path):
    f = tmp_path / "deepmad-R18.txt"
    f.write_text(R18)
    res = cli("score", f, "--json")
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    headless = load_spec("deepmad-r18", num_classes=0)
    assert out["params"] == headless.params() and out["macs"] == headless.macs()
    assert out["stages"][-1]["stage"] != 0  # no classifier row
    flops = out["flops_tinynas"]
    assert flops["total"] == toolbox_flops(headless).total > out["macs"]
    res = cli("score", f, "--num-classes", "1000", "--json")
    assert json.loads(res.stdout)["params"] == load_spec("deepmad-r18").params()
    table = cli("score", f)
    assert "FLOPs (TinyNAS convention, headless)" in table.stdout
