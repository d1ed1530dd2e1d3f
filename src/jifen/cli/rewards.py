"""`jifen rewards` (the catalog: list, show, restock) and `jifen redemptions` (redeem,
show, cancel, ship, deliver). Each command is one unit of work calling the same services
as the API; a refusal is one line on stderr (`jifen.cli.root`)."""

from __future__ import annotations

from typing import Annotated, Any
from zoneinfo import ZoneInfo

import typer
from rich.table import Table
from sqlalchemy.orm import Session

from jifen.cli.messages import language
from jifen.cli.output import local, out
from jifen.cli.programs import ProgramOption, program_named
from jifen.cli.state import actor, state_of
from jifen.programs.models import Program
from jifen.programs.rewards import RewardKind
from jifen.programs.service import book_for
from jifen.rewards import catalog, fulfilment, reads, redemptions
from jifen.rewards.schemas import RedemptionIn, RedemptionOut, RewardOut

app = typer.Typer(help="The rewards catalog (积分商城).", no_args_is_help=True)
redemptions_app = typer.Typer(help="Redemptions: redeem, cancel, ship.", no_args_is_help=True)

RewardArgument = Annotated[str, typer.Argument(help="The reward's code.")]
RedemptionArgument = Annotated[int, typer.Argument(help="The redemption's id.", min=1)]


def _points(value: int, cash: Any) -> str:
    return f"{value:,}" + (f" + {cash}" if cash is not None else "")


def _window(reward: RewardOut, tz: ZoneInfo) -> str:
    if reward.available_from is None and reward.available_until is None:
        return "always"
    start = local(reward.available_from, tz) if reward.available_from else "…"
    end = local(reward.available_until, tz) if reward.available_until else "…"
    return f"{start} – {end}"


# ---------------------------------------------------------------- jifen rewards


@app.command("list")
def rewards_list(
    ctx: typer.Context,
    program: ProgramOption,
    kind: Annotated[RewardKind | None, typer.Option(help="Only this kind.")] = None,
    available: Annotated[
        bool, typer.Option("--available", help="Only what can be redeemed now.")
    ] = False,
) -> None:
    """The catalog: price, stock left and whether each reward can be redeemed now."""
    state = state_of(ctx)
    now = state.clock.now()

    def read(session: Session) -> tuple[Program, list[RewardOut]]:
        found = program_named(session, program)
        rewards = catalog.list_rewards(
            session, found.id, kind=kind, available_at=now if available else None
        )
        return found, [catalog.describe(r, now) for r in rewards]

    found, rewards = state.database().read(read)
    if not rewards:
        out().print(f"no rewards in {program}" + (" available now" if available else ""))
        return
    tz = ZoneInfo(found.timezone)
    table = Table(
        "code", "name", "kind", found.points_name, "tiers", "left", "redeemed", "on offer"
    )
    for reward in rewards:
        table.add_row(
            reward.code,
            reward.name,
            reward.kind.value,
            _points(reward.points, reward.cash),
            ", ".join(reward.tiers) if reward.tiers is not None else "all",
            "∞" if reward.left is None else f"{reward.left:,}",
            f"{reward.redeemed:,}",
            ("now" if reward.available_now else "no")
            + ("" if reward.active else " (withdrawn)")
            + f" · {_window(reward, tz)}",
        )
    out().print(table)


