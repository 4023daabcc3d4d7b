"""The joint loop: a unit that never helps is switched off, checkpoint / resume continues
exactly, options are checked."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from archopt.data import ImageDataset, load_dataset
from archopt.errors import ArchoptError
from archopt.runs import ResultDir
from archopt.spaces import MLPSpec
from archopt.structure import SNG, Bernoulli, MaskedMLP, make_optimizer, train_loop
from archopt.structure.run import default_train_config


def _toy_data(n: int = 1500, seed: int = 0) -> ImageDataset:
    """4x4 images; the class is which third of the pixels is brightest."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 256, (n + 300, 1, 4, 4), generator=g, dtype=torch.uint8)
    flat = x.view(len(x), -1).float()
    y = torch.stack([flat[:, :5].mean(1), flat[:, 5:10].mean(1), flat[:, 10:].mean(1)],
                    1).argmax(1)
    return ImageDataset("toy", x[:n], y[:n], x[n:], y[n:], 3, ("a", "b", "c"))


def test_units_that_never_help_are_switched_off():
    torch.manual_seed(0)
    net = MaskedMLP(MLPSpec(in_features=16, widths=[12], num_classes=3))
    useless = torch.arange(6, 12)
    out_layer = net.layers[1]
    with torch.no_grad():
        out_layer.weight[:, useless] = 0  # these units' outputs reach nothing ...
    out_layer.weight.register_hook(lambda g: g.index_fill(1, useless, 0))  # ... ever
    opt = SNG(Bernoulli(net.d), penalty=2**-2, eta=0.05, seed=0)
    cfg = default_train_config("mlp-units", epochs=10, lr=0.05, batch_size=32, device="cpu")
    res = train_loop(net, _toy_data(1000), cfg, structure=opt)
    theta = opt.theta
    assert torch.all(out_layer.weight[:, useless] == 0)
    assert np.all(theta[6:] < 0.5), theta  # every never-helping unit is off in M*
    assert theta[:6].mean() > theta[6:].mean() + 0.2
    assert res.steps == 10 * (1000 // 32) and len(res.history) == 10


def _digits_run(out, epochs, name="sng", interrupt_after=None, **kw):
    ds = load_dataset("digits")
    torch.manual_seed(0)
    net = MaskedMLP(MLPSpec(in_features=64, widths=[16, 16], num_classes=10))
    opt = make_optimizer(name, Bernoulli(net.d), penalty=2**-5, seed=1, eta=0.02)
    cfg = default_train_config("mlp-units", epochs=epochs, device="cpu", **kw)

    def stop(row):
        if interrupt_after is not None and row["epoch"] == interrupt_after:
            raise KeyboardInterrupt

    try:
        train_loop(net, ds, cfg, structure=opt, out=ResultDir(out) if out else None,
                   resume=True, on_epoch=stop)
    except KeyboardInterrupt:
        return None
    return net, opt


@pytest.mark.parametrize("name", ["sng", "asng"])
def test_resume_continues_exactly(tmp_path, name):
    ref_net, ref_opt = _digits_run(None, 3, name)
    assert _digits_run(tmp_path, 3, name, interrupt_after=2) is None
    rows = ResultDir(tmp_path).read_metrics()
    assert [r["epoch"] for r in rows] == [1, 2]
    net, opt = _digits_run(tmp_path, 3, name)  # picks up the checkpoint of epoch 2
    np.testing.assert_array_equal(opt.theta, ref_opt.theta)
    for a, b in zip(net.state_dict().values(), ref_net.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert [r["epoch"] for r in ResultDir(tmp_path).read_metrics()] == [1, 2, 3]
    assert opt.steps == ref_opt.steps


def test_resume_with_other_options_is_refused(tmp_path):
    _digits_run(tmp_path, 1)
    with pytest.raises(ArchoptError, match=r"different options \(lr\)"):
        _digits_run(tmp_path, 1, lr=0.5)


def test_loop_checks_its_inputs():
    ds = load_dataset("digits")
    cfg = default_train_config("mlp-units", epochs=1, device="cpu")
    plain = MLPSpec(in_features=64, widths=[8], num_classes=10).build()
    with pytest.raises(ArchoptError, match="Supernet"):
        train_loop(plain, ds, cfg, structure=SNG(Bernoulli(8)))
    net = MaskedMLP(MLPSpec(in_features=64, widths=[8], num_classes=10))
    with pytest.raises(ArchoptError, match="9 variables, the supernet 8 bits"):
        train_loop(net, ds, cfg, structure=SNG(Bernoulli(9)))
    big = default_train_config("mlp-units", epochs=1, device="cpu", batch_size=4096)
    # as the trainer: a batch larger than the training set trains on the set as one batch
    r = train_loop(net, ds, big, structure=SNG(Bernoulli(8)))
    assert r.steps == 1


def test_amp_on_cpu_is_refused_in_one_line():
    ds = _toy_data(200)
    net = MaskedMLP(MLPSpec(in_features=16, widths=[4], num_classes=3))
    cfg = default_train_config("mlp-units", epochs=1, device="cpu", amp=True)
    with pytest.raises(ArchoptError, match="amp") as err:
        train_loop(net, ds, cfg, structure=SNG(Bernoulli(net.d)))
    assert "\n" not in str(err.value)


def test_loop_schedule_equals_the_trainers(monkeypatch, tmp_path):
    """Warm-up + step schedule: the lr of every optimiser step of the structure loop equals the
    trainer's (both go through training.schedules.LRSchedule)."""
    import archopt.training.schedules as schedules
    import archopt.training.trainer as trainer
    from archopt.training import train

    ds = _toy_data(640)
    cfg = default_train_config("mlp-units", epochs=4, batch_size=64, device="cpu",
                               warmup_epochs=1.5, lr=0.05, milestones=[0.5, 0.75])
    seen: dict[str, list[float]] = {"loop": [], "trainer": []}
    key = ["loop"]

    def record(opt, lr):
        seen[key[0]].append(lr)
        for g in opt.param_groups:
            g["lr"] = lr

    monkeypatch.setattr(schedules, "set_lr", record)
    monkeypatch.setattr(trainer, "set_lr", record)
    net = MaskedMLP(MLPSpec(in_features=16, widths=[6], num_classes=3))
    train_loop(net, ds, cfg, structure=SNG(Bernoulli(net.d)))
    key[0] = "trainer"
    train(MLPSpec(in_features=16, widths=[6], num_classes=3), ds, cfg, progress=False)
    assert len(seen["loop"]) == 4 * 10
    assert seen["loop"] == seen["trainer"][:len(seen["loop"])]
    # warm-up over 15 steps, then 0.05, x0.1 at epoch 2 and epoch 3
    assert seen["loop"][0] == pytest.approx(0.05 / 15)
    assert seen["loop"][14] == pytest.approx(0.05)
    assert seen["loop"][19] == pytest.approx(0.05)
    assert seen["loop"][20] == pytest.approx(0.005)
    assert seen["loop"][30] == pytest.approx(0.0005)


def test_gradient_clipping_and_drop_last_are_honoured():
    ds = _toy_data(650)  # 650 = 10 batches of 64 + 10
    torch.manual_seed(0)
    net = MLPSpec(in_features=16, widths=[6], num_classes=3).build()
    before = [p.detach().clone() for p in net.parameters()]
    cfg = default_train_config("mlp-units", epochs=1, batch_size=64, device="cpu", lr=0.1,
                               weight_decay=0.0, grad_clip=1e-6, drop_last=False)
    r = train_loop(net, ds, cfg, max_steps_per_epoch=1)
    moved = torch.sqrt(sum(((p.detach() - b) ** 2).sum() for p, b in
                           zip(net.parameters(), before, strict=True)))
    assert 0 < moved <= 0.1 * 1.9 * 1e-6 * 1.001  # first Nesterov step: lr (1 + m) g_clipped
    r = train_loop(net, ds, cfg)
    assert r.steps == 11  # the incomplete last batch is kept
    r = train_loop(net, ds, cfg.model_copy(update={"drop_last": True}))
    assert r.steps == 10


def test_label_smoothing_reaches_the_per_structure_losses():
    from archopt.structure.loop import _PerStructureLoss

    torch.manual_seed(0)
    logits, y = torch.randn(2 * 8, 5), torch.randint(0, 5, (8,))
    crit = _PerStructureLoss(2, 0.2)
    mean = crit(logits, y.repeat(2))
    want = [torch.nn.functional.cross_entropy(logits[i * 8:(i + 1) * 8], y, label_smoothing=0.2)
            for i in range(2)]
    assert torch.allclose(crit.losses, torch.stack(want))
    assert torch.allclose(mean, torch.stack(want).mean())


def test_useless_bits_end_decided_off_within_the_rule():
    """Unscaled eta = 1/d, lambda = 2: bits that never change the loss are carried off by the
    penalty; the rule (steps_to_decide, the penalty's drift time) predicts when. At a quarter of
    it few are decided; at twice it nearly all are, and none is kept by M*."""
    from archopt.structure.sng import steps_to_decide

    d, eps = 40, 0.25
    t_rule = steps_to_decide(1 / d, eps, 1 / d)
    assert t_rule == pytest.approx(np.log(0.925 / 0.075) * d / eps)
    early, late = [], []
    for seed in range(3):
        rng = np.random.default_rng(seed)
        opt = SNG(Bernoulli(d), penalty=eps, seed=seed)  # eta = 1/d
        for t in range(int(2 * t_rule)):
            m = opt.ask()
            opt.tell(m, -m[:, :20].sum(1) + rng.normal(0, 1, 2))  # bits 20.. are useless
            if t == int(t_rule / 4):
                early.append(np.mean(opt.theta[20:] <= 1 / d + 0.05))
        late.append(np.mean(opt.theta[20:] <= 1 / d + 0.05))
        assert not opt.mode()[20:].any()
    assert max(early) < 0.2
    assert min(late) >= 0.9
