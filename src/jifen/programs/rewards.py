"""A reward of the catalog as data (PRODUCT.md R1): the `rewards:` section of the programme
file, and the body of `PUT /v1/rewards/{code}`.

Pure schema, no database: `jifen.rewards` stores a spec as a `rewards` row and redeems
it. One field, `stock`, is the number that may ever be redeemed (goods in the
warehouse, seats of an experience, or a total limit on coupons); what is left is
`stock` less what live redemptions hold, so applying the same file twice never resets
what members have already taken, and a restock raises `stock`.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from enum import StrEnum
from typing import Annotated

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from jifen.programs.tiers import RewardCode, TierCode

Money = Annotated[Decimal, Field(ge=0, max_digits=18, decimal_places=2)]


class RewardKind(StrEnum):
    COUPON = "coupon"
    """A voucher with a code (fixed amount, percent off with a cap, free delivery)."""
    GOODS = "goods"
    """Physical goods: stock, a shipping address, pending → shipped → delivered."""
    SERVICE = "service"
    """A service the business performs (priority service, gift wrapping…)."""
    EXPERIENCE = "experience"
    """A seat at an event on a date (new-product trial, a concert): stock is the seats."""
    CHARITY = "charity"
    """A donation of points to a cause; totals are kept per cause."""


class CouponKind(StrEnum):
    FIXED = "fixed"
    """`amount` off an order of at least `min_spend`."""
    PERCENT = "percent"
    """`percent` off, at most `cap`."""
    FREE_DELIVERY = "free_delivery"
    """The delivery fee is waived (up to `cap`, if given)."""


class CouponSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: CouponKind
    amount: Annotated[Decimal, Field(gt=0, max_digits=18, decimal_places=2)] | None = None
    percent: Annotated[Decimal, Field(gt=0, lt=100, max_digits=5, decimal_places=2)] | None = None
    cap: Annotated[Decimal, Field(gt=0, max_digits=18, decimal_places=2)] | None = None
    min_spend: Money = Decimal(0)
    categories: list[Annotated[str, Field(min_length=1, max_length=64)]] | None = None
    """Only lines of these categories count towards `min_spend` and the discount."""
    valid_days: Annotated[int, Field(ge=1, le=3660)] | None = None
    """The coupon is valid this many programme-local days from its issue (the issue day
    counts as the first), to the end of the last one."""
    valid_until: date | None = None
    """…or to the end of this programme-local day, for every coupon issued."""

    @model_validator(mode="after")
    def _shape(self) -> CouponSpec:
        if (self.valid_days is None) == (self.valid_until is None):
            raise ValueError("give exactly one of valid_days, valid_until")
        if self.kind == CouponKind.FIXED and (self.amount is None or self.percent is not None):
            raise ValueError("a fixed coupon gives amount (and no percent)")
        if self.kind == CouponKind.PERCENT and (self.percent is None or self.amount is not None):
            raise ValueError("a percent coupon gives percent (and no amount); cap is optional")
        if self.kind == CouponKind.FREE_DELIVERY and (
            self.amount is not None or self.percent is not None
        ):
            raise ValueError("a free-delivery coupon gives neither amount nor percent")
        return self


class Experience(BaseModel):
    model_config = ConfigDict(extra="forbid")

    starts_at: AwareDatetime
    location: Annotated[str, Field(min_length=1, max_length=200)] | None = None


class RewardSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    code: RewardCode
    name: Annotated[str, Field(min_length=1, max_length=200)]
    description: Annotated[str, Field(max_length=2000)] | None = None
    kind: RewardKind
    points: Annotated[int, Field(ge=0, le=100_000_000)]
    """The price in points (0 only for rewards given as benefits, never redeemed)."""
    cash: Annotated[Decimal, Field(gt=0, max_digits=18, decimal_places=2)] | None = None
    """Points + cash: money the member pays besides the points (collected by the caller)."""
    prices: dict[TierCode, Annotated[int, Field(ge=0, le=100_000_000)]] = {}
    """A lower (or higher) points price for members of these tiers."""
    tiers: list[TierCode] | None = None
    """Only members of these tiers may redeem it (None: everyone)."""
    available_from: AwareDatetime | None = None
    available_until: AwareDatetime | None = None
    stock: Annotated[int, Field(ge=0, le=10**12)] | None = None
    """How many may ever be redeemed; None: no limit."""
    limit_per_day: Annotated[int, Field(ge=1, le=10**6)] | None = None
    """Per member per programme-local day."""
    limit_per_member: Annotated[int, Field(ge=1, le=10**6)] | None = None
    """Per member, ever (cancelled redemptions do not count)."""
    coupon: CouponSpec | None = None
    experience: Experience | None = None
    cause: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$")] | None = None
    """The charity cause donations go to (totals are kept per cause)."""
    active: bool = True

    @model_validator(mode="after")
    def _shape(self) -> RewardSpec:
        kind = self.kind
        if (kind == RewardKind.COUPON) != (self.coupon is not None):
            raise ValueError("a coupon reward, and only a coupon reward, gives coupon:")
        if (kind == RewardKind.EXPERIENCE) != (self.experience is not None):
            raise ValueError("an experience, and only an experience, gives experience:")
        if (kind == RewardKind.CHARITY) != (self.cause is not None):
            raise ValueError("a charity reward, and only a charity reward, gives cause:")
        if kind == RewardKind.CHARITY and self.cash is not None:
            raise ValueError("a donation is points only: no cash")
        if (
            self.available_from is not None
            and self.available_until is not None
            and self.available_until <= self.available_from
        ):
            raise ValueError("available_until must be after available_from")
        return self

    def price_for(self, tier: str | None) -> int:
        if tier is not None and tier in self.prices:
            return self.prices[tier]
        return self.points
