"""The HBDE loop: block a trained model, evolve the block vector, write a result folder.

``refine(model_or_checkpoint, data, config, out=DIR)``:

1. theta (D,) = the trainable parameters; histogram blocking -> D' blocks (or random blocks for
   the BDE baseline); the blocking cost (metric of the original vs the blocked model, train and
   test) is measured.
2. DE/rand/1/bin (ask/tell) over the block vector, the initial population drawn inside each
   block's range (plus the block-mean member); generation t scores all NP trials on circular
   super-batch t mod (N // B) with objective ``1 - metric`` (:class:`PopulationEvaluator`,
   sequential or batched path chosen by measurement).
3. Every ``eval_every`` generations the best member's test metric is logged.
4. The best member, unblocked, is the refined model: ``checkpoint.pt`` (the archopt format,
   loadable with :func:`archopt.training.load_model`), ``summary.json``, ``metrics.jsonl`` (one
   row per generation), ``convergence.png``, ``config.json`` and ``arch.json``.

An interrupted run continues with ``resume=True`` from ``state.pt`` (DE population, objectives,
generator state, generation; written atomically after every generation), bit for bit on the same
device and evaluation path.

"best objective" per generation is the lowest stored objective of the parents; without
``rescore`` the parents keep the objectives measured on the super-batch they were accepted on
(the reference code's behaviour), with ``rescore`` all are measured on the current one.

Source: Khosrowshahli et al., arXiv 2408.07194, sections 3-4; ../specs/hbde.md.
"""

from __future__ import annotations

import copy
import itertools
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from archopt.data.dataset import ImageDataset
from archopt.errors import ArchoptError, CheckpointError
from archopt.progress import Progress
from archopt.refine.blocking import Blocking, histogram_blocking, random_blocking
from archopt.refine.config import RefineConfig
from archopt.refine.de import DifferentialEvolution
from archopt.refine.evaluation import PopulationEvaluator
from archopt.refine.params import ParameterLayout
from archopt.refine.plots import plot_convergence
from archopt.refine.superbatch import CircularSuperBatches
from archopt.runs import ResultDir, atomic_torch_save, torch_load
from archopt.runtime import resolve_device, seed_everything
from archopt.spaces.base import ArchSpec

__all__ = ["RefineResult", "Source", "load_source", "make_blocking", "refine"]

STATE = "state.pt"
CHECKPOINT = "checkpoint.pt"
PLOT = "convergence.png"


@dataclass
class Source:
    """The model to refine and what is known about it.

    Attributes:
        module: the network (eval mode).
        spec: its architecture spec, or None for a user's own module.
        meta: checkpoint meta (dataset, num_classes, mean, std, ...) or {}.
        path: the checkpoint it came from, or None.
    """

    module: nn.Module
    spec: ArchSpec | None
    meta: dict[str, Any]
    path: Path | None = None


def load_source(ref: nn.Module | str | os.PathLike[str] | Source, *,
                module: nn.Module | None = None) -> Source:
    """A :class:`Source` from a module, a checkpoint ``.pt`` or a result folder holding
    ``checkpoint.pt`` (what ``archopt train`` / ``archopt run`` write).

    Args:
        ref: the model or where it is.
        module: for a checkpoint of a user's own module (no spec inside): an instance to load
            the weights into.

    Raises: CheckpointError (missing / unreadable checkpoint, weights that do not fit).
    """
    if isinstance(ref, Source):
        return ref
    if isinstance(ref, nn.Module):
        return Source(ref, None, {})
    from archopt.training.checkpoint import load_model

    path = Path(ref)
    if path.is_dir():
        if not (path / CHECKPOINT).is_file():
            raise CheckpointError(f"{path} is a folder without {CHECKPOINT}; pass the checkpoint "
                                  "file that `archopt train` or `archopt run` wrote")
        path = path / CHECKPOINT
    mod, spec, meta = load_model(path, "cpu", module=module)
    return Source(mod, spec, meta, path)


