"""``densenet``: DenseNet / DenseNet-BC with per-stage growth rate, depth, kernel and bottleneck,
and optional connection masks.

Layout (Huang et al., "Densely Connected Convolutional Networks", CVPR 2017): stem conv
(``stem.out`` channels), then stages of dense layers separated by transitions
(BN-ReLU-1x1 conv to ``floor(compression * c)`` channels, 2x2 average pool), then BN-ReLU, global
pool and the classifier. A dense layer of stage i reads the concatenation of its sources and
computes BN-ReLU-1x1 conv (to ``bottleneck_width * growth``)-BN-ReLU-k x k conv (to ``growth``)
with a bottleneck (DenseNet-BC), or BN-ReLU-k x k conv without.

Connection masks (``connections``): for stage i, a list of ``L_i + 1`` consumers -- the layers
0..L_i-1, then the stage output (which feeds the transition or the classifier). Consumer ``l``
has ``l + 1`` booleans over its sources: source 0 is the stage input, source ``s >= 1`` the
output of layer ``s - 1``; the stage output has ``L_i + 1``. A spec with masks describes the
*physically smaller* network they select: a layer whose active sources are all dead has no input
and is dead; a layer no live consumer reads is dead; dead layers are not built and cost nothing
(:meth:`DenseNetSpec.live_connections`). In the built module a masked source is simply absent
from the concatenation, which equals masking it to zero after the consumer's BN-ReLU.

Transition widths (``transition_channels``, optional, one per transition): fixed output channels
of each transition instead of ``floor(compression * c)``. Connection selection sets them to the
supernet's widths, so removing a connection removes only the weights attached to it and the next
stage keeps its input width (Saito et al. 2019 prune connections inside blocks only).

Source: Huang et al. 2017; connection selection as in Saito/Shirakawa et al., ICANN 2019,
section 4.2; Dense Optimizer (Liu et al., arXiv 2410.07499) search space.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from pydantic import Field, model_validator
from torch import nn

from archopt.errors import InvalidSpec
from archopt.spaces.base import ConvSpec, LayerCost, OddKernel, _Model, conv_out
from archopt.spaces.layers import Head, StemConv, conv_cost, head_cost, init_weights, stem_cost

__all__ = ["DenseNetSpec", "DenseStage", "LiveStage"]


class DenseStage(_Model):
    """One dense stage: growth rate, number of layers, kernel, bottleneck (BC) and its width."""

    growth: int = Field(ge=1)
    layers: int = Field(ge=1)
    k: OddKernel = Field(3, ge=1)
    bottleneck: bool = True
    bottleneck_width: int = Field(4, ge=1)


class LiveStage(NamedTuple):
    """The live structure of one stage after applying its connection mask.

    Attributes:
        layer_sources: per layer, the live source indices it reads (None for a dead layer).
        output_sources: the live sources concatenated into the stage output.
        widths: channel width of every source (index 0 = stage input).
    """

    layer_sources: list[list[int] | None]
    output_sources: list[int]
    widths: list[int]

    @property
    def out_channels(self) -> int:
        return sum(self.widths[s] for s in self.output_sources)

    def in_channels(self, layer: int) -> int:
        src = self.layer_sources[layer]
        return 0 if src is None else sum(self.widths[s] for s in src)


class DenseNetSpec(ConvSpec):
    """A DenseNet(-BC): stem + dense stages + transitions + BN-ReLU-pool (+ classifier)."""

    space = "densenet"
    stages: list[DenseStage] = Field(min_length=1)
    compression: float = Field(0.5, gt=0, le=1)
    connections: list[list[list[bool]]] | None = None
    transition_channels: list[int] | None = None

    @model_validator(mode="after")
    def _check_masks(self) -> DenseNetSpec:
        if self.transition_channels is not None:
            if len(self.transition_channels) != len(self.stages) - 1:
                raise ValueError(f"transition_channels: expected {len(self.stages) - 1} widths "
                                 f"(one per transition), got {len(self.transition_channels)}")
            if any(w < 1 for w in self.transition_channels):
                raise ValueError(f"transition_channels must be >= 1, got "
                                 f"{self.transition_channels}")
        if self.connections is None:
            return self
        if len(self.connections) != len(self.stages):
            raise ValueError(f"connections: {len(self.connections)} stages given, "
                             f"spec has {len(self.stages)}")
        for i, (mask, st) in enumerate(zip(self.connections, self.stages, strict=True)):
            if len(mask) != st.layers + 1:
                raise ValueError(f"connections[{i}]: expected {st.layers + 1} consumers "
                                 f"({st.layers} layers + the stage output), got {len(mask)}")
            for l, row in enumerate(mask):
                if len(row) != l + 1:
                    raise ValueError(f"connections[{i}][{l}]: expected {l + 1} sources, "
                                     f"got {len(row)}")
        self.live_connections()  # raises when a stage output has no live source
        return self

    # -- structure ---------------------------------------------------------------------------
    def transition_width(self, c: int) -> int:
        """Channels after a transition: ``floor(compression * c)`` (at least 1)."""
        return max(1, math.floor(self.compression * c + 1e-9))

    def transition_out(self, i: int, c: int) -> int:
        """Output channels of transition ``i`` fed with ``c`` channels: ``transition_channels[i]``
        when given, else :meth:`transition_width`."""
        if self.transition_channels is not None and i < len(self.transition_channels):
            return self.transition_channels[i]
        return self.transition_width(c)

    def live_connections(self) -> list[LiveStage]:
        """Apply the connection masks: which layers live and which sources each reads.

        Raises: InvalidSpec when a stage output has no live source.
        """
        out: list[LiveStage] = []
        w0 = self.stem.out
        for i, st in enumerate(self.stages):
            L = st.layers
            mask = self.connections[i] if self.connections is not None else None

            def on(l: int, s: int, mask: list[list[bool]] | None = mask) -> bool:
                return True if mask is None else bool(mask[l][s])

            has_input = [True] + [False] * L
            for l in range(L):
                has_input[l + 1] = any(on(l, s) and has_input[s] for s in range(l + 1))
            out_src = [s for s in range(L + 1) if on(L, s) and has_input[s]]
            if not out_src:
                raise InvalidSpec(f"densenet stage {i}: no live source feeds the stage output")
            used = [False] * (L + 1)
            for s in out_src:
                used[s] = True
            layer_src: list[list[int] | None] = [None] * L
            for l in reversed(range(L)):
                if used[l + 1] and has_input[l + 1]:
                    layer_src[l] = [s for s in range(l + 1) if on(l, s) and has_input[s]]
                    for s in layer_src[l]:
                        used[s] = True
            widths = [w0] + [st.growth] * L
            live = LiveStage(layer_src, out_src, widths)
            out.append(live)
            w0 = self.transition_out(i, live.out_channels)
        return out

    # -- cost --------------------------------------------------------------------------------
    def cost_table(self, resolution: int | None = None) -> list[LayerCost]:
        """Every conv / linear layer (pre-activation BNs attached to the conv they feed)."""
        r = self._res(resolution)
        st0 = self.stem
        row, r = stem_cost(self.in_channels, st0, r, stage=1, bn=st0.out if st0.pool else 0)
        rows = [row]
        lives = self.live_connections()
        c = st0.out
        for i, (st, live) in enumerate(zip(self.stages, lives, strict=True)):
            stage = i + 1
            for l in range(st.layers):
                if live.layer_sources[l] is None:
                    continue
                c_in = live.in_channels(l)
                p = f"stages.{i}.layers.{l}."
                if st.bottleneck:
                    bw = st.bottleneck_width * st.growth
                    rows.append(conv_cost(p + "conv1", c_in, bw, 1, 1, r, stage=stage, main=True,
                                          bn=c_in))
                    rows.append(conv_cost(p + "conv2", bw, st.growth, st.k, 1, r, stage=stage,
                                          main=True, bn=bw))
                else:
                    rows.append(conv_cost(p + "conv2", c_in, st.growth, st.k, 1, r, stage=stage,
                                          main=True, bn=c_in))
            c = live.out_channels
            if i < len(self.stages) - 1:
                c_t = self.transition_out(i, c)
                rows.append(conv_cost(f"transitions.{i}.conv", c, c_t, 1, 1, r, stage=stage,
                                      main=True, bn=c))
                r = conv_out(r, 2, 2, 0)
                c = c_t
        rows.append(LayerCost("final_norm", "norm", c, c, 1, 1, 1, r, r, macs=0, params=2 * c,
                              stage=len(self.stages), main=False))
        return rows + head_cost(c, self.num_classes)

    def layers(self) -> int:
        """Main-path conv layers: stem, 1 or 2 per live dense layer, 1 per transition."""
        return sum(1 for row in self.cost_table(self._param_resolution()) if row.main)

    def _param_resolution(self) -> int:
        return self.resolution or 32

    def build(self) -> nn.Module:
        return DenseNet(self)


class _DenseLayer(nn.Module):
    def __init__(self, sources: list[int], c_in: int, st: DenseStage) -> None:
        super().__init__()
        self.sources = list(sources)
        self.norm1 = nn.BatchNorm2d(c_in)
        self.relu = nn.ReLU()
        if st.bottleneck:
            bw = st.bottleneck_width * st.growth
            self.conv1: nn.Module = nn.Conv2d(c_in, bw, 1, bias=False)
            self.norm2: nn.Module = nn.BatchNorm2d(bw)
            c_in = bw
        else:
            self.conv1 = nn.Identity()
            self.norm2 = nn.Identity()
        self.conv2 = nn.Conv2d(c_in, st.growth, st.k, padding=st.k // 2, bias=False)
        self.bottleneck = st.bottleneck

    def forward(self, feats: list[torch.Tensor | None]) -> torch.Tensor:
        x = torch.cat([feats[s] for s in self.sources], 1)  # type: ignore[misc]
        x = self.conv1(self.relu(self.norm1(x)))
        if self.bottleneck:
            x = self.relu(self.norm2(x))
        return self.conv2(x)


class _DenseStage(nn.Module):
    def __init__(self, st: DenseStage, live: LiveStage) -> None:
        super().__init__()
        self.num_layers = st.layers
        self.layers = nn.ModuleDict({
            str(l): _DenseLayer(src, live.in_channels(l), st)
            for l, src in enumerate(live.layer_sources) if src is not None
        })
        self.output_sources = list(live.output_sources)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats: list[torch.Tensor | None] = [x]
        for l in range(self.num_layers):
            key = str(l)
            if key in self.layers:
                feats.append(self.layers[key](feats))
            else:  # a dead layer: nobody reads its output
                feats.append(None)
        return torch.cat([feats[s] for s in self.output_sources], 1)  # type: ignore[misc]


class _Transition(nn.Module):
    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.norm = nn.BatchNorm2d(c_in)
        self.relu = nn.ReLU()
        self.conv = nn.Conv2d(c_in, c_out, 1, bias=False)
        self.pool = nn.AvgPool2d(2, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.conv(self.relu(self.norm(x))))


class DenseNet(nn.Module):
    """The module a :class:`DenseNetSpec` builds (``stem``, ``stages``, ``transitions``,
    ``final_norm``, ``head``)."""

    def __init__(self, spec: DenseNetSpec) -> None:
        super().__init__()
        st0 = spec.stem
        self.stem = StemConv(spec.in_channels, st0.out, st0.k, st0.stride, pool=st0.pool,
                             norm=st0.pool)
        lives = spec.live_connections()
        self.stages = nn.ModuleList()
        self.transitions = nn.ModuleList()
        c = st0.out
        for i, (st, live) in enumerate(zip(spec.stages, lives, strict=True)):
            self.stages.append(_DenseStage(st, live))
            c = live.out_channels
            if i < len(spec.stages) - 1:
                c_t = spec.transition_out(i, c)
                self.transitions.append(_Transition(c, c_t))
                c = c_t
        self.final_norm = nn.BatchNorm2d(c)
        self.relu = nn.ReLU()
        self.head = Head(c, spec.num_classes)
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for i, stage in enumerate(self.stages):
            x = stage(x)
            if i < len(self.transitions):
                x = self.transitions[i](x)
        return self.head(self.relu(self.final_norm(x)))
