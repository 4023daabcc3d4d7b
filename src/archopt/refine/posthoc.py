"""Post-hoc refine methods: per-class logit offsets chosen on the validation split.

Both methods change no weight except the output layer's bias: the chosen offsets b (K,) are
*folded* into it (:mod:`archopt.refine.output_layer`), so the refined model's logits are
exactly the original logits + b and the checkpoint is a plain model of the same architecture.

- ``logit-adjust``: post-hoc logit adjustment, Menon et al., "Long-tail learning via logit
  adjustment", ICLR 2021, eq. (9): predict ``argmax_y f_y(x) - tau * log pi_y``, with pi the
  class prior of the training split (the part the model is refined on) and tau chosen from
  ``config.taus`` by the validation metric (ties: the smallest tau; tau = 0 is the identity).
  b = -tau * log pi.
- ``bias``: b searched directly for the metric on the validation split with a library
  optimiser: scipy's ``differential_evolution`` (default; its defaults except ``polish=False``
  -- a gradient polish is meaningless on a piecewise-constant objective -- the identity b = 0
  as ``x0``, a vectorised objective and a fixed iteration count from ``bias_evaluations``) or
  CMA-ES from the ``cma`` package (``archopt[cma]``; ``x0 = 0``, ``sigma0 = bound / 4``,
  ``maxfevals``). The result is kept only if it beats b = 0 on the validation split, so the
  validation metric can only rise.

The validation logits are computed once; every candidate b is scored on them (no forward pass
per candidate). ``search_cpu_seconds`` counts that forward pass and the search.
"""

from __future__ import annotations

import copy
import inspect
import os
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn

from archopt.data.dataset import ImageDataset, normalize
from archopt.errors import ArchoptError
from archopt.refine.config import RefineConfig
from archopt.refine.model_io import (
    RefineResult,
    Source,
    load_source,
    refuse_existing,
    working_copy,
    write_checkpoint,
)
from archopt.refine.output_layer import fold_bias, output_bias
from archopt.refine.scores import before_after, logits_of, split_scores
from archopt.runs import ResultDir
from archopt.runtime.devices import resolve_device, seed_everything
from archopt.training.metrics import get_metric

__all__ = ["class_prior", "default_bound", "logit_adjustment", "posthoc", "tune_biases"]

PLOT = "convergence.png"


def class_prior(y: torch.Tensor, num_classes: int) -> torch.Tensor:
    """(K,) float64 class frequencies of labels y (N,); a class with no example counts as one
    (so log pi stays finite)."""
    counts = torch.bincount(y.cpu(), minlength=num_classes).double().clamp_min(1.0)
    return counts / counts.sum()


def _scorer(logits: torch.Tensor, y: torch.Tensor, metric: str,
            num_classes: int) -> Callable[[torch.Tensor], torch.Tensor]:
    """offsets (P, K) -> the metric (P,) float64 of argmax(logits + offset) on (logits, y)."""
    fn = get_metric(metric)
    lg = logits.double()

    def score(offsets: torch.Tensor) -> torch.Tensor:
        preds = (lg.unsqueeze(0) + offsets.to(lg).unsqueeze(1)).argmax(-1)
        return fn(preds, y.to(preds.device), num_classes).double().cpu()

    return score


def logit_adjustment(logits: torch.Tensor, y: torch.Tensor, prior: torch.Tensor,
                     taus: tuple[float, ...] | list[float], *, metric: str = "f1"
                     ) -> tuple[float, torch.Tensor, list[dict[str, float]]]:
    """Choose tau on (logits, y): the best metric of ``argmax(logits - tau log prior)``.

    Args:
        logits: (N, K) validation logits.
        y: (N,) validation labels.
        prior: (K,) class prior pi (e.g. :func:`class_prior` of the training labels).
        taus: the grid.
        metric: a name in ``archopt.training.metrics.METRICS`` (higher is better).

    Returns: (tau, offsets (K,) float64 = -tau log pi, rows ``{"tau", "val_metric"}`` per tau).
        Ties go to the smallest tau.
    Source: Menon et al., ICLR 2021, eq. (9).
    """
    k = logits.shape[1]
    t = torch.tensor(list(taus), dtype=torch.float64)
    log_pi = prior.double().log()
    score = _scorer(logits, y, metric, k)(-t[:, None] * log_pi[None, :])
    rows = [{"tau": float(a), "val_metric": float(s)} for a, s in zip(t, score, strict=True)]
    top = float(score.max())
    tau = min(float(a) for a, s in zip(t, score, strict=True) if float(s) == top)
    return tau, -tau * log_pi, rows


def _rng_kwargs(seed: int) -> dict[str, Any]:
    params = inspect.signature(_de()).parameters
    return {"rng": seed} if "rng" in params else {"seed": seed}


def _de() -> Callable[..., Any]:
    from scipy.optimize import differential_evolution

    return differential_evolution


