"""Holds: points set aside for an order being paid (authorise), then captured, voided or
closed when they lapse; a capture's refunds give points back to the lots they came from.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
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
)
from jifen.ledger.models import (
    Account,
    AccountKind,
    Bucket,
    Hold,
    HoldStatus,
    JournalTransaction,
    TxnKind,
)
from jifen.ledger.posting import (
    Book,
    Posting,
    check_points,
    ensure_writable,
    lock_account,
    open_hold_allocations,
    refuse_reversed,
    refuse_used_reference,
)


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
