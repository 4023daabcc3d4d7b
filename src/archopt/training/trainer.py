"""``train``: supervised training of any spec or ``nn.Module`` on an :class:`ImageDataset`.

One call trains, evaluates after every epoch (``eval_every``), writes a checkpoint every epoch
(atomically) and, with ``out``, the result folder of DESIGN.md::

    out/config.json      resolved TrainConfig, dataset, model, device, seed, versions
    out/arch.json        the (adapted) spec, when there is one
    out/metrics.jsonl    one row per epoch: epoch, train_loss, train_accuracy, test_loss,
                         test_accuracy, test_macro_f1, lr, seconds, elapsed
    out/checkpoint.pt    weights + optimiser + loop state (archopt.training.checkpoint format)
    out/summary.json     final figures (test_accuracy, test_macro_f1, test_loss, params, macs,
                         latency_ms, seconds, epochs, ...)
    out/curves.png       loss / accuracy / lr per epoch

Reproducibility: the same seed on the same device gives the same run; ``resume=True`` continues
from ``checkpoint.pt`` to the same final weights and metrics as an uninterrupted run, because
everything random is a function of the seed and the epoch (data order, augmentation) or is
restored from the checkpoint (weights, optimiser moments, step counter, RNG states).

Scale-out: under ``torchrun`` the same call trains with DistributedDataParallel (see
:mod:`archopt.training.distributed`): each rank takes an interleaved shard of every epoch's
permutation, gradients are averaged, metrics are summed over ranks, and only rank 0 writes.
"""

from __future__ import annotations

import contextlib
import copy
import math
import os
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from archopt.data.dataset import ImageDataset, normalize
from archopt.data.loader import BatchLoader
from archopt.data.transforms import augmentation
from archopt.errors import (
    ArchoptError,
    CheckpointError,
    InvalidSpec,
    TrainingDiverged,
    WriteError,
)
from archopt.measure import benchmark_latency, count_macs, count_params, latency_columns
from archopt.runs import ResultDir, write_error_kept
from archopt.runs.locking import discard_on_failure, lock_folder
from archopt.runtime.devices import seed_everything
from archopt.runtime.progress import Progress
from archopt.spaces.base import ArchSpec
from archopt.training.checkpoint import dataset_meta, load_checkpoint, save_checkpoint
from archopt.training.config import InvalidConfig, TrainConfig
from archopt.training.distributed import DistEnv, all_reduce_max, all_reduce_sum, init_distributed
from archopt.training.evaluation import autocast, evaluate
from archopt.training.plots import plot_curves
from archopt.training.schedules import LRSchedule, set_lr

__all__ = [
    "CHECKPOINT",
    "CURVES",
    "Callback",
    "StopTraining",
    "TrainResult",
    "TrainStep",
    "adapt_spec",
    "make_optimizer",
    "precision",
    "train",
]

CHECKPOINT = "checkpoint.pt"
CURVES = "curves.png"
#: What a training run writes in its folder; removed again when the run fails before its first
#: checkpoint (so the corrected rerun is not refused).
_RUN_FILES = (ResultDir.CONFIG, ResultDir.ARCH, ResultDir.METRICS, CHECKPOINT,
              ResultDir.SUMMARY, CURVES)

#: Called after every epoch with the metrics row and the (unwrapped) model; may raise
#: :class:`StopTraining` to end the run after this epoch.
Callback = Callable[[dict[str, Any], nn.Module], None]


class StopTraining(Exception):
    """Raised by a callback to end training after the current epoch (summary still written)."""


@dataclass
class TrainResult:
    """What :func:`train` returns.

    Attributes:
        model: the trained network (unwrapped from DDP), in eval mode, on the training device.
        summary: final figures (see :func:`train`).
        history: one row per epoch (the rows of ``metrics.jsonl``).
        spec: the (adapted) architecture spec, or None for a user's own module.
        config: the resolved config.
        out: the result folder, or None.
        is_main: False on ranks other than 0 under torchrun (they write nothing).
    """

    model: nn.Module
    summary: dict[str, Any]
    history: list[dict[str, Any]]
    spec: ArchSpec | None
    config: TrainConfig
    out: Path | None = None
    is_main: bool = True
    notes: list[str] = field(default_factory=list)


class _NonFinite(Exception):
    pass


