"""``refine``: one entry point for every refine method, chosen by ``config.method``.

- ``"hbde"`` (default): histogram blocking + differential evolution, the paper
  (:func:`archopt.refine.loop.hbde`), with its variants (ours) as options.
- ``"logit-adjust"``, ``"bias"``: post-hoc per-class logit offsets chosen on the validation
  split (:func:`archopt.refine.posthoc.posthoc`).

Every method writes the same result folder (``config.json``, ``arch.json``, ``metrics.jsonl``,
``summary.json``, ``checkpoint.pt``, ``convergence.png``) and the same summary keys
(:data:`archopt.refine.scores.COMMON_KEYS`), and uses the validation split of
:mod:`archopt.refine.validation`.
"""

from __future__ import annotations

import os
from typing import Any

import torch
from torch import nn

from archopt.data.dataset import ImageDataset
from archopt.refine.config import RUN_METHOD, RefineConfig
from archopt.refine.loop import hbde
from archopt.refine.model_io import RefineResult, Source
from archopt.refine.posthoc import posthoc
from archopt.runtime.progress import Progress

__all__ = ["RUN_METHOD", "refine"]


def refine(model: nn.Module | str | os.PathLike[str] | Source, data: ImageDataset,
           config: RefineConfig | dict[str, Any] | None = None,
           out: str | os.PathLike[str] | None = None, *,
           validation: tuple[torch.Tensor, torch.Tensor] | None = None, resume: bool = False,
           progress: bool | Progress = True, module: nn.Module | None = None) -> RefineResult:
    """Refine a trained classifier for a metric (macro-F1 by default) with ``config.method``.

    Args:
        model: a user's ``nn.Module`` returning (B, K) logits for (B, C, H, W) images
            normalised with the dataset's mean / std, a checkpoint ``.pt`` (its own mean / std
            are used), or a result folder with ``checkpoint.pt``.
        data: the dataset (training split: HBDE's super-batches and the class prior; test
            split: reported only).
        config: a :class:`RefineConfig`, a dict of its fields, or None (HBDE, paper defaults).
        out: the result folder; None writes nothing.
        validation: ``(x, y)`` a validation split; None holds out ``config.val_fraction`` of
            the training split, seeded by ``config.val_seed``.
        resume: continue (HBDE) or redo (post-hoc methods) the run in ``out``.
        progress: show progress.
        module: an instance to load a checkpoint of a user's own module into.

    Returns: a :class:`~archopt.refine.model_io.RefineResult`.
    Raises: what :func:`archopt.refine.loop.hbde` / :func:`archopt.refine.posthoc.posthoc`
        raise.
    """
    cfg = config if isinstance(config, RefineConfig) else RefineConfig.from_any(config)
    if cfg.method == "hbde":
        return hbde(model, data, cfg, out, validation=validation, resume=resume,
                    progress=progress, module=module)
    return posthoc(model, data, cfg, out, validation=validation, resume=resume,
                   progress=bool(progress), module=module)
