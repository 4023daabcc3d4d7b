"""Architecture families: a validated spec, a builder to ``nn.Module``, an exact cost model.

Spaces: ``resnet`` (DeepMAD ResNet-like + classic ResNets), ``mbv2`` (DeepMAD MobileNet-V2-like),
``densenet`` (DenseNet / DenseNet-BC with connection masks), ``mlp`` (with unit masks).
``load_spec`` reads any of them from a catalog name, a JSON file, a TinyNAS structure file or a
dict.
"""

from archopt.spaces.base import ArchSpec, LayerCost, StageCost, Stem
from archopt.spaces.catalog import CATALOG, catalog_names
from archopt.spaces.densenet import DenseNetSpec, DenseStage, LiveStage
from archopt.spaces.mbv2 import MBV2Block, MBV2Spec
from archopt.spaces.mlp import MLPSpec
from archopt.spaces.registry import SPACES, load_spec, register_space, spec_from_dict
from archopt.spaces.resnet import ResNetSpec, SuperBlock
from archopt.spaces.tinynas import parse_tinynas

for _cls in (ResNetSpec, MBV2Spec, DenseNetSpec, MLPSpec):
    register_space(_cls)

__all__ = [
    "CATALOG",
    "SPACES",
    "ArchSpec",
    "DenseNetSpec",
    "DenseStage",
    "LayerCost",
    "LiveStage",
    "MBV2Block",
    "MBV2Spec",
    "MLPSpec",
    "ResNetSpec",
    "StageCost",
    "Stem",
    "SuperBlock",
    "catalog_names",
    "load_spec",
    "parse_tinynas",
    "register_space",
    "spec_from_dict",
]
