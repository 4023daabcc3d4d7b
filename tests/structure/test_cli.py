"""``archopt structure`` and ``archopt structure sweep`` end to end on the embedded digits."""

from __future__ import annotations

import json

import numpy as np
import torch

from archopt.runs import read_json
from archopt.training import load_model

TINY_MLP = {"space": "mlp", "in_features": 64, "widths": [24, 24], "num_classes": 10}
TINY_DENSENET = {"space": "densenet", "in_channels": 1, "resolution": 8, "num_classes": 10,
                 "stem": {"out": 6, "k": 3},
                 "stages": [{"growth": 4, "layers": 3, "bottleneck": False},
                            {"growth": 4, "layers": 3, "bottleneck": False}],
                 "compression": 1.0}


def _spec(tmp_path, spec, name):
    p = tmp_path / name
    p.write_text(json.dumps(spec))
    return p


def test_structure_mlp_units_writes_the_summary_and_a_loadable_compact_model(cli, tmp_path):
    out = tmp_path / "run"
    r = cli("structure", "--task", "mlp-units", "--data", "digits", "--space",
            _spec(tmp_path, TINY_MLP, "mlp.json"), "--penalty", "2^-4", "--theta-lr", "0.05",
            "--epochs", "2", "--out", out, "--device", "cpu", "--json")
    assert r.exit_code == 0, r.output
    s = json.loads(r.stdout)
    for key in ("weight_usage_rate", "units_per_layer", "test_accuracy", "test_error", "params",
                "params_full", "latency_ms", "latency_ms_supernet", "arch", "cost_usage_rate"):
        assert key in s, key
    assert s["test_error"] == 1 - s["test_accuracy"] and s["penalty"] == 2**-4
    assert s["compact_test_accuracy"] == s["mstar"]["test_accuracy"]  # the paper's M*
    assert s["shipped"] == "finetuned" and s["test_accuracy"] == s["finetuned"]["test_accuracy"]
    assert s["params"] < s["params_full"] and s["weight_usage_rate"] == s["params"] / \
        s["params_full"]
    assert s["arch"]["unit_masks"] is not None
    assert [sum(m) for m in s["arch"]["unit_masks"]] == s["units_per_layer"]
    for f in ("config.json", "metrics.jsonl", "checkpoint.pt", "structure.json", "arch.json",
              "model.pt", "mstar.pt", "summary.json"):
        assert (out / f).exists(), f
    model, spec, meta = load_model(out / "model.pt")
    assert spec.kept_widths() == s["units_per_layer"] and meta["dataset"] == "digits"
    assert sum(p.numel() for p in model.parameters()) == s["params"]
    theta = read_json(out / "structure.json")["theta"]
    assert [sum(t >= 0.5 for t in theta[:24]), sum(t >= 0.5 for t in theta[24:])] == \
        s["units_per_layer"]
    # the same folder again without --resume: refused, nothing touched
    r2 = cli("structure", "--task", "mlp-units", "--data", "digits", "--out", out)
    assert r2.exit_code == 2 and "--resume" in r2.output
    r3 = cli("structure", "--task", "mlp-units", "--data", "digits", "--space",
             _spec(tmp_path, TINY_MLP, "mlp.json"), "--penalty", "2^-4", "--theta-lr", "0.05",
             "--epochs", "2", "--out", out, "--device", "cpu", "--resume", "--json")
    assert r3.exit_code == 0 and json.loads(r3.stdout)["test_error"] == s["test_error"]


def _densenet_run(cli, tmp_path, out, penalty):
    return cli("structure", "--task", "densenet-connections", "--data", "digits", "--space",
               _spec(tmp_path, TINY_DENSENET, "dn.json"), f"--penalty={penalty}",
               "--optimizer", "sng", "--epochs",
               "1", "--max-steps-per-epoch", "6", "--test-subset", "100", "--out", out,
               "--device", "cpu", "--no-latency", "--json")


