"""The autoencoders shipped with archopt: one per activation, trained on a CPU with the CPU preset.

``archopt latent search`` uses them when ``--autoencoder`` is not given. Each is a file
``<activation>.pt`` in this package's ``pretrained/`` folder, in the checkpoint format of
:mod:`archopt.latent.training` without the optimiser state and with float16 weights (the
repository keeps every file under 2 MB), upcast to float32 on load; ``pretrained.json`` holds
each file's SHA-256 and its validation figures (measured on the upcast model). Files are read with
``torch.load(weights_only=True)`` after the checksum is verified.

Reproduce one with ``archopt latent train --activation sigmoid --out DIR`` (the defaults), then
:func:`export_autoencoder` (``benchmarks/latent_ship.py`` does both and records the figures).
"""

from __future__ import annotations

import hashlib
from importlib import resources
from pathlib import Path
from typing import Any

import torch

from archopt.errors import CheckpointError
from archopt.latent.autoencoder import MultiScaleAutoencoder
from archopt.latent.training import load_autoencoder, read_checkpoint
from archopt.runs import atomic_torch_save, read_json

__all__ = ["PRETRAINED_DIR", "export_autoencoder", "load_pretrained", "pretrained_activations",
           "pretrained_info", "sha256"]

#: The package folder holding the shipped autoencoders.
PRETRAINED_DIR = Path(str(resources.files("archopt.latent") / "pretrained"))
_INDEX = "pretrained.json"


def sha256(path: str | Path) -> str:
    """Hex SHA-256 of a file."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _index() -> dict[str, Any]:
    f = PRETRAINED_DIR / _INDEX
    return read_json(f) if f.exists() else {}


def pretrained_activations() -> list[str]:
    """Activations with a shipped autoencoder."""
    return sorted(_index())


def pretrained_info(activation: str) -> dict[str, Any]:
    """The index entry of a shipped autoencoder (``file``, ``sha256``, ``steps``, figures).

    Raises: CheckpointError when none is shipped for ``activation``.
    """
    index = _index()
    if activation not in index:
        raise CheckpointError(
            f"no autoencoder is shipped for activation {activation!r} (shipped: "
            f"{', '.join(sorted(index)) or 'none'}); train one with `archopt latent train "
            f"--activation {activation} --out DIR` and pass --autoencoder DIR")
    return index[activation]


def load_pretrained(activation: str = "sigmoid", device: torch.device | str | None = "cpu"
                    ) -> tuple[MultiScaleAutoencoder, dict[str, Any]]:
    """Load the shipped autoencoder of ``activation`` (float32, eval mode).

    Returns: ``(model, info)`` as :func:`archopt.latent.training.load_autoencoder`, ``info``
    with the index entry under ``"pretrained"``.

    Raises: CheckpointError when none is shipped, or the file's checksum does not match.
    """
    entry = pretrained_info(activation)
    path = PRETRAINED_DIR / entry["file"]
    if not path.exists():
        raise CheckpointError(f"the shipped autoencoder {path} is missing from this install")
    digest = sha256(path)
    if digest != entry["sha256"]:
        raise CheckpointError(f"the shipped autoencoder {path} is damaged (SHA-256 {digest}, "
                              f"expected {entry['sha256']}); reinstall archopt")
    model, info = load_autoencoder(path, device)
    return model, {**info, "pretrained": entry}


def export_autoencoder(src: str | Path, dst: str | Path, *, half: bool = True) -> Path:
    """Write a slim copy of a trained autoencoder: no optimiser state, float16 weights when
    ``half`` (loaded back as float32 by :func:`load_autoencoder`).

    Raises: CheckpointError for an unreadable ``src``.
    """
    ck = read_checkpoint(Path(src))
    state = {k: (v.half() if half and v.is_floating_point() else v).contiguous()
             for k, v in ck["model"].items()}
    slim = {**{k: v for k, v in ck.items() if k != "optimizer"}, "model": state,
            "optimizer": None}
    return atomic_torch_save(slim, dst)