class TrainStep:
    """One optimiser step: forward (autocast), loss, optional finiteness check, backward (loss
    scaling for float16), gradient clipping, ``optimizer.step()``.

    Args:
        model: the network (possibly DDP-wrapped), in train mode.
        optimizer: its optimiser.
        criterion: ``(logits, target) -> scalar loss``.
        amp_dtype: autocast dtype, or None for full precision.
        scaler: a ``torch.amp.GradScaler`` (float16 only) or None.
        grad_clip: max global gradient L2 norm, or None.
        channels_last: convert 4-D inputs to NHWC.
        env: distributed environment (the finiteness check is agreed across ranks).
        device: the device autocast targets (default: ``env.device``).
    """

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer,
                 criterion: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], *,
                 amp_dtype: torch.dtype | None = None, scaler: Any = None,
                 grad_clip: float | None = None, channels_last: bool = False,
                 env: DistEnv | None = None, device: torch.device | None = None) -> None:
        self.model, self.optimizer, self.criterion = model, optimizer, criterion
        self.amp_dtype, self.scaler, self.grad_clip = amp_dtype, scaler, grad_clip
        self.channels_last = channels_last
        self.env = env or DistEnv()
        self.device = device if device is not None else self.env.device

    def _finite(self, loss: torch.Tensor) -> bool:
        bad = (~torch.isfinite(loss.detach())).float().reshape(1)
        return not bool(all_reduce_max(bad, self.env).item())

    def __call__(self, x: torch.Tensor, y: torch.Tensor, *,
                 check: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """Train on batch ``(x, y)``; returns the detached loss and logits.

        ``check=True`` verifies the loss is finite on every rank before the update and raises
        ``_NonFinite`` otherwise (weights untouched).
        """
        if self.channels_last and x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        with autocast(self.device, self.amp_dtype):
            logits = self.model(x)
        loss = self.criterion(logits.float(), y)
        if check and not self._finite(loss):
            raise _NonFinite
        self.optimizer.zero_grad(set_to_none=True)
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
            if self.grad_clip is not None:
                self.scaler.unscale_(self.optimizer)
                nn.utils.clip_grad_norm_(self.model.parameters(), self.grad_clip)
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            loss.backward()
            if self.grad_clip is not None:
                nn.utils.clip_grad_norm_(self.model.parameters(), self.grad_clip)
            self.optimizer.step()
        return loss.detach(), logits.detach()


def make_optimizer(params: Any, config: TrainConfig) -> torch.optim.Optimizer:
    """The optimiser ``config`` names: SGD (Nesterov momentum when ``nesterov`` and momentum
    > 0), Adam or AdamW, with ``lr`` and ``weight_decay``.

    SGD uses torch's fused kernel when every parameter is a float tensor on a CPU or CUDA
    device: one pass per tensor for weight decay, momentum and the update (on one CPU thread
    ~4x faster than the per-op loop for the 1.8M weights of a 784-784-784-784 MLP; the same
    update up to float rounding)."""
    if config.optimizer == "sgd":
        params = list(params)
        tensors = [t for p in params for t in (p["params"] if isinstance(p, dict) else [p])]
        fused = bool(tensors) and all(t.is_floating_point() and t.device.type in ("cpu", "cuda")
                                      for t in tensors)
        return torch.optim.SGD(params, lr=config.lr, momentum=config.momentum,
                               nesterov=config.nesterov and config.momentum > 0,
                               weight_decay=config.weight_decay, fused=fused or None)
    cls = torch.optim.Adam if config.optimizer == "adam" else torch.optim.AdamW
    return cls(params, lr=config.lr, betas=config.betas, weight_decay=config.weight_decay)


def adapt_spec(spec: ArchSpec, data: ImageDataset, *, adapt: bool) -> tuple[ArchSpec, str | None]:
    """Check that ``spec`` fits ``data`` (input channels / size, classes); adapt it if allowed.

    Returns: ``(spec to train, note)``; the note says what was changed (None if nothing).
    Raises: InvalidSpec when the spec does not fit and ``adapt`` is False.
    """
    adapted = spec.with_io(in_channels=data.in_channels, resolution=data.resolution,
                           num_classes=data.num_classes)
    before, after = spec.to_dict(), adapted.to_dict()
    changes = [f"{k} {before.get(k)} -> {after[k]}" for k in after
               if before.get(k) != after[k] and not (k == "resolution" and before.get(k) is None)]
    if not changes:
        return adapted, None
    name = spec.name or spec.space
    if not adapt:
        raise InvalidSpec(f"spec {name!r} does not fit dataset {data.name!r} (input "
                          f"{'x'.join(map(str, data.input_shape))}, {data.num_classes} classes): "
                          f"{', '.join(changes)} needed; pass adapt=True (the CLI adapts "
                          "automatically) or fix the spec")
    return adapted, f"adapted {name} to {data.name}: {', '.join(changes)}"


def precision(cfg: TrainConfig, data: ImageDataset,
              device: torch.device) -> tuple[torch.dtype | None, bool]:
    """How a run of ``cfg`` on ``device`` computes: ``(amp_dtype, channels_last)``.

    ``amp_dtype`` is autocast's dtype, None for float32: with ``cfg.amp`` (by default on for
    CUDA), bfloat16 where the device supports it, else float16 (which needs a GradScaler).
    ``channels_last`` is ``cfg.channels_last``, by default on for CUDA and image data (3-D
    examples). On CUDA, also sets cuDNN to ``cfg.deterministic`` (deterministic kernels, no
    benchmarking) for the rest of the process.
    """
    cuda = device.type == "cuda"
    amp_dtype = None
    if cfg.amp if cfg.amp is not None else cuda:
        amp_dtype = (torch.bfloat16 if not cuda or torch.cuda.is_bf16_supported()
                     else torch.float16)
    channels_last = (cfg.channels_last if cfg.channels_last is not None
                     else cuda and len(data.input_shape) == 3)
    if cuda:
        torch.backends.cudnn.deterministic = cfg.deterministic
        torch.backends.cudnn.benchmark = not cfg.deterministic
    return amp_dtype, channels_last


def _check_forward(model: nn.Module, data: ImageDataset, device: torch.device) -> None:
    """One no-grad forward pass of two training images in eval mode (consumes no randomness;
    materialises lazy modules before the optimiser is made)."""
    x = normalize(data.train_x[:2].to(device), data.mean, data.std)
    was = model.training
    model.eval()
    try:
        with torch.no_grad():
            out = model(x)
    except (RuntimeError, ValueError, TypeError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise InvalidSpec(f"the model cannot take {data.name} images (batch shape "
                          f"{tuple(x.shape)}): {first}") from None
    finally:
        model.train(was)
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != (len(x), data.num_classes):
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise InvalidSpec(f"the model returns {shape} for a batch of {len(x)} {data.name} "
                          f"images; expected ({len(x)}, {data.num_classes}) logits")


# -- RNG state (weights_only-safe) -----------------------------------------------------------

def _rng_state() -> dict[str, Any]:
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    version, internal, gauss_next = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": {"kind": str(kind), "keys": torch.from_numpy(keys.astype(np.int64)),
                  "pos": int(pos), "has_gauss": int(has_gauss), "gauss": float(gauss)},
        "python": {"version": int(version), "internal": list(internal),
                   "gauss_next": gauss_next},
    }


