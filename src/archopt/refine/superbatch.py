"""Circular super-batches: the data each DE generation is scored on.

The training set, in one fixed order, is cut into ``N // B`` contiguous super-batches of ``B``
examples (a last partial one is dropped); generation t is scored on super-batch ``t mod (N // B)``.
All NP trials of a generation see the same examples, and consecutive generations see different
ones, cycling through the whole training set (the variance-reduction argument of Bodner et al.,
cited in the paper).

The fixed order is the dataset's own (``order="dataset"``) or one seeded permutation drawn once
(``order="shuffled"``, the default, so that a dataset stored sorted by class still gives mixed
super-batches).

Source: arXiv 2408.07194 section 3.3 (circular super-batches); ../specs/hbde.md section 2.
"""

from __future__ import annotations

from typing import Literal

import torch

from archopt.data.dataset import normalize
from archopt.errors import ArchoptError

__all__ = ["CircularSuperBatches"]


class CircularSuperBatches:
    """Cycle through ``x``/``y`` in super-batches of ``size`` examples.

    Args:
        x: (N, C, H, W) uint8 images (or float, already in [0, 1]).
        y: (N,) int64 labels.
        size: B, examples per super-batch (1 <= B <= N).
        mean, std: per-channel normalisation (:func:`archopt.data.normalize`).
        device: where the data is kept (moved there once) and batches are delivered.
        order: ``"shuffled"`` (one seeded permutation) or ``"dataset"``.
        seed: seed of the permutation.

    ``sb[t]`` returns ``(x float32 (B, C, H, W) normalised, y int64 (B,))`` on ``device`` for
    generation t. Raises: ArchoptError for a size out of range or an unknown order.
    """

    def __init__(self, x: torch.Tensor, y: torch.Tensor, size: int, *,
                 mean: tuple[float, ...], std: tuple[float, ...],
                 device: str | torch.device = "cpu",
                 order: Literal["shuffled", "dataset"] = "shuffled", seed: int = 0) -> None:
        n = int(y.shape[0])
        if isinstance(size, bool) or not isinstance(size, int) or not 1 <= size <= n:
            raise ArchoptError(f"super-batch size must be an integer in [1, {n}] (the training "
                               f"set has {n} examples), got {size!r}")
        if order == "shuffled":
            perm = torch.randperm(n, generator=torch.Generator().manual_seed(int(seed)))
        elif order == "dataset":
            perm = torch.arange(n)
        else:
            raise ArchoptError(f"super-batch order must be 'shuffled' or 'dataset', got {order!r}")
        self.size = size
        self.count = n // size
        keep = perm[: self.count * size]
        self.device = torch.device(device)
        self.x = x[keep].to(self.device)
        self.y = y[keep].to(self.device)
        self.mean, self.std = tuple(mean), tuple(std)
        self.order = order

    def __len__(self) -> int:
        """N // B, the number of super-batches in one cycle."""
        return self.count

    def index(self, t: int) -> int:
        """Super-batch of generation ``t``: ``t mod (N // B)``."""
        return int(t) % self.count

    def __getitem__(self, t: int) -> tuple[torch.Tensor, torch.Tensor]:
        k = self.index(t)
        sl = slice(k * self.size, (k + 1) * self.size)
        return normalize(self.x[sl], self.mean, self.std), self.y[sl]
