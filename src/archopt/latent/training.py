"""Training the multi-scale autoencoder: on-the-fly random MLPs, checkpoint/resume, MdPE validation.

Follows the SWAT-NN spec section 2: batches of 32 random sparse MLPs (depths 1-4 x sparsities
0.5/0.7/0.8/0.9), Adam with lr 1e-4 halved every 2 epochs (an "epoch" is ``epoch_steps`` batches;
paper: 150,001), the min-over-decoders functional loss on the fixed input grid (output MSE, or
the relative error for the homogeneous families: ``AutoencoderConfig.loss``, see
:mod:`archopt.latent.autoencoder`).

Reproducibility and resume: the batch of step ``k`` is drawn from its own generator seeded with
``(seed, k)``, and the checkpoint holds the model, the optimiser state and the step, so a run
interrupted and resumed produces the same weights as an uninterrupted one (same device).

Validation: ``val_batches`` batches from fixed seeds (independent of the training seed). For each
validation MLP the best decoder is the one with the smallest output MSE on the grid; its
*percentage error* is ``100 * mean_p |y_hat_p - y_p| / mean_p |y_p|`` over the grid points ``p``
(a relative L1 error, robust to outputs near 0), and the **MdPE** is the median of that error over
the validation MLPs (assumption: the paper reports MdPE without spelling out the per-MLP error).

Result folder (``--out``): ``config.json``, ``metrics.jsonl`` (``{"step", "loss", "lr"}`` every
``log_every`` steps, ``{"step", "val_loss", "val_mdpe", ...}`` at every validation),
``autoencoder.pt`` (the resumable checkpoint, written atomically every ``checkpoint_every`` steps
and at the end), ``summary.json`` and ``training.png``.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import torch
from pydantic import Field
from torch.optim import Optimizer
from torch.optim.lr_scheduler import CosineAnnealingLR, LRScheduler, StepLR

from archopt.errors import CheckpointError, InvalidSpec, TrainingDiverged
from archopt.latent.autoencoder import (
    AutoencoderConfig,
    MultiScaleAutoencoder,
    input_grid,
    training_loss,
)
from archopt.latent.generator import training_batch
from archopt.latent.validation import evaluate, percentage_errors
from archopt.runs import ResultDir, atomic_torch_save, torch_load
from archopt.runtime.devices import resolve_device, seed_everything, torch_generator
from archopt.runtime.progress import Progress
from archopt.runtime.settings import Settings
from archopt.training.schedules import StepSchedule, set_lr, with_warmup

__all__ = [
    "CHECKPOINT",
    "TrainConfig",
    "autoencoder_from_checkpoint",
    "evaluate",
    "load_autoencoder",
    "percentage_errors",
    "read_checkpoint",
    "train_autoencoder",
]

CHECKPOINT = "autoencoder.pt"
#: Steps of the CPU preset's schedule (``archopt latent train`` with the defaults; the shipped
#: sigmoid autoencoder was trained with it: 55 CPU-minutes on one thread; the shipped
#: leaky-ReLU one with ``--steps 25000``, 14 CPU-minutes).
CPU_STEPS = 100_000
#: The paper's scale: 150,001 batches x 10 epochs.
PAPER_STEPS = 150_001 * 10
_FORMAT = "archopt.latent.autoencoder/1"
# Training settings that may change between a run and its resumption (bookkeeping only).
_RESUMABLE_CHANGES = {"steps", "val_every", "checkpoint_every", "log_every", "val_batches",
                      "coverage_every", "coverage_mlps"}


class TrainConfig(Settings):
    """How to train: the paper's schedule by default (Adam 1e-4, x0.5 every 2 epochs of 150,001
    batches), or the CPU preset's (:meth:`cpu`: Adam 1e-3, linear warm-up, cosine to 0 over
    ``steps``). ``steps`` is the total number of batches."""

    what = "training config"

    steps: int = Field(1000, ge=0, description="total batches (paper: 150,001 x 10 epochs)")
    batch_size: int = Field(32, ge=1)
    lr: float = Field(1e-4, gt=0)
    schedule: Literal["step", "cosine"] = Field(
        "step", description="step: x decay every decay_epochs epochs (paper); cosine: to 0 "
                            "over steps")
    warmup_steps: int = Field(0, ge=0, description="linear warm-up from lr/warmup_steps")
    epoch_steps: int = Field(150_001, ge=1, description="batches per epoch (lr schedule)")
    decay: float = Field(0.5, gt=0, le=1, description="lr factor every `decay_epochs` epochs")
    decay_epochs: int = Field(2, ge=1)
    seed: int = 0
    val_every: int = Field(500, ge=1)
    val_batches: int = Field(8, ge=1)
    coverage_every: int = Field(0, ge=0, description="decoder coverage every N steps (and at "
                                "the end); 0 = only at the end")
    coverage_mlps: int = Field(64, ge=0, description="validation MLPs in the coverage figure "
                               "(0 = no coverage)")
    checkpoint_every: int = Field(500, ge=1)
    log_every: int = Field(50, ge=1)

    @classmethod
    def cpu(cls, **changes: Any) -> TrainConfig:
        """The CPU preset's schedule (a departure from the paper, see
        :mod:`archopt.latent.autoencoder`): Adam 1e-3, 200 warm-up steps, cosine to 0."""
        base: dict[str, Any] = dict(steps=CPU_STEPS, lr=1e-3, schedule="cosine",
                                    warmup_steps=200, val_every=5000, checkpoint_every=5000,
                                    coverage_every=0, coverage_mlps=128)
        return cls(**{**base, **changes})

    def lr_schedule(self) -> StepSchedule:
        """The learning rate of each step (0-based), as a function of the step
        (:mod:`archopt.training.schedules`).

        ``step``: ``lr * decay ** (step // (decay_epochs * epoch_steps))`` (``StepLR``);
        ``cosine``: ``lr * (1 + cos(pi * step / steps)) / 2`` (``CosineAnnealingLR`` to 0; steps
        past ``steps`` stay at 0); either times ``(step + 1) / warmup_steps`` during the warm-up.
        """
        def build(opt: Optimizer) -> LRScheduler:
            main: LRScheduler
            if self.schedule == "cosine":
                main = CosineAnnealingLR(opt, T_max=max(self.steps, 1), eta_min=0.0)
            else:
                main = StepLR(opt, self.decay_epochs * self.epoch_steps, self.decay)
            return with_warmup(opt, main, self.warmup_steps, scale=True)

        return StepSchedule(self.lr, build,
                            last=self.steps if self.schedule == "cosine" else None)


def _adam(params: Any, lr: float) -> torch.optim.Optimizer:
    """Adam, fused where this torch build supports it (2-3x faster steps on CPU)."""
    params = list(params)
    try:
        return torch.optim.Adam(params, lr=lr, fused=True)
    except (RuntimeError, TypeError, ValueError):  # older torch / unsupported device
        return torch.optim.Adam(params, lr=lr)


def _step_generator(seed: int, step: int, device: torch.device) -> torch.Generator:
    return torch_generator((int(seed) * 1_000_003 + int(step)) % (2**62), device)


class _Clock:
    """Wall and process-CPU seconds of training, summed over sessions (``lap`` banks them)."""

    def __init__(self, wall: float = 0.0, cpu: float = 0.0) -> None:
        self.wall, self.cpu = wall, cpu
        self.start()

    def start(self) -> None:
        self._w, self._c = time.perf_counter(), time.process_time()

    def wall_now(self) -> float:
        return self.wall + time.perf_counter() - self._w

    def lap(self) -> None:
        w, c = time.perf_counter(), time.process_time()
        self.wall += w - self._w
        self.cpu += c - self._c
        self._w, self._c = w, c


def _checkpoint(model: MultiScaleAutoencoder, opt: torch.optim.Optimizer | None,
                train: TrainConfig, step: int, elapsed: float, cpu: float = 0.0
                ) -> dict[str, Any]:
    return {"format": _FORMAT, "config": model.config.model_dump(mode="json"),
            "train": train.model_dump(mode="json"), "step": int(step), "elapsed_s": float(elapsed),
            "cpu_s": float(cpu),
            "model": model.state_dict(),
            "optimizer": opt.state_dict() if opt is not None else None}


def read_checkpoint(path: Path, device: torch.device | str = "cpu") -> dict[str, Any]:
    """Read an autoencoder checkpoint (a result folder or its ``.pt``) with the safe loader.

    Raises: CheckpointError when it is missing, unreadable or not an autoencoder checkpoint.
    """
    if path.is_dir():
        path = path / CHECKPOINT
    if not path.exists():
        raise CheckpointError(f"no autoencoder checkpoint at {path} (train one with `archopt "
                              "latent train --out DIR`, then pass DIR)")
    ck = torch_load(path, map_location=device, what="autoencoder checkpoint")
    if not isinstance(ck, dict) or ck.get("format") != _FORMAT:
        raise CheckpointError(f"{path} is not an archopt latent autoencoder checkpoint "
                              f"(expected format {_FORMAT!r})")
    return ck


def load_autoencoder(path: str | Path, device: torch.device | str | None = "cpu"
                     ) -> tuple[MultiScaleAutoencoder, dict[str, Any]]:
    """Load a trained autoencoder (a result folder of ``archopt latent train`` or its ``.pt``).

    Returns: ``(model in eval mode, info)`` with ``info`` = ``{"step", "elapsed_s", "cpu_s",
    "train", "config"}``.

    Raises: CheckpointError when the file is missing, unreadable or does not fit its config.
    """
    dev = resolve_device(device)
    return autoencoder_from_checkpoint(read_checkpoint(Path(path), dev), str(path), dev)


def autoencoder_from_checkpoint(ck: dict[str, Any], source: str,
                                device: torch.device | str = "cpu"
                                ) -> tuple[MultiScaleAutoencoder, dict[str, Any]]:
    """Build the model of a checkpoint dict already read (see :func:`load_autoencoder`);
    float16 weights (the shipped copies) are upcast to float32. ``source`` names it in errors.

    Raises: CheckpointError when it is not an autoencoder checkpoint or does not fit its config.
    """
    if not isinstance(ck, dict) or ck.get("format") != _FORMAT:
        raise CheckpointError(f"{source} is not an archopt latent autoencoder checkpoint "
                              f"(expected format {_FORMAT!r})")
    try:
        config = AutoencoderConfig(**ck["config"])
    except (InvalidSpec, TypeError) as err:
        raise CheckpointError(f"checkpoint {source} holds an invalid config: {err}") from None
    model = MultiScaleAutoencoder(config).to(device)
    try:
        model.load_state_dict({k: v.float() if v.is_floating_point() else v
                               for k, v in ck["model"].items()})
    except (RuntimeError, KeyError, AttributeError) as err:
        raise CheckpointError(f"checkpoint {source} does not match its config: "
                              f"{str(err).splitlines()[0]}") from None
    model.eval()
    return model, {k: ck.get(k) for k in ("step", "elapsed_s", "cpu_s", "train", "config")}


def _check_resumable(ck: dict[str, Any], config: AutoencoderConfig, train: TrainConfig,
                     path: Path) -> None:
    try:  # through the model: fields added since the checkpoint take their defaults
        old_cfg = AutoencoderConfig(**ck.get("config", {})).model_dump(mode="json")
    except (InvalidSpec, TypeError) as err:
        raise CheckpointError(f"{path} holds an invalid autoencoder config: {err}") from None
    new_cfg = config.model_dump(mode="json")
    diff = [k for k in new_cfg if old_cfg.get(k) != new_cfg[k]]
    old_tr = ck.get("train", {})
    new_tr = train.model_dump(mode="json")
    resumable = _RESUMABLE_CHANGES - ({"steps"} if new_tr.get("schedule") == "cosine" else set())
    diff += [k for k in new_tr if k not in resumable
             and old_tr.get(k, TrainConfig.model_fields[k].default) != new_tr[k]]
    if diff:
        details = ", ".join(f"{k}: {old_cfg.get(k, old_tr.get(k))!r} -> "
                            f"{new_cfg.get(k, new_tr.get(k))!r}" for k in diff)
        raise CheckpointError(f"{path} holds a run with other settings ({details}); resume it "
                              "with the same settings, use another --out, or --no-resume to "
                              "start over")


def _plot(rd: ResultDir, rows: list[dict[str, Any]], title: str) -> None:
    """Training loss; validation MdPE (ours) beside the constant and affine references and the
    decoder coverage; the fraction of validation MLPs beating the constant."""
    from archopt.runs.plotting import new_figure, save_png

    tr = [(r["step"], r["loss"]) for r in rows if "loss" in r]
    val = [r for r in rows if r.get("val_mdpe") is not None]
    fig = new_figure((14, 3.8))
    ax = fig.subplots(1, 3)
    if tr:
        ax[0].plot(*zip(*tr, strict=True), lw=1)
        ax[0].set_yscale("log")
    ax[0].set(xlabel="step", ylabel="min-over-decoders loss", title="training loss")
    for key, label, style in (("val_mdpe", "encoder (best decoder)", "o-"),
                              ("coverage_mdpe", "decoder coverage", "s-"),
                              ("constant_mdpe", "constant reference", "--"),
                              ("affine_mdpe", "affine reference", ":")):
        pts = [(r["step"], r[key]) for r in val if r.get(key) is not None]
        if pts:
            ax[1].plot(*zip(*pts, strict=True), style, label=label, ms=4)
    if val:
        ax[1].set_yscale("log")
        ax[1].legend(fontsize=8)
    ax[1].set(xlabel="step", ylabel="MdPE (%, ours)", title="validation MdPE")
    for key, label in (("beats_constant", "encoder"), ("coverage_beats_constant", "coverage")):
        pts = [(r["step"], 100 * r[key]) for r in val if r.get(key) is not None]
        if pts:
            ax[2].plot(*zip(*pts, strict=True), "o-", label=label, ms=4)
    if val:
        ax[2].legend(fontsize=8)
    ax[2].set(xlabel="step", ylabel="% of validation MLPs", ylim=(0, 100),
              title="MLPs beating the constant")
    fig.suptitle(title)
    fig.tight_layout()
    save_png(fig, rd.file("training.png"), dpi=100, tight=False)


def train_autoencoder(out: str | Path, config: AutoencoderConfig, train: TrainConfig, *,
                      device: str | torch.device | None = "auto", resume: bool = True,
                      max_minutes: float | None = None,
                      progress: Progress | None = None,
                      init: Mapping[str, torch.Tensor] | None = None,
                      init_source: str | None = None) -> dict[str, Any]:
    """Train (or resume training) an autoencoder into the result folder ``out``.

    Args:
        out: result folder; an ``autoencoder.pt`` already there is resumed when ``resume``.
        config: architecture and MLP family.
        train: schedule and bookkeeping; ``train.steps`` is the total (a resumed run continues to
            it; a run already there only re-validates).
        device: ``auto``/``cpu``/``cuda``.
        resume: False starts over (an existing checkpoint and log are replaced).
        max_minutes: optional wall-time bound for this call: training stops (with a checkpoint
            and a validation) at the first step past it; rerun to continue.
        progress: an optional progress bar (advanced once per step).
        init: fine-tuning: a ``state_dict`` (e.g. of :func:`~archopt.latent.pretrained.
            load_pretrained`'s model) the model starts from when no checkpoint is resumed (a
            fresh optimiser, step 0); ``init_source`` names it in ``config.json``.

    Returns: the summary (also written to ``summary.json``): ``steps``, ``minutes`` (training
    wall time, all sessions), ``final_loss`` (mean of the last logged losses), ``val_mdpe``,
    ``val_mdpe_by_depth``, ``decoder_share``, ``params``, ``device``.

    Raises: CheckpointError (an incompatible checkpoint), TrainingDiverged (non-finite loss; the
    last checkpoint is kept).
    """
    dev = resolve_device(device)
    rd = ResultDir(out)
    ck_path = rd.file(CHECKPOINT)
    seed_everything(train.seed)
    model = MultiScaleAutoencoder(config).to(dev)
    opt = _adam(model.parameters(), train.lr)
    step, saved_step = 0, -1
    clock = _Clock()
    if resume and ck_path.exists():
        ck = read_checkpoint(ck_path, dev)
        _check_resumable(ck, config, train, ck_path)
        try:
            model.load_state_dict(ck["model"])
            if ck.get("optimizer") is not None:
                opt.load_state_dict(ck["optimizer"])
        except (RuntimeError, KeyError, ValueError) as err:
            raise CheckpointError(f"{ck_path} does not fit this model: "
                                  f"{str(err).splitlines()[0]}") from None
        step = int(ck["step"])
        clock = _Clock(float(ck.get("elapsed_s", 0.0)), float(ck.get("cpu_s", 0.0)))
        saved_step = step
        rd.keep_metrics(lambda r: int(r.get("step", 0)) <= step)
    else:
        rd.write_lines(rd.METRICS, [])
        if init is not None:
            try:
                model.load_state_dict({k: v.float() if v.is_floating_point() else v
                                       for k, v in init.items()})
            except (RuntimeError, KeyError) as err:
                raise CheckpointError(f"the initial weights ({init_source or 'init'}) do not "
                                      f"fit this model: {str(err).splitlines()[0]}") from None
    rd.write_config({"command": "latent train", "autoencoder": config.model_dump(mode="json"),
                     "train": train.model_dump(mode="json"), "device": str(dev),
                     "resumed_from_step": step, "init_from": init_source})
    params = sum(p.numel() for p in model.parameters())
    grid = input_grid(config.n_in, config.grid_points, device=dev)

    def save() -> None:
        nonlocal saved_step
        atomic_torch_save(_checkpoint(model, opt, train, step, clock.wall, clock.cpu), ck_path)
        saved_step = step

    def validate(with_coverage: bool) -> dict[str, Any]:
        v = {"step": step, **evaluate(
            model, batches=train.val_batches, batch_size=train.batch_size, device=dev,
            coverage_mlps=train.coverage_mlps if with_coverage else 0)}
        rd.append_metrics(v)
        if progress is not None:
            cov = (f", coverage MdPE {v['coverage_mdpe']:.1f}%"
                   if v.get("coverage_mdpe") is not None else "")
            progress.log(f"step {step}: val MdPE {v['val_mdpe']:.1f}% (constant "
                         f"{v['constant_mdpe']:.1f}%, affine {v['affine_mdpe']:.1f}%){cov}")
        return v

    model.train()
    recent: list[float] = []
    window: list[float] = []
    parts_window: dict[str, list[float]] = {}
    if progress is not None:
        progress.done = float(step)
    clock.start()
    last_val: dict[str, Any] | None = None
    deadline = None if max_minutes is None else time.perf_counter() + 60 * max_minutes
    schedule = train.lr_schedule()
    while step < train.steps:
        if deadline is not None and time.perf_counter() > deadline:
            break
        lr = schedule(step)
        set_lr(opt, lr)
        g = _step_generator(train.seed, step, dev)
        arrays = training_batch(train.batch_size, config.layout, generator=g,
                                sparsities=config.sparsities, widths=config.widths,
                                weight_range=config.weight_range, device=dev)
        loss, parts = training_loss(model, arrays, grid, generator=g)
        if not torch.isfinite(loss):
            raise TrainingDiverged(f"the loss became {loss.item()} at step {step}; the last "
                                   f"checkpoint ({ck_path}) is kept; try a smaller --lr")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
        value = loss.item()
        window.append(value)
        for k, v in parts.items():
            parts_window.setdefault(k, []).append(v)
        if step % train.log_every == 0 or step == train.steps:
            row = {"step": step, "loss": sum(window) / len(window), "lr": lr,
                   **{k: sum(v) / len(v) for k, v in parts_window.items()},
                   "elapsed_s": clock.wall_now()}
            rd.append_metrics(row)
            recent = [*recent, row["loss"]][-5:]
            window, parts_window = [], {}
        if progress is not None:
            progress.advance(1, loss=value)
        if step % train.val_every == 0 or step == train.steps:
            cov_due = step == train.steps or (train.coverage_every > 0
                                              and step % train.coverage_every == 0)
            last_val = validate(cov_due and train.coverage_mlps > 0)
        if step % train.checkpoint_every == 0 or step == train.steps:
            clock.lap()
            save()
    if window:  # stopped by max_minutes between two log rows
        rd.append_metrics({"step": step, "loss": sum(window) / len(window),
                           "lr": schedule(step - 1), "elapsed_s": clock.wall_now()})
        recent = [*recent, sum(window) / len(window)][-5:]
    if last_val is None or last_val["step"] != step:
        prior = [r for r in rd.read_metrics() if "val_mdpe" in r and r.get("step") == step]
        last_val = prior[-1] if prior else validate(train.coverage_mlps > 0)
    clock.lap()
    if saved_step != step:
        save()
    rows = rd.read_metrics()
    if not recent:
        recent = [r["loss"] for r in rows if "loss" in r][-5:]
    summary = {
        "command": "latent train", "activation": config.activation, "steps": step,
        "minutes": clock.wall / 60, "cpu_minutes": clock.cpu / 60,
        "final_loss": sum(recent) / len(recent) if recent else None,
        **{k: v for k, v in last_val.items() if k != "step"}, "params": params, "device": str(dev),
        "checkpoint": str(ck_path),
    }
    rd.write_summary(summary)
    _plot(rd, rows, f"SWAT-NN autoencoder ({config.activation})")
    return summary
