"""One structure-learning run end to end: supernet -> joint training -> M* -> compact network ->
evaluation, weight usage, latency -> a result folder. Also the fixed-structure baseline run.

Tasks (Saito, Shirakawa et al., ICANN 2019, section 4):

- ``mlp-units``: unit selection in an MLP (default ``mlp-3x784``: 784-784-784-784-10, ReLU),
  one bit per hidden unit, ``c_i = 1``; SGD lr 0.01.
- ``densenet-connections``: connection selection in a DenseNet (default ``densenet-40-12``),
  one bit per connection, ``c_i`` = weights attached; SGD lr 0.1.

Result folder: ``config.json``, ``metrics.jsonl``, ``checkpoint.pt`` (supernet + optimiser
states, for ``resume``), ``structure.json`` (theta, M*, costs), ``arch.json`` (the compact
network's spec), ``model.pt`` (its weights; ``archopt.training.load_model`` reads it) and
``summary.json``.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from archopt.data import ImageDataset, load_dataset
from archopt.data.dataset import normalize
from archopt.errors import ArchoptError, InvalidSpec, UnknownName
from archopt.runs import ResultDir
from archopt.runtime.devices import seed_everything
from archopt.runtime.progress import Progress
from archopt.spaces import DenseNetSpec, MLPSpec, load_spec
from archopt.spaces.base import ArchSpec
from archopt.structure.compaction import (
    compact,
    latency_pair,
    max_output_difference,
    weight_usage,
)
from archopt.structure.densenet import MaskedDenseNet
from archopt.structure.distributions import Bernoulli
from archopt.structure.loop import (
    CHECKPOINT,
    StructureConfig,
    evaluate_structure,
    train_loop,
)
from archopt.structure.masking import Supernet
from archopt.structure.mlp import MaskedMLP, he_init
from archopt.structure.optimizers import make_optimizer
from archopt.structure.sng import DECIDED_TOL, steps_to_decide

if TYPE_CHECKING:
    from archopt.training import TrainConfig

__all__ = ["TASKS", "build_supernet", "default_train_config", "finish_structure", "joint_run",
           "run_fixed", "run_structure"]

TASKS: dict[str, dict[str, Any]] = {
    "mlp-units": {"space": "mlp-3x784", "lr": 0.01, "kind": "mlp"},
    "densenet-connections": {"space": "densenet-40-12", "lr": 0.1, "kind": "densenet"},
}


def _task(task: str) -> dict[str, Any]:
    if task not in TASKS:
        raise UnknownName(f"unknown structure task {task!r} (one of: {', '.join(TASKS)})")
    return TASKS[task]


def default_train_config(task: str, **overrides: Any) -> TrainConfig:
    """The paper's recipe for ``task``: SGD, Nesterov momentum 0.9, weight decay 1e-4, step
    schedule (x0.1 at 1/2 and 3/4), batch 32, lr 0.01 (MLP) / 0.1 (DenseNet), no augmentation
    (MLP) / crop-flip (DenseNet); ``overrides`` (None ignored) on top."""
    from archopt.training import TrainConfig

    t = _task(task)
    base = {"optimizer": "sgd", "lr": t["lr"], "momentum": 0.9, "nesterov": True,
            "weight_decay": 1e-4, "schedule": "step", "milestones": [0.5, 0.75], "gamma": 0.1,
            "batch_size": 32, "augment": "none" if t["kind"] == "mlp" else "crop-flip",
            "latency": False}
    return TrainConfig.from_any(base, **overrides)


def adapt(spec: ArchSpec, data: ImageDataset) -> ArchSpec:
    """The spec with the dataset's input channels / resolution and number of classes."""
    return spec.with_io(in_channels=data.in_channels, resolution=data.resolution,
                        num_classes=data.num_classes)


