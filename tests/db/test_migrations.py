"""The models and the Alembic migrations agree, on both stores, and the ledger's
database-level laws (triggers, CHECK constraints) are really in place."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Column, Integer, MetaData, Table, insert, inspect, text
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.orm import Session

from factories import make_member, make_program
from jifen.db.base import include_in_comparison
from jifen.db.bulk import write_rows
from jifen.db.migrate import alembic_config, upgrade
from jifen.db.models import Base
from jifen.db.uow import Database
from jifen.ledger import service as ledger
from jifen.ledger.models import AccountKind, JournalEntry, LotAllocation
from rows import assert_kept_for_good, table_rows
from schema import unmigrated


def test_models_match_migrations(db: Database) -> None:
    diff = unmigrated(db)
    assert diff == [], f"a migration is missing for: {diff}"


def test_comparison_notices_a_missing_migration(db: Database) -> None:
    """The agreement test can fail: a table in the models but in no migration shows up."""
    metadata = MetaData()
    for table in Base.metadata.tables.values():
        table.to_metadata(metadata)
    Table("not_migrated", metadata, Column("id", Integer, primary_key=True))
    with db.engine.connect() as connection:
        include = include_in_comparison(connection.dialect.name)
        diff = compare_metadata(
            MigrationContext.configure(connection, opts={"include_object": include}), metadata
        )
    assert [d[0] for d in diff] == ["add_table"]


def test_journal_is_append_only(db: Database, clock) -> None:
    book = make_program(db, clock)
    member = make_member(db, book, clock)
    txn = db.write(lambda s: ledger.credit(s, book, member, 100, now=clock.now(), actor="t").id)
    for statement in (
        f"UPDATE journal_entries SET amount = amount + 1 WHERE transaction_id = {txn}",
        f"DELETE FROM journal_entries WHERE transaction_id = {txn}",
        f"UPDATE journal_transactions SET points = 1 WHERE id = {txn}",
        f"DELETE FROM journal_transactions WHERE id = {txn}",
    ):
        with pytest.raises(DBAPIError, match="append-only"):
            db.write(lambda s, sql=statement: s.execute(text(sql)))


def test_available_cannot_go_negative_in_the_database(db: Database, clock) -> None:
    book = make_program(db, clock)
    member = make_member(db, book, clock)
    with pytest.raises(IntegrityError):
        db.write(
            lambda s: s.execute(
                text("UPDATE accounts SET available = -1 WHERE member_id = :m AND kind = 'points'"),
                {"m": member},
            )
        )


@pytest.mark.postgres
def test_unbalanced_transaction_refused_at_commit_on_postgres(pg_db: Database, clock) -> None:
    book = make_program(pg_db, clock)
    member = make_member(pg_db, book, clock)
    txn = pg_db.write(lambda s: ledger.credit(s, book, member, 5, now=clock.now(), actor="t").id)
    account = pg_db.read(
        lambda s: s.execute(
            text("SELECT id FROM accounts WHERE member_id = :m AND kind = 'points'"), {"m": member}
        ).scalar_one()
    )

    def unbalanced(session) -> None:
        from jifen.ledger.models import JournalEntry

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
        pg_db.write(unbalanced)


def _foreign_keys(db: Database, table: str) -> list[tuple[list[str], str, list[str]]]:
    with db.engine.connect() as connection:
        return sorted(
            (fk["constrained_columns"], fk["referred_table"], fk["referred_columns"])
            for fk in inspect(connection).get_foreign_keys(table)
        )


def test_entries_and_allocations_belong_to_their_transactions_programme(
    db: Database, clock
) -> None:
    """One composite key, (transaction_id, program_id) → journal_transactions, replaced the
    keys to the transaction and to the programme: a row naming another programme than its
    transaction's, or a transaction that does not exist, is refused on both stores."""
    book = make_program(db, clock)
    other = make_program(db, clock)
    member = make_member(db, book, clock)
    txn = db.write(lambda s: ledger.credit(s, book, member, 10, now=clock.now(), actor="t").id)
    lot, account = db.read(
        lambda s: s.execute(
            text("SELECT id, account_id FROM lots WHERE transaction_id = :t"), {"t": txn}
        ).one()
    )
    entry = {"account_id": account, "member_id": member, "bucket": "available", "amount": 1}
    allocation = {"member_id": member, "lot_id": lot, "amount": -1, "expired": False}
    for model, row in ((JournalEntry, entry), (LotAllocation, allocation)):
        for wrong in (
            {"transaction_id": txn, "program_id": other.program_id},
            {"transaction_id": txn + 1000, "program_id": book.program_id},
        ):

            def write(s: Any, model: Any = model, values: dict[str, Any] = row | wrong) -> None:
                s.execute(insert(model).values(**values))

            with pytest.raises(IntegrityError):
                db.write(write)
    # On PostgreSQL both tables' keys are checked per statement (migration 0006).
    tables = ["journal_entries", "lot_allocations"] if db.dialect == "sqlite" else []
    for table in tables:
        keys = _foreign_keys(db, table)
        assert (
            ["transaction_id", "program_id"],
            "journal_transactions",
            ["id", "program_id"],
        ) in keys
        assert not [k for k in keys if k[1] == "programs"], table


