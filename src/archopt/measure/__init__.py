"""Measure and convert a built ``nn.Module``: torch's own counters (parameters, MACs, a
per-layer table), CPU latency (``torch.utils.benchmark``, onnxruntime) and ONNX bytes.

These are the independent counters the analytic cost models of :mod:`archopt.spaces` are
checked against; nothing here knows a spec. ``profiling`` holds the counters and latency,
``onnx`` the export and onnxruntime sessions (the optional ``onnx`` extra).
"""

from archopt.measure.profiling import (
    THROUGHPUT_BATCH,
    ModuleRow,
    benchmark_latency,
    count_macs,
    count_params,
    latency_columns,
    module_table,
)

__all__ = ["THROUGHPUT_BATCH", "ModuleRow", "benchmark_latency", "count_macs", "count_params",
           "latency_columns", "module_table"]
