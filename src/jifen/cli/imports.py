"""`jifen import members|purchases FILE`: bulk imports from CSV or Parquet (O3), with a
progress bar, a rejected-rows file and safe re-runs (docs/import.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from jifen.cli.messages import language
from jifen.cli.output import err, out
from jifen.cli.programs import program_named
from jifen.cli.state import State, actor, state_of
from jifen.imports import members as member_import
from jifen.imports import orders
from jifen.imports import purchases as purchase_import
from jifen.imports import returns as return_import
from jifen.imports.files import FileFormat, Rejects, format_of, read_rows
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
    database = state.database()
    program_id = database.read(lambda s: program_named(s, program).id)
    kind = format_of(file, fmt)
    rows = read_rows(file, kind, required=(), any_of=IDENTIFIER_FIELDS)
    sink = Rejects(_rejects_path(file, rejects))
    with _progress() as progress:
        task = progress.add_task(f"members ← {file.name}", total=_total_rows(file, kind))
        try:
            summary = member_import.import_members(
                database,
                program_id,
                rows,
                clock=state.clock,
                rejects=sink,
                chunk=chunk,
                lang=language(),
                progress=lambda s: progress.update(task, completed=s.rows),
            )
        finally:
            sink.close()
    out().print(
        f"members: {summary.imported:,} imported, {summary.already:,} already there, "
        f"{summary.rejected:,} rejected, of {summary.rows:,} rows"
    )
    _report_rejects(sink)


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
    database = state.database()
    program_id = database.read(lambda s: program_named(s, program).id)
    kind = format_of(file, fmt)
    rows = read_rows(file, kind, required=orders.REQUIRED)
    sink = Rejects(_rejects_path(file, rejects))
    with _progress() as progress:
        task = progress.add_task(f"purchases ← {file.name}", total=_total_rows(file, kind))
        try:
            summary = purchase_import.import_purchases(
                database,
                program_id,
                rows,
                clock=state.clock,
                actor=actor(),
                rejects=sink,
                chunk=chunk,
                lang=language(),
                progress=lambda s: progress.update(task, completed=s.rows),
            )
        finally:
            sink.close()
    out().print(
        f"purchases: {summary.imported:,} orders imported ({summary.unclaimed:,} unclaimed), "
        f"{summary.already:,} already there, {summary.rejected:,} rejected, of "
        f"{summary.orders:,} orders in {summary.rows:,} rows; {summary.points:,} points, "
        f"{summary.growth:,} growth, {summary.upgrades:,} tier upgrades"
    )
    _report_rejects(sink)


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
    database = state.database()
    program_id = database.read(lambda s: program_named(s, program).id)
    kind = format_of(file, fmt)
    rows = read_rows(file, kind, required=return_import.REQUIRED)
    sink = Rejects(_rejects_path(file, rejects))
    with _progress() as progress:
        task = progress.add_task(f"returns ← {file.name}", total=_total_rows(file, kind))
        try:
            summary = return_import.import_returns(
                database,
                program_id,
                rows,
                clock=state.clock,
                actor=actor(),
                rejects=sink,
                chunk=chunk,
                lang=language(),
                progress=lambda s: progress.update(task, completed=s.rows),
            )
        finally:
            sink.close()
    out().print(
        f"returns: {summary.imported:,} imported, {summary.already:,} already there, "
        f"{summary.rejected:,} rejected, of {summary.returns:,} returns in {summary.rows:,} "
        f"rows; {summary.points:,} points taken back"
    )
    _report_rejects(sink)
