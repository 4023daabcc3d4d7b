"""Validation that tells whether the autoencoder learned anything: errors beside references.

An autoencoder's validation error means little alone: predicting each MLP's own mean output
already gives a finite percentage error. Every figure here is therefore reported next to two
*references* computed from the validation MLPs alone, never from the autoencoder:

- ``constant``: each MLP replaced by its own mean output on the grid (the best constant under
  squared error);
- ``affine``: each MLP replaced by its least-squares affine function of the inputs,
  ``y ~ a . x + b`` on the grid (float64 ``lstsq``).

Errors, per validation MLP, of a prediction ``y_hat`` of its outputs ``y`` on the grid points
``p`` (both in percent):

- ours, :func:`percentage_errors`: ``100 * mean_p |y_hat_p - y_p| / mean_p |y_p|`` (a relative
  L1 error); the **MdPE** is its median over the validation MLPs;
- the authors' (their ``validation`` in ``training_autoencoder/test.py``),
  :func:`median_pointwise_errors`: ``100 * median_p |y_hat_p - y_p| / |y_p|``, the minimum over
  the decoders, then the *mean* over the MLPs (``*_mdpe_authors``).

Three views of the autoencoder (:func:`evaluate`):

- ``val_*``: the encoder's point decoded by every decoder; per MLP the best decoder is the one
  with the smallest training error (``config.loss``);
- ``beats_constant``: the fraction of MLPs whose best decoded MLP has a smaller error (ours) than
  that MLP's constant reference;
- ``coverage_*``: *decoder coverage*, what the latent search can reach. The decoders are frozen
  and, for each validation MLP and each decoder, the latent point is optimised from the encoder's
  point (Adam, ``coverage_lr`` 0.1, ``coverage_steps`` 400, output MSE on the grid); per MLP the
  decoder with the smallest final MSE is taken. Computed on the first ``coverage_mlps``
  validation MLPs (whole validation batches, so every depth has the same share).

All figures are given overall and per depth of the original MLP (``by_depth``).
"""

from __future__ import annotations

import math
from typing import Any

import torch

from archopt.latent.autoencoder import (
    MultiScaleAutoencoder,
    decoder_errors,
    decoder_losses,
    input_grid,
)
from archopt.latent.encoding import array_forward
from archopt.latent.generator import training_batch
from archopt.runtime.devices import torch_generator

__all__ = [
    "VAL_SEED",
    "coverage",
    "evaluate",
    "median_pointwise_errors",
    "percentage_errors",
    "reference_predictions",
]

#: First seed of the fixed validation batches (independent of any training seed).
VAL_SEED = 1_000_000_007
_FIGURES = ("val_mdpe", "val_mdpe_authors", "constant_mdpe", "constant_mdpe_authors",
            "affine_mdpe", "affine_mdpe_authors", "beats_constant", "coverage_mdpe",
            "coverage_mdpe_authors", "coverage_beats_constant")


