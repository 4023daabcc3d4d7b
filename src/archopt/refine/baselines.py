"""Baselines HBDE is reported beside (../specs/hbde.md section 4), at equal wall time.

- ``adam``: Adam continued from the same pre-trained weights (train mode, mini-batches of the
  training set, cross-entropy) for the same number of seconds HBDE searched.
- ``random-blocks``: DE over randomly formed blocks of the same count D' (the paper's "BDE"),
  with every other HBDE setting unchanged, for the same search seconds.
- the blocked starting point itself (no search) is in every HBDE summary
  (``metric_after_blocking``).

"Equal wall time" compares the optimisers' own work: HBDE's ``search_seconds`` (population
evaluation + DE), Adam's training steps (batch fetch + forward + backward + update), DE's
``search_seconds`` for the random blocks; monitoring evaluations are not counted on either side.
Each stops after the step / generation in which its budget runs out. The process CPU seconds of
the same work are recorded beside (``search_cpu_seconds``): on a shared machine the wall clock
also counts time spent waiting for a core, so an HBDE run with ``clock="cpu"`` gives its
baselines its CPU seconds, counted on the CPU clock ("equal CPU time").

Source: arXiv 2408.07194 section 4 (Adam and BDE baselines).
"""

from __future__ import annotations

import copy
import os
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

from archopt.data.dataset import ImageDataset
from archopt.data.loader import BatchLoader
from archopt.errors import ArchoptError, UnknownName
from archopt.refine.config import RefineConfig
from archopt.refine.loop import hbde
from archopt.refine.model_io import RefineResult, Source, load_source
from archopt.refine.validation import resolve_validation
from archopt.runs import ResultDir
from archopt.runtime.devices import resolve_device, seed_everything
from archopt.runtime.progress import Progress

__all__ = ["BASELINES", "adam_baseline", "random_blocks_baseline", "run_baselines"]

BASELINES = ("adam", "random-blocks")


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def adam_baseline(model: nn.Module | str | os.PathLike[str] | Source, data: ImageDataset,
                  seconds: float, *, lr: float = 1e-4, batch_size: int = 128,
                  metric: str = "f1", seed: int = 0, device: str = "auto",
                  eval_batch_size: int = 1000, out: str | os.PathLike[str] | None = None,
                  progress: bool = True, log_every: int = 50,
                  clock: str = "wall") -> dict[str, Any]:
    """Continue training with Adam for ``seconds`` of training steps; report the test metric.

    Args:
        model: the pre-trained model (module, checkpoint or result folder).
        data: the dataset.
        seconds: the training-time budget (HBDE's ``search_seconds``).
        lr: Adam's learning rate (constant; no weight decay). 1e-4 by default: a fine-tuning
            rate, a tenth of the usual pre-training rate.
        batch_size: examples per step.
        metric: the reported metric (``archopt.training.metrics`` name).
        seed: data order.
        device: where to train.
        eval_batch_size: batch size of the final evaluation.
        out: folder for ``metrics.jsonl`` (loss every ``log_every`` steps), ``checkpoint.pt``
            and ``summary.json``; None writes nothing.
        clock: what ``seconds`` counts: ``"wall"`` or ``"cpu"`` (process CPU seconds).

    Returns: ``{"method": "adam", "metric_after", "train_metric"?, "steps", "epochs",
    "search_seconds", "lr", "batch_size"}``.
    Raises: ArchoptError for a non-positive budget or learning rate.
    """
    from archopt.training.checkpoint import dataset_meta, save_checkpoint
    from archopt.training.config import TrainConfig
    from archopt.training.evaluation import predict
    from archopt.training.metrics import get_metric
    from archopt.training.trainer import TrainStep, make_optimizer

    if not seconds > 0:
        raise ArchoptError(f"the Adam baseline needs a positive time budget, got {seconds}")
    if clock not in ("wall", "cpu"):
        raise ArchoptError(f"clock must be 'wall' or 'cpu', got {clock!r}")
    score = get_metric(metric)
    src = load_source(model)
    dev = resolve_device(device)
    seed_everything(seed)
    net = copy.deepcopy(src.module).to(dev).train()
    mean = tuple(src.meta.get("mean") or data.mean)
    std = tuple(src.meta.get("std") or data.std)
    cfg = TrainConfig(optimizer="adam", lr=lr, batch_size=batch_size, weight_decay=0.0,
                      schedule="constant", seed=seed)
    step = TrainStep(net, make_optimizer(net.parameters(), cfg), nn.CrossEntropyLoss())
    loader = BatchLoader(data.train_x, data.train_y, batch_size, mean=mean, std=std,
                         shuffle=True, seed=seed, drop_last=True, device=dev)
    rd = ResultDir(out) if out is not None else None
    if rd is not None:
        rd.write_lines(ResultDir.METRICS, [])  # a rerun after an interruption starts over
    spent, spent_cpu, steps, epoch = 0.0, 0.0, 0, 0

    def used() -> float:
        return spent_cpu if clock == "cpu" else spent

    with Progress(None, "adam steps", enabled=progress) as bar:
        while used() < seconds:
            loader.set_epoch(epoch)
            last, last_cpu = time.perf_counter(), time.process_time()
            for xb, yb in loader:
                loss, _ = step(xb, yb)
                _sync(dev)
                spent += time.perf_counter() - last
                spent_cpu += time.process_time() - last_cpu
                steps += 1
                if steps % log_every == 0:
                    row = {"step": steps, "epoch": epoch, "loss": float(loss),
                           "search_seconds": round(spent, 3)}
                    if rd is not None:
                        rd.append_metrics(row)
                    bar.advance(log_every, loss=float(loss))
                if used() >= seconds:
                    break
                last, last_cpu = time.perf_counter(), time.process_time()
            epoch += 1
        bar.advance(steps % log_every, loss=float(loss))
    net.eval()
    preds = predict(net, data.test_x, mean=mean, std=std, batch_size=eval_batch_size, device=dev)
    after = float(score(preds, data.test_y.to(preds.device), data.num_classes))
    summary = {"method": "adam", "metric": metric, "metric_after": after, "steps": steps,
               "epochs": round(steps * batch_size / len(data.train_y), 3),
               "search_seconds": round(spent, 3), "search_cpu_seconds": round(spent_cpu, 3),
               "clock": clock, "lr": lr, "batch_size": batch_size,
               "function_evaluations": None}
    if rd is not None:
        save_checkpoint(rd.file("checkpoint.pt"), net, spec=src.spec,
                        meta={**dataset_meta(data), "mean": list(mean), "std": list(std)},
                        config={"baseline": "adam", "lr": lr, "batch_size": batch_size,
                                "seconds": seconds, "seed": seed})
        rd.write_summary(summary)
    return summary