def test_migration_0005_goes_down_and_up_again(db: Database, clock) -> None:
    """Down to 0004 (the two simple keys and full indexes back; on SQLite both tables rebuilt
    with their rows) and up again: the models still match, and the journal is still
    append-only."""
    book = make_program(db, clock)
    member = make_member(db, book, clock)
    txn = db.write(lambda s: ledger.credit(s, book, member, 10, now=clock.now(), actor="t").id)
    db.write(lambda s: ledger.debit(s, book, member, 4, now=clock.now(), actor="t"))
    url = db.engine.url.render_as_string(hide_password=False)
    db.engine.dispose()
    command.downgrade(alembic_config(url), "0004")
    assert sorted(_foreign_keys(db, "journal_entries")) == [
        (["account_id"], "accounts", ["id"]),
        (["program_id"], "programs", ["id"]),
        (["transaction_id"], "journal_transactions", ["id"]),
    ]
    upgrade(url)
    db.engine.dispose()
    test_models_match_migrations(db)
    assert db.read(
        lambda s: (
            s.execute(
                text(
                    "SELECT count(*) FROM journal_entries "
                    "UNION ALL SELECT count(*) FROM lot_allocations"
                )
            )
            .scalars()
            .all()
        )
    ) == [4, 1]
    with pytest.raises(DBAPIError, match="append-only"):
        db.write(
            lambda s: s.execute(text(f"DELETE FROM journal_entries WHERE transaction_id = {txn}"))
        )


KEYS_REFUSED = "violates its keys|FOREIGN KEY constraint failed"
"""PostgreSQL's per-statement check (migration 0006) or SQLite's foreign keys."""


def _ledger_rows(
    db: Database, clock
) -> tuple[Any, int, int, list[dict[str, Any]], list[dict[str, Any]]]:
    """A programme, a member and their spend; rows of entries (balanced: +1 to the member's
    points, -1 to the programme's issued account) and allocations (one per lot) for it."""
    book = make_program(db, clock)
    member = make_member(db, book, clock)
    for points in (10, 20):
        db.write(lambda s, p=points: ledger.credit(s, book, member, p, now=clock.now(), actor="t"))
    spend = db.write(lambda s: ledger.debit(s, book, member, 15, now=clock.now(), actor="t").id)
    lots, account = db.read(
        lambda s: (
            s.execute(text("SELECT id FROM lots ORDER BY id")).scalars().all(),
            s.execute(
                text("SELECT id FROM accounts WHERE member_id = :m AND kind = 'points'"),
                {"m": member},
            ).scalar_one(),
        )
    )
    common = {"program_id": book.program_id, "transaction_id": spend}
    entries = [
        common | {"account_id": account, "member_id": member, "bucket": "available", "amount": 1},
        common
        | {
            "account_id": book.accounts[AccountKind.ISSUED],
            "member_id": None,
            "bucket": "available",
            "amount": -1,
        },
    ]
    allocations = [
        common | {"member_id": member, "lot_id": lot, "amount": -1, "expired": False}
        for lot in lots
    ]
    return book, member, spend, entries, allocations


