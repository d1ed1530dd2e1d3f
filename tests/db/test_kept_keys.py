"""Migration 0007: the keys to programmes and members (and, on the same tables, to accounts
and journal transactions) of the tables the hot paths write are checked per statement on
PostgreSQL and are foreign keys on SQLite; programmes and members are kept for good. Both
stores refuse the same writes."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest
from alembic import command
from sqlalchemy import Table, insert, inspect, select, text
from sqlalchemy.exc import DBAPIError, IntegrityError

from factories import make_member, make_program
from jifen.db.bulk import write_rows
from jifen.db.migrate import alembic_config, upgrade
from jifen.db.models import Base
from jifen.db.uow import Database
from jifen.ledger import service as ledger
from rows import assert_kept_for_good, table_rows

CHECKED = {
    "members": {"program_id": "programs"},
    "accounts": {"program_id": "programs", "member_id": "members"},
    "journal_transactions": {
        "program_id": "programs",
        "member_id": "members",
        "reverses_id": "journal_transactions",
    },
    "lots": {
        "program_id": "programs",
        "member_id": "members",
        "account_id": "accounts",
        "transaction_id": "journal_transactions",
    },
    "purchases": {
        "program_id": "programs",
        "member_id": "members",
        "earn_txn_id": "journal_transactions",
        "growth_txn_id": "journal_transactions",
    },
    "purchase_lines": {"program_id": "programs"},
    "rule_counters": {"program_id": "programs"},
    "idempotency_keys": {"program_id": "programs"},
    "outbox_events": {"program_id": "programs"},
    "member_tiers": {"program_id": "programs", "member_id": "members"},
    "tier_history": {"program_id": "programs", "member_id": "members"},
}
"""The keys migration 0007 checks per statement on PostgreSQL, by table: column → parent."""

KEYS_REFUSED = "violates its keys|FOREIGN KEY constraint failed"
"""PostgreSQL's per-statement check (migrations 0006, 0007) or SQLite's foreign keys."""

MISSING = 10**9
"""An id no parent has."""


def _foreign_keys(db: Database, table: str) -> dict[str, str]:
    """A table's single-column foreign keys in the catalogue: column → parent."""
    with db.engine.connect() as connection:
        return {
            fk["constrained_columns"][0]: fk["referred_table"]
            for fk in inspect(connection).get_foreign_keys(table)
            if len(fk["constrained_columns"]) == 1
        }


def test_checked_keys_are_foreign_keys_on_sqlite_only(db: Database) -> None:
    """SQLite keeps every key as a foreign key; PostgreSQL's catalogue has none of the
    checked ones (its triggers check them), and keeps the others (a transaction's hold, a
    purchase line's purchase)."""
    for table, keys in CHECKED.items():
        catalogue = _foreign_keys(db, table)
        declared = {
            fk.parent.name: fk.column.table.name for fk in Base.metadata.tables[table].foreign_keys
        }
        for column, parent in keys.items():
            assert declared[column] == parent, (table, column)
            if db.dialect == "sqlite":
                assert catalogue[column] == parent, (table, column)
            else:
                assert column not in catalogue, (table, column)
        unchecked = {c: p for c, p in declared.items() if c not in keys}
        assert {c: catalogue[c] for c in unchecked} == unchecked, table


def _ledger(db: Database, clock) -> tuple[Any, int, int]:
    """A programme and a member with two credits (two transactions, two lots, two events)
    and a spend; and the member's points account."""
    book = make_program(db, clock)
    member = make_member(db, book, clock)
    for points in (10, 20):
        db.write(lambda s, p=points: ledger.credit(s, book, member, p, now=clock.now(), actor="t"))
    db.write(lambda s: ledger.debit(s, book, member, 15, now=clock.now(), actor="t"))
    account = db.read(
        lambda s: s.execute(
            text("SELECT id FROM accounts WHERE member_id = :m AND kind = 'points'"),
            {"m": member},
        ).scalar_one()
    )
    return book, member, account


def _copies(db: Database, table: Table, where: str) -> list[dict[str, Any]]:
    """The table's rows matching `where`, as new rows (no id) to insert again."""
    rows = db.read(
        lambda s: [
            dict(r._mapping) for r in s.execute(select(table).where(text(where)).order_by("id"))
        ]
    )
    assert len(rows) >= 2, (table, where)
    return [{k: v for k, v in row.items() if k != "id"} for row in rows]


