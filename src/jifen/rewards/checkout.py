"""Points as payment at a checkout (积分抵现, PRODUCT.md R4, L5): quote, hold, capture
through the purchase, void, lapse, and what a return gives back.

The flow: the till asks `quote` how many points the member may use on the basket, places
a `hold` for the points the member chooses (set aside in the ledger until a deadline, the
programme's `hold_minutes`), and records the purchase with `points_payment: {hold_id}`;
the purchase captures the hold in its own transaction (`capture`), so the points are
spent exactly when the order is recorded, once. An order cancelled at the till voids
the hold; an abandoned one lapses at its deadline (the `lapse` job, or the next write to
the member, whichever comes first), and the points go back to the lots they came from.

The rules (the programme's `points_payment`; none: points cannot pay):
- eligible amount: the lines' net amounts, except lines of `excluded_categories`;
- the most points: the eligible amount × `max_share`, in points at the programme's point
  value, rounded down to a multiple of `step`; and no more than the member's available
  points, rounded down to `step`;
- fewer than `min_points` cannot be used at all (the quote then says 0).
A hold is checked against them under the member's lock, and stores what it was quoted
under; the purchase re-checks its own lines against the hold's terms, so a basket that
shrank between the hold and the sale cannot be paid beyond its share.

What the points paid is split over the eligible lines in proportion to their net
amounts, to the cent, the odd cents to the largest remainders (`purchase_lines.
points_value`). Earning rules see each line's cash part only (net less points_value): a
200 元 order paying 500 积分 = 50 元 earns as a 150 元 order.

A return gives the points share of what comes back as points: each line's points share
shrinks in proportion to what is left of its net amount, and the member gets back, over
the order's returns together, `paid_points × points value returned / paid value` points
rounded down, so a full return gives back exactly the points paid. They return to the
lots they were taken from, with their original expiry (`ledger.service.refund_capture`);
the rest of the returned amount is the money to refund.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import ROUND_DOWN, ROUND_HALF_UP, Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from jifen.core.errors import HoldNotActive, InvalidInput, NotFound
from jifen.earning.models import Purchase, PurchaseLine
from jifen.earning.schemas import LineIn
from jifen.ledger import service as ledger
from jifen.ledger.models import Hold, HoldStatus, JournalTransaction
from jifen.ledger.posting import Book, ensure_writable, lock_account
from jifen.ledger.queries import balance
from jifen.members import service as members
from jifen.members.models import Member
from jifen.programs.models import Program
from jifen.programs.schemas import PointsPayment
from jifen.rewards.checkout_schemas import CheckoutHoldOut, HoldIn, LimitedBy, Quote, QuoteIn
from jifen.rewards.errors import (
    CheckoutHoldMismatch,
    OrderAlreadyHeld,
    OrderAlreadyRecorded,
    PointsPaymentDisabled,
    PointsPaymentRefused,
)
from jifen.rules.facts import Line

CENT = Decimal("0.01")
REFERENCE = "checkout:{order}#{n}"
"""A checkout hold's ledger reference: the order, and which hold of it (a voided or lapsed
hold leaves its reference behind; the next one for the order takes the next number)."""


def rules_of(program: Program) -> PointsPayment:
    if program.points_payment is None:
        raise PointsPaymentDisabled()
    return PointsPayment.model_validate(program.points_payment)


@dataclass(frozen=True)
class Terms:
    """What a hold was authorised under (stored with it, used again at capture)."""

    max_share: Decimal
    step: int
    min_points: int
    excluded: frozenset[str]
    point_value_points: int
    point_value_amount: Decimal

    @classmethod
    def of(cls, program: Program, rules: PointsPayment) -> Terms:
        return cls(
            max_share=rules.max_share,
            step=rules.step,
            min_points=rules.min_points,
            excluded=frozenset(rules.excluded_categories),
            point_value_points=program.point_value_points,
            point_value_amount=program.point_value_amount,
        )

    def as_json(self) -> dict[str, Any]:
        return {
            "max_share": str(self.max_share),
            "step": self.step,
            "min_points": self.min_points,
            "excluded_categories": sorted(self.excluded),
            "point_value_points": self.point_value_points,
            "point_value_amount": str(self.point_value_amount),
        }

    @classmethod
    def from_json(cls, stored: dict[str, Any]) -> Terms:
        return cls(
            max_share=Decimal(stored["max_share"]),
            step=int(stored["step"]),
            min_points=int(stored["min_points"]),
            excluded=frozenset(stored["excluded_categories"]),
            point_value_points=int(stored["point_value_points"]),
            point_value_amount=Decimal(stored["point_value_amount"]),
        )

    @property
    def percent(self) -> str:
        """`max_share` for people: 0.5 → 50%."""
        return f"{(self.max_share * 100).normalize():f}%"

    def eligible(self, categories: Sequence[str | None]) -> list[bool]:
        return [category not in self.excluded for category in categories]

    def share_points(self, eligible_amount: Decimal) -> int:
        """The most points the share allows on this eligible amount, down to the step."""
        value = eligible_amount * self.max_share
        points = int(
            (value * self.point_value_points / self.point_value_amount).to_integral_value(
                rounding=ROUND_DOWN
            )
        )
        return self.down_to_step(points)

    def down_to_step(self, points: int) -> int:
        return max(points, 0) // self.step * self.step

    def value(self, points: int) -> Decimal:
        """What `points` pay, to the cent, rounded down (`programs.service.points_value`)."""
        worth = Decimal(points) * self.point_value_amount / self.point_value_points
        return worth.quantize(CENT, rounding=ROUND_DOWN)


def _split_basket(terms: Terms, lines: Sequence[LineIn]) -> tuple[Decimal, Decimal]:
    """(eligible, excluded) amounts of a basket."""
    eligible = excluded = Decimal(0)
    for line, ok in zip(lines, terms.eligible([line.category for line in lines]), strict=True):
        if ok:
            eligible += line.net
        else:
            excluded += line.net
    return eligible.quantize(CENT), excluded.quantize(CENT)


# ---------------------------------------------------------------- quote


def quote(
    session: Session, program: Program, book: Book, data: QuoteIn, *, now: datetime
) -> Quote | None:
    """How many points the member may use on the basket now, and what they pay. Writes
    nothing; None when something has fallen due for the member (a lapse, a release, an
    expiry) that must be applied first (`ledger.queries.current_balance`), since the
    balance would otherwise be stale."""
    terms = Terms.of(program, rules_of(program))
    member = members.resolve(session, program.id, data.member)
    found = balance(session, book, member.id, now)
    if found is None:
        return None
    return _quote(terms, member.id, data.lines, max(found.available, 0))


def _quote(terms: Terms, member_id: int, lines: Sequence[LineIn], available: int) -> Quote:
    eligible, excluded = _split_basket(terms, lines)
    share = terms.share_points(eligible)
    usable = terms.down_to_step(available)
    if eligible <= 0:
        most, limited_by = 0, LimitedBy.NOTHING_ELIGIBLE
    elif share <= usable:
        most, limited_by = share, LimitedBy.SHARE
    else:
        most, limited_by = usable, LimitedBy.BALANCE
    if eligible > 0 and (most <= 0 or most < terms.min_points or terms.value(most) <= 0):
        most, limited_by = 0, LimitedBy.MINIMUM
    return Quote(
        member_id=member_id,
        total=eligible + excluded,
        eligible_amount=eligible,
        excluded_amount=excluded,
        max_share=terms.max_share,
        share_points=share,
        available=available,
        max_points=most,
        max_value=terms.value(most),
        min_points=terms.min_points,
        step=terms.step,
        point_value_points=terms.point_value_points,
        point_value_amount=terms.point_value_amount,
        limited_by=limited_by,
    )


def _refuse(terms: Terms, points: int, eligible: Decimal) -> None:
    """`PointsPaymentRefused` unless `points` keep the rules on this eligible amount."""
    if points < terms.min_points:
        raise PointsPaymentRefused(points=points, reason="below-minimum", minimum=terms.min_points)
    if points % terms.step:
        raise PointsPaymentRefused(points=points, reason="step", step=terms.step)
    share = terms.share_points(eligible)
    if points > share:
        raise PointsPaymentRefused(
            points=points,
            reason="above-maximum",
            maximum=share,
            share=terms.percent,
            eligible=f"{eligible:.2f}",
        )
    if terms.value(points) <= 0:
        raise PointsPaymentRefused(points=points, reason="worthless")


# ---------------------------------------------------------------- hold and void


def hold(
    session: Session, program: Program, book: Book, data: HoldIn, *, now: datetime, actor: str
) -> tuple[CheckoutHoldOut, bool]:
    """Set `data.points` aside for the order until the purchase captures them, the till
    voids them, or the programme's hold_minutes pass.

    Under the member's lock: an order already recorded is refused; an active hold of the
    order with the same member and points is returned as it is (a till that lost the
    answer), with anything else refused (void it first); then the rules, then the ledger
    (which refuses more points than are available). Returns the hold and whether this
    call placed it."""
    terms = Terms.of(program, rules_of(program))
    member = members.resolve(session, program.id, data.member)
    ensure_writable(lock_account(session, book, member.id, now))
    recorded = session.execute(
        select(Purchase.id).where(
            Purchase.program_id == program.id, Purchase.external_id == data.order
        )
    ).scalar_one_or_none()
    if recorded is not None:
        raise OrderAlreadyRecorded(order=data.order, purchase_id=recorded)
    number = 1
    while True:
        earlier = _hold_by_reference(session, program.id, data.order, number)
        if earlier is None:
            break
        if earlier.status == HoldStatus.ACTIVE and earlier.expires_at > now:
            if earlier.member_id == member.id and earlier.amount == data.points:
                return describe_hold(earlier), False
            raise OrderAlreadyHeld(
                order=data.order,
                hold_id=earlier.id,
                points=earlier.amount,
                member_id=earlier.member_id,
                expires_at=earlier.expires_at.isoformat(),
            )
        number += 1
    eligible, _ = _split_basket(terms, data.lines)
    _refuse(terms, data.points, eligible)
    created = ledger.authorise_hold(
        session,
        book,
        member.id,
        data.points,
        now=now,
        actor=actor,
        reference=REFERENCE.format(order=data.order, n=number),
        details={
            "checkout": {
                "order": data.order,
                "value": str(terms.value(data.points)),
                "eligible": str(eligible),
                "terms": terms.as_json(),
            }
        },
    )
    return describe_hold(created), True


def _hold_by_reference(session: Session, program_id: int, order: str, n: int) -> Hold | None:
    return session.execute(
        select(Hold)
        .where(Hold.program_id == program_id, Hold.reference == REFERENCE.format(order=order, n=n))
        .execution_options(populate_existing=True)
    ).scalar_one_or_none()


def _checkout(found: Hold) -> dict[str, Any] | None:
    """The checkout part of a hold's details; None for a hold not placed by `hold`."""
    details = found.details or {}
    checkout = details.get("checkout")
    return checkout if isinstance(checkout, dict) else None


