"""Returns and refunds on both stores, exact values: by line quantity, line amount and
order amount (odd cents), several partial returns summing to exactly a full return in any
order (a property), the threshold bonus lost at the threshold and not before, pending
points cancelled, spent points under each policy, over-returns and retries that change
nothing — and the known failures of popular systems: keeping the points of a refunded
order, losing points twice on a retried refund, earning again on an order sent again
after it was cancelled."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from decimal import ROUND_DOWN, Decimal
from threading import Barrier
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from earning.shop import (
    PER_YUAN,
    buy,
    claim,
    counters,
    dump,
    give_back,
    item,
    local,
    order,
    points,
    record,
    rule,
    set_rules,
    shown,
)
from factories import make_member, make_program
from jifen.core.clock import FrozenClock
from jifen.core.errors import Conflict, InvalidInput, ReturnExceedsPurchase
from jifen.db.uow import Database
from jifen.earning.schemas import PurchaseOut
from jifen.jobs.runner import run_job
from jifen.ledger import service as ledger
from jifen.ledger.models import JournalTransaction
from jifen.ledger.posting import Book
from jifen.ledger.queries import current_balance
from jifen.members import service as members
from jifen.members.schemas import MemberStatus
from jifen.rules.evaluator import evaluate
from jifen.rules.facts import Basket, Line, MemberFacts
from jifen.rules.schemas import RuleSet

BASKET = (item("6901", "60.25", 2, category="fresh"), item("7702", "100", discount="10"))
"""210.50 net: line 1 is 2 × 60.25 (120.50), line 2 is 100 less 10 (90.00)."""
RELEASED = datetime(2026, 1, 22, 16, 0, tzinfo=UTC)
"""When a 7-day window opened at the test clock's start closes (local midnight)."""


def _spend(db: Database, book: Book, member: int, n: int, clock: FrozenClock) -> None:
    db.write(lambda s: ledger.debit(s, book, member, n, now=clock.now(), actor="t"))


def _credit(db: Database, book: Book, member: int, n: int, clock: FrozenClock) -> None:
    db.write(lambda s: ledger.credit(s, book, member, n, now=clock.now(), actor="t"))


def _lifetime(db: Database, book: Book, member: int, clock: FrozenClock) -> int:
    return current_balance(db, book, member, clock.now()).lifetime_earned


def _program(db: Database, clock: FrozenClock, **settings: Any) -> tuple[Book, int]:
    book = make_program(db, clock, **settings)
    set_rules(db, book, clock, PER_YUAN)
    return book, make_member(db, book, clock)


# -- how much comes back -------------------------------------------------------------------


def test_a_return_by_line_quantity_takes_back_that_share(db, clock):
    book, member = _program(db, clock)
    purchase = buy(db, book, clock, order("o1", *BASKET, member=member))
    back, created = give_back(db, book, clock, purchase.id, lines=[{"line_no": 1, "quantity": 1}])
    assert created
    assert (back.amount, back.points, back.points_taken, back.growth) == (
        Decimal("60.25"),
        60,
        60,
        60,
    )
    assert back.lines == [{"line_no": 1, "quantity": "1", "amount": "60.25"}]
    assert back.purchase_status == "awarded"
    assert back.breakdown == [
        {"kind": "points", "rule": "base", "points": 60},
        {"kind": "growth", "rule": "growth", "points": 60},
    ]
    assert points(db, book, member, clock) == (150, 0, 150)
    after = shown(db, book, purchase.id)
    assert (after.net_total, after.points_returned, after.growth_returned) == (
        Decimal("150.25"),
        60,
        60,
    )
    assert [(line.returned_quantity, line.returned_amount) for line in after.lines] == [
        (Decimal(1), Decimal("60.25")),
        (Decimal(0), Decimal(0)),
    ]


