"""Coupons (PRODUCT.md R3): issue, show, check against a basket, use once, cancel, expire.

A coupon is issued by a redemption of a coupon reward (or a tier benefit, which is a
redemption of price 0), in the redemption's transaction. Its terms are copied from the
reward, so a later change of the catalog never changes a coupon a member already holds.

What this module guarantees:
- A code is checked (alphabet, length, check character: `jifen.rewards.codes`) before
  any lookup, so a typo is a 422 that touches nothing.
- A coupon is used at most once, whatever runs at the same time: `use` is one
  conditional `UPDATE coupons SET status = 'used' … WHERE id = :id AND status = 'issued'
  AND expires_at > :now`; of two tills racing, the row lock lets exactly one match, and
  the other re-reads the row and is refused naming the order the coupon went to.
- The same order again gets the first result (its discount), however often it is sent
  and with whatever Idempotency-Key: a till that lost the answer can always ask again.
- A coupon past its `expires_at` is refused by `check` and `use` at once; the
  coupon-expiry job (`expire_due`) only makes the stored status say so, in batches.
- Checking writes nothing; every refusal writes nothing.

Statuses: issued → used (by `use`), issued → expired (its time passed), issued →
cancelled (by staff, or with its redemption). Used, expired and cancelled are final.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_DOWN, Decimal
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import and_, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from jifen.core.clock import start_of_day
from jifen.db.outbox import emit, emit_many
from jifen.earning.models import Purchase
from jifen.earning.schemas import LineIn
from jifen.ledger.jobs import StepResult
from jifen.members import service as members
from jifen.members.schemas import MemberRef
from jifen.programs.rewards import CouponKind, CouponSpec
from jifen.rewards import codes
from jifen.rewards.coupon_schemas import (
    BasketIn,
    CouponCheck,
    CouponOut,
    CouponState,
    CouponUse,
    UseIn,
)
from jifen.rewards.errors import CouponNotApplicable, CouponNotUsable, UnknownCoupon
from jifen.rewards.models import Coupon, CouponStatus, Redemption, Reward

CENT = Decimal("0.01")
EXPIRY_ACTOR = "job:coupon-expiry"

ISSUE_ATTEMPTS = 5
"""Codes are 68 random bits: a clash with an existing code is all but impossible, but it
is retried (with a fresh code) rather than assumed away."""


# ---------------------------------------------------------------- issue


def coupon_spec(reward: Reward) -> CouponSpec:
    details = reward.details or {}
    assert "coupon" in details, f"reward {reward.code} is not a coupon"
    return CouponSpec.model_validate(details["coupon"])


def expiry(spec: CouponSpec, issued_at: datetime, tz: ZoneInfo) -> datetime:
    """The end of the coupon's last valid programme-local day."""
    if spec.valid_days is not None:
        last = issued_at.astimezone(tz).date() + timedelta(days=spec.valid_days - 1)
    else:
        assert spec.valid_until is not None
        last = spec.valid_until
    return start_of_day(last + timedelta(days=1), tz)


def issue(
    session: Session,
    redemption: Redemption,
    reward: Reward,
    *,
    tz: ZoneInfo,
    now: datetime,
) -> list[Coupon]:
    """One coupon per unit of the redemption, with the reward's terms as they are now."""
    spec = coupon_spec(reward)
    expires_at = expiry(spec, now, tz)
    issued = []
    for _ in range(redemption.quantity):
        for attempt in range(ISSUE_ATTEMPTS):
            coupon = Coupon(
                program_id=redemption.program_id,
                member_id=redemption.member_id,
                reward_id=reward.id,
                redemption_id=redemption.id,
                code=codes.new_code(),
                kind=spec.kind.value,
                amount=spec.amount,
                percent=spec.percent,
                cap=spec.cap,
                min_spend=spec.min_spend or Decimal(0),
                categories=list(spec.categories) if spec.categories else None,
                status=CouponStatus.ISSUED,
                issued_at=now,
                expires_at=expires_at,
            )
            try:
                with session.begin_nested():
                    session.add(coupon)
                    session.flush()
            except IntegrityError:  # pragma: no cover - a 68-bit clash
                if attempt == ISSUE_ATTEMPTS - 1:
                    raise
                continue
            issued.append(coupon)
            break
    return issued


# ---------------------------------------------------------------- reading


