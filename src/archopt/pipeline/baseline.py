"""The hand-designed networks a designed one is compared with, at equal budgets.

Two families, each searched for its largest member (most MACs) that fits **both** the MACs and
the params budget the design used:

- ``resnet``: CIFAR-style ResNet-(6n+2) (He et al. 2016, section 4.2: 3x3 stem, three stages of
  ``n`` basic blocks with widths w, 2w, 4w and strides 1, 2, 2, global pool, linear classifier),
  over depth ``n`` and base width ``w`` (a multiple of 2).
- ``mbv2``: MobileNetV2 (Sandler et al. 2018, table 2: stem 32, inverted residual stages
  t/c/n = 1/16/1, 6/24/2, 6/32/3, 6/64/4, 6/96/3, 6/160/3, 6/320/1, final 1x1 conv 1280, ReLU6,
  linear bottlenecks), over width multiplier ``alpha`` (channels rounded as torchvision's
  ``_make_divisible``; the final conv is 1280 * max(1, alpha)) with resolution-appropriate
  strides: of the network's five stride-2 places (stem, first blocks of the 24, 32, 64 and 160
  stages) the last ``k`` are kept, ``k`` the largest <= 5 with a final map of at least 2x2
  (224 -> 5 and a 7x7 map, as published; 32 and 28 -> 4; 8 -> 2). A 4x4 floor (the usual
  CIFAR variant's) leaves 8x8 inputs one stride, and then no member fits 2 M MACs.
  Departures: expressed in the ``mbv2`` space, so the t = 1 block keeps a 1x1 expansion conv
  (c -> c) that the paper omits, and there is no dropout before the classifier.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from archopt.errors import InfeasibleBudget
from archopt.spaces import ArchSpec, MBV2Spec, ResNetSpec

__all__ = ["BASELINE_FAMILIES", "MBV2_ALPHAS", "RESNET_DEPTHS", "Baseline", "cifar_resnet",
           "fits", "hand_baseline", "hand_baselines", "mobilenet_v2", "mobilenet_v2_strides"]

#: Blocks per stage ``n`` the ResNet family is searched over (ResNet-8 .. ResNet-56).
RESNET_DEPTHS = tuple(range(1, 10))
#: Width multipliers the MobileNetV2 family is searched over.
MBV2_ALPHAS = tuple(round(0.05 * i, 2) for i in range(2, 41))  # 0.10, 0.15, ..., 2.00

#: MobileNetV2's inverted-residual stages (t, c, n, s) as published (Sandler et al., table 2).
_MBV2_STAGES = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
                (6, 160, 3, 2), (6, 320, 1, 1))


def cifar_resnet(width: int, blocks_per_stage: int, *, in_channels: int, resolution: int,
                 num_classes: int) -> ResNetSpec:
    """ResNet-(6n+2) in the CIFAR layout with base width ``width`` (ResNet-20: width 16, n 3)."""
    return ResNetSpec(
        name=f"ResNet-{6 * blocks_per_stage + 2} (width {width})", in_channels=in_channels,
        num_classes=num_classes, resolution=resolution, stem=dict(out=width, k=3, stride=1),
        blocks=[dict(out=width * m, btn=width * m, k=3, L=blocks_per_stage, stride=s,
                     block="basic") for m, s in ((1, 1), (2, 2), (4, 2))],
        shortcut="conv", project_first=False)


def _make_divisible(v: float, divisor: int = 8) -> int:
    """torchvision's ``_make_divisible``: nearest multiple of ``divisor``, at least ``divisor``,
    never more than 10 % below ``v``."""
    new = max(divisor, int(v + divisor / 2) // divisor * divisor)
    return new + divisor if new < 0.9 * v else new


def mobilenet_v2_strides(resolution: int, min_side: int = 2) -> int:
    """How many of MobileNetV2's five stride-2 places a ``resolution`` input keeps: the largest
    ``k <= 5`` whose final feature map is at least ``min_side`` pixels a side
    (ceil(resolution / 2**k) >= min_side), >= 0."""
    k = 0
    while k < 5 and math.ceil(resolution / 2 ** (k + 1)) >= min_side:
        k += 1
    return k


def mobilenet_v2(alpha: float, *, in_channels: int, resolution: int,
                 num_classes: int, min_side: int = 2) -> MBV2Spec:
    """MobileNetV2 with width multiplier ``alpha`` and resolution-appropriate strides (module
    docstring). Source: Sandler et al., "MobileNetV2", CVPR 2018, table 2; torchvision's
    rounding."""
    keep = mobilenet_v2_strides(resolution, min_side)
    # the five stride-2 places, first to last: stem, then the stages with s = 2
    strided = [True] + [s == 2 for *_, s in _MBV2_STAGES]
    places = [i for i, s in enumerate(strided) if s]
    kept = set(places[len(places) - keep:]) if keep else set()
    stem_out = _make_divisible(32 * alpha)
    c = stem_out
    blocks = []
    for i, (t, ch, n, _s) in enumerate(_MBV2_STAGES, start=1):
        out = _make_divisible(ch * alpha)
        blocks.append(dict(out=out, btn=c * t, k=3, L=1, stride=2 if i in kept else 1))
        if n > 1:  # the rest of the stage expands from ``out``
            blocks.append(dict(out=out, btn=out * t, k=3, L=n - 1, stride=1))
        c = out
    return MBV2Spec(
        name=f"MobileNetV2 (width {alpha:g})", in_channels=in_channels, num_classes=num_classes,
        resolution=resolution, stem=dict(out=stem_out, k=3, stride=2 if 0 in kept else 1),
        blocks=blocks, head_conv=_make_divisible(1280 * max(1.0, alpha)), se=False,
        act="relu6", strided_residual=False)


def fits(spec: ArchSpec, macs: float | None, params: float | None) -> bool:
    """Whether ``spec`` is within both budgets (None = unbounded)."""
    return ((macs is None or spec.macs() <= macs)
            and (params is None or spec.params() <= params))


def _widest(make: Callable[[int], ArchSpec], macs: float | None, params: float | None,
            multiple: int = 2, limit: int = 4096) -> ArchSpec | None:
    """The widest ``make(w)`` (``w`` a multiple of ``multiple``) within both budgets; MACs and
    params grow with ``w``, so bisect. None when even ``w = multiple`` is over."""
    if not fits(make(multiple), macs, params):
        return None
    lo, hi = multiple, multiple
    while hi < limit and fits(make(hi * 2), macs, params):
        hi *= 2
    hi *= 2
    while hi - lo > multiple:
        mid = (lo + hi) // 2 // multiple * multiple
        if fits(make(mid), macs, params):
            lo = mid
        else:
            hi = mid
    return make(lo)


def _largest(specs: Iterable[ArchSpec | None]) -> ArchSpec | None:
    """The member with the most MACs (ties: more params, then the first)."""
    best = None
    for s in specs:
        if s is not None and (best is None or (s.macs(), s.params()) > (best.macs(),
                                                                           best.params())):
            best = s
    return best


def _resnet(macs: float | None, params: float | None, *, in_channels: int, resolution: int,
            num_classes: int, depths: Iterable[int] = RESNET_DEPTHS) -> ArchSpec | None:
    def widest(n: int) -> ArchSpec | None:
        return _widest(lambda w: cifar_resnet(w, n, in_channels=in_channels,
                                              resolution=resolution, num_classes=num_classes),
                       macs, params)
    return _largest(widest(n) for n in depths)


def _mbv2(macs: float | None, params: float | None, *, in_channels: int, resolution: int,
          num_classes: int, alphas: Iterable[float] = MBV2_ALPHAS,
          min_side: int = 2) -> ArchSpec | None:
    # channel rounding makes the cost a step function of alpha: scan the grid
    return _largest(s for s in (mobilenet_v2(a, in_channels=in_channels, resolution=resolution,
                                             num_classes=num_classes, min_side=min_side)
                                for a in alphas)
                    if fits(s, macs, params))


#: family name -> chooser(macs, params, in_channels=, resolution=, num_classes=) -> spec | None
BASELINE_FAMILIES: dict[str, Callable[..., ArchSpec | None]] = {"resnet": _resnet,
                                                                 "mbv2": _mbv2}


@dataclass(frozen=True)
class Baseline:
    """A chosen hand-designed network: its ``family`` (a :data:`BASELINE_FAMILIES` key) and
    ``spec``."""

    family: str
    spec: ArchSpec


def hand_baselines(macs: float | None, params: float | None, *, in_channels: int,
                   resolution: int, num_classes: int,
                   families: Iterable[str] = ("resnet", "mbv2"),
                   resnet_depths: Iterable[int] = RESNET_DEPTHS) -> list[Baseline]:
    """The largest member (most MACs) of each hand-designed family that fits both budgets.

    Args:
        macs, params: the budgets (whole network, classifier included; None = unbounded).
        in_channels, resolution, num_classes: the data's input and classes.
        families: which of :data:`BASELINE_FAMILIES`, in order.
        resnet_depths: the blocks per stage ``n`` the ResNet family is searched over.

    Returns: one :class:`Baseline` per family with a member within the budgets (a family whose
        smallest member is over them is left out).
    Raises: KeyError for an unknown family.
    """
    out = []
    for fam in families:
        extra = {"depths": tuple(resnet_depths)} if fam == "resnet" else {}
        spec = BASELINE_FAMILIES[fam](macs, params, in_channels=in_channels,
                                      resolution=resolution, num_classes=num_classes, **extra)
        if spec is not None:
            out.append(Baseline(fam, spec))
    return out


def hand_baseline(target_macs: float, *, in_channels: int, resolution: int, num_classes: int,
                  blocks_per_stage: int = 2, multiple: int = 2,
                  target_params: float | None = None) -> ResNetSpec:
    """The widest CIFAR-style ResNet-(6n+2) of ``n = blocks_per_stage`` (base width a multiple
    of ``multiple``) whose MACs (and params, when ``target_params`` is given) do not exceed the
    targets.

    Raises: InfeasibleBudget when even the narrowest one is over a target.
    """
    def spec(w: int) -> ResNetSpec:
        return cifar_resnet(w, blocks_per_stage, in_channels=in_channels, resolution=resolution,
                            num_classes=num_classes)

    found = _widest(spec, target_macs, target_params, multiple)
    if found is None:
        narrow = spec(multiple)
        over_macs = narrow.macs() > target_macs
        raise InfeasibleBudget(
            f"the narrowest baseline ResNet needs {narrow.macs():,} MACs and "
            f"{narrow.params():,} params, over the target "
            f"{target_macs if over_macs else target_params:,.0f}",
            budget="macs" if over_macs else "params",
            limit=target_macs if over_macs else target_params,
            needed=narrow.macs() if over_macs else narrow.params())
    return found  # type: ignore[return-value]