def test_a_return_by_line_amount_is_a_price_refund(db, clock):
    book, member = _program(db, clock)
    purchase = buy(db, book, clock, order("o1", *BASKET, member=member))
    back, _ = give_back(db, book, clock, purchase.id, lines=[{"line_no": 2, "amount": "30"}])
    # 180.50 left: 180 points
    assert (back.amount, back.points, back.growth) == (Decimal("30.00"), 30, 30)
    assert back.lines == [{"line_no": 2, "quantity": "0", "amount": "30"}]
    after = shown(db, book, purchase.id)
    assert [(line.returned_quantity, line.returned_amount) for line in after.lines] == [
        (Decimal(0), Decimal(0)),
        (Decimal(0), Decimal("30.00")),
    ]
    assert points(db, book, member, clock) == (180, 0, 180)


def test_an_order_amount_is_spread_over_what_each_line_has_left(db, clock):
    book, member = _program(db, clock)
    purchase = buy(db, book, clock, order("o1", *BASKET, member=member))
    back, _ = give_back(db, book, clock, purchase.id, amount="100.01")
    # 10001 cents × 120.50/210.50 = 5725.04…, × 90/210.50 = 4275.96…: the odd cent goes to
    # the larger remainder
    assert back.lines == [
        {"line_no": 1, "quantity": "0", "amount": "57.25"},
        {"line_no": 2, "quantity": "0", "amount": "42.76"},
    ]
    assert (back.amount, back.points) == (Decimal("100.01"), 100)  # 110.49 left: 110
    assert points(db, book, member, clock) == (110, 0, 110)
    # refunding all that is left returns every item too
    last, _ = give_back(db, book, clock, purchase.id, amount="110.49")
    assert last.lines == [
        {"line_no": 1, "quantity": "2.000", "amount": "63.25"},
        {"line_no": 2, "quantity": "1.000", "amount": "47.24"},
    ]
    assert (last.points, last.growth, last.purchase_status) == (110, 110, "returned")
    assert points(db, book, member, clock) == (0, 0, 0)


def test_items_of_a_line_returned_one_by_one_refund_exactly_the_line(db, clock):
    book, member = _program(db, clock)
    purchase = buy(db, book, clock, order("o1", item("x", "10.00", 3), member=member))
    give_back(db, book, clock, purchase.id, lines=[{"line_no": 1, "amount": "0.01"}])
    refunds = [
        give_back(db, book, clock, purchase.id, lines=[{"line_no": 1, "quantity": 1}])[0]
        for _ in range(3)
    ]
    # 29.99 / 3 = 9.996… → 10.00; then 19.99 / 2 = 9.995 → 10.00 (half up); the rest
    assert [r.amount for r in refunds] == [Decimal("10.00"), Decimal("10.00"), Decimal("9.99")]
    assert [r.points for r in refunds] == [10, 10, 9]  # 29 → 19 → 9 → 0
    assert refunds[-1].purchase_status == "returned"
    assert shown(db, book, purchase.id).net_total == 0


def test_a_discounted_line_returned_in_full(db, clock):
    book, member = _program(db, clock)
    purchase = buy(
        db, book, clock, order("o1", item("x", "33.33", 3, discount="0.01"), member=member)
    )
    back, _ = give_back(db, book, clock, purchase.id, lines=[{"line_no": 1, "quantity": 3}])
    assert (back.amount, back.points, back.purchase_status) == (Decimal("99.98"), 99, "returned")


