"""Scoring a population of parameter vectors: one interface, a sequential and a batched path.

A generation of HBDE costs NP forward passes of the same network with NP different parameter
vectors on the same super-batch. :class:`PopulationEvaluator` computes, for candidates (P, D')
(block vectors) or (P, D) (full vectors), the objectives ``1 - metric`` (P,), with the metric
(macro-F1 by default) computed on the device from confusion matrices
(:mod:`archopt.training.metrics`), never by moving logits to scikit-learn.

Paths:

- ``"sequential"``: for each candidate, gather its full vector and run the module
  (``torch.func.functional_call`` with that vector's tensors).
- ``"batched"``: chunks of ``c`` candidates at once: their vectors are stacked and the module is
  vectorised over them with ``torch.func.vmap(functional_call)`` (convolutions become grouped
  convolutions, linear layers batched matmuls), one kernel launch per layer per chunk.
- ``"auto"``: :meth:`PopulationEvaluator.calibrate` measures both on the actual model, batch
  and device (sequential vs batched with growing chunks) and keeps the fastest; the measurement
  is stored in ``evaluator.calibration``.

The model is a private copy in eval mode (BatchNorm uses its running statistics, which are
buffers, not blocked parameters); buffers are shared by all candidates.

Source: ../specs/hbde.md section 3; arXiv 2408.07194 section 3.2 (objective 1 - F1).
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from typing import Any, Literal

import torch
from torch import nn
from torch.func import functional_call, vmap

from archopt.data.dataset import normalize
from archopt.errors import ArchoptError
from archopt.refine.blocking import Blocking
from archopt.refine.params import ParameterLayout
from archopt.training.metrics import get_metric

__all__ = ["PATHS", "PopulationEvaluator"]

PATHS = ("auto", "sequential", "batched")
Path = Literal["auto", "sequential", "batched"]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _is_oom(err: BaseException) -> bool:
    return isinstance(err, torch.cuda.OutOfMemoryError) or "out of memory" in str(err).lower()


class PopulationEvaluator:
    """Objectives ``1 - metric`` of many parameter vectors of one module on one batch.

    Args:
        module: the network (copied; the original is not touched).
        num_classes: K, for the confusion matrix.
        blocking: when given, candidates are block vectors (P, D') and are unblocked with
            ``blocking.unblock`` on the device; otherwise full vectors (P, D).
        metric: a name in :data:`archopt.training.metrics.METRICS` ("f1" = macro-F1,
            "accuracy", "balanced_accuracy") -- higher is better.
        device: where the model runs.
        path: ``"auto"``, ``"sequential"`` or ``"batched"``.
        chunk: candidates per batched call (None: chosen by :meth:`calibrate`, or 8 when
            ``path="batched"`` without calibration).

    Raises: UnknownName for an unknown metric; ArchoptError for an unknown path.
    """

    def __init__(self, module: nn.Module, num_classes: int, *, blocking: Blocking | None = None,
                 metric: str = "f1", device: str | torch.device = "cpu", path: Path = "auto",
                 chunk: int | None = None) -> None:
        if path not in PATHS:
            raise ArchoptError(f"evaluation path must be one of {', '.join(PATHS)}, got {path!r}")
        if chunk is not None and chunk < 1:
            raise ArchoptError(f"chunk must be >= 1, got {chunk}")
        self.device = torch.device(device)
        self.module = copy.deepcopy(module).to(self.device).eval()
        self.layout = ParameterLayout.of(self.module)
        self.module.requires_grad_(False)
        # Everything functional_call needs besides the candidate's trainable tensors.
        trainable = set(self.layout.names)
        self.constants = {n: t for n, t in self.module.named_parameters() if n not in trainable}
        self.constants.update(dict(self.module.named_buffers()))
        self.num_classes = int(num_classes)
        self.metric_name = metric
        self.metric: Callable[..., torch.Tensor] = get_metric(metric)
        self.blocking = blocking.to(self.device) if blocking is not None else None
        if self.blocking is not None and self.blocking.dimensions != self.layout.dimensions:
            raise ArchoptError(f"the blocking covers {self.blocking.dimensions} parameters, the "
                               f"model has {self.layout.dimensions}")
        self.path: str = path
        self.chunk = chunk
        self.calibration: dict[str, Any] | None = None

    # -- building blocks --------------------------------------------------------------------
    def expand(self, candidates: torch.Tensor, *, full: bool = False) -> torch.Tensor:
        """Candidates (P, D') (with a blocking, unless ``full``) or (P, D) -> (P, D) on the
        device."""
        c = candidates.to(self.device, self.layout.dtype, non_blocking=True)
        if self.blocking is not None and not full:
            return self.blocking.unblock(c)
        if c.shape[-1] != self.layout.dimensions:
            raise ArchoptError(f"candidates have {c.shape[-1]} entries, the model has "
                               f"{self.layout.dimensions} parameters")
        return c

    def _forward(self, params: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        return functional_call(self.module, {**params, **self.constants}, (x,))

    @torch.no_grad()
    def logits_sequential(self, candidates: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """(P, D'|D) candidates, x (B, ...) -> logits (P, B, K), one forward per candidate."""
        x = x.to(self.device)
        out = []
        for i in range(candidates.shape[0]):
            theta = self.expand(candidates[i:i + 1])[0]
            out.append(self._forward(self.layout.split(theta), x))
        return torch.stack(out)

    @torch.no_grad()
    def logits_batched(self, candidates: torch.Tensor, x: torch.Tensor,
                       chunk: int | None = None) -> torch.Tensor:
        """(P, D'|D) candidates, x (B, ...) -> logits (P, B, K), ``chunk`` candidates per vmap."""
        x = x.to(self.device)
        c = chunk or self.chunk or 8
        fn = vmap(lambda p: self._forward(p, x))
        out = []
        for s in range(0, candidates.shape[0], c):
            thetas = self.expand(candidates[s:s + c])
            out.append(fn(self.layout.split(thetas)))
        return torch.cat(out)

    def logits(self, candidates: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Logits (P, B, K) by the chosen path (``"auto"`` calibrates on first use)."""
        if candidates.dim() != 2:
            raise ArchoptError(f"candidates must be (P, D), got shape {tuple(candidates.shape)}")
        if self.path == "auto":
            self.calibrate(candidates, x)
        if self.path == "sequential":
            return self.logits_sequential(candidates, x)
        return self.logits_batched(candidates, x)

    def scores(self, candidates: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Metric of each candidate on (x, y): (P,) float64 on the device (higher is better)."""
        preds = self.logits(candidates, x).argmax(dim=-1)
        return self.metric(preds, y.to(self.device), self.num_classes)

    def objectives(self, candidates: torch.Tensor, x: torch.Tensor,
                   y: torch.Tensor) -> torch.Tensor:
        """``1 - metric`` of each candidate: (P,) float64 on CPU (DE minimises it)."""
        return (1.0 - self.scores(candidates, x, y)).cpu()

    @torch.no_grad()
    def metric_on(self, candidate: torch.Tensor, x: torch.Tensor, y: torch.Tensor, *,
                  mean: tuple[float, ...], std: tuple[float, ...],
                  batch_size: int = 1000, full: bool = False) -> float:
        """The metric of ONE candidate (D',) -- or (D,) with ``full=True`` or no blocking -- on
        a whole split of uint8 images.

        x: (N, C, H, W) uint8 (kept where it is; moved to the device batch by batch), y: (N,).
        Predictions of all batches are gathered and scored once (macro-F1 is not an average of
        per-batch scores).
        """
        params = self.layout.split(self.expand(candidate.reshape(1, -1), full=full)[0])
        preds = []
        for s in range(0, x.shape[0], batch_size):
            xb = normalize(x[s:s + batch_size].to(self.device), mean, std)
            preds.append(self._forward(params, xb).argmax(dim=-1))
        if not preds:
            raise ArchoptError("cannot score an empty split")
        return float(self.metric(torch.cat(preds), y.to(self.device), self.num_classes))

    # -- the measured rule --------------------------------------------------------------------
    def _rate(self, run: Callable[[], Any], n: int, repeats: int) -> float:
        run()  # warm-up (allocations, kernels, autotuning)
        _sync(self.device)
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            run()
            _sync(self.device)
            times.append(time.perf_counter() - t0)
        return n / sorted(times)[len(times) // 2]

    def calibrate(self, candidates: torch.Tensor, x: torch.Tensor, *,
                  max_chunk: int | None = None, repeats: int = 2) -> dict[str, Any]:
        """Measure candidate-evaluations per second of each path on this batch; keep the fastest.

        Sequential is timed on ``min(P, 4)`` candidates; batched with chunks 2, 4, 8, ... and
        finally ``max_chunk`` itself (default: P on CUDA, 8 on CPU), stopping when the rate
        drops below 0.95 of the best so far or memory runs out. Each figure is the median of
        ``repeats`` timed calls after a warm-up. The result (rates and the choice) is stored in
        ``self.calibration`` and decides ``self.path`` / ``self.chunk``.
        """
        p = candidates.shape[0]
        limit = min(max_chunk or (p if self.device.type == "cuda" else 8), p)
        n_seq = min(p, 4)
        rates: dict[str, float] = {
            "sequential": self._rate(lambda: self.logits_sequential(candidates[:n_seq], x),
                                     n_seq, repeats)}
        best_batched, best_chunk = 0.0, None
        sizes = [c for c in (2 ** i for i in range(1, limit.bit_length())) if c < limit]
        for c in [*sizes, limit] if limit >= 2 else []:  # ... then the cap (or P) in one call
            try:
                r = self._rate(lambda c=c: self.logits_batched(candidates[:c], x, c), c, repeats)
            except (RuntimeError, MemoryError) as err:
                if not _is_oom(err) and not isinstance(err, MemoryError):
                    raise
                if self.device.type == "cuda":
                    torch.cuda.empty_cache()
                break
            rates[f"batched:{c}"] = r
            if r > best_batched:
                best_batched, best_chunk = r, c
            elif r < 0.95 * best_batched:
                break
        if best_chunk is not None and best_batched > rates["sequential"]:
            self.path, self.chunk = "batched", best_chunk
        else:
            self.path, self.chunk = "sequential", None
        self.calibration = {"device": str(self.device), "batch": int(x.shape[0]),
                            "rates": {k: round(v, 3) for k, v in rates.items()},
                            "path": self.path, "chunk": self.chunk}
        return self.calibration

