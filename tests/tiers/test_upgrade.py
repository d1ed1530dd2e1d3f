"""Upgrades on the write that crosses an enter threshold, in that write's transaction, and
never before: not on a purchase below it, a simulation, a release of pending points, a
spend or a return (which lower the measures but never demote outside the evaluation)."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from earning.shop import claim, give_back, item, order, points, record, simulate
from jifen.earning import events, purchases
from jifen.earning.event_schemas import EventIn
from jifen.earning.schemas import PurchaseIn
from jifen.ledger import service as ledger
from jifen.programs.rulesets import save_rules
from jifen.programs.service import get_program
from jifen.rules.schemas import RuleSet
from jifen.tiers.models import MemberTier, TierChange

from .kit import (
    LEVELS,
    history,
    history_details,
    member,
    policy,
    run,
    spend,
    standing,
    tier,
    tier_events,
    tiered,
)


def test_a_purchase_below_the_threshold_leaves_the_base_tier_and_the_next_one_upgrades(db, clock):
    book = tiered(db, clock)
    m = member(db, book, clock)
    first = spend(db, book, clock, m, "999")
    assert first.growth == 999
    assert standing(db, book, m) is None
    assert history(db, book, m) == []
    near = (
        "tier.near_upgrade",
        {"tier": "normal", "next": "silver", "missing": {"growth": "1"}, "period": "2026-01"},
    )
    assert tier_events(db, book, m) == [near]  # the reminder, once a month (T4)

    second = spend(db, book, clock, m, "1")
    assert standing(db, book, m) == ("silver", "silver", None)
    assert history(db, book, m) == [("normal", "silver", "qualified")]
    details = history_details(db, book, m)[0]
    assert details["measures"] == {"growth": 1000}  # what the thresholds above ask
    assert details["threshold"] == {"growth": 1000}
    assert details["cause"] == {"purchase_id": second.id, "order": second.external_id}
    assert tier_events(db, book, m) == [
        near,
        (
            "tier.changed",
            {"from": "normal", "to": "silver", "reason": "qualified", "qualified_tier": "silver"},
        ),
    ]


class Refused(Exception):
    pass


def test_the_upgrade_is_part_of_the_crossing_transaction(db, clock):
    book = tiered(db, clock)
    m = member(db, book, clock)
    spend(db, book, clock, m, "999")
    data = PurchaseIn.model_validate(order("crossing", item("tea", "1"), member=m))

    def crossing_then_refused(s: Any) -> None:
        purchases.record(s, get_program(s, book.program_id), book, data, now=clock.now(), actor="t")
        assert s.execute(select(MemberTier.tier)).scalar_one() == "silver"  # inside: upgraded
        raise Refused

    with pytest.raises(Refused):
        db.write(crossing_then_refused)
    assert standing(db, book, m) is None
    assert history(db, book, m) == []
    assert [t for t, _ in tier_events(db, book, m)] == ["tier.near_upgrade"]  # the 999's
    assert points(db, book, m, clock) == (999, 0, 999)
    # sent again, it is recorded and upgrades in its own transaction
    spend(db, book, clock, m, "1")
    assert tier(db, book, m) == "silver"


def test_one_purchase_jumps_two_levels(db, clock):
    book = tiered(db, clock)
    m = member(db, book, clock)
    spend(db, book, clock, m, "5200")
    assert standing(db, book, m) == ("gold", "gold", None)
    assert history(db, book, m) == [("normal", "gold", "qualified")]
    assert [t for t, _ in tier_events(db, book, m)] == ["tier.changed"]
    spend(db, book, clock, m, "15000")
    assert history(db, book, m) == [
        ("normal", "gold", "qualified"),
        ("gold", "platinum", "qualified"),
    ]


def test_a_simulation_or_a_release_changes_nothing(db, clock):
    book = tiered(db, clock, pending_days=7)
    m = member(db, book, clock)
    spend(db, book, clock, m, "999")
    earned = simulate(db, book, clock, order("sim", item("tea", "5000"), member=m))
    assert earned.growth == 5000
    assert standing(db, book, m) is None
    clock.advance(days=9)
    report = run(db, book, clock, "release")
    assert report.totals.items == 1
    assert points(db, book, m, clock) == (999, 0, 999)
    assert standing(db, book, m) is None
    assert [t for t, _ in tier_events(db, book, m)] == ["tier.near_upgrade"]  # of the purchase


def test_spending_points_never_demotes_and_a_return_lowers_the_measure_only(db, clock):
    book = tiered(db, clock)
    m = member(db, book, clock)
    bought = spend(db, book, clock, m, "1200")
    assert tier(db, book, m) == "silver"
    db.write(lambda s: ledger.debit(s, book, m, 1200, now=clock.now(), actor="t"))
    assert points(db, book, m, clock) == (0, 0, 1200)
    assert standing(db, book, m) == ("silver", "silver", None)
    returned, _ = give_back(db, book, clock, bought.id, amount="1000.00")
    assert returned.growth == 1000
    assert points(db, book, m, clock)[2] == 200
    assert standing(db, book, m) == ("silver", "silver", None)
    assert history(db, book, m) == [("normal", "silver", "qualified")]
    # the next purchase raises the measure again, still silver, no new history
    spend(db, book, clock, m, "100")
    assert history(db, book, m) == [("normal", "silver", "qualified")]


def test_a_claim_that_crosses_upgrades(db, clock):
    book = tiered(db, clock)
    m = member(db, book, clock)
    spend(db, book, clock, m, "900")
    record(db, book, clock, order("till-1", item("tea", "300")))
    assert standing(db, book, m) is None
    shown, created = claim(db, book, clock, "till-1", m)
    assert created
    assert shown.growth == 300
    assert standing(db, book, m) == ("silver", "silver", None)
    assert history_details(db, book, m)[0]["cause"]["order"] == "till-1"


def test_a_behaviour_event_giving_growth_upgrades(db, clock):
    book = tiered(db, clock)
    m = member(db, book, clock)
    rules = RuleSet.model_validate(
        {
            "earning_rules": [{"id": "base", "name": "1:1", "effect": {"points_per_amount": 1}}],
            "event_rules": [{"type": "review", "name": "评价", "points": 5, "growth": 50}],
        }
    )
    db.write(lambda s: save_rules(s, book.program_id, rules, now=clock.now(), actor="t"))
    spend(db, book, clock, m, "960")
    data = EventIn.model_validate({"type": "review", "member": {"id": m}, "external_id": "r1"})

    def review(s: Any) -> Any:
        return events.record_event(
            s, get_program(s, book.program_id), book, data, now=clock.now(), actor="t"
        )

    done = db.write(review)
    assert tier(db, book, m) == "silver"
    assert history_details(db, book, m)[0]["cause"] == {"event_id": done.event.id, "type": "review"}


def test_any_one_measure_qualifies_spend_or_purchases(db, clock):
    levels = [
        LEVELS[0],
        {"code": "silver", "name": "银卡", "enter": {"spend": "300.50", "purchases": 3}},
    ]
    book = tiered(db, clock, policy(levels=levels))
    by_spend, by_count = member(db, book, clock), member(db, book, clock)
    spend(db, book, clock, by_spend, "300.49")
    assert tier(db, book, by_spend) == "normal"
    spend(db, book, clock, by_spend, "0.01")
    assert tier(db, book, by_spend) == "silver"
    for _ in range(2):
        spend(db, book, clock, by_count, "1")
    assert tier(db, book, by_count) == "normal"
    spend(db, book, clock, by_count, "1")
    assert tier(db, book, by_count) == "silver"
    assert history_details(db, book, by_count)[0]["measures"] == {
        "spend": "3.00",
        "purchases": 3,
    }


def test_growth_outside_the_rolling_window_does_not_count(db, clock):
    book = tiered(db, clock)
    m = member(db, book, clock)
    spend(db, book, clock, m, "900")
    clock.advance(days=366)
    spend(db, book, clock, m, "200")
    assert tier(db, book, m) == "normal"
    spend(db, book, clock, m, "800")
    assert tier(db, book, m) == "silver"


def test_a_returned_order_is_not_counted_as_a_purchase(db, clock):
    levels = [LEVELS[0], {"code": "silver", "name": "银卡", "enter": {"purchases": 2}}]
    book = tiered(db, clock, policy(levels=levels))
    m = member(db, book, clock)
    first = spend(db, book, clock, m, "10")
    give_back(db, book, clock, first.id, amount="10.00")
    spend(db, book, clock, m, "10")
    assert tier(db, book, m) == "normal"
    spend(db, book, clock, m, "10")
    assert tier(db, book, m) == "silver"


def test_only_tier_rows_of_upgraded_members_exist(db, clock):
    book = tiered(db, clock)
    low, high = member(db, book, clock), member(db, book, clock)
    spend(db, book, clock, low, "10")
    spend(db, book, clock, high, "1000")
    rows = db.read(lambda s: s.execute(select(MemberTier.member_id)).scalars().all())
    assert rows == [high]
    assert db.read(lambda s: len(s.execute(select(TierChange.id)).all())) == 1
    # nothing happens to a programme without tiers
    plain = tiered(db, clock)
    from .kit import set_tiers

    set_tiers(db, plain, None)
    other = member(db, plain, clock)
    spend(db, plain, clock, other, "9000")
    assert standing(db, plain, other) is None
    assert tier_events(db, plain) == []


def test_the_events_of_a_crossing_purchase_are_written_once_each_in_order(db, clock):
    """A purchase's events go in with one statement: every event, its payload and its
    member, in the order things happened (credits, the tier change, the purchase)."""
    from jifen.db.outbox import OutboxEvent

    book = tiered(db, clock)
    m = member(db, book, clock)
    first = spend(db, book, clock, m, "999")
    second = spend(db, book, clock, m, "1")
    rows = db.read(
        lambda s: [
            (e.member_id, e.type, e.payload, e.occurred_at)
            for e in s.execute(
                select(OutboxEvent)
                .where(OutboxEvent.program_id == book.program_id, OutboxEvent.member_id == m)
                .order_by(OutboxEvent.id)
            ).scalars()
        ]
    )
    txns = {
        p.id: (p.earn_txn_id, p.growth_txn_id)
        for p in db.read(
            lambda s: list(
                s.execute(
                    select(purchases.Purchase).where(purchases.Purchase.member_id == m)
                ).scalars()
            )
        )
    }
    now = clock.now()

    def credited(purchase_id: int, points: int) -> list[tuple[Any, ...]]:
        earn, growth = txns[purchase_id]
        return [
            (m, "points.credited", {"transaction_id": earn, "kind": "earn", "points": points}, now),
            (
                m,
                "growth.credited",
                {"transaction_id": growth, "kind": "growth", "points": points},
                now,
            ),
        ]

    near = {"tier": "normal", "next": "silver", "missing": {"growth": "1"}, "period": "2026-01"}
    assert rows[:4] == [
        *credited(first.id, 999),
        (m, "tier.near_upgrade", near, now),
        (m, "purchase.recorded", {"purchase_id": first.id, "points": 999}, now),
    ]
    assert [r[1] for r in rows[4:]] == [
        "points.credited",
        "growth.credited",
        "tier.changed",
        "purchase.recorded",
    ]
    assert rows[4:6] == credited(second.id, 1)
    assert rows[7] == (m, "purchase.recorded", {"purchase_id": second.id, "points": 1}, now)
    assert len(rows) == 8
