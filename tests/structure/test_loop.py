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
    with pytest.raises(ArchoptError, match="smaller than one batch"):
        train_loop(net, ds, big, structure=SNG(Bernoulli(8)))