def find(session: Session, program_id: int, text: str) -> Coupon:
    """The programme's coupon with the code in `text` (any case and separators).

    A malformed code is refused before the lookup (`CouponCodeInvalid`, 422); a
    well-formed one no coupon has is `UnknownCoupon` (404)."""
    code = codes.normalise(text)
    coupon = session.execute(
        select(Coupon)
        .where(Coupon.program_id == program_id, Coupon.code == code)
        .execution_options(populate_existing=True)
    ).scalar_one_or_none()
    if coupon is None:
        raise UnknownCoupon(code=codes.display(code))
    return coupon


def state(coupon: Coupon, now: datetime) -> CouponState:
    """The coupon's status now: an issued coupon past its time is expired, whether or
    not the job has marked it."""
    if coupon.status == CouponStatus.ISSUED and coupon.expires_at <= now:
        return CouponState.EXPIRED
    return CouponState(coupon.status)


def _in_state(wanted: CouponState, now: datetime) -> ColumnElement[bool]:
    issued = Coupon.status == CouponStatus.ISSUED
    if wanted == CouponState.ISSUED:
        return and_(issued, Coupon.expires_at > now)
    if wanted == CouponState.EXPIRED:
        return or_(Coupon.status == CouponStatus.EXPIRED, and_(issued, Coupon.expires_at <= now))
    return Coupon.status == wanted.value


def list_for_member(
    session: Session,
    program_id: int,
    member_id: int,
    *,
    now: datetime,
    status: CouponState | None = None,
    before: int | None = None,
    limit: int = 50,
) -> list[CouponOut]:
    """A member's coupons, newest first (pass the last id shown as `before` for more)."""
    members.get(session, program_id, member_id)
    query = select(Coupon).where(Coupon.program_id == program_id, Coupon.member_id == member_id)
    if status is not None:
        query = query.where(_in_state(status, now))
    if before is not None:
        query = query.where(Coupon.id < before)
    found = list(session.execute(query.order_by(Coupon.id.desc()).limit(limit)).scalars())
    return describe_many(session, found, now)


def describe(session: Session, coupon: Coupon, now: datetime) -> CouponOut:
    return describe_many(session, [coupon], now)[0]


def describe_many(session: Session, found: Sequence[Coupon], now: datetime) -> list[CouponOut]:
    reward_ids = {c.reward_id for c in found}
    rewards = {
        r.id: r for r in session.execute(select(Reward).where(Reward.id.in_(reward_ids))).scalars()
    }
    orders = {c.used_order for c in found if c.used_order is not None}
    purchases: dict[tuple[int, str], int] = {}
    if orders:
        program_ids = {c.program_id for c in found}
        for pid, external_id, purchase_id in session.execute(
            select(Purchase.program_id, Purchase.external_id, Purchase.id).where(
                Purchase.program_id.in_(program_ids), Purchase.external_id.in_(orders)
            )
        ):
            purchases[(pid, external_id)] = purchase_id
    return [
        CouponOut(
            code=c.code,
            display=codes.display(c.code),
            status=state(c, now),
            member_id=c.member_id,
            reward=rewards[c.reward_id].code,
            reward_name=rewards[c.reward_id].name,
            redemption_id=c.redemption_id,
            kind=c.kind,
            amount=c.amount,
            percent=c.percent,
            cap=c.cap,
            min_spend=c.min_spend,
            categories=c.categories,
            issued_at=c.issued_at,
            expires_at=c.expires_at,
            used_at=c.used_at,
            used_order=c.used_order,
            purchase_id=purchases.get((c.program_id, c.used_order)) if c.used_order else None,
            discount=c.discount,
            closed_at=c.closed_at,
            cancel_reason=c.cancel_reason,
        )
        for c in found
    ]


# ---------------------------------------------------------------- the discount


@dataclass(frozen=True)
class Discount:
    amount: Decimal
    eligible_amount: Decimal
    eligible_lines: tuple[int, ...]
    """0-based indexes of the lines the coupon applies to."""


