"""Typed builders for rule tests: rules written as a programme file would write them,
baskets at a local time in Asia/Shanghai, and the award's points by rule."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from jifen.rules.evaluator import Award, CompiledRule, evaluate
from jifen.rules.facts import Allowances, Basket, Line, MemberFacts
from jifen.rules.schemas import EarningRule

SHANGHAI = ZoneInfo("Asia/Shanghai")
NOBODY = MemberFacts()


def rule(rule_id: str, effect: Mapping[str, Any], **fields: Any) -> EarningRule:
    """A rule from the dict a programme file's YAML would give."""
    return EarningRule.model_validate({"id": rule_id, "name": rule_id, "effect": effect} | fields)


def base(rule_id: str = "base", rate: Any = 1, **fields: Any) -> EarningRule:
    return rule(rule_id, {"points_per_amount": rate}, **fields)


def line(
    amount: Any,
    *,
    sku: str = "sku-1",
    quantity: Any = 1,
    category: str | None = None,
    brand: str | None = None,
    **attributes: str,
) -> Line:
    return Line(
        sku=sku,
        quantity=Decimal(str(quantity)),
        amount=Decimal(str(amount)),
        category=category,
        brand=brand,
        attributes=attributes,
    )


def local(year: int, month: int, day: int, hour: int = 12, minute: int = 0) -> datetime:
    """A wall-clock time in Asia/Shanghai (the programme's default zone)."""
    return datetime(year, month, day, hour, minute, tzinfo=SHANGHAI)


def from_utc(instant: datetime) -> datetime:
    """What the service does with a stored UTC instant before evaluating."""
    assert instant.tzinfo is UTC
    return instant.astimezone(SHANGHAI)


TUESDAY = local(2026, 3, 10, 14, 0)
"""An ordinary afternoon: a Tuesday, not the 8th, not a weekend."""


def basket(
    *lines: Line,
    at: datetime = TUESDAY,
    channel: str = "pos",
    store: str | None = None,
    payment_method: str | None = None,
) -> Basket:
    return Basket(at=at, channel=channel, lines=lines, store=store, payment_method=payment_method)


def award(
    rules: Sequence[EarningRule | CompiledRule],
    order: Basket,
    member: MemberFacts = NOBODY,
    **options: Any,
) -> Award:
    return evaluate(rules, order, member, **options)


def points(
    rules: Sequence[EarningRule | CompiledRule],
    order: Basket,
    member: MemberFacts = NOBODY,
    *,
    allowances: Allowances | None = None,
) -> dict[str, int]:
    """Points by rule id (only rules that wanted points appear)."""
    return evaluate(rules, order, member, allowances=allowances).by_rule()
