"""What every verb shares: error handling, ``--json`` output, tables, common options.

The CLI is thin: a verb parses its options, calls the library, and prints. A user error
(:class:`~archopt.errors.ArchoptError`) becomes one line on stderr and exit status 2.
"""

from __future__ import annotations

import functools
import inspect
import json
import sys
import typing
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, ClassVar, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from archopt.errors import ArchoptError
from archopt.runs import to_jsonable
from archopt.runtime.threads import ThreadChoice

__all__ = [
    "DataDirOpt",
    "DataOpt",
    "DeviceOpt",
    "JsonOpt",
    "OneLineErrors",
    "OutOpt",
    "RuntimeArgs",
    "SeedOpt",
    "SubsetSizes",
    "TestSizeOpt",
    "TestSubsetAlias",
    "ThreadsOpt",
    "TrainSizeOpt",
    "TrainSubsetAlias",
    "alias",
    "comma_list",
    "console",
    "err_console",
    "fail",
    "handle_errors",
    "latency_items",
    "polish_help",
    "print_json",
    "print_table",
    "runtime_options",
    "size_options",
    "use_threads",
    "with_options",
]

console = Console()
err_console = Console(stderr=True)

F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")

JsonOpt = Annotated[bool, typer.Option("--json", help="Print the summary as JSON on stdout.")]
SeedOpt = Annotated[int, typer.Option("--seed", help="Seed for torch, numpy and random.")]
DeviceOpt = Annotated[str, typer.Option("--device", help="auto (CUDA when available), cpu, cuda.")]
OutOpt = Annotated[Path, typer.Option("--out", help="Result folder (created if absent).")]
ThreadsOpt = Annotated[int | None, typer.Option(
    "--threads", min=1,
    help="CPU threads for torch [default: auto = the cores this process may use minus the "
         "machine's load, at least 1; $ARCHOPT_THREADS or $OMP_NUM_THREADS override it].")]
DataOpt = Annotated[str, typer.Option("--data", help="Dataset name (see `archopt datasets`).")]
DataDirOpt = Annotated[
    Path | None,
    typer.Option("--data-dir", help="Folder holding one sub-folder per dataset "
                 "(default: $ARCHOPT_DATA_DIR)."),
]

TrainSizeOpt = Annotated[int | None, typer.Option(
    "--train-size", min=1, help="Train on a seeded random subset of this many examples.")]
TestSizeOpt = Annotated[int | None, typer.Option(
    "--test-size", min=1, help="Test on a seeded random subset of this many examples.")]
# The names these options had in some verbs before: still accepted, not shown.
TrainSubsetAlias = Annotated[int | None, typer.Option("--train-subset", min=1, hidden=True)]
TestSubsetAlias = Annotated[int | None, typer.Option("--test-subset", min=1, hidden=True)]


def alias(value: Any, old: Any, name: str, old_name: str) -> Any:
    """The value of an option given under its name or its old, hidden one (not both)."""
    if old is None:
        return value
    if value is not None and value != old:
        raise typer.BadParameter(f"{name} and {old_name} (its old name) disagree; give one")
    return old


def with_options(**blocks: Callable[..., Any]) -> Callable[[F], F]:
    """Option blocks shared by several verbs, declared once.

    Each keyword names a parameter of the command; its value is a *block*: a function whose own
    parameters are typer options (``name: SomeOpt = default``). In the command's signature, as
    typer reads it, the block's options stand in place of that parameter; when the command
    runs, the block is called with their values and the command receives what it returns
    (a record of the raw values: parsing and errors stay in the command). A block may itself
    be decorated with ``with_options`` (``loop_options`` holds :func:`size_options`).
    """

    def decorate(fn: F) -> F:
        hints = typing.get_type_hints(fn, include_extras=True)
        params: list[inspect.Parameter] = []
        owned: dict[str, list[str]] = {}
        for p in inspect.signature(fn).parameters.values():
            block = blocks.get(p.name)
            if block is None:
                params.append(p.replace(annotation=hints.get(p.name, p.annotation)))
                continue
            block_hints = typing.get_type_hints(block, include_extras=True)
            block_params = list(inspect.signature(block).parameters.values())
            owned[p.name] = [b.name for b in block_params]
            params += [b.replace(kind=p.kind, annotation=block_hints[b.name])
                       for b in block_params]
        if set(owned) != set(blocks):
            raise TypeError(f"{fn.__name__} has no parameter {sorted(set(blocks) - set(owned))}")

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            for name, names in owned.items():
                kwargs[name] = blocks[name](**{n: kwargs.pop(n) for n in names})
            return fn(*args, **kwargs)

        wrapper.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
        wrapper.__annotations__ = {p.name: p.annotation for p in params}
        del wrapper.__wrapped__  # typer reads the signature above, not fn's
        return wrapper  # type: ignore[return-value]

    return decorate


@dataclass(frozen=True)
class RuntimeArgs:
    """Where a verb computes and how it prints: its ``--seed``, ``--device``, ``--threads``,
    ``--json`` (the block :func:`runtime_options`)."""

    seed: int
    device: str
    threads: int | None
    json: bool


