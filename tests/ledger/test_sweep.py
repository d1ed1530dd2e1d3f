"""On PostgreSQL the release and expiry steps run as SQL statements (`jifen.ledger.sweep`);
they must write exactly the rows the Python steps write (the ones SQLite runs).

The same history is played on two PostgreSQL databases, one with the SQL steps and one
with the Python steps, and every ledger row and outbox event is compared, ids included:
debts repaid by released lots (across two lots), a pending lot shrunk by a clawback,
partly spent and fully spent lots expiring, holds, lazy maintenance before a write, and
the scheduled jobs in small batches.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import insert, select, text
from sqlalchemy.exc import IntegrityError

from conftest import START, make_database
from factories import make_member, make_program
from jifen.core.clock import FrozenClock
from jifen.db.models import Base
from jifen.db.outbox import OutboxEvent
from jifen.db.uow import Database
from jifen.jobs.runner import run_job
from jifen.ledger import jobs
from jifen.ledger import service as ledger
from jifen.ledger.clawback import Shortfall, claw_back
from jifen.ledger.models import JournalEntry
from jifen.ledger.posting import Book
from ledger.test_state_machine import check_laws, load

pytestmark = pytest.mark.postgres

MONTHLY = {"kind": "after_months", "months": 1, "round_to": "none"}


def history(db: Database, clock: FrozenClock) -> tuple[Book, list[tuple[int, int, int, int]]]:
    """Play the history; returns the book and each job run's (batches, accounts, items,
    points)."""
    book = make_program(
        db, clock, pending_days=7, expiry_policy=MONTHLY, allow_negative_balance=True
    )
    members = [make_member(db, book, clock) for _ in range(6)]
    debtor, clawed, spender, emptied, lazy, idle = members

    def credit(member: int, points: int, **kw: Any) -> int:
        return db.write(
            lambda s: ledger.credit(s, book, member, points, now=clock.now(), actor="t", **kw)
        ).id

    def debit(member: int, points: int) -> int:
        return db.write(
            lambda s: ledger.debit(s, book, member, points, now=clock.now(), actor="t")
        ).id

    # The debtor owes 60 when their pending points are released: 50 + 10 of 30 repay it.
    earned = credit(debtor, 100)
    debit(debtor, 80)
    db.write(lambda s: ledger.reverse(s, book, earned, now=clock.now(), actor="t", allow_debt=True))
    credit(debtor, 20)
    credit(debtor, 50, pending=True)
    clawed_earn = credit(clawed, 40, pending=True)
    db.write(
        lambda s: claw_back(
            s, book, clawed_earn, 15, shortfall=Shortfall.DEBT, now=clock.now(), actor="t"
        )
    )
    credit(spender, 100)
    credit(emptied, 10)
    debit(emptied, 10)
    credit(lazy, 70, pending=True)
    credit(idle, 5)
    clock.advance(days=1)
    credit(debtor, 30, pending=True)
    credit(debtor, 12, pending=True)  # released with the 30, after the debt is repaid
    credit(spender, 20)
    debit(spender, 30)
    db.write(
        lambda s: ledger.authorise_hold(
            s,
            book,
            spender,
            10,
            now=clock.now(),
            actor="t",
            expires_at=clock.now() + timedelta(days=60),
        )
    )
    clock.advance(days=8)
    credit(lazy, 5)  # the lazy member's lots are released before this write
    runs = [run_job(db, "release", now=clock.now(), program_id=book.program_id, batch_size=2)]
    clock.advance(days=35)
    credit(lazy, 1)  # its lots expire before this write
    runs.append(run_job(db, "expire", now=clock.now(), program_id=book.program_id, batch_size=2))
    runs.append(run_job(db, "expire", now=clock.now(), program_id=book.program_id))
    return book, [(r.batches, r.totals.accounts, r.totals.items, r.totals.points) for r in runs]


def everything(db: Database, book: Book) -> dict[str, Any]:
    def read(session: Any) -> dict[str, Any]:
        rows = load(session, book.program_id).rows
        rows["outbox"] = [
            (e.id, e.member_id, e.type, e.payload, e.occurred_at)
            for e in session.execute(
                select(OutboxEvent)
                .where(OutboxEvent.program_id == book.program_id)
                .order_by(OutboxEvent.id)
            ).scalars()
        ]
        return rows

    return db.read(read)


def test_the_sql_steps_write_the_rows_the_python_steps_write(
    pg_db: Database, request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    book, runs = history(pg_db, FrozenClock(START))
    in_sql = everything(pg_db, book)

    other = tmp_path / "python"
    other.mkdir()
    python_db = make_database("postgres", request, other)
    try:
        with monkeypatch.context() as patch:
            patch.setattr(jobs, "_on_postgres", lambda session: False)
            python_book, python_runs = history(python_db, FrozenClock(START))
        in_python = everything(python_db, python_book)
    finally:
        python_db.dispose()

    # release (the lazy member's lot went before the job): the debtor's 50, 30 and 12 (in
    # one account, lots that repay a debt and one that does not), what the clawback left of
    # 40; expire in batches of 2 accounts: the debtor's four lots (20 left of the 30, the
    # 12), the clawed 25, the spender's 60 + 20, the emptied lot (nothing left), the idle
    # member's 5; the second run finds nothing.
    assert runs == [(1, 2, 4, 117), (3, 4, 9, 142), (0, 0, 0, 0)]
    assert python_runs == runs
    for table in ("accounts", "txns", "entries", "lots", "allocations", "holds", "outbox"):
        assert in_sql[table] == in_python[table], table
    releases = {t["id"] for t in in_sql["txns"] if t["kind"] == "release"}
    repaid = [a["amount"] for a in in_sql["allocations"] if a["transaction_id"] in releases]
    assert repaid == [-50, -10]  # the debt of 60, earliest expiry first
    assert not check_laws(pg_db.read(lambda s: load(s, book.program_id)), book)


def due_history(db: Database, clock: FrozenClock) -> tuple[Book, list[dict[str, Any]]]:
    """A history for the accounts' `next_due_at` as the scheduled jobs leave it (the SQL
    steps work it out in the step's own statement from what the statement does to the
    lots; the Python steps refresh it afterwards). Returns the book and everything after
    each job run."""
    book = make_program(
        db, clock, pending_days=7, expiry_policy=MONTHLY, allow_negative_balance=True
    )
    debtor, waiting, keeper, fresh = (make_member(db, book, clock) for _ in range(4))

    def credit(member: int, points: int, **kw: Any) -> None:
        db.write(lambda s: ledger.credit(s, book, member, points, now=clock.now(), actor="t", **kw))

    # The debtor owes 60 at the release: the 50 repays 50 (its expiry no longer counts),
    # the 30, earned a day later, keeps 20 (its expiry is the next thing due).
    earned = db.write(lambda s: ledger.credit(s, book, debtor, 100, now=clock.now(), actor="t")).id
    db.write(lambda s: ledger.debit(s, book, debtor, 80, now=clock.now(), actor="t"))
    db.write(lambda s: ledger.reverse(s, book, earned, now=clock.now(), actor="t", allow_debt=True))
    credit(debtor, 20)
    credit(debtor, 50, pending=True)
    credit(waiting, 40, pending=True)  # released on day 9, when its second lot is not due
    credit(keeper, 15)
    credit(fresh, 3)
    clock.advance(days=1)
    credit(debtor, 30, pending=True)
    clock.advance(days=4)
    credit(waiting, 25, pending=True)  # available on day 12, before the 40 expires
    clock.advance(days=4)
    runs = [run_job(db, "release", now=clock.now(), program_id=book.program_id, batch_size=2)]
    snapshots = [everything(db, book)]
    clock.advance(days=11)  # day 20
    credit(keeper, 35)  # expires after the job below: keeper's next thing due
    db.write(
        lambda s: ledger.authorise_hold(
            s,
            book,
            keeper,
            10,
            now=clock.now(),
            actor="t",
            expires_at=clock.now() + timedelta(days=45),
        )
    )
    clock.advance(days=10)  # day 30
    credit(fresh, 7, pending=True)  # available on day 37: fresh's next thing due
    clock.advance(days=3)  # day 33: every lot earned on days 0 and 1 has expired
    runs.append(run_job(db, "expire", now=clock.now(), program_id=book.program_id, batch_size=2))
    snapshots.append(everything(db, book))
    assert [(r.totals.accounts, r.totals.items) for r in runs] == [(2, 3), (4, 6)]
    return book, snapshots


def test_a_batch_sets_next_due_at_as_the_python_steps_do(
    pg_db: Database, request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    book, in_sql = due_history(pg_db, FrozenClock(START))
    other = tmp_path / "python"
    other.mkdir()
    python_db = make_database("postgres", request, other)
    try:
        with monkeypatch.context() as patch:
            patch.setattr(jobs, "_on_postgres", lambda session: False)
            _, in_python = due_history(python_db, FrozenClock(START))
    finally:
        python_db.dispose()
    for after_job, python_after_job in zip(in_sql, in_python, strict=True):
        for table in ("accounts", "txns", "entries", "lots", "allocations", "holds", "outbox"):
            assert after_job[table] == python_after_job[table], table

    def next_due(snapshot: dict[str, Any]) -> list[Any]:
        return [a["next_due_at"] for a in snapshot["accounts"] if a["kind"] == "points"]

    def lots(snapshot: dict[str, Any], amount: int) -> dict[str, Any]:
        (lot,) = (lot for lot in snapshot["lots"] if lot["amount"] == amount)
        return lot

    released, expired = in_sql
    # debtor, waiting, keeper, fresh
    assert next_due(released) == [
        lots(released, 30)["expires_at"],  # not the fully repaid 50's, a day earlier
        lots(released, 25)["available_at"],  # not the released 40's
        lots(released, 15)["expires_at"],
        lots(released, 3)["expires_at"],
    ]
    assert next_due(expired) == [
        None,
        lots(expired, 25)["available_at"],  # still pending: no release ran since
        lots(expired, 35)["expires_at"],  # not the expired 15's
        lots(expired, 7)["available_at"],
    ]
    assert not check_laws(pg_db.read(lambda s: load(s, book.program_id)), book)


@pytest.mark.parametrize("step", [jobs.Step.EXPIRE, jobs.Step.RELEASE])
def test_a_batch_skips_the_balance_check_for_its_own_statement_only(
    pg_db: Database, step: jobs.Step
) -> None:
    """A scheduled batch's statement tells the deferred balance trigger to skip its rows
    (they are balanced by construction); an unbalanced entry written after it in the same
    transaction is still refused at commit, and the batch's own transactions balance."""
    clock = FrozenClock(START)
    book = make_program(pg_db, clock, pending_days=7, expiry_policy=MONTHLY)
    member = make_member(pg_db, book, clock)
    txn = pg_db.write(
        lambda s: (
            ledger.credit(
                s, book, member, 30, now=clock.now(), actor="t", pending=step == jobs.Step.RELEASE
            ).id
        )
    )
    clock.advance(days=40)
    account = pg_db.read(
        lambda s: s.execute(
            text("SELECT id FROM accounts WHERE member_id = :m AND kind = 'points'"), {"m": member}
        ).scalar_one()
    )

    def batch_then_unbalanced(session: Any) -> None:
        done = jobs.run_batch(session, book, step, clock.now(), 10)
        assert (done.accounts, done.items, done.points) == (1, 1, 30)
        assert (
            session.execute(text("SELECT current_setting('jifen.entries_balanced')")).scalar()
            == "off"
        )
        session.execute(
            insert(JournalEntry).values(
                transaction_id=txn,
                program_id=book.program_id,
                account_id=account,
                member_id=member,
                bucket="available",
                amount=7,
            )
        )

    with pytest.raises(IntegrityError, match="does not balance"):
        pg_db.write(batch_then_unbalanced)
    assert (
        pg_db.read(
            lambda s: s.execute(
                text("SELECT count(*) FROM journal_entries WHERE amount = 7")
            ).scalar()
        )
        == 0
    )

    done = pg_db.write(lambda s: jobs.run_batch(s, book, step, clock.now(), 10))
    assert (done.accounts, done.items, done.points) == (1, 1, 30)
    unbalanced = pg_db.read(
        lambda s: s.execute(
            text(
                "SELECT count(*) FROM (SELECT transaction_id FROM journal_entries "
                "WHERE program_id = :p GROUP BY transaction_id HAVING sum(amount) <> 0) AS u"
            ),
            {"p": book.program_id},
        ).scalar()
    )
    assert unbalanced == 0
    assert not check_laws(pg_db.read(lambda s: load(s, book.program_id)), book)


