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
from typing import Any

import torch
from torch import nn

from archopt.data.dataset import ImageDataset, normalize
from archopt.errors import ArchoptError
from archopt.refine.blocking import (
    Blocking,
    histogram_blocking,
    random_blocking,
    with_own_blocks,
)
from archopt.refine.config import RefineConfig
from archopt.refine.de import DifferentialEvolution
from archopt.refine.evaluation import PopulationEvaluator
from archopt.refine.model_io import (
    RefineResult,
    Source,
    load_source,
    refuse_existing,
    working_copy,
    write_checkpoint,
)
from archopt.refine.output_layer import output_bias
from archopt.refine.params import ParameterLayout
from archopt.refine.plots import plot_convergence
from archopt.refine.scores import before_after, logits_of, split_scores
from archopt.refine.superbatch import CircularSuperBatches
from archopt.runs import ResultDir, atomic_torch_save, torch_load
from archopt.runtime.devices import resolve_device, seed_everything
from archopt.runtime.progress import Progress

__all__ = ["RefineResult", "Source", "hbde", "initial_ranges", "load_source", "make_blocking",
           "search_space"]

STATE = "state.pt"
PLOT = "convergence.png"


def make_blocking(theta: torch.Tensor, config: RefineConfig) -> Blocking:
    """The blocking ``config`` asks for: histogram with ``n_bins``, or random blocks as many as
    histogram blocking with ``n_bins`` gives (the BDE baseline at the same D')."""
    hist = histogram_blocking(theta, config.n_bins)
    if config.blocks == "histogram":
        return hist
    return random_blocking(theta, hist.blocked_dimensions, seed=config.seed)