@pytest.mark.parametrize(
    ("table", "column"),
    [
        ("lots", "program_id"),
        ("lots", "member_id"),
        ("lots", "account_id"),
        ("lots", "transaction_id"),
        ("journal_transactions", "program_id"),
        ("journal_transactions", "member_id"),
        ("journal_transactions", "reverses_id"),
        ("outbox_events", "program_id"),
    ],
)
def test_a_missing_parent_in_any_row_refuses_the_statement(
    db: Database, clock, table: str, column: str
) -> None:
    """One row, or one row of several (executemany, one multi-row INSERT, COPY on
    PostgreSQL), that names a programme, member, account or transaction that does not
    exist: the statement is refused with the foreign-key error and writes nothing; the
    same rows with every parent present are written as they are."""
    book, _, _ = _ledger(db, clock)
    model: Table = Base.metadata.tables[table]
    rows = _copies(db, model, f"program_id = {book.program_id}")
    before = table_rows(db, table)
    bad = [rows[0], rows[1] | {column: MISSING}, *rows[2:]]
    statements = (
        ("one row", lambda s: s.execute(insert(model).values(bad[1]))),
        ("executemany", lambda s: s.execute(insert(model), bad)),
        ("multi-row", lambda s: s.execute(insert(model).values(bad))),
        ("COPY or executemany", lambda s: write_rows(s, model, bad)),
    )
    for name, statement in statements:
        with pytest.raises((IntegrityError, psycopg.IntegrityError), match=KEYS_REFUSED):
            db.write(statement)
        assert table_rows(db, table) == before, name
    if table == "journal_transactions":
        return  # a transaction written without its entries would not balance at commit
    old = {row["id"] for row in db.read(lambda s: s.execute(select(model)).mappings().all())}
    db.write(lambda s: write_rows(s, model, rows))
    assert table_rows(db, table)[: len(before)] == before
    assert _copies(db, model, f"id NOT IN ({', '.join(map(str, old))})") == rows


def test_a_changed_key_is_checked(db: Database, clock) -> None:
    """An UPDATE that gives a row a programme, member, account or transaction that does not
    exist is refused; one that names another that exists, or leaves the keys alone, is
    not."""
    book, member, account = _ledger(db, clock)
    other = make_member(db, book, clock)
    for column in ("program_id", "member_id", "account_id", "transaction_id"):
        before = table_rows(db, "lots")
        with pytest.raises(IntegrityError, match=KEYS_REFUSED):
            db.write(lambda s, c=column: s.execute(text(f"UPDATE lots SET {c} = {MISSING}")))
        assert table_rows(db, "lots") == before
    moved = db.write(
        lambda s: (
            s.execute(
                text(f"UPDATE lots SET member_id = {other} WHERE member_id = {member}")
            ).rowcount
        )
    )
    assert moved == 2
    with pytest.raises(IntegrityError, match=KEYS_REFUSED):
        db.write(lambda s: s.execute(text(f"UPDATE outbox_events SET program_id = {MISSING}")))
    assert (
        db.write(
            lambda s: (
                s.execute(
                    text("UPDATE lots SET remaining = remaining WHERE account_id = :a"),
                    {"a": account},
                ).rowcount
            )
        )
        == 2
    )


def test_programmes_and_members_are_kept_for_good(db: Database, clock) -> None:
    """Neither a programme nor a member can be deleted or given another id, on both stores,
    nor truncated on PostgreSQL: nothing changes. (Erasure anonymises, closing closes.)"""
    _ledger(db, clock)
    make_program(db, clock)  # one with no member: still kept
    assert_kept_for_good(db, ("programs", "members"))


def test_migration_0007_goes_down_and_up_again(db: Database, clock) -> None:
    """Down to 0006 (the foreign keys back on PostgreSQL, a programme with nothing in it
    can be deleted again) and up again: the models still match, the rows are kept, and
    programmes and members are kept for good again."""
    from test_migrations import test_models_match_migrations

    book, _, _ = _ledger(db, clock)
    empty = make_program(db, clock)
    kept = {table: table_rows(db, table) for table in ("lots", "journal_transactions", "members")}
    url = db.engine.url.render_as_string(hide_password=False)
    db.engine.dispose()
    command.downgrade(alembic_config(url), "0006")
    for table, keys in CHECKED.items():
        catalogue = _foreign_keys(db, table)
        assert {c: catalogue.get(c) for c in keys} == keys, table
    with pytest.raises(IntegrityError, match=r"(?i)foreign key"):  # a foreign key again
        db.write(lambda s: s.execute(text(f"DELETE FROM programs WHERE id = {book.program_id}")))
    upgrade(url)
    db.engine.dispose()
    test_models_match_migrations(db)
    assert {table: table_rows(db, table) for table in kept} == kept
    with pytest.raises(DBAPIError, match="kept for good"):
        db.write(lambda s: s.execute(text(f"DELETE FROM programs WHERE id = {empty.program_id}")))