def get_hold(session: Session, program_id: int, hold_id: int) -> Hold:
    """A checkout hold of the programme (holds placed otherwise are not found here)."""
    found = session.execute(
        select(Hold)
        .where(Hold.id == hold_id, Hold.program_id == program_id)
        .execution_options(populate_existing=True)
    ).scalar_one_or_none()
    if found is None or _checkout(found) is None:
        raise NotFound(what="checkout hold", key=hold_id)
    return found


def describe_hold(found: Hold) -> CheckoutHoldOut:
    checkout = _checkout(found)
    assert checkout is not None
    return CheckoutHoldOut(
        id=found.id,
        member_id=found.member_id,
        order=checkout["order"],
        points=found.amount,
        value=Decimal(checkout["value"]),
        status=found.status,
        created_at=found.created_at,
        expires_at=found.expires_at,
        closed_at=found.closed_at,
        eligible_amount=Decimal(checkout["eligible"]),
    )


def void(
    session: Session, program: Program, book: Book, hold_id: int, *, now: datetime, actor: str
) -> CheckoutHoldOut:
    """Give the points back now (the order was cancelled or will be paid otherwise). A
    hold already voided or lapsed is shown as it is: its points are back either way. A
    captured hold cannot be voided (the purchase spent it; a return gives points back)."""
    found = get_hold(session, program.id, hold_id)
    lock_account(session, book, found.member_id, now)  # lapses it if its deadline passed
    session.refresh(found)
    if found.status in (HoldStatus.VOIDED, HoldStatus.LAPSED):
        return describe_hold(found)
    ledger.void_hold(session, book, found.id, now=now, actor=actor)
    session.refresh(found)
    return describe_hold(found)


