"""Clawbacks: partial take-backs from an earn or growth transaction (returns).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 12:55:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # A plain ADD COLUMN (no batch rebuild): the journal's append-only triggers stay.
    op.add_column(
        "journal_transactions",
        sa.Column(
            "clawback_of_id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            nullable=True,
        ),
    )
    op.create_index(
        op.f("ix_journal_transactions_clawback_of_id"),
        "journal_transactions",
        ["clawback_of_id"],
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_journal_transactions_clawback_of_id"), table_name="journal_transactions")
    op.drop_column("journal_transactions", "clawback_of_id")
