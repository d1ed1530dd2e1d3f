"""Each condition alone, holding and not holding.

A condition is tested through a rule giving a 10-point bonus per order, so "fires" is
`{"r": 10}` and "does not" is `{}`; line conditions also say which lines they matched.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

import pytest

from jifen.rules.evaluator import evaluate
from jifen.rules.facts import Basket, MemberFacts
from jifen.rules.schemas import EarningRule

from .build import TUESDAY, basket, line, local, rule

BONUS = {"bonus": 10}


def bonus_when(**when: Any) -> EarningRule:
    return rule("r", BONUS, when=when)


def fires(when: dict[str, Any], order: Basket, member: MemberFacts | None = None) -> bool:
    got = evaluate([bonus_when(**when)], order, member or MemberFacts()).by_rule()
    assert got in ({}, {"r": 10})
    return got == {"r": 10}


def at(moment: datetime) -> Basket:
    return basket(line(10), at=moment)


ONE_LINE = basket(line(10))


# --- purchase-level -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("when", "order", "expected"),
    [
        ({"channel": ["pos", "app"]}, basket(line(1), channel="app"), True),
        ({"channel": ["pos", "app"]}, basket(line(1), channel="web"), False),
        ({"store": ["sh-001"]}, basket(line(1), store="sh-001"), True),
        ({"store": ["sh-001"]}, basket(line(1), store="sh-002"), False),
        ({"store": ["sh-001"]}, basket(line(1), store=None), False),
        ({"payment_method": ["wechat"]}, basket(line(1), payment_method="wechat"), True),
        ({"payment_method": ["wechat"]}, basket(line(1), payment_method="alipay"), False),
        ({"payment_method": ["wechat"]}, basket(line(1)), False),
    ],
)
def test_channel_store_payment_method(when: dict[str, Any], order: Basket, expected: bool) -> None:
    assert fires(when, order) is expected


DATES = {"dates": {"from": "2026-11-01", "to": "2026-11-11"}}


@pytest.mark.parametrize(
    ("moment", "expected"),
    [
        (local(2026, 10, 31, 23, 59), False),
        (local(2026, 11, 1, 0, 0), True),  # first day included
        (local(2026, 11, 11, 23, 59), True),  # last day included, to its last minute
        (local(2026, 11, 12, 0, 0), False),
    ],
)
def test_dates_include_both_ends(moment: datetime, expected: bool) -> None:
    assert fires(DATES, at(moment)) is expected


def test_dates_open_at_one_end() -> None:
    since = {"dates": {"from": "2026-11-01"}}
    until = {"dates": {"to": "2026-11-01"}}
    assert fires(since, at(local(2030, 1, 1)))
    assert not fires(since, at(local(2026, 10, 31)))
    assert fires(until, at(local(2020, 1, 1)))
    assert not fires(until, at(local(2026, 11, 2)))


@pytest.mark.parametrize(
    ("moment", "expected"),
    [
        (local(2026, 3, 14), True),  # Saturday
        (local(2026, 3, 15), True),  # Sunday
        (local(2026, 3, 16), False),  # Monday
        (local(2026, 3, 13, 23, 59), False),  # Friday night
    ],
)
def test_weekdays_are_iso(moment: datetime, expected: bool) -> None:
    assert fires({"weekdays": [6, 7]}, at(moment)) is expected


@pytest.mark.parametrize(
    ("days", "moment", "expected"),
    [
        ([8], local(2026, 3, 8), True),
        ([8], local(2026, 3, 9), False),
        ([1, 15], local(2026, 3, 15), True),
        ([-1], local(2024, 2, 29), True),  # leap year: the 29th is last
        ([-1], local(2024, 2, 28), False),
        ([-1], local(2025, 2, 28), True),  # common year: the 28th is last
        ([-1], local(2025, 2, 27), False),
        ([-1], local(2026, 4, 30), True),
        ([-1], local(2026, 12, 31), True),
        ([-1], local(2026, 12, 30), False),
        ([31], local(2026, 4, 30), False),  # 31 never falls in a 30-day month
        ([8, -1], local(2026, 1, 8), True),
        ([8, -1], local(2026, 1, 31), True),
        ([8, -1], local(2026, 1, 30), False),
    ],
)
def test_days_of_month(days: list[int], moment: datetime, expected: bool) -> None:
    assert fires({"days_of_month": days}, at(moment)) is expected


@pytest.mark.parametrize(
    ("hours", "moment", "expected"),
    [
        ({"from": "14:00", "to": "17:00"}, local(2026, 3, 10, 14, 0), True),  # from included
        ({"from": "14:00", "to": "17:00"}, local(2026, 3, 10, 16, 59), True),
        ({"from": "14:00", "to": "17:00"}, local(2026, 3, 10, 17, 0), False),  # to excluded
        ({"from": "14:00", "to": "17:00"}, local(2026, 3, 10, 13, 59), False),
        # a range past midnight
        ({"from": "22:00", "to": "02:00"}, local(2026, 3, 10, 22, 0), True),
        ({"from": "22:00", "to": "02:00"}, local(2026, 3, 10, 23, 59), True),
        ({"from": "22:00", "to": "02:00"}, local(2026, 3, 11, 0, 0), True),
        ({"from": "22:00", "to": "02:00"}, local(2026, 3, 11, 1, 59), True),
        ({"from": "22:00", "to": "02:00"}, local(2026, 3, 11, 2, 0), False),
        ({"from": "22:00", "to": "02:00"}, local(2026, 3, 10, 12, 0), False),
        ({"from": "22:00", "to": "02:00"}, local(2026, 3, 10, 21, 59), False),
        # to midnight: "00:00" is the end of the day
        ({"from": "20:00", "to": "00:00"}, local(2026, 3, 10, 23, 59), True),
        ({"from": "20:00", "to": "00:00"}, local(2026, 3, 10, 0, 0), False),
    ],
)
def test_hours(hours: dict[str, str], moment: datetime, expected: bool) -> None:
    assert fires({"hours": hours}, at(moment)) is expected


@pytest.mark.parametrize(
    ("amounts", "expected"),
    [
        (["199.99"], False),  # one cent below
        (["200.00"], True),  # exactly the threshold
        (["200.01"], True),
        (["120.00", "80.00"], True),  # the order's total, not one line
        (["120.00", "79.99"], False),
    ],
)
def test_min_amount_is_on_the_order_total(amounts: list[str], expected: bool) -> None:
    order = basket(*(line(a) for a in amounts))
    assert fires({"min_amount": "200"}, order) is expected


@pytest.mark.parametrize(
    ("wanted", "first", "expected"),
    [(True, True, True), (True, False, False), (False, False, True), (False, True, False)],
)
def test_first_purchase(wanted: bool, first: bool, expected: bool) -> None:
    member = MemberFacts(first_purchase=first)
    assert fires({"first_purchase": wanted}, ONE_LINE, member) is expected


@pytest.mark.parametrize(
    ("tier", "expected"), [("gold", True), ("platinum", True), ("silver", False), (None, False)]
)
def test_tier(tier: str | None, expected: bool) -> None:
    assert fires({"tier": ["gold", "platinum"]}, ONE_LINE, MemberFacts(tier=tier)) is expected


@pytest.mark.parametrize(
    ("segments", "expected"),
    [({"students"}, True), ({"students", "vip"}, True), ({"vip"}, False), (set(), False)],
)
def test_segment_any_of(segments: set[str], expected: bool) -> None:
    member = MemberFacts(segments=frozenset(segments))
    assert fires({"segment": ["students", "new"]}, ONE_LINE, member) is expected


@pytest.mark.parametrize(
    ("wanted", "birthday", "expected"),
    [
        (True, date(1990, 3, 31), True),  # TUESDAY is in March
        (True, date(1990, 4, 1), False),
        (True, None, False),
        (False, date(1990, 4, 1), True),
        (False, None, True),
        (False, date(1990, 3, 1), False),
    ],
)
def test_birthday_month(wanted: bool, birthday: date | None, expected: bool) -> None:
    member = MemberFacts(birthday=birthday)
    assert fires({"birthday_month": wanted}, basket(line(1), at=TUESDAY), member) is expected


def test_birthday_month_is_the_local_month() -> None:
    # 2026-03-31 23:30 in Shanghai is still March there (15:30 UTC)
    member = MemberFacts(birthday=date(1990, 3, 5))
    assert fires({"birthday_month": True}, at(local(2026, 3, 31, 23, 30)), member)
    assert not fires({"birthday_month": True}, at(local(2026, 4, 1, 0, 30)), member)


# --- line-level -------------------------------------------------------------------------

LINES = basket(
    line(10, sku="rice-5kg", category="grocery", brand="jinlongyu"),
    line(20, sku="shampoo", category="personal_care", brand="head", size="large"),
    line(30, sku="soap", category="personal_care", brand="safeguard", size="small"),
    line(40, sku="tea", brand="longjing", size="large", origin="hangzhou"),
)


def matched(**when: Any) -> tuple[int, ...] | None:
    """The lines a per-line bonus matched, or None when the rule did not fire."""
    items = evaluate([rule("r", BONUS, scope="line", when=when)], LINES, MemberFacts()).items
    if not items:
        return None
    (item,) = items
    assert item.points == 10 * len(item.lines)
    return item.lines


@pytest.mark.parametrize(
    ("when", "lines"),
    [
        ({"sku": ["soap", "tea"]}, (2, 3)),
        ({"sku": ["coffee"]}, None),
        ({"category": ["personal_care"]}, (1, 2)),
        ({"category": ["toys"]}, None),
        ({"brand": ["jinlongyu", "longjing"]}, (0, 3)),
        ({"brand": ["nike"]}, None),
        ({"attributes": {"size": ["large"]}}, (1, 3)),
        ({"attributes": {"size": ["large", "small"]}}, (1, 2, 3)),
        ({"attributes": {"size": ["large"], "origin": ["hangzhou"]}}, (3,)),  # all named
        ({"attributes": {"size": ["medium"]}}, None),
        ({"attributes": {"colour": ["red"]}}, None),  # a line without it does not match
        # several line conditions: a line must meet all
        ({"category": ["personal_care"], "brand": ["head"]}, (1,)),
        ({"category": ["grocery"], "brand": ["head"]}, None),
        ({}, (0, 1, 2, 3)),  # no line condition: every line
    ],
)
def test_line_conditions_select_lines(when: dict[str, Any], lines: tuple[int, ...] | None) -> None:
    assert matched(**when) == lines


def test_line_conditions_need_one_matching_line_to_fire() -> None:
    when = {"category": ["grocery"]}
    assert fires(when, basket(line(1, category="grocery"), line(1, category="toys")))
    assert not fires(when, basket(line(1, category="toys")))
    assert not fires(when, basket(line(1)))  # no category at all


def test_purchase_and_line_conditions_together() -> None:
    when = {"channel": ["app"], "category": ["grocery"]}
    assert fires(when, basket(line(1, category="grocery"), channel="app"))
    assert not fires(when, basket(line(1, category="grocery"), channel="pos"))
    assert not fires(when, basket(line(1, category="toys"), channel="app"))


def test_all_conditions_must_hold() -> None:
    when = {"weekdays": [2], "hours": {"from": "14:00", "to": "15:00"}, "min_amount": "10"}
    assert fires(when, basket(line(10), at=TUESDAY))
    assert not fires(when, basket(line(9.99), at=TUESDAY))
    assert not fires(when, basket(line(10), at=local(2026, 3, 10, 15, 0)))
    assert not fires(when, basket(line(10), at=local(2026, 3, 11, 14, 0)))