@pytest.mark.parametrize(
    ("model", "parent_key"), [(JournalEntry, "account_id"), (LotAllocation, "lot_id")]
)
def test_keys_refuse_a_missing_parent_in_any_row(
    db: Database, clock, model: Any, parent_key: str
) -> None:
    """The keys of entries and allocations, checked per statement on PostgreSQL (migration
    0006) and row by row on SQLite: a statement of several rows (INSERT, executemany, or
    COPY), one of which names an account or lot, or a transaction, that does not exist
    (or a transaction of another programme), is refused as a whole and writes nothing;
    the same rows with every parent present are written."""
    _, _, spend, entries, allocations = _ledger_rows(db, clock)
    rows = entries if model is JournalEntry else allocations
    table = model.__tablename__
    other = make_program(db, clock)
    before = table_rows(db, table)
    for wrong in (
        {parent_key: 10**6},
        {"transaction_id": spend + 1000},
        {"program_id": other.program_id},
    ):
        bad = [*rows[:1], rows[1] | wrong, *rows[2:]]
        with pytest.raises(IntegrityError, match=KEYS_REFUSED):
            db.write(lambda s, bad=bad: s.execute(insert(model), bad))
        with pytest.raises(IntegrityError, match=KEYS_REFUSED):  # one multi-row statement
            db.write(lambda s, bad=bad: s.execute(insert(model).values(bad)))
        # COPY on PostgreSQL (imports, a group of purchases), executemany on SQLite
        with pytest.raises((IntegrityError, psycopg.IntegrityError), match=KEYS_REFUSED):
            db.write(lambda s, bad=bad: write_rows(s, model.__table__, bad))
        assert table_rows(db, table) == before
    db.write(lambda s: s.execute(insert(model).values(rows)))
    assert len(table_rows(db, table)) == len(before) + len(rows)
    if db.dialect == "postgresql":
        assert _foreign_keys(db, table) == []
        if model is LotAllocation:  # nothing updates allocations, but an update is checked
            with pytest.raises(IntegrityError, match=KEYS_REFUSED):
                db.write(
                    lambda s: s.execute(text("UPDATE lot_allocations SET lot_id = lot_id + 1000"))
                )


def test_lots_and_accounts_are_kept_for_good(db: Database, clock) -> None:
    """What the per-statement keys rely on: a lot or an account can be neither deleted nor
    given another id (both stores), and on PostgreSQL neither they nor journal
    transactions can be truncated; nothing changes."""
    _ledger_rows(db, clock)
    assert_kept_for_good(db, ("lots", "accounts"))
    if db.dialect == "postgresql":
        with pytest.raises(DBAPIError, match="append-only"):
            db.write(lambda s: s.execute(text("TRUNCATE journal_transactions CASCADE")))


def test_migration_0006_goes_down_and_up_again(db: Database, clock) -> None:
    """Down to 0005 (the foreign keys back on PostgreSQL, the triggers gone: a lot's id can
    change again) and up again: the models still match, the rows are kept and lots are
    kept for good again."""
    book, member, _, _, _ = _ledger_rows(db, clock)
    unspent = db.write(lambda s: ledger.credit(s, book, member, 5, now=clock.now(), actor="t").id)
    kept = {table: table_rows(db, table) for table in ("journal_entries", "lot_allocations")}
    url = db.engine.url.render_as_string(hide_password=False)
    db.engine.dispose()
    command.downgrade(alembic_config(url), "0005")
    transaction_key = (
        ["transaction_id", "program_id"],
        "journal_transactions",
        ["id", "program_id"],
    )
    assert _foreign_keys(db, "lot_allocations") == [(["lot_id"], "lots", ["id"]), transaction_key]
    assert _foreign_keys(db, "journal_entries") == [
        (["account_id"], "accounts", ["id"]),
        transaction_key,
    ]
    moved = f"UPDATE lots SET id = id + 1000 WHERE transaction_id = {unspent}"
    assert db.write(lambda s: s.execute(text(moved)).rowcount) == 1  # no trigger left
    upgrade(url)
    db.engine.dispose()
    test_models_match_migrations(db)
    assert {table: table_rows(db, table) for table in kept} == kept
    with pytest.raises(DBAPIError, match="kept for good"):
        db.write(lambda s: s.execute(text("DELETE FROM lots")))


VOUCHED = ("journal_transactions", "journal_entries", "lot_allocations", "outbox_events")
"""The tables whose per-statement key check a scheduled batch's statement skips (0008)."""


def _skips_when_vouched(db: Database) -> dict[str, bool]:
    """On PostgreSQL, whether each table's insert trigger has the `jifen.keys_vouched`
    WHEN clause."""
    return db.read(
        lambda s: {
            table: "jifen.keys_vouched" in definition
            for table, definition in s.execute(
                text(
                    "SELECT c.relname, pg_get_triggerdef(t.oid) FROM pg_trigger AS t "
                    "JOIN pg_class AS c ON c.oid = t.tgrelid "
                    "WHERE t.tgname = c.relname || '_keys_on_insert' AND c.relname = ANY(:t)"
                ),
                {"t": list(VOUCHED)},
            ).all()
        }
    )


