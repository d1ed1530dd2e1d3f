"""Ledger tables.

- `accounts`: one per member and kind (points, growth value) and one per programme and
  kind (issued, redeemed, expired, adjustment, growth issued). Member accounts cache
  their balances by bucket (available, pending, held) under the account's row lock;
  programme accounts cache nothing, so no programme-wide row is ever a hot spot.
- `journal_transactions` / `journal_entries`: append-only, double entry; the entries of a
  transaction sum to zero (checked by the service, and on PostgreSQL by a deferred
  constraint trigger, which only the expiry and release batches' statement, balanced by
  construction, skips). Each entry names the bucket it moves. An entry (and an
  allocation) belongs to its transaction's programme: one composite foreign key says so.
- `lots`: every credit of available or pending points, with earned_at and expires_at;
  `remaining` is what is left of it.
- `lot_allocations`: every change of a lot's `remaining` after its creation, signed,
  tied to the transaction that made it; so `remaining == amount + Σ allocations`, and a
  reversal knows exactly which lots to restore.
- On PostgreSQL the keys of entries and allocations are checked once per statement, by a
  trigger, not row by row; lots and accounts are kept for good (never deleted, their ids
  never change) and the journal is append-only, so a parent found once stays.
- `holds`: points authorised for a checkout, captured, voided or lapsed.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    String,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from jifen.db.base import (
    CHECKED_PER_STATEMENT,
    Base,
    Id,
    Json,
    UtcDateTime,
    checked_key,
    partial_index,
)


class AccountKind(StrEnum):
    POINTS = "points"
    GROWTH = "growth"
    ISSUED = "issued"
    REDEEMED = "redeemed"
    EXPIRED = "expired"
    ADJUSTMENT = "adjustment"
    GROWTH_ISSUED = "growth_issued"


MEMBER_KINDS = (AccountKind.POINTS, AccountKind.GROWTH)
PROGRAM_KINDS = (
    AccountKind.ISSUED,
    AccountKind.REDEEMED,
    AccountKind.EXPIRED,
    AccountKind.ADJUSTMENT,
    AccountKind.GROWTH_ISSUED,
)


class Bucket(StrEnum):
    AVAILABLE = "available"
    PENDING = "pending"
    HELD = "held"


class TxnKind(StrEnum):
    EARN = "earn"
    SPEND = "spend"
    HOLD = "hold"
    CAPTURE = "capture"
    REFUND = "refund"
    """Points of a capture given back (a return of goods paid partly with points)."""
    VOID = "void"
    LAPSE = "lapse"
    RELEASE = "release"
    EXPIRE = "expire"
    ADJUST = "adjust"
    TRANSFER = "transfer"
    REVERSAL = "reversal"
    CLAWBACK = "clawback"
    GROWTH = "growth"


class LotStatus(StrEnum):
    PENDING = "pending"
    AVAILABLE = "available"
    EXPIRED = "expired"
    CANCELLED = "cancelled"


class HoldStatus(StrEnum):
    ACTIVE = "active"
    CAPTURED = "captured"
    VOIDED = "voided"
    LAPSED = "lapsed"


class AccountStatus(StrEnum):
    ACTIVE = "active"
    FROZEN = "frozen"
    CLOSED = "closed"


class Account(Base):
    __tablename__ = "accounts"
    __table_args__ = (
        UniqueConstraint("program_id", "member_id", "kind"),
        partial_index(
            "uq_accounts_program_kind",
            "program_id",
            "kind",
            unique=True,
            where="member_id IS NULL",
        ),
        CheckConstraint("available >= 0 OR allow_negative", name="available_not_negative"),
        CheckConstraint("pending >= 0", name="pending_not_negative"),
        CheckConstraint("held >= 0", name="held_not_negative"),
        CheckConstraint("lifetime_earned >= 0", name="lifetime_earned_not_negative"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    program_id: Mapped[int] = mapped_column(Id, checked_key("programs.id"))
    member_id: Mapped[int | None] = mapped_column(Id, checked_key("members.id"))
    kind: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(10), default=AccountStatus.ACTIVE)
    available: Mapped[int] = mapped_column(BigInteger, default=0)
    pending: Mapped[int] = mapped_column(BigInteger, default=0)
    held: Mapped[int] = mapped_column(BigInteger, default=0)
    lifetime_earned: Mapped[int] = mapped_column(BigInteger, default=0)
    allow_negative: Mapped[bool] = mapped_column(Boolean, default=False)
    opened_at: Mapped[datetime] = mapped_column(UtcDateTime)
    last_activity_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    next_due_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    """No lot expires, no pending lot is released and no hold lapses before this instant.

    It may be earlier than the true next event (then a read finds nothing to do and moves
    it on), never later; reads use it to skip maintenance in one comparison.
    """


def _transaction_key() -> ForeignKeyConstraint:
    """An entry's or allocation's transaction and programme, as one key: the row belongs
    to its transaction's programme, whose own key says the programme exists (one check
    where there were two). PostgreSQL checks it per statement (`CHECKED_PER_STATEMENT`)."""
    return ForeignKeyConstraint(
        ["transaction_id", "program_id"],
        ["journal_transactions.id", "journal_transactions.program_id"],
        info={CHECKED_PER_STATEMENT: True},
    )


def _key(column: str, parent: str) -> ForeignKeyConstraint:
    """A foreign key that PostgreSQL checks per statement (`CHECKED_PER_STATEMENT`)."""
    return ForeignKeyConstraint([column], [parent], info={CHECKED_PER_STATEMENT: True})


class JournalTransaction(Base):
    __tablename__ = "journal_transactions"
    __table_args__ = (
        UniqueConstraint("program_id", "reference"),
        # No index on the member: a member's transactions are found through their entries
        # (`journal_entries (member_id, transaction_id)`), the history's way in (migration
        # 0010 dropped `(program_id, member_id, id)`, which no query read; docs/ledger.md).
        # The target of the entries' and allocations' composite foreign keys.
        Index("uq_journal_transactions_id_program_id", "id", "program_id", unique=True),
        # Most transactions have neither: only the ones that do are indexed.
        partial_index(
            "ix_journal_transactions_hold_id",
            "hold_id",
            where="hold_id IS NOT NULL",
        ),
        partial_index(
            "ix_journal_transactions_clawback_of_id",
            "clawback_of_id",
            where="clawback_of_id IS NOT NULL",
        ),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    program_id: Mapped[int] = mapped_column(Id, checked_key("programs.id"))
    member_id: Mapped[int | None] = mapped_column(Id, checked_key("members.id"))
    kind: Mapped[str] = mapped_column(String(16))
    points: Mapped[int] = mapped_column(BigInteger)
    """The size of the movement as a person would state it (always ≥ 0)."""
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    reference: Mapped[str | None] = mapped_column(String(200))
    reverses_id: Mapped[int | None] = mapped_column(
        Id, checked_key("journal_transactions.id"), unique=True
    )
    hold_id: Mapped[int | None] = mapped_column(Id, ForeignKey("holds.id"))
    clawback_of_id: Mapped[int | None] = mapped_column(Id)
    """For a clawback: the earn or growth transaction it takes (part of) the points back from.

    Several clawbacks may take from one transaction (partial returns), unlike a reversal.
    No foreign key, so that SQLite could add the column without rebuilding the
    append-only journal table (and losing its triggers).
    """
    reason: Mapped[str | None] = mapped_column(String(500))
    actor: Mapped[str] = mapped_column(String(100))
    details: Mapped[dict[str, Any] | None] = mapped_column(Json)


class JournalEntry(Base):
    """A movement of one account's bucket. Its two keys (the account; the transaction and
    its programme) are foreign keys on SQLite; on PostgreSQL one statement-level trigger
    checks them for all the rows a statement writes (migration 0006)."""

    __tablename__ = "journal_entries"
    __table_args__ = (
        CheckConstraint("amount <> 0", name="amount_not_zero"),
        Index(None, "member_id", "transaction_id"),
        _transaction_key(),
        _key("account_id", "accounts.id"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    transaction_id: Mapped[int] = mapped_column(Id, index=True)
    program_id: Mapped[int] = mapped_column(Id)
    account_id: Mapped[int] = mapped_column(Id, index=True)
    member_id: Mapped[int | None] = mapped_column(Id)
    bucket: Mapped[str] = mapped_column(String(10))
    amount: Mapped[int] = mapped_column(BigInteger)


class Lot(Base):
    __tablename__ = "lots"
    __table_args__ = (
        CheckConstraint("amount > 0", name="amount_positive"),
        CheckConstraint("remaining >= 0 AND remaining <= amount", name="remaining_in_range"),
        Index(None, "account_id", "status", "expires_at"),
        partial_index(
            "ix_lots_due_release",
            "available_at",
            where="status = 'pending'",
        ),
        partial_index(
            "ix_lots_due_expiry",
            "expires_at",
            where="status = 'available'",
        ),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    program_id: Mapped[int] = mapped_column(Id, checked_key("programs.id"))
    member_id: Mapped[int] = mapped_column(Id, checked_key("members.id"))
    account_id: Mapped[int] = mapped_column(Id, checked_key("accounts.id"))
    transaction_id: Mapped[int] = mapped_column(
        Id, checked_key("journal_transactions.id"), index=True
    )
    amount: Mapped[int] = mapped_column(BigInteger)
    remaining: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(10))
    earned_at: Mapped[datetime] = mapped_column(UtcDateTime)
    available_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    expires_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


def _allocations_where(column: str, *, expired: bool) -> Index:
    """The index of the allocations on `column` whose `expired` is `expired`. The predicate
    is written as SQLAlchemy writes `LotAllocation.expired.is_(expired)` on each store
    (`IS true` / `IS 1`), so that both planners see that a query's condition is the
    index's and use it."""
    return Index(
        f"ix_lot_allocations_{column}",
        column,
        postgresql_where=text(f"expired IS {str(expired).lower()}"),
        sqlite_where=text(f"expired IS {int(expired)}"),
    )