# ---------------------------------------------------------------- capture (the purchase)


def capture(
    session: Session,
    program: Program,
    book: Book,
    purchase: Purchase,
    lines: Sequence[PurchaseLine],
    hold_id: int,
    member: Member | None,
    *,
    now: datetime,
    actor: str,
) -> None:
    """Pay part of `purchase` with its checkout hold, in the purchase's transaction (the
    member's account is locked by the caller): capture the hold, split its value over
    the eligible lines (`points_value`), and note it on the purchase. Refused, writing
    nothing, unless the hold is an active checkout hold of this member for this order
    whose points this order's lines allow."""
    found, shares = _shares(
        session,
        program,
        hold_id,
        member,
        [(line.category, line.amount - line.discount) for line in lines],
        order=purchase.external_id,
    )
    txn = ledger.capture_hold(
        session,
        book,
        found.id,
        now=now,
        actor=actor,
        details={"purchase_id": purchase.id, "order": purchase.external_id},
    )
    for line, share in zip(lines, shares, strict=True):
        line.points_value = share
    purchase.hold_id = found.id
    purchase.paid_points = found.amount
    purchase.paid_points_value = sum(shares, Decimal(0))
    purchase.capture_txn_id = txn.id
    session.flush()


def preview(
    session: Session,
    program: Program,
    hold_id: int,
    member: Member | None,
    lines: Sequence[Line],
    *,
    now: datetime,
) -> list[Line]:
    """The basket as `capture` would leave it for the earning rules (each line's cash
    part), without capturing: what a simulated purchase paying with the hold earns. The
    hold must be this member's and active; its order is not checked (a simulation has
    none)."""
    found, shares = _shares(
        session, program, hold_id, member, [(line.category, line.amount) for line in lines]
    )
    if found.status != HoldStatus.ACTIVE or found.expires_at <= now:
        raise HoldNotActive(hold_id=found.id, status=found.status, action="captured")
    return [
        replace(line, amount=line.amount - share) for line, share in zip(lines, shares, strict=True)
    ]


