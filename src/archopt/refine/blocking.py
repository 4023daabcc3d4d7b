"""Histogram blocking: tie the D parameters of a network into D' << D shared values.

theta (D,) is cut by value into ``n_bins`` equal-width bins over ``[min(theta), max(theta)]``;
every parameter joins the block of its bin, empty bins are dropped, and each block takes the mean
of its members. The search space of the optimiser is the block vector v (D',); the network is
evaluated with theta' = v[inverse] (a gather: weight sharing).

Bins (``n_bins`` bins, ``n_bins + 1`` edges ``e_0 = min < e_1 < ... < e_n = max``): bin k holds
``e_k <= x < e_{k+1}``, and the last bin is closed, so the maximum belongs to it (the reference
code loses the maximum; here every parameter is in exactly one block). This is the convention of
``numpy.histogram``, against which the tests check the counts.

Source: Khosrowshahli, Rahnamayan, Ombuki-Berman, "Massive Dimensions Reduction and Hybridization
with Meta-heuristics in Deep Learning", arXiv 2408.07194, section 3.1 (histogram-based blocking;
ResNet-18 11.2M -> ~3.4K dimensions with N_bins = 10,000); ../specs/hbde.md section 1.
The random blocking (the paper's "BDE" baseline) assigns parameters to blocks at random.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

import torch

from archopt.errors import ArchoptError

__all__ = [
    "Blocking",
    "blocking_cost",
    "histogram_blocking",
    "random_blocking",
    "sweep_bins",
    "with_own_blocks",
]


def _check_theta(theta: torch.Tensor) -> torch.Tensor:
    if not isinstance(theta, torch.Tensor) or theta.dim() != 1 or theta.numel() == 0:
        raise ArchoptError("theta must be a non-empty 1-D tensor of parameters")
    if not theta.is_floating_point():
        raise ArchoptError(f"theta must be floating point, got {theta.dtype}")
    if not bool(torch.isfinite(theta).all()):
        raise ArchoptError("theta holds NaN or infinite values; the model cannot be blocked "
                           "(was the pre-training diverging?)")
    return theta


@dataclass(frozen=True)
class Blocking:
    """A partition of the D parameters into D' blocks, with the block values.

    Attributes:
        inverse: (D,) int64, the block of every parameter (values in ``[0, D')``).
        values: (D',) the block means of the parameters it was built from (theta's dtype).
        low, high: (D',) float64, min and max of the original parameters of each block (the
            range the initial population is drawn from).
        counts: (D',) int64, parameters per block (all >= 1).
        scheme: ``"histogram"`` or ``"random"``.
        n_bins: the number of histogram bins asked for (None for random blocks).
        edges: (n_bins + 1,) float64 bin edges (None for random blocks).
        bin_index: (D',) int64, the histogram bin each block came from (None for random).
    """

    inverse: torch.Tensor
    values: torch.Tensor
    low: torch.Tensor
    high: torch.Tensor
    counts: torch.Tensor
    scheme: str
    n_bins: int | None = None
    edges: torch.Tensor | None = None
    bin_index: torch.Tensor | None = None

    @property
    def dimensions(self) -> int:
        """D: the number of parameters."""
        return int(self.inverse.numel())

    @property
    def blocked_dimensions(self) -> int:
        """D': the number of (non-empty) blocks, the dimension DE searches."""
        return int(self.values.numel())

    @property
    def reduction(self) -> float:
        """D / D'."""
        return self.dimensions / self.blocked_dimensions

    def unblock(self, v: torch.Tensor) -> torch.Tensor:
        """Block values -> full parameter vectors: (..., D') -> (..., D), ``v[..., inverse]``.

        The gather runs on ``v``'s device (``inverse`` is moved there when needed).

        Raises: ArchoptError when the last dimension of ``v`` is not D'.
        """
        if v.shape[-1] != self.blocked_dimensions:
            raise ArchoptError(f"block vector has {v.shape[-1]} entries, the blocking has "
                               f"{self.blocked_dimensions}")
        inv = self.inverse if self.inverse.device == v.device else self.inverse.to(v.device)
        return v.index_select(-1, inv)

    def block(self, theta: torch.Tensor) -> torch.Tensor:
        """Full vector -> block means under this partition: (D,) -> (D',) (float64 sums)."""
        theta = _check_theta(theta)
        if theta.numel() != self.dimensions:
            raise ArchoptError(f"theta has {theta.numel()} entries, the blocking was made for "
                               f"{self.dimensions}")
        inv = self.inverse.to(theta.device)
        sums = torch.zeros(self.blocked_dimensions, dtype=torch.float64, device=theta.device)
        sums.index_add_(0, inv, theta.double())
        return (sums / self.counts.to(theta.device)).to(theta.dtype)

    def to(self, device: str | torch.device) -> Blocking:
        """The same blocking with ``inverse`` and ``values`` on ``device`` (ranges stay)."""
        return Blocking(self.inverse.to(device), self.values.to(device), self.low, self.high,
                        self.counts, self.scheme, self.n_bins, self.edges, self.bin_index)

    def describe(self) -> dict[str, Any]:
        """D, D', reduction, block sizes (JSON-ready)."""
        c = self.counts.double()
        return {"scheme": self.scheme, "n_bins": self.n_bins, "dimensions": self.dimensions,
                "blocked_dimensions": self.blocked_dimensions,
                "reduction": round(self.reduction, 2),
                "block_size_min": int(self.counts.min()), "block_size_max": int(self.counts.max()),
                "block_size_median": float(c.median())}

    def state_dict(self) -> dict[str, Any]:
        """Tensors and fields for ``torch.save`` (loadable with ``weights_only=True``)."""
        return {"inverse": self.inverse.cpu(), "values": self.values.cpu(), "low": self.low,
                "high": self.high, "counts": self.counts, "scheme": self.scheme,
                "n_bins": self.n_bins, "edges": self.edges, "bin_index": self.bin_index}

    @classmethod
    def from_state_dict(cls, state: Mapping[str, Any]) -> Blocking:
        return cls(**{k: state[k] for k in ("inverse", "values", "low", "high", "counts",
                                            "scheme", "n_bins", "edges", "bin_index")})


def _from_assignment(theta: torch.Tensor, assign: torch.Tensor, n_slots: int, scheme: str,
                     n_bins: int | None, edges: torch.Tensor | None) -> Blocking:
    """Drop empty slots of ``assign`` (D,) in [0, n_slots) and compute block statistics."""
    t64 = theta.detach().to("cpu", torch.float64)
    counts_all = torch.bincount(assign, minlength=n_slots)
    kept = torch.nonzero(counts_all).flatten()
    remap = torch.full((n_slots,), -1, dtype=torch.int64)
    remap[kept] = torch.arange(kept.numel())
    inverse = remap[assign]
    d = kept.numel()
    counts = counts_all[kept]
    sums = torch.zeros(d, dtype=torch.float64).index_add_(0, inverse, t64)
    low = torch.full((d,), float("inf"), dtype=torch.float64)
    low = low.scatter_reduce(0, inverse, t64, "amin")
    high = torch.full((d,), float("-inf"), dtype=torch.float64)
    high = high.scatter_reduce(0, inverse, t64, "amax")
    values = (sums / counts).to(theta.dtype)
    return Blocking(inverse, values, low, high, counts, scheme, n_bins, edges,
                    kept if scheme == "histogram" else None)


def histogram_blocking(theta: torch.Tensor, n_bins: int = 10_000) -> Blocking:
    """Block theta by value into ``n_bins`` equal-width bins over [min, max], empty bins dropped.

    Args:
        theta: (D,) floating parameter vector (any device; the blocking is computed on CPU in
            float64 and its ``inverse`` / ``values`` are returned on CPU).
        n_bins: number of bins (the paper uses 10,000); D' <= n_bins.

    Returns: a :class:`Blocking` with ``scheme="histogram"``.

    Raises: ArchoptError for ``n_bins < 1`` or a theta that is empty, not 1-D or not finite.

    Source: arXiv 2408.07194 section 3.1.
    """
    theta = _check_theta(theta)
    if isinstance(n_bins, bool) or not isinstance(n_bins, int) or n_bins < 1:
        raise ArchoptError(f"n_bins must be a positive integer, got {n_bins!r}")
    t64 = theta.detach().to("cpu", torch.float64)
    lo, hi = float(t64.min()), float(t64.max())
    edges = torch.linspace(lo, hi, n_bins + 1, dtype=torch.float64)
    edges[0], edges[-1] = lo, hi
    # bin k: edges[k] <= x < edges[k+1]; x == max lands on n_bins and is put in the last bin.
    assign = (torch.searchsorted(edges, t64, right=True) - 1).clamp_(0, n_bins - 1)
    return _from_assignment(theta, assign, n_bins, "histogram", n_bins, edges)


def random_blocking(theta: torch.Tensor, n_blocks: int, seed: int = 0) -> Blocking:
    """Random blocks of near-equal size (the paper's BDE baseline): D parameters -> n_blocks.

    A seeded permutation of the parameters is dealt round-robin into ``n_blocks`` blocks, so every
    block is non-empty and sizes differ by at most one; block values are the members' means.

    Raises: ArchoptError unless ``1 <= n_blocks <= D``.
    """
    theta = _check_theta(theta)
    d = theta.numel()
    if isinstance(n_blocks, bool) or not isinstance(n_blocks, int) or not 1 <= n_blocks <= d:
        raise ArchoptError(f"n_blocks must be an integer in [1, {d}], got {n_blocks!r}")
    g = torch.Generator().manual_seed(int(seed))
    perm = torch.randperm(d, generator=g)
    assign = torch.empty(d, dtype=torch.int64)
    assign[perm] = torch.arange(d) % n_blocks
    return _from_assignment(theta, assign, n_blocks, "random", None, None)


def with_own_blocks(blocking: Blocking, theta: torch.Tensor, positions: torch.Tensor
                    ) -> tuple[Blocking, torch.Tensor]:
    """The same partition, except that the parameters at ``positions`` (k,) leave their blocks
    and get one block each (appended last, in ``positions`` order); blocks left empty are
    dropped and the block means are recomputed from ``theta``.

    Used by HBDE's ``bias_genes`` variant (ours): the output layer's biases searched beside the
    blocks.

    Returns: (the new blocking, origin (D'_new,) int64: the block of ``blocking`` each new block
        is what remains of, -1 for the own blocks). Histogram blocks keep their ``bin_index``;
        own blocks get -1 there.
    Raises: ArchoptError for an empty, out-of-range or repeated ``positions``.
    """
    theta = _check_theta(theta)
    pos = torch.as_tensor(positions, dtype=torch.int64).flatten()
    d, n, k = blocking.dimensions, blocking.blocked_dimensions, int(pos.numel())
    if k == 0 or pos.min() < 0 or pos.max() >= d or pos.unique().numel() != k:
        raise ArchoptError(f"positions must be distinct indices in [0, {d})")
    assign = blocking.inverse.cpu().clone()
    assign[pos] = n + torch.arange(k)
    kept = torch.nonzero(torch.bincount(assign, minlength=n + k)).flatten()
    new = _from_assignment(theta, assign, n + k, blocking.scheme, blocking.n_bins,
                           blocking.edges)
    origin = torch.where(kept < n, kept, torch.full_like(kept, -1))
    bin_index = None
    if blocking.bin_index is not None:
        bin_index = torch.where(kept < n, blocking.bin_index[kept.clamp(max=n - 1)],
                                torch.full_like(kept, -1))
    return replace(new, bin_index=bin_index), origin


def blocking_cost(theta: torch.Tensor, blocking: Blocking,
                  score: Callable[[torch.Tensor], Mapping[str, float]]) -> dict[str, Any]:
    """The cost of blocking: ``score`` of the original theta vs the blocked one.

    Args:
        theta: (D,) original parameters.
        blocking: the blocking to price.
        score: theta -> {"train": metric, "test": metric, ...} (e.g. macro-F1 per split).

    Returns: ``{"dimensions", "blocked_dimensions", "before": {...}, "after": {...}}``.
    """
    before = dict(score(theta))
    after = dict(score(blocking.unblock(blocking.values.to(theta.device))))
    return {"dimensions": blocking.dimensions, "blocked_dimensions": blocking.blocked_dimensions,
            "n_bins": blocking.n_bins, "before": before, "after": after}


def sweep_bins(theta: torch.Tensor, bins: Iterable[int],
               score: Callable[[torch.Tensor], Mapping[str, float]] | None = None
               ) -> list[dict[str, Any]]:
    """D' and (when ``score`` is given) the blocked model's metrics for each N_bins in ``bins``.

    The paper sweeps N_bins over 100..9,900 (arXiv 2408.07194, section 4).

    Returns: one row per N_bins: ``{"n_bins", "blocked_dimensions", "reduction", **metrics}``.
    """
    rows = []
    for n in bins:
        b = histogram_blocking(theta, int(n))
        row: dict[str, Any] = {"n_bins": int(n), "blocked_dimensions": b.blocked_dimensions,
                               "reduction": b.reduction}
        if score is not None:
            row.update(score(b.unblock(b.values.to(theta.device))))
        rows.append(row)
    return rows