def runtime_options(seed: SeedOpt = 0, device: DeviceOpt = "auto", threads: ThreadsOpt = None,
                    json_: JsonOpt = False) -> RuntimeArgs:
    """The option block (:func:`with_options`) that ends most verbs' options: ``--seed``,
    ``--device``, ``--threads``, ``--json``."""
    return RuntimeArgs(seed, device, threads, json_)


@dataclass(frozen=True)
class SubsetSizes:
    """The ``--train-size`` / ``--test-size`` of a verb (None: the whole split), each given under
    its name or its old, hidden one (the block :func:`size_options`)."""

    train: int | None
    test: int | None


def size_options(train_size: TrainSizeOpt = None, test_size: TestSizeOpt = None,
                 train_subset: TrainSubsetAlias = None,
                 test_subset: TestSubsetAlias = None) -> SubsetSizes:
    """The option block (:func:`with_options`) of the train / test subset sizes.

    Raises: typer.BadParameter when a size is given under both its names, with two values.
    """
    return SubsetSizes(alias(train_size, train_subset, "--train-size", "--train-subset"),
                       alias(test_size, test_subset, "--test-size", "--test-subset"))


def comma_list(text: str | None, parse: Callable[[str], T],
               error: Callable[[str], Exception]) -> tuple[T, ...] | None:
    """``"3, 5,"`` -> ``(parse("3"), parse("5"))``: empty items are skipped; None stays None.

    Raises: ``error(text)`` when ``parse`` raises ValueError for an item.
    """
    if text is None:
        return None
    try:
        return tuple(parse(t) for t in text.split(",") if t.strip())
    except ValueError:
        raise error(text) from None


def fail(message: str, code: int = 2) -> typer.Exit:
    """Print ``error: message`` on stderr and return the Exit to raise."""
    from rich.markup import escape

    # escaped: a message's own brackets (pip install 'archopt[onnx]') are text, not markup
    err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False,
                      soft_wrap=True)
    return typer.Exit(code)


def use_threads(threads: int | None) -> ThreadChoice:
    """Apply the thread policy (:mod:`archopt.runtime.threads`) for the rest of the command; returns
    the choice (``config.json``'s ``environment.torch_threads`` records the count)."""
    from archopt.runtime.threads import apply_threads

    return apply_threads(threads)


def handle_errors(fn: F) -> F:
    """Turn ArchoptError (and an OSError for a full disk or an unwritable folder) into a
    one-line message + exit 2; Ctrl-C into exit 130."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except ArchoptError as err:
            msg = " ".join(str(err).split("\n"))
            raise fail(msg, getattr(err, "exit_code", 2)) from None
        except OSError as err:
            # a writer outside archopt.runs (a library's own file) on a full disk or an
            # unwritable folder: one line too; any other OSError keeps its traceback
            from archopt.runs import WRITE_ERRNOS, write_error

            if err.errno not in WRITE_ERRNOS:
                raise
            raise fail(str(write_error(err.filename or "a result file", err))) from None
        except KeyboardInterrupt:
            raise fail("interrupted; what was written so far is kept (rerun with --resume "
                       "where the command has it)", 130) from None

    return wrapper  # type: ignore[return-value]


def _help_text(text: str | None) -> str | None:
    """Help as typed, for rich's panels: brackets escaped (``[default: 10]`` is text, not a
    markup tag that rich would drop, leaving a stray " ."), and the lines of each paragraph
    joined (rich keeps a docstring's line breaks; indented or bulleted lines are kept)."""
    from rich.markup import escape

    if not text:
        return text
    paras = []
    for para in inspect.cleandoc(text).split("\n\n"):
        lines = para.splitlines()
        if not any(line[:1] in (" ", "-", "*", "\b") for line in lines[1:]):
            para = " ".join(line.strip() for line in lines)
        paras.append(para)
    return escape("\n\n".join(paras))


def polish_help(group: Any, verb_help: dict[str, str]) -> None:
    """Prepare every command's help under ``group`` (recursively) for rich's panels: the
    listing's one line per command (``verb_help`` for the top level, else the first sentence
    of its help), and escaped, joined help texts (:func:`_help_text`)."""
    for name, cmd in group.commands.items():
        if getattr(cmd, "_archopt_polished", False):
            continue
        cmd._archopt_polished = True  # type: ignore[attr-defined]
        first = (cmd.help or "").strip().split("\n\n")[0]
        first = " ".join(first.split())
        short = verb_help.get(name) or (first.split(". ")[0].rstrip(".") + "." if first
                                        else None)
        cmd.short_help = _help_text(short)
        cmd.help = _help_text(cmd.help)
        for param in cmd.params:
            if getattr(param, "help", None):
                param.help = _help_text(param.help)
        if hasattr(cmd, "commands"):  # a group (typer's own click: duck-typed)
            polish_help(cmd, {})


class OneLineErrors(typer.core.TyperGroup):
    """The top-level command group: a usage error (unknown option, bad value, missing
    argument) is one line on stderr, ``error: <what> (see archopt VERB --help)``, exit 2, like
    every other user error; typer's default is a multi-line panel. ``archopt --help`` lists
    the verbs in the order of :attr:`verb_help`, one line each."""

    #: verb -> its one line in ``archopt --help`` (the order is the listing's).
    verb_help: ClassVar[dict[str, str]] = {}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        polish_help(self, self.verb_help)

    def list_commands(self, ctx: Any) -> list[str]:
        names = super().list_commands(ctx)
        rank = {n: i for i, n in enumerate(self.verb_help)}
        return sorted(names, key=lambda n: rank.get(n, len(rank)))

    def main(self, args: Sequence[str] | None = None, prog_name: str | None = None,
             complete_var: str | None = None, standalone_mode: bool = True,
             **extra: Any) -> Any:
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode, **extra)
        try:
            rv = super().main(args, prog_name, complete_var, False, **extra)
        except typer.TyperException as err:  # typer's own click: usage errors
            code = getattr(err, "exit_code", 2)
            if type(err).__name__ == "NoArgsIsHelpError":  # the help was printed
                sys.exit(code)
            ctx = getattr(err, "ctx", None)
            hint = f" (see {ctx.command_path} --help)" if ctx is not None else ""
            text = err.format_message() if hasattr(err, "format_message") else str(err)
            fail(" ".join(text.split()) + hint)
            sys.exit(code)
        except typer.Abort:
            fail("aborted")
            sys.exit(1)
        sys.exit(rv if isinstance(rv, int) else 0)


