"""Partial clawbacks of an earn's award (purchase returns), on both stores, exact values.

Every test ends by checking the ledger's laws on the raw rows (the state machine's
`check_laws`), and a refused clawback by comparing every ledger row before and after.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from threading import Barrier
from typing import Any

import pytest
from sqlalchemy import func, select

from factories import make_member, make_program
from jifen.core.errors import (
    DuplicateReference,
    InsufficientPoints,
    InvalidInput,
    NotFound,
    NotReversible,
)
from jifen.db.outbox import OutboxEvent
from jifen.db.uow import Database
from jifen.jobs.runner import run_job
from jifen.ledger import service as ledger
from jifen.ledger.clawback import Clawback, Shortfall, claw_back, claw_back_growth
from jifen.ledger.models import AccountKind, JournalEntry, JournalTransaction, Lot
from jifen.ledger.posting import Book
from jifen.ledger.queries import current_balance
from jifen.members import service as members
from jifen.members.schemas import MemberStatus
from ledger.test_state_machine import check_laws, load

MONTHLY = {"kind": "after_months", "months": 1, "round_to": "none"}
RELEASED = datetime(2026, 1, 22, 16, 0, tzinfo=UTC)  # a 7-day window from START, local midnight


def earn(db, book, member, points, clock, **kw) -> int:
    return db.write(
        lambda s: ledger.credit(s, book, member, points, now=clock.now(), actor="t", **kw)
    ).id


def spend(db, book, member, points, clock) -> int:
    return db.write(lambda s: ledger.debit(s, book, member, points, now=clock.now(), actor="t")).id


def claw(db, book, txn, points, clock, shortfall=Shortfall.DEBT, **kw) -> Clawback:
    return db.write(
        lambda s: claw_back(
            s, book, txn, points, shortfall=shortfall, now=clock.now(), actor="t", **kw
        )
    )


def balance(db, book, member, clock) -> tuple[int, int, int]:
    b = current_balance(db, book, member, clock.now())
    return b.available, b.pending, b.lifetime_earned


def lot_rows(db, member) -> list[tuple[int, int, str]]:
    return db.read(
        lambda s: [
            (lot.amount, lot.remaining, lot.status)
            for lot in s.execute(
                select(Lot).where(Lot.member_id == member).order_by(Lot.id)
            ).scalars()
        ]
    )


def program_total(db, book, kind: AccountKind) -> int:
    """The balance of one of the programme's own accounts (the sum of its entries)."""
    return db.read(
        lambda s: s.scalar(
            select(func.coalesce(func.sum(JournalEntry.amount), 0)).where(
                JournalEntry.account_id == book.accounts[kind]
            )
        )
    )


def rows(db, book) -> dict[str, Any]:
    return db.read(lambda s: load(s, book.program_id)).rows


def assert_laws(db, book) -> None:
    problems = check_laws(db.read(lambda s: load(s, book.program_id)), book)
    assert not problems, "\n".join(problems)


def refused(db, book, error, fn) -> Any:
    """Run a write that must fail with `error`; every ledger row must be as it was."""
    before = rows(db, book)
    with pytest.raises(error) as caught:
        db.write(fn)
    assert rows(db, book) == before
    return caught.value


# -- sources, one at a time ----------------------------------------------------------------


def test_a_pending_lot_shrinks_and_its_release_gives_only_the_rest(db: Database, clock):
    book = make_program(db, clock, pending_days=7)
    member = make_member(db, book, clock)
    txn = earn(db, book, member, 100, clock, pending=True)
    result = claw(db, book, txn, 30, clock)
    assert (result.taken, result.not_taken) == (30, 0)
    assert balance(db, book, member, clock) == (0, 70, 70)
    assert lot_rows(db, member) == [(100, 70, "pending")]
    assert program_total(db, book, AccountKind.ISSUED) == -70
    clock.set(RELEASED)
    report = run_job(db, "release", now=clock.now())
    assert (report.totals.items, report.totals.points) == (1, 70)
    assert balance(db, book, member, clock) == (70, 0, 70)
    assert lot_rows(db, member) == [(100, 70, "available")]
    assert_laws(db, book)


