"""Learning-rate schedules: ``torch.optim.lr_scheduler`` composed with a linear warm-up, read as a
pure function of the optimiser step.

One implementation serves every loop that trains weights: the trainer
(:func:`archopt.training.train`), the structure loop (:func:`archopt.structure.train_loop`) and the
SWAT-NN autoencoder trainer (:mod:`archopt.latent.training`). A loop sets every parameter group's
``lr`` to ``schedule(step)`` before each optimiser step, so a schedule carries no state into a
checkpoint: a resumed run only needs the step counter.

The values come from torch's own schedulers (``LinearLR`` for the warm-up, then
``CosineAnnealingLR`` / ``MultiStepLR`` / ``StepLR`` / ``ConstantLR``), stepped on a stand-in
optimiser; :class:`StepSchedule` walks that scheduler forward to the step asked for (backwards:
it starts again), so reading the steps in order costs one scheduler step each.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch.optim import Optimizer
from torch.optim.lr_scheduler import (
    ChainedScheduler,
    ConstantLR,
    CosineAnnealingLR,
    LinearLR,
    LRScheduler,
    MultiStepLR,
    SequentialLR,
)

from archopt.training.config import TrainConfig

__all__ = ["LRSchedule", "StepSchedule", "set_lr", "with_warmup"]


def with_warmup(optimizer: Optimizer, main: LRScheduler, warmup_steps: int, *,
                scale: bool = False) -> LRScheduler:
    """``main`` behind a linear warm-up of ``warmup_steps`` optimiser steps (0: ``main`` alone).

    The warm-up factor of step ``s < W`` is ``(s + 1) / W`` (``LinearLR`` from ``1/W`` to 1).

    Args:
        optimizer: the optimiser both schedulers drive.
        main: the schedule proper, built on ``optimizer``.
        warmup_steps: ``W``.
        scale: False -- the warm-up comes first and ``main`` starts at step ``W`` from its own
            step 0 (``SequentialLR``: ``lr (s + 1) / W``, then ``main(s - W)``); True -- the
            factor multiplies ``main``'s value at the same step (``ChainedScheduler``:
            ``main(s) (s + 1) / W`` during the warm-up).
    """
    if warmup_steps <= 0:
        return main
    warm = LinearLR(optimizer, start_factor=1.0 / warmup_steps, end_factor=1.0,
                    total_iters=max(warmup_steps - 1, 1))
    if scale:
        return ChainedScheduler([warm, main], optimizer=optimizer)
    return SequentialLR(optimizer, [warm, main], milestones=[warmup_steps])


class StepSchedule:
    """The learning rate of each 0-based optimiser step, as torch's scheduler gives it.

    Args:
        lr: the base learning rate.
        build: makes the scheduler on the optimiser it is given (e.g. with :func:`with_warmup`).
        last: steps past ``last`` take the value of step ``last`` (None: no bound).
    """

    def __init__(self, lr: float, build: Callable[[Optimizer], LRScheduler], *,
                 last: int | None = None) -> None:
        self.lr = float(lr)
        self.last = last
        self._build = build
        self._restart()

    def _restart(self) -> None:
        self._opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=self.lr)
        self._scheduler = self._build(self._opt)
        self._opt.step()  # no gradients: a no-op that tells torch the optimiser ran first
        self._step = 0

    def __call__(self, step: int) -> float:
        """Learning rate of 0-based optimiser step ``step``."""
        if self.last is not None:
            step = min(step, self.last)
        if step < self._step:
            self._restart()
        while self._step < step:
            self._scheduler.step()
            self._step += 1
        return float(self._opt.param_groups[0]["lr"])


class LRSchedule(StepSchedule):
    """The learning rate at each optimiser step of a run of :class:`TrainConfig`.

    Args:
        config: ``lr``, ``schedule``, ``milestones``, ``gamma``, ``min_lr``, ``warmup_epochs``,
            ``epochs`` are read.
        steps_per_epoch: optimiser steps in one epoch (>= 1).

    Step ``s`` (0-based) of ``T = epochs * steps_per_epoch``, with ``W`` warm-up steps
    (``round(warmup_epochs * steps_per_epoch)``):

    - warm-up (``s < W``): ``lr * (s + 1) / W`` (``LinearLR``);
    - ``cosine``: ``min_lr + (lr - min_lr) * (1 + cos(pi * (s - W) / (T - W))) / 2``
      (Loshchilov & Hutter, "SGDR", ICLR 2017, without restarts; the first post-warm-up step is
      at ``lr``, the last just above ``min_lr``): ``CosineAnnealingLR(T_max=T - W,
      eta_min=min_lr)``;
    - ``step``: ``lr * gamma ** k`` where ``k`` counts the milestones passed; milestone ``m``
      falls at epoch ``round(m * epochs)`` (``MultiStepLR``, counted in steps);
    - ``constant``: ``lr`` (``ConstantLR(factor=1)``).

    Steps past ``T`` keep the value of step ``T``.
    """

    def __init__(self, config: TrainConfig, steps_per_epoch: int) -> None:
        if steps_per_epoch < 1:
            raise ValueError(f"steps_per_epoch must be >= 1, got {steps_per_epoch}")
        self.kind = config.schedule
        self.min_lr = config.min_lr
        self.gamma = config.gamma
        self.steps_per_epoch = steps_per_epoch
        self.total = config.epochs * steps_per_epoch
        self.warmup = min(round(config.warmup_epochs * steps_per_epoch), self.total - 1)
        self.milestone_steps = sorted(round(m * config.epochs) * steps_per_epoch
                                      for m in config.milestones)
        super().__init__(config.lr, self._scheduler_for, last=self.total)

    def _scheduler_for(self, opt: Optimizer) -> LRScheduler:
        main: LRScheduler
        if self.kind == "constant":
            main = ConstantLR(opt, factor=1.0, total_iters=0)
        elif self.kind == "step":
            main = MultiStepLR(opt, [m - self.warmup for m in self.milestone_steps], self.gamma)
        else:
            main = CosineAnnealingLR(opt, T_max=max(self.total - self.warmup, 1),
                                     eta_min=self.min_lr)
        return with_warmup(opt, main, self.warmup)

    def __repr__(self) -> str:
        return (f"LRSchedule({self.kind}, lr={self.lr}, total={self.total}, "
                f"warmup={self.warmup})")


def set_lr(optimizer: Optimizer, lr: float) -> None:
    """Set the learning rate of every parameter group."""
    for group in optimizer.param_groups:
        group["lr"] = lr
