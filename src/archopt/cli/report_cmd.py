"""``archopt report DIR``: rebuild report.md and its plots from an ``archopt run`` folder."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from archopt.cli.common import JsonOpt, handle_errors, print_json
from archopt.cli.run_cmd import print_results
from archopt.pipeline.report import build_report
from archopt.runs import read_json
from archopt.runs.locking import lock_folder


def register(app: typer.Typer) -> None:
    @app.command("report")
    @handle_errors
    def report(folder: Annotated[Path, typer.Argument(help="An archopt run result folder.")],
               json_: JsonOpt = False) -> None:
        """Rebuild report.md and the plots of a finished `archopt run` folder."""
        with lock_folder(folder):  # not while a run writes there
            path = build_report(folder)
        summary = read_json(folder / "summary.json")
        if json_:
            print_json(summary)
        else:
            print_results(summary, folder)
            print(f"written: {path}")