@app.command("show")
def rewards_show(
    ctx: typer.Context,
    program: ProgramOption,
    code: RewardArgument,
    member: Annotated[
        int | None,
        typer.Option(help="Also show this member's price and whether they may redeem it."),
    ] = None,
) -> None:
    """One reward: its terms, stock, and (with --member) a member's price."""
    state = state_of(ctx)
    now = state.clock.now()

    def read(session: Session) -> tuple[Program, RewardOut]:
        found = program_named(session, program)
        reward = catalog.get_reward(session, found.id, code)
        offer = None
        if member is not None:
            book = book_for(session, found)
            who = reads.shopper(session, found, book, member, now)
            offer = reads.offer(session, found, book, reward, who, now, lang=language())
        return found, catalog.describe(reward, now, offer)

    found, reward = state.database().read(read)
    tz = ZoneInfo(found.timezone)
    console = out()
    console.print(f"reward {reward.code} · {reward.name} · {reward.kind.value}")
    rows: list[tuple[str, str | None]] = [
        ("description", reward.description),
        ("price", f"{_points(reward.points, reward.cash)} {found.points_name}"),
        (
            "tier prices",
            ", ".join(f"{tier} {price:,}" for tier, price in reward.prices.items()) or None,
        ),
        ("tiers", ", ".join(reward.tiers) if reward.tiers is not None else "everyone"),
        ("on offer", _window(reward, tz) + ("" if reward.active else " (withdrawn)")),
        (
            "stock",
            "unlimited"
            if reward.stock is None
            else f"{reward.stock:,} ({reward.redeemed:,} redeemed, {reward.left:,} left)",
        ),
        ("per member a day", str(reward.limit_per_day) if reward.limit_per_day else None),
        ("per member in all", str(reward.limit_per_member) if reward.limit_per_member else None),
        ("cause", reward.cause),
    ]
    if reward.coupon is not None:
        c = reward.coupon
        terms = [c.kind.value]
        terms += [f"{c.amount} off"] if c.amount is not None else []
        terms += [f"{c.percent}% off"] if c.percent is not None else []
        terms += [f"at most {c.cap}"] if c.cap is not None else []
        terms += [f"from {c.min_spend}"] if c.min_spend else []
        terms += [f"valid {c.valid_days} days"] if c.valid_days else [f"until {c.valid_until}"]
        rows.append(("coupon", ", ".join(terms)))
    if reward.experience is not None:
        where = f" at {reward.experience.location}" if reward.experience.location else ""
        rows.append(("event", f"{local(reward.experience.starts_at, tz)}{where}"))
    rows.append(("now", "can be redeemed" if reward.available_now else "cannot be redeemed"))
    if reward.member is not None:
        offer = reward.member
        verdict = "may redeem" if offer.may_redeem else f"may not: {offer.refusal.detail}"  # type: ignore[union-attr]
        rows.append(
            (
                f"member {offer.member_id}",
                f"tier {offer.tier or '—'}, pays {_points(offer.points, offer.cash)}; {verdict}",
            )
        )
    details = Table(show_header=False, box=None, pad_edge=False)
    for label, value in rows:
        if value:
            details.add_row(f"  {label}", value)
    console.print(details)


@app.command("restock")
def rewards_restock(
    ctx: typer.Context,
    program: ProgramOption,
    code: RewardArgument,
    add: Annotated[int, typer.Option(help="Units to add (negative: write some off).")],
) -> None:
    """Add units to a reward's stock (atomic; never below what is redeemed)."""
    state = state_of(ctx)

    def restock(session: Session) -> RewardOut:
        found = program_named(session, program)
        now = state.clock.now()
        return catalog.describe(catalog.add_stock(session, found.id, code, add, now=now), now)

    reward = state.database().write(restock)
    out().print(
        f"reward {reward.code}: stock {reward.stock:,}, {reward.redeemed:,} redeemed, "
        f"{reward.left:,} left"
    )


# ---------------------------------------------------------------- jifen redemptions


def _print(found: Program, redemption: RedemptionOut, verb: str) -> None:
    tz = ZoneInfo(found.timezone)
    console = out()
    paid = f"{redemption.points:,} {found.points_name}" + (
        f" + {redemption.cash} {found.currency}" if redemption.cash is not None else ""
    )
    console.print(
        f"redemption {redemption.id} {verb}: {redemption.quantity} × {redemption.reward} "
        f"({redemption.reward_name}) for member {redemption.member_id}, {paid} · "
        f"{redemption.status}"
    )
    rows: list[tuple[str, str | None]] = [
        ("source", redemption.source if redemption.source != "redeemed" else None),
        ("tier", redemption.tier),
        ("cause", redemption.cause),
        ("payment", redemption.payment_reference),
        ("created", f"{local(redemption.created_at, tz)} by {redemption.actor}"),
    ]
    if redemption.shipping is not None:
        a = redemption.shipping
        place = " ".join(p for p in (a.province, a.city, a.district, a.address) if p)
        rows.append(("ship to", f"{a.name} {a.phone}, {place}"))
    f = redemption.fulfilment
    if f.shipped_at is not None:
        rows.append(("shipped", f"{local(f.shipped_at, tz)} · {f.carrier} {f.tracking}"))
    if f.delivered_at is not None:
        rows.append(("delivered", local(f.delivered_at, tz)))
    if f.cancelled_at is not None:
        rows.append(("cancelled", f"{local(f.cancelled_at, tz)}: {f.cancel_reason}"))
    for coupon in redemption.coupons:
        rows.append(
            (
                "coupon",
                f"{coupon.code} · {coupon.status} · valid until {local(coupon.expires_at, tz)}",
            )
        )
    details = Table(show_header=False, box=None, pad_edge=False)
    for label, value in rows:
        if value:
            details.add_row(f"  {label}", value)
    console.print(details)


