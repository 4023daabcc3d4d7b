"""``mlp``: multilayer perceptrons (widths, activation, bias, optional unit masks).

The input is flattened, so an MLP reads images too (``in_features = C * H * W``). Hidden layer i
is ``activation(Linear(x))``; the output layer is linear with ``num_classes`` outputs (1 for a
regression target; 0 = no output layer, the last hidden layer is the output).

Unit masks (``unit_masks``, one list of booleans per hidden layer) select which units of a wider
*supernet* the network keeps: a spec with masks describes the physically smaller MLP (hidden
layer i has ``sum(unit_masks[i])`` units) and remembers which supernet units those are, so
weights can be sliced from the supernet. Cost and the built module both count the kept units.

Source: Saito/Shirakawa et al., ICANN 2019, section 4.1 (unit selection); DeepMAD section 6
(MLP entropy form).
"""

from __future__ import annotations

import itertools
from typing import Literal

import torch
from pydantic import Field, model_validator
from torch import nn

from archopt.spaces.base import ArchSpec, LayerCost
from archopt.spaces.layers import linear_cost

__all__ = ["MLPSpec"]

Activation = Literal["relu", "leaky_relu", "sigmoid", "tanh", "gelu", "silu", "linear"]


class MLPSpec(ArchSpec):
    """An MLP: ``in_features`` -> hidden ``widths`` -> ``num_classes`` outputs."""

    space = "mlp"
    in_features: int = Field(ge=1)
    widths: list[int] = Field(default_factory=list)
    activation: Activation = "relu"
    negative_slope: float = Field(0.01, ge=0)
    bias: bool = True
    unit_masks: list[list[bool]] | None = None

    @model_validator(mode="after")
    def _check(self) -> MLPSpec:
        if any(w < 1 for w in self.widths):
            raise ValueError(f"widths must be >= 1, got {self.widths}")
        if self.unit_masks is not None:
            if len(self.unit_masks) != len(self.widths):
                raise ValueError(f"unit_masks: {len(self.unit_masks)} layers given, "
                                 f"spec has {len(self.widths)} hidden layers")
            for i, (m, w) in enumerate(zip(self.unit_masks, self.widths, strict=True)):
                if len(m) != w:
                    raise ValueError(f"unit_masks[{i}]: expected {w} entries, got {len(m)}")
        return self

    def kept_widths(self) -> list[int]:
        """Hidden widths of the built network (after the unit masks)."""
        if self.unit_masks is None:
            return list(self.widths)
        return [sum(bool(b) for b in m) for m in self.unit_masks]

    def cost_table(self, resolution: int | None = None) -> list[LayerCost]:
        """Every linear layer (``resolution`` is ignored: the input is ``in_features``)."""
        rows = []
        f = self.in_features
        for i, w in enumerate(self.kept_widths()):
            rows.append(linear_cost(f"layers.{i}", f, w, stage=i + 1, main=True, bias=self.bias))
            f = w
        if self.num_classes > 0:
            rows.append(linear_cost(f"layers.{len(self.widths)}", f, self.num_classes, stage=0,
                                    main=False, bias=self.bias))
        return rows

    def macs(self, resolution: int | None = None) -> int:
        return sum(r.macs for r in self.cost_table())

    def params(self) -> int:
        return sum(r.params for r in self.cost_table())

    def layers(self) -> int:
        """Linear layers: hidden layers plus the output layer."""
        return len(self.widths) + (1 if self.num_classes > 0 else 0)

    def with_io(self, *, in_channels: int, resolution: int, num_classes: int) -> MLPSpec:
        return self.replace(in_features=in_channels * resolution * resolution,
                            num_classes=num_classes)

    def input_shape(self, resolution: int | None = None) -> tuple[int, ...]:
        return (self.in_features,)

    def build(self) -> nn.Module:
        return MLP(self)


def _activation(spec: MLPSpec) -> nn.Module:
    if spec.activation == "leaky_relu":
        return nn.LeakyReLU(spec.negative_slope)
    return {"relu": nn.ReLU, "sigmoid": nn.Sigmoid, "tanh": nn.Tanh, "gelu": nn.GELU,
            "silu": nn.SiLU, "linear": nn.Identity}[spec.activation]()


class MLP(nn.Module):
    """The module an :class:`MLPSpec` builds: ``layers`` (Linear) and ``act``."""

    def __init__(self, spec: MLPSpec) -> None:
        super().__init__()
        dims = [spec.in_features, *spec.kept_widths()]
        layers = [nn.Linear(a, b, bias=spec.bias) for a, b in itertools.pairwise(dims)]
        if spec.num_classes > 0:
            layers.append(nn.Linear(dims[-1], spec.num_classes, bias=spec.bias))
        self.layers = nn.ModuleList(layers)
        self.num_hidden = len(spec.widths)
        self.act = _activation(spec)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.flatten(1)
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < self.num_hidden:
                x = self.act(x)
        return x
