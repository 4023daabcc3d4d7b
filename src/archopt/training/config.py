"""``TrainConfig``: every option of a training run, validated, with defaults for small CNNs.

A config is data: it round-trips through JSON (``config.json`` of a result folder holds the
resolved one) and decides, together with the seed, the device and the data, what a run computes.
:data:`RESUME_IGNORED` names the fields that may differ when a run is resumed (they change how a
run is observed, not what it computes).
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field, field_validator, model_validator

from archopt.data.transforms import AUGMENTATIONS
from archopt.errors import ArchoptError
from archopt.settings import Settings

__all__ = ["DEFAULT_LR", "DEFAULT_WEIGHT_DECAY", "RESUME_IGNORED", "InvalidConfig", "TrainConfig"]

Optimizer = Literal["sgd", "adam", "adamw"]
Schedule = Literal["cosine", "step", "constant"]
Augment = Literal["none", "crop", "flip", "crop-flip"]
assert set(AUGMENTATIONS) == {"none", "crop", "flip", "crop-flip"}  # keep Augment in step

#: Learning rate by optimizer when ``lr`` is not given.
DEFAULT_LR: dict[str, float] = {"sgd": 0.1, "adam": 1e-3, "adamw": 1e-3}
#: Weight decay by optimizer when ``weight_decay`` is not given (AdamW's is decoupled).
DEFAULT_WEIGHT_DECAY: dict[str, float] = {"sgd": 5e-4, "adam": 0.0, "adamw": 0.05}

#: Fields that may change between a run and its ``--resume`` (observation, not computation).
RESUME_IGNORED = frozenset({"device", "eval_every", "eval_batch_size", "latency", "threads"})


class InvalidConfig(ArchoptError, ValueError):
    """A training option out of range or of the wrong kind."""


class TrainConfig(Settings):
    """Options of a training run.

    Attributes:
        epochs: passes over the training set (>= 1).
        batch_size: examples per optimiser step (per process under DDP).
        optimizer: ``"sgd"`` (Nesterov momentum), ``"adam"`` or ``"adamw"``.
        lr: peak learning rate (default by optimizer: :data:`DEFAULT_LR`).
        momentum: SGD momentum (Nesterov when ``nesterov``); ignored by Adam(W).
        nesterov: Nesterov momentum for SGD.
        weight_decay: L2 penalty (SGD, Adam) or decoupled decay (AdamW); default by optimizer:
            :data:`DEFAULT_WEIGHT_DECAY`.
        betas: Adam(W) coefficients.
        schedule: ``"cosine"`` (to ``min_lr`` at the last step), ``"step"`` (multiply by
            ``gamma`` at each of ``milestones``) or ``"constant"``.
        milestones: step-schedule milestones as fractions of the epochs, each in (0, 1)
            (0.5 = after half the epochs; rounded to an epoch boundary).
        gamma: step-schedule factor.
        min_lr: cosine floor (absolute learning rate).
        warmup_epochs: linear warm-up from ``lr / (warmup steps)`` to ``lr`` over this many
            epochs (counted in steps; may be fractional); the schedule runs over the rest.
        label_smoothing: cross-entropy label smoothing in [0, 1).
        augment: ``"none"``, ``"crop"``, ``"flip"`` or ``"crop-flip"``
            (:func:`archopt.data.augmentation`).
        drop_last: drop each epoch's last incomplete batch (the order changes every epoch, so
            every example is still seen; avoids a tiny BatchNorm batch).
        grad_clip: clip the global gradient L2 norm to this value (None: no clipping).
        amp: mixed precision (bfloat16 where the GPU has it, else float16 with loss scaling);
            None = on for CUDA, off on CPU.
        channels_last: NHWC memory format for 4-D inputs; None = on for CUDA.
        deterministic: on CUDA, ask cuDNN for deterministic algorithms (same seed, same device
            -> same result); False lets cuDNN pick the fastest (benchmark mode).
        seed: seeds torch / numpy / random, the weight init and the data order.
        device: ``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda"``, ``"cuda:N"``.
        eval_every: evaluate on the test split every this many epochs (and after the last).
        eval_batch_size: batch size of evaluation.
        latency: measure CPU latency (batch 1) of the trained model for the summary: True
            with torch and, when the onnx extra is installed, onnxruntime (which exports the
            model first: seconds per network); ``"torch"`` with torch only; False not at all.
        threads: torch intra-op CPU threads for the run (None: leave torch's current count;
            the CLI sets it by :mod:`archopt.threads`' policy, which does not oversubscribe a
            busy machine); fewer can be faster on a busy machine.
    """

    what: ClassVar[str] = "training config"
    error: ClassVar[type[ArchoptError]] = InvalidConfig

    epochs: int = Field(10, ge=1)
    batch_size: int = Field(128, ge=1)
    optimizer: Optimizer = "sgd"
    lr: float = Field(None, gt=0)  # type: ignore[assignment]  # filled by _defaults
    momentum: float = Field(0.9, ge=0, lt=1)
    nesterov: bool = True
    weight_decay: float = Field(None, ge=0)  # type: ignore[assignment]
    betas: tuple[float, float] = (0.9, 0.999)
    schedule: Schedule = "cosine"
    milestones: list[float] = Field(default_factory=lambda: [0.5, 0.75])
    gamma: float = Field(0.1, gt=0, le=1)
    min_lr: float = Field(0.0, ge=0)
    warmup_epochs: float = Field(0.0, ge=0)
    label_smoothing: float = Field(0.0, ge=0, lt=1)
    augment: Augment = "none"
    drop_last: bool = True
    grad_clip: float | None = Field(None, gt=0)
    amp: bool | None = None
    channels_last: bool | None = None
    deterministic: bool = True
    seed: int = 0
    device: str = "auto"
    eval_every: int = Field(1, ge=1)
    eval_batch_size: int = Field(1024, ge=1)
    latency: bool | Literal["torch"] = True
    threads: int | None = Field(None, ge=1)

    @model_validator(mode="before")
    @classmethod
    def _defaults(cls, data: Any) -> Any:
        if isinstance(data, dict):
            data = dict(data)
            opt = data.get("optimizer") or "sgd"
            if data.get("lr") is None:
                data["lr"] = DEFAULT_LR.get(opt, 0.1)
            if data.get("weight_decay") is None:
                data["weight_decay"] = DEFAULT_WEIGHT_DECAY.get(opt, 0.0)
        return data

    @field_validator("milestones")
    @classmethod
    def _fractions(cls, v: list[float]) -> list[float]:
        if any(not 0.0 < m < 1.0 for m in v):
            raise ValueError(f"milestones are fractions of the epochs, each in (0, 1); got {v}")
        return sorted(v)

    @field_validator("betas")
    @classmethod
    def _betas(cls, v: tuple[float, float]) -> tuple[float, float]:
        if not all(0.0 <= b < 1.0 for b in v):
            raise ValueError(f"betas must be in [0, 1), got {v}")
        return v

    @model_validator(mode="after")
    def _consistent(self) -> TrainConfig:
        if self.schedule == "cosine" and self.min_lr > self.lr:
            raise ValueError(f"min_lr ({self.min_lr}) exceeds lr ({self.lr})")
        if self.warmup_epochs >= self.epochs:
            raise ValueError(f"warmup_epochs ({self.warmup_epochs}) must be less than epochs "
                             f"({self.epochs})")
        return self

    @classmethod
    def from_any(cls, config: TrainConfig | dict[str, Any] | None = None,
                 **overrides: Any) -> TrainConfig:
        """A config from a config, a dict (e.g. a ``config.json``'s ``"train"`` block) or None
        (defaults), with ``overrides`` (None values ignored) applied and validated.

        ``lr`` and ``weight_decay`` are filled from the optimizer when a config is made, so
        changing the optimizer of an existing config keeps its (resolved) learning rate.
        """
        base = config.model_dump() if isinstance(config, TrainConfig) else dict(config or {})
        base.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**base)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict of every field."""
        return self.model_dump(mode="json")

    def differences(self, other: dict[str, Any], *,
                    ignore: frozenset[str] = RESUME_IGNORED) -> list[str]:
        """``"field: other -> self"`` for every field (outside ``ignore``) that differs from the
        dict ``other`` (a saved config)."""
        mine = self.to_dict()
        theirs = TrainConfig(**{k: v for k, v in other.items() if k in mine}).to_dict()
        return [f"{k}: {theirs[k]!r} -> {mine[k]!r}" for k in mine
                if k not in ignore and mine[k] != theirs[k]]
