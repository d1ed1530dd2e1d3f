"""`jifen tiers`: where a member stands, their tier history, grants and revocations. The
evaluation and benefit jobs run as `jifen jobs run tiers` and `jifen jobs run
tier-benefits`."""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum
from typing import Annotated
from zoneinfo import ZoneInfo

import typer
from rich.table import Table
from sqlalchemy.orm import Session

from jifen.cli.messages import language
from jifen.cli.output import local, out
from jifen.cli.programs import ProgramOption, program_named
from jifen.cli.state import actor, state_of
from jifen.core.clock import start_of_day
from jifen.programs.service import book_for
from jifen.tiers import progress, service
from jifen.tiers.schemas import GrantIn, GrantOut, HistoryPage, Standing

app = typer.Typer(help="Member tiers.", no_args_is_help=True)

MemberArgument = Annotated[int, typer.Argument(help="The member's id.")]


class Kind(StrEnum):
    STAFF = "staff"
    INVITATION = "invitation"
    PAID = "paid"


@app.command("show")
def tiers_show(ctx: typer.Context, program: ProgramOption, member_id: MemberArgument) -> None:
    """A member's tier, measures, what is missing for the next tier and what keeps this one."""
    state = state_of(ctx)
    lang = language()

    def read(session: Session) -> tuple[str, Standing]:
        found = program_named(session, program)
        shown = progress.standing(session, found, member_id, now=state.clock.now(), lang=lang)
        return found.timezone, shown

    zone, shown = state.database().read(read)
    tier = shown.tier
    held = "qualified" if tier.held_by.how == "qualified" else f"{tier.held_by.kind} grant"
    if tier.held_by.ends_at is not None:
        held += f" until {local(tier.held_by.ends_at, _zone(zone))}"
    console = out()
    console.print(f"member {member_id} · {tier.name} ({tier.code}) · {held}")
    window = shown.window
    counted = (
        f"last {window.months} months" if window.kind == "rolling" else f"this {window.period}"
    )
    figures = Table(show_header=False, box=None, pad_edge=False)
    figures.add_row(
        "  growth value", f"{shown.measures['growth']:,}", f"{counted}, from {window.start}"
    )
    figures.add_row("  spend", f"{shown.measures['spend']:,}", "")
    figures.add_row("  purchases", f"{shown.measures['purchases']:,}", "")
    console.print(figures)
    if shown.next is not None:
        console.print(f"next: {shown.next.message}")
    else:
        console.print("next: — (the top tier)")
    if shown.keep is not None:
        console.print(f"keep: {shown.keep.message}")
    for grant in shown.grants:
        console.print(_grant_line(grant, zone))


def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def _grant_line(grant: GrantOut, zone: str) -> str:
    state = "active" if grant.active else ("revoked" if grant.revoked_at else "ended")
    line = (
        f"grant {grant.id}: {grant.tier} ({grant.kind}) until "
        f"{local(grant.ends_at, _zone(zone))}, {state}"
    )
    if grant.reference:
        line += f", reference {grant.reference}"
    return line


@app.command("history")
def tiers_history(
    ctx: typer.Context,
    program: ProgramOption,
    member_id: MemberArgument,
    limit: Annotated[int, typer.Option(min=1, max=500, help="How many, newest first.")] = 20,
    cursor: Annotated[
        str | None, typer.Option(help="Continue after a previous page (printed at its end).")
    ] = None,
) -> None:
    """A member's tier history, newest first."""
    state = state_of(ctx)

    def read(session: Session) -> tuple[str, HistoryPage]:
        found = program_named(session, program)
        page = service.history(session, found.id, member_id, cursor=cursor, limit=limit)
        return found.timezone, page

    zone, page = state.database().read(read)
    if not page.items:
        out().print(f"no tier changes for member {member_id}")
        return
    table = Table("id", f"time ({zone})", "from", "to", "reason", "by")
    for item in page.items:
        table.add_row(
            str(item.id),
            local(item.at, _zone(zone)),
            item.from_tier,
            item.to_tier,
            item.reason,
            item.actor,
        )
    out().print(table)
    if page.next_cursor:
        out().print(f"more: add --cursor {page.next_cursor}")


@app.command("grant")
def tiers_grant(
    ctx: typer.Context,
    program: ProgramOption,
    member_id: MemberArgument,
    tier: Annotated[str, typer.Argument(help="The tier's code.")],
    kind: Annotated[
        Kind, typer.Option(help="Who gives it (paid: a paid membership).")
    ] = Kind.STAFF,
    days: Annotated[
        int | None,
        typer.Option(min=1, max=3660, help="Lasts this many local days, today the first."),
    ] = None,
    until: Annotated[
        datetime | None,
        typer.Option(formats=["%Y-%m-%d"], help="Lasts through this local day (YYYY-MM-DD)."),
    ] = None,
    reason: Annotated[str | None, typer.Option(help="Why (kept in the history).")] = None,
    reference: Annotated[
        str | None, typer.Option(help="A paid membership's payment id (unique).")
    ] = None,
) -> None:
    """Give a member a tier until an end date (give --days or --until)."""
    state = state_of(ctx)
    now = state.clock.now()

    def grant(session: Session) -> tuple[str, GrantOut, bool]:
        found = program_named(session, program)
        ends_at = (
            start_of_day(until.date() + timedelta(days=1), _zone(found.timezone))
            if until is not None
            else None
        )
        data = GrantIn.model_validate(
            {
                "tier": tier,
                "kind": kind.value,
                "days": days,
                "ends_at": ends_at,
                "reason": reason,
                "reference": reference,
            }
        )
        made, created = service.grant(
            session, found, book_for(session, found), member_id, data, now=now, actor=actor()
        )
        return found.timezone, service.describe_grant(made, now), created

    zone, made, created = state.database().write(grant)
    verb = "granted" if created else "already granted (same reference)"
    out().print(f"{verb}: {_grant_line(made, zone)}")


@app.command("revoke")
def tiers_revoke(
    ctx: typer.Context,
    program: ProgramOption,
    member_id: MemberArgument,
    grant_id: Annotated[int, typer.Argument(help="The grant's id (see `jifen tiers show`).")],
    reason: Annotated[str | None, typer.Option(help="Why (kept in the history).")] = None,
) -> None:
    """End a grant now; the member falls at once to what their record and other grants hold."""
    state = state_of(ctx)
    now = state.clock.now()

    def revoke(session: Session) -> tuple[str, GrantOut, bool]:
        found = program_named(session, program)
        done, changed = service.revoke(
            session,
            found,
            book_for(session, found),
            member_id,
            grant_id,
            reason=reason,
            now=now,
            actor=actor(),
        )
        return found.timezone, service.describe_grant(done, now), changed

    zone, done, changed = state.database().write(revoke)
    verb = "revoked" if changed else "already revoked"
    out().print(f"{verb}: {_grant_line(done, zone)}")
