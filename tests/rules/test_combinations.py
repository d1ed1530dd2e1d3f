"""Rules together: the retail chain of PRODUCT.md E2, multipliers adding up, and the
programme's time zone at the edges of a member day."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from jifen.rules.facts import MemberFacts

from .build import base, basket, from_utc, line, local, points, rule

RETAIL = [
    base(name="1 元 = 1 积分"),
    rule("double-fresh", {"multiplier": 2}, when={"category": ["fresh", "dairy"]}),
    rule("member-day", {"multiplier": 2}, when={"days_of_month": [8]}),
    rule("spend-200", {"bonus": 20}, when={"min_amount": 200}, stacking="best_of", group="spend"),
    rule("spend-500", {"bonus": 80}, when={"min_amount": 500}, stacking="best_of", group="spend"),
]


def test_retail_ordinary_day() -> None:
    order = basket(line("68.50", category="fresh"), line("120.00", category="household"))
    assert points(RETAIL, order) == {"base": 188, "double-fresh": 68}


def test_retail_threshold_bonus() -> None:
    order = basket(line("30.00", category="dairy"), line("199.90", category="household"))
    assert points(RETAIL, order) == {"base": 229, "double-fresh": 30, "spend-200": 20}


def test_retail_the_bigger_threshold_replaces_the_smaller() -> None:
    order = basket(line("520.00", category="electronics"))
    assert points(RETAIL, order) == {"base": 520, "spend-500": 80}


def test_retail_member_day_stacks_with_double_points() -> None:
    order = basket(
        line("100.00", category="fresh"), line("150.00", category="household"), at=local(2026, 3, 8)
    )
    # base 250; fresh line doubled (+100); member day doubles everything (+250); 满200送20
    assert points(RETAIL, order) == {
        "base": 250,
        "double-fresh": 100,
        "member-day": 250,
        "spend-200": 20,
    }


def test_two_multipliers_add_up() -> None:
    rules = [base(), rule("double", {"multiplier": 2}), rule("triple", {"multiplier": 3})]
    got = points(rules, basket(line(100)))
    assert got == {"base": 100, "double": 100, "triple": 200}
    assert sum(got.values()) == 400  # 2× and 3× make 4×, not 6×


def test_tier_multipliers() -> None:
    rules = [
        base(),
        rule("silver", {"multiplier": "1.2"}, when={"tier": ["silver"]}),
        rule("gold", {"multiplier": "1.5"}, when={"tier": ["gold"]}),
    ]
    order = basket(line("99.00"))
    assert points(rules, order) == {"base": 99}
    assert points(rules, order, MemberFacts(tier="silver")) == {"base": 99, "silver": 19}
    assert points(rules, order, MemberFacts(tier="gold")) == {"base": 99, "gold": 49}


# --- the programme's time zone ---------------------------------------------------------

MEMBER_DAY = [base(), rule("member-day", {"multiplier": 2}, when={"days_of_month": [8]})]


@pytest.mark.parametrize(
    ("instant", "local_time", "member_day"),
    [
        # 23:59 on the 8th in Shanghai is still the 8th UTC too
        (datetime(2026, 3, 8, 15, 59, tzinfo=UTC), "2026-03-08 23:59", True),
        # 00:01 on the 9th in Shanghai is 16:01 on the 8th UTC: no longer member day
        (datetime(2026, 3, 8, 16, 1, tzinfo=UTC), "2026-03-09 00:01", False),
        # 00:01 on the 8th in Shanghai is 16:01 on the 7th UTC: already member day
        (datetime(2026, 3, 7, 16, 1, tzinfo=UTC), "2026-03-08 00:01", True),
        (datetime(2026, 3, 7, 15, 59, tzinfo=UTC), "2026-03-07 23:59", False),
    ],
)
def test_member_day_in_local_time(instant: datetime, local_time: str, member_day: bool) -> None:
    at = from_utc(instant)
    assert at.strftime("%Y-%m-%d %H:%M") == local_time
    got = points(MEMBER_DAY, basket(line(100), at=at))
    assert got == ({"base": 100, "member-day": 100} if member_day else {"base": 100})


def test_last_day_of_month_in_local_time() -> None:
    last_day = [rule("b", {"bonus": 10}, when={"days_of_month": [-1]})]
    # 2026-02-28 16:30 UTC is already 1 March in Shanghai
    assert (
        points(last_day, basket(line(1), at=from_utc(datetime(2026, 2, 28, 16, 30, tzinfo=UTC))))
        == {}
    )
    assert points(
        last_day, basket(line(1), at=from_utc(datetime(2026, 2, 28, 15, 30, tzinfo=UTC)))
    ) == {"b": 10}


def test_weekday_and_hours_in_local_time() -> None:
    happy_hour = [
        rule("b", {"bonus": 10}, when={"weekdays": [6], "hours": {"from": "00:00", "to": "01:00"}})
    ]
    # Friday 16:30 UTC is Saturday 00:30 in Shanghai
    friday_utc = datetime(2026, 3, 13, 16, 30, tzinfo=UTC)
    assert points(happy_hour, basket(line(1), at=from_utc(friday_utc))) == {"b": 10}
