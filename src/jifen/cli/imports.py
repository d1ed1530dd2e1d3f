"""`jifen import members|purchases|returns FILE`: bulk imports from CSV or Parquet (O3), with a
progress bar, a rejected-rows file and safe re-runs (docs/import.md)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Annotated, Protocol, TypeVar

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from jifen.cli.messages import language
from jifen.cli.output import err, out
from jifen.cli.programs import program_named
from jifen.cli.state import State, actor, state_of
from jifen.db.uow import Database
from jifen.imports import members as member_import
from jifen.imports import orders
from jifen.imports import purchases as purchase_import
from jifen.imports import returns as return_import
from jifen.imports.files import FileFormat, Rejects, Row, format_of, read_rows
from jifen.members.models import IDENTIFIER_FIELDS

app = typer.Typer(help="Bulk imports from CSV or Parquet (docs/import.md).", no_args_is_help=True)

FileArgument = Annotated[
    Path,
    typer.Argument(help="A .csv or .parquet file.", exists=True, dir_okay=False, readable=True),
]
ProgramOption = Annotated[str, typer.Option("--program", help="The programme's code.")]
FormatOption = Annotated[
    str | None, typer.Option("--format", help="csv or parquet (default: from the extension).")
]
RejectsOption = Annotated[
    Path | None,
    typer.Option(
        "--rejects",
        help="Where to write the rejected rows with their reasons "
        "(default: FILE with .rejected.csv beside it).",
    ),
]
ChunkOption = Annotated[
    int, typer.Option("--chunk", min=1, max=100_000, help="Rows or orders per transaction.")
]


def _total_rows(path: Path, fmt: FileFormat) -> int | None:
    """The number of data rows, for the progress bar (CSV: lines less the header, an upper
    bound when quoted cells hold line breaks)."""
    if fmt == FileFormat.PARQUET:
        import pyarrow.parquet as pq

        return int(pq.ParquetFile(path).metadata.num_rows)
    with path.open("rb") as stream:
        lines = sum(chunk.count(b"\n") for chunk in iter(lambda: stream.read(1 << 20), b""))
    return max(lines - 1, 0)


def _rejects_path(path: Path, given: Path | None) -> Path:
    return given if given is not None else path.with_name(path.stem + ".rejected.csv")


def _progress() -> Progress:
    console = err()
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed:,}/{task.total:,} rows"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
        disable=not console.is_terminal,
    )


def _report_rejects(rejects: Rejects) -> None:
    if rejects.count:
        out().print(f"{rejects.count:,} rejected rows, each with its reason: {rejects.path}")


class _Done(Protocol):
    rows: int


Done = TypeVar("Done", bound=_Done)


def _target(state: State, program: str) -> tuple[Database, int]:
    """The database and the id of the programme named `program` (refused in one line)."""
    database = state.database()
    return database, database.read(lambda s: program_named(s, program).id)


def _run(
    file: Path,
    fmt: str | None,
    rejects: Path | None,
    label: str,
    read: Callable[[Path, FileFormat], Iterable[Row]],
    book: Callable[[Iterable[Row], Rejects, Callable[[Done], None]], Done],
    describe: Callable[[Done], str],
) -> None:
    """Read FILE, book its rows under a progress bar with the rejected rows going to their
    file, then print the one-line summary and where the rejected rows are."""
    kind = format_of(file, fmt)
    rows = read(file, kind)
    sink = Rejects(_rejects_path(file, rejects))
    with _progress() as progress:
        task = progress.add_task(f"{label} ← {file.name}", total=_total_rows(file, kind))
        try:
            summary = book(rows, sink, lambda done: progress.update(task, completed=done.rows))
        finally:
            sink.close()
    out().print(describe(summary))
    _report_rejects(sink)


@app.command("members")
def import_members(
    ctx: typer.Context,
    file: FileArgument,
    program: ProgramOption,
    fmt: FormatOption = None,
    rejects: RejectsOption = None,
    chunk: ChunkOption = 5000,
) -> None:
    """Enrol the members of FILE; rows already imported are skipped."""
    members_from(state_of(ctx), file, program, fmt, rejects, chunk)


def members_from(
    state: State, file: Path, program: str, fmt: str | None, rejects: Path | None, chunk: int
) -> None:
    """`jifen import members` (also behind `jifen gen --into`)."""
    database, program_id = _target(state, program)
    _run(
        file,
        fmt,
        rejects,
        "members",
        lambda path, kind: read_rows(path, kind, required=(), any_of=IDENTIFIER_FIELDS),
        lambda rows, sink, progress: member_import.import_members(
            database,
            program_id,
            rows,
            clock=state.clock,
            rejects=sink,
            chunk=chunk,
            lang=language(),
            progress=progress,
        ),
        lambda done: (
            f"members: {done.imported:,} imported, {done.already:,} already there, "
            f"{done.rejected:,} rejected, of {done.rows:,} rows"
        ),
    )


@app.command("purchases")
def import_purchases(
    ctx: typer.Context,
    file: FileArgument,
    program: ProgramOption,
    fmt: FormatOption = None,
    rejects: RejectsOption = None,
    chunk: ChunkOption = 5000,
) -> None:
    """Record and award the orders of FILE (a row per order line); recorded ones are skipped."""
    purchases_from(state_of(ctx), file, program, fmt, rejects, chunk)


def purchases_from(
    state: State, file: Path, program: str, fmt: str | None, rejects: Path | None, chunk: int
) -> None:
    """`jifen import purchases` (also behind `jifen gen --into`)."""
    database, program_id = _target(state, program)
    _run(
        file,
        fmt,
        rejects,
        "purchases",
        lambda path, kind: read_rows(path, kind, required=orders.REQUIRED),
        lambda rows, sink, progress: purchase_import.import_purchases(
            database,
            program_id,
            rows,
            clock=state.clock,
            actor=actor(),
            rejects=sink,
            chunk=chunk,
            lang=language(),
            progress=progress,
        ),
        lambda done: (
            f"purchases: {done.imported:,} orders imported ({done.unclaimed:,} unclaimed), "
            f"{done.already:,} already there, {done.rejected:,} rejected, of "
            f"{done.orders:,} orders in {done.rows:,} rows; {done.points:,} points, "
            f"{done.growth:,} growth, {done.upgrades:,} tier upgrades"
        ),
    )


@app.command("returns")
def import_returns(
    ctx: typer.Context,
    file: FileArgument,
    program: ProgramOption,
    fmt: FormatOption = None,
    rejects: RejectsOption = None,
    chunk: ChunkOption = 500,
) -> None:
    """Record the returns and refunds of FILE against imported orders; repeats are skipped."""
    returns_from(state_of(ctx), file, program, fmt, rejects, chunk)


def returns_from(
    state: State, file: Path, program: str, fmt: str | None, rejects: Path | None, chunk: int
) -> None:
    """`jifen import returns` (also behind `jifen gen --into`)."""
    database, program_id = _target(state, program)
    _run(
        file,
        fmt,
        rejects,
        "returns",
        lambda path, kind: read_rows(path, kind, required=return_import.REQUIRED),
        lambda rows, sink, progress: return_import.import_returns(
            database,
            program_id,
            rows,
            clock=state.clock,
            actor=actor(),
            rejects=sink,
            chunk=chunk,
            lang=language(),
            progress=progress,
        ),
        lambda done: (
            f"returns: {done.imported:,} imported, {done.already:,} already there, "
            f"{done.rejected:,} rejected, of {done.returns:,} returns in {done.rows:,} "
            f"rows; {done.points:,} points taken back"
        ),
    )