def _shares(
    session: Session,
    program: Program,
    hold_id: int,
    member: Member | None,
    lines: Sequence[tuple[str | None, Decimal]],
    *,
    order: str | None = None,
) -> tuple[Hold, list[Decimal]]:
    """The hold, checked to be a checkout hold of `member` (for `order`, if given) whose
    points these lines (category, net amount) allow under its terms, and its value split
    over the eligible lines."""
    if member is None:
        raise InvalidInput(
            field="points_payment",
            reason="points pay only for a member's purchase: name the member",
        )
    found = get_hold(session, program.id, hold_id)
    checkout = _checkout(found)
    assert checkout is not None
    if found.member_id != member.id:
        raise CheckoutHoldMismatch(hold_id=found.id, reason="member", held_for=found.member_id)
    if order is not None and checkout["order"] != order:
        raise CheckoutHoldMismatch(hold_id=found.id, reason="order", held_for=checkout["order"])
    terms = Terms.from_json(checkout["terms"])
    flags = terms.eligible([category for category, _ in lines])
    weights = [net if ok else Decimal(0) for (_, net), ok in zip(lines, flags, strict=True)]
    eligible = sum(weights, Decimal(0))
    share = terms.share_points(eligible)
    if found.amount > share:
        raise PointsPaymentRefused(
            points=found.amount,
            reason="above-maximum",
            maximum=share,
            share=terms.percent,
            eligible=f"{eligible:.2f}",
        )
    return found, split(Decimal(checkout["value"]), weights)