class LotAllocation(Base):
    """A change of a lot's `remaining`. Its two keys (the lot; the transaction and its
    programme) are foreign keys on SQLite; on PostgreSQL one statement-level trigger checks
    them for all the rows a statement writes (migration 0006)."""

    __tablename__ = "lot_allocations"
    __table_args__ = (
        CheckConstraint("amount <> 0", name="amount_not_zero"),
        _transaction_key(),
        _key("lot_id", "lots.id"),
        # Each allocation is in one of the two indexes (migration 0010): a lot's
        # allocations are read only for what expired of it (`expired IS TRUE`), a
        # transaction's only for what it took or gave back (`expired IS FALSE`: expiry
        # and release are never reversed, and the points a reversal passes on to the
        # expired account are read by their lot).
        _allocations_where("lot_id", expired=True),
        _allocations_where("transaction_id", expired=False),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    program_id: Mapped[int] = mapped_column(Id)
    member_id: Mapped[int] = mapped_column(Id)
    transaction_id: Mapped[int] = mapped_column(Id)
    lot_id: Mapped[int] = mapped_column(Id)
    amount: Mapped[int] = mapped_column(BigInteger)
    expired: Mapped[bool] = mapped_column(Boolean, default=False)
    """True where the points left the lot because it expired (not spent, not held)."""


class Hold(Base):
    __tablename__ = "holds"
    __table_args__ = (
        UniqueConstraint("program_id", "reference"),
        CheckConstraint("amount > 0", name="amount_positive"),
        CheckConstraint("captured >= 0 AND captured <= amount", name="captured_in_range"),
        partial_index(
            "ix_holds_due",
            "expires_at",
            where="status = 'active'",
        ),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    program_id: Mapped[int] = mapped_column(Id, ForeignKey("programs.id"))
    member_id: Mapped[int] = mapped_column(Id, ForeignKey("members.id"), index=True)
    account_id: Mapped[int] = mapped_column(Id, ForeignKey("accounts.id"))
    amount: Mapped[int] = mapped_column(BigInteger)
    captured: Mapped[int] = mapped_column(BigInteger, default=0)
    status: Mapped[str] = mapped_column(String(10))
    reference: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime)
    closed_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    details: Mapped[dict[str, Any] | None] = mapped_column(Json)
