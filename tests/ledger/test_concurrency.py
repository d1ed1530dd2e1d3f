"""Many connections at one member: no double spend, no double effect of a retried call.

The known failures these guard against: a retried POS call counted twice; 20 concurrent
gifts crediting 2,000 points from a 100-point balance. They run on PostgreSQL (separate
connections, row locks) and on SQLite (one writer at a time) alike.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from threading import Barrier

import pytest
from sqlalchemy import func, select

from factories import make_member, make_program
from jifen.core.errors import InsufficientPoints
from jifen.db.idempotency import Replay, claim, request_hash, store
from jifen.db.uow import Database
from jifen.ledger import service as ledger
from jifen.ledger.models import JournalTransaction
from jifen.ledger.queries import current_balance

WORKERS = 16


def _count(db: Database, kind: str) -> int:
    return db.read(
        lambda s: s.scalar(
            select(func.count())
            .select_from(JournalTransaction)
            .where(JournalTransaction.kind == kind)
        )
    )


def test_400_concurrent_spends_at_a_balance_that_covers_150(db, clock):
    book = make_program(db, clock)
    member = make_member(db, book, clock)
    db.write(lambda s: ledger.credit(s, book, member, 1500, now=clock.now(), actor="t"))
    start = Barrier(WORKERS)

    def spend(i: int) -> str:
        if i < WORKERS:
            start.wait()
        try:
            db.write(lambda s: ledger.debit(s, book, member, 10, now=clock.now(), actor=f"w{i}"))
        except InsufficientPoints:
            return "insufficient"
        return "ok"

    with ThreadPoolExecutor(WORKERS) as pool:
        outcomes = list(pool.map(spend, range(400)))
    assert outcomes.count("ok") == 150
    assert outcomes.count("insufficient") == 250
    balance = current_balance(db, book, member, clock.now())
    assert (balance.available, balance.held, balance.lifetime_earned) == (0, 0, 1500)
    assert _count(db, "spend") == 150


def test_16_workers_retrying_one_spend_with_one_idempotency_key_spend_once(db, clock):
    book = make_program(db, clock)
    member = make_member(db, book, clock)
    db.write(lambda s: ledger.credit(s, book, member, 100, now=clock.now(), actor="t"))
    fingerprint = request_hash("POST", f"/v1/members/{member}/spend", {"points": 30})
    start = Barrier(WORKERS)

    def attempt(session):
        claimed = claim(
            session,
            program_id=book.program_id,
            key="till-7-receipt-42",
            fingerprint=fingerprint,
            now=clock.now(),
        )
        if isinstance(claimed, Replay):
            return ("replay", claimed.response["transaction_id"])
        txn = ledger.debit(session, book, member, 30, now=clock.now(), actor="pos")
        store(session, claimed, status_code=201, response={"transaction_id": txn.id})
        return ("first", txn.id)

    def worker(_: int):
        start.wait()
        return db.write(attempt)

    with ThreadPoolExecutor(WORKERS) as pool:
        results = list(pool.map(worker, range(WORKERS)))
    assert sorted(kind for kind, _ in results).count("first") == 1
    assert len({txn for _, txn in results}) == 1  # every caller sees the same transaction
    assert current_balance(db, book, member, clock.now()).available == 70
    assert _count(db, "spend") == 1


def test_20_concurrent_gifts_from_a_100_point_balance(db, clock):
    book = make_program(db, clock, allow_transfers=True)
    giver = make_member(db, book, clock)
    friends = [make_member(db, book, clock) for _ in range(20)]
    db.write(lambda s: ledger.credit(s, book, giver, 100, now=clock.now(), actor="t"))
    start = Barrier(20)

    def gift(friend: int) -> bool:
        start.wait()
        try:
            db.write(
                lambda s: ledger.transfer(s, book, giver, friend, 100, now=clock.now(), actor="t")
            )
        except InsufficientPoints:
            return False
        return True

    with ThreadPoolExecutor(20) as pool:
        outcomes = list(pool.map(gift, friends))
    assert outcomes.count(True) == 1
    received = [current_balance(db, book, f, clock.now()).available for f in friends]
    assert sorted(received) == [0] * 19 + [100]
    assert current_balance(db, book, giver, clock.now()).available == 0


@pytest.mark.postgres
def test_transfers_in_both_directions_at_once_do_not_deadlock(pg_db, clock):
    """Accounts are locked in id order, so A→B and B→A at the same time both complete."""
    book = make_program(pg_db, clock, allow_transfers=True)
    a, b = make_member(pg_db, book, clock), make_member(pg_db, book, clock)
    for m in (a, b):
        pg_db.write(lambda s, m=m: ledger.credit(s, book, m, 1000, now=clock.now(), actor="t"))

    def move(i: int) -> None:
        src, dst = (a, b) if i % 2 else (b, a)
        pg_db.write(lambda s: ledger.transfer(s, book, src, dst, 1, now=clock.now(), actor="t"))

    with ThreadPoolExecutor(WORKERS) as pool:
        list(pool.map(move, range(200)))
    balances = [current_balance(pg_db, book, m, clock.now()).available for m in (a, b)]
    assert balances == [1000, 1000]
    assert _count(pg_db, "transfer") == 200
