"""`jifen coupons`: show a coupon, list a member's, use one on an order, cancel one; and
`jifen checkout quote`: how many points a member may use on a basket. The same services
as the API (`jifen.rewards.coupons`, `jifen.rewards.checkout`); every refusal is one line."""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any
from zoneinfo import ZoneInfo

import typer
from rich.table import Table
from sqlalchemy.orm import Session

from jifen.cli.errors import UsageFailure
from jifen.cli.output import local, out
from jifen.cli.programs import ProgramOption, program_named
from jifen.cli.state import actor, state_of
from jifen.earning.schemas import LineIn
from jifen.members.schemas import MemberRef
from jifen.programs.models import Program
from jifen.programs.service import book_for
from jifen.rewards import checkout, coupons
from jifen.rewards.checkout_schemas import Quote, QuoteIn
from jifen.rewards.coupon_schemas import CouponOut, CouponState, CouponUse, UseIn

app = typer.Typer(help="Coupons: show, list, use, cancel.", no_args_is_help=True)
checkout_app = typer.Typer(help="Points as payment at a checkout (积分抵现).", no_args_is_help=True)

LINE = re.compile(r"^(?P<sku>[^:=\s]+)(?::(?P<category>[^=\s]+))?=(?P<amount>\S+)$")

LineOption = Annotated[
    list[str],
    typer.Option(
        "--line",
        help="A line of the order as SKU[:CATEGORY]=AMOUNT (its net amount); repeat for more.",
    ),
]


def parse_lines(given: list[str], ctx: typer.Context) -> list[LineIn]:
    lines = []
    for text in given:
        match = LINE.match(text)
        if match is None:
            raise UsageFailure(f"--line {text!r}: write it as SKU[:CATEGORY]=AMOUNT", ctx)
        try:
            amount = Decimal(match["amount"])
        except InvalidOperation:
            raise UsageFailure(
                f"--line {text!r}: {match['amount']!r} is not an amount", ctx
            ) from None
        fields: dict[str, Any] = {"sku": match["sku"], "unit_price": amount}
        if match["category"]:
            fields["category"] = match["category"]
        lines.append(LineIn.model_validate(fields))
    if not lines:
        raise UsageFailure("give the order's lines with --line SKU[:CATEGORY]=AMOUNT", ctx)
    return lines


def _print_coupon(coupon: CouponOut, tz: ZoneInfo, currency: str) -> None:
    console = out()
    console.print(f"coupon {coupon.display} · {coupon.status.value} · member {coupon.member_id}")
    terms = Table(show_header=False, box=None, pad_edge=False)
    if coupon.kind == "fixed":
        what = f"{coupon.amount} {currency} off"
    elif coupon.kind == "percent":
        what = f"{coupon.percent}% off" + (
            f", at most {coupon.cap} {currency}" if coupon.cap else ""
        )
    else:
        what = "free delivery" + (f", at most {coupon.cap} {currency}" if coupon.cap else "")
    rows = [
        ("  reward", f"{coupon.reward} ({coupon.reward_name})"),
        ("  gives", what),
        ("  minimum spend", f"{coupon.min_spend} {currency}" if coupon.min_spend else None),
        ("  categories", ", ".join(coupon.categories) if coupon.categories else None),
        ("  issued", local(coupon.issued_at, tz)),
        ("  valid until", local(coupon.expires_at, tz)),
        ("  used", local(coupon.used_at, tz) if coupon.used_at else None),
        ("  order", coupon.used_order),
        ("  discount", f"{coupon.discount} {currency}" if coupon.discount is not None else None),
        ("  closed", local(coupon.closed_at, tz) if coupon.closed_at else None),
        ("  reason", coupon.cancel_reason),
    ]
    for label, value in rows:
        if value:
            terms.add_row(label, value)
    console.print(terms)


@app.command("show")
def coupons_show(
    ctx: typer.Context,
    program: ProgramOption,
    code: Annotated[str, typer.Argument(help="The coupon's code (dashes optional).")],
) -> None:
    """A coupon: status, terms, and the order it was used on."""
    state = state_of(ctx)

    def read(session: Session) -> tuple[Program, CouponOut]:
        found = program_named(session, program)
        now = state.clock.now()
        return found, coupons.describe(session, coupons.find(session, found.id, code), now)

    found, coupon = state.database().read(read)
    _print_coupon(coupon, ZoneInfo(found.timezone), found.currency)


