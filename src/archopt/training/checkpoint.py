"""Checkpoints of trained models: the dataset facts a checkpoint keeps, and a model rebuilt
from one.

The ``.pt`` format itself (what a checkpoint holds, atomic save, ``weights_only`` load) is
:mod:`archopt.runs.checkpoint`, below every method; its names are re-exported here. Reading the
spec of a checkpoint is :func:`archopt.spaces.registry.spec_from_checkpoint`.
"""

from __future__ import annotations

import os
from typing import Any

import torch
from torch import nn

from archopt.errors import CheckpointError
from archopt.runs.checkpoint import (
    CHECKPOINT_FORMAT,
    CHECKPOINT_VERSION,
    load_checkpoint,
    save_checkpoint,
    unwrap,
)
from archopt.spaces.base import ArchSpec
from archopt.spaces.registry import spec_from_checkpoint, spec_from_dict

__all__ = [
    "CHECKPOINT_FORMAT",
    "CHECKPOINT_VERSION",
    "dataset_meta",
    "load_checkpoint",
    "load_model",
    "save_checkpoint",
    "spec_from_checkpoint",
    "unwrap",
]


def dataset_meta(data: Any) -> dict[str, Any]:
    """The facts about an :class:`~archopt.data.ImageDataset` a checkpoint keeps, so a loaded
    model can be evaluated exactly as it was trained: name, num_classes, class_names,
    input_shape, mean, std, train / test sizes."""
    return {"dataset": data.name, "num_classes": int(data.num_classes),
            "class_names": [str(c) for c in data.class_names],
            "input_shape": [int(s) for s in data.input_shape],
            "mean": [float(m) for m in data.mean], "std": [float(s) for s in data.std],
            "train_size": len(data.train_y), "test_size": len(data.test_y)}


def load_model(path: str | os.PathLike[str], device: str | torch.device = "cpu", *,
               module: nn.Module | None = None
               ) -> tuple[nn.Module, ArchSpec | None, dict[str, Any]]:
    """Rebuild the model of a checkpoint, in eval mode.

    Args:
        path: the checkpoint.
        device: where to put the model.
        module: a module to load the weights into (required for a checkpoint of a user's own
            module; with a spec'd checkpoint it replaces the module the spec would build).

    Returns: ``(model, spec or None, meta)``; meta holds the dataset name, ``num_classes``,
        ``input_shape``, ``mean`` and ``std`` (see :func:`dataset_meta`), plus ``config`` and
        the training ``epoch`` when present.
    Raises: CheckpointError (unreadable; no spec and no module; weights that do not fit).
    """
    ckpt = load_checkpoint(path)
    spec = spec_from_dict(ckpt["spec"]) if ckpt.get("spec") is not None else None
    if module is None:
        if spec is None:
            raise CheckpointError(f"{path} holds no architecture spec (saved from a user's own "
                                  "nn.Module); pass module=<an instance of that module>")
        module = spec.build()
    try:
        module.load_state_dict(ckpt["model"], strict=True)
    except RuntimeError as err:
        detail = " ".join(str(err).split())
        raise CheckpointError(f"{path}: weights do not fit the module: {detail[:500]}") from None
    meta = dict(ckpt.get("meta") or {})
    meta["config"] = ckpt.get("config")
    state = ckpt.get("state") or {}
    if "epoch" in state:
        meta["epoch"] = int(state["epoch"])
    module.to(device).eval()
    return module, spec, meta