def print_json(obj: Any) -> None:
    """Write ``obj`` as JSON on stdout (for scripts)."""
    sys.stdout.write(json.dumps(to_jsonable(obj), indent=2) + "\n")
    sys.stdout.flush()


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        if v != 0 and (abs(v) >= 1e6 or abs(v) < 1e-3):
            return f"{v:.4g}"
        return f"{v:.4f}".rstrip("0").rstrip(".") if abs(v) < 1e3 else f"{v:,.1f}"
    if isinstance(v, int) and not isinstance(v, bool):
        return f"{v:,}"
    return "" if v is None else str(v)


def print_table(title: str | None, columns: Sequence[str], rows: Iterable[Sequence[Any]],
                *, caption: str | None = None, keep_empty: bool = False) -> None:
    """A rich table on stdout (numbers right-aligned, thousands separated).

    A column with no value in any row is left out (``keep_empty`` keeps it), e.g. the
    onnxruntime latency where onnxruntime is not installed. A table wider than the terminal
    drops its vertical rules, then narrows the gaps between columns, before rich wraps any
    cell."""
    from rich import box

    rows = [list(r) for r in rows]
    keep = [i for i in range(len(columns))
            if keep_empty or not rows or any(r[i] not in (None, "") for r in rows)]
    columns = [columns[i] for i in keep]
    rows = [[r[i] for i in keep] for r in rows]

    def build(level: int) -> Table:
        # 0: ruled; 1: no vertical rules, two spaces between columns; 2: one space
        table = Table(title=title, caption=caption, show_lines=False,
                      box=box.HEAVY_HEAD if level == 0 else box.SIMPLE_HEAD,
                      show_edge=level == 0, pad_edge=level == 0, collapse_padding=level == 1,
                      padding=(0, 0) if level == 2 else (0, 1))
        for i, c in enumerate(columns):
            numeric = bool(rows) and all(
                isinstance(r[i], (int, float)) and not isinstance(r[i], bool)
                for r in rows if r[i] is not None)
            table.add_column(c, justify="right" if numeric else "left")
        for r in rows:
            table.add_row(*(_fmt(v) for v in r))
        return table

    for level in range(3):
        table = build(level)
        natural = console.measure(table, options=console.options.update_width(10_000)).maximum
        if natural <= console.width:
            break
    console.print(table)


def latency_items(s: dict[str, Any]) -> list[tuple[str, Any]]:
    """The latency rows of a summary (see :func:`archopt.measure.latency_columns`), one per
    runtime: torch, and onnxruntime when it was timed; batch 1 / the throughput batch."""
    if s.get("latency_ms") is None:
        return []
    threads = s.get("latency_threads", 1)
    rows = []
    for runtime, key in (("torch", "latency_ms"), ("onnxruntime", "latency_ms_onnxruntime")):
        if s.get(key) is None:
            continue
        big = sorted(int(k.rsplit("_b", 1)[1]) for k in s if k.startswith(key + "_b"))
        batches = " / ".join(map(str, [1, *big]))
        values = " / ".join(f"{s[k]:.4g}" for k in [key, *(f"{key}_b{b}" for b in big)])
        rows.append((f"latency {runtime}, ms/example (batch {batches}, {threads} "
                     f"thread{'s' if threads != 1 else ''})", values))
    return rows


def print_kv(title: str | None, items: Iterable[tuple[str, Any]]) -> None:
    """A two-column key/value table."""
    print_table(title, ["", "value"], [(k, v) for k, v in items])