def _set_rng_state(s: dict[str, Any]) -> None:
    torch.set_rng_state(s["torch"])
    if s.get("cuda") and torch.cuda.is_available() and len(s["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(s["cuda"])
    n = s["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"],
                         n["has_gauss"], n["gauss"]))
    p = s["python"]
    random.setstate((p["version"], tuple(p["internal"]), p["gauss_next"]))


# -- the run ---------------------------------------------------------------------------------

@dataclass
class _Run:
    """Everything a run holds between epochs (what the checkpoint saves and restores)."""

    epoch: int = 0
    step: int = 0
    elapsed: float = 0.0
    history: list[dict[str, Any]] = field(default_factory=list)


def _resolve_model(model_or_spec: Any, data: ImageDataset, adapt: bool
                   ) -> tuple[nn.Module | None, ArchSpec | None, str | None]:
    if isinstance(model_or_spec, nn.Module):
        return model_or_spec, None, None
    if isinstance(model_or_spec, (ArchSpec, str, os.PathLike, dict)):
        from archopt.spaces.registry import load_spec

        spec, note = adapt_spec(load_spec(model_or_spec), data, adapt=adapt)
        return None, spec, note
    raise TypeError(f"train() takes an nn.Module, a spec, a spec dict or a spec name; got "
                    f"{type(model_or_spec).__name__}")