def build_supernet(task: str, space: str | ArchSpec | dict[str, Any] | None,
                   data: ImageDataset) -> Supernet:
    """The masked supernet of ``task`` over ``space`` (default: the paper's network), adapted
    to ``data``.

    Raises: UnknownName (task); InvalidSpec when the space does not fit the task.
    """
    t = _task(task)
    spec = adapt(load_spec(space if space is not None else t["space"]), data)
    if t["kind"] == "mlp":
        if not isinstance(spec, MLPSpec):
            raise InvalidSpec(f"task {task} needs an mlp spec, got a {spec.space} spec")
        return MaskedMLP(spec)
    if not isinstance(spec, DenseNetSpec):
        raise InvalidSpec(f"task {task} needs a densenet spec, got a {spec.space} spec")
    return MaskedDenseNet(spec)


def _load_data(data: ImageDataset | str, data_dir: str | Path | None, train_subset: int | None,
               test_subset: int | None, seed: int) -> ImageDataset:
    ds = data if isinstance(data, ImageDataset) else load_dataset(data, data_dir=data_dir)
    if train_subset is not None or test_subset is not None:
        ds = ds.subset(train=train_subset, test=test_subset, seed=seed)
    return ds


def _steps_per_epoch(ds: ImageDataset, train: TrainConfig, cap: int | None) -> int:
    n = len(ds.train_y) // train.batch_size
    return n if cap is None else min(n, cap)


def _prepare_out(out: str | Path, resume: bool) -> ResultDir:
    rd = ResultDir(out)
    held = [n for n in (CHECKPOINT, ResultDir.METRICS, ResultDir.SUMMARY) if rd.exists(n)]
    if held and not resume:
        raise ArchoptError(f"{rd.path} already holds a run ({', '.join(held)}); pass --resume "
                           "to continue it, or choose another --out")
    return rd


def _same_options(rd: ResultDir, options: dict[str, Any]) -> None:
    """A finished run is reused only when it was made with the same options."""
    saved = rd.read_config() if rd.exists(ResultDir.CONFIG) else {}
    ignore = ("device", "eval_every", "eval_batch_size", "latency")
    diffs = [f"{block}.{k}" for block, opts in options.items() for k, v in opts.items()
             if k not in ignore and (saved.get(block) or {}).get(k) != v]
    if diffs:
        raise ArchoptError(f"{rd.path} holds a finished run made with other options "
                           f"({', '.join(diffs)}); choose another --out")


def _structure_report(supernet: Supernet, theta: np.ndarray, mode: np.ndarray) -> dict[str, Any]:
    canon = supernet.canonical(mode[None])[0]
    own = getattr(supernet, "structure_report", None)
    if own is not None:
        return own(canon)
    if isinstance(supernet, MaskedMLP):
        return {"units_per_layer": supernet.units_per_layer(canon),
                "units_full": list(supernet.spec.widths)}
    assert isinstance(supernet, MaskedDenseNet)
    return {"connections_per_block": supernet.connections_per_block(canon),
            "selected_bits_per_block": supernet.connections_per_block(mode, canonical=False),
            "connections_full": [supernet.stage_bits(i).stop - supernet.stage_bits(i).start
                                 for i in range(len(supernet.spec.stages))]}


