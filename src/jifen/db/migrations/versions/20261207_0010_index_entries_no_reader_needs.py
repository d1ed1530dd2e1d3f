"""Index entries no query reads: the journal transactions' `(program_id, member_id, id)`
index dropped, and each lot allocation in one of its two indexes instead of both.

- `ix_journal_transactions_program_id_member_id_id` came with the first schema, for a
  member's history read from the transactions. The history reads a member's
  transactions through their entries (`journal_entries (member_id, transaction_id)`,
  `jifen.ledger.queries.history`), and nothing else looks a transaction up by its
  member: by id (its key), by reference (the unique `(program_id, reference)`), by what
  it reverses, its hold or the earn it claws back (their own indexes). Every transaction
  paid an entry in it at a random place (by member): for the expiry job, whose statement
  writes a transaction per account, it was the index with the most write-ahead log after
  the lots' own (bench seed at 50,000 members, one expiry job: 26 MB of 382 MB, 20 MB of
  it full-page images); every purchase paid it too.
- `ix_lot_allocations_lot_id` and `ix_lot_allocations_transaction_id` held every
  allocation. A lot's allocations are read only for what expired of it (`expired IS
  TRUE`: `ledger.clawback`, `ledger.service`'s reversal of a credit, `ledger.posting`'s
  points passed through a cancelled lot), a transaction's only for what it took or gave
  back (`expired IS FALSE`: the reversal of a debit, a hold's open allocations, the lots
  a cancelling transaction took); expiry and release are never reversed. So each index
  now holds only those rows: an expired lot's allocation (the expiry job writes one a
  lot) is in the lot index only, a spend's or a hold's in the transaction index only.
  The predicates are written as SQLAlchemy writes the queries' conditions on each store
  (`IS true` on PostgreSQL, `IS 1` on SQLite), so that both planners match them.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07 21:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

MEMBER_INDEX = "ix_journal_transactions_program_id_member_id_id"
ALLOCATION_INDEXES = {"lot_id": True, "transaction_id": False}
"""Column of lot_allocations: the `expired` of the rows its index keeps."""


def upgrade() -> None:
    op.drop_index(MEMBER_INDEX, table_name="journal_transactions")
    for column, expired in ALLOCATION_INDEXES.items():
        name = f"ix_lot_allocations_{column}"
        op.drop_index(name, table_name="lot_allocations")
        op.create_index(
            name,
            "lot_allocations",
            [column],
            unique=False,
            postgresql_where=sa.text(f"expired IS {str(expired).lower()}"),
            sqlite_where=sa.text(f"expired IS {int(expired)}"),
        )


def downgrade() -> None:
    for column in ALLOCATION_INDEXES:
        name = f"ix_lot_allocations_{column}"
        op.drop_index(name, table_name="lot_allocations")
        op.create_index(name, "lot_allocations", [column], unique=False)
    op.create_index(
        MEMBER_INDEX, "journal_transactions", ["program_id", "member_id", "id"], unique=False
    )