def test_several_partial_returns_then_one_too_many_changes_nothing(db, clock):
    book, member = _program(db, clock)
    purchase = buy(db, book, clock, order("o1", *BASKET, member=member))
    give_back(db, book, clock, purchase.id, lines=[{"line_no": 1, "quantity": 1}])
    give_back(db, book, clock, purchase.id, lines=[{"line_no": 2, "amount": "50"}])
    give_back(db, book, clock, purchase.id, amount="20")
    assert points(db, book, member, clock) == (80, 0, 80)  # 80.25 left
    before = dump(db)
    for body, error, params in [
        (
            {"lines": [{"line_no": 1, "quantity": 2}]},
            ReturnExceedsPurchase,
            {"line": 1, "asked": "2 items", "left": "1.000 items"},
        ),
        (
            {"lines": [{"line_no": 2, "amount": "40.01"}]},
            ReturnExceedsPurchase,
            # 90 − 50 − 7.98 (its share of the 20: 2000 cents × 40/100.25)
            {"line": 2, "asked": "40.01", "left": "32.02"},
        ),
        (
            {"amount": "80.26"},
            ReturnExceedsPurchase,
            {"line": None, "asked": "80.26", "left": "80.25"},
        ),
        ({"lines": [{"line_no": 3, "quantity": 1}]}, InvalidInput, None),
    ]:
        with pytest.raises(error) as refused:
            give_back(db, book, clock, purchase.id, **body)
        if params is not None:
            assert refused.value.params == params
    assert dump(db) == before


def test_a_threshold_bonus_is_lost_once_the_net_falls_below_it_and_not_before(db, clock):
    book = make_program(db, clock)
    set_rules(db, book, clock, PER_YUAN, rule("spend-200", {"bonus": 20}, when={"min_amount": 200}))
    member = make_member(db, book, clock)
    purchase = buy(db, book, clock, order("o1", item("a", 150), item("b", "60.00"), member=member))
    assert purchase.points == 230
    first, _ = give_back(db, book, clock, purchase.id, lines=[{"line_no": 2, "amount": "10"}])
    assert (first.points, first.breakdown[0]) == (
        10,
        {"kind": "points", "rule": "base", "points": 10},
    )
    second, _ = give_back(db, book, clock, purchase.id, lines=[{"line_no": 2, "amount": "0.01"}])
    assert second.breakdown[:2] == [
        {"kind": "points", "rule": "base", "points": 1},
        {"kind": "points", "rule": "spend-200", "points": 20},
    ]
    assert second.points == 21
    # back above the threshold it never comes back: nothing returned gives points
    assert points(db, book, member, clock)[0] == 199  # 230 − 10 − 21


def test_a_multiplier_keeps_its_share_when_its_base_rule_gave_nothing_for_its_cap(db, clock):
    book = make_program(db, clock, pending_days=0)
    set_rules(
        db,
        book,
        clock,
        rule("base", {"points_per_amount": 1}, caps={"day": 100}),
        rule("double", {"multiplier": 2}),
    )
    member = make_member(db, book, clock)
    buy(db, book, clock, order("o1", item("a", 100), member=member))  # uses the day's cap
    purchase = buy(db, book, clock, order("o2", item("a", 100), item("b", 100), member=member))
    assert {b.rule: b.points for b in purchase.breakdown} == {"base": 0, "double": 200}
    back, _ = give_back(db, book, clock, purchase.id, amount="1.00")
    assert back.breakdown == [  # 199 left: the double part shrinks to 199
        {"kind": "points", "rule": "double", "points": 1},
        {"kind": "growth", "rule": "growth", "points": 1},
    ]
    assert points(db, book, member, clock) == (200 + 199, 0, 100 + 199)


# -- partial returns in any order -----------------------------------------------------------

_RULES = [
    PER_YUAN,
    rule("fresh", {"multiplier": "1.5"}, when={"category": ["fresh"]}, scope="line"),
    rule("per-item", {"points_per_quantity": 3}, when={"sku": ["b"]}),
    rule("spend-100", {"bonus": 15}, when={"min_amount": 100}),
    rule("third", {"points_per_amount": 1, "per": 3}, rounding="round", cap_per_order=40),
]