def run_structure(task: str, data: ImageDataset | str, *, out: str | Path,
                  structure: StructureConfig | None = None,
                  train: TrainConfig | None = None,
                  space: str | ArchSpec | dict[str, Any] | None = None,
                  data_dir: str | Path | None = None, resume: bool = False,
                  latency: bool = True, progress: bool = True) -> dict[str, Any]:
    """Learn the structure and the weights of ``task``'s supernet on ``data`` in one run.

    Args:
        task: ``"mlp-units"`` or ``"densenet-connections"``.
        data: a dataset or its registry name (``mnist``, ``fashion-mnist``, ``digits``, ...).
        out: the result folder.
        structure: the structure optimiser's options (penalty ``eps0``, sng / asng, ...).
        train: the weights' options (default :func:`default_train_config`).
        space: the supernet's spec or catalog name (default: the paper's network).
        data_dir: where datasets live (default ``$ARCHOPT_DATA_DIR``).
        resume: continue an interrupted run in ``out`` (a finished one is returned as is).
        latency: measure CPU latency of the masked supernet and the compact network.
        progress: show a progress bar / lines.

    Returns: the summary (also ``out/summary.json``): ``weight_usage_rate``,
    ``cost_usage_rate``, ``units_per_layer`` or ``connections_per_block``, ``params``
    (compact) / ``params_full``, ``mstar`` (the paper's M*: test figures, params, MACs,
    batch-1 latency), ``mstar_adjusted`` and ``finetuned`` (when ``structure.rescale`` /
    ``bn_recalibrate`` / ``finetune_epochs`` ask for them), ``shipped`` and the shipped
    model's ``test_accuracy``, ``test_error``, ``test_macro_f1``, latencies,
    ``train_seconds`` (joint), ``finetune_seconds``, ``seconds``, the compact ``arch``, ...
    (see :func:`finish_structure`).

    Raises: UnknownName (task, dataset), DataError, InvalidSpec (space, or a learned structure
        that disconnects the network), ArchoptError (options, an occupied ``out``),
        TrainingDiverged.
    """
    train = train or default_train_config(task)
    return joint_run(lambda ds: build_supernet(task, space, ds), data, task=task, out=out,
                     structure=structure, train=train, data_dir=data_dir, resume=resume,
                     latency=latency, progress=progress)


def joint_run(make_supernet: Callable[[ImageDataset], Supernet], data: ImageDataset | str, *,
              task: str, out: str | Path, train: TrainConfig,
              structure: StructureConfig | None = None, data_dir: str | Path | None = None,
              resume: bool = False, latency: bool = True, progress: bool = True,
              config: dict[str, Any] | None = None) -> dict[str, Any]:
    """The body of :func:`run_structure` for any supernet: ``make_supernet(dataset)`` (called
    after seeding) -> joint training -> :func:`finish_structure`.

    A supernet with a ``bind_optimizer(opt)`` method is handed its structure optimiser before
    training (e.g. :class:`~archopt.structure.resnet.MaskedResNet` reads theta to keep one
    channel in a superblock whose mask is empty). ``config`` adds entries to ``config.json``.
    """
    structure = structure or StructureConfig()
    rd = _prepare_out(out, resume)
    if resume and rd.exists(ResultDir.SUMMARY):
        summary = rd.read_summary()
        if summary.get("complete"):
            _same_options(rd, {"structure": structure.to_dict(), "train": train.to_dict()})
            return summary
    ds = _load_data(data, data_dir, structure.train_subset, structure.test_subset, train.seed)
    seed_everything(train.seed)
    supernet = make_supernet(ds)
    opt = make_optimizer(structure.optimizer, Bernoulli(supernet.d, structure.theta_init),
                         penalty=structure.penalty, costs=supernet.costs, lam=structure.lam,
                         eta=structure.theta_lr, delta0=structure.delta0, seed=train.seed)
    bind = getattr(supernet, "bind_optimizer", None)
    if bind is not None:
        bind(opt)
    spec = supernet.spec  # type: ignore[attr-defined]
    record = {"task": task, "dataset": ds.name, "supernet": spec.to_dict(),
              **{f"structure.{k}": v for k, v in structure.to_dict().items()
                 if k not in StructureConfig.AFTER_TRAINING},
              **{f"train.{k}": v for k, v in train.to_dict().items()}}
    rd.write_config({"command": "structure", "task": task, "dataset": ds.name,
                     "structure": structure.to_dict(), "train": train.to_dict(),
                     "supernet": spec.to_dict(), "d": supernet.d,
                     "eps": opt.eps, "theta_lr": getattr(opt, "eta", None), **(config or {})})
    steps = _steps_per_epoch(ds, train, structure.max_steps_per_epoch)
    with Progress(steps * train.epochs, f"structure {task} eps0={structure.penalty:g}",
                  enabled=progress) as bar:
        res = train_loop(supernet, ds, train, structure=opt,
                         max_steps_per_epoch=structure.max_steps_per_epoch,
                         eval_every=structure.eval_every, out=rd, resume=resume, record=record,
                         progress=bar)
    return finish_structure(supernet, opt, ds, train, structure, rd, res, task=task,
                            latency=latency, progress=progress)


