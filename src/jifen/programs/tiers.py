"""The tiers of a programme as data (PRODUCT.md T1–T3): the `tiers:` section of the file.

Pure schema, no database: `jifen.tiers` qualifies members against it, the programme file
loads and exports it, and `programs.tiers` (a JSON column) stores it.

```yaml
tiers:
  window: {kind: rolling, months: 12}   # or {kind: calendar, period: year}
  grace_days: 30                        # below the retain threshold: kept this long
  downgrade: one_down                   # or supported: straight to the tier the record supports
  levels:
    - {code: normal, name: 普通会员}     # the first level is where everyone starts: no threshold
    - code: silver
      name: 银卡会员
      enter: {growth: 1000}             # any one measure met qualifies (growth, spend, purchases)
      retain: {growth: 800}             # defaults to enter
      benefits:
        earn_multiplier: 1.2            # what an earning rule with `multiplier: tier` uses
        birthday_gift: {points: 100, reward: birthday-coupon}
        periodic: [{reward: free-delivery, every: month, count: 1}]
        perks: [生日礼遇, 专属客服]       # shown to members, nothing computed from them
```
"""

from __future__ import annotations

from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

TierCode = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$")]
RewardCode = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$")]


class Measure(StrEnum):
    GROWTH = "growth"
    """Growth value (成长值) credited in the window, less what returns took back."""
    SPEND = "spend"
    """Net spend (order totals less refunds) of purchases that occurred in the window."""
    PURCHASES = "purchases"
    """Purchases that occurred in the window and were not wholly returned."""


class Threshold(BaseModel):
    """Met when any one of the measures given is reached ("5,000 growth or 20 orders")."""

    model_config = ConfigDict(extra="forbid")

    growth: Annotated[int, Field(ge=0)] | None = None
    spend: Annotated[Decimal, Field(ge=0, max_digits=18, decimal_places=2)] | None = None
    purchases: Annotated[int, Field(ge=0)] | None = None

    @model_validator(mode="after")
    def _one_at_least(self) -> Threshold:
        if self.growth is None and self.spend is None and self.purchases is None:
            raise ValueError("give at least one of growth, spend, purchases")
        return self

    def measures(self) -> dict[Measure, Decimal]:
        given = {
            Measure.GROWTH: self.growth,
            Measure.SPEND: self.spend,
            Measure.PURCHASES: self.purchases,
        }
        return {m: Decimal(v) for m, v in given.items() if v is not None}


class Window(BaseModel):
    """What the measures count: the last `months` months (rolling), or the current
    calendar `period` in the programme's time zone (for keeping a tier, the better of the
    current and the previous period, so a status earned this year holds through the next)."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["rolling", "calendar"]
    months: Annotated[int, Field(ge=1, le=120)] | None = None
    period: Literal["month", "quarter", "year"] | None = None

    @model_validator(mode="after")
    def _shape(self) -> Window:
        if self.kind == "rolling" and (self.months is None or self.period is not None):
            raise ValueError("a rolling window gives months (and no period)")
        if self.kind == "calendar" and (self.period is None or self.months is not None):
            raise ValueError("a calendar window gives period: month, quarter or year")
        return self


class BirthdayGift(BaseModel):
    """Given by the birthday job to members of the tier, besides the programme's birthday
    points: extra points, a reward (a coupon, say), or both."""

    model_config = ConfigDict(extra="forbid")

    points: Annotated[int, Field(ge=0, le=10_000_000)] = 0
    reward: RewardCode | None = None

    @model_validator(mode="after")
    def _something(self) -> BirthdayGift:
        if self.points == 0 and self.reward is None:
            raise ValueError("give points, a reward, or both")
        return self


class PeriodicBenefit(BaseModel):
    """A reward issued free to every member of the tier once per period (by a job)."""

    model_config = ConfigDict(extra="forbid")

    reward: RewardCode
    every: Literal["month", "quarter", "year"]
    count: Annotated[int, Field(ge=1, le=100)] = 1


class Benefits(BaseModel):
    model_config = ConfigDict(extra="forbid")

    earn_multiplier: (
        Annotated[Decimal, Field(ge=1, le=100, max_digits=8, decimal_places=4)] | None
    ) = None
    birthday_gift: BirthdayGift | None = None
    periodic: list[PeriodicBenefit] = []
    perks: list[Annotated[str, Field(min_length=1, max_length=200)]] = []


class Tier(BaseModel):
    model_config = ConfigDict(extra="forbid")

    code: TierCode
    name: Annotated[str, Field(min_length=1, max_length=100)]
    enter: Threshold | None = None
    """None only for the first level (everyone's), or with `qualifiable: false`."""
    retain: Threshold | None = None
    """What keeps the tier at evaluation; defaults to `enter`."""
    qualifiable: bool = True
    """False: reached only by a grant (staff, invitation, paid membership)."""
    benefits: Benefits = Field(default_factory=Benefits)

    @property
    def keep(self) -> Threshold | None:
        return self.retain if self.retain is not None else self.enter


class DowngradePolicy(StrEnum):
    ONE_DOWN = "one_down"
    SUPPORTED = "supported"


class TierPolicy(BaseModel):
    model_config = ConfigDict(extra="forbid")

    window: Window
    grace_days: Annotated[int, Field(ge=0, le=366)] = 30
    downgrade: DowngradePolicy = DowngradePolicy.ONE_DOWN
    levels: Annotated[list[Tier], Field(min_length=1, max_length=20)]

    @model_validator(mode="after")
    def _levels(self) -> TierPolicy:
        seen: set[str] = set()
        for index, tier in enumerate(self.levels):
            if tier.code in seen:
                raise ValueError(f"tier code {tier.code!r} is given twice")
            seen.add(tier.code)
            if index == 0 and (tier.enter is not None or tier.retain is not None):
                raise ValueError(
                    f"the first level ({tier.code}) is everyone's: it has no enter or retain"
                )
            if index > 0 and tier.qualifiable and tier.enter is None:
                raise ValueError(
                    f"tier {tier.code} needs an enter threshold (or qualifiable: false)"
                )
        return self

    @property
    def base(self) -> Tier:
        return self.levels[0]

    def rank(self, code: str) -> int:
        """The level's position (0 = the base tier); a code no longer defined ranks 0."""
        for index, tier in enumerate(self.levels):
            if tier.code == code:
                return index
        return 0

    def get(self, code: str) -> Tier | None:
        return next((tier for tier in self.levels if tier.code == code), None)
