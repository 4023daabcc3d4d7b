"""Learning-rate schedules against torch's own schedulers (an independent implementation)."""

from __future__ import annotations

import math

import pytest
import torch

from archopt.training import TrainConfig
from archopt.training.schedules import LRSchedule, set_lr


def _torch_lrs(scheduler_cls, steps: int, lr: float, per: int = 1, **kw) -> list[float]:
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=lr)
    sched = scheduler_cls(opt, **kw)
    out = []
    for s in range(steps):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        if (s + 1) % per == 0:
            sched.step()
    return out


def test_cosine_equals_torch_cosine_annealing():
    cfg = TrainConfig(epochs=4, lr=0.2, min_lr=0.01, schedule="cosine")
    sched = LRSchedule(cfg, steps_per_epoch=25)
    ref = _torch_lrs(torch.optim.lr_scheduler.CosineAnnealingLR, 100, 0.2, T_max=100,
                     eta_min=0.01)
    assert [sched(s) for s in range(100)] == pytest.approx(ref, rel=1e-9, abs=1e-12)


def test_step_equals_torch_multistep_per_epoch():
    cfg = TrainConfig(epochs=8, lr=0.1, schedule="step", milestones=[0.5, 0.75], gamma=0.2)
    sched = LRSchedule(cfg, steps_per_epoch=3)
    ref = _torch_lrs(torch.optim.lr_scheduler.MultiStepLR, 24, 0.1, per=3, milestones=[4, 6],
                     gamma=0.2)
    assert [sched(s) for s in range(24)] == pytest.approx(ref, rel=1e-12)


def test_warmup_then_cosine_and_constant():
    cfg = TrainConfig(epochs=5, lr=1.0, warmup_epochs=1, schedule="cosine")
    sched = LRSchedule(cfg, steps_per_epoch=10)
    assert [sched(s) for s in range(10)] == pytest.approx([(s + 1) / 10 for s in range(10)])
    ref = _torch_lrs(torch.optim.lr_scheduler.CosineAnnealingLR, 40, 1.0, T_max=40)
    assert [sched(s) for s in range(10, 50)] == pytest.approx(ref)
    const = LRSchedule(TrainConfig(epochs=3, lr=0.3, schedule="constant"), 7)
    assert {const(s) for s in range(21)} == {0.3}


def test_set_lr_sets_every_group():
    a, b = torch.zeros(1, requires_grad=True), torch.zeros(1, requires_grad=True)
    opt = torch.optim.SGD([{"params": [a]}, {"params": [b], "lr": 5.0}], lr=1.0)
    set_lr(opt, 0.25)
    assert [g["lr"] for g in opt.param_groups] == [0.25, 0.25]


# The closed forms the loops used before they shared torch's schedulers (training.schedules
# before the refactor, latent.training.TrainConfig.lr_at): every step must give the same lr.
def _old_train_lr(cfg: TrainConfig, per: int, step: int) -> float:
    total = cfg.epochs * per
    warmup = min(round(cfg.warmup_epochs * per), total - 1)
    if step < warmup:
        return cfg.lr * (step + 1) / warmup
    if cfg.schedule == "constant":
        return cfg.lr
    if cfg.schedule == "step":
        ms = sorted(round(m * cfg.epochs) * per for m in cfg.milestones)
        return cfg.lr * cfg.gamma ** sum(1 for m in ms if step >= m)
    t = min(step - warmup, total - warmup)
    span = max(total - warmup, 1)
    return cfg.min_lr + (cfg.lr - cfg.min_lr) * (1 + math.cos(math.pi * t / span)) / 2


def _old_latent_lr(tc, step: int) -> float:
    if tc.schedule == "cosine":
        lr = tc.lr * 0.5 * (1 + math.cos(math.pi * min(step, tc.steps) / max(tc.steps, 1)))
    else:
        lr = tc.lr * tc.decay ** (step // (tc.decay_epochs * tc.epoch_steps))
    if step < tc.warmup_steps:
        lr *= (step + 1) / tc.warmup_steps
    return lr


_TRAIN_CASES = [
    dict(epochs=4, schedule="cosine", min_lr=1e-4),
    dict(epochs=5, schedule="cosine", warmup_epochs=1, min_lr=1e-3),
    dict(epochs=3, schedule="cosine", warmup_epochs=0.34),  # one warm-up step at per=3
    dict(epochs=10, schedule="step", milestones=[0.5, 0.75], gamma=0.2, warmup_epochs=2),
    dict(epochs=10, schedule="step", milestones=[0.1, 0.3, 0.3], warmup_epochs=4),  # inside it
    dict(epochs=3, schedule="step", milestones=[0.1], gamma=0.5),  # milestone at step 0
    dict(epochs=6, schedule="constant", warmup_epochs=2.5),
    dict(epochs=1, schedule="cosine"),
]


@pytest.mark.parametrize("kw", _TRAIN_CASES)
@pytest.mark.parametrize("per", [1, 3, 25])
def test_train_schedule_equals_the_former_closed_form(kw, per):
    cfg = TrainConfig(lr=0.1, **kw)
    sched = LRSchedule(cfg, steps_per_epoch=per)
    steps = range(cfg.epochs * per + 5)  # a few past the end: they keep the last value
    got = [sched(s) for s in steps]
    want = [_old_train_lr(cfg, per, s) for s in steps]
    assert got == pytest.approx(want, rel=1e-12, abs=1e-15)
    assert sched(2) == pytest.approx(want[2], rel=1e-12)  # read backwards: starts again


@pytest.mark.parametrize("kw", [
    dict(schedule="cosine", steps=400, warmup_steps=60, lr=1e-3),
    dict(schedule="cosine", steps=50, lr=1e-3),
    dict(schedule="step", steps=300, warmup_steps=25, epoch_steps=40, decay_epochs=2),
    dict(schedule="step", steps=90, epoch_steps=7, decay_epochs=1, decay=0.9, warmup_steps=1),
])
def test_latent_schedule_equals_the_former_closed_form(kw):
    from archopt.latent.training import TrainConfig as LatentTrainConfig

    tc = LatentTrainConfig(**kw)
    sched = tc.lr_schedule()
    steps = range(tc.steps + 3)
    assert [sched(s) for s in steps] == pytest.approx([_old_latent_lr(tc, s) for s in steps],
                                                      rel=1e-12, abs=1e-15)
