"""The models and the Alembic migrations agree, on both stores, and the ledger's
database-level laws (triggers, CHECK constraints) are really in place."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Column, Integer, MetaData, Table, insert, text
from sqlalchemy.exc import DBAPIError, IntegrityError

from factories import make_member, make_program
from jifen.db.models import Base
from jifen.db.uow import Database
from jifen.ledger import service as ledger


def test_models_match_migrations(db: Database) -> None:
    with db.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        diff = compare_metadata(context, Base.metadata)
    assert diff == [], f"a migration is missing for: {diff}"


def test_comparison_notices_a_missing_migration(db: Database) -> None:
    """The agreement test can fail: a table in the models but in no migration shows up."""
    metadata = MetaData()
    for table in Base.metadata.tables.values():
        table.to_metadata(metadata)
    Table("not_migrated", metadata, Column("id", Integer, primary_key=True))
    with db.engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), metadata)
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
