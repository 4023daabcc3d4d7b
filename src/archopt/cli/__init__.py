"""The ``archopt`` command line: one module per verb, each with a ``register(app)`` function.

The CLI holds no logic of its own: it parses, calls the library, prints (DESIGN.md).
"""

from __future__ import annotations

import importlib

import typer

from archopt.cli.common import OneLineErrors

__all__ = ["app", "main"]

app = typer.Typer(
    name="archopt",
    cls=OneLineErrors,
    help="Design and optimise neural networks cheaply and on principle.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

# Verb modules, in the order `archopt --help` lists them. Each defines register(app).
VERBS = ["run", "design", "train", "structure", "refine", "latent", "score", "datasets", "report",
         "export"]

for _name in VERBS:
    _mod = importlib.import_module(f"archopt.cli.{_name}_cmd")
    _mod.register(app)


def main() -> None:
    """Console-script entry point."""
    app()