@st.composite
def _orders(draw: st.DrawFn) -> tuple[list[dict[str, Any]], list[tuple[int, str]]]:
    lines = [
        item(
            draw(st.sampled_from(["a", "b"])),
            Decimal(draw(st.integers(100, 9999))) / 100,
            draw(st.integers(1, 3)),
            **({"category": "fresh"} if draw(st.booleans()) else {}),
        )
        for _ in range(draw(st.integers(1, 3)))
    ]
    units = [(no, "item") for no, line in enumerate(lines, 1) for _ in range(int(line["quantity"]))]
    # some order-level refunds of part of what is left, anywhere among the items
    units += [(0, "half")] * draw(st.integers(0, 2))
    return lines, draw(st.permutations(units))


def _earns(purchase: PurchaseOut) -> int:
    """What the rules give the order as it stands (the evaluator alone, no database)."""
    kept = [
        Line(
            sku=line.sku,
            quantity=line.quantity - line.returned_quantity,
            amount=line.amount - line.discount - line.returned_amount,
            category=line.category,
        )
        for line in purchase.lines
        if line.quantity > line.returned_quantity
    ]
    basket = Basket(at=local(2026, 1, 15, 10), channel="pos", lines=tuple(kept))
    rules = RuleSet.model_validate({"earning_rules": _RULES}).earning_rules
    return evaluate(rules, basket, MemberFacts()).points


@pytest.mark.parametrize("db", ["sqlite"], indirect=True)
@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(case=_orders(), pending=st.sampled_from([0, 7]))
def test_partial_returns_in_any_order_sum_to_exactly_a_full_return(db, case, pending: int):
    lines, steps = case
    clock = FrozenClock(datetime(2026, 1, 15, 2, 0, tzinfo=UTC))
    book = make_program(db, clock, pending_days=pending)
    set_rules(db, book, clock, *_RULES)
    member = make_member(db, book, clock)
    purchase = buy(db, book, clock, order("o1", *lines, member=member))
    kept, kept_growth = [purchase.points], [purchase.growth]
    for line_no, what in steps:
        if what == "half":
            now = shown(db, book, purchase.id)
            # half of what is left, rounded down, while every line with items left keeps
            # 1 元 an item (a return of items that refunds no money is refused)
            if any(
                line.amount - line.discount - line.returned_amount
                < line.quantity - line.returned_quantity
                for line in now.lines
            ):
                continue
            amount = (now.net_total / 2).quantize(Decimal("0.01"), rounding=ROUND_DOWN)
            if amount == 0:
                continue
            back, _ = give_back(db, book, clock, purchase.id, amount=str(amount))
        else:
            back, _ = give_back(
                db, book, clock, purchase.id, lines=[{"line_no": line_no, "quantity": 1}]
            )
        kept.append(kept[-1] - back.points)
        kept_growth.append(kept_growth[-1] - back.growth)
        # these rules give less on less, so what the order keeps is what it now earns
        assert kept[-1] == _earns(shown(db, book, purchase.id))
    assert kept == sorted(kept, reverse=True)  # a return never gives points
    assert (kept[-1], kept_growth[-1]) == (0, 0)
    after = shown(db, book, purchase.id)
    assert (after.status, after.net_total) == ("returned", 0)
    assert (after.points_returned, after.growth_returned) == (after.points, after.growth)
    assert sum(r.points for r in after.returns) == purchase.points
    assert points(db, book, member, clock) == (0, 0, 0)
    assert _lifetime(db, book, member, clock) == 0


# -- where the points come from ----------------------------------------------------------------


def test_pending_points_are_simply_cancelled(db, clock):
    book, member = _program(db, clock, pending_days=7)
    _credit(db, book, member, 50, clock)  # points of another kind, available
    purchase = buy(db, book, clock, order("o1", *BASKET, member=member))
    assert points(db, book, member, clock) == (50, 210, 210)
    back, _ = give_back(db, book, clock, purchase.id, lines=[{"line_no": 1, "quantity": 1}])
    assert (back.points, back.points_taken, back.points_not_taken) == (60, 60, 0)
    assert points(db, book, member, clock) == (50, 150, 150)
    give_back(
        db,
        book,
        clock,
        purchase.id,
        lines=[{"line_no": 1, "quantity": 1}, {"line_no": 2, "quantity": 1}],
    )
    assert points(db, book, member, clock) == (50, 0, 0)
    assert _lifetime(db, book, member, clock) == 50
    clock.set(RELEASED)
    run_job(db, "release", now=clock.now())
    released = current_balance(db, book, member, clock.now())
    assert (released.available, released.pending, released.lifetime_earned) == (50, 0, 50)