def decision_report(opt: Any, steps: int) -> dict[str, Any]:
    """How decided the learned distribution is (issue 11): ``decided_fraction`` (bits within
    :data:`~archopt.structure.sng.DECIDED_TOL` of a bound), ``undecided`` (True when fewer than
    half are: ``M*`` is then close to a coin flip per bit), and for SNG with a positive penalty
    ``steps_to_decide``: twice the penalty's drift time
    (:func:`~archopt.structure.sng.steps_to_decide`), the iterations after which a useless bit
    ends switched off. A bit's penalty coefficient is ``eps * c_i``; the rule is taken at the
    median cost (every bit alike for units, c_i = 1; for DenseNet connections the costs span
    an order of magnitude and ``eps = eps0 / max(c)`` alone would overstate T by ``max(c)``)."""
    frac = opt.decided_fraction()
    out: dict[str, Any] = {"decided_fraction": frac, "undecided": frac < 0.5,
                           "decided_tolerance": DECIDED_TOL}
    eta = getattr(opt, "eta", None)
    if eta is not None and opt.eps > 0:
        eps_bit = opt.eps * float(np.median(opt.costs))
        t = 2 * steps_to_decide(eta, eps_bit, getattr(opt.dist, "margin", 0.0))
        out.update({"steps_to_decide": math.ceil(t), "steps_taken": steps})
    return out


def undecided_warning(summary: dict[str, Any]) -> str | None:
    """One plain line when a run ended with most bits undecided, naming the schedule that would
    decide them; None otherwise."""
    if not summary.get("undecided"):
        return None
    frac = summary.get("decided_fraction", 0.0)
    line = (f"warning: only {100 * frac:.0f} % of the {summary.get('d')} structure bits are "
            f"decided (theta within {summary.get('decided_tolerance', DECIDED_TOL)} of a "
            "bound): the structure is close to a coin flip per bit")
    if "steps_to_decide" in summary:
        line += (f"; with this eta and penalty about {summary['steps_to_decide']:,} steps "
                 f"decide a useless bit (this run: {summary.get('steps_taken', 0):,})")
    else:
        line += "; train longer or raise the penalty"
    return line


def _model_block(module: torch.nn.Module, ds: ImageDataset, train: TrainConfig,
                 latency: bool) -> dict[str, Any]:
    """Test figures, params and MACs (torch's counters) and batch-1 CPU latency of a model."""
    from archopt.measure import benchmark_latency, count_macs, count_params, latency_columns

    r = evaluate_structure(module, None, ds, train)
    cpu = copy.deepcopy(module).cpu()
    block = {"test_accuracy": r["accuracy"], "test_error": r["error"],
             "test_macro_f1": r["macro_f1"], "test_loss": r["loss"],
             "params": count_params(cpu), "macs": count_macs(cpu, tuple(ds.input_shape))}
    if latency:
        cols = latency_columns(benchmark_latency(cpu, tuple(ds.input_shape), threads=1))
        block.update({k: v for k, v in cols.items() if k != "latency"})
    return block