def initial_ranges(blocking: Blocking, init_range: str = "bin", *,
                   layer_std: torch.Tensor | None = None, spread: float = 1.0
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

    ``"layer"`` (ours, not the paper's): the ``"bin"`` range widened, where narrower, to the
    block mean +- ``spread`` x sigma_k, where sigma_k is the mean over the block's members of the
    standard deviation of the parameter tensor each belongs to (``layer_std`` (D,), see
    :meth:`ParameterLayout.tensor_std`). A bin is ~1e-4 wide against tensor spreads of
    ~1e-2..1e-1, so the paper's population never leaves the blocked model's neighbourhood;
    this lets it start at a chosen fraction of the layers' own spread.

    Raises: ArchoptError for an unknown ``init_range`` or ``"layer"`` without ``layer_std``.
    """
    if init_range == "members":
        return blocking.low, blocking.high
    if init_range not in ("bin", "layer"):
        raise ArchoptError(f"init_range must be 'members', 'bin' or 'layer', got {init_range!r}")
    mean = blocking.values.detach().to("cpu", torch.float64)
    if blocking.edges is not None and blocking.bin_index is not None:
        low, high = blocking.edges[blocking.bin_index], blocking.edges[blocking.bin_index + 1]
    else:
        span = float(blocking.high.max() - blocking.low.min())
        half = span / (2 * (blocking.n_bins or blocking.blocked_dimensions))
        low, high = torch.minimum(blocking.low, mean - half), torch.maximum(blocking.high,
                                                                            mean + half)
    if init_range == "bin":
        return low, high
    if layer_std is None or layer_std.numel() != blocking.dimensions:
        raise ArchoptError("init_range='layer' needs the (D,) standard deviation of each "
                           "parameter's tensor")
    sums = torch.zeros(blocking.blocked_dimensions, dtype=torch.float64)
    sums.index_add_(0, blocking.inverse.cpu(), layer_std.detach().to("cpu", torch.float64))
    sigma = sums / blocking.counts.double()
    return torch.minimum(low, mean - spread * sigma), torch.maximum(high, mean + spread * sigma)


def search_space(module: nn.Module, layout: ParameterLayout, theta: torch.Tensor,
                 cfg: RefineConfig, num_classes: int, probe: torch.Tensor
                 ) -> tuple[Blocking, torch.Tensor, torch.Tensor, str | None]:
    """(blocking, low, high, bias name): the genes HBDE searches and their initial ranges.

    The blocking of ``cfg`` (:func:`make_blocking`) and :func:`initial_ranges`; with
    ``cfg.bias_genes`` (ours) the output layer's K biases (found by
    :func:`archopt.refine.output_layer.output_bias` on the normalised ``probe`` batch) get one
    block each, drawn in their value +- ``cfg.bias_gene_range``, and their name is returned.
    """
    blocking = make_blocking(theta, cfg)
    layer_std = layout.tensor_std(theta) if cfg.init_range == "layer" else None
    low, high = initial_ranges(blocking, cfg.init_range, layer_std=layer_std,
                               spread=cfg.init_spread)
    if not cfg.bias_genes:
        return blocking, low, high, None
    name = output_bias(module, num_classes, probe)
    blocking, origin = with_own_blocks(blocking, theta, layout.positions(name))
    own = origin < 0
    value = blocking.values.detach().to("cpu", torch.float64)
    low = torch.where(own, value - cfg.bias_gene_range, low[origin.clamp(min=0)])
    high = torch.where(own, value + cfg.bias_gene_range, high[origin.clamp(min=0)])
    return blocking, low, high, name


def _load_state(rd: ResultDir | None, resume: bool, cfg: RefineConfig) -> dict[str, Any] | None:
    if rd is None:
        if resume:
            raise ArchoptError("resume needs a result folder (out=...)")
        return None
    refuse_existing(rd, resume, STATE)
    if not (resume and rd.exists(STATE)):
        return None
    diffs = cfg.differences(rd.read_config().get("refine", {}))
    if diffs:
        raise ArchoptError(f"cannot resume {rd.path}: the options differ from the saved run ("
                           + "; ".join(diffs) + ")")
    return torch_load(rd.file(STATE), what="HBDE state", advice="remove it to start afresh")


def hbde(model: nn.Module | str | os.PathLike[str] | Source, data: ImageDataset,
         config: RefineConfig | dict[str, Any] | None = None,
         out: str | os.PathLike[str] | None = None, *,
         validation: tuple[torch.Tensor, torch.Tensor] | None = None, resume: bool = False,
         progress: bool | Progress = True, module: nn.Module | None = None) -> RefineResult:
    """Fine-tune a trained classifier with HBDE for any metric (``method="hbde"`` of
    :func:`archopt.refine.refine`).

    Args:
        model: a user's ``nn.Module`` returning (B, K) logits for (B, C, H, W) images
            normalised with the dataset's mean / std, a checkpoint ``.pt`` (its own mean / std
            are used), or a result folder with ``checkpoint.pt``.
        data: the dataset (training split for the super-batches, test split for the report).
        config: a :class:`RefineConfig`, a dict of its fields, or None (paper defaults).
        out: result folder (config.json, arch.json, metrics.jsonl, summary.json,
            checkpoint.pt, convergence.png, state.pt); None writes nothing.
        validation: ``(x, y)`` a validation split; None holds out ``config.val_fraction`` of
            the training split (:mod:`archopt.refine.validation`). The super-batches are cut
            from the rest; the validation split is only reported.
        resume: continue the run in ``out`` (from ``state.pt``; the options must match except
            :data:`~archopt.refine.config.RESUME_IGNORED`, so ``generations`` may grow).
        progress: show progress (rich bar on a terminal, lines otherwise), or a Progress.
        module: an instance to load a checkpoint of a user's own module into.

    Returns: a :class:`RefineResult`; ``summary`` holds the keys every method writes
        (:data:`archopt.refine.scores.COMMON_KEYS`: test / validation metric before and
        after, ``scores``, ``validation``, ...) and ``dimensions`` (D), ``blocked_dimensions``
        (D'), ``metric_after_blocking`` (test), ``train_metric_*`` (the training part, or
        ``train_eval_size`` examples of a seeded permutation of it), ``function_evaluations``,
        ``generations``, ``seconds`` (wall, all parts of a resumed run), ``search_seconds``
        (population evaluation + DE only; ``search_cpu_seconds``: the process CPU time of the
        same, all threads; ``clock``: which of the two ``max_seconds`` bounded),
        ``evaluation`` (path, chunk, measured rates), ``rescore``, ``best_objective``,
        ``variant`` (the options that are ours, not the paper's).

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

    work, mean, std, train, val = working_copy(src, data, validation, cfg, device)
    batches = CircularSuperBatches(train.train_x, train.train_y, cfg.super_batch, mean=mean,
                                   std=std, device=device, order=cfg.order, seed=cfg.seed)
    layout = ParameterLayout.of(work)
    theta0 = layout.flatten(work)
    probe = normalize(val.x[:16].to(device), mean, std)
    blocking, low, high, bias_name = search_space(work, layout, theta0, cfg, data.num_classes,
                                                  probe)
    evaluator = PopulationEvaluator(work, data.num_classes, blocking=blocking, metric=cfg.metric,
                                    device=device, path=cfg.eval_path, chunk=cfg.chunk)

    g = torch.Generator().manual_seed(cfg.seed)
    n_tr = min(cfg.train_eval_size or len(train.train_y), len(train.train_y))
    tr_idx = torch.randperm(len(train.train_y), generator=g)[:n_tr].sort().values
    splits = {"train": (train.train_x[tr_idx], train.train_y[tr_idx]),
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
        probe_pop = blocking.values.unsqueeze(0).repeat(cfg.population, 1)
        evaluator.calibrate(probe_pop, xb0)
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
    common = _scores(work, refined, val, data, mean, std, cfg)
    summary = {
        "method": "hbde" if cfg.blocks == "histogram" else "bde-random-blocks",
        "dataset": data.name, "metric": cfg.metric,
        **common, "metric_after": metric_after,
        "validation": val.record(data.num_classes, len(train.train_y)),
        "dimensions": blocking.dimensions, "blocked_dimensions": blocking.blocked_dimensions,
        "reduction": round(blocking.reduction, 2), "n_bins": cfg.n_bins,
        "metric_after_blocking": cost["after"]["test"],
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
        "variant": _variant(cfg, bias_name),
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


def _scores(before: nn.Module, after: nn.Module, val: Any, data: ImageDataset,
            mean: tuple[float, ...], std: tuple[float, ...], cfg: RefineConfig
            ) -> dict[str, Any]:
    """The common figures (:func:`archopt.refine.scores.before_after`) of two models."""
    labels = {"val": val.y, "test": data.test_y}
    xs = {"val": val.x, "test": data.test_x}
    dev = next(before.parameters()).device

    def of(m: nn.Module) -> dict[str, dict[str, float]]:
        lg = {s: logits_of(m, x, mean=mean, std=std, batch_size=cfg.eval_batch_size,
                           device=dev) for s, x in xs.items()}
        return split_scores(lg, labels, data.num_classes, cfg.metric)

    return before_after(of(before), of(after), cfg.metric)


def _variant(cfg: RefineConfig, bias_name: str | None) -> dict[str, Any]:
    """The options of this run that are ours, not the paper's ({} = the published setting;
    ``init_range="bin"`` is the project's default fix of zero-width one-member blocks)."""
    v: dict[str, Any] = {}
    if cfg.rescore:
        v["rescore"] = True
    if cfg.init_range == "layer":
        v["init_range"] = "layer"
        v["init_spread"] = cfg.init_spread
    if bias_name is not None:
        v["bias_genes"] = bias_name
        v["bias_gene_range"] = cfg.bias_gene_range
    return v


def _progress(progress: bool | Progress, total: int | None, done: int) -> Progress:
    if isinstance(progress, Progress):
        return progress
    p = Progress(total, "hbde", enabled=bool(progress))
    p.done = float(done)
    return p


def _write_outputs(rd: ResultDir, refined: nn.Module, src: Source, data: ImageDataset,
                   mean: tuple[float, ...], std: tuple[float, ...], cfg: RefineConfig,
                   summary: dict[str, Any], history: list[dict[str, Any]]) -> None:
    write_checkpoint(rd, refined, src, data, mean, std, cfg, summary)
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
