"""`ledger.bulk.credit_many` with transaction and lot ids its caller reserved (as a group of
purchases does, with its purchases' ids in one query): the same balances, lots and
journal as the ids it reserves itself — also when a credit repays a debt and is booked by
`service.credit`, which takes ids of its own (on SQLite the next free ones: those reserved
before it must not be written again)."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from factories import make_member, make_program
from jifen.db.bulk import reserve_ids_of
from jifen.db.uow import Database
from jifen.ledger import service as ledger
from jifen.ledger.bulk import Credit, credit_many, ids_wanted
from jifen.ledger.clawback import Shortfall, claw_back
from jifen.ledger.models import AccountKind, JournalTransaction, Lot
from jifen.ledger.posting import Book, lock_accounts
from jifen.ledger.queries import current_balance
from ledger.test_state_machine import check_laws, load


def _in_debt(db: Database, book: Book, clock: Any) -> int:
    member = make_member(db, book, clock)
    first = db.write(lambda s: ledger.credit(s, book, member, 100, now=clock.now(), actor="t").id)
    db.write(lambda s: ledger.debit(s, book, member, 100, now=clock.now(), actor="t"))
    db.write(
        lambda s: claw_back(
            s, book, first, 30, shortfall=Shortfall.DEBT, now=clock.now(), actor="t"
        )
    )
    return member


def _book(db: Database, book: Book, clock: Any, credits: list[Credit], given: bool) -> list:
    def unit(s: Any) -> list:
        members = sorted({c.member_id for c in credits})
        accounts = lock_accounts(s, book, members, clock.now(), AccountKind.POINTS)
        ids = None
        if given:
            points = sum(1 for c in credits if c.points)
            growth = sum(1 for c in credits if c.growth)
            txn_ids, lot_ids = reserve_ids_of(s, ids_wanted(points, growth))
            ids = (txn_ids, lot_ids)
        return credit_many(s, book, accounts, credits, now=clock.now(), actor="t", ids=ids)

    return db.write(unit)


def _outcome(db: Database, book: Book, clock: Any, members: list[int]) -> list:
    balances = [
        (b.available, b.pending, b.lifetime_earned)
        for b in (current_balance(db, book, m, clock.now()) for m in members)
    ]

    def rows(s: Any) -> list:
        txns = [
            (t.member_id and members.index(t.member_id), t.kind, t.points, t.reference)
            for t in s.execute(
                select(JournalTransaction)
                .where(JournalTransaction.program_id == book.program_id)
                .order_by(JournalTransaction.reference, JournalTransaction.kind)
            ).scalars()
        ]
        lots = sorted(
            (members.index(lot.member_id), lot.amount, lot.remaining, lot.status)
            for lot in s.execute(select(Lot).where(Lot.program_id == book.program_id)).scalars()
        )
        return [txns, lots]

    return [balances, *db.read(rows)]


@pytest.mark.parametrize("debt", [False, True], ids=["no-debt", "debt"])
def test_credit_many_with_the_callers_ids_books_what_it_books_alone(
    db: Database, clock: Any, debt: bool
) -> None:
    outcomes = []
    for given in (False, True):
        book = make_program(db, clock, allow_negative_balance=True)
        owing = _in_debt(db, book, clock) if debt else make_member(db, book, clock)
        other = make_member(db, book, clock)
        credits = [
            Credit(owing, 50, 0, clock.now(), False, "r-1", "g-1", {"n": 1}),
            Credit(other, 40, 5, clock.now(), False, "r-2", "g-2", {"n": 2}),
            Credit(other, 0, 7, clock.now(), True, "r-3", "g-3", {"n": 3}),
        ]
        booked = _book(db, book, clock, credits, given)
        assert [b.txn_id is not None for b in booked] == [True, True, False]
        assert [b.growth_txn_id is not None for b in booked] == [False, True, True]
        assert not check_laws(db.read(lambda s, b=book: load(s, b.program_id)), book)
        outcomes.append(_outcome(db, book, clock, [owing, other]))
    assert outcomes[0] == outcomes[1]
    if debt:
        assert outcomes[1][0][0] == (20, 0, 120)  # the 50 repaid the 30 owed
