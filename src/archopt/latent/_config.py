"""The base of the latent package's settings models: frozen, no unknown fields, and a user's
mistake raised as :class:`~archopt.errors.InvalidSpec` naming every offending field."""

from __future__ import annotations

from typing import ClassVar

from pydantic import BaseModel, ConfigDict, ValidationError

from archopt.errors import InvalidSpec
from archopt.spaces.base import format_validation_error


class Settings(BaseModel):
    """Frozen pydantic settings; validation errors become ``InvalidSpec``."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    what: ClassVar[str] = "settings"

    def __init__(self, **data: object) -> None:
        try:
            super().__init__(**data)
        except ValidationError as err:
            raise InvalidSpec(f"invalid {type(self).what}: {format_validation_error(err)}"
                              ) from None
