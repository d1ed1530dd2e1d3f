"""Recording purchases on both stores: pending points and their release, growth value,
the order id as the idempotency key of a till, refusals that write nothing, member facts
(first purchase, segment, birthday month, member day at the edges of the Shanghai day),
and caps and budgets through real purchases — also 50 members at one budget at once."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from threading import Barrier
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError
from sqlalchemy import func, select, update

from earning.shop import (
    PER_YUAN,
    add_store,
    add_to_segment,
    buy,
    claim,
    counters,
    dump,
    item,
    local,
    order,
    points,
    record,
    rule,
    set_rules,
)
from earning.strategies import baskets, rule_sets
from factories import make_member, make_program
from jifen.core.clock import FrozenClock
from jifen.core.errors import (
    AlreadyClaimed,
    InvalidInput,
    MemberClosed,
    MemberFrozen,
    NotFound,
    OrderConflict,
    OutsideClaimWindow,
    UnknownCode,
)
from jifen.db.uow import Database
from jifen.earning import purchases
from jifen.earning.models import Purchase
from jifen.earning.schemas import PurchaseIn
from jifen.jobs.runner import run_job
from jifen.ledger.models import JournalTransaction
from jifen.ledger.posting import Book
from jifen.ledger.queries import balance as read_balance
from jifen.members import service as members
from jifen.members.schemas import MemberStatus
from jifen.programs.models import Program
from jifen.programs.rulesets import save_rules
from jifen.programs.service import get_program
from jifen.rules.facts import period_key
from jifen.rules.schemas import RuleSet

BASKET = (item("6901", "60.25", 2, category="fresh"), item("7702", "100", discount="10"))
"""210.50 net: 2 × 60.25 of fresh food and 100 less 10 of something else."""


def _earns(db: Database, book: Book) -> int:
    return db.read(
        lambda s: s.scalar(
            select(func.count())
            .select_from(JournalTransaction)
            .where(
                JournalTransaction.program_id == book.program_id,
                JournalTransaction.kind.in_(["earn", "growth"]),
            )
        )
    )


# -- pending points, release, growth value ----------------------------------------------


def test_points_stay_pending_until_the_release_job_at_the_end_of_the_local_day(db, clock):
    book = make_program(db, clock, pending_days=7)
    set_rules(db, book, clock, PER_YUAN)
    member = make_member(db, book, clock)
    shown = buy(db, book, clock, order("POS-1", *BASKET, member=member))
    assert (shown.points, shown.growth) == (210, 210)
    # bought 15 January 10:00 Shanghai: the window closes when 23 January begins there
    assert shown.pending_until == datetime(2026, 1, 22, 16, 0, tzinfo=UTC)
    assert points(db, book, member, clock) == (0, 210, 210)  # growth value counts at once

    clock.set(datetime(2026, 1, 22, 15, 59, 59, tzinfo=UTC))
    assert run_job(db, "release", now=clock.now()).totals.points == 0
    assert points(db, book, member, clock) == (0, 210, 210)

    clock.set(datetime(2026, 1, 22, 16, 0, tzinfo=UTC))
    assert db.read(lambda s: read_balance(s, book, member, clock.now())) is None  # now due
    report = run_job(db, "release", now=clock.now())
    assert (report.totals.items, report.totals.points) == (1, 210)
    assert points(db, book, member, clock) == (210, 0, 210)
    assert run_job(db, "release", now=clock.now()).totals.points == 0  # idempotent


def test_a_purchase_a_minute_before_local_midnight_counts_from_its_own_local_day(db, clock):
    book = make_program(db, clock, pending_days=1)
    set_rules(db, book, clock, PER_YUAN)
    member = make_member(db, book, clock)
    # 23:59 on 14 January in Shanghai is 15:59 UTC the same day: released when 16 January
    # begins in Shanghai
    shown = buy(
        db, book, clock, order("late", item("x", 50), member=member, at=local(2026, 1, 14, 23, 59))
    )
    assert shown.pending_until == datetime(2026, 1, 15, 16, 0, tzinfo=UTC)
    clock.set(datetime(2026, 1, 15, 16, 0, tzinfo=UTC))
    assert run_job(db, "release", now=clock.now()).totals.points == 50
    assert points(db, book, member, clock) == (50, 0, 50)


def test_without_a_return_window_points_are_available_at_once(db, clock):
    book = make_program(db, clock, pending_days=0)
    set_rules(db, book, clock, PER_YUAN)
    member = make_member(db, book, clock)
    shown = buy(db, book, clock, order("POS-1", *BASKET, member=member))
    assert shown.pending_until is None
    assert points(db, book, member, clock) == (210, 0, 210)


def test_growth_value_is_one_per_currency_unit_rounded_down_by_default(db, clock):
    book = make_program(db, clock)  # the default rules: no points, growth 1 per 元
    member = make_member(db, book, clock)
    shown = buy(db, book, clock, order("POS-1", item("x", "33.33", 3), member=member))
    assert (shown.points, shown.growth) == (0, 99)  # 99.99 → 99
    [growth] = shown.growth_breakdown
    assert (growth.rule, growth.basis, growth.wanted, growth.points) == (
        "growth",
        Decimal("99.99"),
        99,
        99,
    )
    assert points(db, book, member, clock) == (0, 0, 99)


# -- the order id -----------------------------------------------------------------------


def test_a_repeated_order_id_returns_the_first_result_and_awards_nothing_more(db, clock):
    book = make_program(db, clock, pending_days=0)
    set_rules(db, book, clock, PER_YUAN)
    member = make_member(db, book, clock)
    first, created = record(db, book, clock, order("POS-1", *BASKET, member=member))
    assert created
    before = dump(db)
    clock.advance(minutes=3)
    again, created = record(db, book, clock, order("POS-1", *BASKET, member=member))
    assert not created
    assert again == first
    assert dump(db) == before
    assert points(db, book, member, clock) == (210, 0, 210)


@pytest.mark.parametrize(
    ("change", "difference"),
    [
        ({"member": "other"}, "member"),
        ({"member": None}, "member"),
        ({"lines": [item("7702", "100")]}, "total"),
    ],
)
def test_the_same_order_id_with_another_member_or_total_is_a_conflict(
    db, clock, change: dict[str, Any], difference: str
):
    book = make_program(db, clock)
    set_rules(db, book, clock, PER_YUAN)
    member, other = make_member(db, book, clock), make_member(db, book, clock)
    first = buy(db, book, clock, order("POS-1", *BASKET, member=member))
    lines = change.get("lines", BASKET)
    who = {"other": other, None: None}.get(change.get("member", "same"), member)
    before = dump(db)
    with pytest.raises(OrderConflict) as refused:
        record(db, book, clock, order("POS-1", *lines, member=who))
    assert refused.value.params == {
        "external_id": "POS-1",
        "purchase_id": first.id,
        "difference": difference,
    }
    assert dump(db) == before


@pytest.mark.postgres
def test_8_concurrent_posts_of_one_order_award_it_once(pg_db, clock):
    db = pg_db
    book = make_program(db, clock, pending_days=0)
    set_rules(db, book, clock, PER_YUAN)
    member = make_member(db, book, clock)
    data = PurchaseIn.model_validate(order("POS-1", *BASKET, member=member))
    start = Barrier(8)

    def post(i: int) -> tuple[int, bool]:
        start.wait()

        def run(s):
            done = purchases.record(
                s, get_program(s, book.program_id), book, data, now=clock.now(), actor=f"till-{i}"
            )
            return done.purchase.id, done.created

        return db.write(run)

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(post, range(8)))
    assert len({purchase for purchase, _ in results}) == 1
    assert sorted(created for _, created in results) == [False] * 7 + [True]
    assert points(db, book, member, clock) == (210, 0, 210)
    assert _earns(db, book) == 2  # one earn, one growth credit


@pytest.mark.postgres
def test_8_concurrent_posts_of_one_unclaimed_order_record_it_once(pg_db, clock):
    db = pg_db
    book = make_program(db, clock)
    data = PurchaseIn.model_validate(order("POS-1", *BASKET))
    start = Barrier(8)

    def post(_: int) -> tuple[int, bool]:
        start.wait()

        def run(s):
            done = purchases.record(
                s, get_program(s, book.program_id), book, data, now=clock.now(), actor="till"
            )
            return done.purchase.id, done.created

        return db.write(run)

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(post, range(8)))
    assert len({purchase for purchase, _ in results}) == 1
    assert sorted(created for _, created in results) == [False] * 7 + [True]
    assert db.read(lambda s: s.scalar(select(func.count()).select_from(Purchase))) == 1


# -- refusals -----------------------------------------------------------------------------


def _refused(db: Database, book: Book, clock: FrozenClock, body: dict[str, Any], error: type):
    before = dump(db)
    with pytest.raises(error) as refused:
        record(db, book, clock, body)
    assert dump(db) == before
    return refused.value


def test_unknown_or_inactive_channels_and_stores_are_refused(db, clock):
    book = make_program(db, clock)
    member = make_member(db, book, clock)
    add_store(db, book, "sh-001")
    add_store(db, book, "sh-closed", active=False)
    buy(db, book, clock, order("ok", *BASKET, member=member, store="sh-001"))
    error = _refused(
        db, book, clock, order("o1", *BASKET, member=member, channel="fax"), UnknownCode
    )
    assert error.params == {
        "field": "channel",
        "code": "fax",
        "known": "app, mini_program, pos, store, web",
    }
    for store in ("sh-closed", "sh-999"):
        body = order("o2", *BASKET, member=member, store=store)
        error = _refused(db, book, clock, body, UnknownCode)
        assert error.params == {"field": "store", "code": store, "known": "sh-001"}


def test_an_order_more_than_five_minutes_in_the_future_is_refused(db, clock):
    book = make_program(db, clock)
    member = make_member(db, book, clock)
    soon = clock.now() + timedelta(minutes=5)
    buy(db, book, clock, order("ok", *BASKET, member=member, at=soon))  # a till's clock skew
    body = order("late", *BASKET, member=member, at=soon + timedelta(seconds=1))
    error = _refused(db, book, clock, body, InvalidInput)
    assert error.params == {"field": "occurred_at", "reason": "is in the future"}


def test_an_order_older_than_the_claim_window_is_refused_with_a_member(db, clock):
    book = make_program(db, clock, claim_days=30)
    member = make_member(db, book, clock)
    edge = clock.now() - timedelta(days=30)
    buy(db, book, clock, order("ok", *BASKET, member=member, at=edge))
    body = order("old", *BASKET, member=member, at=edge - timedelta(seconds=1))
    _refused(db, book, clock, body, OutsideClaimWindow)
    # without a member an old order is recorded (to be claimed, which the window refuses)
    buy(db, book, clock, order("old", *BASKET, at=edge - timedelta(days=1)))


@pytest.mark.parametrize("status", [MemberStatus.FROZEN, MemberStatus.CLOSED])
def test_a_frozen_or_closed_member_cannot_earn(db, clock, status: MemberStatus):
    book = make_program(db, clock)
    set_rules(db, book, clock, PER_YUAN)
    member = make_member(db, book, clock)
    db.write(lambda s: members.set_status(s, book, member, status, reason="test", now=clock.now()))
    error = MemberFrozen if status == MemberStatus.FROZEN else MemberClosed
    _refused(db, book, clock, order("o1", *BASKET, member=member), error)


def test_an_unknown_member_is_not_found(db, clock):
    book = make_program(db, clock)
    _refused(db, book, clock, order("o1", *BASKET, member={"phone": "13900000000"}), NotFound)


@pytest.mark.parametrize(
    ("lines", "total", "message"),
    [
        ([item("x", "10", 2)], "19.99", "total 19.99 does not equal"),
        ([item("x", "10", -1)], "-10", "greater than 0"),
        ([item("x", "10", 0)], "0", "greater than 0"),
        (
            [item("x", "10", 2, amount="21")],
            "21",
            r"amount 21 is not quantity × unit price \(20\.00",
        ),
        ([item("x", "10", discount="10.01")], "-0.01", "discount 10.01 is more than"),
        ([], "0", "at least 1 item"),
        ([item("x", "-1")], "-1", "greater than or equal to 0"),
    ],
)
def test_a_basket_that_does_not_add_up_is_refused(lines, total: str, message: str):
    body = order("o1", *lines, member=1) | {"total": total}
    with pytest.raises(ValidationError, match=message):
        PurchaseIn.model_validate(body)


def test_a_line_amount_is_checked_to_the_cent_half_up():
    # 1.5 kg at 0.03 is 0.045: 0.05 half up (0.04 would be banker's rounding)
    body = order("o1", item("x", "0.03", "1.5", amount="0.05"), member=1)
    assert PurchaseIn.model_validate(body).total == Decimal("0.05")
    with pytest.raises(ValidationError, match=r"amount 0.04 is not quantity × unit price"):
        PurchaseIn.model_validate(body | {"lines": [item("x", "0.03", "1.5", amount="0.04")]})


# -- the member, and what the rules know of them --------------------------------------------


@pytest.mark.parametrize(
    ("fields", "ref"),
    [
        ({"phone": "13800138000"}, {"phone": "13800138000"}),
        ({"card_number": "8800123"}, {"card_number": "8800123"}),
        ({"external_id": "wx-42"}, {"external_id": "wx-42"}),
        ({"email": "li@example.com"}, {"email": "li@example.com"}),
    ],
)
def test_the_member_is_found_by_any_identifier(db, clock, fields, ref):
    book = make_program(db, clock, pending_days=0)
    set_rules(db, book, clock, PER_YUAN)
    member = make_member(db, book, clock, **fields)
    shown = buy(db, book, clock, order("o1", *BASKET, member=ref))
    assert (shown.member_id, shown.points) == (member, 210)
    assert points(db, book, member, clock) == (210, 0, 210)


def test_a_first_purchase_bonus_fires_only_on_the_first_purchase(db, clock):
    book = make_program(db, clock)
    set_rules(
        db, book, clock, PER_YUAN, rule("welcome", {"bonus": 50}, when={"first_purchase": True})
    )
    member, other = make_member(db, book, clock), make_member(db, book, clock)
    first = buy(db, book, clock, order("o1", item("x", 10), member=member))
    assert [(b.rule, b.points) for b in first.breakdown] == [("base", 10), ("welcome", 50)]
    second = buy(db, book, clock, order("o2", item("x", 10), member=member))
    assert [(b.rule, b.points) for b in second.breakdown] == [("base", 10)]
    # an order recorded without the member is theirs only once claimed: no effect
    buy(db, book, clock, order("o3", item("x", 10)))
    theirs = buy(db, book, clock, order("o4", item("x", 10), member=other))
    assert theirs.points == 60


def test_a_segment_rule_fires_for_members_of_the_segment(db, clock):
    book = make_program(db, clock)
    set_rules(db, book, clock, PER_YUAN, rule("vip", {"multiplier": 2}, when={"segment": ["vip"]}))
    vip, plain = make_member(db, book, clock), make_member(db, book, clock)
    add_to_segment(db, book, clock, vip, "vip")
    add_to_segment(db, book, clock, plain, "students")
    assert buy(db, book, clock, order("o1", *BASKET, member=vip)).points == 420
    assert buy(db, book, clock, order("o2", *BASKET, member=plain)).points == 210


def _stored_facts(db: Database, purchase_id: int) -> dict[str, Any]:
    return db.read(lambda s: s.get_one(Purchase, purchase_id).facts)


def test_the_facts_stored_with_a_purchase_are_those_its_rules_read(db, clock):
    """Segments and the first purchase are read (and stored) only when a rule asks them;
    when one does, they are stored as read."""
    book = make_program(db, clock)
    set_rules(db, book, clock, PER_YUAN)
    member = make_member(db, book, clock)
    add_to_segment(db, book, clock, member, "vip")
    plain = buy(db, book, clock, order("o1", item("x", 10), member=member))
    assert _stored_facts(db, plain.id) == {"tier": None, "birthday": None, "tier_multiplier": None}

    set_rules(db, book, clock, PER_YUAN, rule("vip", {"multiplier": 2}, when={"segment": ["vip"]}))
    by_segment = buy(db, book, clock, order("o2", item("x", 10), member=member))
    assert by_segment.points == 20
    assert _stored_facts(db, by_segment.id) == {
        "tier": None,
        "segments": ["vip"],
        "birthday": None,
        "tier_multiplier": None,
    }

    welcome = rule("welcome", {"bonus": 5}, when={"first_purchase": True})
    set_rules(db, book, clock, PER_YUAN, welcome)
    other = make_member(db, book, clock)
    first = buy(db, book, clock, order("o3", item("x", 10), member=other))
    again = buy(db, book, clock, order("o4", item("x", 10), member=member))
    assert (first.points, again.points) == (15, 10)
    assert _stored_facts(db, first.id)["first_purchase"] is True
    assert _stored_facts(db, again.id) == {
        "tier": None,
        "first_purchase": False,
        "birthday": None,
        "tier_multiplier": None,
    }


def test_a_birthday_month_rule_fires_in_the_local_birthday_month(db, clock):
    book = make_program(db, clock)
    set_rules(
        db,
        book,
        clock,
        PER_YUAN,
        rule("birthday", {"multiplier": 3}, when={"birthday_month": True}),
    )
    january = make_member(db, book, clock, birthday="1990-01-31")
    february = make_member(db, book, clock, birthday="1990-02-01")
    nobody = make_member(db, book, clock)
    assert buy(db, book, clock, order("o1", item("x", 10), member=january)).points == 30
    assert buy(db, book, clock, order("o2", item("x", 10), member=february)).points == 10
    assert buy(db, book, clock, order("o3", item("x", 10), member=nobody)).points == 10
    # 1 February 00:30 in Shanghai is still 31 January in UTC: February's member is served
    clock.set(local(2026, 2, 1, 1))
    at = local(2026, 2, 1, 0, 30)
    assert buy(db, book, clock, order("o4", item("x", 10), member=february, at=at)).points == 30
    assert buy(db, book, clock, order("o5", item("x", 10), member=january, at=at)).points == 10


def test_member_day_follows_the_shanghai_day_through_real_purchases(db, clock):
    book = make_program(db, clock)
    set_rules(
        db,
        book,
        clock,
        PER_YUAN,
        rule("member-day", {"multiplier": 2}, when={"days_of_month": [8]}),
    )
    member = make_member(db, book, clock)
    got = {
        at.strftime("%d %H:%M"): buy(
            db, book, clock, order(f"o-{at:%d%H%M}", item("x", 100), member=member, at=at)
        ).points
        for at in (
            local(2026, 1, 7, 23, 59),  # 15:59 UTC on the 7th
            local(2026, 1, 8, 0, 1),  # 16:01 UTC on the 7th: member day in Shanghai
            local(2026, 1, 8, 23, 59),  # 15:59 UTC on the 8th
            local(2026, 1, 9, 0, 1),  # 16:01 UTC on the 8th: no longer member day
        )
    }
    assert got == {"07 23:59": 100, "08 00:01": 200, "08 23:59": 200, "09 00:01": 100}


# -- claims ---------------------------------------------------------------------------------


def test_an_unclaimed_order_is_claimed_within_the_window_and_awarded_once(db, clock):
    book = make_program(db, clock, pending_days=7, claim_days=30)
    set_rules(db, book, clock, PER_YUAN)
    member = make_member(db, book, clock)
    recorded = buy(db, book, clock, order("POS-1", *BASKET))
    assert (recorded.member_id, recorded.status, recorded.points, recorded.growth) == (
        None,
        "unclaimed",
        0,
        0,
    )
    assert (recorded.rule_set_version, recorded.pending_until, recorded.breakdown) == (
        None,
        None,
        [],
    )
    clock.advance(days=2)
    claimed, created = claim(db, book, clock, "POS-1", member)
    assert created
    assert (claimed.id, claimed.member_id, claimed.status, claimed.points) == (
        recorded.id,
        member,
        "awarded",
        210,
    )
    assert claimed.claimed_at == clock.now()
    # the return window runs from the purchase, not from the claim
    assert claimed.pending_until == datetime(2026, 1, 22, 16, 0, tzinfo=UTC)
    assert points(db, book, member, clock) == (0, 210, 210)
    before = dump(db)
    again, created = claim(db, book, clock, "POS-1", member)
    assert not created
    assert again == claimed
    assert dump(db) == before


def test_an_order_claimed_after_its_return_window_is_available_at_once(db, clock):
    book = make_program(db, clock, pending_days=7, claim_days=30)
    set_rules(db, book, clock, PER_YUAN)
    member = make_member(db, book, clock)
    buy(db, book, clock, order("POS-1", *BASKET, at=local(2026, 1, 1, 9)))
    claimed, _ = claim(db, book, clock, "POS-1", member)
    assert claimed.pending_until is None
    assert points(db, book, member, clock) == (210, 0, 210)


def test_claims_that_are_refused_change_nothing(db, clock):
    book = make_program(db, clock, claim_days=30)
    set_rules(db, book, clock, PER_YUAN)
    member, other, frozen = (make_member(db, book, clock) for _ in range(3))
    db.write(
        lambda s: members.set_status(
            s, book, frozen, MemberStatus.FROZEN, reason="review", now=clock.now()
        )
    )
    buy(db, book, clock, order("old", *BASKET, at=clock.now() - timedelta(days=30, seconds=1)))
    buy(db, book, clock, order("edge", *BASKET, at=clock.now() - timedelta(days=30)))
    mine = buy(db, book, clock, order("mine", *BASKET, member=member))
    before = dump(db)
    for external_id, who, error, params in [
        ("old", member, OutsideClaimWindow, {"days": 30}),
        ("mine", other, AlreadyClaimed, {"external_id": "mine", "member_id": member}),
        ("nowhere", member, NotFound, {"what": "order", "key": "nowhere"}),
        ("edge", frozen, MemberFrozen, {"member_id": frozen}),
    ]:
        with pytest.raises(error) as refused:
            claim(db, book, clock, external_id, who)
        assert params.items() <= refused.value.params.items()
    assert dump(db) == before
    # the same member claiming their own order gets it back
    assert claim(db, book, clock, "mine", member) == (mine, False)
    assert claim(db, book, clock, "edge", member)[0].points == 210


# -- caps and budgets ---------------------------------------------------------------------


def test_a_per_order_cap(db, clock):
    book = make_program(db, clock)
    set_rules(db, book, clock, rule("base", {"points_per_amount": 2}, cap_per_order=300))
    member = make_member(db, book, clock)
    shown = buy(db, book, clock, order("o1", *BASKET, member=member))
    [base] = shown.breakdown
    assert (base.wanted, base.points, base.capped_by) == (421, 300, "order")
    assert buy(db, book, clock, order("o2", *BASKET, member=member)).points == 300
    assert counters(db, book) == {}  # an order cap needs no counter


@pytest.mark.parametrize(
    ("period", "first", "last", "next_", "keys"),
    [
        (
            "day",
            local(2026, 1, 15, 8),
            local(2026, 1, 15, 23, 59),
            local(2026, 1, 16, 0, 1),
            ("day:2026-01-15", "day:2026-01-16"),
        ),
        (
            "week",  # ISO weeks, Monday to Sunday in Shanghai
            local(2026, 1, 12, 8),
            local(2026, 1, 18, 23, 59),
            local(2026, 1, 19, 0, 1),
            ("week:2026-W03", "week:2026-W04"),
        ),
        (
            "month",
            local(2026, 1, 5, 8),
            local(2026, 1, 31, 23, 59),
            local(2026, 2, 1, 0, 1),
            ("month:2026-01", "month:2026-02"),
        ),
    ],
)
def test_a_member_cap_per_local_period_across_purchases(
    db, clock, period: str, first: datetime, last: datetime, next_: datetime, keys: tuple[str, str]
):
    book = make_program(db, clock)
    set_rules(db, book, clock, rule("base", {"points_per_amount": 1}, caps={period: 300}))
    member, other = make_member(db, book, clock), make_member(db, book, clock)
    clock.set(local(2026, 2, 1, 12))
    got = [
        buy(db, book, clock, order(f"o{i}", item("x", 200), member=member, at=at)).breakdown[0]
        for i, at in enumerate((first, last, last, next_))
    ]
    assert [(b.wanted, b.points, b.capped_by) for b in got] == [
        (200, 200, None),
        (200, 100, "allowance"),
        (200, 0, "allowance"),
        (200, 200, None),  # a new local period starts afresh
    ]
    # another member's cap is their own
    assert buy(db, book, clock, order("x", item("x", 200), member=other, at=last)).points == 200
    assert counters(db, book) == {
        f"member:{member}:base:{keys[0]}": 300,
        f"member:{member}:base:{keys[1]}": 200,
        f"member:{other}:base:{keys[0]}": 200,
    }


def test_a_budget_is_shared_by_all_members_and_counted_exactly(db, clock):
    book = make_program(db, clock)
    set_rules(db, book, clock, PER_YUAN, rule("promo", {"bonus": 30}, budget={"points": 70}))
    got = []
    for i in range(4):
        member = make_member(db, book, clock)
        shown = buy(db, book, clock, order(f"o{i}", item("x", 10), member=member))
        got.append({b.rule: b.points for b in shown.breakdown})
    assert got == [
        {"base": 10, "promo": 30},
        {"base": 10, "promo": 30},
        {"base": 10, "promo": 10},
        {"base": 10, "promo": 0},
    ]
    assert counters(db, book) == {"budget:promo:total": 70}


def test_a_daily_budget_starts_afresh_each_local_day(db, clock):
    book = make_program(db, clock)
    set_rules(db, book, clock, rule("promo", {"bonus": 30}, budget={"points": 40, "period": "day"}))
    member = make_member(db, book, clock)
    clock.set(local(2026, 1, 16, 12))
    got = [
        buy(db, book, clock, order(f"o{i}", item("x", 1), member=member, at=at)).points
        for i, at in enumerate(
            (local(2026, 1, 15, 9), local(2026, 1, 15, 23, 59), local(2026, 1, 16, 0, 1))
        )
    ]
    assert got == [30, 10, 30]
    assert counters(db, book) == {
        "budget:promo:day:2026-01-15": 40,
        "budget:promo:day:2026-01-16": 30,
    }


def test_a_best_of_rule_that_loses_to_a_spent_budget_is_bounded_by_its_own(db, clock):
    """The richer rule of a best_of group wins while its budget lasts; once it is spent the
    other rule wins, and it too gives no more than its own budget."""
    book = make_program(db, clock)
    set_rules(
        db,
        book,
        clock,
        rule(
            "double",
            {"points_per_amount": 2},
            stacking="best_of",
            group="g",
            budget={"points": 100},
        ),
        rule(
            "single",
            {"points_per_amount": 1},
            stacking="best_of",
            group="g",
            budget={"points": 100},
        ),
    )
    member = make_member(db, book, clock)
    got = [
        {
            b.rule: (b.points, b.capped_by)
            for b in buy(db, book, clock, order(f"o{i}", item("x", 50), member=member)).breakdown
        }
        for i in range(4)
    ]
    assert got == [
        {"double": (100, None)},
        {"single": (50, None)},
        {"single": (50, None)},
        {"double": (0, "allowance")},  # both spent: the tie goes to the first rule
    ]
    assert counters(db, book) == {"budget:double:total": 100, "budget:single:total": 100}


def test_a_multiplier_that_applies_once_a_best_of_group_changes_hands_is_bounded(db, clock):
    """Unbounded, the fresh-food rate wins its group and the toys multiplier has no base
    to multiply; once that rate's budget is spent the plain rate wins, and the multiplier
    then applies to the toys line — within its own budget."""
    book = make_program(db, clock)
    set_rules(
        db,
        book,
        clock,
        rule(
            "fresh",
            {"points_per_amount": 2},
            when={"category": ["fresh"]},
            stacking="best_of",
            group="g",
            budget={"points": 200},
        ),
        rule("plain", {"points_per_amount": 1}, stacking="best_of", group="g"),
        rule("toys", {"multiplier": 2}, when={"category": ["toys"]}, budget={"points": 15}),
    )
    member = make_member(db, book, clock)
    basket = (item("x", 100, category="fresh"), item("y", 10, category="toys"))
    got = [
        {
            b.rule: b.points
            for b in buy(db, book, clock, order(f"o{i}", *basket, member=member)).breakdown
        }
        for i in range(4)
    ]
    assert got == [
        {"fresh": 200},
        {"plain": 110, "toys": 10},
        {"plain": 110, "toys": 5},
        {"plain": 110, "toys": 0},
    ]
    assert counters(db, book) == {"budget:fresh:total": 200, "budget:toys:total": 15}


@pytest.mark.postgres
def test_50_members_buying_at_once_never_exceed_a_budget(pg_db, clock):
    db = pg_db
    book = make_program(db, clock)
    set_rules(db, book, clock, PER_YUAN, rule("promo", {"bonus": 30}, budget={"points": 1000}))
    buyers = [make_member(db, book, clock) for _ in range(50)]
    start = Barrier(25)

    def post(i: int) -> dict[str, int]:
        if i < 25:
            start.wait()
        data = PurchaseIn.model_validate(order(f"o{i}", item("x", 10), member=buyers[i]))

        def run(s):
            program = get_program(s, book.program_id)
            done = purchases.record(s, program, book, data, now=clock.now(), actor="t")
            return {item["rule"]: item["points"] for item in done.purchase.breakdown}

        return db.write(run)

    with ThreadPoolExecutor(25) as pool:
        got = list(pool.map(post, range(50)))
    assert all(g["base"] == 10 for g in got)
    promo = sorted(g.get("promo", 0) for g in got)
    assert promo == [0] * 16 + [10] + [30] * 33
    assert sum(promo) == 1000
    assert counters(db, book) == {"budget:promo:total": 1000}
    available = [points(db, book, m, clock)[0] for m in buyers]
    assert sum(available) == 50 * 10 + 1000


# -- properties --------------------------------------------------------------------------


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(document=rule_sets(), data=st.data())
def test_caps_and_budgets_are_never_exceeded_and_counted_exactly(db, document, data):
    """Two members buy under random capped rules: no order cap, member cap or budget is
    ever exceeded, and every counter holds exactly what its rule gave."""
    clock = FrozenClock(datetime(2026, 1, 15, 2, 0, tzinfo=UTC))
    book = make_program(db, clock)
    db.write(
        lambda s: save_rules(
            s, book.program_id, RuleSet.model_validate(document), now=clock.now(), actor="t"
        )
    )
    buyers = [make_member(db, book, clock) for _ in range(2)]
    specs = {r["id"]: r for r in document["earning_rules"] + document.get("growth_rules", [])}
    used: dict[str, int] = {}
    limits: dict[str, int] = {}
    for i in range(data.draw(st.integers(2, 5), label="purchases")):
        who = buyers[data.draw(st.integers(0, 1), label="buyer")]
        shown = buy(db, book, clock, data.draw(baskets(f"o{i}", who), label=f"order {i}"))
        day = shown.occurred_at.astimezone(book.tz).date()
        for prefix, items in (("", shown.breakdown), ("growth:", shown.growth_breakdown)):
            for b in items:
                assert 0 <= b.points <= b.wanted
                spec = specs.get(b.rule)
                if spec is None:
                    continue  # the default growth rule
                assert b.points <= spec.get("cap_per_order", b.points)
                bounds = [
                    (f"member:{who}:{prefix}{b.rule}:{period_key(period, day)}", limit)
                    for period, limit in (spec.get("caps") or {}).items()
                ]
                if "budget" in spec:
                    period = spec["budget"]["period"]
                    key = f"budget:{prefix}{b.rule}:{period_key(period, day)}"
                    bounds.append((key, spec["budget"]["points"]))
                for key, limit in bounds:
                    used[key] = used.get(key, 0) + b.points
                    limits[key] = limit
    assert all(used[key] <= limits[key] for key in used), (used, limits)
    assert counters(db, book) == {key: n for key, n in used.items() if n}


def test_the_till_resending_an_order_a_member_has_since_claimed_gets_the_claimed_order(db, clock):
    book = make_program(db, clock, pending_days=7, claim_days=30)
    set_rules(db, book, clock, PER_YUAN)
    member = make_member(db, book, clock)
    buy(db, book, clock, order("POS-1", *BASKET))
    claimed, _ = claim(db, book, clock, "POS-1", member)
    before = dump(db)
    again, created = record(db, book, clock, order("POS-1", *BASKET))
    assert not created
    assert (again.id, again.member_id, again.points) == (claimed.id, member, 210)
    assert dump(db) == before


def test_a_frozen_member_resending_a_recorded_order_gets_the_first_result(db, clock):
    book = make_program(db, clock, pending_days=7)
    set_rules(db, book, clock, PER_YUAN)
    member = make_member(db, book, clock)
    first = buy(db, book, clock, order("POS-1", *BASKET, member=member))
    db.write(
        lambda s: members.set_status(
            s, book, member, MemberStatus.FROZEN, reason="check", now=clock.now()
        )
    )
    before = dump(db)
    again, created = record(db, book, clock, order("POS-1", *BASKET, member=member))
    assert (created, again.id, again.points) == (False, first.id, 210)
    assert dump(db) == before


def test_pending_until_is_when_the_points_really_release(db, clock):
    book = make_program(db, clock, pending_days=7)
    set_rules(db, book, clock, PER_YUAN)
    member = make_member(db, book, clock)
    first = buy(db, book, clock, order("POS-1", *BASKET, member=member))
    assert first.pending_until is not None
    # the programme's window changes later: the order's release stays as booked
    db.write(
        lambda s: s.execute(
            update(Program).where(Program.id == book.program_id).values(pending_days=1)
        )
    )
    again, _ = record(db, book, clock, order("POS-1", *BASKET, member=member))
    assert again.pending_until == first.pending_until
