"""Ledger operations: credit, debit, holds, reversal, adjustment, transfer, growth value.

The one door other packages use (`from jifen.ledger import service as ledger`). Holds
(`jifen.ledger.holds`) and reversal (`jifen.ledger.reversal`) live in modules of their
own and are re-exported here.

The laws this module keeps (and `tests/ledger` checks after every random step):
1. Every change of points is a journal transaction whose entries sum to zero; nothing in
   the journal is updated or deleted (on PostgreSQL a deferred trigger refuses an
   unbalanced transaction, and triggers on both stores refuse updates and deletes).
2. Points are positive integers; the cached balances of a member account change only
   through entries, under that account's row lock.
3. Debits consume available, unexpired lots earliest-expiry first; pending and expired
   lots are never spent; `max(available, 0)` equals what the available lots have left.
4. A reversal restores exactly the lots its transaction took, each with its original
   expiry, and a lot whose expiry passed in the meantime returns its points expired.
5. Each operation is one transaction's worth of work on the caller's session; only the
   caller commits.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from jifen.core.errors import (
    InsufficientPoints,
    InvalidInput,
    TransfersDisabled,
)
from jifen.ledger.holds import (
    authorise_hold,
    capture_hold,
    close_hold,
    refund_capture,
    refunded,
    void_hold,
)
from jifen.ledger.models import (
    MEMBER_KINDS,
    PROGRAM_KINDS,
    Account,
    AccountKind,
    Bucket,
    JournalTransaction,
    TxnKind,
)
from jifen.ledger.posting import (
    Book,
    Posting,
    check_points,
    ensure_writable,
    lock_account,
    lock_accounts,
    locked,
    lots_by_id,
)
from jifen.ledger.reversal import CREDITS, REVERSIBLE, reverse

__all__ = [
    "CREDITS",
    "REVERSIBLE",
    "adjust",
    "authorise_hold",
    "capture_hold",
    "close_hold",
    "credit",
    "credit_growth",
    "debit",
    "open_member_accounts",
    "open_program_accounts",
    "program_account_ids",
    "refund_capture",
    "refunded",
    "reverse",
    "set_account_status",
    "set_debt_policy",
    "transfer",
    "void_hold",
]


def open_member_accounts(
    session: Session,
    program_id: int,
    member_id: int,
    opened_at: datetime,
    *,
    allow_negative: bool,
) -> None:
    """Open a new member's points and growth-value accounts."""
    for kind in (AccountKind.POINTS, AccountKind.GROWTH):
        session.add(
            Account(
                program_id=program_id,
                member_id=member_id,
                kind=kind,
                available=0,
                pending=0,
                held=0,
                lifetime_earned=0,
                allow_negative=allow_negative and kind == AccountKind.POINTS,
                opened_at=opened_at,
            )
        )


def credit(
    session: Session,
    book: Book,
    member_id: int,
    points: int,
    *,
    now: datetime,
    actor: str,
    kind: TxnKind = TxnKind.EARN,
    source: AccountKind = AccountKind.ISSUED,
    pending: bool = False,
    earned_at: datetime | None = None,
    reference: str | None = None,
    reason: str | None = None,
    details: dict[str, Any] | None = None,
    account: Account | None = None,
    outbox: list[dict[str, Any]] | None = None,
) -> JournalTransaction:
    """Credit a member: a new lot, pending for the programme's return window if asked.
    `account`: the member's points account, if the caller locked it (`lock_member`);
    `outbox`: where to leave the event, for the caller to write (else written now)."""
    check_points(points)
    account = locked(session, book, member_id, now, AccountKind.POINTS, account)
    ensure_writable(account)
    earned = earned_at or now
    posting = Posting(
        session,
        book,
        kind,
        now=now,
        actor=actor,
        member_id=member_id,
        points=points,
        reference=reference,
        reason=reason,
        details=details,
    )
    posting.move(posting.program(source), Bucket.AVAILABLE, -points)
    release_at = book.release_at(earned) if pending else None
    if release_at is not None and release_at > now:
        posting.new_lot(account, points, pending_until=release_at, earned_at=earned)
        posting.move(account, Bucket.PENDING, points)
    else:
        available_before = account.available
        posting.new_lot(account, points, earned_at=earned)
        posting.move(account, Bucket.AVAILABLE, points)
        posting.settle_debt(account, available_before, points)
    posting.touch(account)
    return posting.finish("points.credited", payload={"points": points}, outbox=outbox)


def debit(
    session: Session,
    book: Book,
    member_id: int,
    points: int,
    *,
    now: datetime,
    actor: str,
    kind: TxnKind = TxnKind.SPEND,
    sink: AccountKind = AccountKind.REDEEMED,
    reference: str | None = None,
    reason: str | None = None,
    details: dict[str, Any] | None = None,
) -> JournalTransaction:
    """Spend a member's available points, earliest-expiring lots first."""
    check_points(points)
    account = lock_account(session, book, member_id, now)
    ensure_writable(account)
    if account.available < points:
        raise InsufficientPoints(needed=points, available=max(account.available, 0))
    posting = Posting(
        session,
        book,
        kind,
        now=now,
        actor=actor,
        member_id=member_id,
        points=points,
        reference=reference,
        reason=reason,
        details=details,
    )
    posting.consume(account, points)
    posting.move(account, Bucket.AVAILABLE, -points)
    posting.move(posting.program(sink), Bucket.AVAILABLE, points)
    posting.touch(account)
    return posting.finish("points.debited", payload={"points": points})


