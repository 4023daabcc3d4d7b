"""Shrinking a network to a parameter budget: the learned structure (archopt, SNG with the
complexity penalty) against Torch-Pruning, random selection and training from scratch, at equal
params and one identical fine-tuning recipe (issue 21).

Task ``mlp``: hidden-unit selection in the MLP 784-W-W-W-10 (ReLU) on MNIST (60k / 10k), W =
``--width`` (default 32, d = 96 bits). Narrower than the paper's W = 784 because the paper's
dynamics are kept: eta = 1/d moves theta by at most 1/d per step, and the paper gives each bit
~400 d iterations (500 epochs for d = 2,352); at W = 32 the 20 search epochs are 37,500
iterations = 391 d, at W = 784 they would be 16 d and M* would be close to a coin flip per bit.

Per seed (``--seeds``), per size level (an eps0 of ``--penalties``; at W = 32 2^-3 / 2^-4 / 2^-5
keep ~29 / 44 / 65 % of the weights, benchmarks/results/structure_claim.json):

- ``full``: the full network, He init, trained ``2 x --search-epochs`` epochs at batch 64 (the
  same iterations and example-passes as the search; the paper's baseline convention); shared by
  every pruning method of the seed.
- ``archopt``: the joint search (SNG, eta = 1/d, lambda = 2, theta0 = 0.5, batch 32, SGD
  Nesterov 0.9, wd 1e-4, lr 0.01 x0.1 at 1/2 and 3/4, He init; ``--search-epochs``), M* (theta
  >= 0.5) compacted (:func:`archopt.structure.run_structure` with ``finetune_epochs=0``). Its
  params are the level's target ``T`` for every other method of the seed.
- ``tp-magnitude`` / ``tp-taylor``: Torch-Pruning on the trained full network, 5 iterative
  steps, widths from :func:`archopt.structure.shrink.matched_widths` (as uniform as a 1 % budget
  allows), units chosen by group-L2 magnitude / first-order Taylor importance.
- ``random``: uniformly random hidden units of the trained full network within 1 % of ``T``.
- every method's compact network is fine-tuned with one recipe: ``--finetune-epochs`` at batch
  64, lr 0.01 x0.1 at 1/2 and 3/4 (the trainer, :func:`archopt.training.train`).
- ``scratch-archopt`` / ``scratch-uniform`` / ``scratch-random``: each compact architecture
  (archopt's widths; the Torch-Pruning widths, shared by both importances; random's) trained
  from He init for the same total: ``2 x search + finetune`` epochs at batch 64.

Task ``densenet`` (``--task densenet``; levels 2^-1 / 2^-3 / 2^-5, seeds 0-2 by default):
connection selection in benchmarks/structure_densenet.py's DenseNet-16 (3 blocks x 4 layers,
growth 12, stride-2 stem, d = 45) on Fashion-MNIST with the paper's dynamics (lr 0.1, pad-crop
+ flip), ``--dn-search-epochs`` of search. archopt selects connections (its params, which the
level sets but the search decides, are the seed's target); Torch-Pruning prunes channels of the
trained full network (:func:`~archopt.structure.shrink.tp_prune_to_params`, the authors'
progressive pruning to a target, global ranking, group-L2 magnitude or first-order Taylor
importance); random selects connections of the trained full network at the same params; both
compact architectures (archopt's, Torch-Pruning magnitude's) are also trained from scratch.
Same fine-tuning recipe for all (``--dn-finetune-epochs`` at batch 64, lr 0.1 x0.1 at 1/2 and
3/4); params matched within 1 %, MACs reported beside them. Several workers may share
``--dn-runs`` (each run is claimed by a lock and waits for the runs it reads), and runs the
results file records count as done, so a grid continues on a new machine.

CPU seconds (``time.process_time``, one thread) are recorded per phase; a method's total
counts everything it needs (a pruning method: the full network's training + pruning +
fine-tuning).

Resumable: each run writes ``--runs/<name>.json`` atomically when done (the search keeps its
own result folder and resumes from its checkpoint); finished runs are skipped. ``--collect``
writes ``benchmarks/results/shrink_compare.json`` and ``shrink_compare.png`` from what exists.

    python benchmarks/shrink_compare.py            # all runs, seed by seed
    python benchmarks/shrink_compare.py --collect
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from archopt.data import load_dataset
from archopt.errors import InvalidSpec
from archopt.measure import count_params
from archopt.runs import atomic_write_json, read_json
from archopt.spaces.mlp import MLPSpec
from archopt.structure import MaskedDenseNet, MaskedMLP, compact, weight_usage
from archopt.structure.finetune import adjust_mstar
from archopt.structure.loop import StructureConfig, evaluate_structure
from archopt.structure.mlp import he_init
from archopt.structure.run import adapt as adapt_spec
from archopt.structure.run import default_train_config, run_structure
from archopt.structure.shrink import (
    matched_widths,
    mlp_params,
    random_units,
    tp_prune_mlp,
    tp_prune_to_params,
)
from archopt.structure.sweep import parse_penalty, penalty_label
from archopt.training import load_checkpoint, load_model, save_checkpoint, train

TASK = "mlp-units"
PRUNERS = ("tp-magnitude", "tp-taylor", "random")


def spec_of(args: argparse.Namespace, widths: list[int] | None = None) -> MLPSpec:
    return MLPSpec(in_features=784, widths=widths or [args.width] * 3, num_classes=10)


def recipe(epochs: int, batch: int, seed: int) -> Any:
    return default_train_config(TASK, epochs=epochs, batch_size=batch, seed=seed, device="cpu",
                                latency=False, eval_every=epochs)


def plan(args: argparse.Namespace) -> list[dict[str, Any]]:
    runs: list[dict[str, Any]] = []
    for seed in args.seeds:
        runs.append({"name": f"full_s{seed}", "kind": "full", "seed": seed})
        levels = [penalty_label(p) for p in args.penalties]
        for lv in levels:
            runs.append({"name": f"archopt_{lv}_s{seed}", "kind": "archopt", "level": lv,
                         "seed": seed})
        for m in PRUNERS:
            for lv in levels:
                runs.append({"name": f"{m}_{lv}_s{seed}", "kind": m, "level": lv, "seed": seed})
        for src in ("archopt", "uniform", "random"):
            for lv in levels:
                runs.append({"name": f"scratch-{src}_{lv}_s{seed}", "kind": "scratch",
                             "source": src, "level": lv, "seed": seed})
    return runs


def cpu() -> float:
    return time.process_time()


def fit(module: torch.nn.Module, ds: Any, epochs: int, batch: int, seed: int
        ) -> tuple[float, float]:
    """Train ``module`` with the trainer; returns (test error, CPU seconds)."""
    t0 = cpu()
    r = train(module, ds, recipe(epochs, batch, seed), progress=False)
    return 1.0 - r.summary["test_accuracy"], cpu() - t0


def error_of(module: torch.nn.Module, ds: Any) -> float:
    return evaluate_structure(module, None, ds, recipe(1, 64, 0))["error"]


def load_mlp(path: Path, widths: list[int], args: argparse.Namespace) -> torch.nn.Module:
    m = spec_of(args, widths).build()
    m.load_state_dict(load_checkpoint(path)["model"])
    return m


def run_full(r: dict[str, Any], args: argparse.Namespace, ds: Any, runs: Path) -> dict[str, Any]:
    torch.manual_seed(r["seed"])
    model = he_init(spec_of(args).build())
    err, sec = fit(model, ds, 2 * args.search_epochs, 64, r["seed"])
    save_checkpoint(runs / f"{r['name']}.pt", model, spec=spec_of(args))
    return {"widths": [args.width] * 3, "params": count_params(model), "test_error": err,
            "cpu_seconds_train": sec, "epochs": 2 * args.search_epochs, "batch_size": 64}


def run_archopt(r: dict[str, Any], args: argparse.Namespace, ds: Any, runs: Path
                ) -> dict[str, Any]:
    out = runs / r["name"]
    sc = StructureConfig(optimizer="sng", penalty=parse_penalty(r["level"]), finetune_epochs=0)
    tc = default_train_config(TASK, epochs=args.search_epochs, batch_size=32, seed=r["seed"],
                              device="cpu")
    t0 = cpu()
    s = run_structure(TASK, ds, out=out, structure=sc, train=tc, space=spec_of(args),
                      resume=True, latency=False, progress=False)
    search = cpu() - t0
    widths = s["units_per_layer"]
    # diagnostic: M* with theta rescaling (the paper: none); the fine-tune starts from M*
    sup = MaskedMLP(spec_of(args))
    sup.load_state_dict(load_checkpoint(out / "checkpoint.pt")["model"])
    st = read_json(out / "structure.json")
    adj, _ = adjust_mstar(sup, np.asarray(st["mode"], bool), np.asarray(st["theta"]), ds,
                          rescale="theta")
    model = load_model(out / "mstar.pt")[0]
    err, ft = fit(model, ds, args.finetune_epochs, 64, r["seed"])
    return {"widths": widths, "params": count_params(model), "test_error": err,
            "test_error_before_finetune": s["mstar"]["test_error"],
            "test_error_mstar_rescaled": error_of(adj.module, ds),
            "decided_fraction": s["decided_fraction"], "eps0": sc.penalty,
            "cpu_seconds_search": search, "cpu_seconds_finetune": ft,
            "weight_usage_rate": s["weight_usage_rate"], "steps": s["steps"]}


def run_pruner(r: dict[str, Any], args: argparse.Namespace, ds: Any, runs: Path,
               target: int) -> dict[str, Any]:
    seed = r["seed"]
    model = load_mlp(runs / f"full_s{seed}.pt", [args.width] * 3, args)
    t0 = cpu()
    if r["kind"] == "random":
        keep = random_units(784, [args.width] * 3, 10, target,
                            np.random.default_rng(1000 + seed))
        widths = [int(k.sum()) for k in keep]
        small = spec_of(args, widths).build()
        layers = list(model.layers)
        prev = torch.arange(784)
        state = {}
        for i, layer in enumerate(layers):
            idx = torch.as_tensor(np.flatnonzero(keep[i])) if i < 3 else torch.arange(10)
            state[f"layers.{i}.weight"] = layer.weight.detach()[idx][:, prev].clone()
            state[f"layers.{i}.bias"] = layer.bias.detach()[idx].clone()
            prev = idx
        small.load_state_dict(state)
        model, info = small, {}
    else:
        widths = matched_widths(784, [args.width] * 3, 10, target)
        info = tp_prune_mlp(model, widths, ds, importance=r["kind"].removeprefix("tp-"),
                            seed=seed)
    prune = cpu() - t0
    before = error_of(model, ds)
    err, ft = fit(model, ds, args.finetune_epochs, 64, seed)
    return {"widths": widths, "params": count_params(model), "test_error": err,
            "test_error_before_finetune": before, "cpu_seconds_prune": prune,
            "cpu_seconds_finetune": ft, **({"tp_steps": info["steps"]} if info else {})}


def run_scratch(r: dict[str, Any], args: argparse.Namespace, ds: Any, widths: list[int]
                ) -> dict[str, Any]:
    torch.manual_seed(r["seed"])
    model = he_init(spec_of(args, widths).build())
    epochs = 2 * args.search_epochs + args.finetune_epochs
    err, sec = fit(model, ds, epochs, 64, r["seed"])
    return {"widths": widths, "params": count_params(model), "test_error": err,
            "cpu_seconds_train": sec, "epochs": epochs}


# -- DenseNet on Fashion-MNIST ------------------------------------------------------------------

DN_TASK = "densenet-connections"
DN_METHODS = ("archopt", "tp-magnitude", "tp-taylor", "random", "scratch-archopt",
              "scratch-tp-magnitude")


def dn_spec() -> dict[str, Any]:
    return dict(space="densenet", name="DenseNet-16 (3x4, k=12, stride-2 stem)", in_channels=1,
                num_classes=10, resolution=28, stem=dict(out=16, k=3, stride=2),
                stages=[dict(growth=12, layers=4, bottleneck=False)] * 3, compression=1.0)


def dn_recipe(epochs: int, seed: int) -> Any:
    return default_train_config(DN_TASK, epochs=epochs, batch_size=64, seed=seed, device="cpu",
                                latency=False, eval_every=epochs)


def dn_plan(args: argparse.Namespace) -> list[dict[str, Any]]:
    runs: list[dict[str, Any]] = []
    for seed in args.dn_seeds:
        runs.append({"name": f"dn-full_s{seed}", "kind": "full", "seed": seed})
        for lv in [penalty_label(p) for p in args.dn_penalties]:
            runs += [{"name": f"dn-{m}_{lv}_s{seed}", "kind": m, "level": lv, "seed": seed}
                     for m in DN_METHODS]
    return runs


def dn_fit(module: torch.nn.Module, ds: Any, epochs: int, seed: int) -> tuple[float, float]:
    t0 = cpu()
    r = train(module, ds, dn_recipe(epochs, seed), progress=False)
    return 1.0 - r.summary["test_accuracy"], cpu() - t0


def dn_error(module: torch.nn.Module, ds: Any) -> float:
    return evaluate_structure(module, None, ds, dn_recipe(1, 0))["error"]


def dn_random(sup: MaskedDenseNet, target: int, rng: np.random.Generator, tol: float = 0.01
              ) -> np.ndarray:
    """Random connections (Bernoulli(p), p by bisection on the mean params) until a draw lands
    within ``tol`` of ``target`` params."""
    def params(m: np.ndarray) -> int | None:
        try:
            return weight_usage(sup, m)["params"]
        except InvalidSpec:
            return None

    lo, hi = 0.0, 1.0
    for _ in range(12):
        p = (lo + hi) / 2
        ps = [params(rng.random(sup.d) < p) or 0 for _ in range(16)]
        lo, hi = (p, hi) if np.mean(ps) < target else (lo, p)
    for _ in range(50_000):
        m = rng.random(sup.d) < (lo + hi) / 2
        n = params(m)
        if n is not None and abs(n / target - 1) <= tol:
            return sup.canonical(m[None])[0]
    raise RuntimeError(f"no random connection mask within {tol} of {target} params")


def dn_reset(module: torch.nn.Module, seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    for m in module.modules():
        if hasattr(m, "reset_parameters") and m is not module:
            m.reset_parameters()
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.reset_running_stats()
    return module


def dn_run(r: dict[str, Any], args: argparse.Namespace, ds: Any, runs: Path) -> dict[str, Any]:
    from archopt.measure import count_macs
    from archopt.spaces import load_spec

    seed, lv = r["seed"], r.get("level")
    spec = adapt_spec(load_spec(dn_spec()), ds)
    shape = tuple(ds.input_shape)
    pre = 2 * args.dn_search_epochs
    if r["kind"] == "full":
        torch.manual_seed(seed)
        model = spec.build()
        err, sec = dn_fit(model, ds, pre, seed)
        save_checkpoint(runs / f"{r['name']}.pt", model, spec=spec)
        return {"params": count_params(model), "macs": count_macs(model, shape),
                "test_error": err, "cpu_seconds_train": sec, "epochs": pre}
    if r["kind"] == "archopt":
        out = runs / r["name"]
        sc = StructureConfig(optimizer="sng", penalty=parse_penalty(lv), finetune_epochs=0)
        tc = default_train_config(DN_TASK, epochs=args.dn_search_epochs, batch_size=32,
                                  seed=seed, device="cpu")
        t0 = cpu()
        s = run_structure(DN_TASK, ds, out=out, structure=sc, train=tc, space=spec,
                          resume=True, latency=False, progress=False)
        search = cpu() - t0
        sup = MaskedDenseNet(spec)
        sup.load_state_dict(load_checkpoint(out / "checkpoint.pt")["model"])
        st = read_json(out / "structure.json")
        adj, _ = adjust_mstar(sup, np.asarray(st["mode"], bool), np.asarray(st["theta"]), ds,
                              bn_recalibrate=True, seed=seed)
        model = load_model(out / "mstar.pt")[0]
        err, ft = dn_fit(model, ds, args.dn_finetune_epochs, seed)
        torch.save(model, runs / f"{r['name']}.module.pt")
        return {"params": count_params(model), "macs": count_macs(model, shape),
                "test_error": err, "test_error_before_finetune": s["mstar"]["test_error"],
                "test_error_mstar_bn_recalibrated": dn_error(adj.module, ds),
                "weight_usage_rate": s["weight_usage_rate"],
                "connections_per_block": s["connections_per_block"],
                "decided_fraction": s["decided_fraction"], "cpu_seconds_search": search,
                "cpu_seconds_finetune": ft}
    if r["kind"].startswith("scratch-"):
        src = r["kind"].removeprefix("scratch-")
        model = dn_reset(torch.load(runs / f"dn-{src}_{lv}_s{seed}.module.pt",
                                    weights_only=False), seed)
        err, sec = dn_fit(model, ds, pre + args.dn_finetune_epochs, seed)
        return {"params": count_params(model), "macs": count_macs(model, shape),
                "test_error": err, "cpu_seconds_train": sec,
                "epochs": pre + args.dn_finetune_epochs}
    target = dn_record(args, runs, f"dn-archopt_{lv}_s{seed}")["params"]
    full = spec.build()
    full.load_state_dict(load_checkpoint(runs / f"dn-full_s{seed}.pt")["model"])
    t0 = cpu()
    if r["kind"].startswith("tp-"):
        info = tp_prune_to_params(full, target, ds, importance=r["kind"].removeprefix("tp-"),
                                  seed=seed)
        model = full
    else:
        sup = MaskedDenseNet(spec)
        sup.load_state_dict(full.state_dict())
        mask = dn_random(sup, target, np.random.default_rng(1000 + seed))
        model = compact(sup, mask).module
        info = {"connections_per_block": sup.connections_per_block(mask)}
    prune = cpu() - t0
    before = dn_error(model, ds)
    err, ft = dn_fit(model, ds, args.dn_finetune_epochs, seed)
    torch.save(model, runs / f"{r['name']}.module.pt")
    return {"target_params": target, "params": count_params(model),
            "macs": count_macs(model, shape), "test_error": err,
            "test_error_before_finetune": before, "cpu_seconds_prune": prune,
            "cpu_seconds_finetune": ft, **info}


def dn_record(args: argparse.Namespace, runs: Path, name: str) -> dict[str, Any]:
    """A finished run's record: from ``runs``, else from the results file."""
    path = runs / f"{name}.json"
    return read_json(path) if path.exists() else dn_previous(args)[name]


