"""Import DeepMAD / TinyNAS structure files.

TinyNAS stores a searched structure as a Python literal: ``{'space_arch': 'CnnNet',
'best_structures': [[{'class': 'ConvKXBNRELU', 'in': 3, 'out': 32, 's': 2, 'k': 3},
{'class': 'SuperResK1KXK1', 'in': 32, 'out': 96, 's': 2, 'k': 5, 'L': 1, 'btn': 40}, ...]]}``,
or a bare list of such block dicts (its ``structure_info``). The file is parsed with
``ast.literal_eval`` -- never ``eval`` -- so it cannot run code.

Blocks understood: ``ConvKXBNRELU`` (the stem; a trailing 1x1 one is the mbv2 final conv),
``SuperResK1KXK1`` (-> ``resnet``), ``SuperResK1DWSEK1`` / ``SuperResK1DWK1`` (-> ``mbv2`` with /
without squeeze-excite).

Source: TinyNAS (alibaba/lightweight-neural-architecture-search), DeepMAD (CVPR 2023).
"""

from __future__ import annotations

import ast
from typing import Any

from archopt.errors import InvalidSpec
from archopt.spaces.base import ArchSpec

__all__ = ["looks_like_tinynas", "parse_tinynas"]

_RESNET = {"SuperResK1KXK1"}
_MBV2 = {"SuperResK1DWSEK1": True, "SuperResK1DWK1": False}


def looks_like_tinynas(text: str) -> bool:
    """True when ``text`` looks like a TinyNAS structure (not JSON)."""
    return "'class'" in text or "best_structures" in text or "space_arch" in text


def _blocks(obj: Any) -> list[dict[str, Any]]:
    if isinstance(obj, dict):
        if "best_structures" in obj:
            obj = obj["best_structures"]
        elif "structure_info" in obj:
            obj = obj["structure_info"]
        else:
            raise InvalidSpec("TinyNAS structure: expected a 'best_structures' or "
                              "'structure_info' entry")
    if isinstance(obj, list) and obj and isinstance(obj[0], list):
        obj = obj[0]  # best_structures holds a list of structures; take the best
    if not (isinstance(obj, list) and obj and all(isinstance(b, dict) for b in obj)):
        raise InvalidSpec("TinyNAS structure: expected a list of block dicts")
    return obj


def _get(block: dict[str, Any], key: str, i: int) -> int:
    if key not in block:
        raise InvalidSpec(f"TinyNAS block {i} ({block.get('class')}): missing {key!r}")
    value = block[key]
    if not isinstance(value, int) or isinstance(value, bool):
        raise InvalidSpec(f"TinyNAS block {i}: {key!r} must be an integer, got {value!r}")
    return value


def parse_tinynas(text: str, *, num_classes: int = 0, resolution: int | None = 224,
                  name: str | None = None) -> ArchSpec:
    """Parse a TinyNAS structure text into a ``resnet`` or ``mbv2`` spec.

    Args:
        text: the file's content (Python literal).
        num_classes: classifier outputs (default 0 = headless: TinyNAS structure files
            describe backbones, and the toolbox's budgets count no classifier).
        resolution: the input side the structure was designed for.
        name: a name for the spec.

    Returns: a :class:`~archopt.spaces.resnet.ResNetSpec` or
        :class:`~archopt.spaces.mbv2.MBV2Spec`.
    Raises: InvalidSpec on anything that is not a literal, an unknown block class, or channels
        that do not chain.
    """
    from archopt.spaces.mbv2 import MBV2Spec
    from archopt.spaces.resnet import ResNetSpec

    try:
        obj = ast.literal_eval(text.strip())
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError) as err:
        raise InvalidSpec(f"not a TinyNAS structure (a Python literal is expected): "
                          f"{type(err).__name__}: {err}") from None
    blocks = _blocks(obj)
    first = blocks[0]
    if first.get("class") != "ConvKXBNRELU":
        raise InvalidSpec("TinyNAS structure must start with a ConvKXBNRELU stem, got "
                          f"{first.get('class')!r}")
    stem = dict(out=_get(first, "out", 0), k=_get(first, "k", 0), stride=first.get("s", 1))
    in_channels = _get(first, "in", 0)
    c = stem["out"]
    supers: list[dict[str, Any]] = []
    kinds: set[str] = set()
    head_conv = None
    for i, b in enumerate(blocks[1:], start=1):
        cls = b.get("class")
        if _get(b, "in", i) != c:
            raise InvalidSpec(f"TinyNAS block {i}: 'in' is {b['in']}, but the previous block "
                              f"outputs {c} channels")
        if cls == "ConvKXBNRELU" and i == len(blocks) - 1 and b.get("k", 1) == 1:
            head_conv = _get(b, "out", i)
            continue
        if cls in _RESNET:
            kinds.add("resnet")
        elif cls in _MBV2:
            kinds.add("mbv2-se" if _MBV2[cls] else "mbv2")
        else:
            raise InvalidSpec(f"TinyNAS block {i}: unsupported class {cls!r} (supported: "
                              f"ConvKXBNRELU, {', '.join(sorted(_RESNET | set(_MBV2)))})")
        supers.append(dict(out=_get(b, "out", i), btn=_get(b, "btn", i), k=_get(b, "k", i),
                           L=_get(b, "L", i), stride=b.get("s", 1)))
        c = supers[-1]["out"]
    if not supers:
        raise InvalidSpec("TinyNAS structure has no superblock")
    if len(kinds) != 1:
        raise InvalidSpec(f"TinyNAS structure mixes block families {sorted(kinds)}")
    kind = kinds.pop()
    common = dict(name=name, in_channels=in_channels, num_classes=num_classes,
                  resolution=resolution, stem=stem, blocks=supers)
    if kind == "resnet":
        if head_conv is not None:
            raise InvalidSpec("a trailing 1x1 ConvKXBNRELU is only supported in the mbv2 space")
        return ResNetSpec(**common)
    return MBV2Spec(**common, head_conv=head_conv, se=(kind == "mbv2-se"))
