"""Measure built modules: torch's own MAC count, a per-layer table, CPU latency.

These are the independent counters the analytic cost models are checked against, and the
latency figures reports show. :func:`benchmark_latency` is what summaries record:
``torch.utils.benchmark`` (``Timer.blocked_autorange``) at batch 1 and a throughput batch
(:data:`THROUGHPUT_BATCH`) with a named number of threads, and onnxruntime beside it when the
``onnx`` extra is installed.
"""

from __future__ import annotations

import copy
from typing import Any, NamedTuple

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

__all__ = ["THROUGHPUT_BATCH", "ModuleRow", "benchmark_latency", "count_macs", "count_params",
           "latency_columns", "module_table"]

#: The throughput batch of :func:`benchmark_latency` (besides batch 1).
THROUGHPUT_BATCH = 64


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


def _rng() -> torch.Generator:
    """A private generator: timing never moves the global RNG (a run's later stages)."""
    return torch.Generator().manual_seed(0)


def _timed(stmt_fn: Any, threads: int, min_run_time: float) -> dict[str, float]:
    """``Timer.blocked_autorange`` of ``stmt_fn()``: median and IQR in ms per call, runs."""
    from torch.utils.benchmark import Timer

    stmt_fn()  # warm-up (allocations, lazy initialisation)
    m = Timer(stmt="f()", globals={"f": stmt_fn}, num_threads=threads).blocked_autorange(
        min_run_time=min_run_time)
    return {"median_ms": m.median * 1e3, "iqr_ms": m.iqr * 1e3,
            "runs": len(m.times) * m.number_per_run}


def _ort_latency(model: nn.Module, input_shape: tuple[int, ...], batch_sizes: tuple[int, ...],
                 threads: int, min_run_time: float, opset: int) -> dict[str, Any]:
    import onnxruntime as ort

    from archopt.measure import onnx as export

    sess = export.ort_session(export.onnx_bytes(model, input_shape, opset=opset),
                              threads=threads)
    name = sess.get_inputs()[0].name
    out: dict[str, Any] = {"onnxruntime_version": ort.__version__, "onnxruntime": {}}
    for b in batch_sizes:
        feed = {name: torch.randn((b, *input_shape), generator=_rng()).numpy()}
        t = _timed(lambda feed=feed: sess.run(None, feed), threads, min_run_time)
        out["onnxruntime"][str(b)] = {**t, "ms_per_example": t["median_ms"] / b}
    return out


@torch.no_grad()
def benchmark_latency(module: nn.Module, input_shape: tuple[int, ...], *,
                      batch_sizes: tuple[int, ...] = (1, THROUGHPUT_BATCH), threads: int = 1,
                      min_run_time: float = 0.2, onnxruntime: bool | None = None,
                      opset: int | None = None) -> dict[str, Any]:
    """CPU latency of one forward pass, by ``torch.utils.benchmark`` and onnxruntime.

    Each figure is ``Timer.blocked_autorange(min_run_time)``'s median over blocks of calls (after
    one untimed call) on a random normal batch ``(b, *input_shape)`` in eval mode, float32, on
    the CPU with ``threads`` intra-op threads for torch and the same count for onnxruntime
    (one inter-op thread). onnxruntime runs the model exported by
    :func:`archopt.measure.onnx.onnx_bytes` (dynamic batch).

    Args:
        module: the network (copied to the CPU; the caller's module is not changed).
        input_shape: one example's shape without the batch axis.
        batch_sizes: the batches timed (default: 1 and :data:`THROUGHPUT_BATCH`).
        threads: intra-op threads for both runtimes (named in the record).
        min_run_time: seconds of timed calls per figure, at least.
        onnxruntime: time onnxruntime too: None (default) when the onnx extra is installed;
            True without it raises :class:`~archopt.measure.onnx.MissingExtra`.
        opset: the exported opset (default :data:`archopt.measure.onnx.DEFAULT_OPSET`).

    Returns: ``{"tool", "device": "cpu", "threads", "batch_sizes", "torch": {str(b): {
        "median_ms", "iqr_ms", "runs", "ms_per_example"}}, "onnxruntime": {...} or absent,
        "onnxruntime_error": str (export or run failed; torch figures kept) or absent}``;
        milliseconds are per call (a whole batch) unless named per example.
    """
    from archopt.measure import onnx as export

    model = copy.deepcopy(module).cpu().float().eval()
    old = torch.get_num_threads()
    rec: dict[str, Any] = {"tool": "torch.utils.benchmark.Timer.blocked_autorange",
                           "device": "cpu", "threads": int(threads),
                           "batch_sizes": [int(b) for b in batch_sizes],
                           "min_run_time_s": min_run_time, "torch": {}}
    try:
        for b in batch_sizes:
            x = torch.randn((b, *input_shape), generator=_rng())
            t = _timed(lambda x=x: model(x), threads, min_run_time)
            rec["torch"][str(b)] = {**t, "ms_per_example": t["median_ms"] / b}
        if onnxruntime is None:
            onnxruntime = export.onnx_available()
        if onnxruntime:
            export.require_onnx("onnxruntime latency")
            try:
                rec.update(_ort_latency(model, input_shape, batch_sizes, threads, min_run_time,
                                        opset or export.DEFAULT_OPSET))
            except Exception as err:  # a model onnxruntime cannot run: torch's figures stand
                rec["onnxruntime_error"] = " ".join(str(err).split())[:300]
    finally:
        torch.set_num_threads(old)
    return rec


def latency_columns(rec: dict[str, Any] | None) -> dict[str, Any]:
    """The flat summary keys of a :func:`benchmark_latency` record (None: latency off).

    ``latency_ms`` (torch, batch 1, ms per example -- the key summaries always had),
    ``latency_ms_b{B}`` (torch, throughput batch B, ms per example), ``latency_ms_onnxruntime``
    and ``latency_ms_onnxruntime_b{B}`` (when onnxruntime was timed), ``latency_threads``,
    ``latency_device`` (a one-line description) and ``latency`` (the whole record).
    """
    if rec is None:
        return {"latency_ms": None, "latency_device": None}
    out: dict[str, Any] = {}
    for runtime, key in (("torch", "latency_ms"), ("onnxruntime", "latency_ms_onnxruntime")):
        for b, r in (rec.get(runtime) or {}).items():
            out[key if b == "1" else f"{key}_b{b}"] = r["ms_per_example"]
    ort = " and onnxruntime " + rec["onnxruntime_version"] if rec.get("onnxruntime") else ""
    out.update(latency_threads=rec["threads"], latency=rec,
               latency_device=(f"cpu, {rec['threads']} thread(s), batches "
                               f"{', '.join(map(str, rec['batch_sizes']))}, "
                               f"torch.utils.benchmark{ort}; ms per example"))
    return out
