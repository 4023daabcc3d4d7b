"""Seeds and devices: one ``--seed`` reaches Python, numpy and torch; ``--device auto`` picks CUDA.

DESIGN.md: "the same seed on the same device gives the same result".
"""

from __future__ import annotations

import contextlib
import os
import random
from collections.abc import Iterator

import numpy as np
import torch

from archopt.errors import ArchoptError

__all__ = ["flush_denormal", "resolve_device", "seed_everything", "torch_generator"]


def seed_everything(seed: int) -> None:
    """Seed Python's ``random``, numpy's global RNG and torch (CPU and every CUDA device)."""
    seed = int(seed)
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)
    os.environ.setdefault("PYTHONHASHSEED", str(seed))


def torch_generator(seed: int, device: str | torch.device = "cpu") -> torch.Generator:
    """A private torch generator (does not disturb the global stream)."""
    g = torch.Generator(device=device)
    g.manual_seed(int(seed))
    return g


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """``"auto"``/None -> ``cuda`` when available, else ``cpu``; otherwise the named device.

    Raises: ArchoptError when CUDA is asked for but not available.
    """
    if isinstance(device, torch.device):
        return device
    name = (device or "auto").lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(name)
    except RuntimeError as err:
        raise ArchoptError(f"unknown device {device!r} (use auto, cpu, cuda or cuda:N)") from err
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ArchoptError(f"device {device!r} asked for, but CUDA is not available here; "
                           "use --device cpu")
    return dev


@contextlib.contextmanager
def flush_denormal(enabled: bool = True) -> Iterator[bool]:
    """Context: CPU denormal floats flushed to zero (``torch.set_flush_denormal``), then restored
    to torch's default (off). Denormals (e.g. ``sigmoid(-100)`` products) make x86 float math
    10-100x slower. Yields whether flushing is active (False where the CPU lacks support)."""
    if not enabled:
        yield False
        return
    active = torch.set_flush_denormal(True)
    try:
        yield active
    finally:
        torch.set_flush_denormal(False)
