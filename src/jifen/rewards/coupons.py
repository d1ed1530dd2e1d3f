"""Coupons (PRODUCT.md R3): issue with an unguessable code (`jifen.rewards.codes`).

A coupon is issued by a redemption of a coupon reward (or a tier benefit, which is a
redemption of price 0), in the redemption's transaction. Its terms are copied from the
reward, so a later change of the catalog never changes a coupon a member already holds.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from jifen.programs.rewards import CouponSpec
from jifen.rewards import codes
from jifen.rewards.models import Coupon, CouponStatus, Redemption, Reward

ISSUE_ATTEMPTS = 5
"""Codes are 68 random bits: a clash with an existing code is all but impossible, but it
is retried (with a fresh code) rather than assumed away."""


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
    return _start_of(last + timedelta(days=1), tz)


def _start_of(day: date, tz: ZoneInfo) -> datetime:
    return datetime.combine(day, time(0), tzinfo=tz)


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
