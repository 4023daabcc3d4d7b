"""The ``archopt`` command line: one module per verb, each with a ``register(app)`` function.

The CLI holds no logic of its own: it parses, calls the library, prints (DESIGN.md).
"""

from __future__ import annotations

import importlib

import typer

from archopt.cli.common import OneLineErrors

__all__ = ["SHORT_HELP", "app", "main"]

#: What ``archopt --help`` lists, in this order: one line per verb (the verb's own ``--help``
#: tells the whole story).
SHORT_HELP = {
    "run": "The main job: design a CNN, train it and baselines, report.",
    "design": "Design a network within MACs / params budgets, untrained.",
    "train": "Train a spec (catalog name, JSON, result folder) on a dataset.",
    "structure": "Shrink a network while it trains (SNG / ASNG + penalty).",
    "refine": "Tune a trained classifier for macro-F1 and co. (HBDE).",
    "latent": "A compact MLP's weights and shape by latent search (SWAT-NN).",
    "score": "Cost and training-free scores of a spec.",
    "summary": "The built module's layer table.",
    "datasets": "List the datasets and check their files.",
    "report": "Rebuild report.md and the plots of a finished run.",
    "export": "Export a model archopt wrote to ONNX, checked against torch.",
}


class ArchoptGroup(OneLineErrors):
    verb_help = SHORT_HELP


app = typer.Typer(
    name="archopt",
    cls=ArchoptGroup,
    help="Design and optimise neural networks cheaply and on principle.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

# Verb modules (SHORT_HELP sets the order `archopt --help` lists them in). Each defines
# register(app).
VERBS = ["run", "design", "train", "structure", "refine", "latent", "score", "datasets", "report",
         "export"]

for _name in VERBS:
    _mod = importlib.import_module(f"archopt.cli.{_name}_cmd")
    _mod.register(app)


def main() -> None:
    """Console-script entry point."""
    app()
