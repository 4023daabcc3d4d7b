"""From a learned structure to a physically smaller network, and what it saves.

``compact(supernet, M)`` returns the pruned ``nn.Module`` and its spec (Linear rows / columns
and conv input channels sliced, dead units and connections removed); its outputs equal the
masked supernet's with structure ``M`` (:func:`max_output_difference` checks it).
``weight_usage(supernet, M)`` reports

- ``weight_usage_rate`` = trainable parameters of the compact network / those of the full
  network (every weight, bias and BatchNorm affine counted, from the spec's exact cost model);
- ``cost_usage_rate`` = ``sum_i c_i m_i / sum_i c_i`` over the canonical structure -- with
  ``c_i = 1`` per unit (the MLP task) this is the fraction of units kept, which is the figure
  Saito et al. report as "weight usage rate" in their Table 1 (e.g. 340 + 141 + 126 of 2352
  units = 25.8 % vs. their 26.1 %); with ``c_i`` = attached weights (DenseNet) it is the
  fraction of the selectable weights kept.

Source: Saito, Shirakawa et al., ICANN 2019, sections 4.1-4.2, Tables 1-2.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from archopt.measure import benchmark_latency, count_params, latency_columns
from archopt.spaces.base import ArchSpec
from archopt.structure.masking import Supernet

__all__ = ["Compacted", "compact", "max_output_difference", "weight_usage"]


@dataclass
class Compacted:
    """A compacted structure.

    Attributes:
        module: the physically smaller network (same device as the supernet).
        spec: its architecture spec (``unit_masks`` / ``connections`` set).
        mask: the canonical structure it was built from, ``(d,)`` bool.
        scale: the per-bit factors folded into its weights (None: plain 0/1 masks).
    """

    module: nn.Module
    spec: ArchSpec
    mask: np.ndarray
    scale: np.ndarray | None = None


def _canonical(supernet: Supernet, mask: Any) -> np.ndarray:
    return supernet.canonical(supernet._check_masks(mask))[0]


def compact(supernet: Supernet, mask: Any, scale: Any = None) -> Compacted:
    """Build the network structure ``mask`` (``(d,)``, canonicalised first) selects.

    ``scale`` (``(d,)`` positive, optional): kept bit ``i`` multiplies its units by
    ``scale_i``; the factors are folded into the weights that read those units, so the compact
    network equals the supernet under ``set_structure(mask, scale)``.

    Raises: InvalidSpec when the structure disconnects the network (a DenseNet stage with no
        live output); ArchoptError for a bad ``scale``; NotImplementedError for a supernet
        without a spec (e.g. a :class:`~archopt.structure.masking.HookedSupernet`).
    """
    m = _canonical(supernet, mask)
    s = None if scale is None else supernet.check_scale(scale)
    with warnings.catch_warnings():  # an empty layer warns "zero-element tensors"
        warnings.simplefilter("ignore", UserWarning)
        module, spec = supernet.compact(m) if s is None else supernet.compact(m, s)
    return Compacted(module, spec, m, s)


def weight_usage(supernet: Supernet, mask: Any) -> dict[str, Any]:
    """What structure ``mask`` keeps of the supernet.

    Returns: ``{"params_full", "params", "weight_usage_rate", "cost_usage_rate",
    "active_bits", "bits"}`` (see the module docstring).
    Raises: InvalidSpec when the structure cannot be compacted (see :func:`compact`).
    """
    m = _canonical(supernet, mask)
    full = supernet.spec.params()  # type: ignore[attr-defined]
    used = supernet.compact_spec(m).params()  # type: ignore[attr-defined]
    c = supernet.costs
    return {"params_full": int(full), "params": int(used),
            "weight_usage_rate": used / full,
            "cost_usage_rate": float(np.dot(c, m) / c.sum()) if c.sum() > 0 else 1.0,
            "active_bits": int(m.sum()), "bits": int(m.size)}


@torch.no_grad()
def max_output_difference(supernet: Supernet, compacted: Compacted, x: torch.Tensor) -> float:
    """``max |supernet_M(x) - compact(x)|`` in eval mode (the equality the compaction promises;
    float round-off only)."""
    was = supernet.training, compacted.module.training
    supernet.eval()
    compacted.module.eval()
    try:
        with supernet.structure(compacted.mask, compacted.scale):
            a = supernet(x)
        b = compacted.module(x)
    finally:
        supernet.train(was[0])
        compacted.module.train(was[1])
    return float((a - b).abs().max())


class _Fixed(nn.Module):
    """A supernet frozen at one structure (for latency measurement)."""

    def __init__(self, supernet: Supernet, mask: np.ndarray) -> None:
        super().__init__()
        self.supernet = supernet
        self.mask = mask

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with self.supernet.structure(self.mask):
            return self.supernet(x)


def latency_pair(supernet: Supernet, compacted: Compacted, input_shape: tuple[int, ...], *,
                 threads: int = 1, min_run_time: float = 0.2) -> dict[str, Any]:
    """CPU latency of the compact network and of the masked supernet, and their parameter
    counts from torch.

    Both are timed by :func:`archopt.measure.benchmark_latency` (``torch.utils.benchmark``,
    batch 1 and the throughput batch, ``threads`` threads); the compact network also by
    onnxruntime when the onnx extra is installed (the masked supernet is not exported).

    Returns: :func:`~archopt.measure.latency_columns` of the compact network (``latency_ms``,
    ``latency_ms_b64``, ``latency_ms_onnxruntime``, ..., ``latency``) plus
    ``latency_ms_supernet`` (batch 1), ``latency_ms_supernet_b64`` (ms per example),
    ``latency_supernet`` (its record), ``params_counted``, ``params_full_counted``.
    """
    cpu = torch.device("cpu")
    dev = next(supernet.parameters()).device
    supernet.to(cpu)
    compacted.module.to(cpu)
    try:
        full = benchmark_latency(_Fixed(supernet, compacted.mask), input_shape, threads=threads,
                                 min_run_time=min_run_time, onnxruntime=False)
        comp = benchmark_latency(compacted.module, input_shape, threads=threads,
                                 min_run_time=min_run_time)
    finally:
        supernet.to(dev)
        compacted.module.to(dev)
    sup = {("latency_ms_supernet" if b == "1" else f"latency_ms_supernet_b{b}"):
           r["ms_per_example"] for b, r in full["torch"].items()}
    return {**latency_columns(comp), **sup, "latency_supernet": full,
            "params_counted": count_params(compacted.module),
            "params_full_counted": count_params(supernet)}
