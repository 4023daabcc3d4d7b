"""The in-memory image dataset every loader returns.

A decoded dataset is held as one ``uint8`` tensor per split, ``(N, C, H, W)``, and batches are
cut from it by indexing (see :mod:`archopt.data.loader`): no per-image Python objects, no worker
processes, so data loading is never the bottleneck of a training step.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import torch

__all__ = ["ImageDataset", "channel_stats", "normalize"]


def normalize(x: torch.Tensor, mean: tuple[float, ...], std: tuple[float, ...]) -> torch.Tensor:
    """``uint8`` (N, C, H, W) or float in [0, 1] -> float32 ``(x - mean) / std`` per channel."""
    if x.dtype == torch.uint8:
        x = x.float().div_(255.0)
    m = torch.tensor(mean, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
    s = torch.tensor(std, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
    return (x - m) / s


def channel_stats(x: torch.Tensor,
                  chunk: int = 8192) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and standard deviation of uint8 images, in [0, 1] units (float64 sums
    over chunks, so large datasets need no float copy)."""
    c = x.shape[1]
    s = torch.zeros(c, dtype=torch.float64)
    ss = torch.zeros(c, dtype=torch.float64)
    for i in range(0, len(x), chunk):
        xc = x[i:i + chunk].to(torch.float64).div_(255.0)
        s += xc.sum(dim=(0, 2, 3))
        ss += xc.square().sum(dim=(0, 2, 3))
    n = x.shape[0] * x.shape[2] * x.shape[3]
    mean = s / n
    var = (ss / n - mean.square()).clamp_min(0)
    return (tuple(float(v) for v in mean),
            tuple(max(float(v), 1e-6) for v in var.sqrt()))


@dataclass(frozen=True)
class ImageDataset:
    """A labelled image classification dataset, decoded in memory.

    Attributes:
        name: registry name (``"fashion-mnist"``).
        train_x, test_x: (N, C, H, W) uint8 images.
        train_y, test_y: (N,) int64 labels in ``[0, num_classes)``.
        num_classes: number of classes.
        class_names: one name per class.
        mean, std: per-channel statistics of the training images in [0, 1] units (used by
            :func:`normalize`).
    """

    name: str
    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    num_classes: int
    class_names: tuple[str, ...]
    mean: tuple[float, ...] = field(default=())
    std: tuple[float, ...] = field(default=())

    def __post_init__(self) -> None:
        if not self.mean or not self.std:
            mean, std = channel_stats(self.train_x)
            object.__setattr__(self, "mean", mean)
            object.__setattr__(self, "std", std)

    @property
    def in_channels(self) -> int:
        return int(self.train_x.shape[1])

    @property
    def resolution(self) -> int:
        """Input side length (images are square in every registered dataset)."""
        return int(self.train_x.shape[2])

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return (self.in_channels, int(self.train_x.shape[2]), int(self.train_x.shape[3]))

    def __repr__(self) -> str:
        return (f"ImageDataset({self.name!r}, train={len(self.train_y)}, test={len(self.test_y)}, "
                f"shape={self.input_shape}, classes={self.num_classes})")

    def describe(self) -> dict[str, Any]:
        """Name, sizes, shape, classes and statistics as a JSON-ready dict."""
        return {"name": self.name, "train": len(self.train_y), "test": len(self.test_y),
                "input_shape": list(self.input_shape), "num_classes": self.num_classes,
                "mean": list(self.mean), "std": list(self.std)}

    def subset(self, train: int | None = None, test: int | None = None,
               seed: int = 0) -> ImageDataset:
        """A random subset of ``train`` / ``test`` examples (None keeps the split whole).

        Keeps the full dataset's mean and std so normalisation does not change.
        """
        g = torch.Generator().manual_seed(seed)

        def pick(x: torch.Tensor, y: torch.Tensor, n: int | None) -> tuple[torch.Tensor, ...]:
            if n is None or n >= len(y):
                return x, y
            idx = torch.randperm(len(y), generator=g)[:n].sort().values
            return x[idx], y[idx]

        tx, ty = pick(self.train_x, self.train_y, train)
        vx, vy = pick(self.test_x, self.test_y, test)
        return replace(self, train_x=tx, train_y=ty, test_x=vx, test_y=vy)

    def split_validation(self, fraction: float, seed: int = 0
                         ) -> tuple[ImageDataset, tuple[torch.Tensor, torch.Tensor]]:
        """Hold out a stratified ``fraction`` of the training set.

        Returns: (dataset whose train split excludes the held-out part, (val_x, val_y)).
        """
        if not 0.0 < fraction < 1.0:
            raise ValueError(f"validation fraction must be in (0, 1), got {fraction}")
        g = torch.Generator().manual_seed(seed)
        val_idx = []
        for c in range(self.num_classes):
            idx = torch.nonzero(self.train_y == c).flatten()
            idx = idx[torch.randperm(len(idx), generator=g)]
            val_idx.append(idx[: round(len(idx) * fraction)])
        val = torch.cat(val_idx).sort().values
        keep = torch.ones(len(self.train_y), dtype=torch.bool)
        keep[val] = False
        ds = replace(self, train_x=self.train_x[keep], train_y=self.train_y[keep])
        return ds, (self.train_x[val], self.train_y[val])
