"""Fewer row-by-row checks on the rows every ledger write inserts, with no guarantee lost.

- A journal entry and a lot allocation name their transaction and programme with one
  composite foreign key, (transaction_id, program_id) → journal_transactions (id,
  program_id), instead of one key to the transaction and one to the programme: the row's
  programme must now be its transaction's (stronger than before), and that transaction's
  own key to `programs` says the programme exists. PostgreSQL checks a foreign key row by
  row, so an expiry batch of 2,000 accounts and 8,000 lots makes 12,000 checks fewer; the
  unique index on journal_transactions (id, program_id) the key needs costs one index
  entry per transaction.
- The indexes on journal_transactions.hold_id and clawback_of_id hold only the rows that
  have one (most transactions have neither): lookups by value use them as before, and a
  transaction without them inserts two index entries fewer.
- PostgreSQL's deferred balance trigger on journal_entries runs only where the writer has
  not said, for the statement at hand, that its statement builds every transaction's
  entries balanced (`jifen.entries_balanced` = 'on', set and reset around the one
  statement by `jifen.ledger.sweep`). Every other write is checked at commit as before.

On SQLite the two tables are rebuilt (SQLite cannot change a table's foreign keys) and
journal_entries' append-only triggers recreated.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-07 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CHILDREN = ("journal_entries", "lot_allocations")
OPTIONAL = ("hold_id", "clawback_of_id")

BALANCED_TRIGGER = (
    "CREATE CONSTRAINT TRIGGER journal_entries_balanced AFTER INSERT ON journal_entries "
    "DEFERRABLE INITIALLY DEFERRED FOR EACH ROW {when}EXECUTE FUNCTION jifen_journal_balanced()"
)
SKIP_WHEN = "WHEN (current_setting('jifen.entries_balanced', true) IS DISTINCT FROM 'on') "


def _postgres() -> bool:
    return op.get_bind().dialect.name == "postgresql"


def _append_only_triggers(create: bool) -> None:
    """SQLite's append-only triggers of journal_entries (a rebuild drops them)."""
    for operation in ("UPDATE", "DELETE"):
        name = f"journal_entries_no_{operation.lower()}"
        if not create:
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
            continue
        op.execute(
            f"CREATE TRIGGER {name} BEFORE {operation} ON journal_entries "
            f"BEGIN SELECT RAISE(ABORT, 'the journal is append-only: {operation} on "
            "journal_entries refused'); END"
        )


def _keys(composite: bool) -> None:
    postgres = _postgres()
    if not postgres:
        _append_only_triggers(create=False)
    for table in CHILDREN:
        with op.batch_alter_table(table, recreate="auto") as batch_op:
            batch_op.drop_constraint(
                f"fk_{table}_transaction_id_journal_transactions", type_="foreignkey"
            )
            if composite:
                batch_op.drop_constraint(f"fk_{table}_program_id_programs", type_="foreignkey")
                batch_op.create_foreign_key(
                    f"fk_{table}_transaction_id_journal_transactions",
                    "journal_transactions",
                    ["transaction_id", "program_id"],
                    ["id", "program_id"],
                )
            else:
                batch_op.create_foreign_key(
                    f"fk_{table}_transaction_id_journal_transactions",
                    "journal_transactions",
                    ["transaction_id"],
                    ["id"],
                )
                batch_op.create_foreign_key(
                    f"fk_{table}_program_id_programs", "programs", ["program_id"], ["id"]
                )
    if not postgres:
        _append_only_triggers(create=True)


def upgrade() -> None:
    op.create_index(
        "uq_journal_transactions_id_program_id",
        "journal_transactions",
        ["id", "program_id"],
        unique=True,
    )
    _keys(composite=True)
    for column in OPTIONAL:
        op.drop_index(f"ix_journal_transactions_{column}", table_name="journal_transactions")
        op.create_index(
            f"ix_journal_transactions_{column}",
            "journal_transactions",
            [column],
            sqlite_where=sa.text(f"{column} IS NOT NULL"),
            postgresql_where=sa.text(f"{column} IS NOT NULL"),
        )
    if _postgres():
        op.execute("DROP TRIGGER journal_entries_balanced ON journal_entries")
        op.execute(BALANCED_TRIGGER.format(when=SKIP_WHEN))


def downgrade() -> None:
    if _postgres():
        op.execute("DROP TRIGGER journal_entries_balanced ON journal_entries")
        op.execute(BALANCED_TRIGGER.format(when=""))
    for column in OPTIONAL:
        op.drop_index(f"ix_journal_transactions_{column}", table_name="journal_transactions")
        op.create_index(f"ix_journal_transactions_{column}", "journal_transactions", [column])
    _keys(composite=False)
    op.drop_index("uq_journal_transactions_id_program_id", table_name="journal_transactions")