def discount_for(coupon: Coupon, lines: Sequence[LineIn], delivery_fee: Decimal | None) -> Discount:
    """What the coupon takes off this basket (pure), or `CouponNotApplicable`.

    Only lines of the coupon's categories are eligible (every line when it names none);
    `min_spend` counts eligible lines only. Fixed: the amount, at most what the eligible
    lines come to. Percent: eligible × percent / 100 rounded down to the cent, at most
    `cap`. Free delivery: the delivery fee, at most `cap`."""
    shown = codes.display(coupon.code)
    wanted = set(coupon.categories) if coupon.categories else None
    eligible = tuple(i for i, line in enumerate(lines) if wanted is None or line.category in wanted)
    if not eligible:
        raise CouponNotApplicable(
            code=shown, reason="no-eligible-line", categories=", ".join(sorted(wanted or ()))
        )
    total = sum((lines[i].net for i in eligible), Decimal(0))
    if total < coupon.min_spend:
        raise CouponNotApplicable(
            code=shown,
            reason="min-spend",
            min_spend=f"{coupon.min_spend:.2f}",
            eligible=f"{total:.2f}",
        )
    kind = CouponKind(coupon.kind)
    if kind == CouponKind.FIXED:
        assert coupon.amount is not None
        amount = min(coupon.amount, total)
    elif kind == CouponKind.PERCENT:
        assert coupon.percent is not None
        amount = (total * coupon.percent / 100).quantize(CENT, rounding=ROUND_DOWN)
    else:
        if not delivery_fee:
            raise CouponNotApplicable(code=shown, reason="no-delivery-fee")
        amount = delivery_fee
    if coupon.cap is not None and kind != CouponKind.FIXED:
        amount = min(amount, coupon.cap)
    if amount <= 0:
        raise CouponNotApplicable(code=shown, reason="nothing-off", eligible=f"{total:.2f}")
    return Discount(amount.quantize(CENT), total.quantize(CENT), eligible)


def refuse_unusable(coupon: Coupon, now: datetime) -> None:
    """`CouponNotUsable` unless the coupon is issued and within its time."""
    shown = codes.display(coupon.code)
    current = state(coupon, now)
    if current == CouponState.USED:
        raise CouponNotUsable(
            code=shown,
            reason="used",
            order=coupon.used_order,
            used_at=_iso(coupon.used_at),
        )
    if current == CouponState.CANCELLED:
        raise CouponNotUsable(code=shown, reason="cancelled", closed_at=_iso(coupon.closed_at))
    if current == CouponState.EXPIRED:
        raise CouponNotUsable(code=shown, reason="expired", expires_at=_iso(coupon.expires_at))


def _iso(at: datetime | None) -> str:
    return at.isoformat() if at is not None else "—"


def _refuse_other_member(
    session: Session, coupon: Coupon, program_id: int, ref: MemberRef | None
) -> None:
    if ref is None:
        return  # a bearer coupon: the unguessable code is what entitles
    member = members.resolve(session, program_id, ref)
    if member.id != coupon.member_id:
        raise CouponNotApplicable(code=codes.display(coupon.code), reason="other-member")


# ---------------------------------------------------------------- check and use


def check(
    session: Session, program_id: int, text: str, data: BasketIn, *, now: datetime
) -> CouponCheck:
    """Could the coupon be used on this basket now, and what would it take off? Writes
    nothing; refused exactly as `use` would refuse it."""
    coupon = find(session, program_id, text)
    refuse_unusable(coupon, now)
    _refuse_other_member(session, coupon, program_id, data.member)
    found = discount_for(coupon, data.lines, data.delivery_fee)
    return CouponCheck(
        coupon=describe(session, coupon, now),
        discount=found.amount,
        eligible_amount=found.eligible_amount,
        eligible_lines=[i + 1 for i in found.eligible_lines],
    )


