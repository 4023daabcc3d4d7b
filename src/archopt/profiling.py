"""Measure built modules: torch's own MAC count, a per-layer table, CPU latency.

These are the independent counters the analytic cost models are checked against, and the
latency figures reports show.
"""

from __future__ import annotations

import statistics
import time
from typing import Any, NamedTuple

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

__all__ = ["ModuleRow", "count_macs", "count_params", "measure_latency", "module_table"]


def count_params(module: nn.Module, *, trainable_only: bool = False) -> int:
    """``sum(p.numel())`` over the module's parameters."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)


@torch.no_grad()
def count_macs(module: nn.Module, input_shape: tuple[int, ...], *,
               device: str | torch.device = "cpu") -> int:
    """MACs of one forward pass on one example, by ``torch.utils.flop_counter.FlopCounterMode``
    (FLOPs / 2; convolutions and matrix products)."""
    was_training = module.training
    module.eval()
    x = torch.zeros((1, *input_shape), device=device)
    with FlopCounterMode(display=False) as fc:
        module(x)
    module.train(was_training)
    return fc.get_total_flops() // 2


class ModuleRow(NamedTuple):
    """One leaf module of a built network."""

    name: str
    type: str
    output_shape: tuple[int, ...]
    params: int
    macs: int


@torch.no_grad()
def module_table(module: nn.Module, input_shape: tuple[int, ...]) -> list[ModuleRow]:
    """Leaf modules in execution order with output shape (no batch dim), params and MACs.

    Shapes come from forward hooks; MACs from ``FlopCounterMode``'s per-module breakdown.
    """
    was_training = module.training
    module.eval()
    shapes: dict[str, tuple[int, ...]] = {}
    order: list[str] = []
    names = {m: n for n, m in module.named_modules()}
    hooks = []

    def hook(mod: nn.Module, _inp: Any, out: Any) -> None:
        n = names[mod]
        if n not in shapes:
            order.append(n)
        if isinstance(out, torch.Tensor):
            shapes[n] = tuple(out.shape[1:])

    for m in module.modules():
        if not list(m.children()):
            hooks.append(m.register_forward_hook(hook))
    try:
        with FlopCounterMode(display=False) as fc:
            module(torch.zeros((1, *input_shape)))
    finally:
        for h in hooks:
            h.remove()
        module.train(was_training)
    flops = fc.get_flop_counts()
    root = type(module).__name__
    rows = []
    for n in order:
        m = module.get_submodule(n)
        key = f"{root}.{n}" if n else root
        macs = sum(flops.get(key, {}).values()) // 2
        rows.append(ModuleRow(n, type(m).__name__, shapes.get(n, ()),
                              sum(p.numel() for p in m.parameters(recurse=False)), macs))
    return rows


@torch.no_grad()
def measure_latency(module: nn.Module, input_shape: tuple[int, ...], *, batch_size: int = 1,
                    repeats: int = 30, warmup: int = 5, device: str | torch.device = "cpu",
                    threads: int | None = None) -> float:
    """Median wall time of one forward pass, in milliseconds per example.

    Args:
        module: the network (put in eval mode for the measurement, restored after).
        input_shape: one example's shape (no batch dim).
        batch_size: examples per forward pass; the result is divided by it.
        repeats, warmup: timed and untimed passes.
        device: where to run (CUDA is synchronised around each pass).
        threads: torch intra-op threads during the measurement (default: unchanged).
    """
    dev = torch.device(device)
    was_training = module.training
    module.eval()
    old_threads = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    x = torch.randn((batch_size, *input_shape), device=dev)
    times = []
    try:
        for i in range(warmup + repeats):
            if dev.type == "cuda":
                torch.cuda.synchronize(dev)
            t0 = time.perf_counter()
            module(x)
            if dev.type == "cuda":
                torch.cuda.synchronize(dev)
            if i >= warmup:
                times.append(time.perf_counter() - t0)
    finally:
        torch.set_num_threads(old_threads)
        module.train(was_training)
    return statistics.median(times) * 1000.0 / batch_size
