"""Behaviour events (E4) through the service: each built-in type, frequency limits counted
in the programme's time zone, repeats, budgets (also under 20 concurrent events), and
refusals that write nothing."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from threading import Barrier
from typing import Any

import pytest
from sqlalchemy import func, select

from factories import make_member, make_program
from jifen.core.clock import FrozenClock
from jifen.core.errors import Conflict, InvalidInput, MemberClosed, MemberFrozen, NotFound
from jifen.db.outbox import OutboxEvent
from jifen.db.uow import Database
from jifen.earning.event_schemas import BUILT_IN_EVENT_TYPES, EventIn
from jifen.earning.events import Recorded, get_event, member_events, record_event
from jifen.earning.models import BehaviourEvent, RuleCounter
from jifen.ledger.models import JournalTransaction
from jifen.ledger.posting import Book
from jifen.ledger.queries import current_balance
from jifen.members import service as members
from jifen.members.schemas import MemberStatus
from jifen.programs.rulesets import save_rules
from jifen.programs.service import get_program
from jifen.rules.schemas import RuleSet

SHANGHAI = timedelta(hours=8)


def local(*args: int) -> datetime:
    """A Shanghai wall-clock time as a UTC instant."""
    return datetime(*args, tzinfo=UTC) - SHANGHAI


def set_rules(db: Database, book: Book, clock: FrozenClock, *rules: dict[str, Any]) -> int:
    rule_set = RuleSet.model_validate({"event_rules": list(rules)})
    return db.write(
        lambda s: save_rules(s, book.program_id, rule_set, now=clock.now(), actor="test")[0]
    )


def record(
    db: Database,
    book: Book,
    clock: FrozenClock,
    member: int,
    event_type: str,
    external_id: str | None = None,
    **fields: Any,
) -> Recorded:
    data = EventIn.model_validate(
        {
            "type": event_type,
            "member": {"id": member},
            "external_id": external_id or str(uuid.uuid4()),
            **fields,
        }
    )
    return db.write(
        lambda s: record_event(
            s,
            get_program(s, book.program_id),
            book,
            data,
            now=clock.now(),
            actor="test",
        )
    )


def available(db: Database, book: Book, clock: FrozenClock, member: int) -> int:
    return current_balance(db, book, member, clock.now()).available


def statuses(db: Database, book: Book, member: int) -> list[tuple[str, int]]:
    rows = db.read(
        lambda s: s.execute(
            select(BehaviourEvent.status, BehaviourEvent.points)
            .where(BehaviourEvent.program_id == book.program_id, BehaviourEvent.member_id == member)
            .order_by(BehaviourEvent.id)
        ).all()
    )
    return [(status, points) for status, points in rows]


def counts(db: Database) -> tuple[int, int, int]:
    """Events, journal transactions, rule counters: what a refusal must leave alone."""

    def read(s: Any) -> tuple[int, int, int]:
        return (
            s.scalar(select(func.count()).select_from(BehaviourEvent)),
            s.scalar(select(func.count()).select_from(JournalTransaction)),
            s.scalar(select(func.count()).select_from(RuleCounter)),
        )

    return db.read(read)


# -- types -----------------------------------------------------------------------------------


@pytest.mark.parametrize("event_type", BUILT_IN_EVENT_TYPES)
def test_each_built_in_type_gives_its_points_and_growth(db, clock, event_type):
    book = make_program(db, clock)
    member = make_member(db, book, clock)
    version = set_rules(
        db, book, clock, {"type": event_type, "name": "行为", "points": 20, "growth": 3}
    )
    done = record(db, book, clock, member, event_type, "e-1")
    event = done.event
    assert not done.repeat
    assert (event.status, event.points, event.growth, event.type) == ("awarded", 20, 3, event_type)
    assert event.rule_set_version == version
    balance = current_balance(db, book, member, clock.now())
    assert (balance.available, balance.pending, balance.growth_value) == (20, 0, 3)
    txn = db.read(lambda s: s.get(JournalTransaction, event.points_txn_id))
    assert txn.reference == f"event:{event.id}"
    assert txn.kind == "earn"
    assert txn.details == {"event_id": event.id, "type": event_type, "external_id": "e-1"}
    growth = db.read(lambda s: s.get(JournalTransaction, event.growth_txn_id))
    assert (growth.kind, growth.points) == ("growth", 3)


def test_points_are_available_at_once_even_with_a_return_window(db, clock):
    book = make_program(db, clock, pending_days=7)
    member = make_member(db, book, clock)
    set_rules(db, book, clock, {"type": "review", "name": "评价", "points": 5})
    record(db, book, clock, member, "review")
    balance = current_balance(db, book, member, clock.now())
    assert (balance.available, balance.pending) == (5, 0)


def test_a_custom_type_works_once_a_rule_defines_it(db, clock):
    book = make_program(db, clock)
    member = make_member(db, book, clock)
    set_rules(db, book, clock, {"type": "task_done", "name": "完成任务", "points": 8})
    assert record(db, book, clock, member, "task_done").event.points == 8


def test_a_type_without_an_active_rule_is_refused_naming_the_known_types(db, clock):
    book = make_program(db, clock)
    member = make_member(db, book, clock)
    set_rules(
        db,
        book,
        clock,
        {"type": "review", "name": "评价", "points": 5},
        {"type": "check_in", "name": "签到", "points": 1},
        {"type": "social_share", "name": "分享", "points": 2, "active": False},
    )
    before = counts(db)
    for event_type in ("sign_up", "social_share"):
        with pytest.raises(InvalidInput) as refused:
            record(db, book, clock, member, event_type)
        assert refused.value.params["field"] == "type"
        assert "known types: check_in, review" in refused.value.params["reason"]
    with pytest.raises(InvalidInput, match="birthday job"):
        record(db, book, clock, member, "birthday")
    with pytest.raises(InvalidInput, match="birthday job"):
        record(db, book, clock, member, "review", "birthday:1:2026")
    assert counts(db) == before


def test_a_programme_without_event_rules_knows_no_types(db, clock):
    book = make_program(db, clock)
    member = make_member(db, book, clock)
    with pytest.raises(InvalidInput, match="known types: none"):
        record(db, book, clock, member, "sign_up")


def test_an_unknown_member_is_not_found(db, clock):
    book = make_program(db, clock)
    set_rules(db, book, clock, {"type": "review", "name": "评价", "points": 5})
    with pytest.raises(NotFound):
        record(db, book, clock, 424242, "review")
    data = EventIn.model_validate(
        {"type": "review", "member": {"phone": "13900000000"}, "external_id": "x"}
    )
    with pytest.raises(NotFound):
        db.write(
            lambda s: record_event(
                s, get_program(s, book.program_id), book, data, now=clock.now(), actor="t"
            )
        )


def test_a_member_named_by_phone(db, clock):
    book = make_program(db, clock)
    member = make_member(db, book, clock, phone="13912345678")
    set_rules(db, book, clock, {"type": "review", "name": "评价", "points": 5})
    data = EventIn.model_validate(
        {"type": "review", "member": {"phone": "139 1234 5678"}, "external_id": "x"}
    )
    done = db.write(
        lambda s: record_event(
            s, get_program(s, book.program_id), book, data, now=clock.now(), actor="t"
        )
    )
    assert done.event.member_id == member


# -- frequency limits ------------------------------------------------------------------------


def test_once_ever(db, clock):
    book = make_program(db, clock)
    member = make_member(db, book, clock)
    set_rules(db, book, clock, {"type": "sign_up", "name": "注册", "points": 100, "limit": {}})
    assert record(db, book, clock, member, "sign_up").event.status == "awarded"
    clock.advance(days=400)
    second = record(db, book, clock, member, "sign_up").event
    assert (second.status, second.points, second.growth) == ("limited", 0, 0)
    assert second.points_txn_id is None
    assert available(db, book, clock, member) == 100
    other = make_member(db, book, clock)
    assert record(db, book, clock, other, "sign_up").event.status == "awarded"


def test_n_per_day_counts_local_days_in_shanghai(db, clock):
    book = make_program(db, clock)  # Asia/Shanghai, UTC+8
    member = make_member(db, book, clock)
    set_rules(
        db,
        book,
        clock,
        {"type": "check_in", "name": "签到", "points": 1, "limit": {"count": 2, "per": "day"}},
    )
    clock.set(local(2026, 1, 16, 12, 0))

    def at(when: datetime) -> str:
        return record(db, book, clock, member, "check_in", occurred_at=when).event.status

    # 23:59 on the 15th and 00:01 on the 16th are one UTC day (15:59 and 16:01 UTC)
    assert at(local(2026, 1, 15, 23, 59)) == "awarded"
    assert at(local(2026, 1, 15, 8, 1)) == "awarded"  # 00:01 UTC: still the local 15th
    assert at(local(2026, 1, 15, 7, 59)) == "limited"  # 23:59 UTC on the 14th: local 15th
    assert at(local(2026, 1, 16, 0, 1)) == "awarded"
    assert at(local(2026, 1, 16, 11, 0)) == "awarded"
    assert at(local(2026, 1, 16, 11, 30)) == "limited"
    assert available(db, book, clock, member) == 4


def test_per_week_is_the_iso_week_in_local_time(db, clock):
    book = make_program(db, clock)
    member = make_member(db, book, clock)
    set_rules(
        db,
        book,
        clock,
        {"type": "survey_completed", "name": "问卷", "points": 7, "limit": {"per": "week"}},
    )
    clock.set(local(2026, 1, 19, 12, 0))  # a Monday
    sunday_night = local(2026, 1, 18, 23, 50)
    monday_morning = local(2026, 1, 19, 0, 10)  # Sunday 16:10 UTC: the same UTC ISO week

    def at(when: datetime) -> str:
        return record(db, book, clock, member, "survey_completed", occurred_at=when).event.status

    assert at(sunday_night) == "awarded"
    assert at(local(2026, 1, 12, 0, 0)) == "limited"  # Monday of that week
    assert at(monday_morning) == "awarded"
    assert at(local(2026, 1, 19, 9, 0)) == "limited"
    assert available(db, book, clock, member) == 14


def test_n_per_month_in_local_months(db, clock):
    book = make_program(db, clock)
    member = make_member(db, book, clock)
    set_rules(
        db,
        book,
        clock,
        {"type": "review", "name": "评价", "points": 10, "limit": {"count": 3, "per": "month"}},
    )
    clock.set(local(2026, 2, 10, 12, 0))

    def at(when: datetime) -> str:
        return record(db, book, clock, member, "review", occurred_at=when).event.status

    # 00:30 on 1 February in Shanghai is still January in UTC
    assert [at(local(2026, 1, 31, 23, 59)) for _ in range(3)] == ["awarded"] * 3
    assert at(local(2026, 1, 20, 9, 0)) == "limited"
    assert [at(local(2026, 2, 1, 0, 30)) for _ in range(4)] == ["awarded"] * 3 + ["limited"]
    assert available(db, book, clock, member) == 60


def test_per_year(db, clock):
    book = make_program(db, clock)
    member = make_member(db, book, clock)
    set_rules(
        db,
        book,
        clock,
        {"type": "app_download", "name": "下载", "points": 50, "limit": {"per": "year"}},
    )
    clock.set(local(2026, 1, 1, 0, 30))
    assert record(db, book, clock, member, "app_download").event.status == "awarded"
    late = local(2025, 12, 31, 23, 50)
    assert record(db, book, clock, member, "app_download", occurred_at=late).event.status == (
        "awarded"
    )
    assert record(db, book, clock, member, "app_download").event.status == "limited"


def test_limits_count_per_member_and_per_type(db, clock):
    book = make_program(db, clock)
    first, second = make_member(db, book, clock), make_member(db, book, clock)
    once_a_day = {"count": 1, "per": "day"}
    set_rules(
        db,
        book,
        clock,
        {"type": "check_in", "name": "签到", "points": 1, "limit": once_a_day},
        {"type": "social_share", "name": "分享", "points": 2, "limit": once_a_day},
    )
    for member in (first, second):
        for event_type in ("check_in", "social_share"):
            assert record(db, book, clock, member, event_type).event.status == "awarded"
    assert record(db, book, clock, first, "check_in").event.status == "limited"


def test_the_limit_is_checked_under_the_member_lock(db, clock):
    """20 concurrent check-ins of one member, once a day: exactly one is awarded."""
    book = make_program(db, clock)
    member = make_member(db, book, clock)
    set_rules(
        db,
        book,
        clock,
        {"type": "check_in", "name": "签到", "points": 5, "limit": {"count": 1, "per": "day"}},
    )
    start = Barrier(20)

    def check_in(i: int) -> str:
        start.wait()
        return record(db, book, clock, member, "check_in", f"c-{i}").event.status

    with ThreadPoolExecutor(20) as pool:
        outcomes = list(pool.map(check_in, range(20)))
    assert sorted(outcomes) == ["awarded"] + ["limited"] * 19
    assert available(db, book, clock, member) == 5


# -- repeats ---------------------------------------------------------------------------------


def test_a_repeated_external_id_returns_the_first_result(db, clock):
    book = make_program(db, clock)
    member, other = make_member(db, book, clock), make_member(db, book, clock)
    set_rules(
        db,
        book,
        clock,
        {"type": "review", "name": "评价", "points": 10},
        {"type": "check_in", "name": "签到", "points": 1},
    )
    first = record(db, book, clock, member, "review", "rv-1").event
    clock.advance(days=90)  # long past the claim window: a retry still gets its answer
    again = record(db, book, clock, member, "review", "rv-1", points=None)
    assert again.repeat
    assert again.event.id == first.id
    assert available(db, book, clock, member) == 10
    before = counts(db)
    with pytest.raises(Conflict) as clash:
        record(db, book, clock, member, "check_in", "rv-1")
    assert clash.value.params["event_id"] == first.id
    with pytest.raises(Conflict):
        record(db, book, clock, other, "review", "rv-1")
    assert counts(db) == before


def test_a_repeat_of_a_limited_event_stays_limited(db, clock):
    book = make_program(db, clock)
    member = make_member(db, book, clock)
    set_rules(db, book, clock, {"type": "sign_up", "name": "注册", "points": 100, "limit": {}})
    record(db, book, clock, member, "sign_up", "s-1")
    limited = record(db, book, clock, member, "sign_up", "s-2").event
    assert limited.status == "limited"
    again = record(db, book, clock, member, "sign_up", "s-2")
    assert (again.repeat, again.event.id, again.event.status) == (True, limited.id, "limited")


# -- points given by the event ------------------------------------------------------------------


def test_points_chosen_by_the_event_up_to_max_points(db, clock):
    book = make_program(db, clock)
    member = make_member(db, book, clock)
    set_rules(
        db,
        book,
        clock,
        {"type": "task_done", "name": "任务", "max_points": 50},
        {"type": "review", "name": "评价", "points": 10, "max_points": 20},
        {"type": "check_in", "name": "签到", "points": 1},
    )
    assert record(db, book, clock, member, "task_done", points=50).event.points == 50
    assert record(db, book, clock, member, "review").event.points == 10  # the default
    assert record(db, book, clock, member, "review", points=1).event.points == 1
    before = counts(db)
    for event_type, points, reason in [
        ("task_done", 51, "between 1 and 50"),
        ("task_done", 0, "between 1 and 50"),
        ("task_done", -5, "between 1 and 50"),
        ("task_done", None, "needs points"),
        ("check_in", 1, "leave points out"),
    ]:
        with pytest.raises(InvalidInput, match=reason):
            record(db, book, clock, member, event_type, points=points)
    assert counts(db) == before


# -- time ------------------------------------------------------------------------------------


def test_occurred_at_within_the_skew_and_the_claim_window(db, clock):
    book = make_program(db, clock, claim_days=7)
    member = make_member(db, book, clock)
    set_rules(db, book, clock, {"type": "review", "name": "评价", "points": 1})
    now = clock.now()
    assert record(db, book, clock, member, "review", occurred_at=now + timedelta(minutes=4))
    assert record(db, book, clock, member, "review", occurred_at=now - timedelta(days=7))
    before = counts(db)
    with pytest.raises(InvalidInput, match="future"):
        record(db, book, clock, member, "review", occurred_at=now + timedelta(minutes=6))
    with pytest.raises(InvalidInput, match="claim window of 7 days"):
        record(db, book, clock, member, "review", occurred_at=now - timedelta(days=7, hours=1))
    assert counts(db) == before


def test_a_claim_window_of_zero_days_takes_live_events(db, clock):
    book = make_program(db, clock, claim_days=0)
    member = make_member(db, book, clock)
    set_rules(db, book, clock, {"type": "review", "name": "评价", "points": 1})
    assert record(db, book, clock, member, "review", occurred_at=clock.now() - timedelta(minutes=1))
    with pytest.raises(InvalidInput, match="claim window"):
        record(db, book, clock, member, "review", occurred_at=clock.now() - timedelta(hours=1))


def test_lots_are_earned_when_the_event_happened(db, clock):
    book = make_program(
        db, clock, expiry_policy={"kind": "after_months", "months": 1}, claim_days=30
    )
    member = make_member(db, book, clock)
    set_rules(db, book, clock, {"type": "review", "name": "评价", "points": 5})
    occurred = clock.now() - timedelta(days=3)
    event = record(db, book, clock, member, "review", occurred_at=occurred).event
    from jifen.ledger.models import Lot

    lot = db.read(
        lambda s: s.execute(
            select(Lot).where(Lot.transaction_id == event.points_txn_id)
        ).scalar_one()
    )
    assert lot.earned_at == occurred


# -- budgets ---------------------------------------------------------------------------------


def test_a_budget_per_manager_is_never_exceeded(db, clock):
    book = make_program(db, clock)
    member = make_member(db, book, clock)
    set_rules(
        db,
        book,
        clock,
        {
            "type": "task_done",
            "name": "经理奖励",
            "max_points": 50,
            "budget": {"points": 100, "per": "manager"},
        },
    )

    def reward(points: int, manager: str) -> tuple[str, int]:
        event = record(
            db, book, clock, member, "task_done", points=points, attributes={"manager": manager}
        ).event
        return event.status, event.points

    assert [reward(30, "wang") for _ in range(3)] == [("awarded", 30)] * 3
    assert reward(30, "wang") == ("budget", 10)
    assert reward(30, "wang") == ("budget", 0)
    assert reward(30, "li") == ("awarded", 30)
    assert available(db, book, clock, member) == 130
    used = db.read(lambda s: dict(s.execute(select(RuleCounter.key, RuleCounter.used)).all()))
    assert used == {"budget:event:task_done:total:wang": 100, "budget:event:task_done:total:li": 30}
    before = counts(db)
    with pytest.raises(InvalidInput) as missing:
        record(db, book, clock, member, "task_done", points=5)
    assert missing.value.params["field"] == "attributes.manager"
    with pytest.raises(InvalidInput):
        record(db, book, clock, member, "task_done", points=5, attributes={"manager": " "})
    assert counts(db) == before


def test_the_budget_response_says_why(db, clock):
    book = make_program(db, clock)
    member = make_member(db, book, clock)
    set_rules(
        db,
        book,
        clock,
        {"type": "review", "name": "评价", "points": 30, "budget": {"points": 40, "period": "day"}},
    )
    record(db, book, clock, member, "review")
    short = record(db, book, clock, member, "review").event
    assert (short.status, short.points) == ("budget", 10)
    from jifen.earning.events import describe

    out = db.read(lambda s: describe(s, short))
    assert out.reason == "the review budget (40 points per day) had only 10 points left"
    clock.advance(days=1)  # a daily budget starts again the next local day
    assert record(db, book, clock, member, "review").event.points == 30


def test_growth_is_given_whatever_the_budget_has_left(db, clock):
    book = make_program(db, clock)
    member = make_member(db, book, clock)
    set_rules(
        db,
        book,
        clock,
        {
            "type": "review",
            "name": "评价",
            "points": 10,
            "growth": 2,
            "budget": {"points": 10},
            "limit": {"count": 2, "per": "day"},
        },
    )
    record(db, book, clock, member, "review")
    second = record(db, book, clock, member, "review").event
    assert (second.status, second.points, second.growth) == ("budget", 0, 2)
    assert current_balance(db, book, member, clock.now()).growth_value == 4
    # it counted towards the limit: it gave growth value
    assert record(db, book, clock, member, "review").event.status == "limited"


def test_an_event_the_budget_gave_nothing_does_not_use_up_the_limit(db, clock):
    book = make_program(db, clock)
    member, other = make_member(db, book, clock), make_member(db, book, clock)
    set_rules(
        db,
        book,
        clock,
        {
            "type": "review",
            "name": "评价",
            "points": 10,
            "limit": {"count": 1, "per": "day"},
            "budget": {"points": 10, "period": "day"},
        },
    )
    assert record(db, book, clock, other, "review").event.status == "awarded"
    assert record(db, book, clock, member, "review").event.status == "budget"
    clock.advance(days=1)
    assert record(db, book, clock, member, "review").event.status == "awarded"


def test_20_concurrent_events_never_exceed_the_budget(db, clock):
    """Together they ask for 260 points of a 150-point budget per manager."""
    book = make_program(db, clock)
    people = [make_member(db, book, clock) for _ in range(20)]
    set_rules(
        db,
        book,
        clock,
        {
            "type": "task_done",
            "name": "经理奖励",
            "max_points": 50,
            "budget": {"points": 150, "period": "month", "per": "manager"},
        },
    )
    start = Barrier(20)

    def reward(i: int) -> tuple[str, int]:
        start.wait()
        event = record(
            db,
            book,
            clock,
            people[i],
            "task_done",
            f"t-{i}",
            points=13,
            attributes={"manager": "zhang"},
        ).event
        return event.status, event.points

    with ThreadPoolExecutor(20) as pool:
        outcomes = list(pool.map(reward, range(20)))
    assert sum(points for _, points in outcomes) == 150
    assert sorted(outcomes, key=lambda o: -o[1])[:12] == [("awarded", 13)] * 11 + [("budget", 7)]
    assert all(o == ("budget", 0) for o in sorted(outcomes, key=lambda o: -o[1])[12:])
    credited = db.read(
        lambda s: s.scalar(
            select(func.sum(JournalTransaction.points)).where(
                JournalTransaction.program_id == book.program_id, JournalTransaction.kind == "earn"
            )
        )
    )
    assert credited == 150
    used = db.read(lambda s: s.scalar(select(RuleCounter.used)))
    assert used == 150


# -- refusals --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "error"), [(MemberStatus.FROZEN, MemberFrozen), (MemberStatus.CLOSED, MemberClosed)]
)
def test_a_frozen_or_closed_member_is_refused(db, clock, status, error):
    book = make_program(db, clock)
    member = make_member(db, book, clock)
    set_rules(
        db,
        book,
        clock,
        {"type": "check_in", "name": "签到", "points": 1, "limit": {"count": 1, "per": "day"}},
    )
    record(db, book, clock, member, "check_in", "before")
    db.write(lambda s: members.set_status(s, book, member, status, reason="test", now=clock.now()))
    before = counts(db)
    # refused even when the limit would have given nothing anyway
    with pytest.raises(error):
        record(db, book, clock, member, "check_in")
    assert counts(db) == before
    # a retry of what was recorded before still gets its first answer
    assert record(db, book, clock, member, "check_in", "before").repeat


# -- the rest --------------------------------------------------------------------------------


def test_the_ledger_posting_is_the_outbox_event(db, clock):
    book = make_program(db, clock)
    member = make_member(db, book, clock)
    set_rules(db, book, clock, {"type": "review", "name": "评价", "points": 4})
    record(db, book, clock, member, "review")
    rows = db.read(
        lambda s: s.execute(
            select(OutboxEvent.type, OutboxEvent.payload).where(OutboxEvent.member_id == member)
        ).all()
    )
    [(kind, payload)] = rows
    assert kind == "points.credited"
    assert payload["points"] == 4


def test_each_event_records_the_rule_version_it_was_decided_by(db, clock):
    book = make_program(db, clock)
    member = make_member(db, book, clock)
    first = set_rules(db, book, clock, {"type": "review", "name": "评价", "points": 4})
    assert record(db, book, clock, member, "review").event.rule_set_version == first
    second = set_rules(db, book, clock, {"type": "review", "name": "评价", "points": 6})
    event = record(db, book, clock, member, "review").event
    assert (event.rule_set_version, event.points) == (second, 6)


def test_reading_events(db, clock):
    book = make_program(db, clock)
    member = make_member(db, book, clock)
    set_rules(
        db,
        book,
        clock,
        {"type": "review", "name": "评价", "points": 4},
        {"type": "check_in", "name": "签到", "points": 1, "limit": {"count": 1, "per": "day"}},
    )
    ids = [record(db, book, clock, member, t).event.id for t in ["review", "check_in"] * 3]
    found = db.read(lambda s: get_event(s, book.program_id, ids[0]))
    assert found.external_id
    other_book = make_program(db, clock)
    with pytest.raises(NotFound):
        db.read(lambda s: get_event(s, other_book.program_id, ids[0]))
    page = db.read(lambda s: member_events(s, book.program_id, member, limit=4))
    assert [e.id for e in page.items] == ids[::-1][:4]
    rest = db.read(lambda s: member_events(s, book.program_id, member, cursor=page.next_cursor))
    assert [e.id for e in rest.items] == ids[::-1][4:]
    assert rest.next_cursor is None
    limited = db.read(lambda s: member_events(s, book.program_id, member, types=["check_in"]))
    assert [e.status for e in limited.items] == ["limited", "limited", "awarded"]
    assert limited.items[0].reason == "over the limit of 1 per day for check_in: nothing given"
