"""The joint training loop: weights by SGD and the structure distribution by SNG / ASNG, in one
run (Algorithm 1 of Saito et al., ICANN 2019).

Each iteration:

1. take one minibatch ``Z`` of ``N`` examples;
2. ``masks = optimizer.ask()``: ``lambda`` structures (the paper: 2), each shared by the whole
   minibatch;
3. one batched forward pass of ``Z`` through the ``lambda`` structures (the supernet returns
   ``lambda * N`` rows; BatchNorm statistics per structure), giving the losses ``L_i`` -- the
   mean cross-entropy of ``Z`` under structure ``i``;
4. W step: SGD on ``(1/lambda) sum_i grad_W L_i`` (eq. (6));
5. theta step: ``optimizer.tell(masks, L)`` (eq. (7), ranking utility, penalty, clipping).

The same loop with ``structure=None`` trains a fixed network (the baselines), so the two are
timed with identical machinery. What a training step is comes from :mod:`archopt.training`:
the optimiser (:func:`~archopt.training.trainer.make_optimizer`), the learning-rate schedule
with warm-up (:class:`~archopt.training.schedules.LRSchedule`, set per optimiser step), and the
step itself (:class:`~archopt.training.trainer.TrainStep`: label smoothing, gradient clipping,
channels-last, mixed precision on CUDA). ``drop_last`` is honoured. Mixed precision on CPU is
refused (:func:`check_options`): bfloat16 logits would blur the ranking of the ``lambda``
structures' losses, which differ by far less than bfloat16's resolution of ~0.4 %.

Checkpoints (``checkpoint.pt`` in the result folder, written atomically after every epoch)
hold the weights, the SGD state, the structure optimiser's state (theta, step size, its
sampling generator) and the counters; a resumed run continues exactly where the checkpoint
stopped (the data order is a function of (seed, epoch)).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from archopt.data import BatchLoader, ImageDataset, augmentation
from archopt.errors import ArchoptError, CheckpointError, TrainingDiverged
from archopt.runs import ResultDir
from archopt.runtime.devices import resolve_device
from archopt.runtime.progress import Progress
from archopt.runtime.settings import Settings
from archopt.structure.asktell import StructureOptimizer
from archopt.structure.masking import Supernet

if TYPE_CHECKING:  # archopt.training imports torchmetrics (slow); loaded when a run starts
    from archopt.training import TrainConfig

__all__ = ["CHECKPOINT", "LoopResult", "StructureConfig", "check_options", "evaluate_structure",
           "train_loop"]

CHECKPOINT = "checkpoint.pt"


class StructureConfig(Settings):
    """Options of the structure optimiser (the weights' options are a
    :class:`~archopt.training.TrainConfig`).

    Attributes:
        optimizer: ``"sng"`` (fixed step, the ICANN paper) or ``"asng"`` (adaptive step).
        penalty: ``eps0``; ``eps = eps0 / max(c)`` (0: no penalty, < 0: favour more bits).
        lam: structures per minibatch (``lambda`` >= 2; the paper: 2).
        theta_lr: SNG's ``eta``; None = ``1/d`` (the paper).
        theta_init: initial probability of every bit (the paper: 0.5).
        delta0: ASNG's initial step length.
        max_steps_per_epoch: cap on the optimiser steps of an epoch (short CPU schedules).
        train_subset, test_subset: use a seeded random subset of this many examples.
        eval_every: evaluate the deterministic structure M* on the test split every this many
            epochs (0 = only at the end).
        finetune_epochs: after the joint training, fine-tune the compact M* network this many
            epochs with the run's recipe (0 = ship the paper's M* alone; see
            :mod:`archopt.structure.finetune`).
        rescale: ``"none"`` (the paper) or ``"theta"``: multiply M*'s kept units by their
            ``theta`` (dropout's weight-scaling rule), folded into the compact weights.
        bn_recalibrate: re-estimate M*'s BatchNorm statistics on training images (the paper:
            off; they stay averaged over the sampled structures).
    """

    what: ClassVar[str] = "structure config"
    error: ClassVar[type[ArchoptError]] = ArchoptError
    #: Options applied after the joint training: they may change when a run is resumed.
    AFTER_TRAINING: ClassVar[tuple[str, ...]] = ("finetune_epochs", "rescale", "bn_recalibrate")

    optimizer: Literal["sng", "asng"] = "sng"
    penalty: float = 0.0
    lam: int = Field(2, ge=2)
    theta_lr: float | None = Field(None, gt=0)
    theta_init: float = Field(0.5, gt=0, lt=1)
    delta0: float = Field(1.0, gt=0)
    max_steps_per_epoch: int | None = Field(None, ge=1)
    train_subset: int | None = Field(None, ge=2)
    test_subset: int | None = Field(None, ge=1)
    eval_every: int = Field(0, ge=0)
    finetune_epochs: int = Field(5, ge=0)
    rescale: Literal["none", "theta"] = "none"
    bn_recalibrate: bool = False

    def __init__(self, **data: Any) -> None:
        super().__init__(**data)
        if not math.isfinite(self.penalty):
            raise ArchoptError(f"penalty (eps0) must be finite, got {self.penalty}")

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


def check_options(cfg: TrainConfig, device: torch.device) -> None:
    """Refuse the training options the structure loop cannot honour (one-line errors).

    Raises: ArchoptError for ``amp=True`` on a CPU device.
    """
    if cfg.amp and device.type != "cuda":
        raise ArchoptError("amp (mixed precision) is not supported by structure training on "
                           "CPU: bfloat16 would blur the ranking of the sampled structures' "
                           "losses; drop --amp or train on a CUDA device")


class _PerStructureLoss:
    """Cross-entropy (with label smoothing) of ``lambda`` structures stacked along the batch:
    ``(lambda * N, classes)`` logits -> the mean loss; ``losses`` keeps the ``(lambda,)``
    per-structure means of the last call (eq. (6)'s ``L_i``)."""

    def __init__(self, lam: int, label_smoothing: float) -> None:
        self.lam, self.label_smoothing = lam, label_smoothing
        self.losses: torch.Tensor | None = None

    def __call__(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        per = F.cross_entropy(logits, target, reduction="none",
                              label_smoothing=self.label_smoothing)
        self.losses = per.view(self.lam, -1).mean(1)
        return self.losses.mean()


@dataclass
class LoopResult:
    """What :func:`train_loop` returns.

    Attributes:
        model: the trained network (a supernet for the joint method).
        structure: the structure optimiser (None for fixed training).
        history: one dict per epoch (also in ``metrics.jsonl``).
        steps: optimiser steps taken in total.
        epochs: epochs completed.
        train_seconds: wall time of the training steps only (no evaluation, no checkpoints).
    """

    model: nn.Module
    structure: StructureOptimizer | None
    history: list[dict[str, Any]] = field(default_factory=list)
    steps: int = 0
    epochs: int = 0
    train_seconds: float = 0.0


def _epoch_row(model: nn.Module, structure: StructureOptimizer | None) -> dict[str, Any]:
    if structure is None:
        return {}
    c = structure.costs.ravel()
    theta = structure.theta.ravel()
    mode = structure.mode().ravel()
    if isinstance(model, Supernet):
        mode = model.canonical(mode[None])[0]
    row: dict[str, Any] = {
        "theta_mean": float(theta.mean()),
        "expected_cost_rate": float(np.dot(c, theta) / c.sum()),
        "mode_cost_rate": float(np.dot(c, mode) / c.sum()),
        "mode_bits": int(mode.sum()),
        "decided_fraction": structure.decided_fraction(),
    }
    if hasattr(structure, "delta"):
        row["delta"] = float(structure.delta)  # type: ignore[attr-defined]
    return row


def _restore(path: Path, model: nn.Module, sgd: torch.optim.Optimizer,
             structure: StructureOptimizer | None, record: dict[str, Any]) -> dict[str, Any]:
    from archopt.training import load_checkpoint

    ckpt = load_checkpoint(path)
    state = ckpt.get("state") or {}
    if "epoch" not in state or ckpt.get("optimizer") is None:
        raise CheckpointError(f"{path} holds no training state; it cannot be resumed")
    saved = ckpt.get("config") or {}
    free = ("device", "eval_every", "eval_batch_size", "latency")  # may change on resume
    diffs = [k for k in record if k.rsplit(".", 1)[-1] not in free and saved.get(k) != record[k]]
    if diffs:
        raise ArchoptError(f"cannot resume from {path}: it was made with different options "
                           f"({', '.join(diffs)}); resume with the original options (see "
                           "config.json) or choose another --out")
    try:
        model.load_state_dict(ckpt["model"])
    except RuntimeError as err:
        raise CheckpointError(f"{path}: weights do not fit the model: "
                              f"{' '.join(str(err).split())[:300]}") from None
    sgd.load_state_dict(ckpt["optimizer"])
    if structure is not None:
        if state.get("structure") is None:
            raise CheckpointError(f"{path} holds no structure-optimiser state")
        structure.load_state_dict(state["structure"])
    if "torch_rng" in state:
        torch.set_rng_state(state["torch_rng"])
    return state


def train_loop(model: nn.Module, data: ImageDataset, cfg: TrainConfig, *,
               structure: StructureOptimizer | None = None,
               max_steps_per_epoch: int | None = None, eval_every: int = 0,
               out: ResultDir | None = None, resume: bool = False,
               record: dict[str, Any] | None = None,
               progress: Progress | None = None,
               on_epoch: Callable[[dict[str, Any]], None] | None = None) -> LoopResult:
    """Train ``model`` (jointly with ``structure`` when given) on ``data``.

    Args:
        model: a :class:`~archopt.structure.masking.Supernet` when ``structure`` is given,
            else any classifier (``(N, C, H, W)`` -> ``(N, classes)``).
        data: the dataset (uint8 images; normalised with its mean / std).
        cfg: weights' options, as the trainer reads them: ``epochs``, ``batch_size`` (N),
            ``optimizer``, ``lr``, ``momentum``, ``nesterov``, ``weight_decay``, ``betas``,
            ``schedule`` / ``milestones`` / ``gamma`` / ``min_lr`` / ``warmup_epochs``,
            ``label_smoothing``, ``grad_clip``, ``augment``, ``drop_last``, ``amp`` (CUDA
            only), ``channels_last``, ``deterministic``, ``seed``, ``device``,
            ``eval_batch_size``.
        structure: the SNG / ASNG optimiser over ``model``'s bits (None: fixed training).
        max_steps_per_epoch: cap on optimiser steps per epoch.
        eval_every: test-evaluate (M* for the joint method) every this many epochs; 0 = never
            here (the caller evaluates at the end).
        out: result folder for ``checkpoint.pt`` and ``metrics.jsonl`` (None: keep nothing).
        resume: continue from ``out/checkpoint.pt`` when it exists.
        record: the options recorded in the checkpoint; a resume with different ones is
            refused (default: ``cfg``'s dict).
        progress: a progress bar (advanced per step).
        on_epoch: called with each epoch's metrics row.

    Returns: a :class:`LoopResult`.
    Raises:
        ArchoptError: a structure optimiser without a supernet, mismatched bits, a resume
            with different options, ``amp`` on CPU (:func:`check_options`).
        TrainingDiverged: the loss became NaN or infinite (the last checkpoint is kept).
    """
    from archopt.training import save_checkpoint
    from archopt.training.checkpoint import dataset_meta
    from archopt.training.schedules import LRSchedule, set_lr
    from archopt.training.trainer import TrainStep, _NonFinite, make_optimizer, precision

    if structure is not None:
        if not isinstance(model, Supernet):
            raise ArchoptError("joint structure training needs a Supernet model")
        if structure.theta.size != model.d:
            raise ArchoptError(f"the structure optimiser has {structure.theta.size} variables, "
                               f"the supernet {model.d} bits")
    dev = resolve_device(cfg.device)
    check_options(cfg, dev)  # amp on CPU refused: amp_dtype is float16 or bfloat16 on CUDA
    amp_dtype, channels_last = precision(cfg, data, dev)
    model.to(dev)
    record = dict(record if record is not None else cfg.to_dict())
    x, y = data.train_x, data.train_y
    aug = augmentation(cfg.augment, data.resolution)
    loader = BatchLoader(x, y, cfg.batch_size, mean=data.mean, std=data.std, shuffle=True,
                         seed=cfg.seed, augment=aug,
                         drop_last=cfg.drop_last and len(y) >= cfg.batch_size, device=dev)
    per_epoch = len(loader) if max_steps_per_epoch is None else min(len(loader),
                                                                     max_steps_per_epoch)
    if per_epoch < 1 or len(y) < 2:
        raise ArchoptError(f"the training set ({len(y)} examples) is smaller than one batch "
                           f"({cfg.batch_size})")
    schedule = LRSchedule(cfg, per_epoch)
    sgd = make_optimizer(model.parameters(), cfg)
    scaler = torch.amp.GradScaler("cuda") if amp_dtype == torch.float16 else None
    lam = structure.lam if structure is not None else 1
    criterion = _PerStructureLoss(lam, cfg.label_smoothing)
    step_fn = TrainStep(model, sgd, criterion, amp_dtype=amp_dtype, scaler=scaler,
                        grad_clip=cfg.grad_clip, channels_last=channels_last, device=dev)
    result = LoopResult(model, structure)
    ckpt_path = out.file(CHECKPOINT) if out is not None else None
    if resume and ckpt_path is not None and ckpt_path.exists():
        state = _restore(ckpt_path, model, sgd, structure, record)
        result.epochs, result.steps = int(state["epoch"]), int(state["step"])
        result.train_seconds = float(state["train_seconds"])
        out.keep_metrics(lambda r: r.get("epoch", 0) <= result.epochs)  # type: ignore[union-attr]
        result.history = out.read_metrics()  # type: ignore[union-attr]
        if progress is not None:
            progress.advance(result.steps)
    model.train()
    lr = schedule(result.steps)
    for epoch in range(result.epochs, cfg.epochs):
        loader.set_epoch(epoch)
        loss_sum = torch.zeros((), dtype=torch.float64, device=dev)
        n = 0
        t0 = time.perf_counter()
        for b, (xb, yb) in enumerate(loader):
            if b >= per_epoch:
                break
            lr = schedule(result.steps)
            set_lr(sgd, lr)
            if structure is not None:
                masks = structure.ask()
                model.set_structure(masks)  # type: ignore[union-attr]
                lam = masks.shape[0]
                criterion.lam = lam
                yb = yb.repeat(lam)
            try:
                loss, _ = step_fn(xb, yb, check=True)
            except _NonFinite:
                _diverged(out, epoch, result)
            if structure is not None:
                structure.tell(masks, criterion.losses.detach().cpu().numpy())  # type: ignore[union-attr]
            loss_sum += loss.double()
            n += 1
            result.steps += 1
            if progress is not None:
                progress.advance(1, loss=float(loss))
        if structure is not None:
            model.set_structure(None)  # type: ignore[union-attr]
        seconds = time.perf_counter() - t0
        result.train_seconds += seconds
        result.epochs = epoch + 1
        row: dict[str, Any] = {"epoch": epoch + 1, "step": result.steps, "lr": lr,
                               "train_loss": float(loss_sum / max(n, 1)),
                               "seconds": round(seconds, 3), **_epoch_row(model, structure)}
        if eval_every and (epoch + 1) % eval_every == 0:
            row.update({f"test_{k}": v for k, v in
                        evaluate_structure(model, structure, data, cfg).items()})
        result.history.append(row)
        if out is not None:
            out.append_metrics(row)
            save_checkpoint(ckpt_path, model, meta=dataset_meta(data), config=record,  # type: ignore[arg-type]
                            optimizer=sgd,
                            state={"epoch": result.epochs, "step": result.steps,
                                   "train_seconds": result.train_seconds,
                                   "structure": None if structure is None
                                   else structure.state_dict(),
                                   "torch_rng": torch.get_rng_state()})
        if on_epoch is not None:
            on_epoch(row)
    model.eval()
    return result


def _diverged(out: ResultDir | None, epoch: int, result: LoopResult) -> None:
    raise TrainingDiverged.at(epoch=epoch + 1, steps=result.steps, last_good_epoch=result.epochs,
                              checkpoint=None if out is None else out.file(CHECKPOINT),
                              advice="lower the learning rate (--lr)")


def evaluate_structure(model: nn.Module, structure: StructureOptimizer | None,
                       data: ImageDataset, cfg: TrainConfig) -> dict[str, float]:
    """Test loss / accuracy / macro-F1 / error of ``model`` on ``data``'s test split -- with the
    deterministic structure ``M*`` of ``structure`` when given."""
    from archopt.training import evaluate

    x, y = data.test_x, data.test_y
    if structure is not None and isinstance(model, Supernet):
        with model.structure(structure.mode()):
            r = evaluate(model, x, y, mean=data.mean, std=data.std,
                         num_classes=data.num_classes, batch_size=cfg.eval_batch_size)
    else:
        r = evaluate(model, x, y, mean=data.mean, std=data.std, num_classes=data.num_classes,
                     batch_size=cfg.eval_batch_size)
    return {**r, "error": 1.0 - r["accuracy"]}
