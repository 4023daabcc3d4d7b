"""The autoencoders shipped with archopt: one per activation, trained on a CPU with the CPU preset.

``archopt latent search`` uses them when ``--autoencoder`` is not given. Each is a file
``<activation>.pt.xz`` in this package's ``pretrained/`` folder: the checkpoint format of
:mod:`archopt.latent.training` without the optimiser state, float16 weights, xz-compressed (the
repository keeps every file under 2 MB); it is upcast to float32 on load. ``pretrained.json``
holds each file's SHA-256, how it was trained, and its validation figures (measured on the
upcast model). A file is read only after its checksum matches, then with
``torch.load(weights_only=True)`` (no code runs).

Reproduce one with ``archopt latent train --activation sigmoid --out DIR`` (the defaults), then
:func:`export_autoencoder` (``benchmarks/latent_ship.py`` does both and records the figures).
"""

from __future__ import annotations

import hashlib
import io
import lzma
import pickle
from importlib import resources
from pathlib import Path
from typing import Any

import torch

from archopt.errors import CheckpointError
from archopt.latent.autoencoder import MultiScaleAutoencoder
from archopt.latent.training import autoencoder_from_checkpoint, read_checkpoint
from archopt.runs import atomic_write_bytes, read_json
from archopt.runtime.devices import resolve_device

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


def _index(folder: Path) -> dict[str, Any]:
    f = folder / _INDEX
    return read_json(f) if f.exists() else {}


def pretrained_activations(folder: Path | None = None) -> list[str]:
    """Activations with a shipped autoencoder."""
    return sorted(_index(folder or PRETRAINED_DIR))


def pretrained_info(activation: str, folder: Path | None = None) -> dict[str, Any]:
    """The index entry of a shipped autoencoder (``file``, ``sha256``, ``steps``, figures).

    Raises: CheckpointError when none is shipped for ``activation``.
    """
    index = _index(folder or PRETRAINED_DIR)
    if activation not in index:
        raise CheckpointError(
            f"no autoencoder is shipped for activation {activation!r} (shipped: "
            f"{', '.join(sorted(index)) or 'none'}); train one with `archopt latent train "
            f"--activation {activation} --out DIR` and pass --autoencoder DIR")
    return index[activation]


def load_pretrained(activation: str = "sigmoid", device: torch.device | str | None = "cpu", *,
                    folder: Path | None = None
                    ) -> tuple[MultiScaleAutoencoder, dict[str, Any]]:
    """Load the shipped autoencoder of ``activation`` (float32, eval mode).

    Args:
        folder: where the files and ``pretrained.json`` are (default: the package's).

    Returns: ``(model, info)`` as :func:`archopt.latent.training.load_autoencoder`, ``info``
    with the index entry under ``"pretrained"``.

    Raises: CheckpointError when none is shipped, the file is missing, its checksum does not
    match, or it is not a readable autoencoder checkpoint.
    """
    folder = folder or PRETRAINED_DIR
    entry = pretrained_info(activation, folder)
    path = folder / entry["file"]
    if not path.is_file():
        raise CheckpointError(f"the shipped autoencoder {path} is missing from this install")
    digest = sha256(path)
    if digest != entry["sha256"]:
        raise CheckpointError(f"the shipped autoencoder {path} is damaged (SHA-256 {digest}, "
                              f"expected {entry['sha256']}); reinstall archopt")
    dev = resolve_device(device)
    try:
        raw = lzma.decompress(path.read_bytes())
        ck = torch.load(io.BytesIO(raw), map_location=dev, weights_only=True)
    except (lzma.LZMAError, pickle.UnpicklingError, RuntimeError, EOFError) as err:
        raise CheckpointError(f"the shipped autoencoder {path} is unreadable: "
                              f"{str(err).splitlines()[0]}") from None
    model, info = autoencoder_from_checkpoint(ck, str(path), dev)
    return model, {**info, "pretrained": entry}


def export_autoencoder(src: str | Path, dst: str | Path, *, half: bool = True) -> Path:
    """Write the shipped form of a trained autoencoder to ``dst`` (``.pt.xz``): no optimiser
    state, float16 weights when ``half``, xz-compressed (loaded back as float32 by
    :func:`load_pretrained`).

    Raises: CheckpointError for an unreadable ``src``.
    """
    ck = read_checkpoint(Path(src))
    state = {k: (v.half() if half and v.is_floating_point() else v).contiguous()
             for k, v in ck["model"].items()}
    slim = {**{k: v for k, v in ck.items() if k != "optimizer"}, "model": state,
            "optimizer": None}
    buf = io.BytesIO()
    torch.save(slim, buf)
    return atomic_write_bytes(dst, lzma.compress(buf.getvalue(), preset=9 | lzma.PRESET_EXTREME))
