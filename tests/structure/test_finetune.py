"""From M* to a shipped model: scaled compaction, BatchNorm re-estimation, the fine-tuned
compact network of ``archopt structure`` (exactly the selected units / connections), and the
shrinking baselines (Torch-Pruning within 1 % of a params target, random units)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

from archopt.data import load_dataset
from archopt.data.dataset import normalize
from archopt.errors import InvalidSpec
from archopt.measure import count_params
from archopt.runs import read_json
from archopt.spaces import MLPSpec
from archopt.spaces.registry import spec_from_dict
from archopt.structure import MaskedDenseNet, MaskedMLP, compact, max_output_difference
from archopt.structure.finetune import recalibrate_bn
from archopt.structure.resnet import MaskedResNet
from archopt.structure.shrink import matched_widths, mlp_params, random_units
from archopt.training import load_checkpoint, load_model
from tests.structure.test_cli import TINY_DENSENET, TINY_MLP, _spec
from tests.structure.test_resnet_supernet import _tiny_resnet
from tests.structure.test_supernets import _randomise_bn, _tiny_densenet


def _connected(net, rng, p=0.6):
    while True:
        m = rng.random(net.d) < p
        try:
            compact(net, m)
            return m
        except InvalidSpec:
            continue


@pytest.mark.parametrize("kind", ["mlp", "densenet", "resnet"])
@pytest.mark.parametrize("seed", range(3))
def test_scaled_compaction_equals_the_scaled_masked_supernet(kind, seed):
    torch.manual_seed(seed)
    if kind == "mlp":
        net, x = MaskedMLP(MLPSpec(in_features=7, widths=[6, 5, 4], num_classes=3)), \
            torch.randn(9, 7)
    elif kind == "densenet":
        net, x = MaskedDenseNet(_tiny_densenet(seed == 1, layers=3)), torch.randn(4, 1, 8, 8)
    else:
        net, x = MaskedResNet(_tiny_resnet()), torch.randn(4, 1, 8, 8)
    if kind != "mlp":
        _randomise_bn(net, seed)
    rng = np.random.default_rng(seed)
    m = _connected(net, rng)
    scale = rng.uniform(0.5, 1.0, net.d)
    c = compact(net, m, scale)
    assert max_output_difference(net, c, x) < 1e-5
    plain = compact(net, m)
    c.module.eval()
    plain.module.eval()
    assert (c.module(x) - plain.module(x)).abs().max() > 1e-3  # the scale did act
    # by hand for the MLP: the layer after hidden layer i reads its units times scale
    if kind == "mlp":
        s1 = torch.as_tensor(scale[:6][m[:6]], dtype=torch.float32)
        torch.testing.assert_close(c.module.layers[1].weight, plain.module.layers[1].weight * s1)


def test_a_bad_scale_is_refused():
    net = MaskedMLP(MLPSpec(in_features=4, widths=[3], num_classes=2))
    for bad in (np.ones(2), np.array([1.0, 0.0, 1.0]), np.array([1.0, np.nan, 1.0])):
        with pytest.raises(Exception, match="scale"):
            compact(net, np.ones(3, bool), bad)


def test_recalibrate_bn_sets_the_statistics_of_the_data():
    ds = load_dataset("digits")
    net = nn.Sequential(nn.BatchNorm2d(1), nn.Flatten(), nn.Linear(64, 10))
    net[0].running_mean.fill_(5.0)
    n = recalibrate_bn(net, ds, examples=500, batch_size=500, seed=3)  # one batch: exact
    assert n == 500
    idx = torch.as_tensor(np.random.default_rng(3).permutation(len(ds.train_y))[:500])
    x = normalize(ds.train_x[idx], ds.mean, ds.std)
    torch.testing.assert_close(net[0].running_mean, x.mean(dim=(0, 2, 3)), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(net[0].running_var, x.var(dim=(0, 2, 3)), rtol=1e-3, atol=1e-4)
    assert recalibrate_bn(nn.Linear(3, 2), ds) == 0  # nothing to re-estimate


def _by_hand_mlp_params(in_features, widths, classes):
    dims = [in_features, *widths, classes]
    return sum(dims[i] * dims[i + 1] + dims[i + 1] for i in range(len(dims) - 1))


def test_fine_tuned_mlp_has_exactly_the_selected_units(cli, tmp_path):
    out = tmp_path / "run"
    r = cli("structure", "--task", "mlp-units", "--data", "digits", "--space",
            _spec(tmp_path, TINY_MLP, "mlp.json"), "--penalty", "2^-4", "--theta-lr", "0.05",
            "--optimizer", "sng", "--epochs", "2", "--finetune-epochs", "2", "--rescale", "theta",
            "--out", out, "--device", "cpu", "--json", "--no-latency")
    assert r.exit_code == 0, r.output
    s = json.loads(r.stdout)
    assert s["shipped"] == "finetuned" and s["finetuned"]["epochs"] == 2
    assert s["finetuned"]["from"] == "mstar_adjusted" and s["finetuned"]["batch_size"] == 64
    assert s["test_accuracy"] == s["finetuned"]["test_accuracy"]
    assert s["mstar"]["test_accuracy"] == s["compact_test_accuracy"]
    theta = np.asarray(read_json(out / "structure.json")["theta"])
    selected = [np.flatnonzero(theta[:24] >= 0.5), np.flatnonzero(theta[24:] >= 0.5)]
    widths = [len(k) for k in selected]
    expected = _by_hand_mlp_params(64, widths, 10)
    model, spec, _ = load_model(out / "model.pt")
    assert [lin.out_features for lin in model.layers[:-1]] == widths
    assert count_params(model) == expected == s["params"] == s["finetuned"]["params"] \
        == s["mstar"]["params"]
    assert [list(np.flatnonzero(m)) for m in spec.unit_masks] == [list(k) for k in selected]
    # M* as the paper hands it over: the supernet's rows and columns of the selected units
    sup = load_checkpoint(out / "checkpoint.pt")["model"]
    mstar = load_checkpoint(out / "mstar.pt")["model"]
    torch.testing.assert_close(mstar["layers.0.weight"], sup["layers.0.weight"][selected[0]])
    torch.testing.assert_close(mstar["layers.1.weight"],
                               sup["layers.1.weight"][selected[1]][:, selected[0]])
    shipped = model.state_dict()
    assert not torch.equal(shipped["layers.0.weight"], mstar["layers.0.weight"])  # fine-tuned
    assert (out / "finetune" / "checkpoint.pt").exists()


def test_fine_tuned_densenet_has_exactly_the_selected_connections(cli, tmp_path):
    out = tmp_path / "dn"
    r = cli("structure", "--task", "densenet-connections", "--data", "digits", "--space",
            _spec(tmp_path, TINY_DENSENET, "dn.json"), "--penalty=-2^-3", "--optimizer", "sng",
            "--epochs", "1", "--max-steps-per-epoch", "8", "--test-subset", "100",
            "--finetune-epochs", "1", "--bn-recalibrate", "--out", out, "--device", "cpu",
            "--no-latency", "--json")
    assert r.exit_code == 0, r.output
    s = json.loads(r.stdout)
    assert s["mstar_adjusted"]["bn_recalibrate"] and s["mstar_adjusted"]["bn_examples"] > 0
    st = read_json(out / "structure.json")
    model, spec, _ = load_model(out / "model.pt")
    canon = np.asarray(st["canonical"], bool)
    sup = MaskedDenseNet(spec_from_dict(read_json(out / "config.json")["supernet"]))
    assert spec.connections == sup.connections(canon)
    assert count_params(model) == spec.params() == s["params"] == s["finetuned"]["params"]
    # every consumer's first conv reads exactly the channels of its live sources
    lives = spec.live_connections()
    for i, live in enumerate(lives):
        for l, src in enumerate(live.layer_sources):
            if src is not None:
                conv = model.stages[i].layers[str(l)].conv2
                assert conv.in_channels == sum(live.widths[j] for j in src)


def test_zero_finetune_epochs_ship_the_papers_mstar(cli, tmp_path):
    out = tmp_path / "m"
    r = cli("structure", "--task", "mlp-units", "--data", "digits", "--space",
            _spec(tmp_path, TINY_MLP, "mlp.json"), "--penalty", "2^-4", "--epochs", "1",
            "--finetune-epochs", "0", "--out", out, "--device", "cpu", "--json", "--no-latency")
    assert r.exit_code == 0, r.output
    s = json.loads(r.stdout)
    assert s["shipped"] == "mstar" and "finetuned" not in s and "mstar_adjusted" not in s
    a, b = load_checkpoint(out / "model.pt")["model"], load_checkpoint(out / "mstar.pt")["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)


# -- shrinking baselines ------------------------------------------------------------------------


@pytest.mark.parametrize("frac", [0.25, 0.45, 0.7])
def test_matched_widths_and_random_units_land_within_one_percent(frac):
    full = _by_hand_mlp_params(784, [32] * 3, 10)
    assert mlp_params(784, [32] * 3, 10) == full
    target = int(frac * full)
    w = matched_widths(784, [32] * 3, 10, target)
    assert abs(_by_hand_mlp_params(784, w, 10) / target - 1) <= 0.01 and w[1] == w[2]
    keep = random_units(784, [32] * 3, 10, target, np.random.default_rng(0))
    widths = [int(k.sum()) for k in keep]
    assert abs(_by_hand_mlp_params(784, widths, 10) / target - 1) <= 0.01


@pytest.mark.parametrize("importance", ["magnitude", "taylor"])
@pytest.mark.parametrize("frac", [0.25, 0.45, 0.7])
def test_torch_pruning_lands_within_one_percent_of_the_target(importance, frac):
    pytest.importorskip("torch_pruning", reason="the compare extra (torch-pruning) is not "
                                                "installed: pip install 'archopt[compare]'")
    from archopt.structure.shrink import tp_prune_mlp

    ds = load_dataset("digits")
    torch.manual_seed(0)
    spec = MLPSpec(in_features=64, widths=[32] * 3, num_classes=10)
    model = spec.build()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    target = int(frac * spec.params())
    widths = matched_widths(64, [32] * 3, 10, target)
    info = tp_prune_mlp(model, widths, ds, importance=importance, steps=3)
    assert info["widths"] == widths
    assert abs(count_params(model) / target - 1) <= 0.01
    assert count_params(model) == _by_hand_mlp_params(64, widths, 10)
    # the kept units are units of the full network: each kept first-layer row is one of its rows
    rows = before["layers.0.weight"]
    for row in model.layers[0].weight.detach():
        assert (rows - row).abs().sum(1).min() == 0
    with torch.no_grad():
        assert model(torch.zeros(2, 1, 8, 8)).shape == (2, 10)


def test_torch_pruning_prunes_densenet_channels_to_the_closest_step():
    pytest.importorskip("torch_pruning", reason="the compare extra (torch-pruning) is not "
                                                "installed: pip install 'archopt[compare]'")
    from archopt.structure.shrink import tp_prune_to_params

    ds = load_dataset("digits")
    spec = spec_from_dict({**TINY_DENSENET, "stem": {"out": 16, "k": 3},
                           "stages": [{"growth": 12, "layers": 3, "bottleneck": False}] * 2})
    torch.manual_seed(0)
    model = spec.build()
    target = int(0.5 * spec.params())
    info = tp_prune_to_params(model, target, ds)  # the authors' 400 steps
    assert info["params"] == count_params(model)
    assert abs(count_params(model) / target - 1) <= 0.01
    with torch.no_grad():
        assert model.eval()(torch.zeros(2, 1, 8, 8)).shape == (2, 10)
