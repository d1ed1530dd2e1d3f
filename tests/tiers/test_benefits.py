"""Tier benefits: the `multiplier: tier` earning rule gives exact points per tier (and the
crossing purchase earns at the tier before it; a return re-evaluates with the tier the
purchase had), the birthday gift once a year, periodic rewards once per period — both
also when their job runs twice."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from earning.shop import PER_YUAN, give_back, item, order, points, set_rules, simulate
from jifen.earning.models import Purchase
from jifen.ledger.queries import current_balance
from jifen.programs.rulesets import save_rules
from jifen.rewards import catalog
from jifen.rules.schemas import RuleSet

from .kit import (
    LEVELS,
    given,
    grant,
    issues,
    local,
    member,
    policy,
    put_reward,
    run,
    spend,
    tier,
    tier_events,
    tiered,
)

BY_TIER = {"id": "tier-bonus", "name": "等级加倍", "effect": {"multiplier": "tier"}}


def at(*args: int) -> datetime:
    return local(*args).astimezone(UTC)


def test_the_tier_multiplier_gives_exact_points_per_tier(db, clock):
    book = tiered(db, clock)
    set_rules(db, book, clock, PER_YUAN, BY_TIER)
    members = {code: member(db, book, clock) for code in ("normal", "silver", "gold", "platinum")}
    for code, m in members.items():
        if code != "normal":
            grant(db, book, clock, m, code)
    earned = {code: spend(db, book, clock, m, "333").points for code, m in members.items()}
    # 333 base; + (m − 1) × 333 rounded down: 0.2 → 66, 0.5 → 166, 1 → 333
    assert earned == {"normal": 333, "silver": 399, "gold": 499, "platinum": 666}
    shown = spend(db, book, clock, members["silver"], "100")
    assert [(i.rule, i.points) for i in shown.breakdown] == [("base", 100), ("tier-bonus", 20)]
    assert (
        simulate(db, book, clock, order("sim", item("tea", "100"), member=members["gold"])).points
        == 150
    )


def test_the_crossing_purchase_earns_at_the_tier_before_it_and_returns_keep_that_tier(db, clock):
    book = tiered(db, clock)
    set_rules(db, book, clock, PER_YUAN, BY_TIER)
    m = member(db, book, clock)
    spend(db, book, clock, m, "999")
    crossing = spend(db, book, clock, m, "201")
    assert tier(db, book, m) == "silver"
    assert crossing.points == 201  # at normal: no bonus
    at_silver = spend(db, book, clock, m, "100")
    assert at_silver.points == 120
    spend(db, book, clock, m, "5000")  # now gold
    assert tier(db, book, m) == "gold"
    returned, _ = give_back(db, book, clock, at_silver.id, amount="50.00")
    assert returned.points == 60  # the half of 120 it earned at silver, not of 150 at gold
    stored = db.read(lambda s: s.get_one(Purchase, at_silver.id).facts)
    assert stored["tier"] == "silver"
    assert stored["tier_multiplier"] == "1.2"


def test_a_tier_without_a_multiplier_adds_nothing(db, clock):
    levels = [LEVELS[0], {"code": "silver", "name": "银卡", "enter": {"growth": 1}}]
    book = tiered(db, clock, policy(levels=levels))
    set_rules(db, book, clock, PER_YUAN, BY_TIER)
    m = member(db, book, clock)
    spend(db, book, clock, m, "1")
    assert tier(db, book, m) == "silver"
    bought = spend(db, book, clock, m, "100")
    assert bought.points == 100
    assert [i.rule for i in bought.breakdown] == ["base"]


GIFTS = [
    LEVELS[0],
    LEVELS[1] | {"benefits": {"birthday_gift": {"points": 30}}},
    LEVELS[2] | {"benefits": {"birthday_gift": {"points": 100, "reward": "bday-coupon"}}},
    LEVELS[3],
]


def _balance(db: Any, book: Any, clock: Any, m: int) -> int:
    return current_balance(db, book, m, clock.now()).available


def test_the_birthday_gift_once_a_year_for_the_tier_of_the_day(db, clock):
    book = tiered(db, clock, policy(levels=GIFTS))
    put_reward(
        db,
        book,
        clock,
        "bday-coupon",
        coupon={"kind": "fixed", "amount": "20", "valid_days": 30},
    )
    gold = member(db, book, clock, birthday=date(1990, 1, 15))
    silver = member(db, book, clock, birthday=date(1985, 1, 15))
    normal = member(db, book, clock, birthday=date(1990, 1, 15))
    tomorrow = member(db, book, clock, birthday=date(1990, 1, 16))
    grant(db, book, clock, gold, "gold")
    grant(db, book, clock, silver, "silver")
    grant(db, book, clock, tomorrow, "gold")
    report = run(db, book, clock, "birthday")
    assert (report.totals.accounts, report.totals.points) == (2, 130)
    assert [_balance(db, book, clock, m) for m in (gold, silver, normal, tomorrow)] == [
        100,
        30,
        0,
        0,
    ]
    assert given(db, book) == [(gold, "bday-coupon", "birthday", 1)]
    assert sorted(issues(db, book)) == sorted(
        [(gold, "birthday", "2026", "gold"), (silver, "birthday", "2026", "silver")]
    )
    again = run(db, book, clock, "birthday")
    assert (again.totals.accounts, again.totals.points) == (0, 0)
    clock.set(at(2026, 1, 16, 9))
    run(db, book, clock, "birthday")
    run(db, book, clock, "birthday")
    assert _balance(db, book, clock, tomorrow) == 100
    assert len(given(db, book)) == 2
    clock.set(at(2027, 1, 15, 9))
    run(db, book, clock, "birthday")
    assert _balance(db, book, clock, gold) == 200
    assert len(given(db, book)) == 3


def test_a_birthday_month_rule_gives_the_gift_on_any_day_of_the_month_once(db, clock):
    book = tiered(db, clock, policy(levels=GIFTS))
    rules = RuleSet.model_validate(
        {"earning_rules": [PER_YUAN], "birthday": {"points": 8, "window": "month"}}
    )
    db.write(lambda s: save_rules(s, book.program_id, rules, now=clock.now(), actor="t"))
    m = member(db, book, clock, birthday=date(1990, 1, 3))
    grant(db, book, clock, m, "silver")
    run(db, book, clock, "birthday")
    clock.set(at(2026, 1, 28, 9))
    run(db, book, clock, "birthday")
    assert _balance(db, book, clock, m) == 8 + 30
    assert issues(db, book) == [(m, "birthday", "2026", "silver")]


PERIODIC = [
    LEVELS[0] | {"benefits": {"periodic": [{"reward": "welcome", "every": "year"}]}},
    LEVELS[1],
    LEVELS[2] | {"benefits": {"periodic": [{"reward": "free-delivery", "every": "month"}]}},
    LEVELS[3]
    | {
        "benefits": {
            "periodic": [
                {"reward": "free-delivery", "every": "month", "count": 2},
                {"reward": "lounge", "every": "quarter"},
            ]
        }
    },
]


def test_periodic_benefits_once_per_period_even_when_the_job_runs_twice(db, clock):
    book = tiered(db, clock, policy(levels=PERIODIC))
    put_reward(db, book, clock, "free-delivery")
    put_reward(db, book, clock, "welcome")
    put_reward(db, book, clock, "lounge", kind="service", stock=1, coupon=None)
    g1, g2 = member(db, book, clock), member(db, book, clock)
    p1, p2 = member(db, book, clock), member(db, book, clock)
    plain = member(db, book, clock)
    for m, code in ((g1, "gold"), (g2, "gold"), (p1, "platinum"), (p2, "platinum")):
        grant(db, book, clock, m, code)

    report = run(db, book, clock, "tier-benefits")
    assert (report.totals.accounts, report.totals.items) == (6, 8)
    assert sorted(given(db, book)) == sorted(
        [
            (plain, "welcome", "benefit", 1),
            (g1, "free-delivery", "benefit", 1),
            (g2, "free-delivery", "benefit", 1),
            (p1, "free-delivery", "benefit", 2),
            (p2, "free-delivery", "benefit", 2),
            (p1, "lounge", "benefit", 1),  # one seat: p2 waits for a restock
        ]
    )
    assert (p1, "platinum:lounge:quarter", "2026-Q1", "platinum") in issues(db, book)
    assert (p2, "platinum:lounge:quarter", "2026-Q1", "platinum") not in issues(db, book)
    before = (given(db, book), issues(db, book))
    again = run(db, book, clock, "tier-benefits")
    assert (again.totals.accounts, again.totals.items) == (0, 0)
    assert (given(db, book), issues(db, book)) == before

    db.write(lambda s: catalog.add_stock(s, book.program_id, "lounge", 1, now=clock.now()))
    run(db, book, clock, "tier-benefits")
    assert given(db, book)[-1] == (p2, "lounge", "benefit", 1)

    clock.set(at(2026, 2, 1, 0))  # a new month: the monthly ones again, not the quarterly
    report = run(db, book, clock, "tier-benefits")
    assert (report.totals.accounts, report.totals.items) == (4, 6)
    clock.set(at(2026, 4, 1, 0))
    run(db, book, clock, "tier-benefits")
    lounges = [g for g in given(db, book) if g[1] == "lounge"]
    assert len(lounges) == 2  # Q2: no seat left (stock 2, both given in Q1), none recorded
    welcome = [g for g in given(db, book) if g[1] == "welcome"]
    assert welcome == [(plain, "welcome", "benefit", 1)]


def test_a_withdrawn_reward_waits_and_a_refused_gift_is_recorded_once(db, clock):
    book = tiered(db, clock, policy(levels=PERIODIC))
    put_reward(db, book, clock, "welcome", kind="goods", coupon=None, stock=5)
    put_reward(db, book, clock, "free-delivery", active=False)
    started = {"starts_at": "2026-01-01T19:00:00+08:00"}
    put_reward(db, book, clock, "lounge", kind="experience", coupon=None, experience=started)
    m, gold, platinum = member(db, book, clock), member(db, book, clock), member(db, book, clock)
    grant(db, book, clock, gold, "gold")
    grant(db, book, clock, platinum, "platinum")
    report = run(db, book, clock, "tier-benefits")
    assert (report.totals.accounts, report.totals.items) == (2, 1)
    assert given(db, book) == [(m, "welcome", "benefit", 1)]  # goods wait pending
    # free delivery is withdrawn: nothing recorded, so it comes when it is back this month
    assert issues(db, book) == [
        (m, "normal:welcome:year", "2026", "normal"),
        (platinum, "platinum:lounge:quarter", "2026-Q1", "platinum"),
    ]
    refused = [p for t, p in tier_events(db, book) if t == "tier.benefit_refused"]
    assert refused == [
        {"benefit": "platinum:lounge:quarter", "period": "2026-Q1", "refused": "reward-unavailable"}
    ]
    assert run(db, book, clock, "tier-benefits").totals.accounts == 0
    put_reward(db, book, clock, "free-delivery")
    run(db, book, clock, "tier-benefits")
    assert sorted(given(db, book)[1:]) == sorted(
        [(gold, "free-delivery", "benefit", 1), (platinum, "free-delivery", "benefit", 2)]
    )
    assert points(db, book, m, clock) == (0, 0, 0)
