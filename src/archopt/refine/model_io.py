"""What every refine method reads and writes: the source model, the result, the checkpoint.

- :class:`Source` / :func:`load_source`: the model to refine (a module, a checkpoint or a
  result folder) with its spec and meta.
- :func:`check_data`: the model fits the dataset (classes, input shape, (B, K) logits).
- :func:`working_copy`: what a method works on: the model's copy on the device, checked against
  the dataset, and the training part and validation split.
- :class:`RefineResult`: what ``refine`` returns, for every method.
- :func:`write_checkpoint`: the refined model as a plain archopt checkpoint (loadable with
  :func:`archopt.training.load_model`), with what was done recorded in its meta.
"""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import torch
from torch import nn

from archopt.data.dataset import ImageDataset, normalize
from archopt.errors import ArchoptError, CheckpointError
from archopt.refine.validation import ValidationSplit, resolve_validation
from archopt.spaces.base import ArchSpec

if TYPE_CHECKING:
    from archopt.refine.blocking import Blocking
    from archopt.refine.config import RefineConfig
    from archopt.runs import ResultDir

__all__ = ["CHECKPOINT", "RefineResult", "Source", "WorkingCopy", "check_data", "load_source",
           "refuse_existing", "working_copy", "write_checkpoint"]

CHECKPOINT = "checkpoint.pt"


@dataclass
class Source:
    """The model to refine and what is known about it.

    Attributes:
        module: the network (eval mode).
        spec: its architecture spec, or None for a user's own module.
        meta: checkpoint meta (dataset, num_classes, mean, std, ...) or {}.
        path: the checkpoint it came from, or None.
    """

    module: nn.Module
    spec: ArchSpec | None
    meta: dict[str, Any]
    path: Path | None = None


def load_source(ref: nn.Module | str | os.PathLike[str] | Source, *,
                module: nn.Module | None = None) -> Source:
    """A :class:`Source` from a module, a checkpoint ``.pt`` or a result folder holding
    ``checkpoint.pt`` (what ``archopt train`` / ``archopt run`` / ``archopt refine`` write).

    Args:
        ref: the model or where it is.
        module: for a checkpoint of a user's own module (no spec inside): an instance to load
            the weights into.

    Raises: CheckpointError (missing / unreadable checkpoint, weights that do not fit).
    """
    if isinstance(ref, Source):
        return ref
    if isinstance(ref, nn.Module):
        return Source(ref, None, {})
    from archopt.training.checkpoint import load_model

    path = Path(ref)
    if path.is_dir():
        if not (path / CHECKPOINT).is_file():
            raise CheckpointError(f"{path} is a folder without {CHECKPOINT}; pass the checkpoint "
                                  "file that `archopt train` or `archopt run` wrote")
        path = path / CHECKPOINT
    mod, spec, meta = load_model(path, "cpu", module=module)
    return Source(mod, spec, meta, path)


@dataclass
class RefineResult:
    """What :func:`archopt.refine.refine` returns.

    Attributes:
        model: the refined network (eval mode, on the run's device).
        summary: the figures of ``summary.json``.
        history: the rows of ``metrics.jsonl`` (HBDE: one per generation; logit adjustment:
            one per tau; bias tuning: one per optimiser iteration).
        blocking: the blocking searched over (HBDE), else None.
        best_blocks: (D',) the best block vector (HBDE), else None.
        spec: the architecture spec, or None.
        config: the resolved config.
        out: the result folder, or None.
    """

    model: nn.Module
    summary: dict[str, Any]
    history: list[dict[str, Any]]
    blocking: Blocking | None
    best_blocks: torch.Tensor | None
    spec: ArchSpec | None
    config: RefineConfig
    out: Path | None = None


def check_data(module: nn.Module, meta: dict[str, Any], data: ImageDataset,
               device: torch.device) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """The normalisation (mean, std) to use: the checkpoint's, else the dataset's.

    Raises: ArchoptError when the model's classes or input shape differ from the dataset's, or
        it does not return (B, K) logits.
    """
    k = meta.get("num_classes")
    if k is not None and int(k) != data.num_classes:
        raise ArchoptError(f"the model was trained for {k} classes, dataset {data.name} has "
                           f"{data.num_classes}")
    shape = meta.get("input_shape")
    if shape is not None and tuple(shape) != tuple(data.input_shape):
        raise ArchoptError(f"the model was trained on inputs {tuple(shape)}, dataset {data.name} "
                           f"has {tuple(data.input_shape)}")
    mean = tuple(meta.get("mean") or data.mean)
    std = tuple(meta.get("std") or data.std)
    with torch.no_grad():
        out = module.to(device).eval()(normalize(data.train_x[:2].to(device), mean, std))
    if out.dim() != 2 or out.shape[1] != data.num_classes:
        raise ArchoptError(f"the model returns shape {tuple(out.shape)} for 2 examples; refine "
                           f"needs (2, {data.num_classes}) logits for dataset {data.name}")
    return mean, std


class WorkingCopy(NamedTuple):
    """What :func:`working_copy` returns."""

    #: a deep copy of the source model, on the device, in eval mode
    module: nn.Module
    #: the per-channel normalisation of the inputs (:func:`check_data`)
    mean: tuple[float, ...]
    std: tuple[float, ...]
    #: the dataset to search on (without the held-out validation images, if any)
    train: ImageDataset
    #: the validation split the method scores candidates on
    val: ValidationSplit


def working_copy(src: Source, data: ImageDataset,
                 validation: tuple[torch.Tensor, torch.Tensor] | None, cfg: RefineConfig,
                 device: torch.device) -> WorkingCopy:
    """The source model copied to ``device`` and checked against ``data``, and the split into
    search data and validation (``validation`` given, or ``cfg.val_fraction`` of the training
    split held out with ``cfg.val_seed``; :func:`~archopt.refine.validation.resolve_validation`).

    Raises: ArchoptError for a model that does not fit the dataset (:func:`check_data`) or a
        validation split that cannot be made.
    """
    work = copy.deepcopy(src.module).to(device).eval()
    mean, std = check_data(work, src.meta, data, device)
    train, val = resolve_validation(data, validation, fraction=cfg.val_fraction,
                                    seed=cfg.val_seed)
    return WorkingCopy(work, mean, std, train, val)


def refuse_existing(rd: ResultDir, resume: bool, *markers: str) -> None:
    """Refuse a folder that already holds a refine run (a summary or one of ``markers``)
    unless ``resume``.

    Raises: ArchoptError.
    """
    from archopt.runs import ResultDir

    if not resume and any(rd.exists(m) for m in (ResultDir.SUMMARY, *markers)):
        raise ArchoptError(f"{rd.path} already holds a refine run; pass --resume to continue it "
                           "or choose another --out")


def write_checkpoint(rd: ResultDir, refined: nn.Module, src: Source, data: ImageDataset,
                     mean: tuple[float, ...], std: tuple[float, ...], cfg: RefineConfig,
                     summary: dict[str, Any], **record: Any) -> None:
    """``checkpoint.pt``: the refined model, its spec, the dataset meta and under
    ``meta["refined"]`` the method, metric, test metric after, source and ``record``."""
    from archopt.training.checkpoint import dataset_meta, save_checkpoint

    meta = {**dataset_meta(data), "mean": list(mean), "std": list(std),
            "refined": {"method": summary["method"], "metric": cfg.metric,
                        "metric_after": summary["metric_after"],
                        "source": str(src.path) if src.path else None, **record}}
    save_checkpoint(rd.file(CHECKPOINT), refined, spec=src.spec, meta=meta,
                    config={"refine": cfg.to_dict()})