def random_blocks_baseline(model: nn.Module | str | os.PathLike[str] | Source,
                           data: ImageDataset, config: RefineConfig, seconds: float, *,
                           out: str | os.PathLike[str] | None = None,
                           validation: tuple[torch.Tensor, torch.Tensor] | None = None,
                           progress: bool = True) -> dict[str, Any]:
    """DE over random blocks (as many as histogram blocking gives) for ``seconds`` of search.

    Every other setting is ``config``'s; generations are bounded by the time budget only. A run
    interrupted in ``out`` is resumed. Returns the run's summary (see
    :func:`archopt.refine.refine`).
    """
    cfg = RefineConfig(**{**config.to_dict(), "blocks": "random", "generations": None,
                          "max_seconds": float(seconds)})
    resume = out is not None and (Path(out) / "state.pt").is_file()
    res = hbde(model, data, cfg, out=out, validation=validation, resume=resume,
               progress=progress)
    return res.summary


def run_baselines(result: RefineResult, model: nn.Module | str | os.PathLike[str] | Source,
                  data: ImageDataset, names: list[str] | tuple[str, ...], *,
                  adam_lr: float = 1e-4, adam_batch_size: int = 128,
                  validation: tuple[torch.Tensor, torch.Tensor] | None = None,
                  progress: bool = True) -> dict[str, dict[str, Any]]:
    """Run the named baselines with HBDE's search seconds; add them to the run's summary.

    The seconds are counted on the HBDE run's clock (``config.clock``): its ``search_seconds``
    on the wall clock, its ``search_cpu_seconds`` on the CPU clock.

    Results go to ``<out>/baselines/<name>/`` when the HBDE run has a result folder (a baseline
    whose folder already holds a ``summary.json`` is not run again), and ``summary.json`` is
    rewritten with a ``baselines`` entry (name -> metric_after, FE,
    seconds).

    Adam trains on the training split less the run's validation split (``validation`` as
    given to the HBDE run, else the same seeded hold-out), as HBDE did.

    Raises: UnknownName for a baseline not in :data:`BASELINES`; ArchoptError for a run that
        is not HBDE.
    """
    for n in names:
        if n not in BASELINES:
            raise UnknownName(f"unknown baseline {n!r} (known: {', '.join(BASELINES)})")
    cfg = result.config
    if cfg.method != "hbde":
        raise ArchoptError(f"the baselines are run beside HBDE, not beside {cfg.method}")
    train, _ = resolve_validation(data, validation, fraction=cfg.val_fraction,
                                  seed=cfg.val_seed)
    seconds = float(result.summary["search_cpu_seconds" if cfg.clock == "cpu"
                                   else "search_seconds"])
    base = Path(result.out) / "baselines" if result.out is not None else None
    found: dict[str, dict[str, Any]] = {}
    for n in names:
        sub = base / n if base is not None else None
        if sub is not None and (sub / ResultDir.SUMMARY).is_file():  # done before: keep it
            s = ResultDir(sub).read_summary()
        elif n == "adam":
            s = adam_baseline(model, train, seconds, lr=adam_lr, batch_size=adam_batch_size,
                              metric=cfg.metric, seed=cfg.seed, device=cfg.device,
                              eval_batch_size=cfg.eval_batch_size, out=sub, progress=progress,
                              clock=cfg.clock)
        else:
            s = random_blocks_baseline(model, data, cfg, seconds, out=sub, validation=validation,
                                       progress=progress)
        found[n] = {k: s.get(k) for k in ("metric_after", "metric_after_blocking",
                                          "function_evaluations", "search_seconds",
                                          "search_cpu_seconds", "steps", "generations", "lr")
                    if s.get(k) is not None}
    result.summary["baselines"] = {**result.summary.get("baselines", {}), **found}
    if result.out is not None:
        ResultDir(result.out).write_summary(result.summary)
    return found
