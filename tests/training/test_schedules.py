"""Learning-rate schedules against torch's own schedulers (an independent implementation)."""

from __future__ import annotations

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
