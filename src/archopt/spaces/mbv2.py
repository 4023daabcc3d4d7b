"""``mbv2``: DeepMAD's MobileNet-V2-like space (TinyNAS ``SuperResK1DWSEK1``).

Inner block: 1x1 expand (c_in -> btn) -> k x k depthwise (btn, stride) -> squeeze-excite ->
1x1 project (btn -> out); BN after every conv, SiLU after the first two and after the block.
Residual: identity (with a 2x2 average pool when strided) when ``c_in == out``, none otherwise
(TinyNAS). The network ends with a 1x1 conv to ``head_conv`` channels (e.g. 1792) before global
pooling and the classifier.

Two fields express the hand-designed MobileNetV2 (Sandler et al., section 4) in the same spec:
``act="relu6"`` (ReLU6 instead of SiLU) and ``strided_residual=False`` (no residual on a strided
block even when ``c_in == out``; MobileNetV2 adds one only at stride 1). Neither changes the
cost model.

The squeeze-excite layer has ``max(1, round(btn * se_ratio) // 8) * 8`` hidden channels (TinyNAS's
rounding) and, unlike TinyNAS, biases instead of BatchNorm on its 1x1 maps (the usual SE form;
it trains with any batch size). It adds MACs and params, never entropy or depth.

Source: DeepMAD (Shen et al., CVPR 2023); Sandler et al., "MobileNetV2", CVPR 2018;
Hu et al., "Squeeze-and-Excitation Networks", CVPR 2018.
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
    SqueezeExcite,
    StemConv,
    conv_cost,
    head_cost,
    init_weights,
    inner_blocks,
    stage_numbers,
    stem_cost,
)

__all__ = ["MBV2Block", "MBV2Spec", "se_channels"]


def se_channels(btn: int, ratio: float) -> int:
    """Hidden width of the SE layer: a multiple of 8, at least 8 (TinyNAS ``SE``)."""
    return max(1, round(btn * ratio) // 8) * 8


class MBV2Block(BlockGroup):
    """``L`` inverted-bottleneck blocks: ``out`` channels, expansion width ``btn``, kernel ``k``."""



class MBV2Spec(ConvSpec):
    """Stem + inverted-bottleneck superblocks + final 1x1 conv + pool (+ classifier)."""

    space = "mbv2"
    blocks: list[MBV2Block] = Field(min_length=1)
    head_conv: int | None = Field(None, ge=1)
    se: bool = True
    se_ratio: float = Field(0.25, gt=0, le=1)
    act: Literal["silu", "relu6"] = "silu"
    strided_residual: bool = True

    def cost_table(self, resolution: int | None = None) -> list[LayerCost]:
        """Every conv / linear layer at input side ``resolution``."""
        r = self._res(resolution)
        stages = stage_numbers([self.stem.stride] + [b.stride for b in self.blocks])
        st = self.stem
        row, r = stem_cost(self.in_channels, st, r, stage=stages[0], bn=st.out)
        rows = [row]
        for blk, stage, _j, stride, c_in, p in inner_blocks(st.out, self.blocks, stages):
            rows.append(conv_cost(p + "expand.conv", c_in, blk.btn, 1, 1, r, stage=stage,
                                  main=True, bn=blk.btn))
            rows.append(conv_cost(p + "depthwise.conv", blk.btn, blk.btn, blk.k, stride, r,
                                  stage=stage, main=True, groups=blk.btn, bn=blk.btn,
                                  kind="dwconv"))
            r = rows[-1].out_res
            if self.se:
                h = se_channels(blk.btn, self.se_ratio)
                rows.append(conv_cost(p + "se.reduce", blk.btn, h, 1, 1, 1, stage=stage,
                                      main=False, bias=True, kind="se"))
                rows.append(conv_cost(p + "se.expand", h, blk.btn, 1, 1, 1, stage=stage,
                                      main=False, bias=True, kind="se"))
            rows.append(conv_cost(p + "project.conv", blk.btn, blk.out, 1, 1, r,
                                  stage=stage, main=True, bn=blk.out))
        c = self.blocks[-1].out
        if self.head_conv:
            rows.append(conv_cost("final.conv", c, self.head_conv, 1, 1, r, stage=stages[-1],
                                  main=True, bn=self.head_conv))
            c = self.head_conv
        return rows + head_cost(c, self.num_classes)

    def layers(self) -> int:
        """Main-path conv layers: stem 1, each block 3 (SE excluded), final 1x1 conv 1."""
        return 1 + 3 * sum(b.L for b in self.blocks) + (1 if self.head_conv else 0)

    def build(self) -> nn.Module:
        return MBV2Net(self)


class _InvertedBlock(nn.Module):
    def __init__(self, c_in: int, btn: int, out: int, k: int, stride: int, se: int | None,
                 act: str = "silu", strided_residual: bool = True) -> None:
        super().__init__()
        self.expand = ConvBN(c_in, btn, 1, act=act)
        self.depthwise = ConvBN(btn, btn, k, stride, groups=btn, act=act)
        self.se: nn.Module = SqueezeExcite(btn, se) if se else nn.Identity()
        self.project = ConvBN(btn, out, 1, act=None)
        self.residual = c_in == out and (stride == 1 or strided_residual)
        self.project.bn.zero_init = self.residual  # see init_weights
        self.pool: nn.Module = (nn.AvgPool2d(2, 2, ceil_mode=True, count_include_pad=False)
                                if stride != 1 else nn.Identity())
        self.act = nn.SiLU() if act == "silu" else nn.Identity()  # MobileNetV2: linear output

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.project(self.se(self.depthwise(self.expand(x))))
        if self.residual:
            y = y + self.pool(x)
        return self.act(y)


class MBV2Net(nn.Module):
    """The module an :class:`MBV2Spec` builds (``stem``, ``blocks``, ``final``, ``head``)."""

    def __init__(self, spec: MBV2Spec) -> None:
        super().__init__()
        st = spec.stem
        self.stem = StemConv(spec.in_channels, st.out, st.k, st.stride, pool=st.pool,
                             act=spec.act)
        c = st.out
        blocks = []
        for blk in spec.blocks:
            inner = []
            for j in range(blk.L):
                se = se_channels(blk.btn, spec.se_ratio) if spec.se else None
                inner.append(_InvertedBlock(c if j == 0 else blk.out, blk.btn, blk.out, blk.k,
                                            blk.stride if j == 0 else 1, se, spec.act,
                                            spec.strided_residual))
            blocks.append(nn.Sequential(*inner))
            c = blk.out
        self.blocks = nn.Sequential(*blocks)
        self.final: nn.Module = nn.Identity()
        if spec.head_conv:
            self.final = ConvBN(c, spec.head_conv, 1, act=spec.act)
            c = spec.head_conv
        self.head = Head(c, spec.num_classes)
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.final(self.blocks(self.stem(x))))