def test_structure_densenet_connections_end_to_end(cli, tmp_path):
    out = tmp_path / "dn"
    r = _densenet_run(cli, tmp_path, out, "-2^-3")
    assert r.exit_code == 0, r.output
    s = json.loads(r.stdout)
    assert len(s["connections_per_block"]) == 2 and s["connections_full"] == [10, 10]
    assert s["steps"] == 6 and s["test_examples"] == 100
    assert s["compact_max_abs_logit_difference"] < 1e-4
    model, spec, _ = load_model(out / "model.pt")
    assert spec.connections is not None
    with torch.no_grad():
        assert model(torch.zeros(2, 1, 8, 8)).shape == (2, 10)


def test_a_disconnected_structure_is_reported_and_the_run_kept(cli, tmp_path):
    # 6 steps barely move theta; the penalty tips every undecided bit below 0.5, stage 1's
    # output loses all its maps: a clear error, with the trained run kept for --resume
    out = tmp_path / "dn"
    r = _densenet_run(cli, tmp_path, out, "2^-3")
    assert r.exit_code == 2 and "disconnected" in r.output and "lower the penalty" in r.output
    s = read_json(out / "summary.json")
    assert "compact_error" in s and s["connections_per_block"][1] == 0
    assert (out / "checkpoint.pt").exists()


def test_structure_user_errors_exit_2_with_one_line(cli, tmp_path):
    cases = [
        (["--task", "nope", "--out", tmp_path / "a"], "unknown structure task"),
        (["--task", "mlp-units", "--penalty", "two", "--out", tmp_path / "b"],
         "cannot read penalty"),
        (["--task", "mlp-units", "--optimizer", "adam", "--out", tmp_path / "c"],
         "sng, asng"),
        (["--task", "mlp-units", "--data", "digits", "--space", "densenet-40-12", "--out",
          tmp_path / "d"], "needs an mlp spec"),
        (["--task", "mlp-units", "--data", "nosuchdata", "--out", tmp_path / "e"], "nosuchdata"),
        (["--task", "mlp-units"], "--out are required"),
    ]
    for args, message in cases:
        r = cli("structure", *args)
        assert r.exit_code == 2, (args, r.output)
        assert message in r.output, (message, r.output)
        assert "Traceback" not in r.output


def test_sweep_writes_table_plot_and_baselines(cli, tmp_path):
    out = tmp_path / "sweep"
    r = cli("structure", "sweep", "--task", "mlp-units", "--data", "digits", "--space",
            _spec(tmp_path, TINY_MLP, "mlp.json"), "--penalties", "2^-3,0", "--theta-lr",
            "0.05", "--epochs", "1", "--out", out, "--device", "cpu", "--no-latency", "--json",
            "--in-process")
    assert r.exit_code == 0, r.output
    t = json.loads(r.stdout)
    assert [m["label"] for m in t["method"]] == ["2^-3", "0"]
    assert (out / "tradeoff.png").stat().st_size > 1000
    assert read_json(out / "sweep.json")["method"] == t["method"]
    widths = [b["widths"] for b in t["baselines"]]
    assert [24, 24] in widths and all(w[0] == w[1] for w in widths)  # uniformly thinned
    for b in t["baselines"]:  # lambda x batch, lambda x epochs: the same number of steps
        assert b["steps"] == t["method"][0]["steps"] == 1347 // 32
    for c in t["comparison"]:
        assert abs(c["baseline_weight_usage_rate"] - c["weight_usage_rate"]) < 0.1
    assert t["cost"]["reference"] == "w24"
    # rerun: finished runs are reused; with other options they are refused, not mixed in
    again = cli("structure", "sweep", "--task", "mlp-units", "--data", "digits", "--space",
                _spec(tmp_path, TINY_MLP, "mlp.json"), "--penalties", "2^-3,0", "--theta-lr",
                "0.05", "--epochs", "1", "--out", out, "--device", "cpu", "--no-latency",
                "--json", "--in-process")
    assert again.exit_code == 0 and json.loads(again.stdout)["method"] == t["method"]
    other = cli("structure", "sweep", "--task", "mlp-units", "--data", "digits", "--space",
                _spec(tmp_path, TINY_MLP, "mlp.json"), "--penalties", "2^-3", "--epochs", "2",
                "--out", out, "--device", "cpu", "--no-latency", "--in-process")
    assert other.exit_code == 2 and "other options" in other.output