def test_a_full_refund_after_the_release_leaves_none_of_the_orders_points(db, clock):
    book, member = _program(db, clock, pending_days=7)
    _credit(db, book, member, 50, clock)
    purchase = buy(db, book, clock, order("o1", *BASKET, member=member))
    clock.set(RELEASED)
    run_job(db, "release", now=clock.now())
    assert points(db, book, member, clock) == (260, 0, 210)
    back, _ = give_back(db, book, clock, purchase.id, amount="210.50")
    assert (back.points, back.points_taken, back.purchase_status) == (210, 210, "returned")
    assert points(db, book, member, clock) == (50, 0, 0)
    assert _lifetime(db, book, member, clock) == 50


@pytest.mark.parametrize(
    ("settings", "available", "taken", "not_taken", "withhold"),
    [
        # debt: taken anyway, the balance goes negative
        ({"return_policy": "debt", "allow_negative_balance": True}, -80, 100, 0, "0.00"),
        # deduct: only what is there; the rest is let go
        ({"return_policy": "deduct"}, 0, 20, 80, "0.00"),
        # withhold: likewise, and 80 points at 3 points = 1 元 are 26.666… → 26.66 kept back
        (
            {"return_policy": "withhold", "point_value_points": 3, "point_value_amount": "1"},
            0,
            20,
            80,
            "26.66",
        ),
    ],
)
def test_points_already_spent_follow_the_return_policy(
    db, clock, settings, available: int, taken: int, not_taken: int, withhold: str
):
    book, member = _program(db, clock, pending_days=0, **settings)
    purchase = buy(db, book, clock, order("o1", item("x", 100), member=member))
    _spend(db, book, member, 80, clock)
    back, _ = give_back(db, book, clock, purchase.id, lines=[{"line_no": 1, "quantity": 1}])
    assert (back.policy, back.points, back.points_taken, back.points_not_taken) == (
        settings["return_policy"],
        100,
        taken,
        not_taken,
    )
    assert back.withhold_amount == Decimal(withhold)
    assert points(db, book, member, clock) == (available, 0, 0)
    after = shown(db, book, purchase.id)
    assert (after.points_returned, after.status) == (100, "returned")
    assert after.returns[0].withhold_amount == Decimal(withhold)
    # later earnings repay a debt first
    buy(db, book, clock, order("o2", item("x", 100), member=member))
    assert points(db, book, member, clock) == (available + 100, 0, 100)


def test_a_partial_return_of_spent_points_under_withhold(db, clock):
    book, member = _program(db, clock, pending_days=0)  # withhold, 100 points = 10 元
    purchase = buy(db, book, clock, order("o1", item("x", 50, 2), member=member))
    _spend(db, book, member, 70, clock)
    back, _ = give_back(db, book, clock, purchase.id, lines=[{"line_no": 1, "quantity": 1}])
    assert (back.points, back.points_taken, back.points_not_taken) == (50, 30, 20)
    assert back.withhold_amount == Decimal("2.00")
    back, _ = give_back(db, book, clock, purchase.id, lines=[{"line_no": 1, "quantity": 1}])
    assert (back.points, back.points_taken, back.points_not_taken) == (50, 0, 50)
    assert back.withhold_amount == Decimal("5.00")
    assert points(db, book, member, clock) == (0, 0, 0)