def test_a_pending_lot_clawed_back_in_full_is_cancelled_and_never_released(db, clock):
    book = make_program(db, clock, pending_days=7)
    member = make_member(db, book, clock)
    txn = earn(db, book, member, 100, clock, pending=True)
    claw(db, book, txn, 60, clock)
    claw(db, book, txn, 40, clock, shortfall=Shortfall.FORGIVE)
    assert balance(db, book, member, clock) == (0, 0, 0)
    assert lot_rows(db, member) == [(100, 0, "cancelled")]
    clock.set(RELEASED)
    assert run_job(db, "release", now=clock.now()).totals.points == 0
    assert balance(db, book, member, clock) == (0, 0, 0)
    assert_laws(db, book)


def test_the_rest_of_an_available_lot_comes_first(db, clock):
    book = make_program(db, clock)
    member = make_member(db, book, clock)
    txn = earn(db, book, member, 100, clock)
    other = earn(db, book, member, 50, clock)
    result = claw(db, book, txn, 30, clock, reason="return", details={"purchase_id": 7})
    assert (result.taken, result.not_taken) == (30, 0)
    assert balance(db, book, member, clock) == (120, 0, 120)
    assert lot_rows(db, member) == [(100, 70, "available"), (50, 50, "available")]
    with db.reading() as s:
        row = s.get(JournalTransaction, result.transaction_id)
        assert row is not None
        assert (row.kind, row.points, row.clawback_of_id, row.reverses_id, row.reason) == (
            "clawback",
            30,
            txn,
            None,
            "return",
        )
        assert row.details == {"purchase_id": 7, "not_taken": 0}
        entries = s.execute(
            select(JournalEntry.account_id, JournalEntry.bucket, JournalEntry.amount)
            .where(JournalEntry.transaction_id == row.id)
            .order_by(JournalEntry.amount)
        ).all()
        event = s.execute(
            select(OutboxEvent).where(OutboxEvent.type == "points.clawed_back")
        ).scalar_one()
    points_account = db.read(
        lambda s: s.scalar(select(Lot.account_id).where(Lot.transaction_id == other))
    )
    assert entries == [
        (points_account, "available", -30),
        (book.accounts[AccountKind.ISSUED], "available", 30),
    ]
    assert (event.member_id, event.payload) == (
        member,
        {
            "transaction_id": result.transaction_id,
            "kind": "clawback",
            "points": 30,
            "taken": 30,
            "not_taken": 0,
            "clawback_of_id": txn,
        },
    )
    assert_laws(db, book)


def test_the_expired_part_comes_back_from_the_expired_account_at_no_cost(db, clock):
    book = make_program(db, clock, expiry_policy=MONTHLY)
    member = make_member(db, book, clock)
    txn = earn(db, book, member, 100, clock)
    spend(db, book, member, 30, clock)
    clock.advance(days=40)  # the other 70 expire
    earn(db, book, member, 50, clock)
    assert program_total(db, book, AccountKind.EXPIRED) == 70
    claw(db, book, txn, 50, clock)
    assert balance(db, book, member, clock) == (50, 0, 100)
    assert program_total(db, book, AccountKind.EXPIRED) == 20
    # the expired part is taken back only once: 20 are left of it, then the spent part
    claw(db, book, txn, 40, clock)
    assert balance(db, book, member, clock) == (30, 0, 60)
    assert program_total(db, book, AccountKind.EXPIRED) == 0
    assert lot_rows(db, member) == [(100, 0, "expired"), (50, 30, "available")]
    assert_laws(db, book)