def make_blocking(theta: torch.Tensor, config: RefineConfig) -> Blocking:
    """The blocking ``config`` asks for: histogram with ``n_bins``, or random blocks as many as
    histogram blocking with ``n_bins`` gives (the BDE baseline at the same D')."""
    hist = histogram_blocking(theta, config.n_bins)
    if config.blocks == "histogram":
        return hist
    return random_blocking(theta, hist.blocked_dimensions, seed=config.seed)


def initial_ranges(blocking: Blocking, init_range: str = "bin"
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """(low, high), each (D',) float64: the range each block's initial genes are drawn from.

    ``"members"``: [min, max] of the block's original parameters (the paper's code). A block
    whose members are all equal -- one-member blocks at the histogram's tails -- gets a zero-width
    range: every population member holds the same value, DE's differences are zero there and the
    gene can never move (a *degenerate* block).

    ``"bin"`` (default): histogram blocks use their bin's edges (the members' range widened to
    the bin width); random blocks use the members' range widened, where narrower, to
    ``(max(theta) - min(theta)) / D'`` (the width of a histogram bin at the same block count)
    centred on the block mean. No block is degenerate unless all parameters are equal.

    Raises: ArchoptError for an unknown ``init_range``.
    """
    if init_range == "members":
        return blocking.low, blocking.high
    if init_range != "bin":
        raise ArchoptError(f"init_range must be 'members' or 'bin', got {init_range!r}")
    if blocking.edges is not None and blocking.bin_index is not None:
        return blocking.edges[blocking.bin_index], blocking.edges[blocking.bin_index + 1]
    span = float(blocking.high.max() - blocking.low.min())
    half = span / (2 * (blocking.n_bins or blocking.blocked_dimensions))
    mean = blocking.values.detach().to("cpu", torch.float64)
    return torch.minimum(blocking.low, mean - half), torch.maximum(blocking.high, mean + half)


@dataclass
class RefineResult:
    """What :func:`refine` returns.

    Attributes:
        model: the refined network (eval mode, on the run's device).
        summary: the figures of ``summary.json``.
        history: one row per generation (the rows of ``metrics.jsonl``).
        blocking: the blocking searched over.
        best_blocks: (D',) the best block vector.
        spec: the architecture spec, or None.
        config: the resolved config.
        out: the result folder, or None.
    """

    model: nn.Module
    summary: dict[str, Any]
    history: list[dict[str, Any]]
    blocking: Blocking
    best_blocks: torch.Tensor
    spec: ArchSpec | None
    config: RefineConfig
    out: Path | None = None


def _check_data(module: nn.Module, meta: dict[str, Any], data: ImageDataset,
                device: torch.device) -> tuple[tuple[float, ...], tuple[float, ...]]:
    k = meta.get("num_classes")
    if k is not None and int(k) != data.num_classes:
        raise ArchoptError(f"the model was trained for {k} classes, dataset {data.name} has "
                           f"{data.num_classes}")
    shape = meta.get("input_shape")
    if shape is not None and tuple(shape) != tuple(data.input_shape):
        raise ArchoptError(f"the model was trained on inputs {tuple(shape)}, dataset {data.name} "
                           f"has {tuple(data.input_shape)}")
    mean = tuple(meta.get("mean") or data.mean)
    std = tuple(meta.get("std") or data.std)
    from archopt.data.dataset import normalize

    with torch.no_grad():
        out = module.to(device).eval()(normalize(data.train_x[:2].to(device), mean, std))
    if out.dim() != 2 or out.shape[1] != data.num_classes:
        raise ArchoptError(f"the model returns shape {tuple(out.shape)} for 2 examples; HBDE "
                           f"needs (2, {data.num_classes}) logits for dataset {data.name}")
    return mean, std


def _load_state(rd: ResultDir | None, resume: bool, cfg: RefineConfig) -> dict[str, Any] | None:
    if rd is None:
        if resume:
            raise ArchoptError("resume needs a result folder (out=...)")
        return None
    has_run = rd.exists(STATE) or rd.exists(ResultDir.SUMMARY)
    if has_run and not resume:
        raise ArchoptError(f"{rd.path} already holds a refine run; pass --resume to continue it "
                           "or choose another --out")
    if not (resume and rd.exists(STATE)):
        return None
    diffs = cfg.differences(rd.read_config().get("refine", {}))
    if diffs:
        raise ArchoptError(f"cannot resume {rd.path}: the options differ from the saved run ("
                           + "; ".join(diffs) + ")")
    return torch_load(rd.file(STATE), what="HBDE state", advice="remove it to start afresh")


def refine(model: nn.Module | str | os.PathLike[str] | Source, data: ImageDataset,
           config: RefineConfig | dict[str, Any] | None = None,
           out: str | os.PathLike[str] | None = None, *, resume: bool = False,
           progress: bool | Progress = True, module: nn.Module | None = None) -> RefineResult:
    """Fine-tune a trained classifier with HBDE for any metric.

    Args:
        model: a user's ``nn.Module`` returning (B, K) logits for (B, C, H, W) images
            normalised with the dataset's mean / std, a checkpoint ``.pt`` (its own mean / std
            are used), or a result folder with ``checkpoint.pt``.
        data: the dataset (training split for the super-batches, test split for the report).
        config: a :class:`RefineConfig`, a dict of its fields, or None (paper defaults).
        out: result folder (config.json, arch.json, metrics.jsonl, summary.json,
            checkpoint.pt, convergence.png, state.pt); None writes nothing.
        resume: continue the run in ``out`` (from ``state.pt``; the options must match except
            :data:`~archopt.refine.config.RESUME_IGNORED`, so ``generations`` may grow).
        progress: show progress (rich bar on a terminal, lines otherwise), or a Progress.
        module: an instance to load a checkpoint of a user's own module into.

    Returns: a :class:`RefineResult`; ``summary`` holds ``dimensions`` (D),
        ``blocked_dimensions`` (D'), ``metric``, ``metric_before`` / ``metric_after_blocking`` /
        ``metric_after`` (test split), ``train_metric_*`` (training split, or its first
        ``train_eval_size`` examples of a seeded permutation), ``function_evaluations``,
        ``generations``, ``seconds`` (wall, all parts of a resumed run), ``search_seconds``
        (population evaluation + DE only; ``search_cpu_seconds``: the process CPU time of the
        same, all threads; ``clock``: which of the two ``max_seconds`` bounded),
        ``evaluation`` (path, chunk, measured rates), ``rescore``, ``best_objective``.

    Raises:
        InvalidRefineConfig: a bad option.
        ArchoptError: a model / dataset mismatch; ``out`` holding a run without ``resume``;
            a resume with different options.
        CheckpointError: an unreadable checkpoint or state file.
        UnknownName: an unknown metric.
    """
    wall0 = time.perf_counter()
    cfg = config if isinstance(config, RefineConfig) else RefineConfig.from_any(config)
    src = load_source(model, module=module)
    device = resolve_device(cfg.device)
    rd = ResultDir(out) if out is not None else None
    state = _load_state(rd, resume, cfg)
    seed_everything(cfg.seed)

    work = copy.deepcopy(src.module).to(device).eval()
    mean, std = _check_data(work, src.meta, data, device)
    batches = CircularSuperBatches(data.train_x, data.train_y, cfg.super_batch, mean=mean,
                                   std=std, device=device, order=cfg.order, seed=cfg.seed)
    layout = ParameterLayout.of(work)
    theta0 = layout.flatten(work)
    blocking = make_blocking(theta0, cfg)
    evaluator = PopulationEvaluator(work, data.num_classes, blocking=blocking, metric=cfg.metric,
                                    device=device, path=cfg.eval_path, chunk=cfg.chunk)

    g = torch.Generator().manual_seed(cfg.seed)
    n_tr = cfg.train_eval_size or len(data.train_y)
    tr_idx = torch.randperm(len(data.train_y), generator=g)[:n_tr].sort().values
    splits = {"train": (data.train_x[tr_idx], data.train_y[tr_idx]),
              "test": (data.test_x, data.test_y)}

    def split_metric(candidate: torch.Tensor, split: str, full: bool = False) -> float:
        x, y = splits[split]
        return evaluator.metric_on(candidate, x, y, mean=mean, std=std,
                                   batch_size=cfg.eval_batch_size, full=full)

    if state is not None:
        cost = state["cost"]
    else:  # the cost of blocking: the original model vs the blocked one, train and test
        cost = {"before": {s: split_metric(theta0, s, full=True) for s in ("train", "test")},
                "after": {s: split_metric(blocking.values, s) for s in ("train", "test")}}
    low, high = initial_ranges(blocking, cfg.init_range)
    de = DifferentialEvolution(low, high, population=cfg.population, F=cfg.F, CR=cfg.CR,
                               seed=cfg.seed,
                               x0=blocking.values if cfg.block_mean_member else None)

    history: list[dict[str, Any]] = []
    start, search, search_cpu, prior_wall = 0, 0.0, 0.0, 0.0
    if state is not None:
        if int(state["blocked_dimensions"]) != blocking.blocked_dimensions:
            raise ArchoptError(f"cannot resume {rd.path if rd else ''}: the blocking has changed "
                               f"(D' {state['blocked_dimensions']} -> "
                               f"{blocking.blocked_dimensions}); is it the same model?")
        de.load_state_dict(state["de"])
        start = int(state["generation"])
        search = float(state["search_seconds"])
        search_cpu = float(state.get("search_cpu_seconds", 0.0))
        prior_wall = float(state["wall_seconds"])
        assert rd is not None
        rd.keep_metrics(lambda r: int(r.get("generation", -1)) < start)
        history = rd.read_metrics()
    elif rd is not None:
        rd.write_config({"command": "refine", "source": str(src.path) if src.path else None,
                         "dataset": data.name, "refine": cfg.to_dict()})
        if src.spec is not None:
            rd.write_arch(src.spec)

    # The measured rule: calibrate the evaluation path on the real batch (not counted as search).
    xb0, _ = batches[0]
    cal0 = time.perf_counter()
    if evaluator.path == "auto":
        probe = blocking.values.unsqueeze(0).repeat(cfg.population, 1)
        evaluator.calibrate(probe, xb0)
    calibration_seconds = time.perf_counter() - cal0

    prog = _progress(progress, cfg.generations, start)
    def spent() -> float:  # the search time on the budget's clock
        return search_cpu if cfg.clock == "cpu" else search

    with prog as bar:
        t = start
        for t in (range(start, cfg.generations) if cfg.generations is not None
                  else itertools.count(start)):
            if cfg.max_seconds is not None and spent() >= cfg.max_seconds:
                break
            tic, cpu_tic = time.perf_counter(), time.process_time()
            xb, yb = batches[t]
            if cfg.rescore and de.population is not None:
                de.rescore(evaluator.objectives(de.population, xb, yb))
            trials = de.ask()
            replaced = de.tell(evaluator.objectives(trials, xb, yb))
            search += time.perf_counter() - tic
            search_cpu += time.process_time() - cpu_tic
            assert de.fitness is not None
            row: dict[str, Any] = {
                "generation": t, "superbatch": batches.index(t),
                "best_objective": de.best_fitness,
                "mean_objective": float(de.fitness.mean()),
                "replaced": int(replaced.sum()), "evaluations": de.evaluations,
                "search_seconds": round(search, 3), "search_cpu_seconds": round(search_cpu, 3)}
            last = t + 1 == cfg.generations or (cfg.max_seconds is not None
                                                and spent() >= cfg.max_seconds)
            if (t + 1) % cfg.eval_every == 0 or last:
                row["test_metric"] = split_metric(de.best, "test")
            history.append(row)
            if rd is not None:
                rd.append_metrics(row)
                atomic_torch_save({"de": de.state_dict(), "generation": t + 1,
                                   "search_seconds": search, "search_cpu_seconds": search_cpu,
                                   "cost": cost,
                                   "wall_seconds": prior_wall + time.perf_counter() - wall0,
                                   "blocked_dimensions": blocking.blocked_dimensions},
                                  rd.file(STATE))
            bar.advance(1, best=1.0 - de.best_fitness,
                        **({"test": row["test_metric"]} if "test_metric" in row else {}))
    if de.population is None:
        raise ArchoptError("no generation was run (generations already reached, or "
                           "max_seconds too small)")

    best = de.best
    refined = copy.deepcopy(src.module).to(device).eval()
    layout.load(refined, blocking.unblock(best.to(device)))
    metric_after = (history[-1].get("test_metric") if history and
                    history[-1]["generation"] == de.generation else None)
    if metric_after is None:
        metric_after = split_metric(best, "test")
    summary = {
        "method": "hbde" if cfg.blocks == "histogram" else "bde-random-blocks",
        "dataset": data.name, "metric": cfg.metric,
        "dimensions": blocking.dimensions, "blocked_dimensions": blocking.blocked_dimensions,
        "reduction": round(blocking.reduction, 2), "n_bins": cfg.n_bins,
        "metric_before": cost["before"]["test"],
        "metric_after_blocking": cost["after"]["test"],
        "metric_after": metric_after,
        "train_metric_before": cost["before"]["train"],
        "train_metric_after_blocking": cost["after"]["train"],
        "train_metric_after": split_metric(best, "train"),
        "train_eval_size": n_tr,
        "best_objective": de.best_fitness,
        "function_evaluations": de.evaluations,
        "generations": de.generation + 1,
        "population": cfg.population, "super_batch": cfg.super_batch,
        "superbatches_per_cycle": len(batches),
        "rescore": cfg.rescore, "block_mean_member": cfg.block_mean_member,
        "degenerate_blocks": int((low == high).sum()),
        "evaluation": {**(evaluator.calibration or {"path": evaluator.path,
                                                    "chunk": evaluator.chunk}),
                       "calibration_seconds": round(calibration_seconds, 3)},
        "search_seconds": round(search, 3),
        "search_cpu_seconds": round(search_cpu, 3), "clock": cfg.clock,
        "seconds": round(prior_wall + time.perf_counter() - wall0, 3),
        "device": str(device),
    }
    if rd is not None:
        _write_outputs(rd, refined, src, data, mean, std, cfg, summary, history)
    return RefineResult(refined, summary, history, blocking, best, src.spec, cfg,
                        rd.path if rd else None)


def _progress(progress: bool | Progress, total: int | None, done: int) -> Progress:
    if isinstance(progress, Progress):
        return progress
    p = Progress(total, "hbde", enabled=bool(progress))
    p.done = float(done)
    return p


def _write_outputs(rd: ResultDir, refined: nn.Module, src: Source, data: ImageDataset,
                   mean: tuple[float, ...], std: tuple[float, ...], cfg: RefineConfig,
                   summary: dict[str, Any], history: list[dict[str, Any]]) -> None:
    from archopt.training.checkpoint import dataset_meta, save_checkpoint

    meta = {**dataset_meta(data), "mean": list(mean), "std": list(std),
            "refined": {"method": summary["method"], "metric": cfg.metric,
                        "metric_after": summary["metric_after"],
                        "source": str(src.path) if src.path else None}}
    save_checkpoint(rd.file(CHECKPOINT), refined, spec=src.spec, meta=meta,
                    config={"refine": cfg.to_dict()})
    plot_convergence(history, rd.file(PLOT), metric=cfg.metric,
                     title=f"{summary['method']} on {data.name}: D={summary['dimensions']:,} -> "
                           f"D'={summary['blocked_dimensions']:,}",
                     references={"pre-trained": summary["metric_before"],
                                 "blocked": summary["metric_after_blocking"]},
                     rescored=cfg.rescore)
    if rd.exists(ResultDir.SUMMARY):  # a resumed run keeps the baselines measured before
        old = rd.read_summary().get("baselines")
        if old:
            summary["baselines"] = old
    rd.write_summary(summary)