def test_a_return_after_the_orders_points_expired_costs_the_member_nothing(db, clock):
    book, member = _program(
        db, clock, pending_days=0, expiry_policy={"kind": "after_months", "months": 1}
    )
    purchase = buy(db, book, clock, order("o1", *BASKET, member=member))
    clock.set(datetime(2026, 3, 1, tzinfo=UTC))
    run_job(db, "expire", now=clock.now())
    _credit(db, book, member, 40, clock)
    assert points(db, book, member, clock) == (40, 0, 210)
    back, _ = give_back(db, book, clock, purchase.id, lines=[{"line_no": 1, "quantity": 1}])
    # the 60 points had expired: they come back from the expired account, not the member
    assert (back.points, back.points_taken, back.points_not_taken) == (60, 60, 0)
    assert back.withhold_amount == 0
    assert points(db, book, member, clock) == (40, 0, 150)


def test_returns_apply_to_frozen_members(db, clock):
    book, member = _program(db, clock)
    purchase = buy(db, book, clock, order("o1", *BASKET, member=member))
    db.write(
        lambda s: members.set_status(
            s, book, member, MemberStatus.FROZEN, reason="fraud review", now=clock.now()
        )
    )
    back, _ = give_back(db, book, clock, purchase.id, amount="210.50")
    assert back.points == 210
    assert points(db, book, member, clock) == (0, 0, 0)


def test_a_return_gives_its_points_back_to_the_budget(db, clock):
    book = make_program(db, clock)
    set_rules(db, book, clock, rule("promo", {"points_per_amount": 1}, budget={"points": 100}))
    a, b, c = (make_member(db, book, clock) for _ in range(3))
    first = buy(db, book, clock, order("o1", item("x", 80), member=a))
    assert buy(db, book, clock, order("o2", item("x", 80), member=b)).points == 20
    give_back(db, book, clock, first.id, amount="30")
    assert counters(db, book) == {"budget:promo:total": 70}
    assert buy(db, book, clock, order("o3", item("x", 80), member=c)).points == 30
    give_back(db, book, clock, first.id, amount="50")
    assert counters(db, book) == {"budget:promo:total": 50}


def test_a_return_gives_its_points_back_to_the_member_cap(db, clock):
    book = make_program(db, clock)
    set_rules(db, book, clock, rule("base", {"points_per_amount": 1}, caps={"day": 100}))
    member = make_member(db, book, clock)
    first = buy(db, book, clock, order("o1", item("x", 80), member=member))
    give_back(db, book, clock, first.id, amount="80")
    assert counters(db, book) == {}
    assert buy(db, book, clock, order("o2", item("x", 120), member=member)).points == 100


@pytest.mark.postgres
def test_concurrent_returns_of_the_last_items_take_each_item_once(pg_db, clock):
    db = pg_db
    book, member = _program(db, clock, pending_days=0)
    purchase = buy(db, book, clock, order("o1", item("x", "10.00", 5), member=member))
    start = Barrier(8)

    def one_item(i: int) -> str:
        start.wait()
        try:
            give_back(db, book, clock, purchase.id, lines=[{"line_no": 1, "quantity": 1}])
        except ReturnExceedsPurchase:
            return "refused"
        return "returned"

    def the_same_refund(i: int) -> bool:
        start.wait()
        return give_back(db, book, clock, again.id, external_id="RF-1", amount="5.00")[1]

    with ThreadPoolExecutor(8) as pool:
        outcomes = list(pool.map(one_item, range(8)))
    assert sorted(outcomes) == ["refused"] * 3 + ["returned"] * 5
    after = shown(db, book, purchase.id)
    assert (after.status, after.points_returned, len(after.returns)) == ("returned", 50, 5)
    assert points(db, book, member, clock) == (0, 0, 0)

    again = buy(db, book, clock, order("o2", item("x", "10.00", 5), member=member))
    with ThreadPoolExecutor(8) as pool:
        created = list(pool.map(the_same_refund, range(8)))
    assert sorted(created) == [False] * 7 + [True]
    assert points(db, book, member, clock) == (45, 0, 45)


