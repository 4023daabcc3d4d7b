"""Random sparse MLPs of the SWAT-NN family, generated as arrays, batched, on any device.

The autoencoder's training data (SWAT-NN spec section 2; arXiv 2410.08339, section 4.1): for each
MLP a depth, hidden widths, and a sparsity ``s``; the connectivity first gets one guaranteed path
input -> hidden layer 1 -> ... -> output (one random input, one random unit per hidden layer), then
random extra edges (uniform among the remaining possible edges) until the MLP has
``max(L + 1, round((1 - s) * E))`` edges, ``E`` being the number of possible edges
(``n_in*n_1 + n_1*n_2 + ... + n_L``). Weights on the edges are ``U(-w, w)`` (paper: ``w = 10``);
every other entry is exactly zero.

Everything is drawn from one ``torch.Generator`` on the target device, so the same seed on the same
device gives the same MLPs, and a batch never touches the global random stream.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from archopt.errors import InvalidSpec
from archopt.latent.encoding import ArrayLayout, structure_mask

__all__ = ["PAPER_SPARSITIES", "random_mlps", "training_batch"]

#: Sparsity levels of the paper's training MLPs.
PAPER_SPARSITIES = (0.5, 0.7, 0.8, 0.9)


def random_mlps(n: int, depth: int, layout: ArrayLayout, *, generator: torch.Generator,
                sparsity: float | Sequence[float] | torch.Tensor = 0.5,
                widths: tuple[int, int] = (3, 6), weight_range: float = 10.0,
                device: torch.device | str | None = None,
                dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """``n`` random sparse MLPs with ``depth`` hidden layers, as arrays.

    Args:
        n: how many MLPs.
        depth: hidden layers (1..``layout.max_depth``).
        layout: array geometry (``n_in``, ``max_width``).
        generator: the torch generator (on ``device``) all randomness comes from.
        sparsity: fraction of the possible edges that are absent, in [0, 1): one value, or one per
            MLP.
        widths: ``(lo, hi)``: each hidden width is uniform in ``lo..hi`` (paper: 3..6);
            ``lo = hi`` fixes it.
        weight_range: weights are ``U(-weight_range, weight_range)`` (never exactly 0).
        device: where the arrays live (default: the generator's device).
        dtype: float dtype.

    Returns: ``(n, H, W)`` arrays (``W = layout.width(depth)``), mask columns included.

    Raises: InvalidSpec for sizes or sparsities out of range.
    """
    depth = layout.check_depth(depth)
    lo, hi = int(widths[0]), int(widths[1])
    if not 1 <= lo <= hi <= layout.max_width:
        raise InvalidSpec(f"widths must satisfy 1 <= lo <= hi <= max_width={layout.max_width}, "
                          f"got {widths}")
    if n < 1:
        raise InvalidSpec(f"n must be >= 1, got {n}")
    if weight_range <= 0:
        raise InvalidSpec(f"weight_range must be > 0, got {weight_range}")
    device = torch.device(device) if device is not None else generator.device
    s = torch.as_tensor(sparsity, dtype=torch.float64, device=device).flatten()
    if s.numel() == 1:
        s = s.expand(n)
    if s.numel() != n or bool(((s < 0) | (s >= 1)).any()):
        raise InvalidSpec(f"sparsity must be one value or {n} values in [0, 1), got "
                          f"{sparsity!r}")
    H = layout.rows
    g = generator

    def uniform(*shape: int) -> torch.Tensor:
        return torch.rand(*shape, generator=g, device=device, dtype=torch.float64)

    # Hidden widths and unit masks (units first in each column).
    n_units = lo + (uniform(n, depth) * (hi - lo + 1)).long().clamp_(max=hi - lo)
    rows = torch.arange(H, device=device)
    units = rows.view(1, H, 1) < n_units.view(n, 1, depth)  # (n, H, depth)
    allowed = structure_mask(units.to(dtype), layout) > 0  # (n, H, depth*H + 1)

    # The guaranteed path: one input row, then one unit per hidden layer, then the output.
    path = torch.zeros_like(allowed)
    batch = torch.arange(n, device=device)
    prev = layout.input_offset + (uniform(n) * layout.n_in).long().clamp_(max=layout.n_in - 1)
    for l in range(depth):
        cur = (uniform(n) * n_units[:, l]).long().minimum(n_units[:, l] - 1)
        path[batch, prev, l * H + cur] = True
        prev = cur
    path[batch, prev, depth * H] = True

    # Extra edges: a random order of the allowed entries, path first; keep the first k.
    n_possible = allowed.flatten(1).sum(1)
    k = torch.maximum(torch.round((1 - s) * n_possible.to(torch.float64)).long(),
                      torch.full_like(n_possible, depth + 1))
    scores = uniform(n, H, allowed.shape[2])
    scores = torch.where(path, torch.full_like(scores, 2.0), scores)
    scores = torch.where(allowed, scores, torch.full_like(scores, -1.0)).flatten(1)
    order = torch.argsort(scores, dim=1, descending=True)
    rank = torch.empty_like(order)
    rank.scatter_(1, order, torch.arange(order.shape[1], device=device).expand_as(order))
    keep = (rank < k.unsqueeze(1)).view_as(allowed) & allowed

    w = (uniform(n, H, allowed.shape[2]) * 2 - 1) * weight_range
    w = torch.where(w == 0, torch.full_like(w, weight_range), w)
    w = torch.where(keep, w, torch.zeros_like(w)).to(dtype)
    return torch.cat([w, units.to(dtype)], dim=2)


def training_batch(batch_size: int, layout: ArrayLayout, *, generator: torch.Generator,
                   sparsities: Sequence[float] = PAPER_SPARSITIES,
                   widths: tuple[int, int] = (3, 6), weight_range: float = 10.0,
                   device: torch.device | str | None = None) -> dict[int, torch.Tensor]:
    """One autoencoder training batch: every depth ``1..max_depth`` x every sparsity level.

    ``batch_size`` MLPs are split evenly over the depths (the first depths take the remainder);
    within a depth the sparsity levels are used in turn (paper: 32 = 4 depths x 4 sparsities x 2).

    Returns: ``{depth: (n_depth, H, W_depth) arrays}`` (depths with no MLP are left out).
    """
    depths = list(layout.depths)
    if batch_size < 1:
        raise InvalidSpec(f"batch_size must be >= 1, got {batch_size}")
    if not sparsities:
        raise InvalidSpec("at least one sparsity level is needed")
    base, extra = divmod(batch_size, len(depths))
    out: dict[int, torch.Tensor] = {}
    for i, d in enumerate(depths):
        m = base + (1 if i < extra else 0)
        if m == 0:
            continue
        s = [sparsities[j % len(sparsities)] for j in range(m)]
        out[d] = random_mlps(m, d, layout, generator=generator, sparsity=s, widths=widths,
                             weight_range=weight_range, device=device)
    return out