def percentage_errors(pred: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-MLP percentage error ``100 * mean|pred - y| / mean|y|`` over the last dim: ``(B,)``.

    An original whose outputs are all exactly 0 gets 0 % when the prediction is 0 too, else inf.
    """
    num = (pred - y).abs().mean(-1)
    den = y.abs().mean(-1)
    return torch.where(den > 0, 100 * num / den.clamp_min(1e-30),
                       torch.where(num > 0, torch.full_like(num, math.inf),
                                   torch.zeros_like(num)))


def median_pointwise_errors(pred: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The authors' per-MLP error: ``100 * median_p |pred_p - y_p| / |y_p|`` over the last dim.

    ``torch.median`` (the lower median for an even count), as in the authors' code; a point with
    ``y_p = 0`` is divided by 1e-30 (the median ignores a few such points).

    Returns: ``(...)`` (the last dim reduced).
    """
    return (100 * (pred - y).abs() / y.abs().clamp_min(1e-30)).median(-1).values


def reference_predictions(x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
    """The constant and affine references of MLP outputs ``y`` ``(B, P)`` on inputs ``x``
    ``(P, n_in)``.

    Returns: ``{"constant": (B, P) each row's mean, "affine": (B, P) each row's least-squares fit
    a . x + b}`` (float64 solve, returned in ``y``'s dtype).
    """
    y64 = y.double()
    design = torch.cat([x.double(), torch.ones(x.shape[0], 1, dtype=torch.float64,
                                               device=x.device)], dim=1)  # (P, n_in + 1)
    coef = torch.linalg.lstsq(design, y64.T).solution  # (n_in + 1, B)
    return {"constant": y64.mean(1, keepdim=True).expand_as(y64).to(y.dtype),
            "affine": (design @ coef).T.to(y.dtype)}


class _frozen:
    """Context: the model's parameters do not require gradients (restored on exit)."""

    def __init__(self, model: torch.nn.Module) -> None:
        self.model = model

    def __enter__(self) -> None:
        self.flags = [p.requires_grad for p in self.model.parameters()]
        for p in self.model.parameters():
            p.requires_grad_(False)

    def __exit__(self, *exc: object) -> None:
        for p, f in zip(self.model.parameters(), self.flags, strict=True):
            p.requires_grad_(f)


def coverage(model: MultiScaleAutoencoder, arrays: dict[int, torch.Tensor],
             grid: torch.Tensor, *, steps: int = 400, lr: float = 0.1
             ) -> dict[str, torch.Tensor]:
    """Decoder coverage: optimise a latent point per (original, decoder) with frozen decoders.

    Every point starts at the original's encoding; the loss is the sum over originals and
    decoders of the output MSE on ``grid`` (Adam is elementwise, so each point follows its own
    trajectory). Shapes: ``B`` originals (rows in depth order), ``D`` decoders, ``P`` points.

    Returns: ``{"y": (B, P), "preds": (B, D, P) final decoded outputs, "mse": (B, D),
    "best": (B,) decoder index with the smallest final MSE, "z": (B, D, latent_dim)}``.
    """
    cfg = model.config
    lay = model.layout
    was_training = model.training
    model.eval()
    depths = model.depths

    def predict(z: torch.Tensor) -> torch.Tensor:
        return torch.stack([array_forward(model.decode(z[:, i], L), grid, lay, cfg.activation,
                                          cfg.negative_slope) for i, L in enumerate(depths)],
                           dim=1)

    with _frozen(model), torch.enable_grad():
        y = torch.cat([array_forward(arrays[L], grid, lay, cfg.activation, cfg.negative_slope)
                       for L in sorted(arrays)]).detach()
        z0 = model.encode(arrays).detach()
        z = z0.unsqueeze(1).repeat(1, len(depths), 1).requires_grad_(True)
        opt = torch.optim.Adam([z], lr=lr)
        for _ in range(steps):
            loss = ((predict(z) - y.unsqueeze(1)) ** 2).mean(-1).sum()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        with torch.no_grad():
            preds = predict(z)
    model.train(was_training)
    mse = ((preds - y.unsqueeze(1)) ** 2).mean(-1)
    return {"y": y, "preds": preds, "mse": mse, "best": mse.argmin(1), "z": z.detach()}


def _pick(preds: torch.Tensor, best: torch.Tensor) -> torch.Tensor:
    return preds[torch.arange(len(best), device=best.device), best]


def _figures(errs: dict[str, torch.Tensor], mask: torch.Tensor,
             cov_mask: torch.Tensor | None) -> dict[str, float | None]:
    """Medians / means / fractions of the per-MLP errors over the MLPs selected by ``mask``."""

    def med(v: torch.Tensor, m: torch.Tensor) -> float | None:
        return float(v[m].median()) if bool(m.any()) else None

    def mean(v: torch.Tensor, m: torch.Tensor) -> float | None:
        return float(v[m].double().mean()) if bool(m.any()) else None

    out: dict[str, float | None] = {
        "val_mdpe": med(errs["val"], mask), "val_mdpe_authors": mean(errs["val_a"], mask),
        "constant_mdpe": med(errs["const"], mask),
        "constant_mdpe_authors": mean(errs["const_a"], mask),
        "affine_mdpe": med(errs["affine"], mask),
        "affine_mdpe_authors": mean(errs["affine_a"], mask),
        "beats_constant": mean((errs["val"] < errs["const"]).float(), mask),
    }
    if cov_mask is not None:
        m = mask[:len(cov_mask)] & cov_mask
        out.update({"coverage_mdpe": med(errs["cov"], m),
                    "coverage_mdpe_authors": mean(errs["cov_a"], m),
                    "coverage_beats_constant": mean(
                        (errs["cov"] < errs["const"][:len(cov_mask)]).float(), m)})
    return out


@torch.no_grad()
def evaluate(model: MultiScaleAutoencoder, *, batches: int = 8, batch_size: int = 32,
             seed: int = VAL_SEED, device: torch.device | str | None = None,
             coverage_mlps: int = 0, coverage_steps: int = 400, coverage_lr: float = 0.1
             ) -> dict[str, Any]:
    """Validation on fixed-seed batches of the training family (see the module docstring).

    Args:
        model: the autoencoder (left in the mode it was in).
        batches, batch_size: the validation MLPs (``training_batch`` with seeds ``seed + b``).
        device: where to compute (default: the model's).
        coverage_mlps: how many validation MLPs get the coverage optimisation (0: none; rounded
            up to whole batches, at most all of them).
        coverage_steps, coverage_lr: the coverage optimisation (Adam).

    Returns: ``{"val_loss", "val_mse", "val_mdpe", "val_mdpe_authors", "constant_mdpe",
    "constant_mdpe_authors", "affine_mdpe", "affine_mdpe_authors", "beats_constant",
    ["coverage_mdpe", "coverage_mdpe_authors", "coverage_beats_constant", "coverage_mlps"],
    "val_mdpe_by_depth": {L: %}, "by_depth": {L: {the figures}}, "decoder_share": {L: frac},
    "val_mlps"}``; MdPE in percent, ``beats_constant`` fractions in [0, 1].
    """
    cfg = model.config
    device = torch.device(device) if device is not None else next(model.parameters()).device
    was_training = model.training
    model.eval()
    grid = input_grid(cfg.n_in, cfg.grid_points, device=device)
    n_cov_batches = min(batches, math.ceil(coverage_mlps / batch_size)) if coverage_mlps else 0
    rows: dict[str, list[torch.Tensor]] = {k: [] for k in (
        "loss", "mse", "val", "val_a", "const", "const_a", "affine", "affine_a", "cov", "cov_a",
        "depth", "best")}
    for b in range(batches):
        arrays = training_batch(batch_size, cfg.layout, generator=torch_generator(seed + b, device),
                                sparsities=cfg.sparsities, widths=cfg.widths,
                                weight_range=cfg.weight_range, device=device)
        mse, y, preds = decoder_errors(model, arrays, grid)
        best_err, best = decoder_losses(mse, y, preds, cfg.loss).min(1)
        stacked = torch.stack([preds[L] for L in model.depths], dim=1)  # (B, D, P)
        refs = reference_predictions(grid, y)
        rows["loss"].append(best_err)
        rows["mse"].append(_pick(mse, best))
        rows["val"].append(percentage_errors(_pick(stacked, best), y))
        rows["val_a"].append(median_pointwise_errors(stacked, y.unsqueeze(1)).min(1).values)
        for name, key in (("constant", "const"), ("affine", "affine")):
            rows[key].append(percentage_errors(refs[name], y))
            rows[key + "_a"].append(median_pointwise_errors(refs[name], y))
        rows["depth"].append(torch.cat([torch.full((a.shape[0],), L, device=device)
                                        for L, a in sorted(arrays.items())]))
        rows["best"].append(best + 1)
        if b < n_cov_batches:
            cov = coverage(model, arrays, grid, steps=coverage_steps, lr=coverage_lr)
            rows["cov"].append(percentage_errors(_pick(cov["preds"], cov["best"]), cov["y"]))
            rows["cov_a"].append(median_pointwise_errors(cov["preds"], cov["y"].unsqueeze(1))
                                 .min(1).values)
    model.train(was_training)
    errs = {k: torch.cat(v).cpu() for k, v in rows.items() if v}
    dep, best_all = errs["depth"], errs["best"]
    cov_mask = (torch.ones(len(errs["cov"]), dtype=torch.bool) if "cov" in errs else None)
    everything = torch.ones(len(dep), dtype=torch.bool)
    by_depth = {int(L): _figures(errs, dep == L, cov_mask) for L in model.depths
                if bool((dep == L).any())}
    return {
        "val_loss": float(errs["loss"].mean()),
        "val_mse": float(errs["mse"].mean()),
        **_figures(errs, everything, cov_mask),
        **({"coverage_mlps": len(errs["cov"]), "coverage_steps": coverage_steps}
           if cov_mask is not None else {}),
        "val_mdpe_by_depth": {L: f["val_mdpe"] for L, f in by_depth.items()},
        "by_depth": by_depth,
        "decoder_share": {int(L): float((best_all == L).float().mean()) for L in model.depths},
        "val_mlps": len(dep),
    }
