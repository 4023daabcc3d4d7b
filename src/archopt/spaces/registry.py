"""The spaces registry and ``load_spec``: one entry point from a name, a file or a dict."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from archopt.errors import CheckpointError, InvalidSpec, UnknownName
from archopt.spaces.base import ArchSpec

__all__ = ["SPACES", "load_spec", "register_space", "spec_from_checkpoint", "spec_from_dict"]

SPACES: dict[str, type[ArchSpec]] = {}


def register_space(cls: type[ArchSpec]) -> type[ArchSpec]:
    """Register a spec class under its ``space`` tag (usable as a decorator)."""
    if not cls.space:
        raise ValueError(f"{cls.__name__} has no 'space' tag")
    SPACES[cls.space] = cls
    return cls


def spec_from_dict(data: dict[str, Any]) -> ArchSpec:
    """Validate a dict with a ``space`` tag into the matching spec.

    Raises: InvalidSpec (missing tag, bad fields), UnknownName (unregistered space).
    """
    if not isinstance(data, dict):
        raise InvalidSpec(f"a spec must be a JSON object, got {type(data).__name__}")
    tag = data.get("space")
    if tag is None:
        raise InvalidSpec(f"spec has no 'space' field (one of: {', '.join(sorted(SPACES))})")
    if tag not in SPACES:
        raise UnknownName(f"unknown space {tag!r} (known: {', '.join(sorted(SPACES))})")
    return SPACES[tag].from_dict(data)


def spec_from_checkpoint(path: str | os.PathLike[str]) -> ArchSpec:
    """The architecture spec stored in an archopt checkpoint (:mod:`archopt.runs.checkpoint`).

    Raises: CheckpointError (unreadable file, or a checkpoint of a user's module without a
        spec); InvalidSpec (a stored spec that no longer validates).
    """
    from archopt.runs.checkpoint import load_checkpoint

    ckpt = load_checkpoint(path)
    if ckpt.get("spec") is None:
        raise CheckpointError(f"{path} holds no architecture spec (it was saved from a user's "
                              "own nn.Module); load it with load_model(path, module=...)")
    return spec_from_dict(ckpt["spec"])


def _from_file(path: Path) -> ArchSpec:
    from archopt.spaces.tinynas import looks_like_tinynas, parse_tinynas

    if path.is_dir():
        if (path / "arch.json").exists():
            return _from_file(path / "arch.json")
        raise InvalidSpec(f"{path} is a folder without arch.json")
    if path.suffix in (".pt", ".pth"):
        return spec_from_checkpoint(path)
    from archopt.runtime.configfile import read_bounded_text

    text = read_bounded_text(path, what="spec file", error=InvalidSpec)
    stripped = text.lstrip()
    if stripped.startswith("{") and not looks_like_tinynas(stripped):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise InvalidSpec(f"{path}: invalid JSON at line {err.lineno} column {err.colno}: "
                              f"{err.msg}") from None
        except RecursionError:
            raise InvalidSpec(f"{path}: JSON nested too deeply to be a spec") from None
        try:
            return spec_from_dict(data)
        except InvalidSpec as err:
            raise InvalidSpec(f"{path}: {err}") from None
    try:
        return parse_tinynas(text, name=path.stem)
    except InvalidSpec as err:
        raise InvalidSpec(f"{path}: {err}") from None
    except (RecursionError, MemoryError):
        raise InvalidSpec(f"{path}: nested too deeply to be a structure file") from None


def load_spec(ref: str | os.PathLike[str] | dict[str, Any] | ArchSpec,
              **overrides: Any) -> ArchSpec:
    """Resolve a spec from a catalog name, a file (JSON spec, TinyNAS structure, a result folder
    with ``arch.json``, an archopt checkpoint), a dict, or a spec; then apply ``overrides``.

    Raises: InvalidSpec, UnknownName (a name that is neither a file nor in the catalog).
    """
    from archopt.spaces.catalog import CATALOG

    if isinstance(ref, ArchSpec):
        spec = ref
    elif isinstance(ref, dict):
        spec = spec_from_dict(ref)
    else:
        path = Path(ref)
        if path.exists():
            spec = _from_file(path)
        elif str(ref).lower() in CATALOG:
            spec = CATALOG[str(ref).lower()]()
        else:
            raise UnknownName(f"no spec file or catalog entry named {str(ref)!r} (catalog: "
                              f"{', '.join(sorted(CATALOG))}; or a path to a JSON spec)")
    overrides = {k: v for k, v in overrides.items() if v is not None}
    return spec.replace(**overrides) if overrides else spec
