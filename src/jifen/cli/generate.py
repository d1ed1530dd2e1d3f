"""`jifen gen`: synthetic members, purchases and returns as CSV or Parquet files, in the
formats `jifen import` reads (docs/generator.md).

The stores, channels, time zone and rule categories come from a programme file — the
retail-chain example unless `--program-file` names another — read here, so that
`jifen.generator` needs nothing of `jifen.programs`.
"""

from __future__ import annotations

import tempfile
from datetime import datetime
from pathlib import Path
from typing import Annotated, TypedDict

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from jifen.cli.errors import Failure, UsageFailure
from jifen.cli.imports import members_from, purchases_from, returns_from
from jifen.cli.jobs import plural
from jifen.cli.output import err, out
from jifen.cli.programs import program_named
from jifen.cli.state import state_of
from jifen.generator.members import MAX_MEMBERS
from jifen.generator.service import EARLIEST, LATEST, Spec, Written, generate
from jifen.generator.writers import Format
from jifen.programs import examples
from jifen.programs.config import ProgramFile, load_program_file

DEFAULT_PROGRAMME = "retail-chain"
DATE = ["%Y-%m-%d"]


class Outlets(TypedDict):
    stores: tuple[str, ...]
    channels: tuple[tuple[str, str], ...]
    timezone: str
    categories: tuple[str, ...]


def programme_spec(loaded: ProgramFile) -> Outlets:
    """What the generator takes from a programme: its active stores and channels (code and
    kind), its time zone, and the categories its rules and points payment name."""
    categories: list[str] = []
    for rule in (*loaded.earning_rules, *loaded.growth_rules):
        categories += [str(c) for c in rule.when.category or ()]
    if loaded.program.points_payment is not None:
        categories += loaded.program.points_payment.excluded_categories
    return {
        "stores": tuple(s.code for s in loaded.stores if s.active),
        "channels": tuple((c.code, c.kind.value) for c in loaded.channels if c.active),
        "timezone": loaded.program.timezone,
        "categories": tuple(dict.fromkeys(categories)),
    }


def _programme(file: Path | None) -> ProgramFile:
    if file is None:
        return load_program_file(examples.text(DEFAULT_PROGRAMME), f"{DEFAULT_PROGRAMME}.yaml")
    try:
        text = file.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise Failure(f"{file}: not UTF-8 text (byte {exc.start})") from None
    return load_program_file(text, str(file))


def gen(
    ctx: typer.Context,
    out_dir: Annotated[
        Path | None,
        typer.Option(
            "--out",
            metavar="DIR",
            help="Directory for the members, purchases and returns files "
            "(with --into and no --out: a temporary one).",
        ),
    ] = None,
    members: Annotated[int, typer.Option(min=0, max=MAX_MEMBERS, help="Members to make.")] = 10_000,
    purchases: Annotated[
        int, typer.Option(min=0, help="Orders to make (1 or more lines each).")
    ] = 100_000,
    seed: Annotated[int, typer.Option(min=0, max=2**63 - 1, help="Same seed, same files.")] = 42,
    fmt: Annotated[Format, typer.Option("--format", help="File format.")] = Format.CSV,
    start: Annotated[
        datetime,
        typer.Option(
            formats=DATE, show_default="2024-01-01", help="First day of purchases (local)."
        ),
    ] = datetime(2024, 1, 1),  # noqa: DTZ001 - a calendar day, read as a date below
    end: Annotated[
        datetime,
        typer.Option(
            formats=DATE, show_default="2026-11-22", help="Last day of purchases (local), included."
        ),
    ] = datetime(2026, 11, 22),  # noqa: DTZ001
    program_file: Annotated[
        Path | None,
        typer.Option(
            help="Programme file for stores, channels and time zone "
            "(default: the retail-chain example)."
        ),
    ] = None,
    into: Annotated[
        str | None,
        typer.Option(
            "--into",
            metavar="PROGRAMME",
            help="Then import the members and purchases into this programme of the "
            "database (as `jifen import` does).",
        ),
    ] = None,
) -> None:
    """Make synthetic members and purchases, deterministically from a seed: DIR/members,
    DIR/purchases (one row per order line, in time order) and DIR/returns."""
    if out_dir is None:
        if into is None:
            raise UsageFailure("give --out DIR, or --into PROGRAMME to import the data", ctx)
        with tempfile.TemporaryDirectory(prefix="jifen-gen-") as scratch:
            gen(ctx, Path(scratch), members, purchases, seed, fmt, start, end, program_file, into)
        return
    first, last = start.date(), end.date()
    if last < first:
        raise UsageFailure(f"--end {last} is before --start {first}", ctx)
    for option, day in (("--start", first), ("--end", last)):
        if not EARLIEST <= day <= LATEST:
            raise UsageFailure(f"{option} {day}: give a day from {EARLIEST} to {LATEST}", ctx)
    if out_dir.exists() and not out_dir.is_dir():
        raise Failure(f"--out {out_dir} is a file, not a directory")
    spec = Spec(
        members=members,
        purchases=purchases,
        seed=seed,
        start=first,
        end=last,
        **programme_spec(_programme(program_file)),
    )
    state = state_of(ctx)
    if into is not None:  # refuse an unknown programme or a bad database before the work
        state.database().read(lambda s: program_named(s, into))
    written = _with_progress(spec, out_dir, fmt)
    out().print(summary(written))
    if into is not None:
        members_file, _ = written.files["members"]
        purchases_file, _ = written.files["purchases"]
        members_from(state, members_file, into, None, None, 5000)
        purchases_from(state, purchases_file, into, None, None, 5000)
        returns_file, _ = written.files["returns"]
        returns_from(state, returns_file, into, None, None, 500)


def _with_progress(spec: Spec, out_dir: Path, fmt: Format) -> Written:
    console = err()
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
        disable=not console.is_terminal,
    ) as progress:
        tasks = {
            "members": progress.add_task("members", total=spec.members),
            "purchases": progress.add_task("orders", total=spec.purchases, start=False),
        }

        def advance(name: str, done: int) -> None:
            task = tasks[name]
            progress.start_task(task)  # the orders clock starts when the members are done
            progress.update(task, completed=done)

        return generate(spec, out_dir, fmt, advance)


def _size(size: int) -> str:
    if size < 1000:
        return f"{size} B"
    value = float(size)
    for unit in ("kB", "MB"):
        value /= 1000
        if value < 1000:
            return f"{value:.1f} {unit}"
    return f"{value / 1000:,.1f} GB"


def summary(written: Written) -> str:
    """One line: what was written, how big, how fast."""
    c = written.counts
    files = ", ".join(f"{p.name} {_size(size)}" for p, size in written.files.values())
    rows = written.members + c.lines + c.returned_lines
    return (
        f"wrote {plural(written.members, 'member')}, {plural(c.orders, 'order')} in "
        f"{plural(c.lines, 'line')} ({c.unclaimed:,} unclaimed), {plural(c.returns, 'return')} "
        f"of {plural(c.returned_lines, 'line')}: {files} in {written.seconds:.1f} s "
        f"({rows / max(written.seconds, 1e-9):,.0f} rows/s)"
    )
