"""Purchases, returns and claims in and out (PRODUCT.md E1, E3, E5, E6)."""

from __future__ import annotations

from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Annotated, Any

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from jifen.members.schemas import MemberRef

CENT = Decimal("0.01")
Code = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[^\x00-\x1f]+$")]
Money = Annotated[Decimal, Field(ge=0, max_digits=16, decimal_places=2)]
PositiveQuantity = Annotated[Decimal, Field(gt=0, max_digits=15, decimal_places=3)]
AttributeValue = Annotated[str, Field(max_length=200)] | int | Decimal


class LineIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sku: Code
    category: Code | None = None
    brand: Code | None = None
    quantity: PositiveQuantity = Decimal(1)
    unit_price: Money
    amount: Money | None = Field(
        None, description="quantity × unit price; computed when left out, checked when given"
    )
    discount: Money = Decimal(0)
    attributes: dict[Code, AttributeValue] = Field(
        default_factory=dict, description="e.g. fare_class, distance (rules may use them)"
    )

    @model_validator(mode="after")
    def _adds_up(self) -> LineIn:
        gross = (self.quantity * self.unit_price).quantize(CENT, rounding=ROUND_HALF_UP)
        if self.amount is None:
            self.amount = gross
        elif self.amount != gross:
            raise ValueError(f"amount {self.amount} is not quantity × unit price ({gross})")
        if self.discount > self.amount:
            raise ValueError(f"discount {self.discount} is more than the line amount {self.amount}")
        if len(self.attributes) > 20:
            raise ValueError("at most 20 attributes per line")
        return self

    @property
    def net(self) -> Decimal:
        assert self.amount is not None
        return self.amount - self.discount


class PointsPaymentIn(BaseModel):
    """Points paid part of the order: the checkout hold placed for it
    (`POST /v1/checkout/hold`), captured when the purchase is recorded."""

    model_config = ConfigDict(extra="forbid")

    hold_id: Annotated[int, Field(gt=0, lt=2**63, strict=True)]


class PurchaseIn(BaseModel):
    """A completed order. Without a member it is recorded unclaimed, for a member to claim
    later (retro-claim)."""

    model_config = ConfigDict(extra="forbid")

    member: MemberRef | None = None
    external_id: Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[^\x00-\x1f]+$")] = (
        Field(description="the order id, unique in the programme")
    )
    occurred_at: AwareDatetime
    channel: Code
    store: Code | None = None
    payment_method: Code | None = None
    lines: Annotated[list[LineIn], Field(min_length=1, max_length=500)]
    total: Money = Field(description="what the customer paid: Σ (line amount − line discount)")
    attributes: dict[Code, AttributeValue] = Field(default_factory=dict)
    points_payment: PointsPaymentIn | None = Field(
        None,
        description="points paid part of it: the hold is captured with the purchase, its "
        "value split over the eligible lines, and the order earns on the cash part only",
    )

    @field_validator("total")
    @classmethod
    def _total_adds_up(cls, total: Decimal, info: ValidationInfo) -> Decimal:
        lines: list[LineIn] | None = info.data.get("lines")
        if lines is None:  # the lines themselves were refused; that error says enough
            return total
        net = sum((line.net for line in lines), Decimal(0))
        if net != total:
            raise ValueError(
                f"total {total} does not equal the lines' amounts less discounts ({net})"
            )
        return total


class SimulateIn(PurchaseIn):
    """A purchase to price without recording it; `external_id` is not needed."""

    external_id: Annotated[str, Field(min_length=1, max_length=128)] = "simulation"


class BreakdownItem(BaseModel):
    rule: str
    name: str
    effect: str
    basis: Decimal
    lines: list[int] = Field(description="line numbers (1-based) the rule matched")
    wanted: int
    points: int
    capped_by: str | None


class Earned(BaseModel):
    points: int
    growth: int
    rule_set_version: int
    breakdown: list[BreakdownItem]
    growth_breakdown: list[BreakdownItem]