def test_the_spent_part_is_charged_to_the_other_lots_earliest_expiry_first(db, clock):
    book = make_program(db, clock, expiry_policy=MONTHLY)
    member = make_member(db, book, clock)
    txn = earn(db, book, member, 100, clock)
    clock.advance(days=1)
    earn(db, book, member, 40, clock)  # B
    clock.advance(days=1)
    earn(db, book, member, 40, clock)  # C, expires last
    spend(db, book, member, 90, clock)  # all from the earn's lot
    claw(db, book, txn, 10, clock)  # what is left of it
    assert lot_rows(db, member)[0] == (100, 0, "available")
    claw(db, book, txn, 50, clock)  # spent: B's 40, then 10 of C
    assert lot_rows(db, member) == [
        (100, 0, "available"),
        (40, 0, "available"),
        (40, 30, "available"),
    ]
    assert balance(db, book, member, clock) == (30, 0, 120)
    assert_laws(db, book)


# -- what the member cannot cover ------------------------------------------------------------


def test_debt_is_refused_where_the_account_allows_none_and_nothing_is_written(db, clock):
    book = make_program(db, clock)
    member = make_member(db, book, clock)
    txn = earn(db, book, member, 100, clock)
    earn(db, book, member, 20, clock)
    spend(db, book, member, 110, clock)  # 10 left, in the second lot
    error = refused(
        db,
        book,
        InsufficientPoints,
        lambda s: claw_back(s, book, txn, 30, shortfall=Shortfall.DEBT, now=clock.now(), actor="t"),
    )
    assert error.params == {"needed": 30, "available": 10}
    claw(db, book, txn, 10, clock)  # what the member has is fine
    assert balance(db, book, member, clock) == (0, 0, 110)
    assert_laws(db, book)


def test_debt_where_the_account_allows_it_is_repaid_by_the_next_earn(db, clock):
    book = make_program(db, clock, allow_negative_balance=True)
    member = make_member(db, book, clock)
    txn = earn(db, book, member, 100, clock)
    earn(db, book, member, 20, clock)
    spend(db, book, member, 110, clock)
    result = claw(db, book, txn, 30, clock)
    assert (result.taken, result.not_taken) == (30, 0)
    assert balance(db, book, member, clock) == (-20, 0, 90)
    assert lot_rows(db, member) == [(100, 0, "available"), (20, 0, "available")]
    earn(db, book, member, 50, clock)
    assert balance(db, book, member, clock) == (30, 0, 140)
    assert lot_rows(db, member)[2] == (50, 30, "available")
    assert_laws(db, book)


def test_forgive_takes_what_the_member_has_and_reports_the_rest(db, clock):
    book = make_program(db, clock, allow_negative_balance=True)  # forgiving never runs into debt
    member = make_member(db, book, clock)
    txn = earn(db, book, member, 100, clock)
    earn(db, book, member, 20, clock)
    spend(db, book, member, 110, clock)
    result = claw(db, book, txn, 30, clock, shortfall=Shortfall.FORGIVE)
    assert (result.taken, result.not_taken) == (10, 20)
    assert balance(db, book, member, clock) == (0, 0, 110)
    # nothing left to take: everything let go, still recorded (and counted) …
    result = claw(db, book, txn, 60, clock, shortfall=Shortfall.FORGIVE)
    assert (result.taken, result.not_taken) == (0, 60)
    with db.reading() as s:
        row = s.get(JournalTransaction, result.transaction_id)
        assert row is not None
        assert (row.points, row.details) == (60, {"not_taken": 60})
        assert s.scalar(select(func.count()).where(JournalEntry.transaction_id == row.id)) == 0
    assert balance(db, book, member, clock) == (0, 0, 110)
    # … so only 10 points of the award are left to claim
    error = refused(
        db,
        book,
        InvalidInput,
        lambda s: claw_back(
            s, book, txn, 11, shortfall=Shortfall.FORGIVE, now=clock.now(), actor="t"
        ),
    )
    assert error.params["field"] == "points"
    assert "only 10 of the 100 points" in error.params["reason"]
    earn(db, book, member, 5, clock)
    result = claw(db, book, txn, 10, clock, shortfall=Shortfall.FORGIVE)
    assert (result.taken, result.not_taken) == (5, 5)
    assert balance(db, book, member, clock) == (0, 0, 110)
    assert lot_rows(db, member) == [
        (100, 0, "cancelled"),
        (20, 0, "available"),
        (5, 0, "available"),
    ]
    assert_laws(db, book)