def finish_structure(supernet: Supernet, opt: Any, ds: ImageDataset, train: TrainConfig,
                     structure: StructureConfig, rd: ResultDir, res: Any, *, task: str,
                     latency: bool, progress: bool = True) -> dict[str, Any]:
    """M*, its compact network, test figures, weight usage, latency; then the optional M*
    adjustments and the fine-tuning of the compact network -> files + summary.

    The summary's ``mstar`` block is the paper's M* (compacted, weights as trained),
    ``mstar_adjusted`` the same after ``structure.rescale`` / ``structure.bn_recalibrate``
    (present when one is on), ``finetuned`` the compact network after
    ``structure.finetune_epochs`` epochs (present when > 0); each block holds
    ``test_accuracy``, ``test_error``, ``test_macro_f1``, ``test_loss``, ``params`` and
    ``macs`` (torch's counters) and ``latency_ms`` (CPU, batch 1, one thread). The top-level
    figures are those of the shipped model (``shipped`` names which; ``model.pt``); ``mstar.pt``
    holds the paper's M*.
    """
    from archopt.structure.finetune import adjust_mstar, finetune_config
    from archopt.training import save_checkpoint
    from archopt.training import train as run_trainer
    from archopt.training.checkpoint import dataset_meta

    theta = opt.theta.copy()
    mode = opt.mode()
    tx, ty = ds.test_x, ds.test_y
    masked = evaluate_structure(supernet, opt, ds, train)
    report = _structure_report(supernet, theta, mode)
    rd.write_json("structure.json", {
        "theta": theta, "mode": mode.astype(int), "canonical": supernet.canonical(mode[None])[0]
        .astype(int), "costs": supernet.costs, "sites": [
            {"name": s.name, "offset": s.offset, "size": s.size} for s in supernet.sites]})
    summary: dict[str, Any] = {
        "task": task, "dataset": ds.name, "optimizer": structure.optimizer,
        "penalty": structure.penalty, "eps": opt.eps, "d": supernet.d,
        "epochs": res.epochs, "steps": res.steps, "batch_size": train.batch_size,
        "lam": structure.lam, "train_seconds": round(res.train_seconds, 3),
        "seconds_per_step_ms": round(1000 * res.train_seconds / max(res.steps, 1), 4),
        **report,
        "theta_mean": float(theta.mean()),
        **decision_report(opt, res.steps),
        "test_accuracy": masked["accuracy"], "test_error": masked["error"],
        "test_macro_f1": masked["macro_f1"], "test_loss": masked["loss"],
        "test_examples": len(ty), "train_examples": len(ds.train_y),
    }
    try:
        comp = compact(supernet, mode)
    except InvalidSpec as err:
        summary.update({"complete": True, "compact_error": str(err)})
        rd.write_summary(summary)
        raise
    usage = weight_usage(supernet, mode)
    dev = next(supernet.parameters()).device
    xb = normalize(tx[:256], ds.mean, ds.std).to(dev)
    diff = max_output_difference(supernet, comp, xb)
    comp_eval = evaluate_structure(comp.module, None, ds, train)
    summary.update({
        **usage, "compact_test_accuracy": comp_eval["accuracy"],
        "compact_max_abs_logit_difference": diff,
        "macs": int(comp.spec.macs(ds.resolution)),
        "macs_full": int(supernet.spec.macs(ds.resolution)),
    })
    if latency:
        summary.update(latency_pair(supernet, comp, tuple(ds.input_shape)))
    mstar = {"test_accuracy": masked["accuracy"], "test_error": masked["error"],
             "test_macro_f1": masked["macro_f1"], "test_loss": masked["loss"],
             "params": int(summary["params_counted"]) if "params_counted" in summary
             else usage["params"], "macs": summary["macs"],
             **({"latency_ms": summary["latency_ms"]} if latency else {})}
    summary["mstar"] = mstar
    meta = dataset_meta(ds)
    config = {"task": task, "structure": structure.to_dict(), "train": train.to_dict()}
    rd.write_arch(comp.spec)
    save_checkpoint(rd.file("mstar.pt"), comp.module, spec=comp.spec, meta=meta, config=config)
    shipped, kind, block = comp.module, "mstar", mstar
    if structure.rescale != "none" or structure.bn_recalibrate:
        adj, info = adjust_mstar(supernet, mode, theta, ds, rescale=structure.rescale,
                                 bn_recalibrate=structure.bn_recalibrate, seed=train.seed)
        block = {**_model_block(adj.module, ds, train, latency), **info}
        summary["mstar_adjusted"] = block
        shipped, kind = adj.module, "mstar_adjusted"
    if structure.finetune_epochs > 0:
        ft = finetune_config(train, structure.finetune_epochs, structure.lam)
        ft = ft.model_copy(update={"latency": latency})
        start = copy.deepcopy(shipped)
        r = run_trainer(start, ds, ft, out=rd.file("finetune"), resume=True, progress=progress)
        keys = ("test_accuracy", "test_macro_f1", "test_loss", "params", "macs", "latency_ms",
                "latency_ms_b64", "seconds", "epochs")
        block = {**{k: r.summary[k] for k in keys if r.summary.get(k) is not None},
                 "test_error": 1.0 - r.summary["test_accuracy"], "from": kind,
                 "batch_size": ft.batch_size, "lr": ft.lr, "schedule": ft.schedule}
        summary["finetuned"] = block
        summary["finetune_seconds"] = r.summary.get("seconds")
        shipped, kind = r.model, "finetuned"
    summary.update({"shipped": kind, "test_accuracy": block["test_accuracy"],
                    "test_error": block["test_error"], "test_macro_f1": block["test_macro_f1"],
                    "test_loss": block["test_loss"]})
    if "latency_ms" in block:
        summary["latency_ms"] = block["latency_ms"]
    summary["seconds"] = round(res.train_seconds + (summary.get("finetune_seconds") or 0.0), 3)
    save_checkpoint(rd.file("model.pt"), shipped, spec=comp.spec, meta=meta, config=config)
    summary.update({"arch": comp.spec.to_dict(), "complete": True})
    rd.write_summary(summary)
    return summary