def use(
    session: Session, program_id: int, text: str, data: UseIn, *, now: datetime, actor: str
) -> CouponUse:
    """Use the coupon on `data.order`, once (see the module's docstring)."""
    coupon = find(session, program_id, text)
    if coupon.status == CouponStatus.USED and coupon.used_order == data.order:
        return _used(session, coupon, now, repeated=True)
    refuse_unusable(coupon, now)
    _refuse_other_member(session, coupon, program_id, data.member)
    found = discount_for(coupon, data.lines, data.delivery_fee)
    claimed = session.execute(
        update(Coupon)
        .where(
            Coupon.id == coupon.id,
            Coupon.status == CouponStatus.ISSUED,
            Coupon.expires_at > now,
        )
        .values(
            status=CouponStatus.USED,
            used_at=now,
            used_order=data.order,
            discount=found.amount,
            actor=actor,
        )
        .returning(Coupon.id)
        .execution_options(synchronize_session=False)
    ).scalar_one_or_none()
    # A fresh read either way: our own update, or what a concurrent use committed first.
    session.refresh(coupon)
    if claimed is None:
        if coupon.status == CouponStatus.USED and coupon.used_order == data.order:
            return _used(session, coupon, now, repeated=True)
        refuse_unusable(coupon, now)
        raise AssertionError(f"coupon {coupon.id} was not claimed and is still usable")
    emit(
        session,
        program_id=program_id,
        member_id=coupon.member_id,
        type="coupon.used",
        at=now,
        payload={
            "coupon_id": coupon.id,
            "code": coupon.code,
            "order": data.order,
            "discount": str(found.amount),
            "reward_id": coupon.reward_id,
        },
    )
    return _used(session, coupon, now, repeated=False)


def _used(session: Session, coupon: Coupon, now: datetime, *, repeated: bool) -> CouponUse:
    assert coupon.used_order is not None
    assert coupon.discount is not None
    return CouponUse(
        coupon=describe(session, coupon, now),
        order=coupon.used_order,
        discount=coupon.discount,
        repeated=repeated,
    )


def cancel(
    session: Session, program_id: int, text: str, *, reason: str, now: datetime, actor: str
) -> CouponOut:
    """Cancel an issued coupon (staff: issued in error, or abused). Cancelling it again
    returns it as it is; a used or expired coupon cannot be cancelled. The points paid for
    it are not returned here: cancel the redemption for that."""
    coupon = find(session, program_id, text)
    if coupon.status == CouponStatus.CANCELLED:
        return describe(session, coupon, now)
    refuse_unusable(coupon, now)
    claimed = session.execute(
        update(Coupon)
        .where(
            Coupon.id == coupon.id,
            Coupon.status == CouponStatus.ISSUED,
            Coupon.expires_at > now,
        )
        .values(status=CouponStatus.CANCELLED, closed_at=now, cancel_reason=reason, actor=actor)
        .returning(Coupon.id)
        .execution_options(synchronize_session=False)
    ).scalar_one_or_none()
    session.refresh(coupon)
    if claimed is None:
        if coupon.status == CouponStatus.CANCELLED:
            return describe(session, coupon, now)
        refuse_unusable(coupon, now)
        raise AssertionError(f"coupon {coupon.id} was not cancelled and is still usable")
    emit(
        session,
        program_id=program_id,
        member_id=coupon.member_id,
        type="coupon.cancelled",
        at=now,
        payload={"coupon_id": coupon.id, "code": coupon.code, "reason": reason},
    )
    return describe(session, coupon, now)


# ---------------------------------------------------------------- expiry


def expire_due(session: Session, program_id: int, now: datetime, *, limit: int) -> StepResult:
    """One batch of the coupon-expiry job: mark up to `limit` issued coupons past their
    `expires_at` expired (as of that instant), with a `coupon.expired` event each.

    Set-based: one locking SELECT (rows another worker holds are skipped) and one UPDATE
    per batch. Idempotent: only issued coupons are picked, so a rerun, a crash midway or
    a second worker never expires one twice; an empty result means nothing is due."""
    due = session.execute(
        select(Coupon.id, Coupon.member_id, Coupon.code, Coupon.expires_at)
        .where(
            Coupon.program_id == program_id,
            Coupon.status == CouponStatus.ISSUED,
            Coupon.expires_at <= now,
        )
        .order_by(Coupon.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    ).all()
    if not due:
        return StepResult()
    session.execute(
        update(Coupon)
        .where(Coupon.id.in_([row.id for row in due]), Coupon.status == CouponStatus.ISSUED)
        .values(status=CouponStatus.EXPIRED, closed_at=Coupon.expires_at, actor=EXPIRY_ACTOR)
        .execution_options(synchronize_session=False)
    )
    events: list[dict[str, Any]] = [
        {
            "program_id": program_id,
            "member_id": row.member_id,
            "type": "coupon.expired",
            "payload": {"coupon_id": row.id, "code": row.code},
            "occurred_at": row.expires_at,
        }
        for row in due
    ]
    emit_many(session, events)
    return StepResult(items=len(due))
