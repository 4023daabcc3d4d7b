"""ONNX export of a built ``nn.Module`` and onnxruntime sessions (the optional ``onnx`` extra).

``onnx_bytes(module, input_shape)`` exports with torch's ``torch.export``-based exporter
(``torch.onnx.export(..., dynamo=True)``, which needs ``onnxscript``): it is the exporter
torch 2.9+ uses by default and maintains; the older TorchScript exporter (``dynamo=False``) is
faster (milliseconds instead of seconds) but torch marks it deprecated and slated for removal,
so a package that allows ``torch<3`` does not build on it. The graph has one input ``input``
``(batch, *input_shape)`` float32 and one output ``output``; the batch axis is dynamic (named
``batch``) unless a fixed ``batch_size`` is asked for. The opset is named (default
:data:`DEFAULT_OPSET`) and stored, with anything in ``metadata``, as the model's
``metadata_props``.

Without the extra (``pip install 'archopt[onnx]'``) every entry point raises
:class:`MissingExtra` naming that command.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import logging
import warnings
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from archopt.errors import ArchoptError

__all__ = [
    "DEFAULT_OPSET",
    "EXTRA_COMMAND",
    "MIN_OPSET",
    "ExportError",
    "MissingExtra",
    "onnx_available",
    "onnx_bytes",
    "ort_run",
    "ort_session",
    "require_onnx",
]

#: The opset exported when none is asked for (the one torch's exporter emits natively), and
#: the lowest it writes: its conversion to older opsets fails on common graphs (ReduceMean,
#: Relu), so a lower request is refused rather than silently written as 18.
DEFAULT_OPSET = 18
MIN_OPSET = 18
#: How to install what export and onnxruntime latency need.
EXTRA_COMMAND = "pip install 'archopt[onnx]'"
_MODULES = ("onnx", "onnxruntime", "onnxscript")


class MissingExtra(ArchoptError):
    """An optional dependency (an extra) is not installed; the message names the pip command."""


class ExportError(ArchoptError):
    """torch could not export the module to ONNX (an operation or shape it cannot trace)."""


def onnx_available() -> bool:
    """Whether onnx, onnxruntime and onnxscript can be imported."""
    try:
        require_onnx()
    except MissingExtra:
        return False
    return True


def require_onnx(what: str = "ONNX export") -> None:
    """Import the extra's packages or raise :class:`MissingExtra` naming the pip command."""
    missing = []
    for name in _MODULES:
        try:
            importlib.import_module(name)
        except ImportError:
            missing.append(name)
    if missing:
        raise MissingExtra(f"{what} needs {', '.join(missing)} (the onnx extra): "
                           f"{EXTRA_COMMAND}")


@contextlib.contextmanager
def _quiet_exporter() -> Iterator[None]:
    """Silence the exporter's progress lines, its torchvision notices and deprecations."""
    loggers = [logging.getLogger(n) for n in ("torch.onnx", "torch.export", "onnxscript")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, lv in zip(loggers, levels, strict=True):
            lg.setLevel(lv)


def _first_line(err: BaseException) -> str:
    lines = [s.strip() for s in str(err).splitlines() if s.strip()]
    return f"{type(err).__name__}: {lines[0] if lines else ''}"[:300]


def onnx_bytes(module: nn.Module, input_shape: Sequence[int], *, opset: int = DEFAULT_OPSET,
               batch_size: int | None = None,
               metadata: Mapping[str, Any] | None = None) -> bytes:
    """The module as a serialised ONNX model (CPU, float32, eval mode).

    Args:
        module: the network; exported in eval mode (its mode is restored after).
        input_shape: one example's shape without the batch axis, e.g. ``(1, 8, 8)`` or ``(64,)``.
        opset: the ONNX opset version, at least :data:`MIN_OPSET` (checked in the file).
        batch_size: None (default) for a dynamic batch axis named ``batch``; an int fixes it.
        metadata: extra ``metadata_props`` (values that are not strings are stored as JSON);
            ``opset`` and ``batch`` are always stored.

    Returns: the ``ModelProto`` bytes (input ``input``, output ``output``).
    Raises: MissingExtra (no onnx extra); ExportError (torch cannot export the module, or an
        opset below :data:`MIN_OPSET`).

    Source: ``torch.onnx.export`` (torch >= 2.9, ``dynamo=True``), torch's "TorchDynamo-based
    ONNX Exporter" documentation; ONNX ``ModelProto.metadata_props``.
    """
    require_onnx()
    if opset < MIN_OPSET:
        raise ExportError(f"opset {opset} is below {MIN_OPSET}, the lowest torch's "
                          f"torch.export-based ONNX exporter writes; use --opset {MIN_OPSET} or "
                          "higher")
    if batch_size is not None and batch_size < 1:
        raise ExportError(f"batch size must be >= 1, got {batch_size}")
    example = 2 if batch_size is None else batch_size  # 1 would be specialised by torch.export
    x = torch.randn((example, *input_shape), generator=torch.Generator().manual_seed(0))
    was = module.training
    module.eval()
    dyn = None if batch_size is not None else ({0: torch.export.Dim("batch", min=1)},)
    try:
        with _quiet_exporter(), torch.no_grad():
            program = torch.onnx.export(module, (x,), None, dynamo=True, opset_version=opset,
                                        input_names=["input"], output_names=["output"],
                                        dynamic_shapes=dyn, verbose=False)
        proto = program.model_proto
    except Exception as err:  # torch raises many kinds; all mean "cannot export this"
        raise ExportError(f"torch could not export {type(module).__name__} to ONNX (opset "
                          f"{opset}): {_first_line(err)}") from None
    finally:
        module.train(was)
    wrote = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), None)
    if wrote != opset:
        raise ExportError(f"torch's exporter wrote opset {wrote}, not the requested {opset}")
    props = {"opset": opset, "batch": "dynamic" if batch_size is None else batch_size,
             "exporter": f"torch.onnx.export(dynamo=True), torch {torch.__version__}",
             **dict(metadata or {})}
    del proto.metadata_props[:]
    for k, v in props.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = str(k), v if isinstance(v, str) else json.dumps(v)
    return proto.SerializeToString()


def ort_session(model: bytes, *, threads: int = 1) -> Any:
    """An onnxruntime ``InferenceSession`` on the CPU with ``threads`` intra-op threads (one
    inter-op thread, sequential execution, all graph optimisations).

    Raises: MissingExtra.
    """
    require_onnx("onnxruntime")
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = int(threads)
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.log_severity_level = 3
    return ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])


def ort_run(session: Any, x: torch.Tensor | np.ndarray) -> np.ndarray:
    """The session's first output for input ``x`` (converted to float32)."""
    arr = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
    return session.run(None, {session.get_inputs()[0].name: arr.astype(np.float32)})[0]
