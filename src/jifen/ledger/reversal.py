"""Reversal: a transaction undone by its mirror image, the lots it took restored and the
lots it credited taken back.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from jifen.core.errors import (
    InsufficientPoints,
    NotFound,
    NotReversible,
)
from jifen.ledger.holds import refunded
from jifen.ledger.models import (
    Account,
    AccountKind,
    Bucket,
    Hold,
    JournalEntry,
    JournalTransaction,
    Lot,
    LotAllocation,
    LotStatus,
    TxnKind,
)
from jifen.ledger.posting import (
    Book,
    Posting,
    clawed_back,
    lock_accounts,
    lots_by_id,
    open_hold_allocations,
    refuse_reversed,
)

REVERSIBLE = frozenset(
    {
        TxnKind.EARN,
        TxnKind.SPEND,
        TxnKind.CAPTURE,
        TxnKind.ADJUST,
        TxnKind.TRANSFER,
        TxnKind.GROWTH,
    }
)

CREDITS = frozenset({TxnKind.EARN, TxnKind.ADJUST, TxnKind.TRANSFER})
"""Kinds whose lots are credits to take back when reversed. A capture may create a lot too
(points it gave back through a cancelled lot come back as a new lot), but that lot is the
member's own points returning, which reversing the capture leaves alone."""


def reverse(
    session: Session,
    book: Book,
    transaction_id: int,
    *,
    now: datetime,
    actor: str,
    reason: str | None = None,
    allow_debt: bool | None = None,
    reference: str | None = None,
) -> JournalTransaction:
    """Undo a transaction with a new one.

    Points a debit took go back to exactly the lots they came from, each keeping its
    expiry (an expired lot passes them on to the expired account). Points a credit gave
    are taken back from the lot it created; what the member has already spent of it comes
    from their other lots, and what they cannot cover either refuses the reversal or,
    where the programme's debt policy allows it (`allow_debt`), leaves a negative balance
    that later earnings repay. An earn or growth credit that clawbacks have taken part of
    is not reversed: the clawbacks take the rest (`ledger/clawback.py`).
    """
    original = session.execute(
        select(JournalTransaction).where(
            JournalTransaction.id == transaction_id,
            JournalTransaction.program_id == book.program_id,
        )
    ).scalar_one_or_none()
    if original is None:
        raise NotFound(what="transaction", key=transaction_id)
    if original.kind not in REVERSIBLE:
        raise NotReversible(
            transaction_id=transaction_id,
            reason=f"a {original.kind} transaction is undone by its own operation, not reversed",
        )
    debt_ok = book.allow_negative if allow_debt is None else allow_debt
    entries = (
        session.execute(select(JournalEntry).where(JournalEntry.transaction_id == original.id))
        .scalars()
        .all()
    )
    member_ids = sorted({e.member_id for e in entries if e.member_id is not None})
    kind = AccountKind.GROWTH if original.kind == TxnKind.GROWTH else AccountKind.POINTS
    accounts = lock_accounts(session, book, member_ids, now, kind)
    by_id = {account.id: account for account in accounts.values()}
    _refuse_undone(session, original)

    posting = Posting(
        session,
        book,
        TxnKind.REVERSAL,
        now=now,
        actor=actor,
        member_id=original.member_id,
        points=original.points,
        reference=reference,
        reason=reason,
        reverses_id=original.id,
    )
    available_before = {account.id: account.available for account in by_id.values()}
    net: dict[int, int] = defaultdict(int)
    for entry in entries:
        if entry.account_id not in by_id or kind == AccountKind.GROWTH:
            # A member's account goes in as itself, so that finish() updates its cache.
            account = by_id.get(entry.account_id, entry.account_id)
            posting.move(account, Bucket(entry.bucket), -entry.amount)
        else:
            net[entry.account_id] += entry.amount
    # What each member lost in the original, all buckets together (a capture moves points
    # out of held and, for the uncaptured rest, back into available).
    debited = {account_id: -amount for account_id, amount in net.items() if amount < 0}
    if kind == AccountKind.POINTS:
        if original.kind in CREDITS:
            _take_back_credited_lots(posting, by_id, original.id)
        _restore_debited_lots(posting, by_id, original, debited)
    for account in by_id.values():
        delta = posting.entries.get((account.id, Bucket.AVAILABLE), 0)
        # only a reversal that takes available points can be refused for want of them
        takes = delta < 0 and account.available + delta < 0
        if takes and not (debt_ok and account.allow_negative):
            raise InsufficientPoints(needed=-delta, available=max(account.available, 0))
        posting.settle_debt(account, available_before[account.id], delta)
    return posting.finish("transaction.reversed", payload={"reverses_id": original.id})


