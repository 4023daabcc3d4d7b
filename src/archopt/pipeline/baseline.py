"""The hand-designed baseline a designed network is compared with: a CIFAR-style ResNet
(He et al. 2016, section 4.2: 3x3 stem, three stages of basic blocks with widths w, 2w, 4w and
strides 1, 2, 2, global pool, linear classifier), widened as far as the target MACs allow (never
over them).
"""

from __future__ import annotations

from archopt.errors import InfeasibleBudget
from archopt.spaces import ResNetSpec

__all__ = ["cifar_resnet", "hand_baseline"]


def cifar_resnet(width: int, blocks_per_stage: int, *, in_channels: int, resolution: int,
                 num_classes: int) -> ResNetSpec:
    """ResNet-(6n+2) in the CIFAR layout with base width ``width`` (ResNet-20: width 16, n 3)."""
    return ResNetSpec(
        name=f"ResNet-{6 * blocks_per_stage + 2} (width {width})", in_channels=in_channels,
        num_classes=num_classes, resolution=resolution, stem=dict(out=width, k=3, stride=1),
        blocks=[dict(out=width * m, btn=width * m, k=3, L=blocks_per_stage, stride=s,
                     block="basic") for m, s in ((1, 1), (2, 2), (4, 2))],
        shortcut="conv", project_first=False)


def hand_baseline(target_macs: float, *, in_channels: int, resolution: int, num_classes: int,
                  blocks_per_stage: int = 2, multiple: int = 2) -> ResNetSpec:
    """The widest CIFAR-style ResNet (base width a multiple of ``multiple``) whose MACs at
    ``resolution`` do not exceed ``target_macs``.

    Raises: InfeasibleBudget when even the narrowest one is over the target.
    """
    def spec(w: int) -> ResNetSpec:
        return cifar_resnet(w, blocks_per_stage, in_channels=in_channels, resolution=resolution,
                            num_classes=num_classes)

    lo, hi = multiple, multiple
    if spec(lo).macs() > target_macs:
        raise InfeasibleBudget(
            f"the narrowest baseline ResNet needs {spec(lo).macs():,} MACs, over the target "
            f"{target_macs:,.0f}", budget="macs", limit=target_macs, needed=spec(lo).macs())
    while spec(hi * 2).macs() <= target_macs and hi < 4096:
        hi *= 2
    hi *= 2
    while hi - lo > multiple:  # MACs grow with width: bisect on multiples
        mid = (lo + hi) // 2 // multiple * multiple
        if spec(mid).macs() <= target_macs:
            lo = mid
        else:
            hi = mid
    return spec(lo)