def _check_out(rd_path: Path | None, resume: bool) -> Path | None:
    """The checkpoint to resume from (None: start fresh). Raises when ``out`` holds a run and
    ``resume`` is False."""
    if rd_path is None:
        if resume:
            raise InvalidConfig("resume=True needs the result folder (out) of the run to resume")
        return None
    ckpt = rd_path / CHECKPOINT
    if resume:
        return ckpt if ckpt.exists() else None
    # config.json / metrics.jsonl without a checkpoint: a run that never finished an epoch
    # (killed); nothing of it is worth keeping, so a fresh run may start over it.
    held = [n for n in (CHECKPOINT, ResultDir.SUMMARY) if (rd_path / n).exists()]
    if held:
        raise ArchoptError(f"{rd_path} already holds a training run ({', '.join(held)}); pass "
                           "--resume (resume=True) to continue it, or choose another --out")
    return None


def _restore(ckpt_path: Path, cfg: TrainConfig, spec: ArchSpec | None, data: ImageDataset,
             env: DistEnv) -> dict[str, Any]:
    """Load and vet a checkpoint for resuming; refuse one made with a different setup."""
    ckpt = load_checkpoint(ckpt_path)
    state = ckpt.get("state")
    if not state or "epoch" not in state or ckpt.get("optimizer") is None:
        raise CheckpointError(f"{ckpt_path} holds no training state (written by another tool?); "
                              "it cannot be resumed")
    diffs = cfg.differences(ckpt.get("config") or {})
    if spec is not None and ckpt.get("spec") != spec.to_dict():
        diffs.append("architecture spec (compare arch.json)")
    if spec is None and ckpt.get("spec") is not None:
        diffs.append("model: the checkpoint holds a spec, now a user module")
    meta, now = ckpt.get("meta") or {}, dataset_meta(data)
    for k in ("dataset", "num_classes", "input_shape", "train_size", "test_size"):
        if meta.get(k) != now[k]:
            diffs.append(f"{k}: {meta.get(k)!r} -> {now[k]!r}")
    if int(state.get("world_size", 1)) != env.world_size:
        diffs.append(f"processes (world size): {state.get('world_size', 1)} -> {env.world_size}")
    if diffs:
        raise ArchoptError(f"cannot resume from {ckpt_path}: it was made with a different setup "
                           f"({'; '.join(diffs)}); resume with the original options (see "
                           f"config.json beside it) or start a new run in another --out folder")
    return ckpt


def _summary(model: nn.Module, spec: ArchSpec | None, data: ImageDataset, run: _Run,
             cfg: TrainConfig, env: DistEnv, final: dict[str, Any], stopped: bool,
             extra: dict[str, Any]) -> dict[str, Any]:
    cpu_model = copy.deepcopy(model).cpu().float().to(memory_format=torch.contiguous_format)
    if spec is not None:
        macs, params = spec.macs(data.resolution), spec.params()
    else:
        macs, params = count_macs(cpu_model, data.input_shape), count_params(cpu_model)
    # one thread: the stable, comparable figure for batch-1 latency (no thread hand-offs)
    latency = (benchmark_latency(cpu_model, tuple(data.input_shape), threads=1,
                                 onnxruntime=False if cfg.latency == "torch" else None)
               if cfg.latency and env.is_main else None)
    last = run.history[-1] if run.history else {}
    return {
        "test_accuracy": final["accuracy"], "test_macro_f1": final["macro_f1"],
        "test_loss": final["loss"], "train_loss": last.get("train_loss"),
        "train_accuracy": last.get("train_accuracy"),
        "best_test_accuracy": max((r["test_accuracy"] for r in run.history
                                   if r.get("test_accuracy") is not None),
                                  default=final["accuracy"]),
        "params": int(params), "macs": int(macs), **latency_columns(latency),
        "seconds": round(run.elapsed, 3), "epochs": run.epoch, "epochs_planned": cfg.epochs,
        "stopped_early": stopped, "dataset": data.name,
        "model": (spec.name or spec.space) if spec is not None else type(model).__name__,
        **extra,
    }


