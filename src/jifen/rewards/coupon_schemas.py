"""Coupons in and out (PRODUCT.md R3): what a till or an app sends to check and use a
coupon, and how a coupon is shown."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from jifen.earning.schemas import LineIn
from jifen.members.schemas import MemberRef

Money = Annotated[Decimal, Field(ge=0, max_digits=16, decimal_places=2)]
OrderId = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[^\x00-\x1f]+$")]
Lines = Annotated[list[LineIn], Field(min_length=1, max_length=500)]


class CouponState(StrEnum):
    """What a coupon is now. `expired` includes a coupon past its `expires_at` that the
    coupon-expiry job has not marked yet: it is refused all the same."""

    ISSUED = "issued"
    USED = "used"
    EXPIRED = "expired"
    CANCELLED = "cancelled"


class BasketIn(BaseModel):
    """The order a coupon is checked against: the same lines a purchase sends."""

    model_config = ConfigDict(extra="forbid")

    member: MemberRef | None = Field(
        None, description="who presents it; a coupon of another member is refused"
    )
    lines: Lines
    delivery_fee: Money | None = Field(
        None, description="the order's delivery fee (a free-delivery coupon waives it)"
    )


class UseIn(BasketIn):
    order: OrderId = Field(
        description="the order's id, as the purchase will record it (`external_id`): using "
        "the coupon again for the same order returns the first result"
    )


class CancelIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: Annotated[str, Field(min_length=1, max_length=500)]


class CouponOut(BaseModel):
    code: str = Field(description="as stored: 15 characters, no separators")
    display: str = Field(description="as printed for people: three groups of five")
    status: CouponState
    member_id: int
    reward: str = Field(description="the code of the reward it was redeemed as")
    reward_name: str
    redemption_id: int
    kind: str = Field(description="fixed, percent or free_delivery")
    amount: Decimal | None = Field(description="fixed: the amount off")
    percent: Decimal | None = Field(description="percent: the share off, in percent")
    cap: Decimal | None = Field(description="the most it takes off (percent, free delivery)")
    min_spend: Decimal = Field(description="the eligible lines must come to at least this")
    categories: list[str] | None = Field(
        description="only lines of these categories count (None: every line)"
    )
    issued_at: datetime
    expires_at: datetime = Field(description="valid until this instant (exclusive)")
    used_at: datetime | None
    used_order: str | None = Field(description="the order it was used on")
    purchase_id: int | None = Field(
        description="the purchase recorded with that order id, once the till has sent it"
    )
    discount: Decimal | None = Field(description="what it took off that order")
    closed_at: datetime | None = Field(description="when it expired or was cancelled")
    cancel_reason: str | None


class CouponCheck(BaseModel):
    """A coupon that can be used on the basket, and what it takes off."""

    coupon: CouponOut
    discount: Decimal
    eligible_amount: Decimal = Field(
        description="what the eligible lines come to (min_spend and percent apply to it)"
    )
    eligible_lines: list[int] = Field(description="the lines it applies to, 1-based")


class CouponUse(BaseModel):
    """The coupon used on an order, and what it took off."""

    coupon: CouponOut
    order: str
    discount: Decimal
    repeated: bool = Field(
        description="true: the coupon had already been used on this order; this is that "
        "first result (nothing was written)"
    )
