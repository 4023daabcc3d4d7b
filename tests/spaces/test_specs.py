"""Specs validate, round-trip through JSON, and import TinyNAS structure files safely."""

from __future__ import annotations

import json

import pytest
import torch

from archopt.errors import InvalidSpec, UnknownName
from archopt.spaces import (
    DenseNetSpec,
    MLPSpec,
    ResNetSpec,
    catalog_names,
    load_spec,
    parse_tinynas,
    spec_from_dict,
)

R18_TXT = """{ 'best_structures':[ [
    {'class': 'ConvKXBNRELU', 'in': 3, 'k': 3, 'out': 32, 's': 2},
    { 'L': 1, 'btn': 40, 'class': 'SuperResK1KXK1', 'in': 32, 'inner_class': 'ResK1KXK1', 'k': 5, 'out': 96, 's': 2},
    { 'L': 6, 'btn': 40, 'class': 'SuperResK1KXK1', 'in': 96, 'inner_class': 'ResK1KXK1', 'k': 5, 'out': 384, 's': 2},
    { 'L': 9, 'btn': 64, 'class': 'SuperResK1KXK1', 'in': 384, 'inner_class': 'ResK1KXK1', 'k': 5, 'out': 384, 's': 2},
    { 'L': 10, 'btn': 104, 'class': 'SuperResK1KXK1', 'in': 384, 'inner_class': 'ResK1KXK1', 'k': 3, 'out': 1024, 's': 1},
    { 'L': 12, 'btn': 104, 'class': 'SuperResK1KXK1', 'in': 1024, 'inner_class': 'ResK1KXK1', 'k': 5, 'out': 672, 's': 2}]],
'space_arch': 'CnnNet'}
"""  # noqa: E501  (the TinyNAS repository's configs/classification/models/deepmad-R18.txt)

MBV2_TXT = """{'best_structures': [[
{'class': 'ConvKXBNRELU', 'in': 3, 'k': 3, 'out': 40, 's': 2},
{'L': 2, 'btn': 240, 'class': 'SuperResK1DWSEK1', 'in': 40, 'k': 5, 'out': 40, 's': 1},
{'L': 4, 'btn': 512, 'class': 'SuperResK1DWSEK1', 'in': 40, 'k': 5, 'out': 85, 's': 2},
{'class': 'ConvKXBNRELU', 'in': 85, 'k': 1, 'out': 1792, 's': 1}]], 'space_arch': 'CnnNet'}"""


@pytest.mark.parametrize("name", catalog_names())
def test_json_round_trip(name):
    spec = load_spec(name)
    again = spec_from_dict(json.loads(spec.to_json()))
    assert again == spec
    assert type(again) is type(spec)


def test_load_from_file_and_folder(tmp_path):
    spec = load_spec("cnn-small")
    (tmp_path / "arch.json").write_text(spec.to_json())
    assert load_spec(tmp_path / "arch.json") == spec
    assert load_spec(tmp_path) == spec  # a result folder
    assert load_spec(tmp_path / "arch.json", num_classes=3).num_classes == 3


@pytest.mark.parametrize("bad", [
    {"space": "resnet", "stem": {"out": 8, "k": 4}, "blocks": [{"out": 8, "btn": 8}]},   # even k
    {"space": "resnet", "stem": {"out": 8}, "blocks": [{"out": 8, "btn": 8, "stride": 3}]},
    {"space": "resnet", "stem": {"out": 8}, "blocks": []},
    {"space": "resnet", "stem": {"out": 0}, "blocks": [{"out": 8, "btn": 8}]},
    {"space": "resnet", "stem": {"out": 8}, "blocks": [{"out": 8, "btn": 8}], "color": "red"},
    {"space": "mlp", "in_features": 4, "widths": [0]},
    {"space": "mlp", "in_features": 4, "widths": [3], "unit_masks": [[True, False]]},
    {"space": "densenet", "stem": {"out": 8}, "stages": [{"growth": 4, "layers": 2}],
     "connections": [[[True], [True, True]]]},                       # 2 consumers, 3 expected
    {"space": "densenet", "stem": {"out": 8}, "stages": [{"growth": 4, "layers": 1}],
     "connections": [[[True], [False, False]]]},                     # stage output fed by nothing
    {"stem": {"out": 8}},                                              # no space tag
])
def test_invalid_specs_raise_invalid_spec(bad):
    with pytest.raises(InvalidSpec) as err:
        spec_from_dict(bad)
    assert str(err.value)