@redemptions_app.command("redeem")
def redemptions_redeem(
    ctx: typer.Context,
    program: ProgramOption,
    member: Annotated[int, typer.Argument(help="The member's id.", min=1)],
    reward: RewardArgument,
    quantity: Annotated[int, typer.Option(min=1, help="How many.")] = 1,
    payment_reference: Annotated[
        str | None, typer.Option(help="Points + cash: the reference of the money's payment.")
    ] = None,
    to_name: Annotated[str | None, typer.Option(help="Goods: the recipient.")] = None,
    to_phone: Annotated[str | None, typer.Option(help="Goods: the recipient's phone.")] = None,
    province: Annotated[str | None, typer.Option(help="Goods: province.")] = None,
    city: Annotated[str | None, typer.Option(help="Goods: city.")] = None,
    district: Annotated[str | None, typer.Option(help="Goods: district.")] = None,
    address: Annotated[str | None, typer.Option(help="Goods: street address.")] = None,
    postcode: Annotated[str | None, typer.Option(help="Goods: postcode.")] = None,
) -> None:
    """Redeem a member's points for a reward (goods: give the address options)."""
    shipping = {
        "name": to_name,
        "phone": to_phone,
        "province": province,
        "city": city,
        "district": district,
        "address": address,
        "postcode": postcode,
    }
    given = {k: v for k, v in shipping.items() if v is not None}
    data = RedemptionIn.model_validate(
        {
            "member": {"id": member},
            "reward": reward,
            "quantity": quantity,
            "shipping": given or None,
            "payment_reference": payment_reference,
        }
    )
    state = state_of(ctx)

    def redeem(session: Session) -> tuple[Program, RedemptionOut]:
        found = program_named(session, program)
        done = redemptions.redeem(
            session, found, book_for(session, found), data, now=state.clock.now(), actor=actor()
        )
        return found, reads.describe(session, done)

    found, redemption = state.database().write(redeem)
    _print(found, redemption, "made")


@redemptions_app.command("show")
def redemptions_show(
    ctx: typer.Context, program: ProgramOption, redemption_id: RedemptionArgument
) -> None:
    """One redemption: reward, price, coupons, shipping and status."""
    state = state_of(ctx)

    def read(session: Session) -> tuple[Program, RedemptionOut]:
        found = program_named(session, program)
        return found, reads.describe(session, reads.get(session, found.id, redemption_id))

    found, redemption = state.database().read(read)
    _print(found, redemption, "is")


@redemptions_app.command("cancel")
def redemptions_cancel(
    ctx: typer.Context,
    program: ProgramOption,
    redemption_id: RedemptionArgument,
    reason: Annotated[str, typer.Option(help="Why (kept with the redemption and the reversal).")],
) -> None:
    """Cancel a redemption: points back to their original lots, stock back, coupons void."""
    state = state_of(ctx)

    def cancel(session: Session) -> tuple[Program, RedemptionOut]:
        found = program_named(session, program)
        done = fulfilment.cancel(
            session,
            found,
            book_for(session, found),
            redemption_id,
            reason=reason,
            now=state.clock.now(),
            actor=actor(),
        )
        return found, reads.describe(session, done)

    found, redemption = state.database().write(cancel)
    _print(found, redemption, "is")


@redemptions_app.command("ship")
def redemptions_ship(
    ctx: typer.Context,
    program: ProgramOption,
    redemption_id: RedemptionArgument,
    carrier: Annotated[str, typer.Option(help="The carrier (顺丰, 中通…).")],
    tracking: Annotated[str, typer.Option(help="The tracking number.")],
) -> None:
    """Goods pending → shipped."""
    state = state_of(ctx)

    def ship(session: Session) -> tuple[Program, RedemptionOut]:
        found = program_named(session, program)
        done = fulfilment.ship(
            session,
            found.id,
            redemption_id,
            carrier=carrier,
            tracking=tracking,
            now=state.clock.now(),
            actor=actor(),
        )
        return found, reads.describe(session, done)

    found, redemption = state.database().write(ship)
    _print(found, redemption, "is")


@redemptions_app.command("deliver")
def redemptions_deliver(
    ctx: typer.Context, program: ProgramOption, redemption_id: RedemptionArgument
) -> None:
    """Goods shipped → delivered."""
    state = state_of(ctx)

    def deliver(session: Session) -> tuple[Program, RedemptionOut]:
        found = program_named(session, program)
        done = fulfilment.deliver(
            session, found.id, redemption_id, now=state.clock.now(), actor=actor()
        )
        return found, reads.describe(session, done)

    found, redemption = state.database().write(deliver)
    _print(found, redemption, "is")
