"""Simulation on both stores: the same answer a real purchase gets at that moment — points,
growth value and the breakdown — for random rule sets and baskets, also with caps and
budgets partly used by earlier purchases; and it writes nothing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from earning.shop import (
    PER_YUAN,
    buy,
    counters,
    dump,
    item,
    order,
    row_counts,
    rule,
    set_rules,
    simulate,
)
from earning.strategies import baskets, rule_sets
from factories import make_member, make_program
from jifen.core.clock import FrozenClock
from jifen.core.errors import (
    InvalidInput,
    MemberFrozen,
    NotFound,
    OutsideClaimWindow,
    UnknownCode,
)
from jifen.earning.schemas import Earned, PurchaseOut
from jifen.members import service as members
from jifen.members.schemas import MemberStatus
from jifen.programs.rulesets import save_rules
from jifen.rules.schemas import RuleSet

RETAIL = (
    PER_YUAN,
    rule("double-fresh", {"multiplier": 2}, when={"category": ["fresh"]}),
    rule("spend-200", {"bonus": 20}, when={"min_amount": 200}, stacking="best_of", group="spend"),
    rule("spend-500", {"bonus": 80}, when={"min_amount": 500}, stacking="best_of", group="spend"),
    rule("promo", {"bonus": 30}, budget={"points": 50}),
)


def _same(simulated: Earned, real: PurchaseOut) -> None:
    assert (simulated.points, simulated.growth) == (real.points, real.growth)
    assert simulated.rule_set_version == real.rule_set_version
    assert simulated.breakdown == real.breakdown
    assert simulated.growth_breakdown == real.growth_breakdown


def test_simulate_gives_what_the_purchase_then_gets(db, clock):
    book = make_program(db, clock)
    set_rules(db, book, clock, *RETAIL)
    member = make_member(db, book, clock)
    body = order(
        "o1", item("6901", "60.25", 2, category="fresh"), item("7702", "100"), member=member
    )
    simulated = simulate(db, book, clock, body)
    assert simulated.points == 220 + 120 + 20 + 30
    assert [(b.rule, b.basis, b.lines, b.points) for b in simulated.breakdown] == [
        ("base", Decimal("220.50"), [1, 2], 220),
        ("double-fresh", Decimal("120.5"), [1], 120),
        ("spend-200", Decimal(1), [1, 2], 20),
        ("promo", Decimal(1), [1, 2], 30),
    ]
    _same(simulated, buy(db, book, clock, body))
    # the budget has 20 left: the next simulation says so, and the purchase agrees
    again = order("o2", item("7702", "100"), member=member)
    simulated = simulate(db, book, clock, again)
    assert [(b.rule, b.wanted, b.points, b.capped_by) for b in simulated.breakdown] == [
        ("base", 100, 100, None),
        ("promo", 30, 20, "allowance"),
    ]
    _same(simulated, buy(db, book, clock, again))


def test_simulate_writes_nothing(db, clock):
    book = make_program(db, clock, pending_days=7)
    set_rules(
        db,
        book,
        clock,
        *RETAIL,
        rule("capped", {"bonus": 50}, caps={"day": 10}, budget={"points": 99}),
    )
    member = make_member(db, book, clock)
    before = dump(db)
    with_member = order("o1", item("x", 300, category="fresh"), member=member)
    # 300 + 300 (fresh doubled) + 20 (满200) + 30 (promo) + 10 (capped at 10 a day)
    assert simulate(db, book, clock, with_member).points == 660
    # without a member: what a member who has used nothing would get
    assert simulate(db, book, clock, order("o1", item("x", 300))).points == 360
    assert dump(db) == before
    assert counters(db, book) == {}


def test_simulate_refuses_what_a_purchase_refuses(db, clock):
    book = make_program(db, clock, claim_days=30)
    member = make_member(db, book, clock)
    before = dump(db)
    cases = [
        (order("o1", item("x", 1), member=member, channel="fax"), UnknownCode),
        (order("o1", item("x", 1), member=member, store="nowhere"), UnknownCode),
        (
            order("o1", item("x", 1), member=member, at=clock.now() + timedelta(minutes=6)),
            InvalidInput,
        ),
        (
            order("o1", item("x", 1), member=member, at=clock.now() - timedelta(days=31)),
            OutsideClaimWindow,
        ),
        (order("o1", item("x", 1), member={"phone": "13900000000"}), NotFound),
    ]
    for body, error in cases:
        with pytest.raises(error):
            simulate(db, book, clock, body)
    db.write(
        lambda s: members.set_status(
            s, book, member, MemberStatus.FROZEN, reason="review", now=clock.now()
        )
    )
    before = dump(db)
    with pytest.raises(MemberFrozen):
        simulate(db, book, clock, order("o1", item("x", 1), member=member))
    assert dump(db) == before


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(document=rule_sets(), data=st.data())
def test_simulate_and_the_real_award_agree(db, document, data):
    """Random rules (conditions, effects, stacking, rounding, caps, budgets) and baskets,
    after earlier purchases of the member and of another that use some of the caps and
    budgets: simulation gives exactly the award, breakdown included, and writes nothing."""
    clock = FrozenClock(datetime(2026, 1, 15, 2, 0, tzinfo=UTC))
    book = make_program(db, clock)
    db.write(
        lambda s: save_rules(
            s, book.program_id, RuleSet.model_validate(document), now=clock.now(), actor="t"
        )
    )
    member, other = make_member(db, book, clock), make_member(db, book, clock)
    for i in range(data.draw(st.integers(0, 3), label="earlier purchases")):
        who = data.draw(st.sampled_from([member, other]), label="by")
        buy(db, book, clock, data.draw(baskets(f"earlier-{i}", who), label=f"earlier {i}"))
    body = data.draw(baskets("o", member), label="order")
    before = row_counts(db), counters(db, book)
    simulated = simulate(db, book, clock, body)
    assert (row_counts(db), counters(db, book)) == before
    _same(simulated, buy(db, book, clock, body))
