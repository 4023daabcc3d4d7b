"""Named specs that ship with archopt: the classic baselines and the published designs.

``load_spec("resnet18")`` etc. Every entry is a function returning a fresh spec, so callers can
override fields (``load_spec("resnet18-cifar", num_classes=100)``).

Published figures the tests check: ResNet-18 at 224 = 1.82 GMACs, 11.69 M params; ResNet-50 =
4.09 GMACs, 25.56 M (He et al. 2016 / torchvision); DenseNet-BC (L=100, k=12) = 0.8 M params;
DenseNet (L=40, k=12) = 1.0 M (Huang et al. 2017). DeepMAD-R18/R34/R50: Shen et al. 2023,
table 2 (structures from the TinyNAS repository, restated in specs/deepmad.md section 8).
"""

from __future__ import annotations

from collections.abc import Callable

from archopt.spaces.base import ArchSpec
from archopt.spaces.densenet import DenseNetSpec
from archopt.spaces.mlp import MLPSpec
from archopt.spaces.resnet import ResNetSpec

__all__ = ["CATALOG", "catalog_names"]

_RESNET_LAYOUT = {18: ("basic", (2, 2, 2, 2)), 34: ("basic", (3, 4, 6, 3)),
                  50: ("bottleneck", (3, 4, 6, 3))}


def _resnet(depth: int, cifar: bool) -> ResNetSpec:
    kind, reps = _RESNET_LAYOUT[depth]
    blocks = []
    for i, (width, L) in enumerate(zip((64, 128, 256, 512), reps, strict=True)):
        out = width * 4 if kind == "bottleneck" else width
        blocks.append(dict(out=out, btn=width, k=3, L=L, stride=1 if i == 0 else 2, block=kind))
    stem = dict(out=64, k=3, stride=1) if cifar else dict(out=64, k=7, stride=2, pool=True)
    return ResNetSpec(name=f"ResNet-{depth}" + (" (CIFAR stem)" if cifar else ""),
                      in_channels=3, num_classes=10 if cifar else 1000,
                      resolution=32 if cifar else 224, stem=stem, blocks=blocks,
                      shortcut="conv", project_first=False)


def _deepmad(name: str, stem: int, blocks: list[tuple[int, int, int, int, int]]) -> ResNetSpec:
    return ResNetSpec(name=name, in_channels=3, num_classes=1000, resolution=224,
                      stem=dict(out=stem, k=3, stride=2),
                      blocks=[dict(out=o, btn=b, k=k, L=L, stride=s) for o, b, k, L, s in blocks])


def _densenet_bc(depth: int, growth: int, cifar: bool = True) -> DenseNetSpec:
    n = (depth - 4) // 6
    return DenseNetSpec(name=f"DenseNet-BC (L={depth}, k={growth})", in_channels=3,
                        num_classes=10, resolution=32, stem=dict(out=2 * growth, k=3, stride=1),
                        stages=[dict(growth=growth, layers=n) for _ in range(3)],
                        compression=0.5)


def _densenet40() -> DenseNetSpec:
    return DenseNetSpec(name="DenseNet (L=40, k=12)", in_channels=3, num_classes=10,
                        resolution=32, stem=dict(out=16, k=3, stride=1),
                        stages=[dict(growth=12, layers=12, bottleneck=False) for _ in range(3)],
                        compression=1.0)


def _densenet121() -> DenseNetSpec:
    return DenseNetSpec(name="DenseNet-121", in_channels=3, num_classes=1000, resolution=224,
                        stem=dict(out=64, k=7, stride=2, pool=True),
                        stages=[dict(growth=32, layers=n) for n in (6, 12, 24, 16)],
                        compression=0.5)


CATALOG: dict[str, Callable[[], ArchSpec]] = {
    "resnet18": lambda: _resnet(18, False),
    "resnet34": lambda: _resnet(34, False),
    "resnet50": lambda: _resnet(50, False),
    "resnet18-cifar": lambda: _resnet(18, True),
    "resnet34-cifar": lambda: _resnet(34, True),
    "resnet50-cifar": lambda: _resnet(50, True),
    "deepmad-r18": lambda: _deepmad("DeepMAD-R18", 32, [
        (96, 40, 5, 1, 2), (384, 40, 5, 6, 2), (384, 64, 5, 9, 2), (1024, 104, 3, 10, 1),
        (672, 104, 5, 12, 2)]),
    "deepmad-r34": lambda: _deepmad("DeepMAD-R34", 24, [
        (128, 24, 5, 1, 2), (512, 48, 5, 10, 2), (896, 88, 5, 13, 2), (1024, 104, 5, 11, 1),
        (616, 128, 5, 14, 2)]),
    "deepmad-r50": lambda: _deepmad("DeepMAD-R50", 32, [
        (128, 40, 5, 1, 2), (512, 48, 5, 11, 2), (872, 88, 5, 12, 2), (1024, 104, 5, 13, 1),
        (1232, 120, 5, 15, 2)]),
    "densenet-bc-100-12": lambda: _densenet_bc(100, 12),
    "densenet-bc-250-24": lambda: _densenet_bc(250, 24),
    "densenet-bc-190-40": lambda: _densenet_bc(190, 40),
    "densenet-40-12": _densenet40,
    "densenet121": _densenet121,
    "mlp-3x784": lambda: MLPSpec(name="MLP 784-784-784-784-10 (Saito et al. 2019)",
                                 in_features=784, widths=[784, 784, 784], num_classes=10),
    "cnn-small": lambda: ResNetSpec(
        name="small CNN (resnet space)", in_channels=1, num_classes=10, resolution=28,
        stem=dict(out=32, k=3, stride=1),
        blocks=[dict(out=64, btn=32, k=3, L=1, stride=2), dict(out=128, btn=64, k=3, L=1,
                                                               stride=2)]),
}


def catalog_names() -> list[str]:
    """Names ``load_spec`` accepts besides paths."""
    return sorted(CATALOG)
