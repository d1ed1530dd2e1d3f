"""PostgreSQL checks a lot allocation's keys once per statement, not once per row.

An allocation names its lot (`lot_id` → lots) and its transaction and programme
(`(transaction_id, program_id)` → journal_transactions). As foreign keys, PostgreSQL checks
them row by row, each check a small query of its own (an executor started, a probe, a
row lock written): for an expiry batch of 8,000 lots, 16,000 queries, about a third of
the batch's statement. Here the two keys become one statement-level trigger, which
checks every row the statement wrote in one query (a probe of each parent's key per row)
and refuses the statement with the foreign-key error's SQLSTATE (23503) if a parent is
missing.

A foreign key also stops the parent from going away while children name it (and locks
the parent row so that a concurrent DELETE waits). The trigger needs neither, because
the parents cannot go away:
- journal transactions are append-only (their UPDATE and DELETE were already refused;
  TRUNCATE now is too);
- lots are kept for good: DELETE and TRUNCATE of lots, and a change of a lot's id, are
  now refused (nothing deletes lots: they are the history of every credit).
So a parent that exists when the statement's check runs exists for ever after, and the
check needs no lock. Allocations are never updated; an UPDATE is checked as an INSERT.

SQLite keeps both foreign keys (its checks are cheap, in-process); the models declare
them for both stores and mark them (`jifen.db.base.CHECKED_PER_STATEMENT`), so that
the comparison of models and migrations knows PostgreSQL checks them by the trigger.
Lots are kept for good on SQLite too (triggers refuse DELETE and a change of id), so both
stores refuse the same writes.

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

KEYS = {
    "fk_lot_allocations_lot_id_lots": (["lot_id"], "lots", ["id"]),
    "fk_lot_allocations_transaction_id_journal_transactions": (
        ["transaction_id", "program_id"],
        "journal_transactions",
        ["id", "program_id"],
    ),
}

# Each parent is probed by its key's index, row by row (`OFFSET 0` keeps every NOT EXISTS a
# probe: without it the planner hashes the whole parent table, whatever the rows).
CHECK_FUNCTION = """
CREATE FUNCTION jifen_lot_allocations_keys() RETURNS trigger AS $$
BEGIN
    IF EXISTS (
        SELECT FROM written AS a
        WHERE NOT EXISTS (SELECT FROM lots AS l WHERE l.id = a.lot_id OFFSET 0)
           OR NOT EXISTS (
               SELECT FROM journal_transactions AS t
               WHERE t.id = a.transaction_id AND t.program_id = a.program_id OFFSET 0)
    ) THEN
        RAISE EXCEPTION 'insert or update on table "lot_allocations" violates its keys: '
            'a row names a lot, or a transaction of its programme, that does not exist'
            USING ERRCODE = 'foreign_key_violation';
    END IF;
    RETURN NULL;
END $$ LANGUAGE plpgsql
"""

KEPT_FUNCTION = """
CREATE FUNCTION jifen_lots_kept() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'lots are kept for good (allocations name them): % on lots refused', TG_OP
        USING ERRCODE = 'integrity_constraint_violation';
END $$ LANGUAGE plpgsql
"""

TRIGGERS = (
    # A trigger with transition tables takes one event: one for INSERT, one for UPDATE.
    "CREATE TRIGGER lot_allocations_keys_on_insert AFTER INSERT ON lot_allocations "
    "REFERENCING NEW TABLE AS written FOR EACH STATEMENT "
    "EXECUTE FUNCTION jifen_lot_allocations_keys()",
    "CREATE TRIGGER lot_allocations_keys_on_update AFTER UPDATE ON lot_allocations "
    "REFERENCING NEW TABLE AS written FOR EACH STATEMENT "
    "EXECUTE FUNCTION jifen_lot_allocations_keys()",
    "CREATE TRIGGER lots_kept BEFORE DELETE OR TRUNCATE ON lots "
    "FOR EACH STATEMENT EXECUTE FUNCTION jifen_lots_kept()",
    "CREATE TRIGGER lots_id_kept BEFORE UPDATE OF id ON lots "
    "FOR EACH ROW WHEN (OLD.id IS DISTINCT FROM NEW.id) EXECUTE FUNCTION jifen_lots_kept()",
    "CREATE TRIGGER journal_transactions_no_truncate BEFORE TRUNCATE ON journal_transactions "
    "FOR EACH STATEMENT EXECUTE FUNCTION jifen_journal_immutable()",
)
TRIGGERS_ON = {
    "lot_allocations_keys_on_insert": "lot_allocations",
    "lot_allocations_keys_on_update": "lot_allocations",
    "lots_kept": "lots",
    "lots_id_kept": "lots",
    "journal_transactions_no_truncate": "journal_transactions",
}


SQLITE_TRIGGERS = {
    "lots_no_delete": "BEFORE DELETE ON lots",
    "lots_id_kept": "BEFORE UPDATE OF id ON lots WHEN OLD.id IS NOT NEW.id",
}


def _postgres() -> bool:
    return op.get_bind().dialect.name == "postgresql"


def upgrade() -> None:
    if not _postgres():
        for name, when in SQLITE_TRIGGERS.items():
            op.execute(
                f"CREATE TRIGGER {name} {when} BEGIN SELECT RAISE(ABORT, 'lots are kept for "
                "good (allocations name them): DELETE or a new id on lots refused'); END"
            )
        return
    for name in KEYS:
        op.drop_constraint(name, "lot_allocations", type_="foreignkey")
    op.execute(CHECK_FUNCTION)
    op.execute(KEPT_FUNCTION)
    for statement in TRIGGERS:
        op.execute(statement)


def downgrade() -> None:
    if not _postgres():
        for name in SQLITE_TRIGGERS:
            op.execute(f"DROP TRIGGER {name}")
        return
    for trigger, table in TRIGGERS_ON.items():
        op.execute(f"DROP TRIGGER {trigger} ON {table}")
    op.execute("DROP FUNCTION jifen_lots_kept()")
    op.execute("DROP FUNCTION jifen_lot_allocations_keys()")
    for name, (columns, parent, parent_columns) in KEYS.items():
        op.create_foreign_key(name, "lot_allocations", parent, columns, parent_columns)