def split(value: Decimal, weights: Sequence[Decimal]) -> list[Decimal]:
    """`value` over the weights in proportion, to the cent; the odd cents go to the largest
    remainders (ties: the earlier line). Sums to `value` exactly."""
    total = sum(weights, Decimal(0))
    if total <= 0:
        assert value == 0, "a value to split over nothing"
        return [Decimal(0) for _ in weights]
    cents = int((value / CENT).to_integral_value())
    exact = [Decimal(cents) * weight / total for weight in weights]
    shares = [int(e) for e in exact]
    rest = cents - sum(shares)
    for i in sorted(range(len(weights)), key=lambda i: (-(exact[i] - shares[i]), i))[:rest]:
        shares[i] += 1
    return [Decimal(n) * CENT for n in shares]


# ---------------------------------------------------------------- returns


def points_value_left(line: PurchaseLine, returned_amount: Decimal | None = None) -> Decimal:
    """The points share of what is left of the line: its `points_value` in proportion to
    the part of its net amount not yet refunded (`returned_amount`: the line's, unless
    given). All of it before any return, none once the line is fully refunded."""
    paid = line.points_value or Decimal(0)
    if not paid:
        return Decimal(0)
    net = line.amount - line.discount
    left = net - (line.returned_amount if returned_amount is None else returned_amount)
    if left <= 0:
        return Decimal(0)
    if left >= net:
        return paid
    return (paid * left / net).quantize(CENT, rounding=ROUND_HALF_UP)


@dataclass(frozen=True)
class Refunded:
    points: int
    """Points given back by this return."""
    value: Decimal
    """The points share of the money this return refunds (not refunded in money)."""
    transaction_id: int | None


NOTHING = Refunded(0, Decimal("0.00"), None)


def refund_returned(
    session: Session,
    book: Book,
    purchase: Purchase,
    lines: Sequence[PurchaseLine],
    returned_now: dict[int, Decimal],
    *,
    now: datetime,
    actor: str,
) -> Refunded:
    """Give back the points share of a return (see the module's docstring). `lines` carry
    the return already (their `returned_amount`); `returned_now` is what this return
    refunds of each (line number → net amount). The member's account is locked by the
    caller."""
    if not purchase.paid_points or purchase.capture_txn_id is None:
        return NOTHING
    after = sum((line.points_value - points_value_left(line) for line in lines), Decimal(0))
    before = sum(
        (
            line.points_value
            - points_value_left(
                line, line.returned_amount - returned_now.get(line.line_no, Decimal(0))
            )
            for line in lines
        ),
        Decimal(0),
    )
    capture_txn = session.get(JournalTransaction, purchase.capture_txn_id)
    assert capture_txn is not None
    if after >= purchase.paid_points_value:
        target = purchase.paid_points
    else:
        target = int(
            (purchase.paid_points * after / purchase.paid_points_value).to_integral_value(
                rounding=ROUND_DOWN
            )
        )
    points = target - ledger.refunded(session, capture_txn)
    if points <= 0:
        return Refunded(0, (after - before).quantize(CENT), None)
    txn = ledger.refund_capture(
        session,
        book,
        capture_txn.id,
        points,
        now=now,
        actor=actor,
        reason=f"return of order {purchase.external_id}",
        details={"purchase_id": purchase.id, "order": purchase.external_id},
    )
    return Refunded(points, (after - before).quantize(CENT), txn.id)