def dn_needs(r: dict[str, Any]) -> list[str]:
    """The runs whose files run ``r`` reads: pruning methods read the trained full network and
    archopt's params; a scratch run reads its source's compact module."""
    seed, lv = r["seed"], r.get("level")
    if r["kind"] in ("full", "archopt"):
        return []
    if r["kind"].startswith("scratch-"):
        return [f"dn-{r['kind'].removeprefix('scratch-')}_{lv}_s{seed}"]
    return [f"dn-full_s{seed}", f"dn-archopt_{lv}_s{seed}"]


def dn_previous(args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    """Finished DenseNet runs recorded in the results file."""
    import benchlib

    return benchlib.recorded_runs(Path(args.results) / "shrink_compare.json", "densenet")


def dn_done(args: argparse.Namespace, runs: Path) -> set[str]:
    """Names of the finished runs: those in ``runs`` plus those of the results file whose
    dependents are finished too (a recorded run whose files a pending run still reads is run
    again)."""
    planned = dn_plan(args)
    here = {r["name"] for r in planned if (runs / f"{r['name']}.json").exists()}
    prev = set(dn_previous(args)) & {r["name"] for r in planned}
    while True:
        keep = {n for n in prev
                if all(q["name"] in here | prev for q in planned if n in dn_needs(q))}
        if keep == prev:
            return here | prev
        prev = keep


def dn_execute(args: argparse.Namespace) -> None:
    """Run the planned DenseNet runs; several workers may share ``--dn-runs``: each run is
    claimed through a lock folder, and a run waits until the runs it reads are done."""
    import benchlib

    runs = Path(args.dn_runs)
    runs.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(1)
    ds = load_dataset("fashion-mnist", data_dir=args.data_dir)
    if args.dn_subset:  # smoke tests only
        ds = ds.subset(train=args.dn_subset, test=args.dn_subset // 4, seed=0)
    while True:
        done = dn_done(args, runs)
        todo = [r for r in dn_plan(args) if r["name"] not in done]
        if not todo:
            return
        ran = False
        for r in todo:
            if not all(n in done for n in dn_needs(r)):
                continue
            with benchlib.claim(runs / "locks" / r["name"]) as mine:
                path = runs / f"{r['name']}.json"
                if not mine or path.exists():
                    continue
                t0, w0 = cpu(), time.perf_counter()
                out = dn_run(r, args, ds, runs)
                rec = {**r, **out, "cpu_seconds": cpu() - t0,
                       "wall_seconds": time.perf_counter() - w0,
                       "loadavg_end": os.getloadavg()[0]}
                atomic_write_json(path, rec)
                print(f"{r['name']}: error {rec['test_error']:.4f}, params {rec['params']}, "
                      f"{rec['cpu_seconds']:.1f} CPU s", flush=True)
                ran = True
                break
        if not ran:
            time.sleep(20)


def dn_method(r: dict[str, Any]) -> str:
    return r["kind"]


def dn_total(r: dict[str, Any], full: dict[int, dict[str, Any]]) -> float:
    """A run's CPU seconds with everything it needs (a pruning method: the full network's
    training too)."""
    if r["kind"] == "archopt":
        return r["cpu_seconds_search"] + r["cpu_seconds_finetune"]
    if r["kind"].startswith("scratch-"):
        return r["cpu_seconds_train"]
    return (full[r["seed"]]["cpu_seconds_train"] + r["cpu_seconds_prune"]
            + r["cpu_seconds_finetune"])


def dn_collect(args: argparse.Namespace) -> dict[str, Any] | None:
    runs = Path(args.dn_runs)
    rows = dn_previous(args)
    rows.update({p.stem: json.loads(p.read_text()) for p in sorted(runs.glob("*.json"))})
    rows = {k: r for k, r in rows.items() if "kind" in r}
    if not rows:
        return None
    planned = dn_plan(args)
    full = {r["seed"]: r for r in rows.values() if r["kind"] == "full"}
    levels = [penalty_label(p) for p in args.dn_penalties]
    full_params = next(iter(full.values()))["params"] if full else None
    table = summary_table(rows, levels, DN_METHODS, dn_method, lambda r: dn_total(r, full),
                          full_params)
    tp_global = {r.get("global_pruning") for r in rows.values() if r["kind"].startswith("tp-")}
    return {"network": dn_spec()["name"] + ", Fashion-MNIST 60k/10k, d = 45",
            "search": {"optimizer": "SNG", "eta": "1/d", "lambda": 2, "batch": 32,
                       "epochs": args.dn_search_epochs, "lr": 0.1, "augment": "pad-crop + flip",
                       "eps0_levels": levels},
            "full_network": [{k: r[k] for k in ("seed", "params", "macs", "test_error",
                                                "cpu_seconds_train", "epochs")}
                             for r in sorted(full.values(), key=lambda r: r["seed"])],
            "finetune": {"epochs": args.dn_finetune_epochs, "batch": 64,
                         "recipe": "SGD Nesterov 0.9, wd 1e-4, lr 0.1 x0.1 at 1/2 and 3/4, "
                                   "pad-crop + flip"},
            "scratch_epochs": 2 * args.dn_search_epochs + args.dn_finetune_epochs,
            "torch_pruning": {"version": _tp_version(), "pruner": "MetaPruner",
                              "importances": "GroupMagnitudeImportance(p=2), "
                                             "GroupTaylorImportance()",
                              "global_pruning": sorted(tp_global, key=str),
                              "iterative_steps": 400, "pruning_ratio": 1.0,
                              "stepped": "to the step closest to the target params"},
            "seeds": args.dn_seeds, "complete": all(r["name"] in rows for r in planned),
            "missing_runs": [r["name"] for r in planned if r["name"] not in rows],
            "table": table,
            "pairs_vs_archopt": pairs_vs_archopt(rows, levels, DN_METHODS, dn_method),
            "runs": sorted(rows.values(), key=lambda r: r["name"])}


def execute(args: argparse.Namespace) -> None:
    runs = Path(args.runs)
    runs.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(1)
    ds = load_dataset("mnist", data_dir=args.data_dir)
    for r in plan(args):
        path = runs / f"{r['name']}.json"
        if path.exists():
            continue
        if args.only and not any(r["name"].startswith(o) for o in args.only):
            continue
        t0, w0 = cpu(), time.perf_counter()
        seed, lv = r["seed"], r.get("level")
        if r["kind"] == "full":
            out = run_full(r, args, ds, runs)
        elif r["kind"] == "archopt":
            out = run_archopt(r, args, ds, runs)
        elif r["kind"] in PRUNERS:
            target = read_json(runs / f"archopt_{lv}_s{seed}.json")["params"]
            out = {"target_params": target, **run_pruner(r, args, ds, runs, target)}
        else:
            src = {"archopt": f"archopt_{lv}_s{seed}", "uniform": f"tp-magnitude_{lv}_s{seed}",
                   "random": f"random_{lv}_s{seed}"}[r["source"]]
            out = run_scratch(r, args, ds, read_json(runs / f"{src}.json")["widths"])
        rec = {**r, **out, "cpu_seconds": cpu() - t0, "wall_seconds": time.perf_counter() - w0,
               "loadavg_end": os.getloadavg()[0]}
        atomic_write_json(path, rec)
        print(f"{r['name']}: error {rec['test_error']:.4f}, params {rec['params']}, "
              f"{rec['cpu_seconds']:.1f} CPU s", flush=True)


def summarise(vals: list[float]) -> dict[str, float]:
    a = np.asarray(vals, float)
    return {"median": float(np.median(a)), "min": float(a.min()), "max": float(a.max()),
            "n": len(a)}


def summary_table(rows: dict[str, dict[str, Any]], levels: list[str], methods: Any,
                  method_of: Any, total_of: Any, full_params: int | None
                  ) -> list[dict[str, Any]]:
    """One row per (level, method): params, test error and CPU seconds over seeds (median,
    min, max), the per-seed errors, and what the method records beside them."""
    table = []
    for lv in levels:
        for m in methods:
            sel = sorted((r for r in rows.values()
                          if r.get("level") == lv and method_of(r) == m), key=lambda r: r["seed"])
            if not sel:
                continue
            row = {"level": lv, "method": m, "seeds": [r["seed"] for r in sel],
                   "params": summarise([r["params"] for r in sel]),
                   "test_error": summarise([r["test_error"] for r in sel]),
                   "test_error_per_seed": {r["seed"]: r["test_error"] for r in sel},
                   "cpu_seconds_total": summarise([total_of(r) for r in sel])}
            if full_params:
                row["params_fraction"] = summarise([r["params"] / full_params for r in sel])
            if "macs" in sel[0]:
                row["macs"] = summarise([r["macs"] for r in sel])
            for k in ("test_error_before_finetune", "test_error_mstar_rescaled",
                      "test_error_mstar_bn_recalibrated", "weight_usage_rate"):
                if k in sel[0]:
                    row[k] = summarise([r[k] for r in sel])
            for k in ("widths", "connections_per_block"):
                if k in sel[0] and m == "archopt":
                    row[f"{k}_per_seed"] = {r["seed"]: r[k] for r in sel}
            if "target_params" in sel[0]:
                row["max_params_gap"] = max(abs(r["params"] / r["target_params"] - 1)
                                            for r in sel)
            table.append(row)
    return table


def pairs_vs_archopt(rows: dict[str, dict[str, Any]], levels: list[str], methods: Any,
                     method_of: Any) -> list[dict[str, Any]]:
    """Per level and rival, the seeds both finished: how often archopt has less test error,
    and the median of (rival - archopt) error in points (positive: archopt better)."""
    out = []
    for lv in levels:
        arch = {r["seed"]: r["test_error"] for r in rows.values()
                if r.get("level") == lv and method_of(r) == "archopt"}
        for m in methods:
            if m == "archopt":
                continue
            other = {r["seed"]: r["test_error"] for r in rows.values()
                     if r.get("level") == lv and method_of(r) == m}
            seeds = sorted(set(arch) & set(other))
            if seeds:
                diffs = [100 * (other[s] - arch[s]) for s in seeds]
                out.append({"level": lv, "versus": m, "seeds": seeds,
                            "archopt_wins": sum(d > 0 for d in diffs),
                            "median_points_archopt_better": statistics.median(diffs),
                            "points_archopt_better": diffs})
    return out


def mlp_method(r: dict[str, Any]) -> str:
    return f"scratch-{r['source']}" if r["kind"] == "scratch" else r["kind"]


def collect(args: argparse.Namespace) -> None:
    runs = Path(args.runs)
    import benchlib

    rows = benchlib.recorded_runs(Path(args.results) / "shrink_compare.json")
    rows.update({p.stem: json.loads(p.read_text()) for p in sorted(runs.glob("*.json"))})
    rows = {k: r for k, r in rows.items() if "kind" in r}
    planned = plan(args)
    full_cpu = {r["seed"]: r["cpu_seconds_train"] for r in rows.values() if r["kind"] == "full"}
    methods = ["archopt", *PRUNERS, "scratch-archopt", "scratch-uniform", "scratch-random"]
    levels = [penalty_label(p) for p in args.penalties]

    def total(r: dict[str, Any]) -> float:
        if r["kind"] == "archopt":
            return r["cpu_seconds_search"] + r["cpu_seconds_finetune"]
        if r["kind"] in PRUNERS:
            return (full_cpu.get(r["seed"], float("nan")) + r["cpu_seconds_prune"]
                    + r["cpu_seconds_finetune"])
        return r["cpu_seconds_train"]

    table = summary_table(rows, levels, methods, mlp_method, total,
                          mlp_params(784, [args.width] * 3, 10))
    verdict = pairs_vs_archopt(rows, levels, methods, mlp_method)
    fulls = [r for r in rows.values() if r["kind"] == "full"]
    res = {"benchmark": "shrink_compare", "task": "mlp",
           "network": f"784-{args.width}-{args.width}-{args.width}-10 ReLU, MNIST 60k/10k",
           "why_narrow": "the paper's dynamics (eta = 1/d) need ~400 d iterations per run; "
                         "at W = 32, 20 search epochs are 391 d",
           "search": {"optimizer": "SNG", "eta": "1/d", "lambda": 2, "theta0": 0.5,
                      "batch": 32, "epochs": args.search_epochs,
                      "eps0_levels": [penalty_label(p) for p in args.penalties]},
           "full_network": {"epochs": 2 * args.search_epochs, "batch": 64,
                            "test_error": summarise([r["test_error"] for r in fulls])
                            if fulls else None},
           "finetune": {"epochs": args.finetune_epochs, "batch": 64,
                        "recipe": "SGD Nesterov 0.9, wd 1e-4, lr 0.01 x0.1 at 1/2 and 3/4"},
           "scratch_epochs": 2 * args.search_epochs + args.finetune_epochs,
           "torch_pruning": {"version": _tp_version(), "iterative_steps": 5,
                             "importances": "GroupMagnitudeImportance(p=2), "
                                            "GroupTaylorImportance()"},
           "seeds": args.seeds, "complete": all(r["name"] in rows for r in planned),
           "missing_runs": [r["name"] for r in planned if r["name"] not in rows],
           "machine": platform.machine(), "torch": torch.__version__,
           "table": table, "pairs_vs_archopt": verdict,
           "runs": sorted(rows.values(), key=lambda r: r["name"])}
    res["densenet"] = dn_collect(args)
    out = Path(args.results)
    atomic_write_json(out / "shrink_compare.json", res)
    plot(res, out / "shrink_compare.png", args)
    print(f"{len(rows)} of {len(planned)} runs -> {out / 'shrink_compare.json'}")


def _tp_version() -> str | None:
    try:
        from importlib.metadata import version

        return version("torch-pruning")
    except Exception:
        return None


def _panel(ax: Any, table: list[dict[str, Any]], title: str) -> None:
    for m in sorted({r["method"] for r in table}, key=str):
        pts = sorted((r["params"]["median"], 100 * r["test_error"]["median"],
                      100 * r["test_error"]["min"], 100 * r["test_error"]["max"])
                     for r in table if r["method"] == m)
        x, y, lo, hi = map(np.asarray, zip(*pts, strict=True))
        ax.errorbar(x, y, yerr=[y - lo, hi - y], marker="o", capsize=3, label=m)
    ax.set_xlabel("parameters (median over seeds)")
    ax.set_ylabel("test error, % (median, min-max)")
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)


def plot(res: dict[str, Any], path: Path, args: argparse.Namespace) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    dn = res.get("densenet")
    fig, axes = plt.subplots(1, 2 if dn else 1, figsize=(12 if dn else 7, 4.5), squeeze=False)
    _panel(axes[0][0], res["table"],
           f"MNIST, 784-{args.width}x3 MLP shrunk: equal params, equal fine-tuning")
    if dn:
        _panel(axes[0][1], dn["table"],
               "Fashion-MNIST, DenseNet-16 shrunk: equal params, equal fine-tuning")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--width", type=int, default=32)
    ap.add_argument("--search-epochs", type=int, default=20)
    ap.add_argument("--finetune-epochs", type=int, default=10)
    ap.add_argument("--penalties", type=parse_penalty, nargs="+",
                    default=[2**-3, 2**-4, 2**-5])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--runs", default="runs/shrink_compare")
    ap.add_argument("--results", default="benchmarks/results")
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--only", nargs="*", default=None, help="run names starting with these")
    ap.add_argument("--collect", action="store_true")
    ap.add_argument("--task", choices=["mlp", "densenet"], default="mlp")
    ap.add_argument("--dn-search-epochs", type=int, default=2)
    ap.add_argument("--dn-finetune-epochs", type=int, default=1)
    ap.add_argument("--dn-penalties", type=parse_penalty, nargs="+",
                    default=[2**-1, 2**-3, 2**-5])
    ap.add_argument("--dn-seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--dn-runs", default="runs/shrink_compare_densenet")
    ap.add_argument("--dn-subset", type=int, default=None, help="smoke tests: a train subset")
    args = ap.parse_args()
    if args.collect:
        collect(args)
    elif args.task == "densenet":
        dn_execute(args)
    else:
        execute(args)


if __name__ == "__main__":
    main()
