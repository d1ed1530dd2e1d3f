"""The release and expiry jobs with two workers at once, and with members spending while
they run, on PostgreSQL (separate connections, row locks with SKIP LOCKED): every due lot
is released or expired exactly once, each account gets one transaction for it, and the
ledger's laws hold (jifen.jobs: "safe with several workers")."""

from __future__ import annotations

from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from threading import Event
from typing import Any

import pytest

from factories import at_once, make_member, make_program
from jifen.core.clock import FrozenClock
from jifen.core.errors import InsufficientPoints
from jifen.db.outbox import OutboxEvent
from jifen.db.uow import Database
from jifen.jobs.runner import JobReport, run_job
from jifen.ledger import service as ledger
from jifen.ledger.models import LotStatus, TxnKind
from jifen.ledger.posting import Book
from ledger.test_state_machine import check_laws, load

pytestmark = pytest.mark.postgres

MONTHLY = {"kind": "after_months", "months": 1, "round_to": "none"}
MEMBERS = 40


def _seeded(db: Database, clock: FrozenClock) -> tuple[Book, list[int]]:
    """MEMBERS members, each with two pending credits (7 + 11 × i and 3 points), one of
    them partly spent once released."""
    book = make_program(db, clock, pending_days=7, expiry_policy=MONTHLY)
    members = [make_member(db, book, clock) for _ in range(MEMBERS)]
    for i, member in enumerate(members):
        for points in (7 + 11 * i, 3):
            db.write(
                lambda s, m=member, p=points: ledger.credit(
                    s, book, m, p, now=clock.now(), actor="t", pending=True
                )
            )
    return book, members


def _run(db: Database, job: str, clock: FrozenClock, book: Book) -> JobReport:
    return run_job(db, job, now=clock.now(), program_id=book.program_id, batch_size=3)


def _by_kind(db: Database, book: Book, kind: TxnKind) -> Counter[int]:
    """Transactions of `kind` per member."""
    snap = db.read(lambda s: load(s, book.program_id))
    return Counter(t["member_id"] for t in snap.txns if t["kind"] == kind)


def _events(db: Database, book: Book, type_: str) -> Counter[int]:
    def read(session: Any) -> Counter[int]:
        found = session.query(OutboxEvent.member_id).filter(
            OutboxEvent.program_id == book.program_id, OutboxEvent.type == type_
        )
        return Counter(member_id for (member_id,) in found)

    return db.read(read)


def _assert_laws(db: Database, book: Book) -> None:
    problems = check_laws(db.read(lambda s: load(s, book.program_id)), book)
    assert not problems, "\n".join(problems)


def test_two_workers_releasing_and_then_expiring_at_once_do_each_lot_once(
    pg_db: Database, clock: FrozenClock
) -> None:
    book, members = _seeded(pg_db, clock)
    lots = 2 * MEMBERS
    credited = sum(7 + 11 * i + 3 for i in range(MEMBERS))

    clock.advance(days=8)
    released = at_once(2, lambda _: _run(pg_db, "release", clock, book))
    assert sum(r.totals.items for r in released) == lots
    assert sum(r.totals.points for r in released) == credited
    assert _by_kind(pg_db, book, TxnKind.RELEASE) == Counter(dict.fromkeys(members, 1))
    snap = pg_db.read(lambda s: load(s, book.program_id))
    assert {lot["status"] for lot in snap.lots} == {LotStatus.AVAILABLE}
    assert sum(a["available"] for a in snap.accounts if a["member_id"] in members) == credited
    _assert_laws(pg_db, book)

    # each member spends 2 points of their oldest lot; the rest expires a month on
    for member in members:
        pg_db.write(lambda s, m=member: ledger.debit(s, book, m, 2, now=clock.now(), actor="t"))
    clock.advance(days=32)
    expired = at_once(2, lambda _: _run(pg_db, "expire", clock, book))
    assert sum(r.totals.items for r in expired) == lots
    assert sum(r.totals.points for r in expired) == credited - 2 * MEMBERS
    assert _by_kind(pg_db, book, TxnKind.EXPIRE) == Counter(dict.fromkeys(members, 1))
    assert _events(pg_db, book, "points.expired") == Counter(dict.fromkeys(members, 1))
    snap = pg_db.read(lambda s: load(s, book.program_id))
    assert {(lot["status"], lot["remaining"]) for lot in snap.lots} == {(LotStatus.EXPIRED, 0)}
    assert all(a["available"] == 0 for a in snap.accounts if a["member_id"] in members)
    _assert_laws(pg_db, book)

    # a third run at the same instant finds nothing
    assert _run(pg_db, "expire", clock, book).totals.items == 0


def test_members_spending_while_two_workers_expire_never_spend_an_expired_point(
    pg_db: Database, clock: FrozenClock
) -> None:
    book, members = _seeded(pg_db, clock)
    clock.advance(days=8)
    _run(pg_db, "release", clock, book)
    clock.advance(days=32)  # every lot is due
    done = Event()

    def spender() -> int:
        """Try to spend 1 point of each member, round after round, while the jobs run;
        each must be refused: a write expires the member's due lots first."""
        spent = 0
        while True:
            finished = done.is_set()  # a last round after the jobs, at least one in all
            for member in members:
                try:
                    pg_db.write(
                        lambda s, m=member: ledger.debit(s, book, m, 1, now=clock.now(), actor="t")
                    )
                    spent += 1
                except InsufficientPoints:
                    pass
            if finished:
                return spent

    with ThreadPoolExecutor(3) as pool:
        spending = pool.submit(spender)
        workers = [pool.submit(_run, pg_db, "expire", clock, book) for _ in range(2)]
        reports = [w.result() for w in workers]
        done.set()
        assert spending.result() == 0
    # a member whose lots a spend expired first is not expired again by the jobs
    snap = pg_db.read(lambda s: load(s, book.program_id))
    assert {(lot["status"], lot["remaining"]) for lot in snap.lots} == {(LotStatus.EXPIRED, 0)}
    by_member = _by_kind(pg_db, book, TxnKind.EXPIRE)
    assert by_member == Counter(dict.fromkeys(members, 1))
    expired_points = sum(
        -e["amount"]
        for t in snap.txns
        if t["kind"] == TxnKind.EXPIRE
        for e in snap.entries
        if e["transaction_id"] == t["id"] and e["amount"] < 0
    )
    assert expired_points == sum(7 + 11 * i + 3 for i in range(MEMBERS))
    assert sum(r.totals.items for r in reports) <= 2 * MEMBERS
    _assert_laws(pg_db, book)