def run_fixed(spec: ArchSpec, data: ImageDataset | str, *, out: str | Path,
              train: TrainConfig, max_steps_per_epoch: int | None = None,
              train_subset: int | None = None, test_subset: int | None = None,
              data_dir: str | Path | None = None, resume: bool = False,
              progress: bool = True, label: str = "fixed") -> dict[str, Any]:
    """Train a fixed-structure network with the same loop (no masks, no theta) -- the
    baseline the method is compared with. MLPs get the same He initialisation.

    Returns: the summary (``out/summary.json``): ``params``, ``weight_usage_rate`` is left to
    the caller, ``test_accuracy``, ``test_error``, ``train_seconds``, ``steps``.
    """
    from archopt.training import save_checkpoint
    from archopt.training.checkpoint import dataset_meta

    rd = _prepare_out(out, resume)
    if resume and rd.exists(ResultDir.SUMMARY):
        s = rd.read_summary()
        if s.get("complete"):
            _same_options(rd, {"train": train.to_dict()})
            return s
    ds = _load_data(data, data_dir, train_subset, test_subset, train.seed)
    spec = adapt(load_spec(spec), ds)
    seed_everything(train.seed)
    model = spec.build()
    if isinstance(spec, MLPSpec):
        he_init(model)
    record = {"spec": spec.to_dict(), "dataset": ds.name, "train_subset": train_subset,
              "max_steps_per_epoch": max_steps_per_epoch,
              **{f"train.{k}": v for k, v in train.to_dict().items()}}
    rd.write_config({"command": "structure-baseline", "spec": spec.to_dict(),
                     "train": train.to_dict(), "dataset": ds.name,
                     "max_steps_per_epoch": max_steps_per_epoch, "train_subset": train_subset})
    rd.write_arch(spec)
    steps = _steps_per_epoch(ds, train, max_steps_per_epoch)
    t0 = time.perf_counter()
    with Progress(steps * train.epochs, label, enabled=progress) as bar:
        res = train_loop(model, ds, train, max_steps_per_epoch=max_steps_per_epoch, out=rd,
                         resume=resume, record=record, progress=bar)
    r = evaluate_structure(model, None, ds, train)
    summary = {"label": label, "dataset": ds.name, "params": spec.params(),
               "macs": spec.macs(ds.resolution), "epochs": res.epochs, "steps": res.steps,
               "batch_size": train.batch_size, "train_seconds": round(res.train_seconds, 3),
               "seconds_per_step_ms": round(1000 * res.train_seconds / max(res.steps, 1), 4),
               "wall_seconds": round(time.perf_counter() - t0, 3),
               "test_accuracy": r["accuracy"], "test_error": r["error"],
               "test_macro_f1": r["macro_f1"], "test_loss": r["loss"], "arch": spec.to_dict(),
               "complete": True}
    save_checkpoint(rd.file("model.pt"), model, spec=spec, meta=dataset_meta(ds),
                    config={"train": train.to_dict()})
    rd.write_summary(summary)
    return summary