# -- retries and the known failures ---------------------------------------------------------


def test_a_retried_refund_takes_points_once(db, clock):
    book, member = _program(db, clock, pending_days=0)
    purchase = buy(db, book, clock, order("o1", *BASKET, member=member))
    body = {"external_id": "RF-1", "lines": [{"line_no": 1, "quantity": 1}]}
    first, created = give_back(db, book, clock, purchase.id, **body)
    assert created
    before = dump(db)
    clock.advance(minutes=5)
    again, created = give_back(db, book, clock, purchase.id, **body)
    assert not created
    assert again == first
    assert dump(db) == before
    assert points(db, book, member, clock) == (150, 0, 150)
    # the same refund id with other lines is a mistake, not a retry
    with pytest.raises(Conflict):
        give_back(
            db, book, clock, purchase.id, external_id="RF-1", lines=[{"line_no": 2, "quantity": 1}]
        )
    with pytest.raises(Conflict):
        give_back(db, book, clock, purchase.id, external_id="RF-1", amount="60.00")
    assert dump(db) == before
    # a refund id given with its computed amount is the same refund
    same, created = give_back(
        db,
        book,
        clock,
        purchase.id,
        external_id="RF-1",
        lines=[{"line_no": 1, "quantity": 1, "amount": "60.25"}],
    )
    assert (same.id, created) == (first.id, False)


def test_a_fully_returned_order_sent_again_earns_nothing(db, clock):
    book, member = _program(db, clock, pending_days=0)
    body = order("o1", *BASKET, member=member)
    purchase = buy(db, book, clock, body)
    give_back(db, book, clock, purchase.id, amount="210.50")
    before = dump(db)
    again, created = record(db, book, clock, body)
    assert not created
    assert (again.id, again.status, again.points, again.points_returned) == (
        purchase.id,
        "returned",
        210,
        210,
    )
    assert dump(db) == before
    assert points(db, book, member, clock) == (0, 0, 0)


def test_an_unclaimed_order_returned_in_full_earns_nothing_when_claimed(db, clock):
    book, member = _program(db, clock, pending_days=0)
    purchase = buy(db, book, clock, order("o1", *BASKET))
    back, _ = give_back(db, book, clock, purchase.id, amount="210.50")
    assert (back.points, back.purchase_status) == (0, "returned")
    claimed, _ = claim(db, book, clock, "o1", member)
    assert (claimed.member_id, claimed.points, claimed.growth, claimed.status) == (
        member,
        0,
        0,
        "returned",
    )
    assert points(db, book, member, clock) == (0, 0, 0)


def test_an_unclaimed_order_partly_returned_earns_on_what_is_left_when_claimed(db, clock):
    book, member = _program(db, clock, pending_days=0)
    purchase = buy(db, book, clock, order("o1", *BASKET))
    give_back(db, book, clock, purchase.id, lines=[{"line_no": 2, "quantity": 1}])
    claimed, _ = claim(db, book, clock, "o1", member)
    assert (claimed.points, claimed.status) == (120, "awarded")
    back, _ = give_back(db, book, clock, purchase.id, lines=[{"line_no": 1, "quantity": 2}])
    assert (back.points, back.purchase_status) == (120, "returned")
    assert points(db, book, member, clock) == (0, 0, 0)


def test_a_first_order_refunded_in_full_does_not_make_the_next_one_first(db, clock):
    book = make_program(db, clock)
    set_rules(
        db, book, clock, PER_YUAN, rule("welcome", {"bonus": 50}, when={"first_purchase": True})
    )
    member = make_member(db, book, clock)
    first = buy(db, book, clock, order("o1", item("x", 10), member=member))
    give_back(db, book, clock, first.id, amount="10")
    assert buy(db, book, clock, order("o2", item("x", 10), member=member)).points == 10