# -- limits ----------------------------------------------------------------------------------


def test_clawbacks_never_claim_more_than_the_award(db, clock):
    book = make_program(db, clock)
    member = make_member(db, book, clock)
    txn = earn(db, book, member, 100, clock)
    earn(db, book, member, 500, clock)
    claw(db, book, txn, 70, clock)
    for points in (31, 1000):
        error = refused(
            db,
            book,
            InvalidInput,
            lambda s, points=points: claw_back(
                s, book, txn, points, shortfall=Shortfall.DEBT, now=clock.now(), actor="t"
            ),
        )
        assert error.params["field"] == "points"
    claw(db, book, txn, 30, clock)
    refused(
        db,
        book,
        InvalidInput,
        lambda s: claw_back(s, book, txn, 1, shortfall=Shortfall.DEBT, now=clock.now(), actor="t"),
    )
    assert balance(db, book, member, clock) == (500, 0, 500)
    assert_laws(db, book)


@pytest.mark.parametrize("points", [0, -5, 1.5, "10", True])
def test_bad_points_are_refused(db, clock, points):
    book = make_program(db, clock)
    member = make_member(db, book, clock)
    txn = earn(db, book, member, 100, clock)
    refused(
        db,
        book,
        InvalidInput,
        lambda s: claw_back(
            s, book, txn, points, shortfall=Shortfall.DEBT, now=clock.now(), actor="t"
        ),
    )


def test_only_this_programmes_earns_can_be_clawed_back(db, clock):
    book = make_program(db, clock, allow_transfers=True)
    other = make_program(db, clock)
    member, friend = make_member(db, book, clock), make_member(db, book, clock)
    foreign = earn(db, other, make_member(db, other, clock), 10, clock)
    txn = earn(db, book, member, 100, clock)
    paid = spend(db, book, member, 10, clock)
    given = db.write(
        lambda s: ledger.transfer(s, book, member, friend, 10, now=clock.now(), actor="t")
    ).id
    growth = db.write(
        lambda s: ledger.credit_growth(s, book, member, 10, now=clock.now(), actor="t")
    ).id

    def attempt(txn_id: int):
        return lambda s: claw_back(
            s, book, txn_id, 1, shortfall=Shortfall.DEBT, now=clock.now(), actor="t"
        )

    for missing in (foreign, 10**9):
        refused(db, book, NotFound, attempt(missing))
    for not_an_earn in (paid, given, growth):
        refused(db, book, NotReversible, attempt(not_an_earn))
    refused(
        db,
        book,
        NotReversible,
        lambda s: claw_back_growth(s, book, txn, 1, now=clock.now(), actor="t"),
    )
    result = claw(db, book, txn, 10, clock)
    refused(db, book, NotReversible, attempt(result.transaction_id))  # a clawback itself
    refused(
        db,
        book,
        NotReversible,
        lambda s: ledger.reverse(s, book, result.transaction_id, now=clock.now(), actor="t"),
    )
    refused(
        db,
        book,
        InvalidInput,
        lambda s: claw_back(
            s,
            book,
            txn,
            1,
            shortfall="all",
            now=clock.now(),
            actor="t",  # type: ignore[arg-type]
        ),
    )


def test_a_reference_names_one_transaction(db, clock):
    book = make_program(db, clock)
    member = make_member(db, book, clock)
    txn = earn(db, book, member, 100, clock, reference="order-1")
    claw(db, book, txn, 10, clock, reference="return-1")
    refused(
        db,
        book,
        DuplicateReference,
        lambda s: claw_back(
            s,
            book,
            txn,
            10,
            shortfall=Shortfall.DEBT,
            now=clock.now(),
            actor="t",
            reference="return-1",
        ),
    )