def default_bound(logits: torch.Tensor) -> float:
    """The default search box of bias tuning: a quarter of the median margin between the two
    largest logits of (N, K) ``logits`` (at least 1e-3). Offsets of that size flip the
    decisions near the boundary and leave the confident ones; measured on the Fashion-MNIST
    CNN of benchmarks/refine_compare.py (median margin 6.2), +-1 reached a higher validation
    macro-F1 in 6,000 evaluations than +-2 or +-4 (ours, not from a paper)."""
    top2 = logits.double().topk(min(2, logits.shape[1]), dim=1).values
    return max(0.25 * float((top2[:, 0] - top2[:, -1]).median()), 1e-3)


def tune_biases(logits: torch.Tensor, y: torch.Tensor, *, metric: str = "f1",
                optimizer: str = "differential-evolution", evaluations: int = 5000,
                bound: float | None = None, seed: int = 0
                ) -> tuple[torch.Tensor, dict[str, Any], list[dict[str, Any]]]:
    """Per-class offsets b (K,) that maximise the metric of ``argmax(logits + b)`` on (logits, y).

    Args:
        logits: (N, K) validation logits.
        y: (N,) labels.
        metric: metric name (higher is better).
        optimizer: ``"differential-evolution"`` (scipy) or ``"cma"`` (the ``cma`` package).
        evaluations: the budget of candidate offsets scored.
        bound: search box [-bound, bound]^K (logit units); None: :func:`default_bound`.
        seed: the optimiser's seed.

    Returns: (b (K,) float64 -- zeros unless the search beat the identity --, info: ``bound``,
        ``evaluations``, ``val_metric_identity``, ``val_metric_found``, ``accepted``,
        ``optimizer``; rows: one per optimiser iteration ``{"iteration", "evaluations",
        "best_val_metric"}``).
    Raises: ArchoptError for an unknown optimiser, or ``cma`` not installed.
    """
    k = logits.shape[1]
    score = _scorer(logits, y, metric, k)
    b_max = float(bound) if bound is not None else default_bound(logits)
    rows: list[dict[str, Any]] = []
    state = {"n": 0, "best": -np.inf}

    def objective(x: np.ndarray) -> np.ndarray:  # x: (K, S) (scipy's vectorised layout)
        x = np.atleast_2d(np.asarray(x, dtype=np.float64).T if np.ndim(x) > 1 else x)
        s = score(torch.from_numpy(x)).numpy()
        state["n"] += len(s)
        state["best"] = max(state["best"], float(s.max()))
        rows.append({"iteration": len(rows), "evaluations": state["n"],
                     "best_val_metric": state["best"]})
        return 1.0 - s

    identity = float(score(torch.zeros(1, k, dtype=torch.float64))[0])
    if optimizer == "differential-evolution":
        popsize = 15  # scipy's default: 15 x K members
        maxiter = max(1, evaluations // (popsize * k) - 1)
        res = _de()(objective, [(-b_max, b_max)] * k, maxiter=maxiter, popsize=popsize,
                    polish=False, x0=np.zeros(k), vectorized=True, updating="deferred",
                    tol=0.0, **_rng_kwargs(seed))
        found = np.asarray(res.x, dtype=np.float64)
    elif optimizer == "cma":
        try:
            import cma
        except ImportError:
            raise ArchoptError("bias tuning with CMA-ES needs the optional extra: "
                               "pip install 'archopt[cma]'") from None
        es = cma.CMAEvolutionStrategy(np.zeros(k), b_max / 4, {
            "bounds": [-b_max, b_max], "seed": seed + 1,  # cma reads seed 0 as "random"
            "maxfevals": evaluations, "verbose": -9})
        while not es.stop():
            xs = es.ask()
            es.tell(xs, objective(np.asarray(xs).T).tolist())
        found = np.asarray(es.result.xbest, dtype=np.float64)
    else:
        raise ArchoptError(f"unknown bias optimizer {optimizer!r} (differential-evolution, cma)")
    b = torch.from_numpy(found)
    val_found = float(score(b[None])[0])
    accepted = val_found > identity
    info = {"optimizer": optimizer, "bound": b_max, "evaluations": state["n"],
            "val_metric_identity": identity, "val_metric_found": val_found,
            "accepted": accepted}
    return (b if accepted else torch.zeros(k, dtype=torch.float64)), info, rows


def posthoc(model: nn.Module | str | os.PathLike[str] | Source, data: ImageDataset,
            config: RefineConfig | dict[str, Any] | None = None,
            out: str | os.PathLike[str] | None = None, *,
            validation: tuple[torch.Tensor, torch.Tensor] | None = None, resume: bool = False,
            progress: bool = True, module: nn.Module | None = None) -> RefineResult:
    """``method="logit-adjust"`` or ``"bias"`` of :func:`archopt.refine.refine`.

    Arguments as :func:`archopt.refine.refine` (``resume`` reruns a finished folder: the
    result is deterministic; ``progress`` is accepted for the same signature -- the search
    takes about a second).

    Returns: a :class:`RefineResult` (``blocking`` / ``best_blocks`` None); ``summary`` has
        the common keys (:data:`archopt.refine.scores.COMMON_KEYS`) and ``adjustment``:
        ``offsets`` (K,), the bias they were folded into (``folded_into``), and ``tau`` /
        ``prior`` (logit adjustment) or the optimiser's ``info`` (bias tuning).
    Raises: ArchoptError (a model / dataset mismatch, a model without a foldable output bias,
        a folder holding a run without ``resume``); InvalidRefineConfig; CheckpointError.
    """
    del progress
    wall0 = time.perf_counter()
    cfg = config if isinstance(config, RefineConfig) else RefineConfig.from_any(config)
    if cfg.method not in ("logit-adjust", "bias"):
        raise ArchoptError(f"posthoc runs logit-adjust or bias, not {cfg.method!r}")
    src = load_source(model, module=module)
    device = resolve_device(cfg.device)
    rd = ResultDir(out) if out is not None else None
    if rd is not None:
        refuse_existing(rd, resume)
    seed_everything(cfg.seed)
    work, mean, std, train, val = working_copy(src, data, validation, cfg, device)

    tic, cpu_tic = time.perf_counter(), time.process_time()
    name = output_bias(work, data.num_classes, normalize(val.x[:16].to(device), mean, std))
    val_logits = logits_of(work, val.x, mean=mean, std=std, batch_size=cfg.eval_batch_size,
                           device=device)
    adjustment: dict[str, Any]
    if cfg.method == "logit-adjust":
        prior = class_prior(train.train_y, data.num_classes)
        tau, offsets, history = logit_adjustment(val_logits, val.y, prior, cfg.taus,
                                                 metric=cfg.metric)
        adjustment = {"tau": tau, "taus": list(cfg.taus), "prior": prior.tolist(),
                      "prior_from": "training split"}
        evaluations = len(cfg.taus)
    else:
        offsets, info, history = tune_biases(val_logits, val.y, metric=cfg.metric,
                                             optimizer=cfg.bias_optimizer,
                                             evaluations=cfg.bias_evaluations,
                                             bound=cfg.bias_bound, seed=cfg.seed)
        adjustment = dict(info)
        evaluations = info["evaluations"]
    search, search_cpu = time.perf_counter() - tic, time.process_time() - cpu_tic

    refined = copy.deepcopy(work)
    fold_bias(refined, name, offsets)
    adjustment.update(offsets=offsets.tolist(), folded_into=name)
    labels = {"val": val.y, "test": data.test_y}
    xs = {"val": val.x, "test": data.test_x}

    def of(m: nn.Module) -> dict[str, dict[str, float]]:
        lg = {s: logits_of(m, x, mean=mean, std=std, batch_size=cfg.eval_batch_size,
                           device=device) for s, x in xs.items()}
        return split_scores(lg, labels, data.num_classes, cfg.metric)

    summary = {"method": cfg.method, "dataset": data.name, "metric": cfg.metric,
               **before_after(of(work), of(refined), cfg.metric),
               "validation": val.record(data.num_classes, len(train.train_y)),
               "adjustment": adjustment, "weights_changed": f"only {name} (the offsets)",
               "function_evaluations": evaluations, "search_seconds": round(search, 3),
               "search_cpu_seconds": round(search_cpu, 3),
               "seconds": round(time.perf_counter() - wall0, 3), "device": str(device)}
    if rd is not None:
        rd.write_config({"command": "refine", "source": str(src.path) if src.path else None,
                         "dataset": data.name, "refine": cfg.to_dict()})
        if src.spec is not None:
            rd.write_arch(src.spec)
        rd.write_lines(ResultDir.METRICS, history)
        write_checkpoint(rd, refined, src, data, mean, std, cfg, summary,
                         offsets=adjustment["offsets"], folded_into=name)
        _plot(history, rd.file(PLOT), cfg, summary)
        rd.write_summary(summary)
    return RefineResult(refined, summary, history, None, None, src.spec, cfg,
                        rd.path if rd else None)


def _plot(history: list[dict[str, Any]], path: Any, cfg: RefineConfig,
          summary: dict[str, Any]) -> None:
    """Validation metric per tau (logit adjustment) or per evaluation (bias tuning)."""
    from archopt.runs.plotting import new_figure, save_png

    fig = new_figure((6.0, 4.0))
    ax = fig.subplots()
    if cfg.method == "logit-adjust":
        ax.plot([r["tau"] for r in history], [r["val_metric"] for r in history], "o-")
        ax.axvline(summary["adjustment"]["tau"], color="C1", ls="--", label="chosen tau")
        ax.set_xlabel("tau")
    else:
        ax.plot([r["evaluations"] for r in history], [r["best_val_metric"] for r in history])
        ax.set_xlabel("evaluations")
    ax.axhline(summary["val_metric_before"], color="gray", ls=":", label="before")
    ax.set_ylabel(f"validation {cfg.metric}")
    ax.set_title(f"{cfg.method} on {summary['dataset']}: test {cfg.metric} "
                 f"{summary['metric_before']:.4f} -> {summary['metric_after']:.4f}", fontsize=9)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    save_png(fig, path)