ORPHANS = """
SELECT 'entry ' || e.id FROM journal_entries AS e
WHERE NOT EXISTS (SELECT FROM accounts AS a WHERE a.id = e.account_id)
   OR NOT EXISTS (SELECT FROM journal_transactions AS t
                  WHERE t.id = e.transaction_id AND t.program_id = e.program_id)
UNION ALL
SELECT 'allocation ' || l.id FROM lot_allocations AS l
WHERE NOT EXISTS (SELECT FROM lots AS o WHERE o.id = l.lot_id)
   OR NOT EXISTS (SELECT FROM journal_transactions AS t
                  WHERE t.id = l.transaction_id AND t.program_id = l.program_id)
UNION ALL
SELECT 'transaction ' || t.id FROM journal_transactions AS t
WHERE NOT EXISTS (SELECT FROM programs AS p WHERE p.id = t.program_id)
   OR (t.member_id IS NOT NULL AND NOT EXISTS (SELECT FROM members AS m WHERE m.id = t.member_id))
   OR (t.reverses_id IS NOT NULL
       AND NOT EXISTS (SELECT FROM journal_transactions AS r WHERE r.id = t.reverses_id))
UNION ALL
SELECT 'event ' || v.id FROM outbox_events AS v
WHERE NOT EXISTS (SELECT FROM programs AS p WHERE p.id = v.program_id)
"""
"""Rows of the four tables whose keys a scheduled batch's statement vouches for (migration
0008) that name a parent that does not exist."""