def train(model_or_spec: nn.Module | ArchSpec | str | os.PathLike[str] | dict[str, Any],
          data: ImageDataset, config: TrainConfig | dict[str, Any] | None = None,
          out: str | os.PathLike[str] | None = None, *, resume: bool = False,
          progress: bool | Progress = True, adapt: bool = False,
          callbacks: Sequence[Callback] = ()) -> TrainResult:
    """Train a classifier and evaluate it on the dataset's test split.

    Args:
        model_or_spec: an architecture spec (or a catalog name / JSON path / dict that
            ``load_spec`` reads; built after seeding), or a user's own ``nn.Module`` returning
            (B, num_classes) logits for (B, C, H, W) normalised images.
        data: the dataset (uint8 images, labels, mean / std).
        config: a :class:`TrainConfig`, a dict of its fields, or None (defaults).
        out: result folder (see the module docstring); None writes nothing.
        resume: continue the run in ``out`` from its ``checkpoint.pt`` (starts afresh when there
            is none yet). The checkpoint must come from the same config (fields outside
            :data:`~archopt.training.config.RESUME_IGNORED`), spec, dataset and world size.
        progress: show progress (a rich bar on a terminal, lines otherwise); or a Progress.
        adapt: adapt a spec whose input channels / resolution / classes differ from the
            dataset's (``spec.with_io``); otherwise such a spec raises InvalidSpec.
        callbacks: functions ``cb(row, model)`` called after every epoch (after the
            checkpoint); raising :class:`StopTraining` ends the run after that epoch.

    Returns: a :class:`TrainResult`. ``summary`` holds ``test_accuracy``, ``test_macro_f1``,
        ``test_loss`` (cross-entropy in nats, no label smoothing), ``train_loss`` (the training
        objective, with label smoothing, averaged over the last epoch), ``train_accuracy`` (on
        augmented batches in train mode), ``best_test_accuracy``, ``params``, ``macs`` (one
        example), ``latency_ms`` (CPU, batch 1, one thread, ms per example, by
        ``torch.utils.benchmark``; ``latency_ms_b64`` at batch 64 and
        ``latency_ms_onnxruntime[_b64]`` beside them: see
        :func:`archopt.measure.latency_columns`), ``seconds``
        (training + per-epoch evaluation, summed over resumed parts), ``epochs``, ``device``,
        ``world_size``, ...

    Raises:
        InvalidConfig: a bad option (or ``resume`` without ``out``).
        InvalidSpec: a spec that does not fit the data (without ``adapt``), a model whose
            output does not match ``num_classes``.
        ArchoptError: ``out`` already holds a run and ``resume`` is False; a checkpoint made with
            a different setup.
        CheckpointError: an unreadable checkpoint.
        TrainingDiverged: the loss became NaN or infinite; ``checkpoint.pt`` (the last completed
            epoch) and ``metrics.jsonl`` are kept, no summary is written.
    """
    cfg = config if isinstance(config, TrainConfig) else TrainConfig.from_any(config)
    model, spec, note = _resolve_model(model_or_spec, data, adapt)
    env = init_distributed(cfg.device)
    threads = torch.get_num_threads()
    if cfg.threads is not None:
        torch.set_num_threads(cfg.threads)
    folder = Path(out) if out is not None else None
    try:
        with contextlib.ExitStack() as stack:
            if folder is not None and env.is_main:  # one writer per folder; only rank 0 writes
                stack.enter_context(lock_folder(folder))
                stack.enter_context(discard_on_failure(
                    folder, _RUN_FILES, lambda: (folder / CHECKPOINT).exists()))
            result = _train(model, spec, note, data, cfg, folder, resume, progress,
                            callbacks, env)
            # every rank leaves together: a rank that tears its process group down while
            # rank 0 still measures and writes can abort in gloo's teardown
            env.barrier()
            return result
    except WriteError as err:  # a full disk: the last checkpoint, if any, is kept
        if folder is not None and (folder / CHECKPOINT).exists():
            raise write_error_kept(err) from None
        raise
    finally:
        torch.set_num_threads(threads)
        env.shutdown()


