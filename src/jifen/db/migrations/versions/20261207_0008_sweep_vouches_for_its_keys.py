"""PostgreSQL skips the per-statement key checks of the one statement of a scheduled
expiry or release batch, whose rows name only parents it has just read or written.

Migrations 0006 and 0007 check the keys of journal transactions, journal entries, lot
allocations and outbox events once per statement, by a statement-level trigger that
probes every parent the statement's rows name. For the statement of a scheduled batch
(`jifen.ledger.sweep`, 2,000 accounts and 8,000 lots) those probes were about a seventh
of the batch's PostgreSQL CPU, the allocations' the dearest: each probe of a lot finds two
row versions, since the same statement has just updated the lot. Every key that statement
writes comes from a row it has read in the same transaction, of a parent that is kept for
good (lots, accounts, members and programmes cannot be deleted, journal transactions are
append-only), or from a row it inserts itself:
- an allocation's lot is one of the due lots the statement read (and updated); its
  transaction and programme are a transaction the statement inserts, with that programme;
- an entry's transaction likewise; its account is the lot's account (the account the
  batch has locked) or the programme's expired account, read with the programme's book;
- a transaction's programme is the batch's programme, read in the same transaction; its
  member is the lot's member; it reverses nothing;
- an event's programme is the batch's programme.
So the statement says so (`jifen.keys_vouched` = 'on', set and reset around it by
`jifen.ledger.sweep`, as `jifen.entries_balanced` is for the deferred balance trigger),
and each of the four triggers has a `WHEN` clause that skips the check while the setting
is on. Every other statement, one after the batch in the same transaction included, is
checked as before; a statement that fails takes the setting back with the transaction or
savepoint it aborts.

SQLite: nothing changes (its foreign keys are checked row by row, in-process).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07 19:00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

VOUCHED = ("journal_transactions", "journal_entries", "lot_allocations", "outbox_events")
"""The tables whose insert trigger (0006, 0007) the sweep's statement skips."""

TRIGGER = (
    "CREATE TRIGGER {table}_keys_on_insert AFTER INSERT ON {table} "
    "REFERENCING NEW TABLE AS written FOR EACH STATEMENT {when}"
    "EXECUTE FUNCTION jifen_{table}_keys()"
)
SKIP_WHEN = "WHEN (current_setting('jifen.keys_vouched', true) IS DISTINCT FROM 'on') "


def _triggers(when: str) -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table in VOUCHED:
        op.execute(f"DROP TRIGGER {table}_keys_on_insert ON {table}")
        op.execute(TRIGGER.format(table=table, when=when))


def upgrade() -> None:
    _triggers(SKIP_WHEN)


def downgrade() -> None:
    _triggers("")
