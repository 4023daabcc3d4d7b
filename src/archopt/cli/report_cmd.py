"""`archopt report` (not yet implemented)."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add the verb to the app (nothing yet)."""