MISSING = 10**9


@pytest.mark.parametrize("step", [jobs.Step.EXPIRE, jobs.Step.RELEASE])
def test_a_batch_skips_the_key_checks_for_its_own_statement_only(
    pg_db: Database, step: jobs.Step
) -> None:
    """A scheduled batch's statement tells the per-statement key checks of the tables it
    inserts into to skip it (migration 0008: every key it writes names a row it has just
    read or inserted). Its rows all name parents that exist, and in the same transaction,
    after the batch, a row naming a missing lot, account, transaction, member or programme
    is refused as before (each in a savepoint): no row of the programme names a missing
    parent after the commit."""
    clock = FrozenClock(START)
    book = make_program(pg_db, clock, pending_days=7, expiry_policy=MONTHLY)
    members = [make_member(pg_db, book, clock) for _ in range(3)]
    for member in members:
        for points in (30, 12):
            pg_db.write(
                lambda s, m=member, p=points: ledger.credit(
                    s, book, m, p, now=clock.now(), actor="t", pending=step == jobs.Step.RELEASE
                )
            )
    clock.advance(days=40)
    spend, lot = pg_db.read(
        lambda s: (
            s.execute(text("SELECT max(id) FROM journal_transactions")).scalar_one(),
            s.execute(text("SELECT min(id) FROM lots")).scalar_one(),
        )
    )
    common = {"program_id": book.program_id, "member_id": members[0]}
    wrong_rows = [
        (
            "lot_allocations",
            common | {"transaction_id": spend, "lot_id": MISSING, "amount": -1, "expired": False},
        ),
        (
            "lot_allocations",
            common | {"transaction_id": MISSING, "lot_id": lot, "amount": -1, "expired": False},
        ),
        (
            "journal_entries",
            common
            | {"transaction_id": spend, "account_id": MISSING, "bucket": "available", "amount": 1},
        ),
        (
            "journal_transactions",
            common
            | {
                "member_id": MISSING,
                "kind": "adjust",
                "points": 1,
                "created_at": clock.now(),
                "actor": "t",
            },
        ),
        (
            "outbox_events",
            common
            | {"program_id": MISSING, "type": "t", "payload": {}, "occurred_at": clock.now()},
        ),
    ]

    def batch_then_orphans(session: Any) -> tuple[int, int, int]:
        done = jobs.run_batch(session, book, step, clock.now(), 10)
        assert session.execute(text("SELECT current_setting('jifen.keys_vouched')")).scalar() == (
            "off"
        )
        for table, row in wrong_rows:
            with (
                pytest.raises(IntegrityError, match="violates its keys"),
                session.begin_nested(),
            ):
                session.execute(insert(Base.metadata.tables[table]).values(row))
        return done.accounts, done.items, done.points

    assert pg_db.write(batch_then_orphans) == (3, 6, 126)
    assert pg_db.read(lambda s: s.execute(text(ORPHANS)).scalars().all()) == []
    assert not check_laws(pg_db.read(lambda s: load(s, book.program_id)), book)


