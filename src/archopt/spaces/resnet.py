"""``resnet``: DeepMAD's ResNet-like space (TinyNAS ``SuperResK1KXK1``) and the classic ResNets.

A network is a stem conv followed by *superblocks*; a superblock is ``L`` identical inner blocks,
the first of which carries the stride and the channel change. Inner blocks:

- ``bottleneck`` (default; DeepMAD): 1x1 conv (c_in -> btn) -> k x k conv (btn -> btn, stride)
  -> 1x1 conv (btn -> out), BN after each, ReLU after the first two and after the residual sum.
- ``basic`` (ResNet-18/34): k x k conv (c_in -> btn, stride) -> k x k conv (btn -> out).

Shortcut of an inner block: identity when shape is kept; otherwise a 1x1 conv + BN projection,
preceded by a 2x2 average pool when strided (``shortcut="avgpool"``, TinyNAS) or itself strided
(``shortcut="conv"``, torchvision's ResNet v1.5). TinyNAS always projects in the first inner block
of a superblock (``project_first=True``); torchvision only when the shape changes.

Source: DeepMAD (Shen et al., CVPR 2023) section 3 / TinyNAS ``SuperResK1KXK1``; He et al.,
"Deep Residual Learning for Image Recognition", CVPR 2016 (ResNet-18/34/50).
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field
from torch import nn

from archopt.spaces.base import BlockGroup, ConvSpec, LayerCost
from archopt.spaces.layers import (
    ConvBN,
    Head,
    StemConv,
    conv_cost,
    head_cost,
    init_weights,
    inner_blocks,
    stage_numbers,
    stem_cost,
)

__all__ = ["ResNetSpec", "SuperBlock"]


class SuperBlock(BlockGroup):
    """``L`` inner blocks: ``out`` channels, bottleneck ``btn``, kernel ``k``, first stride."""

    block: Literal["bottleneck", "basic"] = "bottleneck"


class ResNetSpec(ConvSpec):
    """A ResNet-like network: stem + superblocks + global pool (+ linear classifier).

    Fields: ``in_channels``, ``num_classes`` (0 = headless backbone), ``stem``, ``blocks``,
    ``shortcut`` and ``project_first`` (see module docstring), ``resolution``.
    """

    space = "resnet"
    blocks: list[SuperBlock] = Field(min_length=1)
    shortcut: Literal["avgpool", "conv"] = "avgpool"
    project_first: bool = True

    # -- geometry ----------------------------------------------------------------------------
    def _units(self) -> list[int]:
        return stage_numbers([self.stem.stride] + [b.stride for b in self.blocks])

    def _needs_projection(self, j: int, c_in: int, out: int, stride: int) -> bool:
        return (j == 0 and self.project_first) or c_in != out or stride != 1

    def cost_table(self, resolution: int | None = None) -> list[LayerCost]:
        """Every conv / linear layer at input side ``resolution``. Source: see module docstring."""
        r = self._res(resolution)
        stages = self._units()
        rows: list[LayerCost] = []
        st = self.stem
        row, r = stem_cost(self.in_channels, st, r, stage=stages[0], bn=st.out)
        rows.append(row)
        for blk, stage, j, stride, c_in, p in inner_blocks(st.out, self.blocks, stages):
            if blk.block == "bottleneck":
                rows.append(conv_cost(p + "conv1.conv", c_in, blk.btn, 1, 1, r, stage=stage,
                                      main=True, bn=blk.btn))
                rows.append(conv_cost(p + "conv2.conv", blk.btn, blk.btn, blk.k, stride, r,
                                      stage=stage, main=True, bn=blk.btn))
                r_out = rows[-1].out_res
                rows.append(conv_cost(p + "conv3.conv", blk.btn, blk.out, 1, 1, r_out,
                                      stage=stage, main=True, bn=blk.out))
            else:
                rows.append(conv_cost(p + "conv1.conv", c_in, blk.btn, blk.k, stride, r,
                                      stage=stage, main=True, bn=blk.btn))
                r_out = rows[-1].out_res
                rows.append(conv_cost(p + "conv2.conv", blk.btn, blk.out, blk.k, 1, r_out,
                                      stage=stage, main=True, bn=blk.out))
            if self._needs_projection(j, c_in, blk.out, stride):
                if self.shortcut == "conv":
                    rows.append(conv_cost(p + "shortcut.proj.conv", c_in, blk.out, 1, stride,
                                          r, stage=stage, main=False, bn=blk.out, padding=0))
                else:
                    rows.append(conv_cost(p + "shortcut.proj.conv", c_in, blk.out, 1, 1,
                                          r_out, stage=stage, main=False, bn=blk.out))
            r = r_out
        return rows + head_cost(self.blocks[-1].out, self.num_classes)

    def layers(self) -> int:
        """Main-path conv layers: stem 1, bottleneck blocks 3 each, basic blocks 2 each."""
        return 1 + sum(b.L * (3 if b.block == "bottleneck" else 2) for b in self.blocks)

    def build(self) -> nn.Module:
        return ResNet(self)


class _Shortcut(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int, mode: str, project: bool) -> None:
        super().__init__()
        self.pool: nn.Module = nn.Identity()
        if stride != 1 and mode == "avgpool":
            self.pool = nn.AvgPool2d(2, 2, ceil_mode=True, count_include_pad=False)
        self.proj: nn.Module = nn.Identity()
        if project:
            proj_stride = stride if mode == "conv" else 1
            self.proj = ConvBN(c_in, c_out, 1, proj_stride, act=None)
            self.proj.conv.padding = (0, 0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(self.pool(x))


class _Block(nn.Module):
    def __init__(self, kind: str, c_in: int, btn: int, out: int, k: int, stride: int,
                 shortcut: _Shortcut) -> None:
        super().__init__()
        if kind == "bottleneck":
            self.conv1 = ConvBN(c_in, btn, 1)
            self.conv2 = ConvBN(btn, btn, k, stride)
            self.conv3: nn.Module = ConvBN(btn, out, 1, act=None)
        else:
            self.conv1 = ConvBN(c_in, btn, k, stride)
            self.conv2 = ConvBN(btn, out, k, act=None)
            self.conv3 = nn.Identity()
        last = self.conv3 if kind == "bottleneck" else self.conv2
        last.bn.zero_init = True  # see init_weights
        self.shortcut = shortcut
        self.act = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.conv3(self.conv2(self.conv1(x))) + self.shortcut(x))


class ResNet(nn.Module):
    """The module a :class:`ResNetSpec` builds (``stem``, ``blocks``, ``head``)."""

    def __init__(self, spec: ResNetSpec) -> None:
        super().__init__()
        st = spec.stem
        self.stem = StemConv(spec.in_channels, st.out, st.k, st.stride, pool=st.pool)
        blocks = []
        c = st.out
        for blk in spec.blocks:
            inner = []
            for j in range(blk.L):
                stride = blk.stride if j == 0 else 1
                c_in = c if j == 0 else blk.out
                sc = _Shortcut(c_in, blk.out, stride, spec.shortcut,
                               spec._needs_projection(j, c_in, blk.out, stride))
                inner.append(_Block(blk.block, c_in, blk.btn, blk.out, blk.k, stride, sc))
            blocks.append(nn.Sequential(*inner))
            c = blk.out
        self.blocks = nn.Sequential(*blocks)
        self.head = Head(c, spec.num_classes)
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.blocks(self.stem(x)))
