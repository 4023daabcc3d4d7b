"""Module pieces shared by the convolutional families, and the cost rows that match them."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import torch
from torch import nn

from archopt.spaces.base import LayerCost, Stem, conv_out

__all__ = ["ConvBN", "Head", "SqueezeExcite", "StemConv", "conv_cost", "head_cost", "init_weights",
           "linear_cost", "stage_numbers"]

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "relu6": nn.ReLU6,
    "silu": nn.SiLU,
    "gelu": nn.GELU,
    "sigmoid": nn.Sigmoid,
    "tanh": nn.Tanh,
    "leaky_relu": nn.LeakyReLU,
    "linear": nn.Identity,
}


def stage_numbers(strides: Sequence[int]) -> list[int]:
    """1-based stage of each unit (stem first, then superblocks).

    A stage ends at every unit followed by a stride-2 unit, and at the last unit
    (DeepMAD / TinyNAS ``get_stage_info``); the stem is unit 0.
    """
    stages, s = [], 1
    for u, st in enumerate(strides):
        if u > 0 and st == 2:
            s += 1
        stages.append(s)
    return stages


def conv_cost(name: str, c_in: int, c_out: int, k: int, stride: int, in_res: int, *,
              stage: int, main: bool, groups: int = 1, bn: int = 0, bias: bool = False,
              kind: str = "conv", padding: int | None = None) -> LayerCost:
    """Cost row of a ``k`` x ``k`` convolution; ``bn`` = channels of the attached BatchNorm."""
    out_res = conv_out(in_res, k, stride, padding)
    weights = c_in // groups * c_out * k * k
    return LayerCost(name, kind, c_in, c_out, k, stride, groups, in_res, out_res,
                     macs=weights * out_res * out_res,
                     params=weights + (c_out if bias else 0) + 2 * bn,
                     stage=stage, main=main)



def inner_blocks(c: int, groups: Sequence[Any], stages: Sequence[int]
                 ) -> Iterator[tuple[Any, int, int, int, int, str]]:
    """Every inner block of a stack of block groups (resnet, mbv2), in order: ``(group, stage,
    j, stride, c_in, prefix)`` -- its group, stage number (``stages[b + 1]``), index in the group,
    stride (the group's for the first block, 1 after), input channels (``c`` into the stack)
    and module prefix ``blocks.{b}.{j}.``."""
    for b, blk in enumerate(groups):
        for j in range(blk.L):
            yield (blk, stages[b + 1], j, blk.stride if j == 0 else 1, c if j == 0 else blk.out,
                   f"blocks.{b}.{j}.")
        c = blk.out



def stem_cost(in_channels: int, stem: Stem, in_res: int, *, stage: int, bn: int
              ) -> tuple[LayerCost, int]:
    """Cost row of a CNN space's stem convolution, and the side after the stem (its 3x3
    stride-2 max-pool included when ``stem.pool``)."""
    row = conv_cost("stem.conv", in_channels, stem.out, stem.k, stem.stride, in_res,
                    stage=stage, main=True, bn=bn)
    r = row.out_res
    return row, (conv_out(r, 3, 2, 1) if stem.pool else r)

def linear_cost(name: str, f_in: int, f_out: int, *, stage: int, main: bool, bias: bool = True,
                bn: int = 0) -> LayerCost:
    """Cost row of a linear layer (one example)."""
    return LayerCost(name, "linear", f_in, f_out, 1, 1, 1, 1, 1, macs=f_in * f_out,
                     params=f_in * f_out + (f_out if bias else 0) + 2 * bn, stage=stage, main=main)


class ConvBN(nn.Module):
    """Conv (no bias) -> BatchNorm -> optional activation."""

    def __init__(self, c_in: int, c_out: int, k: int, stride: int = 1, groups: int = 1,
                 act: str | None = "relu") -> None:
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, k, stride, padding=k // 2, groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(c_out)
        self.act = ACTIVATIONS[act]() if act else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.conv(x)))


class StemConv(nn.Module):
    """The stem: conv -> (BN -> activation) -> optional 3x3 stride-2 max-pool.

    ``norm=False`` leaves the conv bare (pre-activation DenseNets normalise inside each layer).
    """

    def __init__(self, c_in: int, c_out: int, k: int, stride: int, *, pool: bool = False,
                 norm: bool = True, act: str = "relu") -> None:
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, k, stride, padding=k // 2, bias=False)
        self.bn: nn.Module = nn.BatchNorm2d(c_out) if norm else nn.Identity()
        self.act = ACTIVATIONS[act]() if norm else nn.Identity()
        self.pool: nn.Module = nn.MaxPool2d(3, 2, 1) if pool else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.act(self.bn(self.conv(x))))


class SqueezeExcite(nn.Module):
    """Squeeze-and-excitation: global pool -> 1x1 conv (C -> r) -> SiLU -> 1x1 conv -> sigmoid,
    scaling the input channels. Convolutions carry biases, no BN (Hu et al. 2018)."""

    def __init__(self, channels: int, reduced: int) -> None:
        super().__init__()
        self.reduce = nn.Conv2d(channels, reduced, 1, bias=True)
        self.act = nn.SiLU()
        self.expand = nn.Conv2d(reduced, channels, 1, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x.mean(dim=(2, 3), keepdim=True)
        return x * torch.sigmoid(self.expand(self.act(self.reduce(s))))


def init_weights(module: nn.Module) -> nn.Module:
    """He (Kaiming) normal init for convs (fan-out, as torchvision); BN to (1, 0), except the
    last BN of a residual branch (marked ``zero_init = True``), whose scale starts at 0 so that
    every residual block starts as its shortcut ("zero-gamma", Goyal et al. 2017, sec. 5.1;
    torchvision's ``zero_init_residual``). Deep, narrow DeepMAD designs do not train at the
    usual SGD learning rates without it."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.BatchNorm1d)):
            (nn.init.zeros_ if getattr(m, "zero_init", False) else nn.init.ones_)(m.weight)
            nn.init.zeros_(m.bias)
    return module


class Head(nn.Module):
    """Global average pool -> flatten -> linear classifier (identity when headless)."""

    def __init__(self, features: int, num_classes: int) -> None:
        super().__init__()
        self.fc = nn.Linear(features, num_classes) if num_classes > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(x.mean(dim=(2, 3)), 1))


def head_cost(features: int, num_classes: int) -> list[LayerCost]:
    """Cost rows of a :class:`Head`: its classifier ``head.fc`` (``features`` pooled channels ->
    ``num_classes``, stage 0, off the main path), none for a headless backbone (0 classes)."""
    if num_classes <= 0:
        return []
    return [linear_cost("head.fc", features, num_classes, stage=0, main=False)]