def test_a_batch_sends_its_statements_unprepared(pg_db: Database) -> None:
    """psycopg prepares a statement after its fifth run on a connection, and PostgreSQL
    may then use a generic plan, which for a batch's statements costs several times the
    plan made for the batch's own ids: a scheduled batch's statements are never prepared,
    however many batches one connection runs, and the connection prepares again after."""
    clock = FrozenClock(START)
    book = make_program(pg_db, clock, expiry_policy=MONTHLY)
    for _ in range(12):
        member = make_member(pg_db, book, clock)
        pg_db.write(lambda s, m=member: ledger.credit(s, book, m, 5, now=clock.now(), actor="t"))
    clock.advance(days=40)
    one = Database(pg_db.url, pool_size=1, max_overflow=0)  # every batch on one connection
    try:
        report = run_job(one, "expire", now=clock.now(), program_id=book.program_id, batch_size=1)
        assert (report.batches, report.totals.items, report.totals.points) == (12, 12, 60)

        def prepared(session: Any) -> tuple[list[str], Any]:
            statements = (
                session.execute(text("SELECT statement FROM pg_prepared_statements"))
                .scalars()
                .all()
            )
            return statements, session.connection().connection.driver_connection.prepare_threshold

        statements, threshold = one.read(prepared)
    finally:
        one.dispose()
    assert not [s for s in statements if "SKIP LOCKED" in s or "lot_allocations" in s]
    assert threshold == 5
    assert not check_laws(pg_db.read(lambda s: load(s, book.program_id)), book)
