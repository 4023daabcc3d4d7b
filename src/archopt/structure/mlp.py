"""Unit selection in an MLP: one structure bit per hidden unit, masked after the activation.

Hidden unit ``j`` of layer ``i`` outputs ``m_ij * f(x_ij)`` (``f`` the activation); with
``m_ij = 0`` every weight into and out of the unit is unused, so the structure compacts to a
narrower MLP (:meth:`MaskedMLP.compact`). The paper's MLP is ``784-784-784-784-10``, ReLU,
``d = 2352`` bits, ``c_i = 1``.

Source: Saito, Shirakawa et al., ICANN 2019, section 4.1.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from archopt.errors import ArchoptError
from archopt.spaces.mlp import MLPSpec
from archopt.structure.masking import Supernet, apply_group_mask

__all__ = ["MaskedMLP", "he_init"]


def he_init(module: nn.Module) -> nn.Module:
    """He (Kaiming) normal initialisation of every Linear weight (fan-in, ReLU gain), zero
    biases (He et al. 2015; the paper's initialisation)."""
    for m in module.modules():
        if isinstance(m, nn.Linear):
            nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
    return module


class MaskedMLP(Supernet):
    """The MLP of ``spec`` (its full widths) with one bit per hidden unit.

    Args:
        spec: an :class:`~archopt.spaces.MLPSpec` (``unit_masks`` are ignored: the supernet has
            every unit). Parameter names equal ``spec.build()``'s (``layers.i``, ``act``).
        costs: ``"units"`` (``c_i = 1``, the paper) or ``"weights"`` (``c_i`` = the weights and
            bias attached to unit i: fan-in + 1 (bias) + fan-out).
        init: ``"he"`` (He normal, zero bias) or ``"default"`` (PyTorch's Linear init).

    Raises: ArchoptError for an MLP without hidden layers or an unknown option.
    """

    def __init__(self, spec: MLPSpec, *, costs: Literal["units", "weights"] = "units",
                 init: Literal["he", "default"] = "he") -> None:
        super().__init__()
        if not spec.widths:
            raise ArchoptError("unit selection needs an MLP with at least one hidden layer")
        if costs not in ("units", "weights"):
            raise ArchoptError(f"costs must be 'units' or 'weights', got {costs!r}")
        self.spec: MLPSpec = spec.replace(unit_masks=None)  # type: ignore[assignment]
        base = self.spec.build()
        self.layers = base.layers
        self.act = base.act
        self.num_hidden = len(self.spec.widths)
        dims = [self.spec.in_features, *self.spec.widths,
                self.spec.num_classes if self.spec.num_classes > 0 else 0]
        for i, w in enumerate(self.spec.widths):
            if costs == "units":
                c = np.ones(w)
            else:
                c = np.full(w, dims[i] + dims[i + 2] + (1 if self.spec.bias else 0), float)
            self._add_site(f"layers.{i}", w, c)
        if init == "he":
            he_init(self)
        elif init != "default":
            raise ArchoptError(f"init must be 'he' or 'default', got {init!r}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, ...)`` inputs (flattened) -> ``(lambda * N, outputs)``."""
        x = x.flatten(1)
        expanded = False
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < self.num_hidden:
                x = self.act(x)
                m = self.site_mask(self.sites[i])
                if m is not None:
                    x = apply_group_mask(x, m, expanded=expanded)
                    expanded = True
        return x

    def units_per_layer(self, mask: Any) -> list[int]:
        """Kept units of each hidden layer under structure ``mask`` (d,)."""
        m = self._check_masks(mask)[0]
        return [int(m[s.bits].sum()) for s in self.sites]

    def compact_spec(self, mask: Any) -> MLPSpec:
        """The spec of the narrower MLP ``mask`` selects (``unit_masks`` set)."""
        m = self._check_masks(mask)[0]
        return self.spec.replace(  # type: ignore[return-value]
            unit_masks=[[bool(b) for b in m[s.bits]] for s in self.sites])

    @torch.no_grad()
    def compact(self, mask: Any, scale: np.ndarray | None = None
                ) -> tuple[nn.Module, MLPSpec]:
        """The narrower MLP as ``(module, spec)``: Linear rows / columns of removed units
        sliced away; with ``scale`` (``(d,)``), the columns that read hidden unit ``j`` are
        multiplied by ``scale_j``. Its outputs equal this supernet's with structure ``mask``
        (and ``scale``); a layer with no unit left passes on nothing, so the next layer outputs
        its bias."""
        m = self._check_masks(mask)[0]
        spec = self.compact_spec(m)
        module = spec.build()
        dev = self.layers[0].weight.device
        prev = torch.arange(self.spec.in_features, device=dev)
        factor: torch.Tensor | None = None  # scale of the units the layer reads
        state: dict[str, torch.Tensor] = {}
        for i, layer in enumerate(self.layers):
            if i < self.num_hidden:
                keep = torch.as_tensor(np.flatnonzero(m[self.sites[i].bits]), device=dev)
            else:
                keep = torch.arange(layer.out_features, device=dev)
            w = layer.weight[keep][:, prev]
            state[f"layers.{i}.weight"] = (w * factor[None] if factor is not None else w).clone()
            if layer.bias is not None:
                state[f"layers.{i}.bias"] = layer.bias[keep].clone()
            prev = keep
            if scale is not None and i < self.num_hidden:
                factor = torch.as_tensor(scale[self.sites[i].bits], dtype=w.dtype,
                                         device=dev)[keep]
        module.load_state_dict(state)
        return module.to(dev), spec
