"""Checkpoints: one ``.pt`` format for trained, resumed and refined models.

A checkpoint is a dict of plain data that ``torch.load(..., weights_only=True)`` reads (tensors,
dicts, lists, tuples, str / int / float / bool / None -- nothing that runs code on load)::

    {
      "format": "archopt.checkpoint", "version": 1,
      "model": state_dict (CPU tensors),
      "spec": spec.to_dict() or None (None: a user's own nn.Module),
      "meta": {"dataset": ..., "num_classes": ..., "input_shape": [...], "mean": [...],
               "std": [...], "class_names": [...], ...},
      "config": the run's config dict or None,
      "optimizer": optimizer.state_dict() or None,
      "state": training state for --resume (epoch, step, RNG states, history) or None,
    }

``save_checkpoint`` writes atomically (temp file + rename): a reader, or a run killed mid-write,
never sees half a file. Other methods (refine, structure) write their models with the same
function, leaving ``optimizer`` and ``state`` out.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import nn

from archopt.errors import CheckpointError
from archopt.runs.folders import atomic_torch_save, to_jsonable, torch_load

__all__ = ["CHECKPOINT_FORMAT", "CHECKPOINT_VERSION", "SpecLike", "load_checkpoint",
           "save_checkpoint", "unwrap"]


class SpecLike(Protocol):
    """What a checkpoint needs of an architecture spec (:class:`~archopt.spaces.ArchSpec`): its
    plain-data form. The format knows no space; :mod:`archopt.spaces` reads the spec back."""

    def to_dict(self) -> dict[str, Any]: ...


CHECKPOINT_FORMAT = "archopt.checkpoint"
CHECKPOINT_VERSION = 1


def unwrap(model: nn.Module) -> nn.Module:
    """The module inside DistributedDataParallel / DataParallel / ``torch.compile`` wrappers."""
    from torch.nn.parallel import DataParallel, DistributedDataParallel

    while True:
        if isinstance(model, (DistributedDataParallel, DataParallel)):
            model = model.module
        elif type(model).__name__ == "OptimizedModule" and hasattr(model, "_orig_mod"):
            model = model._orig_mod
        else:
            return model


def _cpu(obj: Any) -> Any:
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu()
    if isinstance(obj, Mapping):
        return {k: _cpu(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_cpu(v) for v in obj)
    return obj


def save_checkpoint(path: str | os.PathLike[str], model: nn.Module, *,
                    spec: SpecLike | Mapping[str, Any] | None = None,
                    meta: Mapping[str, Any] | None = None,
                    config: Mapping[str, Any] | None = None,
                    optimizer: torch.optim.Optimizer | Mapping[str, Any] | None = None,
                    state: Mapping[str, Any] | None = None) -> Path:
    """Write a checkpoint atomically.

    Args:
        path: the ``.pt`` file (its folder is created).
        model: the network (wrappers such as DDP are unwrapped; tensors are copied to CPU).
        spec: its architecture spec (a spec or its dict); None for a user's own module.
        meta: facts needed to use the model, at least ``num_classes``, ``input_shape``, ``mean``
            and ``std`` for image models (see :func:`dataset_meta`); plain JSON-like values.
        config: the options that produced it (JSON-like dict).
        optimizer: an optimiser or its ``state_dict()`` (for resuming; None otherwise).
        state: training-loop state for resuming (epoch, step, RNG tensors, history).

    Returns: the path written.
    Raises: CheckpointError when an entry holds something ``weights_only`` loading would refuse.
    """
    if spec is not None and not isinstance(spec, Mapping):
        spec = spec.to_dict()
    if isinstance(optimizer, torch.optim.Optimizer):
        optimizer = optimizer.state_dict()
    payload = {
        "format": CHECKPOINT_FORMAT,
        "version": CHECKPOINT_VERSION,
        "model": _cpu(unwrap(model).state_dict()),
        "spec": to_jsonable(dict(spec)) if spec is not None else None,
        "meta": to_jsonable(dict(meta or {})),
        "config": to_jsonable(dict(config)) if config is not None else None,
        "optimizer": _cpu(dict(optimizer)) if optimizer is not None else None,
        "state": _cpu(dict(state)) if state is not None else None,
    }
    _check_plain(payload, "checkpoint")
    return atomic_torch_save(payload, path)


_PLAIN = (str, int, float, bool, type(None), torch.Tensor)


def _check_plain(obj: Any, where: str) -> None:
    if isinstance(obj, _PLAIN):
        return
    if isinstance(obj, dict):
        for k, v in obj.items():
            if not isinstance(k, (str, int)):
                raise CheckpointError(f"{where}: key {k!r} is not a str or int")
            _check_plain(v, f"{where}.{k}")
        return
    if isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            _check_plain(v, f"{where}[{i}]")
        return
    raise CheckpointError(f"{where} holds a {type(obj).__name__}; checkpoints hold only tensors, "
                          "dicts, lists and plain values (weights_only loading)")


def load_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a checkpoint with ``torch.load(weights_only=True)`` onto the CPU.

    Returns: the checkpoint dict (see the module docstring).
    Raises: CheckpointError when the file is missing, truncated, not a torch file, asks to run
        code (an unsafe pickle -- refused, never executed) or is not an archopt checkpoint.
    """
    p = Path(path)
    ckpt = torch_load(p)
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{p} is a torch file but not an archopt checkpoint (no "
                              f"'format': {CHECKPOINT_FORMAT!r} entry)")
    if ckpt.get("version", 0) > CHECKPOINT_VERSION:
        raise CheckpointError(f"{p} was written by a newer archopt (checkpoint version "
                              f"{ckpt['version']}, this one reads {CHECKPOINT_VERSION})")
    if not isinstance(ckpt.get("model"), dict):
        raise CheckpointError(f"{p} has no model state_dict")
    return ckpt
