"""Ledger operations, one behaviour at a time, on both stores, with exact values."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import event, func, select

from factories import make_member, make_program
from jifen.core.clock import FrozenClock
from jifen.core.errors import (
    CaptureExceedsHold,
    DuplicateReference,
    HoldExpired,
    HoldNotActive,
    InsufficientPoints,
    InvalidInput,
    MemberClosed,
    MemberFrozen,
    NotFound,
    NotReversible,
    TransfersDisabled,
)
from jifen.db.uow import Database
from jifen.jobs.runner import run_job
from jifen.ledger import service as ledger
from jifen.ledger.models import JournalEntry, JournalTransaction, Lot, LotAllocation
from jifen.ledger.queries import current_balance, history, lots
from jifen.members import service as members
from jifen.members.schemas import MemberStatus

MONTHLY = {"kind": "after_months", "months": 1, "round_to": "none"}


def avail(db: Database, book, member: int, clock: FrozenClock) -> int:
    return current_balance(db, book, member, clock.now()).available


def earn(db, book, member, points, clock, **kw):
    return db.write(
        lambda s: ledger.credit(s, book, member, points, now=clock.now(), actor="t", **kw)
    ).id


def spend(db, book, member, points, clock, **kw):
    return db.write(
        lambda s: ledger.debit(s, book, member, points, now=clock.now(), actor="t", **kw)
    ).id


def lot_rows(db, member):
    return db.read(
        lambda s: [
            (lot.amount, lot.remaining, lot.status)
            for lot in s.execute(
                select(Lot).where(Lot.member_id == member).order_by(Lot.id)
            ).scalars()
        ]
    )


def counts(db):
    return db.read(
        lambda s: (
            s.scalar(select(func.count()).select_from(JournalTransaction)),
            s.scalar(select(func.count()).select_from(JournalEntry)),
            s.scalar(select(func.count()).select_from(LotAllocation)),
        )
    )


def test_debits_take_the_earliest_expiring_lots_first(db, clock):
    book = make_program(db, clock, expiry_policy=MONTHLY)
    member = make_member(db, book, clock)
    earn(db, book, member, 100, clock)  # expires first
    clock.advance(days=10)
    earn(db, book, member, 50, clock)
    spend(db, book, member, 120, clock)
    assert lot_rows(db, member) == [(100, 0, "available"), (50, 30, "available")]
    assert avail(db, book, member, clock) == 30


def test_never_expiring_lots_are_spent_last(db, clock):
    book = make_program(db, clock, expiry_policy=MONTHLY)
    member = make_member(db, book, clock)
    # a transfer-like lot without expiry: credit then make a lot with no expiry via policy
    earn(db, book, member, 40, clock)
    db.write(
        lambda s: s.execute(
            Lot.__table__.update().where(Lot.member_id == member).values(expires_at=None)
        )
    )
    earn(db, book, member, 60, clock)
    spend(db, book, member, 70, clock)
    assert lot_rows(db, member) == [(40, 30, "available"), (60, 0, "available")]


def test_pending_points_cannot_be_spent_until_released(db, clock):
    book = make_program(db, clock, pending_days=7)
    member = make_member(db, book, clock)
    earn(db, book, member, 100, clock, pending=True)
    balance = current_balance(db, book, member, clock.now())
    assert (balance.available, balance.pending) == (0, 100)
    with pytest.raises(InsufficientPoints):
        spend(db, book, member, 1, clock)
    # released at the end of the 7th local day: 2026-01-15 10:00 +08 → 2026-01-23 00:00 +08
    clock.set(datetime(2026, 1, 22, 15, 59, tzinfo=UTC))
    assert current_balance(db, book, member, clock.now()).pending == 100
    clock.set(datetime(2026, 1, 22, 16, 0, tzinfo=UTC))
    report = run_job(db, "release", now=clock.now())
    assert report.totals.points == 100
    balance = current_balance(db, book, member, clock.now())
    assert (balance.available, balance.pending) == (100, 0)
    assert run_job(db, "release", now=clock.now()).totals.points == 0  # idempotent


def test_a_member_never_sees_points_past_their_expiry_even_before_the_job(db, clock):
    book = make_program(db, clock, expiry_policy=MONTHLY)
    member = make_member(db, book, clock)
    earn(db, book, member, 100, clock)
    clock.advance(days=40)
    assert avail(db, book, member, clock) == 0
    assert lot_rows(db, member) == [(100, 0, "expired")]
    assert run_job(db, "expire", now=clock.now()).totals.points == 0


def test_expiry_job_expires_what_is_due_and_is_idempotent(db, clock):
    book = make_program(db, clock, expiry_policy=MONTHLY)
    a, b = make_member(db, book, clock), make_member(db, book, clock)
    earn(db, book, a, 100, clock)
    earn(db, book, b, 30, clock)
    spend(db, book, a, 25, clock)
    clock.advance(days=20)
    earn(db, book, b, 10, clock)
    clock.advance(days=15)
    report = run_job(db, "expire", now=clock.now(), batch_size=1)
    assert (report.totals.items, report.totals.points, report.batches) == (2, 105, 2)
    assert run_job(db, "expire", now=clock.now()).totals.items == 0
    assert avail(db, book, a, clock) == 0
    assert avail(db, book, b, clock) == 10
    items = history(db.reading().__enter__(), book, a).items
    assert [i.kind for i in items] == ["expire", "spend", "earn"]
    assert items[0].points == -75


def test_expiring_soon_lists_points_by_local_day(db, clock):
    book = make_program(db, clock, expiry_policy=MONTHLY)
    member = make_member(db, book, clock)
    earn(db, book, member, 100, clock)  # local 2026-01-15 → expires end of 2026-02-15
    clock.advance(days=10)
    balance = current_balance(db, book, member, clock.now())
    assert [(e.date.isoformat(), e.points) for e in balance.expiring_soon] == [("2026-02-15", 100)]


def test_hold_capture_part_returns_the_rest_to_the_latest_expiring_lots(db, clock):
    book = make_program(db, clock, expiry_policy=MONTHLY)
    member = make_member(db, book, clock)
    earn(db, book, member, 50, clock)
    clock.advance(days=5)
    earn(db, book, member, 50, clock)
    hold = db.write(
        lambda s: ledger.authorise_hold(s, book, member, 80, now=clock.now(), actor="t")
    )
    balance = current_balance(db, book, member, clock.now())
    assert (balance.available, balance.held) == (20, 80)
    db.write(lambda s: ledger.capture_hold(s, book, hold.id, points=60, now=clock.now(), actor="t"))
    balance = current_balance(db, book, member, clock.now())
    assert (balance.available, balance.held) == (40, 0)
    # spent: all 50 of the first lot and 10 of the second
    assert lot_rows(db, member) == [(50, 0, "available"), (50, 40, "available")]
    with pytest.raises(HoldNotActive):
        db.write(lambda s: ledger.void_hold(s, book, hold.id, now=clock.now(), actor="t"))


def test_capture_more_than_held_is_refused(db, clock):
    book = make_program(db, clock)
    member = make_member(db, book, clock)
    earn(db, book, member, 50, clock)
    hold = db.write(
        lambda s: ledger.authorise_hold(s, book, member, 20, now=clock.now(), actor="t")
    )
    with pytest.raises(CaptureExceedsHold):
        db.write(
            lambda s: ledger.capture_hold(s, book, hold.id, points=21, now=clock.now(), actor="t")
        )


def test_void_and_lapse_give_everything_back(db, clock):
    book = make_program(db, clock, hold_minutes=15)
    member = make_member(db, book, clock)
    earn(db, book, member, 100, clock)
    first = db.write(
        lambda s: ledger.authorise_hold(s, book, member, 30, now=clock.now(), actor="t")
    )
    db.write(lambda s: ledger.void_hold(s, book, first.id, now=clock.now(), actor="t"))
    assert avail(db, book, member, clock) == 100
    second = db.write(
        lambda s: ledger.authorise_hold(s, book, member, 40, now=clock.now(), actor="t")
    )
    clock.advance(minutes=16)
    report = run_job(db, "lapse", now=clock.now())
    assert (report.totals.items, report.totals.points) == (1, 40)
    balance = current_balance(db, book, member, clock.now())
    assert (balance.available, balance.held) == (100, 0)
    with pytest.raises(HoldExpired):
        db.write(lambda s: ledger.capture_hold(s, book, second.id, now=clock.now(), actor="t"))


def test_an_uncaptured_hold_lapses_by_itself_at_its_deadline(db, clock):
    book = make_program(db, clock, hold_minutes=15)
    member = make_member(db, book, clock)
    earn(db, book, member, 100, clock)
    hold = db.write(
        lambda s: ledger.authorise_hold(s, book, member, 40, now=clock.now(), actor="t")
    )
    clock.advance(minutes=15)
    assert avail(db, book, member, clock) == 100  # no job ran: the read applied the lapse
    with pytest.raises(HoldExpired):
        db.write(lambda s: ledger.capture_hold(s, book, hold.id, now=clock.now(), actor="t"))


def test_reversal_of_a_spend_restores_exactly_its_lots_with_their_expiry(db, clock):
    book = make_program(db, clock, expiry_policy=MONTHLY)
    member = make_member(db, book, clock)
    earn(db, book, member, 60, clock)
    clock.advance(days=20)
    earn(db, book, member, 60, clock)
    txn = spend(db, book, member, 100, clock)
    assert lot_rows(db, member) == [(60, 0, "available"), (60, 20, "available")]
    clock.advance(days=15)  # the first lot's date has passed
    db.write(lambda s: ledger.reverse(s, book, txn, now=clock.now(), actor="t", reason="refund"))
    # 60 went back to the first lot and expired at once; 40 back to the second
    assert lot_rows(db, member) == [(60, 0, "expired"), (60, 60, "available")]
    assert avail(db, book, member, clock) == 60
    expires = db.read(
        lambda s: list(s.execute(select(Lot.expires_at).where(Lot.member_id == member)).scalars())
    )
    assert expires[1] == datetime(2026, 3, 4, 16, 0, tzinfo=UTC)  # untouched original expiry
    with pytest.raises(NotReversible):
        db.write(lambda s: ledger.reverse(s, book, txn, now=clock.now(), actor="t"))


def test_reversal_of_a_capture_refunds_the_points_paid(db, clock):
    book = make_program(db, clock)
    member = make_member(db, book, clock)
    earn(db, book, member, 100, clock)
    hold = db.write(
        lambda s: ledger.authorise_hold(s, book, member, 70, now=clock.now(), actor="t")
    )
    capture = db.write(
        lambda s: ledger.capture_hold(s, book, hold.id, points=50, now=clock.now(), actor="t")
    ).id
    assert avail(db, book, member, clock) == 50
    db.write(lambda s: ledger.reverse(s, book, capture, now=clock.now(), actor="t"))
    assert avail(db, book, member, clock) == 100
    assert lot_rows(db, member) == [(100, 100, "available")]


def test_reversing_spent_earnings_is_refused_without_a_debt_policy(db, clock):
    book = make_program(db, clock)
    member = make_member(db, book, clock)
    txn = earn(db, book, member, 100, clock)
    spend(db, book, member, 80, clock)
    before = counts(db)
    with pytest.raises(InsufficientPoints):
        db.write(lambda s: ledger.reverse(s, book, txn, now=clock.now(), actor="t"))
    assert counts(db) == before
    assert avail(db, book, member, clock) == 20


def test_debt_from_a_reversal_is_repaid_by_later_earnings(db, clock):
    book = make_program(db, clock, allow_negative_balance=True)
    member = make_member(db, book, clock)
    txn = earn(db, book, member, 100, clock)
    spend(db, book, member, 80, clock)
    db.write(lambda s: ledger.reverse(s, book, txn, now=clock.now(), actor="t"))
    assert avail(db, book, member, clock) == -80
    with pytest.raises(InsufficientPoints):
        spend(db, book, member, 1, clock)
    earn(db, book, member, 50, clock)
    assert avail(db, book, member, clock) == -30
    earn(db, book, member, 50, clock)
    assert avail(db, book, member, clock) == 20
    assert lot_rows(db, member) == [
        (100, 0, "cancelled"),
        (50, 0, "available"),
        (50, 20, "available"),
    ]


def test_undoing_a_spend_after_its_earn_was_reversed_refunds_what_the_reversal_took(db, clock):
    book = make_program(db, clock, expiry_policy=MONTHLY)
    member = make_member(db, book, clock)
    a = earn(db, book, member, 10, clock)
    clock.advance(days=5)
    earn(db, book, member, 10, clock)  # B, expires 5 days after A
    paid = spend(db, book, member, 5, clock)  # from A
    db.write(lambda s: ledger.reverse(s, book, a, now=clock.now(), actor="t"))  # B pays 5
    assert lot_rows(db, member) == [(10, 0, "cancelled"), (10, 5, "available")]
    db.write(lambda s: ledger.reverse(s, book, paid, now=clock.now(), actor="t"))
    assert lot_rows(db, member) == [(10, 0, "cancelled"), (10, 10, "available")]
    assert avail(db, book, member, clock) == 10


def test_undoing_a_spend_after_its_earn_was_reversed_into_debt_repays_it(db, clock):
    book = make_program(db, clock, allow_negative_balance=True)
    member = make_member(db, book, clock)
    a = earn(db, book, member, 10, clock)
    first = spend(db, book, member, 6, clock)
    second = spend(db, book, member, 4, clock)
    db.write(lambda s: ledger.reverse(s, book, a, now=clock.now(), actor="t"))
    assert avail(db, book, member, clock) == -10
    db.write(lambda s: ledger.reverse(s, book, first, now=clock.now(), actor="t"))
    assert avail(db, book, member, clock) == -4
    earn(db, book, member, 20, clock)  # repays the last 4
    db.write(lambda s: ledger.reverse(s, book, second, now=clock.now(), actor="t"))
    # Only the 20 earned stand: the 4 the debt took from them come back as a lot.
    assert avail(db, book, member, clock) == 20
    balance = current_balance(db, book, member, clock.now())
    assert balance.lifetime_earned == 20


def test_reversal_of_a_pending_earn_cancels_the_lot(db, clock):
    book = make_program(db, clock, pending_days=7)
    member = make_member(db, book, clock)
    txn = earn(db, book, member, 100, clock, pending=True)
    db.write(lambda s: ledger.reverse(s, book, txn, now=clock.now(), actor="t", reason="return"))
    balance = current_balance(db, book, member, clock.now())
    assert (balance.available, balance.pending, balance.lifetime_earned) == (0, 0, 0)
    assert lot_rows(db, member) == [(100, 0, "cancelled")]


def test_jobs_are_not_reversible(db, clock):
    book = make_program(db, clock, expiry_policy=MONTHLY)
    member = make_member(db, book, clock)
    earn(db, book, member, 10, clock)
    clock.advance(days=40)
    run_job(db, "expire", now=clock.now())
    expire_id = db.read(
        lambda s: s.scalar(select(JournalTransaction.id).where(JournalTransaction.kind == "expire"))
    )
    with pytest.raises(NotReversible):
        db.write(lambda s: ledger.reverse(s, book, expire_id, now=clock.now(), actor="t"))


def test_growth_value_is_its_own_account_and_never_spent(db, clock):
    book = make_program(db, clock)
    member = make_member(db, book, clock)
    db.write(lambda s: ledger.credit_growth(s, book, member, 300, now=clock.now(), actor="t"))
    balance = current_balance(db, book, member, clock.now())
    assert (balance.growth_value, balance.available) == (0 + 300, 0)
    with pytest.raises(InsufficientPoints):
        spend(db, book, member, 1, clock)


def test_adjustments_need_a_reason_and_go_both_ways(db, clock):
    book = make_program(db, clock)
    member = make_member(db, book, clock)
    with pytest.raises(InvalidInput):
        db.write(
            lambda s: ledger.adjust(s, book, member, 10, reason=" ", now=clock.now(), actor="t")
        )
    db.write(
        lambda s: ledger.adjust(
            s, book, member, 30, reason="goodwill", now=clock.now(), actor="staff:li"
        )
    )
    db.write(
        lambda s: ledger.adjust(
            s, book, member, -5, reason="typo", now=clock.now(), actor="staff:li"
        )
    )
    assert avail(db, book, member, clock) == 25
    with pytest.raises(InsufficientPoints):
        db.write(
            lambda s: ledger.adjust(s, book, member, -26, reason="x", now=clock.now(), actor="t")
        )
    with db.reading() as s:
        items = history(s, book, member).items
    assert [(i.kind, i.points, i.reason, i.actor) for i in items] == [
        ("adjust", -5, "typo", "staff:li"),
        ("adjust", 30, "goodwill", "staff:li"),
    ]
    balance = current_balance(db, book, member, clock.now())
    assert balance.lifetime_earned == 0  # adjustments are not earnings


def test_transfers_keep_the_senders_expiry_dates(db, clock):
    book = make_program(db, clock, expiry_policy=MONTHLY, allow_transfers=True)
    a, b = make_member(db, book, clock), make_member(db, book, clock)
    earn(db, book, a, 70, clock)
    clock.advance(days=20)
    earn(db, book, a, 30, clock)
    db.write(lambda s: ledger.transfer(s, book, a, b, 80, now=clock.now(), actor="t"))
    assert (avail(db, book, a, clock), avail(db, book, b, clock)) == (20, 80)
    sender, receiver = (
        db.read(
            lambda s, m=m: list(
                s.execute(
                    select(Lot.expires_at, Lot.remaining)
                    .where(Lot.member_id == m, Lot.remaining > 0)
                    .order_by(Lot.expires_at)
                ).all()
            )
        )
        for m in (a, b)
    )
    assert [r.remaining for r in receiver] == [70, 10]
    assert receiver[1].expires_at == sender[0].expires_at
    with pytest.raises(InsufficientPoints):
        db.write(lambda s: ledger.transfer(s, book, a, b, 21, now=clock.now(), actor="t"))


def test_transfers_only_where_the_programme_allows_them(db, clock):
    book = make_program(db, clock)
    a, b = make_member(db, book, clock), make_member(db, book, clock)
    earn(db, book, a, 10, clock)
    with pytest.raises(TransfersDisabled):
        db.write(lambda s: ledger.transfer(s, book, a, b, 5, now=clock.now(), actor="t"))


def test_inactivity_policy_activity_pushes_every_lot(db, clock):
    book = make_program(db, clock, expiry_policy={"kind": "inactivity", "months": 2})
    member = make_member(db, book, clock)
    earn(db, book, member, 100, clock)
    clock.advance(days=50)
    spend(db, book, member, 10, clock)  # activity: deadline moves to ~2 months from now
    clock.advance(days=50)
    assert avail(db, book, member, clock) == 90
    clock.advance(days=15)
    assert avail(db, book, member, clock) == 0


def test_frozen_and_closed_members_can_neither_earn_nor_spend(db, clock):
    book = make_program(db, clock)
    member = make_member(db, book, clock)
    earn(db, book, member, 50, clock)
    db.write(
        lambda s: members.set_status(
            s, book, member, MemberStatus.FROZEN, reason="fraud check", now=clock.now()
        )
    )
    before = counts(db)
    for attempt in (
        lambda: earn(db, book, member, 1, clock),
        lambda: spend(db, book, member, 1, clock),
        lambda: db.write(
            lambda s: ledger.authorise_hold(s, book, member, 1, now=clock.now(), actor="t")
        ),
    ):
        with pytest.raises(MemberFrozen) as caught:
            attempt()
        assert "冻结" in caught.value.message("zh-CN")
        assert "frozen" in caught.value.message("en")
    assert counts(db) == before
    db.write(
        lambda s: members.set_status(
            s, book, member, MemberStatus.ACTIVE, reason="cleared", now=clock.now()
        )
    )
    spend(db, book, member, 5, clock)
    db.write(
        lambda s: members.set_status(
            s, book, member, MemberStatus.CLOSED, reason="asked", now=clock.now()
        )
    )
    with pytest.raises(MemberClosed):
        earn(db, book, member, 1, clock)


@pytest.mark.parametrize("points", [0, -5, 1.5, "10", True])
def test_bad_points_are_refused_and_nothing_is_written(db, clock, points):
    book = make_program(db, clock)
    member = make_member(db, book, clock)
    before = counts(db)
    with pytest.raises(InvalidInput):
        earn(db, book, member, points, clock)
    with pytest.raises(InvalidInput):
        spend(db, book, member, points, clock)
    assert counts(db) == before


def test_unknown_or_foreign_members_are_not_found(db, clock):
    book = make_program(db, clock)
    other = make_program(db, clock)
    foreign = make_member(db, other, clock)
    earn(db, other, foreign, 10, clock)
    before = counts(db)
    for member in (999_999, foreign):
        with pytest.raises(NotFound):
            earn(db, book, member, 10, clock)
        with pytest.raises(NotFound):
            current_balance(db, book, member, clock.now())
    assert counts(db) == before
    assert avail(db, other, foreign, clock) == 10


def test_an_external_reference_is_used_once_per_programme(db, clock):
    book = make_program(db, clock)
    member = make_member(db, book, clock)
    earn(db, book, member, 10, clock, reference="order-1")
    with pytest.raises(DuplicateReference):
        earn(db, book, member, 10, clock, reference="order-1")
    assert avail(db, book, member, clock) == 10
    other = make_program(db, clock)
    earn(db, other, make_member(db, other, clock), 10, clock, reference="order-1")


def test_a_failure_in_the_middle_of_a_write_leaves_nothing_behind(db, clock):
    book = make_program(db, clock)
    member = make_member(db, book, clock)
    earn(db, book, member, 100, clock)
    before = (counts(db), lot_rows(db, member), avail(db, book, member, clock))

    class Boom(Exception):
        pass

    def explode(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith("INSERT INTO JOURNAL_ENTRIES"):
            raise Boom

    event.listen(db.engine, "after_cursor_execute", explode)
    try:
        with pytest.raises(Boom):
            spend(db, book, member, 60, clock)
        with pytest.raises(Boom):
            earn(db, book, member, 60, clock)
    finally:
        event.remove(db.engine, "after_cursor_execute", explode)
    assert (counts(db), lot_rows(db, member), avail(db, book, member, clock)) == before


def test_history_pages_with_a_cursor_and_filters(db, clock):
    book = make_program(db, clock)
    member = make_member(db, book, clock)
    for i in range(5):
        earn(db, book, member, 10 + i, clock)
        clock.advance(hours=1)
    spend(db, book, member, 5, clock)
    with db.reading() as s:
        first = history(s, book, member, limit=4)
        second = history(s, book, member, limit=4, cursor=first.next_cursor)
        only_spend = history(s, book, member, kinds=["spend"])
        window = history(
            s,
            book,
            member,
            since=clock.now() - timedelta(hours=3, minutes=30),
            until=clock.now() - timedelta(minutes=30),
        )
    assert [i.points for i in first.items] == [-5, 14, 13, 12]
    assert [i.points for i in second.items] == [11, 10]
    assert second.next_cursor is None
    assert [i.kind for i in only_spend.items] == ["spend"]
    assert [i.points for i in window.items] == [14, 13, 12]
    with db.reading() as s, pytest.raises(InvalidInput):
        history(s, book, member, cursor="not-a-cursor")


def test_lots_list_shows_expiry_dates(db, clock):
    book = make_program(db, clock, expiry_policy=MONTHLY)
    member = make_member(db, book, clock)
    earn(db, book, member, 10, clock)
    with db.reading() as s:
        listed = lots(s, book, member)
    assert [(lot.amount, lot.expires_at) for lot in listed] == [
        (10, datetime(2026, 2, 15, 16, 0, tzinfo=UTC))
    ]


def test_reversing_a_capture_whose_give_back_repaid_debt_refunds_only_what_was_captured(db, clock):
    book = make_program(db, clock, allow_negative_balance=True)
    member = make_member(db, book, clock)
    a = earn(db, book, member, 100, clock)
    earn(db, book, member, 60, clock)
    hold = db.write(
        lambda s: ledger.authorise_hold(s, book, member, 60, now=clock.now(), actor="t")
    ).id  # all from A
    spend(db, book, member, 100, clock)  # A's 40, B's 60
    db.write(lambda s: ledger.reverse(s, book, a, now=clock.now(), actor="t"))
    assert avail(db, book, member, clock) == -100
    capture = db.write(
        lambda s: ledger.capture_hold(s, book, hold, points=20, now=clock.now(), actor="t")
    ).id
    # the 40 given back pass through A (cancelled) as a new lot, which repays debt at once
    assert avail(db, book, member, clock) == -60
    assert lot_rows(db, member) == [
        (100, 0, "cancelled"),
        (60, 0, "available"),
        (40, 0, "available"),
    ]
    db.write(lambda s: ledger.reverse(s, book, capture, now=clock.now(), actor="t"))
    # only the 20 captured come back (they repay debt too), not the 40 repaid as well
    assert avail(db, book, member, clock) == -40
    assert lot_rows(db, member) == [
        (100, 0, "cancelled"),
        (60, 0, "available"),
        (40, 0, "available"),
        (20, 0, "available"),
    ]
