"""``archopt datasets``: what is registered and present; ``archopt datasets verify``: checksums."""

from __future__ import annotations

import typer

from archopt.cli.common import DataDirOpt, JsonOpt, fail, handle_errors, print_json, print_table
from archopt.data import dataset_status, default_data_dir

datasets_app = typer.Typer(help="List the datasets and check their files.",
                           invoke_without_command=True, no_args_is_help=False)


def _show(rows: list[dict], json_: bool, title: str) -> None:
    if json_:
        print_json(rows)
    else:
        print_table(title, ["dataset", "status", "folder", "detail"],
                    [(r["name"], r["status"], r["folder"] or "-", r["detail"]) for r in rows])


@datasets_app.callback()
@handle_errors
def datasets(ctx: typer.Context, data_dir: DataDirOpt = None, json_: JsonOpt = False) -> None:
    """Registered datasets and whether their folders are present (no checksum work)."""
    if ctx.invoked_subcommand is not None:
        return
    base = data_dir or default_data_dir()
    _show(dataset_status(base), json_, f"datasets in {base}")


@datasets_app.command("verify")
@handle_errors
def verify(data_dir: DataDirOpt = None, json_: JsonOpt = False) -> None:
    """Check every dataset folder present in DATA_DIR against the official checksums.

    Lists the absent ones; exits 2 naming the file when a present one is corrupt or incomplete.
    """
    base = data_dir or default_data_dir()
    if not base.is_dir():
        raise fail(f"data dir {base} does not exist")
    rows = dataset_status(base, verify=True)
    _show(rows, json_, f"datasets in {base} (verified)")
    bad = [r for r in rows if r["status"] in ("corrupt", "incomplete")]
    if bad:
        raise fail("; ".join(f"{r['name']}: {r['detail']}" for r in bad))


def register(app: typer.Typer) -> None:
    app.add_typer(datasets_app, name="datasets")
