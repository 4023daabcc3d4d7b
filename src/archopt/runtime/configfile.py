"""Reading the files a user hands to archopt as options (run configs, spec files): bounded.

A config file is small. Two things could make reading one take the machine down rather than
fail: a huge file (or a device such as ``/dev/zero``), and YAML aliases, which let a few hundred
bytes expand exponentially (``a: &a [x, x]``, ``b: &b [*a, *a]``, ... the "billion laughs").
Here a file over :data:`MAX_CONFIG_BYTES` is refused before it is read, and a YAML alias is
refused at the first ``*name`` (merge keys ``<<: *name`` are aliases too): either is one line,
raised as the caller's error class (exit 2 at the CLI). Anchors without aliases are harmless and
accepted; what archopt writes (``run.yaml``) never uses either (:func:`dump_yaml`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

from archopt.errors import ArchoptError

__all__ = ["MAX_CONFIG_BYTES", "dump_yaml", "read_bounded_text", "read_yaml"]

#: The largest config or spec file read (1 MiB; archopt's own are a few kB).
MAX_CONFIG_BYTES = 1 << 20


def read_bounded_text(path: str | os.PathLike[str], *, what: str = "config file",
                      limit: int = MAX_CONFIG_BYTES,
                      error: type[ArchoptError] = ArchoptError) -> str:
    """The UTF-8 text of ``path``, refusing more than ``limit`` bytes (checked before and while
    reading: a file that grows, or a device, is cut off at ``limit + 1``).

    Raises: ``error`` (one line naming the file): missing, unreadable, too large, not UTF-8.
    """
    p = Path(path)
    too_big = (f"{what} {p} is larger than {limit:,} bytes (a {what} is a few kB); "
               "refused before reading")
    try:
        if p.is_file() and p.stat().st_size > limit:
            raise error(too_big)
        with open(p, "rb") as fh:
            raw = fh.read(limit + 1)
    except FileNotFoundError:
        raise error(f"{what} {p} not found") from None
    except IsADirectoryError:
        raise error(f"{what} {p} is a folder, not a file") from None
    except OSError as err:
        raise error(f"cannot read {what} {p}: {err.strerror or err}") from None
    if len(raw) > limit:
        raise error(too_big)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise error(f"{what} {p} is not UTF-8 text ({err.reason} at byte {err.start})") from None


class _NoAliasLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses aliases (``*name``) instead of expanding them."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise yaml.composer.ComposerError(
                None, None, f"YAML aliases (*{event.anchor}) are not accepted; write the "
                "values out", event.start_mark)
        return super().compose_node(parent, index)


def read_yaml(path: str | os.PathLike[str], *, what: str = "config file",
              limit: int = MAX_CONFIG_BYTES, error: type[ArchoptError] = ArchoptError) -> Any:
    """Parse a YAML file safely: at most ``limit`` bytes, no aliases, no Python tags
    (``yaml.SafeLoader``), bounded nesting.

    Raises: ``error`` (one line naming the file and the place).
    """
    text = read_bounded_text(path, what=what, limit=limit, error=error)
    try:
        return yaml.load(text, Loader=_NoAliasLoader)  # a SafeLoader subclass
    except yaml.YAMLError as err:
        raise error(f"cannot read {what} {path}: {_describe(err)}") from None
    except RecursionError:
        raise error(f"cannot read {what} {path}: nested too deeply") from None


def _describe(err: yaml.YAMLError) -> str:
    """``problem (context) at line L, column C`` of a YAML error, on one line."""
    if not isinstance(err, yaml.MarkedYAMLError) or err.problem is None:
        return " ".join(str(err).split())
    text = err.problem + (f" ({err.context})" if err.context else "")
    mark = err.problem_mark
    if mark is not None:
        text += f" at line {mark.line + 1}, column {mark.column + 1}"
    return " ".join(text.split())


class _NoAliasDumper(yaml.SafeDumper):
    def ignore_aliases(self, data: Any) -> bool:
        return True


def dump_yaml(obj: Any) -> str:
    """``yaml.safe_dump`` that writes a shared value out in full each time (no anchors or
    aliases), so that :func:`read_yaml` reads back everything archopt writes."""
    return yaml.dump(obj, Dumper=_NoAliasDumper, sort_keys=False)