# -- free items --------------------------------------------------------------------------------


def test_a_free_item_comes_back_with_a_paid_one(db, clock):
    book = make_program(db, clock, pending_days=0)
    set_rules(db, book, clock, PER_YUAN, rule("per-item", {"points_per_quantity": 5}))
    member = make_member(db, book, clock)
    purchase = buy(db, book, clock, order("o1", item("x", 50), item("gift", 0), member=member))
    assert purchase.points == 50 + 10
    back, _ = give_back(
        db,
        book,
        clock,
        purchase.id,
        lines=[{"line_no": 1, "quantity": 1}, {"line_no": 2, "quantity": 1}],
    )
    assert (back.amount, back.points, back.purchase_status) == (Decimal("50.00"), 60, "returned")


def test_a_free_item_returned_alone_refunds_nothing_and_takes_back_its_points(db, clock):
    book = make_program(db, clock, pending_days=0)
    set_rules(db, book, clock, PER_YUAN, rule("per-item", {"points_per_quantity": 5}))
    member = make_member(db, book, clock)
    purchase = buy(db, book, clock, order("o1", item("x", 50), item("gift", 0), member=member))
    back, _ = give_back(db, book, clock, purchase.id, lines=[{"line_no": 2, "quantity": 1}])
    # the gift earned 5 per item and refunds no money; the paid line keeps 50 + 5
    assert (back.amount, back.points, back.purchase_status) == (Decimal("0.00"), 5, "awarded")
    assert shown(db, book, purchase.id).lines[1].returned_quantity == 1


def test_nothing_is_clawed_back_twice_in_the_journal(db, clock):
    book, member = _program(db, clock, pending_days=0)
    purchase = buy(db, book, clock, order("o1", *BASKET, member=member))
    for _ in range(2):
        give_back(db, book, clock, purchase.id, external_id="RF-9", amount="210.50")
    clawbacks = db.read(
        lambda s: s.execute(
            select(JournalTransaction.kind, func.sum(JournalTransaction.points))
            .where(JournalTransaction.program_id == book.program_id)
            .group_by(JournalTransaction.kind)
            .order_by(JournalTransaction.kind)
        ).all()
    )
    assert [tuple(row) for row in clawbacks] == [
        ("clawback", 420),  # 210 points and 210 growth value, once each
        ("earn", 210),
        ("growth", 210),
    ]


def test_an_order_falling_from_one_threshold_to_the_next_keeps_the_lower_bonus(db, clock):
    book = make_program(db, clock, pending_days=0)
    set_rules(
        db,
        book,
        clock,
        PER_YUAN,
        rule("spend-200", {"bonus": 20}, when={"min_amount": 200}, stacking="best_of", group="t"),
        rule("spend-500", {"bonus": 80}, when={"min_amount": 500}, stacking="best_of", group="t"),
    )
    member = make_member(db, book, clock)
    purchase = buy(db, book, clock, order("o1", item("x", 10, 51), member=member))
    assert purchase.points == 510 + 80
    back, _ = give_back(db, book, clock, purchase.id, lines=[{"line_no": 1, "quantity": 2}])
    # 490 left: 490 base + 满200送20 = 510 kept, so 590 - 510 = 80 go back
    assert back.points == 80
    assert {(b["rule"], b["points"]) for b in back.breakdown if b["kind"] == "points"} == {
        ("base", 20),
        ("spend-500", 80),
        ("spend-200", -20),
    }
    back, _ = give_back(db, book, clock, purchase.id, lines=[{"line_no": 1, "quantity": 34}])
    # 150 left: below every threshold, 150 base kept; 510 - 150 = 360 go back
    assert back.points == 360
    back, _ = give_back(db, book, clock, purchase.id, amount="150")
    assert back.points == 150
    assert shown(db, book, purchase.id).points_returned == 590
    assert current_balance(db, book, member, clock.now()).available == 0
