"""Ledger operations: credit, debit, holds, reversal, adjustment, transfer, growth value.

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
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from jifen.core.errors import (
    CaptureExceedsHold,
    DuplicateReference,
    HoldExpired,
    HoldNotActive,
    InsufficientPoints,
    InvalidInput,
    NotFound,
    NotReversible,
    TransfersDisabled,
)
from jifen.ledger.models import (
    MEMBER_KINDS,
    PROGRAM_KINDS,
    Account,
    AccountKind,
    Bucket,
    Hold,
    HoldStatus,
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
    check_points,
    clawed_back,
    ensure_writable,
    lock_account,
    lock_accounts,
    locked,
    open_hold_allocations,
    refuse_reversed,
    refuse_used_reference,
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
    lots = _lots_by_id(session, [a["lot_id"] for a in posting.allocations[first_allocation:]])
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


# -- holds ---------------------------------------------------------------------------------


def authorise_hold(
    session: Session,
    book: Book,
    member_id: int,
    points: int,
    *,
    now: datetime,
    actor: str,
    expires_at: datetime | None = None,
    reference: str | None = None,
    details: dict[str, Any] | None = None,
) -> Hold:
    """Set points aside for a checkout until captured, voided, or the deadline passes."""
    check_points(points)
    deadline = expires_at or now + timedelta(minutes=book.hold_minutes)
    if deadline <= now:
        raise InvalidInput(field="expires_at", reason="the hold's deadline must be in the future")
    account = lock_account(session, book, member_id, now)
    ensure_writable(account)
    if reference is not None:
        refuse_used_reference(session, book, reference)
    if account.available < points:
        raise InsufficientPoints(needed=points, available=max(account.available, 0))
    hold = Hold(
        program_id=book.program_id,
        member_id=member_id,
        account_id=account.id,
        amount=points,
        captured=0,
        status=HoldStatus.ACTIVE,
        reference=reference,
        created_at=now,
        expires_at=deadline,
        details=details,
    )
    try:
        with session.begin_nested():
            session.add(hold)
            session.flush()
    except IntegrityError as exc:  # a concurrent hold took the reference first
        raise DuplicateReference(reference=reference, transaction_id="?") from exc
    posting = Posting(
        session,
        book,
        TxnKind.HOLD,
        now=now,
        actor=actor,
        member_id=member_id,
        points=points,
        reference=reference,
        hold_id=hold.id,
    )
    posting.consume(account, points)
    posting.move(account, Bucket.AVAILABLE, -points)
    posting.move(account, Bucket.HELD, points)
    if account.next_due_at is None or deadline < account.next_due_at:
        account.next_due_at = deadline
    posting.finish("points.held", payload={"points": points, "hold_id": hold.id})
    return hold


def _locked_hold(
    session: Session, book: Book, hold_id: int, now: datetime, action: str
) -> tuple[Hold, Account]:
    hold = session.execute(
        select(Hold).where(Hold.id == hold_id, Hold.program_id == book.program_id)
    ).scalar_one_or_none()
    if hold is None:
        raise NotFound(what="hold", key=hold_id)
    account = lock_account(session, book, hold.member_id, now)  # may lapse the hold
    session.refresh(hold)
    if hold.status == HoldStatus.LAPSED:
        raise HoldExpired(hold_id=hold.id, expires_at=hold.expires_at.isoformat())
    if hold.status != HoldStatus.ACTIVE:
        raise HoldNotActive(hold_id=hold.id, status=hold.status, action=action)
    return hold, account


def capture_hold(
    session: Session,
    book: Book,
    hold_id: int,
    *,
    now: datetime,
    actor: str,
    points: int | None = None,
    reference: str | None = None,
    details: dict[str, Any] | None = None,
) -> JournalTransaction:
    """Spend all or part of a hold; what is not captured goes back to its lots."""
    hold, account = _locked_hold(session, book, hold_id, now, "captured")
    ensure_writable(account)  # a capture is a spend: not for a frozen or closed member
    amount = hold.amount if points is None else check_points(points)
    if amount > hold.amount:
        raise CaptureExceedsHold(amount=amount, held=hold.amount)
    posting = Posting(
        session,
        book,
        TxnKind.CAPTURE,
        now=now,
        actor=actor,
        member_id=hold.member_id,
        points=amount,
        reference=reference,
        hold_id=hold.id,
        details=details,
    )
    posting.move(account, Bucket.HELD, -amount)
    posting.move(posting.program(AccountKind.REDEEMED), Bucket.AVAILABLE, amount)
    _give_back(posting, account, hold, hold.amount - amount)
    hold.captured = amount
    hold.status = HoldStatus.CAPTURED
    hold.closed_at = now
    posting.touch(account)
    return posting.finish("points.debited", payload={"points": amount, "hold_id": hold.id})


def void_hold(
    session: Session, book: Book, hold_id: int, *, now: datetime, actor: str
) -> JournalTransaction:
    hold, account = _locked_hold(session, book, hold_id, now, "voided")
    return close_hold(session, book, hold, account, now=now, actor=actor, status=HoldStatus.VOIDED)


def close_hold(
    session: Session,
    book: Book,
    hold: Hold,
    account: Account,
    *,
    now: datetime,
    actor: str,
    status: HoldStatus,
) -> JournalTransaction:
    """Void or lapse a hold (the account is locked by the caller): all points go back."""
    kind = TxnKind.VOID if status == HoldStatus.VOIDED else TxnKind.LAPSE
    posting = Posting(
        session,
        book,
        kind,
        now=now,
        actor=actor,
        member_id=hold.member_id,
        points=hold.amount,
        hold_id=hold.id,
    )
    _give_back(posting, account, hold, hold.amount)
    hold.status = status
    hold.closed_at = now
    return posting.finish(f"hold.{status}", payload={"points": hold.amount, "hold_id": hold.id})


def _give_back(posting: Posting, account: Account, hold: Hold, amount: int) -> None:
    """Return `amount` held points to the lots they came from, latest-expiring first (so
    what a partial capture spends is the earliest-expiring part)."""
    available_before = account.available
    left = amount
    for lot, held in reversed(open_hold_allocations(posting.session, hold)):
        if left == 0:
            break
        back = min(held, left)
        posting.restore(account, lot, back, Bucket.HELD)
        left -= back
    assert left == 0, f"hold {hold.id} lost track of {left} points"
    posting.settle_debt(account, available_before, amount)


def refund_capture(
    session: Session,
    book: Book,
    transaction_id: int,
    points: int,
    *,
    now: datetime,
    actor: str,
    reason: str | None = None,
    reference: str | None = None,
    details: dict[str, Any] | None = None,
) -> JournalTransaction:
    """Give back `points` of a capture, as often as needed (a return of goods paid partly
    with points gives back the points share of what came back).

    The points return to the lots the hold took them from, latest-expiring first (so
    what stays spent is the earliest-expiring part, as a partial capture leaves it), each
    keeping its expiry; a lot whose expiry passed meanwhile passes them on to the expired
    account. Together the refunds of a capture never give back more than it captured
    (what is left is what the hold's lots still miss), and a refunded capture is no
    longer reversed: refund the rest instead. Frozen and closed members get refunds too,
    as they get reversals."""
    check_points(points)
    original = session.execute(
        select(JournalTransaction).where(
            JournalTransaction.id == transaction_id,
            JournalTransaction.program_id == book.program_id,
        )
    ).scalar_one_or_none()
    if original is None:
        raise NotFound(what="transaction", key=transaction_id)
    if original.kind != TxnKind.CAPTURE or original.member_id is None:
        raise NotReversible(
            transaction_id=transaction_id, reason=f"a {original.kind} is not a capture to refund"
        )
    account = lock_account(session, book, original.member_id, now)
    refuse_reversed(session, original)
    hold = session.get(Hold, original.hold_id)
    assert hold is not None
    taken = open_hold_allocations(session, hold)
    left = sum(amount for _, amount in taken)
    if points > left:
        raise InvalidInput(
            field="points", reason=f"only {left} points of capture {original.id} are left to refund"
        )
    posting = Posting(
        session,
        book,
        TxnKind.REFUND,
        now=now,
        actor=actor,
        member_id=original.member_id,
        points=points,
        reference=reference,
        reason=reason,
        details=details,
        hold_id=hold.id,
    )
    posting.move(posting.program(AccountKind.REDEEMED), Bucket.AVAILABLE, -points)
    available_before = account.available
    owed = points
    for lot, held in reversed(taken):
        if owed == 0:
            break
        back = min(held, owed)
        posting.restore(account, lot, back, None)
        owed -= back
    posting.settle_debt(
        account, available_before, posting.entries.get((account.id, Bucket.AVAILABLE), 0)
    )
    return posting.finish("points.refunded", payload={"points": points, "capture_id": original.id})


def refunded(session: Session, capture: JournalTransaction) -> int:
    """Points the refunds of a capture have given back so far."""
    return int(
        session.execute(
            select(func.coalesce(func.sum(JournalTransaction.points), 0)).where(
                JournalTransaction.kind == TxnKind.REFUND,
                JournalTransaction.hold_id == capture.hold_id,
            )
        ).scalar_one()
    )


# -- reversal ------------------------------------------------------------------------------


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
        lots = _lots_by_id(session, list(net))
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


def _lots_by_id(session: Session, lot_ids: list[int]) -> dict[int, Lot]:
    if not lot_ids:
        return {}
    return {
        lot.id: lot
        for lot in session.execute(
            select(Lot).where(Lot.id.in_(lot_ids)).execution_options(populate_existing=True)
        ).scalars()
    }


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