def test_structure_resnet_channels_shrinks_a_trained_checkpoint(cli, tmp_path):
    from archopt.data import load_dataset
    from archopt.spaces import load_spec
    from archopt.training import TrainConfig, train

    spec = {"space": "resnet", "in_channels": 1, "resolution": 8, "num_classes": 10,
            "stem": {"out": 8, "k": 3}, "blocks": [{"out": 16, "btn": 8, "k": 3, "L": 2,
                                                    "stride": 1}]}
    trained = tmp_path / "trained"
    train(load_spec(spec), load_dataset("digits"),
          TrainConfig(epochs=1, device="cpu", latency=False), trained, progress=False)
    r = cli("structure", "--task", "resnet-channels", "--data", "digits", "--out",
            tmp_path / "run")
    assert r.exit_code == 2 and "--from" in r.stderr
    out = tmp_path / "run"
    r = cli("structure", "--task", "resnet-channels", "--from", trained, "--data", "digits",
            "--penalty", "1", "--optimizer", "asng", "--epochs", "1", "--out", out, "--device",
            "cpu", "--no-latency", "--json")
    assert r.exit_code == 0, r.output
    s = json.loads(r.stdout)
    assert s["params"] < s["params_full"]
    compact = load_spec(out / "arch.json")
    assert compact.params() == s["params"]
    assert [b.btn for b in compact.blocks] == s["btn_per_superblock"]
    assert 1 <= compact.blocks[0].btn < 8


def test_a_short_run_says_its_bits_are_undecided(cli, tmp_path):
    """eta = 1/d over 2 short epochs hardly moves theta: the summary records the decided
    fraction, and the CLI says in one line that M* is a coin flip and which schedule decides."""
    from archopt.structure.sng import steps_to_decide

    out = tmp_path / "short"
    r = cli("structure", "--task", "mlp-units", "--data", "digits", "--space",
            _spec(tmp_path, TINY_MLP, "mlp.json"), "--penalty", "2^-4", "--optimizer", "sng",
            "--epochs", "1",
            "--max-steps-per-epoch", "20", "--no-latency", "--out", out, "--device", "cpu")
    assert r.exit_code == 0, r.output
    s = read_json(out / "summary.json")
    theta = np.asarray(read_json(out / "structure.json")["theta"])
    d = len(theta)
    assert s["decided_fraction"] == np.mean((theta <= 1 / d + 0.05) | (theta >= 1 - 1 / d - 0.05))
    assert s["decided_fraction"] < 0.5 and s["undecided"]
    assert s["steps_to_decide"] == int(np.ceil(2 * steps_to_decide(1 / d, 2**-4, 1 / d)))
    line = next(ln for ln in r.output.splitlines() if ln.startswith("warning: only"))
    assert "coin flip" in line and f"{s['steps_to_decide']:,} steps" in line


def test_steps_to_decide_is_taken_at_the_median_bit_cost():
    """With costs c_i the penalty on bit i is eps * c_i (eps = eps0 / max c); the reported
    schedule is twice the drift time of the median-cost bit, and a simulation with tied losses
    (penalty only) switches such bits off at that drift time -- not max(c) times later."""
    from archopt.structure import SNG
    from archopt.structure.run import decision_report
    from archopt.structure.sng import steps_to_decide

    costs = [2.0, 2.0, 2.0, 8.0, 8.0]
    opt = SNG(5, penalty=2**-1, costs=costs, seed=0)
    margin = opt.dist.margin
    t_rule = steps_to_decide(opt.eta, 2**-1 * 2 / 8, margin)  # a cost-2 (median) bit
    assert decision_report(opt, 0)["steps_to_decide"] == int(np.ceil(2 * t_rule))
    for step in range(int(np.ceil(t_rule))):
        masks = opt.ask()
        opt.tell(masks, np.ones(len(masks)))
        if step == int(0.8 * t_rule):
            assert (opt.theta[:3] > margin + 0.05).all()  # not yet
    assert (opt.theta[:3] <= margin + 0.05 + 1e-9).all()