def test_reversal_and_clawbacks_exclude_each_other(db, clock):
    book = make_program(db, clock)
    member = make_member(db, book, clock)
    partly, fully, reversed_ = (earn(db, book, member, 100, clock) for _ in range(3))
    claw(db, book, partly, 40, clock)
    claw(db, book, fully, 100, clock)
    db.write(lambda s: ledger.reverse(s, book, reversed_, now=clock.now(), actor="t"))

    def reverse(txn_id: int):
        return lambda s: ledger.reverse(s, book, txn_id, now=clock.now(), actor="t")

    error = refused(db, book, NotReversible, reverse(partly))
    assert error.params["reason"] == "partly clawed back; claw back the rest instead"
    error = refused(db, book, NotReversible, reverse(fully))
    assert error.params["reason"] == "clawed back in full"
    error = refused(
        db,
        book,
        NotReversible,
        lambda s: claw_back(
            s, book, reversed_, 1, shortfall=Shortfall.DEBT, now=clock.now(), actor="t"
        ),
    )
    assert error.params["reason"].startswith("already reversed by transaction")
    claw(db, book, partly, 60, clock)  # the rest, as the refusal says
    assert balance(db, book, member, clock) == (0, 0, 0)
    assert_laws(db, book)


def test_frozen_and_closed_members_are_clawed_back_from(db, clock):
    book = make_program(db, clock)
    member = make_member(db, book, clock)
    txn = earn(db, book, member, 100, clock)
    for status in (MemberStatus.FROZEN, MemberStatus.CLOSED):
        db.write(
            lambda s, status=status: members.set_status(
                s, book, member, status, reason="check", now=clock.now()
            )
        )
        claw(db, book, txn, 10, clock)
    assert balance(db, book, member, clock) == (80, 0, 80)


# -- sources combined, and the same end as a reversal -----------------------------------------


def test_a_released_lot_partly_spent_gives_its_rest_then_charges_the_spent_part(db, clock):
    book = make_program(db, clock, pending_days=7)
    member = make_member(db, book, clock)
    txn = earn(db, book, member, 100, clock, pending=True)
    claw(db, book, txn, 20, clock)  # pending
    clock.set(RELEASED)
    earn(db, book, member, 40, clock)
    spend(db, book, member, 50, clock)  # from the released lot: 30 left of its 80
    claw(db, book, txn, 50, clock)  # its 30, then 20 of the other lot
    assert lot_rows(db, member) == [(100, 0, "available"), (40, 20, "available")]
    assert balance(db, book, member, clock) == (20, 0, 70)
    # the last 30: the member has 20, and no debt is allowed
    refused(
        db,
        book,
        InsufficientPoints,
        lambda s: claw_back(s, book, txn, 30, shortfall=Shortfall.DEBT, now=clock.now(), actor="t"),
    )
    result = claw(db, book, txn, 30, clock, shortfall=Shortfall.FORGIVE)
    assert (result.taken, result.not_taken) == (20, 10)
    assert lot_rows(db, member) == [(100, 0, "cancelled"), (40, 0, "available")]
    assert balance(db, book, member, clock) == (0, 0, 50)  # 140 earned, 90 taken back
    assert_laws(db, book)


Scenario = Any


