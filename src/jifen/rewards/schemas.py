"""The rewards catalog and redemptions in and out (PRODUCT.md R1, R2, R5).

A reward is written as a `jifen.programs.rewards.RewardSpec` (the programme file's
`rewards:` items and the body of `PUT /v1/rewards/{code}`) and read back as `RewardOut`:
the spec plus its counters (`redeemed`, `left`) and, when a member is named, what that
member would pay and whether they may redeem it now (`MemberOffer`).
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from jifen.members.schemas import MemberRef
from jifen.programs.rewards import CouponSpec, Experience, RewardKind, RewardSpec
from jifen.programs.tiers import RewardCode

MAX_QUANTITY = 1000
"""Units of one reward in one redemption."""

Text = Annotated[str, Field(min_length=1, max_length=200)]


class RewardPut(RewardSpec):
    """The body of `PUT /v1/rewards/{code}`: a reward spec whose `code` may be left out
    (the path names it) or must equal the path's."""

    code: RewardCode | None = None  # type: ignore[assignment]

    def spec(self, code: str) -> RewardSpec:
        fields = {name: getattr(self, name) for name in RewardSpec.model_fields}
        return RewardSpec.model_validate(fields | {"code": code})


class StockIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    add: Annotated[int, Field(ge=-(10**12), le=10**12)]
    """Units to add to `stock` (negative: write some off, never below what is redeemed)."""


class Refusal(BaseModel):
    """Why a member may not redeem a reward now: the problem type a redemption would get."""

    type: str = Field(examples=["/problems/limit-reached"])
    code: str
    detail: str


class MemberOffer(BaseModel):
    """What the named member would pay for one unit now, and whether they may redeem it."""

    member_id: int
    tier: str | None
    points: int
    cash: Decimal | None
    may_redeem: bool
    refusal: Refusal | None = None
    """The first refusal a redemption of one unit would get now (None: it would succeed)."""


class RewardOut(BaseModel):
    code: str
    name: str
    description: str | None
    kind: RewardKind
    points: int
    cash: Decimal | None
    prices: dict[str, int]
    tiers: list[str] | None
    available_from: datetime | None
    available_until: datetime | None
    stock: int | None
    redeemed: int
    """Units live redemptions hold (cancelled ones are given back)."""
    left: int | None
    """stock − redeemed; None: no limit."""
    limit_per_day: int | None
    limit_per_member: int | None
    coupon: CouponSpec | None
    experience: Experience | None
    cause: str | None
    active: bool
    available_now: bool
    """Active, inside its window, and (an experience) not yet started."""
    created_at: datetime
    updated_at: datetime
    member: MemberOffer | None = None


class ShippingAddress(BaseModel):
    """Where goods go (收货地址)."""

    model_config = ConfigDict(extra="forbid")

    name: Text
    phone: Annotated[str, Field(min_length=5, max_length=32)]
    province: Annotated[str, Field(min_length=1, max_length=100)] | None = None
    city: Annotated[str, Field(min_length=1, max_length=100)]
    district: Annotated[str, Field(min_length=1, max_length=100)] | None = None
    address: Annotated[str, Field(min_length=1, max_length=500)]
    postcode: Annotated[str, Field(min_length=1, max_length=20)] | None = None


class RedemptionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    member: MemberRef
    reward: RewardCode
    quantity: Annotated[int, Field(ge=1, le=MAX_QUANTITY)] = 1
    shipping: ShippingAddress | None = None
    """Goods: required. Other kinds: not allowed."""
    payment_reference: Annotated[str, Field(min_length=1, max_length=200)] | None = None
    """Points + cash: the payment of the cash part (required); other rewards: not allowed."""


class CancelIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: Annotated[str, Field(min_length=1, max_length=500)]


class ShipIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    carrier: Annotated[str, Field(min_length=1, max_length=100)]
    tracking: Annotated[str, Field(min_length=1, max_length=100)]


class CouponOut(BaseModel):
    code: str
    """As shown to people, in groups of five (`K7QM4-XH2RT-9PZC8`)."""
    kind: str
    amount: Decimal | None
    percent: Decimal | None
    cap: Decimal | None
    min_spend: Decimal
    categories: list[str] | None
    status: str
    issued_at: datetime
    expires_at: datetime


class Fulfilment(BaseModel):
    carrier: str | None = None
    tracking: str | None = None
    shipped_at: AwareDatetime | None = None
    delivered_at: AwareDatetime | None = None
    cancelled_at: AwareDatetime | None = None
    cancel_reason: str | None = None


class RedemptionOut(BaseModel):
    id: int
    member_id: int
    reward: str
    reward_name: str
    kind: RewardKind
    quantity: int
    points: int
    """Points paid in all (the member's tier price × quantity); 0 for a gift."""
    cash: Decimal | None
    """Money paid besides the points, in all."""
    payment_reference: str | None
    status: str
    source: str
    """redeemed, benefit or birthday."""
    tier: str | None
    cause: str | None
    shipping: ShippingAddress | None
    fulfilment: Fulfilment
    coupons: list[CouponOut]
    experience: Experience | None
    spend_transaction_id: int | None
    cancel_transaction_id: int | None
    details: dict[str, Any] | None
    created_at: datetime
    updated_at: datetime
    actor: str


class CauseTotal(BaseModel):
    cause: str
    donations: int
    """Live (not cancelled) donation redemptions."""
    units: int
    points: int
    members: int
    """Distinct members who donated."""


class CharityTotals(BaseModel):
    causes: list[CauseTotal]
