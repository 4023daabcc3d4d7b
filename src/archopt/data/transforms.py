"""Batched tensor augmentations (no torchvision): random crop with padding, horizontal flip.

Each transform maps a float batch ``(N, C, H, W)`` in [0, 1] and a ``torch.Generator`` to a new
batch; randomness comes only from the generator, so a seeded loader is reproducible.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from archopt.errors import ArchoptError

__all__ = ["AUGMENTATIONS", "Compose", "RandomCrop", "RandomHorizontalFlip", "augmentation"]


def _uniform_ints(n: int, high: int, g: torch.Generator, device: torch.device) -> torch.Tensor:
    return torch.randint(0, high, (n,), generator=g).to(device)


class RandomCrop:
    """Zero-pad by ``padding`` pixels, then crop a random ``size`` x ``size`` window per image."""

    def __init__(self, size: int, padding: int = 4) -> None:
        self.size = size
        self.padding = padding

    def __call__(self, x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        n, c, h, w = x.shape
        p, s = self.padding, self.size
        xp = torch.nn.functional.pad(x, (p, p, p, p))
        oy = _uniform_ints(n, h + 2 * p - s + 1, g, x.device)
        ox = _uniform_ints(n, w + 2 * p - s + 1, g, x.device)
        ar = torch.arange(s, device=x.device)
        rows = (oy[:, None] + ar)[:, None, :, None]          # (N, 1, s, 1)
        cols = (ox[:, None] + ar)[:, None, None, :]          # (N, 1, 1, s)
        bi = torch.arange(n, device=x.device)[:, None, None, None]
        ci = torch.arange(c, device=x.device)[None, :, None, None]
        return xp[bi, ci, rows, cols]

    def __repr__(self) -> str:
        return f"RandomCrop({self.size}, padding={self.padding})"


class RandomHorizontalFlip:
    """Mirror each image left-right with probability ``p``."""

    def __init__(self, p: float = 0.5) -> None:
        self.p = p

    def __call__(self, x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        flip = (torch.rand(x.shape[0], generator=g) < self.p).to(x.device)
        return torch.where(flip[:, None, None, None], x.flip(-1), x)

    def __repr__(self) -> str:
        return f"RandomHorizontalFlip(p={self.p})"


class Compose:
    """Apply transforms in order."""

    def __init__(self, transforms: Sequence[object]) -> None:
        self.transforms = list(transforms)

    def __call__(self, x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        for t in self.transforms:
            x = t(x, g)  # type: ignore[operator]
        return x

    def __repr__(self) -> str:
        return f"Compose({self.transforms})"


AUGMENTATIONS = ("none", "crop", "flip", "crop-flip")


def augmentation(name: str, resolution: int, padding: int | None = None) -> Compose | None:
    """The named augmentation for images of side ``resolution``.

    ``none``; ``crop`` (random crop, padding 4 -- 1 for images of side <= 8); ``flip``;
    ``crop-flip`` (the standard CIFAR recipe).
    Raises: ArchoptError for an unknown name.
    """
    if name not in AUGMENTATIONS:
        raise ArchoptError(f"unknown augmentation {name!r} (one of {', '.join(AUGMENTATIONS)})")
    if name == "none":
        return None
    pad = padding if padding is not None else (1 if resolution <= 8 else 4)
    ts: list[object] = []
    if "crop" in name:
        ts.append(RandomCrop(resolution, pad))
    if "flip" in name:
        ts.append(RandomHorizontalFlip())
    return Compose(ts)