def _train(model: nn.Module | None, spec: ArchSpec | None, note: str | None, data: ImageDataset,
           cfg: TrainConfig, out: Path | None, resume: bool, progress: bool | Progress,
           callbacks: Sequence[Callback], env: DistEnv) -> TrainResult:
    dev = env.device
    ckpt_path = _check_out(out, resume)
    env.barrier()  # every rank has looked at `out` before rank 0 writes there
    seed_everything(cfg.seed)
    cuda = dev.type == "cuda"
    if model is None:
        assert spec is not None
        # refuse, before allocating, a step that cannot fit (one line naming the estimate)
        spec.check_memory(resolution=data.resolution, batch_size=cfg.batch_size, training=True,
                          optimizer_slots=2 if cfg.optimizer.startswith("adam") else 1,
                          available=torch.cuda.mem_get_info(dev)[0] if cuda else None)
        model = spec.build()
    amp_dtype, channels_last = precision(cfg, data, dev)
    model.to(dev)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    _check_forward(model, data, dev)
    optimizer = make_optimizer(model.parameters(), cfg)
    scaler = (torch.amp.GradScaler("cuda") if amp_dtype == torch.float16 else None)

    run = _Run()
    if ckpt_path is not None:
        ckpt = _restore(ckpt_path, cfg, spec, data, env)
        try:
            model.load_state_dict(ckpt["model"])
            optimizer.load_state_dict(ckpt["optimizer"])
        except (RuntimeError, ValueError, KeyError) as err:
            raise CheckpointError(f"{ckpt_path} does not fit this model: "
                                  f"{' '.join(str(err).split())[:400]}") from None
        st = ckpt["state"]
        run = _Run(epoch=int(st["epoch"]), step=int(st["step"]), elapsed=float(st["elapsed"]),
                   history=list(st["history"]))
        if scaler is not None and st.get("scaler"):
            scaler.load_state_dict(st["scaler"])
        _set_rng_state(st["rng"])

    net: nn.Module = model
    if env.distributed:
        from torch.nn.parallel import DistributedDataParallel

        net = DistributedDataParallel(model, device_ids=[dev.index] if cuda else None)

    per_rank = math.ceil(len(data.train_y) / env.world_size)
    train_x = data.train_x.to(dev) if cuda else data.train_x
    train_y = data.train_y.to(dev) if cuda else data.train_y
    loader = BatchLoader(train_x, train_y, cfg.batch_size, mean=data.mean, std=data.std,
                         shuffle=True, seed=cfg.seed,
                         augment=augmentation(cfg.augment, data.resolution),
                         drop_last=cfg.drop_last and per_rank >= cfg.batch_size, device=dev,
                         rank=env.rank, world_size=env.world_size)
    steps_per_epoch = len(loader)
    schedule = LRSchedule(cfg, steps_per_epoch)
    step_fn = TrainStep(net, optimizer,
                        nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing),
                        amp_dtype=amp_dtype, scaler=scaler, grad_clip=cfg.grad_clip,
                        channels_last=channels_last, env=env)
    check_every = 1 if not cuda else 25

    meta = dataset_meta(data)
    resolved = {"device": str(dev), "amp": amp_dtype is not None,
                "amp_dtype": str(amp_dtype).removeprefix("torch.") if amp_dtype else None,
                "channels_last": channels_last, "world_size": env.world_size,
                "backend": env.backend, "steps_per_epoch": steps_per_epoch,
                "effective_batch_size": cfg.batch_size * env.world_size}
    rd = ResultDir(out) if out is not None and env.is_main else None
    if rd is not None:
        rd.write_config({"command": "train", "seed": cfg.seed, "train": cfg.to_dict(),
                         "resolved": resolved, "dataset": data.describe(),
                         "model": {"spec": spec.name if spec else None,
                                   "class": type(model).__name__},
                         "resumed_from_epoch": run.epoch if ckpt_path else None})
        if spec is not None:
            rd.write_arch(spec)
        rd.write_lines(ResultDir.METRICS, run.history)  # a resumed log = the checkpoint's rows

    def save(epoch_state: _Run) -> None:
        if rd is None:
            return
        save_checkpoint(rd.file(CHECKPOINT), model, spec=spec, meta=meta, config=cfg.to_dict(),
                        optimizer=optimizer, state={
                            "epoch": epoch_state.epoch, "step": epoch_state.step,
                            "elapsed": epoch_state.elapsed, "history": epoch_state.history,
                            "world_size": env.world_size, "rng": _rng_state(),
                            "scaler": scaler.state_dict() if scaler is not None else None})

    def test_metrics() -> dict[str, float]:
        return evaluate(model, data.test_x, data.test_y, mean=data.mean, std=data.std,
                        num_classes=data.num_classes, batch_size=cfg.eval_batch_size,
                        device=dev, amp_dtype=amp_dtype, channels_last=channels_last,
                        distributed=env.distributed)

    show = env.is_main and progress is not False
    bar = progress if isinstance(progress, Progress) else Progress(
        (cfg.epochs - run.epoch) * steps_per_epoch,
        f"train {(spec.name or spec.space) if spec else type(model).__name__}",
        enabled=show, every=10.0)
    notes = [n for n in (note,) if n]
    stopped = False
    final: dict[str, float] | None = None
    with bar:
        for n in notes:
            bar.log(n)
        if ckpt_path is not None:
            bar.log(f"resuming from epoch {run.epoch} of {cfg.epochs} ({ckpt_path})")
        while run.epoch < cfg.epochs and not stopped:
            epoch = run.epoch + 1
            t0 = time.perf_counter()
            loader.set_epoch(epoch)
            net.train()
            sums = torch.zeros(3, dtype=torch.float64, device=dev)  # loss*n, correct, n
            lr = schedule(run.step)
            for xb, yb in loader:
                lr = schedule(run.step)
                set_lr(optimizer, lr)
                try:
                    loss, logits = step_fn(xb, yb, check=(run.step + 1) % check_every == 0)
                except _NonFinite:
                    _diverged(rd, epoch, run)
                sums[0] += loss.double() * len(yb)
                sums[1] += (logits.argmax(1) == yb).sum()
                sums[2] += len(yb)
                run.step += 1
                bar.advance(1)
            all_reduce_sum(sums, env)
            if not math.isfinite(float(sums[0])):
                _diverged(rd, epoch, run)
            row: dict[str, Any] = {
                "epoch": epoch, "train_loss": float(sums[0] / sums[2]),
                "train_accuracy": float(sums[1] / sums[2]),
                "test_loss": None, "test_accuracy": None, "test_macro_f1": None, "lr": lr}
            if epoch % cfg.eval_every == 0 or epoch == cfg.epochs:
                final = test_metrics()
                row.update(test_loss=final["loss"], test_accuracy=final["accuracy"],
                           test_macro_f1=final["macro_f1"])
            else:
                final = None
            seconds = time.perf_counter() - t0
            run.elapsed += seconds
            row.update(seconds=round(seconds, 3), elapsed=round(run.elapsed, 3))
            run.history.append(row)
            run.epoch = epoch
            save(run)                     # the checkpoint first: it carries the history too
            if rd is not None:
                rd.append_metrics(row)
            bar.advance(0, loss=row["train_loss"], acc=row["train_accuracy"],
                        **({"test_acc": row["test_accuracy"]} if final else {}))
            bar.log(_epoch_line(row, cfg.epochs))
            for cb in callbacks:
                try:
                    cb(row, model)
                except StopTraining:
                    stopped = True
    if final is None:  # resumed a finished run, or stopped on an epoch without evaluation
        final = test_metrics()
    model.eval()
    summary = _summary(model, spec, data, run, cfg, env, final, stopped,
                       {"device": str(dev), "world_size": env.world_size, "seed": cfg.seed})
    if rd is not None:
        rd.write_summary(summary)
        plot_curves(run.history, rd.file(CURVES), title=f"{summary['model']} on {data.name}")
    return TrainResult(model=model, summary=summary, history=run.history, spec=spec, config=cfg,
                       out=out, is_main=env.is_main, notes=notes)


def _epoch_line(row: dict[str, Any], epochs: int) -> str:
    parts = [f"epoch {row['epoch']}/{epochs}", f"loss {row['train_loss']:.4f}",
             f"acc {row['train_accuracy']:.4f}"]
    if row.get("test_accuracy") is not None:
        parts += [f"test_loss {row['test_loss']:.4f}", f"test_acc {row['test_accuracy']:.4f}",
                  f"test_f1 {row['test_macro_f1']:.4f}"]
    parts += [f"lr {row['lr']:.3g}", f"{row['seconds']:.1f}s"]
    return "  ".join(parts)


def _diverged(rd: ResultDir | None, epoch: int, run: _Run) -> None:
    raise TrainingDiverged.at(epoch=epoch, steps=run.step, last_good_epoch=run.epoch,
                              checkpoint=None if rd is None else rd.file(CHECKPOINT),
                              advice="lower the learning rate, add warm-up (--warmup) or "
                                     "gradient clipping (--grad-clip)")
