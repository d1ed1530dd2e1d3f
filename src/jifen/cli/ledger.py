"""`jifen ledger`: a member's journal."""

from __future__ import annotations

from typing import Annotated
from zoneinfo import ZoneInfo

import typer
from rich.table import Table
from sqlalchemy.orm import Session

from jifen.cli.output import local, out
from jifen.cli.programs import ProgramOption, program_named
from jifen.cli.state import state_of
from jifen.ledger.models import TxnKind
from jifen.ledger.queries import history
from jifen.ledger.schemas import HistoryPage
from jifen.programs.models import Program
from jifen.programs.service import book_for

app = typer.Typer(help="The points ledger.", no_args_is_help=True)


@app.command("history")
def ledger_history(
    ctx: typer.Context,
    program: ProgramOption,
    member_id: Annotated[int, typer.Argument(help="The member's id.")],
    kind: Annotated[
        list[TxnKind] | None,
        typer.Option("--type", help="Only these kinds (repeat the option for several)."),
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=500, help="How many, newest first.")] = 20,
    cursor: Annotated[
        str | None, typer.Option(help="Continue after a previous page (printed at its end).")
    ] = None,
) -> None:
    """A member's journal, newest first."""
    state = state_of(ctx)

    def read(session: Session) -> tuple[Program, HistoryPage]:
        found = program_named(session, program)
        book = book_for(session, found)
        page = history(
            session,
            book,
            member_id,
            kinds=[str(k) for k in kind] if kind else None,
            cursor=cursor,
            limit=limit,
        )
        return found, page

    found, page = state.database().read(read)
    tz = ZoneInfo(found.timezone)
    if not page.items:
        out().print(f"no transactions for member {member_id}")
        return
    table = Table(
        "id",
        f"time ({found.timezone})",
        "type",
        "points",
        "available",
        "pending",
        "held",
        "reference",
        "note",
        "by",
    )
    for item in page.items:
        note = item.reason or ""
        if item.reverses_id:
            note = f"reverses {item.reverses_id}" + (f": {note}" if note else "")
        if item.reversed_by_id:
            note = f"reversed by {item.reversed_by_id}" + (f"; {note}" if note else "")
        if item.growth_value and not item.points:
            note = f"growth value {item.growth_value:+,}" + (f"; {note}" if note else "")
        table.add_row(
            str(item.id),
            local(item.created_at, tz),
            item.kind,
            f"{item.points:+,}",
            f"{item.available:+,}" if item.available else "",
            f"{item.pending:+,}" if item.pending else "",
            f"{item.held:+,}" if item.held else "",
            item.reference or "",
            note,
            item.actor,
        )
    out().print(table)
    if page.next_cursor:
        out().print(f"more: add --cursor {page.next_cursor}")
