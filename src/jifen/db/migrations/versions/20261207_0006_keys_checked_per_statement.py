"""PostgreSQL checks the keys of journal entries and lot allocations once per statement,
not once per row.

An entry names its account (`account_id` → accounts) and its transaction and programme
(`(transaction_id, program_id)` → journal_transactions); an allocation names its lot
(`lot_id` → lots) and its transaction and programme. As foreign keys, PostgreSQL checks
them row by row, each check a small query of its own (an executor started, a probe, a row
lock written): an expiry batch of 2,000 accounts and 8,000 lots made 24,000 of them, about
a third of the batch's statement. Here each table's two keys become one statement-level
trigger, which checks every row the statement wrote in one query (a probe of each
parent's key per row) and refuses the statement with the foreign-key error's SQLSTATE
(23503) if a parent is missing. For a statement of one or two rows (a purchase's entries,
a spend's allocations) the trigger costs what the two checks did (lab: ~100 µs a
statement either way).

A foreign key also stops the parent from going away while children name it (and locks
the parent row, so that a concurrent DELETE waits). The triggers need neither, because
the parents cannot go away:
- journal transactions are append-only (their UPDATE and DELETE were already refused;
  TRUNCATE now is too);
- lots and accounts are kept for good: DELETE and TRUNCATE of them, and a change of their
  id, are now refused (nothing deletes them: they are the history of every credit and
  the home of every balance).
So a parent that exists when the statement's check runs exists for ever after, and the
check needs no lock. Entries cannot be updated (append-only); allocations are never
updated, and an UPDATE of them is checked as an INSERT.

SQLite keeps the foreign keys (its checks are cheap, in-process); the models declare them
for both stores and mark them (`jifen.db.base.CHECKED_PER_STATEMENT`), so that the
comparison of models and migrations knows PostgreSQL checks them by the triggers. Lots and
accounts are kept for good on SQLite too (triggers refuse DELETE and a change of id), so
both stores refuse the same writes.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-07 13:00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TRANSACTION_KEY = (["transaction_id", "program_id"], "journal_transactions", ["id", "program_id"])

KEYS = {
    "journal_entries": {
        "fk_journal_entries_account_id_accounts": (["account_id"], "accounts", ["id"]),
        "fk_journal_entries_transaction_id_journal_transactions": TRANSACTION_KEY,
    },
    "lot_allocations": {
        "fk_lot_allocations_lot_id_lots": (["lot_id"], "lots", ["id"]),
        "fk_lot_allocations_transaction_id_journal_transactions": TRANSACTION_KEY,
    },
}
"""The keys each table's trigger checks: the first (a single column) and the transaction's."""

# Each parent is probed by its key's index, row by row (`OFFSET 0` keeps every NOT EXISTS a
# probe: without it the planner hashes the whole parent table, whatever the rows).
CHECK_FUNCTION = """
CREATE FUNCTION jifen_{table}_keys() RETURNS trigger AS $$
BEGIN
    IF EXISTS (
        SELECT FROM written AS w
        WHERE NOT EXISTS (SELECT FROM {parent} AS p WHERE p.id = w.{column} OFFSET 0)
           OR NOT EXISTS (
               SELECT FROM journal_transactions AS t
               WHERE t.id = w.transaction_id AND t.program_id = w.program_id OFFSET 0)
    ) THEN
        RAISE EXCEPTION 'insert or update on table "{table}" violates its keys: a row names '
            'a {what}, or a transaction of its programme, that does not exist'
            USING ERRCODE = 'foreign_key_violation';
    END IF;
    RETURN NULL;
END $$ LANGUAGE plpgsql
"""

# A trigger with transition tables takes one event. Entries cannot be updated at all.
CHECKED_ON = {"journal_entries": ("insert",), "lot_allocations": ("insert", "update")}

KEPT = ("lots", "accounts")
"""The parents kept for good (journal transactions are append-only already)."""

KEPT_FUNCTION = """
CREATE FUNCTION jifen_kept() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION '% are kept for good (the journal names them): % on % refused',
        TG_TABLE_NAME, TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'integrity_constraint_violation';
END $$ LANGUAGE plpgsql
"""


def _postgres() -> bool:
    return op.get_bind().dialect.name == "postgresql"


def _sqlite_kept(create: bool) -> None:
    for table in KEPT:
        for name, when in (
            (f"{table}_no_delete", f"BEFORE DELETE ON {table}"),
            (f"{table}_id_kept", f"BEFORE UPDATE OF id ON {table} WHEN OLD.id IS NOT NEW.id"),
        ):
            if not create:
                op.execute(f"DROP TRIGGER {name}")
                continue
            op.execute(
                f"CREATE TRIGGER {name} {when} BEGIN SELECT RAISE(ABORT, '{table} are kept "
                f"for good (the journal names them): DELETE or a new id on {table} refused'); "
                "END"
            )


def upgrade() -> None:
    if not _postgres():
        _sqlite_kept(create=True)
        return
    for table, keys in KEYS.items():
        for name in keys:
            op.drop_constraint(name, table, type_="foreignkey")
        (column,), parent, _ = next(iter(keys.values()))
        op.execute(
            CHECK_FUNCTION.format(table=table, parent=parent, column=column, what=parent[:-1])
        )
        for event in CHECKED_ON[table]:
            op.execute(
                f"CREATE TRIGGER {table}_keys_on_{event} AFTER {event.upper()} ON {table} "
                "REFERENCING NEW TABLE AS written FOR EACH STATEMENT "
                f"EXECUTE FUNCTION jifen_{table}_keys()"
            )
    op.execute(KEPT_FUNCTION)
    for table in KEPT:
        op.execute(
            f"CREATE TRIGGER {table}_kept BEFORE DELETE OR TRUNCATE ON {table} "
            "FOR EACH STATEMENT EXECUTE FUNCTION jifen_kept()"
        )
        op.execute(
            f"CREATE TRIGGER {table}_id_kept BEFORE UPDATE OF id ON {table} FOR EACH ROW "
            "WHEN (OLD.id IS DISTINCT FROM NEW.id) EXECUTE FUNCTION jifen_kept()"
        )
    op.execute(
        "CREATE TRIGGER journal_transactions_no_truncate BEFORE TRUNCATE ON "
        "journal_transactions FOR EACH STATEMENT EXECUTE FUNCTION jifen_journal_immutable()"
    )


def downgrade() -> None:
    if not _postgres():
        _sqlite_kept(create=False)
        return
    op.execute("DROP TRIGGER journal_transactions_no_truncate ON journal_transactions")
    for table in KEPT:
        op.execute(f"DROP TRIGGER {table}_id_kept ON {table}")
        op.execute(f"DROP TRIGGER {table}_kept ON {table}")
    op.execute("DROP FUNCTION jifen_kept()")
    for table, keys in KEYS.items():
        for event in CHECKED_ON[table]:
            op.execute(f"DROP TRIGGER {table}_keys_on_{event} ON {table}")
        op.execute(f"DROP FUNCTION jifen_{table}_keys()")
        for name, (columns, parent, parent_columns) in keys.items():
            op.create_foreign_key(name, table, parent, columns, parent_columns)