def test_migration_0008_goes_down_and_up_again(db: Database, clock) -> None:
    """Down to 0007 (on PostgreSQL the four insert triggers without their WHEN clause: the
    setting skips nothing) and up again (the clause back: the setting, which only
    `jifen.ledger.sweep` sets around a batch's statement, skips the check, here in a
    transaction rolled back); SQLite has nothing to change. The models still match and
    the rows are kept."""
    _ledger_rows(db, clock)
    kept = {table: table_rows(db, table) for table in VOUCHED}
    url = db.engine.url.render_as_string(hide_password=False)
    db.engine.dispose()
    orphan = text(
        "INSERT INTO outbox_events (program_id, type, payload, occurred_at) "
        "VALUES (:p, 't', '{}', :at)"
    )

    def vouched_orphan(session: Any) -> None:
        session.execute(text("SELECT set_config('jifen.keys_vouched', 'on', true)"))
        session.execute(orphan, {"p": 10**9, "at": clock.now()})

    command.downgrade(alembic_config(url), "0007")
    if db.dialect == "postgresql":
        assert _skips_when_vouched(db) == dict.fromkeys(VOUCHED, False)
        with pytest.raises(IntegrityError, match=KEYS_REFUSED):
            db.write(vouched_orphan)
    upgrade(url)
    db.engine.dispose()
    test_models_match_migrations(db)
    assert {table: table_rows(db, table) for table in kept} == kept
    if db.dialect == "postgresql":
        assert _skips_when_vouched(db) == dict.fromkeys(VOUCHED, True)
        with db.engine.connect() as connection:
            vouched_orphan(Session(bind=connection))
            connection.rollback()
        with pytest.raises(IntegrityError, match=KEYS_REFUSED):  # unvouched: checked
            db.write(lambda s: s.execute(orphan, {"p": 10**9, "at": clock.now()}))
    assert {table: table_rows(db, table) for table in kept} == kept


def _indexes(db: Database, table: str) -> dict[str, tuple[list[str], str | None]]:
    """A table's indexes: name -> (columns, predicate as the store gives it back, if any)."""

    def read(session: Any) -> dict[str, tuple[list[str], str | None]]:
        found = inspect(session.connection()).get_indexes(table)
        if db.dialect == "postgresql":
            where = dict(
                session.execute(
                    text(
                        "SELECT c.relname, pg_get_expr(i.indpred, i.indrelid) FROM pg_index i "
                        "JOIN pg_class c ON c.oid = i.indexrelid "
                        "WHERE i.indrelid = CAST(:t AS regclass)"
                    ),
                    {"t": table},
                ).all()
            )
        else:
            where = {
                name: sql.split(" WHERE ", 1)[1] if " WHERE " in sql else None
                for name, sql in session.execute(
                    text(
                        "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = :t"
                    ),
                    {"t": table},
                ).all()
                if sql is not None
            }
        return {str(i["name"]): (list(i["column_names"]), where.get(i["name"])) for i in found}

    return db.read(read)


def test_migration_0010_goes_down_and_up_again(db: Database, clock) -> None:
    """Down one step from 0010 (the transactions' `(program_id, member_id, id)` index back,
    and the allocations' two indexes over every row) and up again (the first gone, the
    allocations' lot index over the expired ones, their transaction index over the
    others), on both stores; the models still match and the rows are kept."""
    _ledger_rows(db, clock)
    kept = {table: table_rows(db, table) for table in ("journal_transactions", *VOUCHED)}
    member = "ix_journal_transactions_program_id_member_id_id"
    by_lot, by_transaction = "ix_lot_allocations_lot_id", "ix_lot_allocations_transaction_id"
    true, false = ("true", "false") if db.dialect == "postgresql" else ("1", "0")

    def where(index: str) -> tuple[list[str], str | None]:
        columns, predicate = _indexes(db, "lot_allocations")[index]
        return columns, predicate and predicate.strip("()").lower()

    def partial() -> None:
        assert member not in _indexes(db, "journal_transactions")
        assert where(by_lot) == (["lot_id"], f"expired is {true}")
        assert where(by_transaction) == (["transaction_id"], f"expired is {false}")

    partial()
    url = db.engine.url.render_as_string(hide_password=False)
    db.engine.dispose()
    command.downgrade(alembic_config(url), "0010-1")
    assert _indexes(db, "journal_transactions")[member] == (["program_id", "member_id", "id"], None)
    assert where(by_lot) == (["lot_id"], None)
    assert where(by_transaction) == (["transaction_id"], None)
    upgrade(url)
    db.engine.dispose()
    partial()
    test_models_match_migrations(db)
    assert {table: table_rows(db, table) for table in kept} == kept