def _twins(db, clock, settings: dict[str, Any], scenario: Scenario, parts: list[int]):
    """Run `scenario` for two members of one programme; reverse the earn it returns for
    one, claw it back in `parts` for the other; return both members' ledgers."""
    book: Book = make_program(db, clock, **settings)
    reversed_member, clawed_member = make_member(db, book, clock), make_member(db, book, clock)
    start = clock.now()
    txns = {}
    for member in (reversed_member, clawed_member):
        clock.set(start)
        txns[member] = scenario(book, member)
    expired_before = program_total(db, book, AccountKind.EXPIRED)
    db.write(
        lambda s: ledger.reverse(
            s, book, txns[reversed_member], now=clock.now(), actor="t", allow_debt=True
        )
    )
    expired_by_reversal = expired_before - program_total(db, book, AccountKind.EXPIRED)
    for part in parts:
        claw(db, book, txns[clawed_member], part, clock)
    expired_by_clawbacks = (
        expired_before - expired_by_reversal - program_total(db, book, AccountKind.EXPIRED)
    )
    assert expired_by_reversal == expired_by_clawbacks
    assert_laws(db, book)
    return [
        (balance(db, book, member, clock), lot_rows(db, member))
        for member in (reversed_member, clawed_member)
    ]


@pytest.mark.parametrize("parts", [[100], [1, 99], [30, 30, 40], [70, 29, 1]])
@pytest.mark.parametrize(
    "case", ["pending", "available", "partly spent", "partly expired", "into debt", "repaid debt"]
)
def test_clawbacks_of_the_whole_award_end_as_a_reversal(db, clock, case, parts):
    settings: dict[str, Any] = {
        "pending_days": 7,
        "expiry_policy": MONTHLY,
        "allow_negative_balance": True,
    }

    def scenario(book: Book, member: int) -> int:
        if case == "pending":
            earn(db, book, member, 50, clock)
            return earn(db, book, member, 100, clock, pending=True)
        if case == "available":
            earn(db, book, member, 50, clock)
            return earn(db, book, member, 100, clock)
        if case == "partly spent":
            txn = earn(db, book, member, 100, clock)
            clock.advance(days=2)
            earn(db, book, member, 60, clock)
            spend(db, book, member, 130, clock)  # 100 of the earn, 30 of the next
            return txn
        if case == "partly expired":
            txn = earn(db, book, member, 100, clock)
            spend(db, book, member, 45, clock)
            clock.advance(days=40)  # 55 expire
            earn(db, book, member, 60, clock)
            return txn
        if case == "into debt":
            txn = earn(db, book, member, 100, clock)
            earn(db, book, member, 30, clock)
            spend(db, book, member, 110, clock)  # 20 left: 80 of the claw run into debt
            return txn
        # an earn that repaid a debt left by an earlier reversal
        first = earn(db, book, member, 40, clock)
        spend(db, book, member, 40, clock)
        db.write(lambda s: ledger.reverse(s, book, first, now=clock.now(), actor="t"))
        return earn(db, book, member, 100, clock)  # 40 of it repay the debt

    reversed_, clawed = _twins(db, clock, settings, scenario, parts)
    expected = {
        "pending": ((50, 0, 50), [(50, 50, "available"), (100, 0, "cancelled")]),
        "available": ((50, 0, 50), [(50, 50, "available"), (100, 0, "cancelled")]),
        "partly spent": ((-70, 0, 60), [(100, 0, "cancelled"), (60, 0, "available")]),
        "partly expired": ((15, 0, 60), [(100, 0, "expired"), (60, 15, "available")]),
        "into debt": ((-80, 0, 30), [(100, 0, "cancelled"), (30, 0, "available")]),
        "repaid debt": ((-40, 0, 0), [(40, 0, "cancelled"), (100, 0, "cancelled")]),
    }
    assert reversed_ == expected[case]
    assert clawed == reversed_


def test_a_spend_undone_after_a_full_clawback_refunds_the_lots_it_charged(db, clock):
    book = make_program(db, clock, expiry_policy=MONTHLY)
    member = make_member(db, book, clock)
    txn = earn(db, book, member, 100, clock)
    clock.advance(days=5)
    earn(db, book, member, 100, clock)  # B
    paid = spend(db, book, member, 100, clock)  # all of the earn's lot
    claw(db, book, txn, 60, clock)  # B pays 60
    claw(db, book, txn, 40, clock)  # and 40
    assert lot_rows(db, member) == [(100, 0, "cancelled"), (100, 0, "available")]
    db.write(lambda s: ledger.reverse(s, book, paid, now=clock.now(), actor="t"))
    assert lot_rows(db, member) == [(100, 0, "cancelled"), (100, 100, "available")]
    assert balance(db, book, member, clock) == (100, 0, 100)
    assert_laws(db, book)


