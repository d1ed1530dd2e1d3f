"""Points as payment (积分抵现, PRODUCT.md R4) in and out: quote, hold, void."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StrictInt, model_validator

from jifen.ledger.posting import MAX_POINTS
from jifen.members.schemas import MemberRef
from jifen.rewards.coupon_schemas import Lines, Money, OrderId


class _Basket(BaseModel):
    model_config = ConfigDict(extra="forbid")

    member: MemberRef
    lines: Lines = Field(description="the order's lines, as the purchase will send them")
    total: Money | None = Field(
        None, description="if given, checked: Σ (line amount − line discount)"
    )

    @model_validator(mode="after")
    def _total_adds_up(self) -> _Basket:
        net = sum((line.net for line in self.lines), Decimal(0))
        if self.total is not None and self.total != net:
            raise ValueError(
                f"total {self.total} does not equal the lines' amounts less discounts ({net})"
            )
        return self


class QuoteIn(_Basket):
    """How many points may this member use on this basket?"""


class HoldIn(_Basket):
    order: OrderId = Field(
        description="the order's id, as the purchase will record it (`external_id`)"
    )
    points: Annotated[StrictInt, Field(gt=0, le=MAX_POINTS)] = Field(
        description="the points to set aside (within the quote's rules)"
    )


class LimitedBy(StrEnum):
    SHARE = "share"
    """The programme's maximum share of the eligible amount."""
    BALANCE = "balance"
    """The member's available points (rounded down to the step)."""
    MINIMUM = "minimum"
    """What the basket or the balance allows is below the programme's minimum (or is
    nothing at all, once rounded down to the step): 0."""
    NOTHING_ELIGIBLE = "nothing_eligible"
    """Every line is in an excluded category (or costs nothing): 0."""


class Quote(BaseModel):
    member_id: int
    total: Decimal = Field(description="Σ of the lines' net amounts")
    eligible_amount: Decimal = Field(description="the lines points may pay for")
    excluded_amount: Decimal = Field(description="lines of excluded categories")
    max_share: Decimal = Field(description="the part of the eligible amount points may pay")
    share_points: int = Field(
        description="the most points the share allows (rounded down to the step)"
    )
    available: int = Field(description="the member's available points now")
    max_points: int = Field(
        description="the most points usable on this basket: the smaller of share_points and "
        "available rounded down to the step; 0 when that is below min_points"
    )
    max_value: Decimal = Field(description="what max_points pay, in money")
    min_points: int
    step: int
    point_value_points: int = Field(description="N points …")
    point_value_amount: Decimal = Field(description="… are worth this much money")
    limited_by: LimitedBy = Field(description="what decided max_points")


class CheckoutHoldOut(BaseModel):
    id: int = Field(description="the hold's id: the purchase captures it as points_payment")
    member_id: int
    order: str
    points: int
    value: Decimal = Field(description="what the points pay, in money")
    status: str = Field(description="active, captured, voided or lapsed")
    created_at: datetime
    expires_at: datetime = Field(description="it lapses (the points go back) at this instant")
    closed_at: datetime | None
    eligible_amount: Decimal = Field(description="the eligible amount it was quoted on")
