"""Batches cut from in-memory uint8 tensors: index, move, augment, normalise.

A :class:`BatchLoader` reshuffles every epoch from a generator seeded with ``(seed, epoch)``, so
an epoch's order and augmentations are a function of the seed and the epoch number alone -- a run
resumed at an epoch boundary sees exactly the batches the uninterrupted run saw. For
DistributedDataParallel each rank takes an interleaved shard of the same permutation.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator

import torch

from archopt.data.dataset import normalize

__all__ = ["BatchLoader"]


class BatchLoader:
    """Iterate ``(x, y)`` batches: x float32 (B, C, H, W) normalised, y int64 (B,).

    Args:
        x: (N, C, H, W) uint8 images (kept where they are; put them on the GPU once for speed).
        y: (N,) int64 labels.
        batch_size: examples per batch (per rank under DDP).
        mean, std: per-channel normalisation.
        shuffle: reshuffle every epoch.
        seed: base seed of the per-epoch generator.
        augment: a transform ``(x01, generator) -> x01`` applied before normalisation.
        drop_last: drop a last incomplete batch.
        device: where batches are delivered.
        rank, world_size: DDP shard (every rank gets the same number of batches).
    """

    def __init__(self, x: torch.Tensor, y: torch.Tensor, batch_size: int, *,
                 mean: tuple[float, ...], std: tuple[float, ...], shuffle: bool = False,
                 seed: int = 0, augment: Callable[[torch.Tensor, torch.Generator],
                                                  torch.Tensor] | None = None,
                 drop_last: bool = False, device: str | torch.device = "cpu",
                 rank: int = 0, world_size: int = 1) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.x, self.y = x, y
        self.batch_size = batch_size
        self.mean, self.std = mean, std
        self.shuffle = shuffle
        self.seed = seed
        self.augment = augment
        self.drop_last = drop_last
        self.device = torch.device(device)
        self.rank, self.world_size = rank, world_size
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Choose the epoch whose order and augmentation the next iteration produces."""
        self.epoch = epoch

    def _per_rank(self) -> int:
        return math.ceil(len(self.y) / self.world_size)

    def __len__(self) -> int:
        n = self._per_rank()
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        n = len(self.y)
        order = torch.randperm(n, generator=g) if self.shuffle else torch.arange(n)
        if self.world_size > 1:
            per = self._per_rank()
            order = torch.cat([order, order[: per * self.world_size - n]])  # pad to equal shards
            order = order[self.rank::self.world_size]
        order = order.to(self.x.device)
        for b in range(len(self)):
            idx = order[b * self.batch_size:(b + 1) * self.batch_size]
            xb = self.x[idx].to(self.device, non_blocking=True).float().div_(255.0)
            if self.augment is not None:
                xb = self.augment(xb, g)
            yield (normalize(xb, self.mean, self.std),
                   self.y[idx].to(self.device, non_blocking=True))
