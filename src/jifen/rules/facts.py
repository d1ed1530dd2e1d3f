"""What the evaluator reads: a basket, the member as they were at the purchase, and how
much each capped rule may still give. Plain frozen values, built by the caller."""

from __future__ import annotations

import calendar
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from functools import cached_property

from jifen.rules.schemas import Period


@dataclass(frozen=True)
class Line:
    sku: str
    quantity: Decimal
    amount: Decimal
    """Net: what the customer paid for the line, after its discount."""
    category: str | None = None
    brand: str | None = None
    attributes: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Basket:
    at: datetime
    """When the purchase happened, in the programme's time zone (aware)."""
    channel: str
    lines: tuple[Line, ...]
    store: str | None = None
    payment_method: str | None = None

    def __post_init__(self) -> None:
        if self.at.tzinfo is None:
            raise ValueError("Basket.at must be an aware local time")

    @cached_property
    def total(self) -> Decimal:
        """The order's net amount (every rule with min_amount asks: summed once)."""
        return sum((line.amount for line in self.lines), Decimal(0))


@dataclass(frozen=True)
class MemberFacts:
    tier: str | None = None
    segments: frozenset[str] = frozenset()
    first_purchase: bool = False
    """No earlier purchase of this member is recorded (one returned since counts too, so a
    refunded first order cannot earn a first-purchase bonus twice)."""
    birthday: date | None = None
    tier_multiplier: Decimal | None = None
    """The member's tier's `earn_multiplier` (what `multiplier: tier` rules use); None:
    the tier has none."""


Allowances = Mapping[str, int]
"""Rule id → points the rule may still give this member (the tightest of its period caps
and its budget); a rule not listed is unbounded."""


def period_key(period: Period | str, day: date) -> str:
    """The counter key of the local `period` containing `day` ('total' for the whole life)."""
    if period in {"total", "ever"}:
        return "total"
    if period == Period.DAY:
        return f"day:{day.isoformat()}"
    if period == Period.WEEK:
        year, week, _ = day.isocalendar()
        return f"week:{year}-W{week:02d}"
    if period == Period.MONTH:
        return f"month:{day.year}-{day.month:02d}"
    if period == Period.YEAR:
        return f"year:{day.year}"
    raise ValueError(f"unknown period {period!r}")


def is_last_day_of_month(day: date) -> bool:
    return day.day == calendar.monthrange(day.year, day.month)[1]