def adjust(
    session: Session,
    book: Book,
    member_id: int,
    delta: int,
    *,
    reason: str,
    now: datetime,
    actor: str,
    reference: str | None = None,
) -> JournalTransaction:
    """A manual correction by staff, with a reason: positive credits, negative debits."""
    if not reason or not reason.strip():
        raise InvalidInput(field="reason", reason="an adjustment needs a reason")
    if isinstance(delta, bool) or not isinstance(delta, int) or delta == 0:
        raise InvalidInput(field="points", reason="must be a non-zero whole number of points")
    common: dict[str, Any] = {
        "now": now,
        "actor": actor,
        "kind": TxnKind.ADJUST,
        "reference": reference,
        "reason": reason.strip(),
    }
    if delta > 0:
        return credit(session, book, member_id, delta, source=AccountKind.ADJUSTMENT, **common)
    return debit(session, book, member_id, -delta, sink=AccountKind.ADJUSTMENT, **common)


def credit_growth(
    session: Session,
    book: Book,
    member_id: int,
    points: int,
    *,
    now: datetime,
    actor: str,
    reference: str | None = None,
    reason: str | None = None,
    details: dict[str, Any] | None = None,
    account: Account | None = None,
    outbox: list[dict[str, Any]] | None = None,
) -> JournalTransaction:
    """Growth value (成长值): its own account, never spent, only ever reversed.
    `account` and `outbox`: as for `credit`."""
    check_points(points)
    account = locked(session, book, member_id, now, AccountKind.GROWTH, account)
    ensure_writable(account)
    posting = Posting(
        session,
        book,
        TxnKind.GROWTH,
        now=now,
        actor=actor,
        member_id=member_id,
        points=points,
        reference=reference,
        reason=reason,
        details=details,
    )
    posting.move(posting.program(AccountKind.GROWTH_ISSUED), Bucket.AVAILABLE, -points)
    posting.move(account, Bucket.AVAILABLE, points)
    return posting.finish("growth.credited", payload={"points": points}, outbox=outbox)


def transfer(
    session: Session,
    book: Book,
    from_member_id: int,
    to_member_id: int,
    points: int,
    *,
    now: datetime,
    actor: str,
    reference: str | None = None,
    reason: str | None = None,
) -> JournalTransaction:
    """Gift points to another member. The receiver's lots keep the sender's expiry dates,
    so a transfer can never be used to extend the life of points."""
    if not book.allow_transfers:
        raise TransfersDisabled()
    check_points(points)
    if from_member_id == to_member_id:
        raise InvalidInput(field="to_member_id", reason="a member cannot transfer to themselves")
    accounts = lock_accounts(session, book, [from_member_id, to_member_id], now, AccountKind.POINTS)
    sender, receiver = accounts[from_member_id], accounts[to_member_id]
    ensure_writable(sender)
    ensure_writable(receiver)
    if sender.available < points:
        raise InsufficientPoints(needed=points, available=max(sender.available, 0))
    posting = Posting(
        session,
        book,
        TxnKind.TRANSFER,
        now=now,
        actor=actor,
        member_id=from_member_id,
        points=points,
        reference=reference,
        reason=reason,
        details={"to_member_id": to_member_id},
    )
    first_allocation = len(posting.allocations)
    posting.consume(sender, points)
    by_expiry: dict[datetime | None, int] = defaultdict(int)
    lots = lots_by_id(session, [a["lot_id"] for a in posting.allocations[first_allocation:]])
    for allocation in posting.allocations[first_allocation:]:
        by_expiry[lots[allocation["lot_id"]].expires_at] += -allocation["amount"]
    posting.move(sender, Bucket.AVAILABLE, -points)
    available_before = receiver.available
    for expiry, amount in sorted(by_expiry.items(), key=lambda item: (item[0] is None, item[0])):
        posting.new_lot(receiver, amount, expires=expiry)
    posting.move(receiver, Bucket.AVAILABLE, points)
    posting.settle_debt(receiver, available_before, points)
    posting.touch(sender)
    posting.touch(receiver)
    return posting.finish(
        "points.transferred", payload={"points": points, "to_member_id": to_member_id}
    )


def open_program_accounts(session: Session, program_id: int, opened_at: datetime) -> None:
    """Open a new programme's own accounts (issued, redeemed, expired, …)."""
    for kind in PROGRAM_KINDS:
        session.add(
            Account(
                program_id=program_id,
                member_id=None,
                kind=kind,
                available=0,
                pending=0,
                held=0,
                lifetime_earned=0,
                allow_negative=True,
                opened_at=opened_at,
            )
        )


def program_account_ids(session: Session, program_id: int) -> dict[AccountKind, int]:
    rows = session.execute(
        select(Account.kind, Account.id).where(
            Account.program_id == program_id, Account.member_id.is_(None)
        )
    )
    return {AccountKind(kind): account_id for kind, account_id in rows}


def set_account_status(
    session: Session, book: Book, member_id: int, status: str, now: datetime
) -> None:
    """Mirror a member's status onto their accounts, under the accounts' locks, so that a
    freeze and a concurrent spend can never both win."""
    for kind in MEMBER_KINDS:
        lock_account(session, book, member_id, now, kind).status = status
    session.flush()


def set_debt_policy(session: Session, program_id: int, allow_negative: bool) -> None:
    session.execute(
        update(Account)
        .where(
            Account.program_id == program_id,
            Account.kind == AccountKind.POINTS,
            Account.member_id.is_not(None),
        )
        .values(allow_negative=allow_negative)
        .execution_options(synchronize_session=False)
    )
