"""Conditions as small strategies: each holds for a purchase (and member) or matches a line.

`compile_when` turns a rule's `When` into the list of conditions it names, so the
evaluator only ever asks "does every condition hold" and "which lines match".
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Protocol

from jifen.rules.facts import Basket, Line, MemberFacts, is_last_day_of_month
from jifen.rules.schemas import DateRange, HourRange, When


class OrderCondition(Protocol):
    def holds(self, basket: Basket, member: MemberFacts) -> bool: ...


class LineCondition(Protocol):
    def matches(self, line: Line) -> bool: ...


@dataclass(frozen=True)
class OneOf:
    """The purchase's channel / store / payment method is one of these."""

    attribute: str
    values: frozenset[str]

    def holds(self, basket: Basket, member: MemberFacts) -> bool:
        return getattr(basket, self.attribute) in self.values


@dataclass(frozen=True)
class InDates:
    dates: DateRange

    def holds(self, basket: Basket, member: MemberFacts) -> bool:
        day = basket.at.date()
        start, end = self.dates.start, self.dates.end
        return (start is None or day >= start) and (end is None or day <= end)


@dataclass(frozen=True)
class OnWeekdays:
    weekdays: frozenset[int]

    def holds(self, basket: Basket, member: MemberFacts) -> bool:
        return basket.at.isoweekday() in self.weekdays


@dataclass(frozen=True)
class OnDaysOfMonth:
    days: frozenset[int]

    def holds(self, basket: Basket, member: MemberFacts) -> bool:
        day = basket.at.date()
        return day.day in self.days or (-1 in self.days and is_last_day_of_month(day))


@dataclass(frozen=True)
class InHours:
    hours: HourRange

    def holds(self, basket: Basket, member: MemberFacts) -> bool:
        return self.hours.contains(basket.at.timetz())


@dataclass(frozen=True)
class MinAmount:
    amount: Decimal

    def holds(self, basket: Basket, member: MemberFacts) -> bool:
        return basket.total >= self.amount


@dataclass(frozen=True)
class FirstPurchase:
    wanted: bool

    def holds(self, basket: Basket, member: MemberFacts) -> bool:
        return member.first_purchase == self.wanted


@dataclass(frozen=True)
class InTier:
    tiers: frozenset[str]

    def holds(self, basket: Basket, member: MemberFacts) -> bool:
        return member.tier in self.tiers


@dataclass(frozen=True)
class InSegment:
    segments: frozenset[str]

    def holds(self, basket: Basket, member: MemberFacts) -> bool:
        return not self.segments.isdisjoint(member.segments)


@dataclass(frozen=True)
class BirthdayMonth:
    wanted: bool

    def holds(self, basket: Basket, member: MemberFacts) -> bool:
        in_month = member.birthday is not None and member.birthday.month == basket.at.month
        return in_month == self.wanted


@dataclass(frozen=True)
class LineField:
    """The line's sku / category / brand is one of these."""

    attribute: str
    values: frozenset[str]

    def matches(self, line: Line) -> bool:
        return getattr(line, self.attribute) in self.values


@dataclass(frozen=True)
class LineAttributes:
    """Each named line attribute has one of its listed values."""

    wanted: Mapping[str, frozenset[str]]

    def matches(self, line: Line) -> bool:
        return all(line.attributes.get(name) in values for name, values in self.wanted.items())


def _set(values: Collection[object]) -> frozenset[str]:
    return frozenset(str(v) for v in values)


def compile_when(when: When) -> tuple[list[OrderCondition], list[LineCondition]]:
    order: list[OrderCondition] = []
    for name in ("channel", "store", "payment_method"):
        if (values := getattr(when, name)) is not None:
            order.append(OneOf(name, _set(values)))
    if when.dates is not None:
        order.append(InDates(when.dates))
    if when.weekdays is not None:
        order.append(OnWeekdays(frozenset(when.weekdays)))
    if when.days_of_month is not None:
        order.append(OnDaysOfMonth(frozenset(when.days_of_month)))
    if when.hours is not None:
        order.append(InHours(when.hours))
    if when.min_amount is not None:
        order.append(MinAmount(when.min_amount))
    if when.first_purchase is not None:
        order.append(FirstPurchase(when.first_purchase))
    if when.tier is not None:
        order.append(InTier(_set(when.tier)))
    if when.segment is not None:
        order.append(InSegment(_set(when.segment)))
    if when.birthday_month is not None:
        order.append(BirthdayMonth(when.birthday_month))
    lines: list[LineCondition] = []
    for name in ("sku", "category", "brand"):
        if (values := getattr(when, name)) is not None:
            lines.append(LineField(name, _set(values)))
    if when.attributes is not None:
        lines.append(LineAttributes({k: _set(v) for k, v in when.attributes.items()}))
    return order, lines