def test_a_spend_undone_before_the_last_clawback_goes_back_to_the_earns_lot(db, clock):
    book = make_program(db, clock)
    member = make_member(db, book, clock)
    txn = earn(db, book, member, 100, clock)
    earn(db, book, member, 100, clock)  # B
    paid = spend(db, book, member, 60, clock)  # from the earn's lot: 40 left
    claw(db, book, txn, 50, clock)  # its 40, and 10 from B
    db.write(lambda s: ledger.reverse(s, book, paid, now=clock.now(), actor="t"))
    assert lot_rows(db, member) == [(100, 60, "available"), (100, 90, "available")]
    claw(db, book, txn, 50, clock)  # the rest of the award, from the earn's lot
    assert lot_rows(db, member) == [(100, 10, "available"), (100, 90, "available")]
    assert balance(db, book, member, clock) == (100, 0, 100)
    assert_laws(db, book)


# -- growth value ----------------------------------------------------------------------------


def test_growth_value_is_clawed_back_in_parts_up_to_the_credit(db, clock):
    book = make_program(db, clock)
    member = make_member(db, book, clock)
    txn = db.write(lambda s: ledger.credit_growth(s, book, member, 100, now=clock.now(), actor="t"))
    db.write(lambda s: ledger.credit_growth(s, book, member, 50, now=clock.now(), actor="t"))

    def growth(points: int):
        return lambda s: claw_back_growth(s, book, txn.id, points, now=clock.now(), actor="t")

    first = db.write(growth(30))
    assert current_balance(db, book, member, clock.now()).growth_value == 120
    refused(db, book, InvalidInput, growth(71))
    db.write(growth(70))
    after = current_balance(db, book, member, clock.now())
    assert (after.growth_value, after.available, after.lifetime_earned) == (50, 0, 0)
    assert program_total(db, book, AccountKind.GROWTH_ISSUED) == -50
    with db.reading() as s:
        row = s.get(JournalTransaction, first)
        assert row is not None
        assert (row.kind, row.points, row.clawback_of_id) == ("clawback", 30, txn.id)
    refused(db, book, InvalidInput, growth(1))
    error = refused(
        db,
        book,
        NotReversible,
        lambda s: ledger.reverse(s, book, txn.id, now=clock.now(), actor="t"),
    )
    assert error.params["reason"] == "clawed back in full"
    refused(
        db,
        book,
        NotReversible,
        lambda s: claw_back(
            s, book, txn.id, 1, shortfall=Shortfall.DEBT, now=clock.now(), actor="t"
        ),
    )
    assert_laws(db, book)


# -- concurrency ---------------------------------------------------------------------------


def test_concurrent_clawbacks_and_a_reversal_never_take_more_than_the_award(db, clock):
    book = make_program(db, clock)
    member = make_member(db, book, clock)
    txn = earn(db, book, member, 100, clock)
    earn(db, book, member, 1000, clock)
    workers = 16
    start = Barrier(workers)

    def attempt(i: int) -> str:
        if i < workers:
            start.wait()
        try:
            if i == 5:
                db.write(lambda s: ledger.reverse(s, book, txn, now=clock.now(), actor="w"))
                return "reversed"
            claw(db, book, txn, 10, clock)
        except (InvalidInput, NotReversible) as exc:
            return type(exc).__name__
        return "clawed"

    with ThreadPoolExecutor(workers) as pool:
        outcomes = list(pool.map(attempt, range(40)))
    if "reversed" in outcomes:
        # the reversal came first: every clawback was refused
        assert outcomes.count("clawed") == 0
    else:
        assert outcomes.count("clawed") == 10
    assert balance(db, book, member, clock) == (1000, 0, 1000)
    assert_laws(db, book)
