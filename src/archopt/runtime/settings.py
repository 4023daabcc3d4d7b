"""Validated option models: pydantic with no unknown fields, frozen by default, and a user's
mistake raised as one readable :class:`~archopt.errors.ArchoptError` line naming every
offending field.

    class RefineConfig(Settings):
        what: ClassVar[str] = "refine config"
        error: ClassVar[type[ArchoptError]] = InvalidRefineConfig
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, ValidationError

from archopt.errors import ArchoptError, InvalidSpec

__all__ = ["Settings", "format_validation_error"]


def format_validation_error(err: ValidationError, *, default_loc: str = "config") -> str:
    """One readable line from a pydantic error: ``field.path: message (got value); ...``."""
    parts = []
    for e in err.errors():
        loc = ".".join(str(x) for x in e.get("loc", ())) or default_loc
        msg = e.get("msg", "invalid").removeprefix("Value error, ")
        shown = "input" in e and "got" not in msg and not isinstance(e["input"], dict)
        parts.append(f"{loc}: {msg}" + (f" (got {e['input']!r})" if shown else ""))
    return "; ".join(parts)


class Settings(BaseModel):
    """Frozen pydantic options; a validation error becomes ``error("invalid <what>: ...")``."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    what: ClassVar[str] = "settings"
    error: ClassVar[type[ArchoptError]] = InvalidSpec

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as err:
            cls = type(self)
            raise cls.error(f"invalid {cls.what}: {format_validation_error(err)}") from None
