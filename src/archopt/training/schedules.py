"""Learning-rate schedules as pure functions of the optimiser step.

The trainer sets every parameter group's ``lr`` to ``schedule(step)`` before each step, so the
schedule has no state of its own: a resumed run only needs the step counter.
"""

from __future__ import annotations

import math

from torch.optim import Optimizer

from archopt.training.config import TrainConfig

__all__ = ["LRSchedule", "set_lr"]


class LRSchedule:
    """The learning rate at each optimiser step of a run.

    Args:
        config: ``lr``, ``schedule``, ``milestones``, ``gamma``, ``min_lr``, ``warmup_epochs``,
            ``epochs`` are read.
        steps_per_epoch: optimiser steps in one epoch (>= 1).

    Step ``s`` (0-based) of ``T = epochs * steps_per_epoch``, with ``W`` warm-up steps
    (``round(warmup_epochs * steps_per_epoch)``):

    - warm-up (``s < W``): ``lr * (s + 1) / W``;
    - ``cosine``: ``min_lr + (lr - min_lr) * (1 + cos(pi * (s - W) / (T - W))) / 2``
      (Loshchilov & Hutter, "SGDR", ICLR 2017, without restarts; the first post-warm-up step is
      at ``lr``, the last just above ``min_lr``) -- the same values as
      ``torch.optim.lr_scheduler.CosineAnnealingLR(T_max=T - W, eta_min=min_lr)``;
    - ``step``: ``lr * gamma ** k`` where ``k`` counts the milestones passed; milestone ``m``
      falls at epoch ``round(m * epochs)`` (as ``MultiStepLR`` stepped per epoch);
    - ``constant``: ``lr``.
    """

    def __init__(self, config: TrainConfig, steps_per_epoch: int) -> None:
        if steps_per_epoch < 1:
            raise ValueError(f"steps_per_epoch must be >= 1, got {steps_per_epoch}")
        self.kind = config.schedule
        self.lr = config.lr
        self.min_lr = config.min_lr
        self.gamma = config.gamma
        self.steps_per_epoch = steps_per_epoch
        self.total = config.epochs * steps_per_epoch
        self.warmup = min(round(config.warmup_epochs * steps_per_epoch), self.total - 1)
        self.milestone_steps = sorted(round(m * config.epochs) * steps_per_epoch
                                      for m in config.milestones)

    def __call__(self, step: int) -> float:
        """Learning rate of 0-based optimiser step ``step``."""
        if step < self.warmup:
            return self.lr * (step + 1) / self.warmup
        if self.kind == "constant":
            return self.lr
        if self.kind == "step":
            passed = sum(1 for m in self.milestone_steps if step >= m)
            return self.lr * self.gamma**passed
        t = min(step - self.warmup, self.total - self.warmup)
        span = max(self.total - self.warmup, 1)
        return self.min_lr + (self.lr - self.min_lr) * (1 + math.cos(math.pi * t / span)) / 2

    def __repr__(self) -> str:
        return (f"LRSchedule({self.kind}, lr={self.lr}, total={self.total}, "
                f"warmup={self.warmup})")


def set_lr(optimizer: Optimizer, lr: float) -> None:
    """Set the learning rate of every parameter group."""
    for group in optimizer.param_groups:
        group["lr"] = lr
