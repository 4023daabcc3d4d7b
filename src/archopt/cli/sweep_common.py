"""Options and output shared by the sweep verbs (``structure sweep``, ``design sweep``,
``refine --seeds``): how the trials run (:mod:`archopt.runs.sweeps`) and how failures are
reported."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from archopt.cli.common import console, err_console, print_json

__all__ = ["AddressOpt", "InProcessOpt", "SeedsOpt", "SweepArgs", "WorkersOpt", "backend_of",
           "echo", "finish_sweep", "print_sweep_json", "sweep_options"]

WorkersOpt = Annotated[int | None, typer.Option(
    "--workers", min=1, help="Trials at once on a local Ray started for the sweep [default: the "
                             "cores available]. Needs the distributed extra.")]
AddressOpt = Annotated[str | None, typer.Option(
    "--address", help="Run the trials on an existing Ray cluster (auto, HOST:PORT or "
                      "ray://HOST:PORT); archopt must be installed on its nodes.")]
InProcessOpt = Annotated[bool, typer.Option(
    "--in-process", help="Run the trials one after another in this process, even when Ray "
                         "is installed.")]
SeedsOpt = Annotated[str | None, typer.Option(
    "--seeds", help="Comma-separated seeds: one trial per seed (sub-folders *_seed<k>).")]


@dataclass(frozen=True)
class SweepArgs:
    """How a sweep verb's trials run: its ``--seeds``, ``--workers``, ``--address``,
    ``--in-process`` (the block :func:`sweep_options`)."""

    seeds: str | None
    workers: int | None
    address: str | None
    in_process: bool

    @property
    def backend(self) -> str:
        return backend_of(self.in_process, self.address)


def sweep_options(seeds: SeedsOpt = None, workers: WorkersOpt = None,
                  address: AddressOpt = None, in_process: InProcessOpt = False) -> SweepArgs:
    """The sweep verbs' option block (:func:`archopt.cli.common.with_options`)."""
    return SweepArgs(seeds, workers, address, in_process)


def backend_of(in_process: bool, address: str | None) -> str:
    """``local`` for ``--in-process`` (an error with ``--address``), else ``auto``."""
    if in_process and address:
        from archopt.errors import ArchoptError

        raise ArchoptError("--in-process and --address exclude each other")
    return "local" if in_process else "auto"


def echo(line: str) -> None:
    """A sweep's status line (stderr, so that --json's stdout stays JSON)."""
    err_console.print(line, highlight=False, soft_wrap=True, markup=False)


def finish_sweep(rows: list[dict[str, Any]], runners: list[dict[str, Any]], where: str, *,
                 quiet: bool = False) -> None:
    """After the table: how the trials ran (``runners``: :meth:`SweepOutcome.as_dict` of each
    phase), one line per failed trial; exit 1 when any failed (the others' results are kept;
    rerunning the same command retries the failed ones). ``quiet`` (--json): only the errors,
    on stderr."""
    trials = [t for r in runners for t in r["trials"]]
    ran, wall = sum(t["ran"] for t in trials), sum(r["wall_seconds"] for r in runners)
    r0 = runners[0]
    plural = lambda n: "s" if n != 1 else ""  # noqa: E731
    if not quiet:
        console.print(f"{len(trials)} trials ({ran} run now, {len(trials) - ran} reused) on "
                      f"{r0['backend']} ({r0['workers']} worker{plural(r0['workers'])}, "
                      f"{r0['threads_per_trial']} thread{plural(r0['threads_per_trial'])} "
                      f"each) in {wall:.1f} s; {where}", highlight=False)
    for r in rows:
        if r.get("error"):
            err_console.print(f"[bold red]error:[/] trial {escape(str(r.get('folder')))}: "
                              f"{escape(str(r['error']))}",
                              highlight=False, soft_wrap=True)
    failed = [r for r in rows if r.get("state") in ("failed", "pending", "running")]
    if failed:
        err_console.print(f"{len(failed)} of {len(rows)} trials failed; rerun the same command "
                          "to retry them (finished trials are kept)", highlight=False)
        raise typer.Exit(1)


def print_sweep_json(table: dict[str, Any], out: Path, rows: list[dict[str, Any]],
                     runners: list[dict[str, Any]]) -> None:
    """``--json``: the sweep's ``table`` and its folder ``out`` on stdout, then what
    :func:`finish_sweep` says quietly (the failed trials, on stderr; exit 1 when any failed)."""
    print_json({**table, "out": str(out)})
    finish_sweep(rows, runners, "", quiet=True)
