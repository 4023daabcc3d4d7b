"""Search in the latent space: weights and architecture of an MLP found at once for a dataset.

SWAT-NN spec section 3 (arXiv 2410.08339, section 3.3). For each decoder depth ``L`` (hidden
layers), with the autoencoder frozen:

- start from a latent point ``z`` and threshold ``t = 0``;
- forward: decode ``z`` to the MLP array (weights ``w``), soft-prune
  ``w~ = w * sigmoid(100 (|w| - t))``, predict the training targets with ``w~`` (full batch);
- loss: ``MSE + c * sum_ij (0.5 * sigmoid(10 (|w_ij| - t)) + 0.1 |w_ij|)`` with
  ``c = MSE_initial / 7000`` (``MSE_initial``: the MSE at the starting point of that depth) -- a
  smooth count of the weights above the threshold plus an L1 term;
- Adam on ``z`` (lr 0.1) and ``t`` (lr 0.01), ``t`` clamped to ``[0, 3]`` after every step.

The result of a depth is the decoded MLP with ``|w| < t`` set to zero and its dead units removed
(:func:`archopt.latent.compact.compact_mlp`); the depth with the lowest validation MSE of that
compact MLP wins. Test MSE, active neurons and non-zero weights are reported for every depth.

Departures from the paper (:class:`SearchConfig`; each can be switched back), made because a
CPU-trained autoencoder's decoders cover only the neighbourhood of the encoded family:

- **start** (``start="encoded"``): the paper's ``z ~ U(0, 1)^128`` lies far outside the cloud of
  encoded MLPs (the decoders never saw it); instead ``pool`` random family MLPs of depth ``L``
  are encoded and the ``restarts`` whose decodings fit the training data best are searched
  together (each with its own ``t`` and ``c``; Adam is elementwise, so each follows the path it
  would follow alone); the one with the lowest validation MSE is kept;
- **threshold cap** (``t_quantile=0.5``): after every step ``t`` is also capped at the median
  ``|w|`` of the decoded network's existing weights, so at most half of them are below ``t``:
  with the paper's rule alone ``t`` climbs to 1.2-2.0 and prunes depth-3/4 networks to a
  constant (measured: ``benchmarks/latent_search.py --variants spec,cap,slow_t,no_t``);
- **flush-to-zero** (``flush_denormal``): on CPU, denormal floats are flushed to zero during the
  search (``sigmoid(100 (|w| - t))`` of pruned weights underflows into them, 10-100x slower).

Assumptions (named in the report):

- the penalty sums over the weight entries that exist in the decoded MLP (both end units present);
  padding entries are always zero and are left out, so they do not push ``t`` up;
- each depth keeps its final ``(z, t)`` (no early stopping); "validation loss" for choosing the
  depth and the restart is the validation MSE of the thresholded, compact MLP (the model the user
  gets);
- inputs should lie in the autoencoder's domain ``[-1, 1]^n_in`` (the CLI min-max scales a file's
  features on the training split); the target ``y`` is used as is (the family has no biases).

Result folder (when ``out`` is given): ``config.json``, ``metrics.jsonl`` (one row per depth every
``log_every`` steps), ``search_depth{L}.pt`` (the finished ``(z, t)`` of a depth; a rerun resumes
from them), ``arch.json`` (compact spec), ``model.pt`` (spec + ``state_dict``), ``summary.json``
and ``search.png``.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
from pydantic import Field

from archopt.data.tabular import TabularSplits
from archopt.errors import DataError
from archopt.latent.autoencoder import MultiScaleAutoencoder
from archopt.latent.compact import CompactMLP, compact_mlp
from archopt.latent.encoding import array_forward, decode, structure_mask
from archopt.latent.generator import random_mlps
from archopt.runs import ResultDir, atomic_torch_save, torch_load
from archopt.runtime.devices import flush_denormal as _flush_denormal
from archopt.runtime.devices import torch_generator
from archopt.runtime.progress import Progress
from archopt.runtime.settings import Settings

__all__ = ["DepthResult", "SearchConfig", "SearchResult", "latent_search", "search_depth",
           "soft_prune"]

_FORMAT = "archopt.latent.search-depth/1"


class SearchConfig(Settings):
    """Latent search settings: the paper's loss and learning rates, plus the starts and threshold
    rule that make it work with a CPU-trained autoencoder (see the module docstring)."""

    what = "search config"

    steps: int = Field(1000, ge=0, description="Adam steps per depth")
    depths: tuple[int, ...] | None = Field(None, description="decoder depths to try (all)")
    start: Literal["encoded", "uniform"] = Field(
        "encoded", description="encoded: encodings of family MLPs of the depth (the best "
                               "`restarts` of `pool` by training MSE); uniform: U(0,1)^d (paper)")
    restarts: int = Field(4, ge=1, description="latent points searched together per depth; the "
                                               "best by validation MSE is kept")
    pool: int = Field(32, ge=1, description="encoded family MLPs the starts are chosen from")
    lr_z: float = Field(0.1, gt=0)
    lr_t: float = Field(0.01, ge=0)
    t_max: float = Field(3.0, ge=0)
    t_quantile: float | None = Field(
        0.5, gt=0, le=1, description="cap t at this quantile of the decoded network's |w| "
                                     "(None: only t_max, the paper)")
    prune_sharpness: float = Field(100.0, gt=0, description="k in sigmoid(k(|w| - t))")
    count_sharpness: float = Field(10.0, gt=0)
    count_weight: float = Field(0.5, ge=0)
    l1_weight: float = Field(0.1, ge=0)
    sparsity_divisor: float = Field(7000.0, gt=0, description="c = MSE_initial / divisor; "
                                    "inf-like values switch the penalty off")
    flush_denormal: bool = Field(True, description="flush denormal floats to zero on CPU "
                                 "(sigmoid(100 (|w| - t)) underflows into them)")
    seed: int = 0
    log_every: int = Field(50, ge=1)


def soft_prune(w: torch.Tensor, t: torch.Tensor | float, sharpness: float = 100.0
               ) -> torch.Tensor:
    """``w * sigmoid(sharpness * (|w| - t))`` (the search's differentiable pruning)."""
    return w * torch.sigmoid(sharpness * (w.abs() - t))


@dataclass
class DepthResult:
    """What the search found with one decoder depth."""

    depth: int
    z: torch.Tensor
    threshold: float
    compact: CompactMLP
    train_mse: float
    val_mse: float
    test_mse: float
    initial_mse: float
    c: float
    seconds: float
    restart: int = 0
    restart_val_mse: list[float] = field(default_factory=list)

    def row(self) -> dict[str, Any]:
        return {"depth": self.depth, "threshold": self.threshold, "train_mse": self.train_mse,
                "val_mse": self.val_mse, "test_mse": self.test_mse,
                "initial_mse": self.initial_mse, "c": self.c, "seconds": self.seconds,
                "restart": self.restart, "restart_val_mse": self.restart_val_mse,
                "widths": list(self.compact.spec.widths), **self.compact.counts()}


@dataclass
class SearchResult:
    """The best depth's compact MLP, plus every depth's figures."""

    best: DepthResult
    per_depth: list[DepthResult] = field(default_factory=list)
    mean_predictor_test_mse: float | None = None

    @property
    def compact(self) -> CompactMLP:
        return self.best.compact

    def summary(self) -> dict[str, Any]:
        b = self.best
        return {"test_mse": b.test_mse, "mean_predictor_test_mse": self.mean_predictor_test_mse,
                "val_mse": b.val_mse, "train_mse": b.train_mse,
                **b.compact.counts(), "widths": list(b.compact.spec.widths),
                "threshold": b.threshold, "depth": b.depth,
                "per_depth": [r.row() for r in self.per_depth]}


def _mse(pred: torch.Tensor, y: torch.Tensor) -> float:
    return float(((pred - y) ** 2).mean())


def _model_fingerprint(model: MultiScaleAutoencoder) -> str:
    h = hashlib.sha256()
    for k, v in model.state_dict().items():
        h.update(k.encode())
        h.update(v.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def _finish_depth(model: MultiScaleAutoencoder, depth: int, z: torch.Tensor, t: float,
                  data: dict[str, torch.Tensor], initial_mse: float, c: float,
                  seconds: float) -> DepthResult:
    cfg = model.config
    with torch.no_grad():
        arr = model.decode(z.unsqueeze(0), depth)[0]
    compact = compact_mlp(decode(arr, model.layout), cfg.activation, cfg.negative_slope,
                          threshold=t)
    module = compact.build().to(arr.device)
    with torch.no_grad():
        mses = {k: _mse(module(data[f"x_{k}"]).squeeze(-1), data[f"y_{k}"])
                for k in ("train", "val", "test")}
    return DepthResult(depth, z.detach().cpu(), float(t), compact, mses["train"], mses["val"],
                       mses["test"], initial_mse, c, seconds)


def _family_starts(model: MultiScaleAutoencoder, depth: int, data: dict[str, torch.Tensor],
                   config: SearchConfig) -> torch.Tensor:
    """``(restarts, latent_dim)`` starting points for one depth (see :class:`SearchConfig`).

    ``encoded``: ``pool`` random MLPs of the autoencoder's family with ``depth`` hidden layers
    (its sparsity levels in turn), encoded; the ``restarts`` whose decoding by the ``depth``
    decoder has the lowest MSE on (the first 5,000 rows of) the training split.
    """
    cfg = model.config
    dev = data["x_train"].device
    g = torch_generator(config.seed * 1009 + depth)
    if config.start == "uniform":
        return torch.rand(config.restarts, cfg.latent_dim, generator=g).to(dev)
    n = max(config.pool, config.restarts)
    arrays = random_mlps(n, depth, model.layout, generator=g,
                         sparsity=[cfg.sparsities[i % len(cfg.sparsities)] for i in range(n)],
                         widths=cfg.widths, weight_range=cfg.weight_range).to(dev)
    x, y = data["x_train"][:5000], data["y_train"][:5000]
    with torch.no_grad():
        z = model.encode({depth: arrays})
        pred = array_forward(model.decode(z, depth), x, model.layout, cfg.activation,
                             cfg.negative_slope)
        mse = ((pred - y) ** 2).mean(1)
    return z[torch.argsort(mse, stable=True)[:config.restarts]]


def _masked_quantile(a: torch.Tensor, present: torch.Tensor, q: float) -> torch.Tensor:
    """Per row ``r``: the ``q``-quantile of ``a[r]`` over the entries where ``present[r]``
    (``inf`` for a row with none). Shapes: ``(R, ...)`` -> ``(R,)``."""
    out = []
    for ar, pr in zip(a.flatten(1), present.flatten(1) > 0, strict=True):
        v = ar[pr]
        out.append(torch.quantile(v, q) if v.numel() else ar.new_tensor(float("inf")))
    return torch.stack(out)


def search_depth(model: MultiScaleAutoencoder, depth: int, data: dict[str, torch.Tensor],
                 config: SearchConfig, *, progress: Progress | None = None,
                 log: Any = None) -> DepthResult:
    """Run the latent search with the decoder of one ``depth``.

    ``config.restarts`` latent points are searched at once, each with its own threshold ``t``
    and its own ``c = MSE_initial / sparsity_divisor`` (the loss is their sum; Adam is
    elementwise, so each point follows the trajectory it would follow alone). The point whose
    compact MLP has the lowest validation MSE is returned.

    Args:
        model: the trained autoencoder (its parameters are not changed).
        depth: decoder depth (hidden layers).
        data: tensors ``x_train, y_train, x_val, y_val, x_test, y_test`` on the model's device
            (``x``: (N, n_in), ``y``: (N,)).
        config: the search settings.
        progress: advanced once per step.
        log: optional callable receiving metric rows (``depth, step, loss, mse, penalty, t``) of
            the restart with the lowest current loss.

    Returns: the :class:`DepthResult` of the best restart's final ``(z, t)``.
    """
    cfg = model.config
    lay = model.layout
    depth = lay.check_depth(depth)
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    dev = data["x_train"].device
    with _flush_denormal(config.flush_denormal and dev.type == "cpu"):
        z = _family_starts(model, depth, data, config).clone().requires_grad_(True)
        R = z.shape[0]
        t = torch.zeros(R, device=dev, requires_grad=True)
        opt = torch.optim.Adam([{"params": [z], "lr": config.lr_z},
                                {"params": [t], "lr": config.lr_t}])
        wc = lay.weight_cols(depth)
        x, y = data["x_train"], data["y_train"]
        start = time.perf_counter()
        c = initial = torch.zeros(R, device=dev)
        for step in range(config.steps + 1):
            arr = model.decode(z, depth)
            w = arr[..., :wc]
            present = structure_mask((arr[..., wc:] > 0.5).to(w.dtype), lay)
            tt = t.view(R, 1, 1)
            pred = array_forward(arr, x, lay, cfg.activation, cfg.negative_slope,
                                 weights=soft_prune(w, tt, config.prune_sharpness))
            mse = ((pred - y) ** 2).mean(1)
            if step == 0:
                initial = mse.detach()
                c = initial / config.sparsity_divisor
            a = w.abs()
            penalty = ((config.count_weight * torch.sigmoid(config.count_sharpness * (a - tt))
                        + config.l1_weight * a) * present).flatten(1).sum(1)
            losses = mse + c * penalty
            if log is not None and (step % config.log_every == 0 or step == config.steps):
                r = int(losses.argmin())
                log({"depth": depth, "step": step, "loss": losses[r].item(),
                     "mse": mse[r].item(), "penalty": penalty[r].item(), "t": t[r].item()})
            if step == config.steps:
                with torch.no_grad():  # the final (z, t): t capped by the final z's weights
                    if config.t_quantile is not None:
                        t.copy_(torch.minimum(t, _masked_quantile(a.detach(), present,
                                                                  config.t_quantile)))
                break
            opt.zero_grad(set_to_none=True)
            losses.sum().backward()
            opt.step()
            with torch.no_grad():  # cap by the weights t acted on (z's update is one step old)
                t.clamp_(0.0, config.t_max)
                if config.t_quantile is not None:
                    t.copy_(torch.minimum(t, _masked_quantile(a.detach(), present,
                                                              config.t_quantile)))
            if progress is not None:
                progress.advance(1, depth=depth, mse=float(mse.detach().min()),
                                 t=float(t.detach().max()))
        seconds = time.perf_counter() - start
        results = [_finish_depth(model, depth, z[r].detach(), float(t[r].detach()), data,
                                 float(initial[r]), float(c[r]), seconds) for r in range(R)]
    best = min(range(R), key=lambda r: results[r].val_mse)
    out = results[best]
    out.restart = best
    out.restart_val_mse = [r.val_mse for r in results]
    return out


def _check_data(model: MultiScaleAutoencoder, splits: TabularSplits) -> None:
    n_in = model.config.n_in
    if splits.n_features != n_in:
        raise DataError(f"the data has {splits.n_features} features, the autoencoder's MLPs "
                        f"{n_in} inputs; train an autoencoder with n_in={splits.n_features} or "
                        "select the features")


def _plot(rd: ResultDir, rows: list[dict[str, Any]]) -> None:
    from archopt.runs.plotting import new_figure, save_png

    fig = new_figure((10, 3.8))
    ax = fig.subplots(1, 2)
    for d in sorted({r["depth"] for r in rows if "step" in r}):
        pts = [(r["step"], r["mse"], r["t"]) for r in rows if r.get("depth") == d and "mse" in r]
        if pts:
            s, m, t = zip(*pts, strict=True)
            ax[0].plot(s, m, label=f"{d} hidden")
            ax[1].plot(s, t, label=f"{d} hidden")
    ax[0].set(xlabel="step", ylabel="training MSE (soft-pruned)", yscale="log")
    ax[1].set(xlabel="step", ylabel="threshold t")
    ax[0].legend()
    fig.suptitle("SWAT-NN latent search")
    fig.tight_layout()
    save_png(fig, rd.file("search.png"), dpi=100, tight=False)


def latent_search(model: MultiScaleAutoencoder, splits: TabularSplits,
                  config: SearchConfig | None = None, *, out: str | Path | None = None,
                  resume: bool = True, progress: Progress | None = None) -> SearchResult:
    """Search every decoder depth and return the best compact MLP.

    Args:
        model: a trained :class:`MultiScaleAutoencoder` (on the device to use).
        splits: train / val / test data with ``n_in`` features in ``[-1, 1]``.
        config: search settings (default :class:`SearchConfig`).
        out: optional result folder (per-depth results, metrics, the compact model).
        resume: reuse the finished depths saved in ``out`` by a previous run with the same
            autoencoder, data and settings.
        progress: advanced once per search step.

    Returns: the :class:`SearchResult`.

    Raises: DataError (feature count mismatch), InvalidSpec (an unknown depth),
    CheckpointError (an unreadable per-depth file).
    """
    config = config or SearchConfig()
    _check_data(model, splits)
    depths = list(config.depths or model.depths)
    for d in depths:
        model.layout.check_depth(d)
    dev = next(model.parameters()).device
    data = splits.tensors(dev)
    rd = ResultDir(out) if out is not None else None
    key = {"search": config.model_dump(mode="json"), "data": splits.fingerprint(),
           "autoencoder": _model_fingerprint(model)}
    results: list[DepthResult] = []
    done: dict[int, DepthResult] = {}
    if rd is not None:
        if resume:
            done = _load_done(rd, model, depths, key, data)
        rd.keep_metrics(lambda r: r.get("depth") in done)
    for d in depths:
        if d in done:
            results.append(done[d])
            if progress is not None:
                progress.advance(config.steps)
            continue
        log = rd.append_metrics if rd is not None else None
        r = search_depth(model, d, data, config, progress=progress, log=log)
        results.append(r)
        if rd is not None:
            atomic_torch_save({"format": _FORMAT, "key": key, "depth": d, "z": r.z,
                               "t": r.threshold, "initial_mse": r.initial_mse, "c": r.c,
                               "seconds": r.seconds, "restart": r.restart,
                               "restart_val_mse": r.restart_val_mse},
                              rd.file(f"search_depth{d}.pt"))
        if progress is not None:
            progress.log(f"depth {d}: val MSE {r.val_mse:.4g}, test MSE {r.test_mse:.4g}, "
                         f"{r.compact.nonzero_weights} weights, t={r.threshold:.3f}")
    best = min(results, key=lambda r: r.val_mse)
    y_mean = data["y_train"].mean()
    result = SearchResult(best=best, per_depth=results,
                          mean_predictor_test_mse=_mse(y_mean.expand_as(data["y_test"]),
                                                       data["y_test"]))
    if rd is not None:
        _write_model(rd, result)
        _plot(rd, rd.read_metrics())
    return result


def _load_done(rd: ResultDir, model: MultiScaleAutoencoder, depths: list[int],
               key: dict[str, Any], data: dict[str, torch.Tensor]) -> dict[int, DepthResult]:
    done: dict[int, DepthResult] = {}
    for d in depths:
        f = rd.file(f"search_depth{d}.pt")
        if not f.exists():
            continue
        ck = torch_load(f, what="search state", advice="delete it to search that depth again")
        if not isinstance(ck, dict) or ck.get("format") != _FORMAT or ck.get("key") != key:
            continue  # another run's (other data, settings or autoencoder): searched again
        z = ck["z"].to(data["x_train"].device)
        done[d] = _finish_depth(model, d, z, float(ck["t"]), data, float(ck["initial_mse"]),
                                float(ck["c"]), float(ck["seconds"]))
        done[d].restart = int(ck.get("restart", 0))
        done[d].restart_val_mse = [float(v) for v in ck.get("restart_val_mse", [])]
    return done


def _write_model(rd: ResultDir, result: SearchResult) -> None:
    b = result.best
    rd.write_arch(b.compact.spec)
    atomic_torch_save({"spec": b.compact.spec.to_dict(), "state_dict": b.compact.state_dict,
                       "threshold": b.threshold, "depth": b.depth, "z": b.z},
                      rd.file("model.pt"))