@app.command("list")
def coupons_list(
    ctx: typer.Context,
    program: ProgramOption,
    member_id: Annotated[int, typer.Argument(help="The member's id.")],
    status: Annotated[CouponState | None, typer.Option(help="Only coupons in this status.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=200, help="How many, newest first.")] = 50,
) -> None:
    """A member's coupons, newest first."""
    state = state_of(ctx)

    def read(session: Session) -> tuple[Program, list[CouponOut]]:
        found = program_named(session, program)
        listed = coupons.list_for_member(
            session, found.id, member_id, now=state.clock.now(), status=status, limit=limit
        )
        return found, listed

    found, listed = state.database().read(read)
    if not listed:
        out().print(f"no {status.value + ' ' if status else ''}coupons for member {member_id}")
        return
    tz = ZoneInfo(found.timezone)
    table = Table("code", "status", "reward", "valid until", "order", "discount")
    for coupon in listed:
        table.add_row(
            coupon.display,
            coupon.status.value,
            coupon.reward,
            local(coupon.expires_at, tz),
            coupon.used_order or "",
            str(coupon.discount) if coupon.discount is not None else "",
        )
    out().print(table)


@app.command("use")
def coupons_use(
    ctx: typer.Context,
    program: ProgramOption,
    code: Annotated[str, typer.Argument(help="The coupon's code (dashes optional).")],
    order: Annotated[str, typer.Option(help="The order's id (as the purchase records it).")],
    line: LineOption,
    member_id: Annotated[
        int | None, typer.Option("--member", help="The member presenting it (checked).")
    ] = None,
    delivery_fee: Annotated[
        str | None, typer.Option(help="The order's delivery fee (free-delivery coupons).")
    ] = None,
) -> None:
    """Use a coupon on an order, once (the same order again shows the first use)."""
    data = UseIn.model_validate(
        {
            "order": order,
            "lines": [line.model_dump() for line in parse_lines(line, ctx)],
            "member": {"id": member_id} if member_id is not None else None,
            "delivery_fee": delivery_fee,
        }
    )
    state = state_of(ctx)

    def use(session: Session) -> tuple[Program, CouponUse]:
        found = program_named(session, program)
        done = coupons.use(session, found.id, code, data, now=state.clock.now(), actor=actor())
        return found, done

    found, done = state.database().write(use)
    first = "already used on" if done.repeated else "used on"
    out().print(
        f"coupon {done.coupon.display} {first} order {done.order}: "
        f"{done.discount} {found.currency} off"
    )


@app.command("cancel")
def coupons_cancel(
    ctx: typer.Context,
    program: ProgramOption,
    code: Annotated[str, typer.Argument(help="The coupon's code (dashes optional).")],
    reason: Annotated[str, typer.Option(help="Why (kept with the coupon).")],
) -> None:
    """Cancel an issued coupon (the points paid for it are not returned: cancel the
    redemption for that)."""
    state = state_of(ctx)

    def cancel(session: Session) -> CouponOut:
        found = program_named(session, program)
        return coupons.cancel(
            session, found.id, code, reason=reason, now=state.clock.now(), actor=actor()
        )

    done = state.database().write(cancel)
    out().print(f"coupon {done.display} is {done.status.value}")


@checkout_app.command("quote")
def checkout_quote(
    ctx: typer.Context,
    program: ProgramOption,
    member_id: Annotated[int, typer.Argument(help="The member's id.")],
    line: LineOption,
) -> None:
    """How many points a member may use on a basket, and what they pay."""
    data = QuoteIn.model_validate(
        {"member": MemberRef(id=member_id), "lines": parse_lines(line, ctx)}
    )
    state = state_of(ctx)
    database = state.database()

    def read(session: Session) -> tuple[Program, Quote | None]:
        found = program_named(session, program)
        book = book_for(session, found)
        return found, checkout.quote(session, found, book, data, now=state.clock.now())

    found, quoted = database.read(read)
    if quoted is None:  # something fell due for the member: apply it, then quote again
        from jifen.ledger.queries import current_balance

        book = database.read(lambda s: book_for(s, program_named(s, program)))
        current_balance(database, book, member_id, state.clock.now())
        found, quoted = database.read(read)
        assert quoted is not None
    currency = found.currency
    out().print(
        f"member {quoted.member_id} may use {quoted.max_points:,} {found.points_name} "
        f"= {quoted.max_value} {currency} on this order (limited by {quoted.limited_by.value})"
    )
    figures = Table(show_header=False, box=None, pad_edge=False)
    figures.add_row("  eligible amount", f"{quoted.eligible_amount} {currency}")
    if quoted.excluded_amount:
        figures.add_row("  excluded", f"{quoted.excluded_amount} {currency}")
    share = f"{(quoted.max_share * 100).normalize():f}%"
    figures.add_row("  share", f"{share} → {quoted.share_points:,} at most")
    figures.add_row("  available", f"{quoted.available:,}")
    figures.add_row("  rules", f"at least {quoted.min_points:,}, in steps of {quoted.step:,}")
    figures.add_row(
        "  point value",
        f"{quoted.point_value_points} {found.points_name} = "
        f"{quoted.point_value_amount.normalize():f} {currency}",
    )
    out().print(figures)