def _refuse_undone(session: Session, original: JournalTransaction) -> None:
    """A transaction is reversed once, and not once clawbacks have taken part of it (they
    may take the rest). Checked under the member's lock, so a concurrent reversal or
    clawback has either committed or waits."""
    refuse_reversed(session, original)
    given_back = refunded(session, original) if original.kind == TxnKind.CAPTURE else 0
    if given_back:
        raise NotReversible(
            transaction_id=original.id,
            reason="refunded in full"
            if given_back >= original.points
            else "partly refunded; refund the rest instead",
        )
    clawed = clawed_back(session, original)
    if clawed:
        reason = (
            "clawed back in full"
            if clawed >= original.points
            else "partly clawed back; claw back the rest instead"
        )
        raise NotReversible(transaction_id=original.id, reason=reason)


def _take_back_credited_lots(posting: Posting, accounts: dict[int, Account], txn_id: int) -> None:
    """Take back each lot the original created: what is left of it, the part that expired
    from the expired account, and what the member spent of it from their other lots."""
    session = posting.session
    lots = (
        session.execute(
            select(Lot)
            .where(Lot.transaction_id == txn_id)
            .order_by(Lot.id)
            .execution_options(populate_existing=True)
        )
        .scalars()
        .all()
    )
    for lot in lots:
        account = accounts[lot.account_id]
        if lot.status == LotStatus.PENDING:
            posting.move(account, Bucket.PENDING, -lot.remaining)
            posting.allocate(lot, -lot.remaining)
            lot.status = LotStatus.CANCELLED
            continue
        expired = -sum(
            session.execute(
                select(LotAllocation.amount).where(
                    LotAllocation.lot_id == lot.id, LotAllocation.expired.is_(True)
                )
            ).scalars()
        )
        spent_elsewhere = lot.amount - lot.remaining - expired
        posting.move(account, Bucket.AVAILABLE, -(lot.amount - expired))
        if expired:
            posting.move(posting.program(AccountKind.EXPIRED), Bucket.AVAILABLE, -expired)
        posting.allocate(lot, -lot.remaining)
        if lot.status == LotStatus.AVAILABLE:
            lot.status = LotStatus.CANCELLED
        posting.consume(account, spent_elsewhere)


def _restore_debited_lots(
    posting: Posting,
    accounts: dict[int, Account],
    original: JournalTransaction,
    debited: dict[int, int],
) -> None:
    """Give each lot the original debited back what it took; a debit that ran into debt
    took more than its lots had, and that part comes back as a new lot."""
    session = posting.session
    if original.kind == TxnKind.CAPTURE:
        hold = session.get(Hold, original.hold_id)
        assert hold is not None
        taken = open_hold_allocations(session, hold)
    else:
        rows = session.execute(
            select(LotAllocation.lot_id, LotAllocation.amount)
            .where(
                LotAllocation.transaction_id == original.id,
                LotAllocation.amount < 0,
                LotAllocation.expired.is_(False),
            )
            .order_by(LotAllocation.id)
        ).all()
        net: dict[int, int] = defaultdict(int)
        for lot_id, amount in rows:
            net[lot_id] -= amount
        lots = lots_by_id(session, list(net))
        # Lots the original itself created (a credit repaying debt) are taken back whole.
        taken = [
            (lots[lot_id], amount)
            for lot_id, amount in net.items()
            if lots[lot_id].transaction_id != original.id
        ]
    restored: dict[int, int] = defaultdict(int)
    for lot, amount in taken:
        posting.restore(accounts[lot.account_id], lot, amount, None)
        restored[lot.account_id] += amount
    for account_id, amount in debited.items():
        uncovered = amount - restored[account_id]
        if uncovered > 0:
            account = accounts[account_id]
            posting.new_lot(account, uncovered)
            posting.move(account, Bucket.AVAILABLE, uncovered)
