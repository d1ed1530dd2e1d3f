"""`jifen members`: enrol a member, show one."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import typer
from rich.table import Table
from sqlalchemy.orm import Session

from jifen.cli.errors import UsageFailure
from jifen.cli.output import local, out
from jifen.cli.programs import ProgramOption, program_named
from jifen.cli.state import state_of
from jifen.ledger.posting import Book
from jifen.ledger.queries import EXPIRING_SOON_DAYS, current_balance
from jifen.members import service as members
from jifen.members.models import Member
from jifen.members.schemas import IdentifierField, MemberCreate
from jifen.programs.models import Program
from jifen.programs.service import book_for, points_value

app = typer.Typer(help="Members.", no_args_is_help=True)


@app.command("enrol")
def members_enrol(
    ctx: typer.Context,
    program: ProgramOption,
    phone: Annotated[str | None, typer.Option(help="Mobile number.")] = None,
    email: Annotated[str | None, typer.Option(help="E-mail address.")] = None,
    card_number: Annotated[str | None, typer.Option(help="Membership card number.")] = None,
    external_id: Annotated[str | None, typer.Option(help="App / WeChat / shop id.")] = None,
    name: Annotated[str | None, typer.Option(help="Name.")] = None,
    birthday: Annotated[
        datetime | None, typer.Option(formats=["%Y-%m-%d"], help="YYYY-MM-DD.")
    ] = None,
) -> None:
    """Enrol a member (at least one of --phone, --email, --card-number, --external-id)."""
    data = MemberCreate.model_validate(
        {
            "phone": phone,
            "email": email,
            "card_number": card_number,
            "external_id": external_id,
            "name": name,
            "birthday": birthday.date() if birthday else None,
            "enrolment_channel": "cli",
        }
    )
    state = state_of(ctx)

    def enrol(session: Session) -> Member:
        found = program_named(session, program)
        return members.enrol(session, book_for(session, found), data, now=state.clock.now())

    member = state.database().write(enrol)
    ids = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in data.given().items())
    out().print(f"enrolled member {member.id} in {program} ({ids})")


def _identify(
    ctx: typer.Context, member_id: int | None, identifiers: dict[IdentifierField, str | None]
) -> tuple[IdentifierField, str] | int:
    given = [(field, value) for field, value in identifiers.items() if value is not None]
    if (member_id is not None) + len(given) != 1:
        raise UsageFailure(
            "give exactly one of MEMBER_ID, --phone, --email, --card-number, --external-id",
            ctx,
        )
    if member_id is not None:
        return member_id
    return given[0]


@app.command(
    "show",
    help=f"A member's profile, balance and the points expiring within {EXPIRING_SOON_DAYS} days.",
)
def members_show(
    ctx: typer.Context,
    program: ProgramOption,
    member_id: Annotated[int | None, typer.Argument(help="The member's id.")] = None,
    phone: Annotated[str | None, typer.Option(help="Find by mobile number.")] = None,
    email: Annotated[str | None, typer.Option(help="Find by e-mail.")] = None,
    card_number: Annotated[str | None, typer.Option(help="Find by card number.")] = None,
    external_id: Annotated[str | None, typer.Option(help="Find by external id.")] = None,
) -> None:
    wanted = _identify(
        ctx,
        member_id,
        {
            IdentifierField.PHONE: phone,
            IdentifierField.EMAIL: email,
            IdentifierField.CARD_NUMBER: card_number,
            IdentifierField.EXTERNAL_ID: external_id,
        },
    )
    state = state_of(ctx)
    database = state.database()

    def find(session: Session) -> tuple[Program, Book, Member]:
        found = program_named(session, program)
        if isinstance(wanted, int):
            member = members.get(session, found.id, wanted)
        else:
            member = members.lookup(session, found.id, *wanted)
        return found, book_for(session, found), member

    found, book, member = database.read(find)
    now = state.clock.now()
    balance = current_balance(database, book, member.id, now)
    tz = book.tz
    console = out()
    console.print(f"member {member.id} · {member.name or '—'} · {member.status}")
    profile = Table(show_header=False, box=None, pad_edge=False)
    for label, value in (
        ("phone", member.phone),
        ("e-mail", member.email),
        ("card number", member.card_number),
        ("external id", member.external_id),
        ("birthday", member.birthday.isoformat() if member.birthday else None),
        ("enrolled", f"{local(member.enrolled_at, tz)} ({found.timezone})"),
        ("status reason", member.status_reason),
    ):
        if value:
            profile.add_row(f"  {label}", value)
    console.print(profile)
    worth = points_value(found, max(balance.available, 0))
    console.print(f"balance ({found.points_name}):")
    figures = Table(show_header=False, box=None, pad_edge=False)
    figures.add_row("  available", f"{balance.available:,}", f"≈ {worth} {found.currency}")
    figures.add_row("  pending", f"{balance.pending:,}", "in the return window")
    figures.add_row("  held", f"{balance.held:,}", "set aside by open checkouts")
    figures.add_row("  lifetime earned", f"{balance.lifetime_earned:,}", "")
    figures.add_row("  growth value", f"{balance.growth_value:,}", "成长值")
    console.print(figures)
    if balance.expiring_soon:
        console.print(f"expiring within {EXPIRING_SOON_DAYS} days (valid through the day shown):")
        soon = Table(show_header=False, box=None, pad_edge=False)
        for item in balance.expiring_soon:
            soon.add_row(f"  {item.date.isoformat()}", f"{item.points:,}")
        console.print(soon)
    else:
        console.print(f"nothing expires within {EXPIRING_SOON_DAYS} days")