class LineOut(BaseModel):
    line_no: int
    sku: str
    category: str | None
    brand: str | None
    quantity: Decimal
    unit_price: Decimal
    amount: Decimal
    discount: Decimal
    attributes: dict[str, Any] | None
    returned_quantity: Decimal
    returned_amount: Decimal
    points_value: Decimal = Field(description="the part of the line's net amount points paid")


class ReturnSummary(BaseModel):
    id: int
    external_id: str | None
    amount: Decimal
    points: int
    growth: int
    withhold_amount: Decimal
    paid_points_refunded: int
    created_at: datetime


class PurchaseOut(BaseModel):
    id: int
    external_id: str
    member_id: int | None
    status: str
    occurred_at: datetime
    channel: str
    store: str | None
    payment_method: str | None
    total: Decimal
    net_total: Decimal
    points: int
    growth: int
    points_returned: int
    growth_returned: int
    pending_until: datetime | None = Field(
        description="when the points become available (the return window closes)"
    )
    rule_set_version: int | None
    breakdown: list[BreakdownItem]
    growth_breakdown: list[BreakdownItem]
    hold_id: int | None = Field(description="the checkout hold that paid part of it")
    paid_points: int = Field(description="points spent on the order")
    paid_points_value: Decimal = Field(
        description="what they paid: the order earned on total less this"
    )
    lines: list[LineOut]
    returns: list[ReturnSummary]
    created_at: datetime
    claimed_at: datetime | None


class ReturnLineIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    line_no: Annotated[int, Field(ge=1, le=500)]
    quantity: PositiveQuantity | None = Field(
        None, description="items returned; their share of the line's net amount is refunded"
    )
    amount: Annotated[Decimal, Field(gt=0, max_digits=16, decimal_places=2)] | None = Field(
        None, description="money refunded for the line (with no quantity: a price refund)"
    )

    @model_validator(mode="after")
    def _something(self) -> ReturnLineIn:
        if self.quantity is None and self.amount is None:
            raise ValueError("give the quantity returned, the amount refunded, or both")
        return self


class ReturnIn(BaseModel):
    """A return or refund: by lines, or by an amount spread over the remaining lines."""

    model_config = ConfigDict(extra="forbid")

    external_id: (
        Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[^\x00-\x1f]+$")] | None
    ) = Field(None, description="the refund's id: a repeat returns the first result")
    lines: Annotated[list[ReturnLineIn], Field(min_length=1, max_length=500)] | None = None
    amount: Annotated[Decimal, Field(gt=0, max_digits=16, decimal_places=2)] | None = None

    @model_validator(mode="after")
    def _lines_or_amount(self) -> ReturnIn:
        if (self.lines is None) == (self.amount is None):
            raise ValueError("give either lines or amount")
        if self.lines is not None:
            numbers = [line.line_no for line in self.lines]
            if len(numbers) != len(set(numbers)):
                raise ValueError("a line appears twice")
        return self


class ReturnOut(BaseModel):
    id: int
    purchase_id: int
    external_id: str | None
    amount: Decimal
    lines: list[dict[str, Any]]
    policy: str
    points: int = Field(description="points the award lost by this return")
    points_taken: int = Field(description="of those, taken from the member's balance")
    points_not_taken: int = Field(description="already spent and not taken (deduct/withhold)")
    withhold_amount: Decimal = Field(
        description="money to keep back from the refund for points already spent (withhold)"
    )
    paid_points_refunded: int = Field(
        description="points the order was paid with, given back by this return"
    )
    paid_points_value_refunded: Decimal = Field(
        description="the part of `amount` points had paid (given back as points)"
    )
    cash_refund: Decimal = Field(
        description="the part of `amount` to refund in money: amount less "
        "paid_points_value_refunded (keep back withhold_amount from it)"
    )
    growth: int
    breakdown: list[dict[str, Any]]
    purchase_status: str
    created_at: datetime


class ClaimIn(BaseModel):
    """Attach a recorded order to a member (a receipt from before enrolment, or without
    the card), within the programme's claim window."""

    model_config = ConfigDict(extra="forbid")

    external_id: Annotated[str, Field(min_length=1, max_length=128)]
    member: MemberRef

    @field_validator("external_id")
    @classmethod
    def _stripped(cls, value: str) -> str:
        return value.strip()
