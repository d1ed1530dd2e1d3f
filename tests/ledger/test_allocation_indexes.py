"""Every query that reads lot allocations finds them through an index, now that each
allocation is in one of the two (migration 0010: a lot's index over the expired ones, a
transaction's over the others): a query whose condition did not match an index's
predicate would read the whole table, which only shows at scale. The readers are driven
here by the ledger's own operations (a spend undone, a hold captured and voided, an earn
undone after its lot expired, a clawback of expired points, a spend undone after its earn
was), their statements recorded and explained on the same store: on SQLite no full scan
of `lot_allocations`; on PostgreSQL, with sequential scans priced out (the tables are
tiny), no sequential scan of it."""

from __future__ import annotations

from typing import Any

from sqlalchemy import event

from factories import make_member, make_program
from jifen.db.uow import Database
from jifen.ledger import service as ledger
from jifen.ledger.clawback import Shortfall, claw_back

MONTHLY = {"kind": "after_months", "months": 1, "round_to": "none"}


def _readers(db: Database, work: Any) -> list[tuple[str, Any]]:
    """The statements `work` runs that read lot_allocations, with their parameters."""
    seen: list[tuple[str, Any]] = []

    def grab(conn: Any, cursor: Any, statement: str, parameters: Any, *args: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT") and "lot_allocations" in statement:
            seen.append((statement, parameters))

    event.listen(db.engine, "before_cursor_execute", grab)
    try:
        work()
    finally:
        event.remove(db.engine, "before_cursor_execute", grab)
    return seen


def _full_scans(db: Database, readers: list[tuple[str, Any]]) -> list[str]:
    found = []
    with db.engine.connect() as connection:
        if db.dialect == "postgresql":
            connection.exec_driver_sql("SET enable_seqscan = off")
        for statement, parameters in readers:
            if db.dialect == "postgresql":
                plan = "\n".join(
                    row[0] for row in connection.exec_driver_sql("EXPLAIN " + statement, parameters)
                )
                scanned = "Seq Scan on lot_allocations" in plan
            else:
                plan = "\n".join(
                    str(row[-1])
                    for row in connection.exec_driver_sql(
                        "EXPLAIN QUERY PLAN " + statement, parameters
                    )
                )
                scanned = any(line.startswith("SCAN lot_allocations") for line in plan.split("\n"))
            if scanned:
                found.append(f"{statement}\n{plan}")
        connection.rollback()
    return found


def test_every_reader_of_allocations_finds_them_by_index(db: Database, clock) -> None:
    book = make_program(db, clock, expiry_policy=MONTHLY, allow_negative_balance=True)
    member = make_member(db, book, clock)

    def write(fn: Any) -> Any:
        return db.write(fn)

    def earn(points: int, who: int = member) -> int:
        return write(lambda s: ledger.credit(s, book, who, points, now=clock.now(), actor="t")).id

    def spend(points: int, who: int = member) -> int:
        return write(lambda s: ledger.debit(s, book, who, points, now=clock.now(), actor="t")).id

    def reverse(txn: int) -> None:
        write(lambda s: ledger.reverse(s, book, txn, now=clock.now(), actor="t"))

    def work() -> None:
        first = earn(100)
        reverse(spend(10))  # a debit's allocations, by transaction
        hold = write(
            lambda s: ledger.authorise_hold(s, book, member, 20, now=clock.now(), actor="t")
        ).id
        write(lambda s: ledger.capture_hold(s, book, hold, now=clock.now(), actor="t", points=5))
        hold = write(
            lambda s: ledger.authorise_hold(s, book, member, 10, now=clock.now(), actor="t")
        ).id
        write(lambda s: ledger.void_hold(s, book, hold, now=clock.now(), actor="t"))
        clawed = earn(50)
        clock.advance(days=40)  # both lots expire (what is left of them)
        earn(30)
        reverse(first)  # a credit's lot: what expired of it, by lot
        write(
            lambda s: claw_back(
                s, book, clawed, 20, shortfall=Shortfall.DEBT, now=clock.now(), actor="t"
            )
        )  # the expired part of an earn, by lot
        other = make_member(db, book, clock)
        a = earn(10, other)
        clock.advance(days=5)
        earn(10, other)
        paid = [spend(5, other), spend(3, other)]  # from a
        reverse(a)  # the lot cancelled; what the reversal took, by transaction
        for txn in paid:  # points passed through the cancelled lot: by lot, then by
            reverse(txn)  # transaction, and the second time what the first refunded

    readers = _readers(db, work)
    assert len({statement for statement, _ in readers}) == 7  # each reader in src/ ran
    assert _full_scans(db, readers) == []