def test_unknown_space_and_name():
    with pytest.raises(UnknownName, match="known"):
        spec_from_dict({"space": "transformer"})
    with pytest.raises(UnknownName, match="catalog"):
        load_spec("no-such-network")


def test_invalid_json_file_names_line(tmp_path):
    p = tmp_path / "bad.json"
    p.write_text('{"space": "mlp",\n "in_features": }')
    with pytest.raises(InvalidSpec, match="line 2"):
        load_spec(p)


def test_direct_construction_raises_invalid_spec():
    with pytest.raises(InvalidSpec, match="kernel must be odd"):
        ResNetSpec(stem=dict(out=8, k=2), blocks=[dict(out=8, btn=8)])


def test_tinynas_import_equals_published_r18():
    spec = parse_tinynas(R18_TXT, num_classes=1000)
    ref = load_spec("deepmad-r18")
    assert spec.blocks == ref.blocks and spec.stem == ref.stem
    assert spec.params() == ref.params()


def test_tinynas_mbv2_with_final_conv(tmp_path):
    p = tmp_path / "deepmad-tiny.txt"
    p.write_text(MBV2_TXT)
    spec = load_spec(p, num_classes=0)
    assert spec.space == "mbv2" and spec.head_conv == 1792 and spec.se
    assert spec.build()(torch.zeros(1, 3, 64, 64)).shape == (1, 1792)


@pytest.mark.parametrize("text,match", [
    ("__import__('os').system('touch /tmp/archopt_pwned')", "literal"),
    ("[{'class': 'ConvKXBNRELU', 'in': 3, 'k': 3, 'out': 8, 's': 2},"
     " {'class': 'SuperResK1KXK1', 'in': 16, 'out': 8, 'btn': 4, 'k': 3, 'L': 1, 's': 1}]",
     "previous block outputs 8"),
    ("[{'class': 'ConvKXBNRELU', 'in': 3, 'k': 3, 'out': 8, 's': 2},"
     " {'class': 'SuperFancy', 'in': 8, 'out': 8}]", "unsupported class"),
])
def test_tinynas_bad_files(text, match, tmp_path):
    with pytest.raises(InvalidSpec, match=match):
        parse_tinynas(text)
    assert not (tmp_path / "archopt_pwned").exists()


def test_densenet_live_connections_hand_example():
    # 3 layers; layer 1 reads nothing live (only source 1 = layer 0, which is off),
    # layer 2 reads the input; the output reads the input and layer 2.
    masks = [[[False], [False, True], [True, False, False], [True, False, True, True]]]
    spec = DenseNetSpec(stem=dict(out=5), stages=[dict(growth=3, layers=3, bottleneck=False)],
                        connections=masks, num_classes=2)
    live = spec.live_connections()[0]
    assert live.layer_sources == [None, None, [0]]
    assert live.output_sources == [0, 3]
    assert live.out_channels == 5 + 3
    # params: stem 3*5*9, layer 2: BN(5) + conv 5->3 3x3, final BN(8), fc 8->2
    assert spec.params() == 3 * 5 * 9 + (10 + 5 * 3 * 9) + 16 + (8 * 2 + 2)


def test_mlp_masks_keep_units():
    spec = MLPSpec(in_features=4, widths=[3, 2], unit_masks=[[True, False, True], [False, True]],
                   num_classes=2)
    assert spec.kept_widths() == [2, 1]
    assert spec.params() == (4 * 2 + 2) + (2 * 1 + 1) + (1 * 2 + 2)
