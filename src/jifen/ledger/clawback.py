"""Clawbacks: taking back part of an earn's award, as often as needed (purchase returns).

`reverse` undoes a whole transaction, once. A clawback takes back `points` of one earn's
(or growth credit's) award now, and more clawbacks may follow, as long as together they
never claim more than the transaction awarded. Once they have claimed all of it, the
member's balances and lots are what a reversal would have left.

Where the points come from, in this order:
1. the earn's lot while it is still pending: what is left of it shrinks (a lot left empty
   is cancelled), and its release later gives the member only the rest;
2. what is left of the lot once available;
3. the part of the lot that expired: those points already went to the programme's expired
   account, and come back from there to issued (it costs the member nothing);
4. the part the member spent (or holds, or gave away): from their other available lots,
   earliest expiry first; what those cannot cover either runs into debt
   (`Shortfall.DEBT`, where the account allows it) or is let go (`Shortfall.FORGIVE`).

Records. A clawback is a journal transaction of kind `clawback` with `clawback_of_id` set
to the earn; its `points` is the part of the award it settles, taken and let go together
(so the sum over an earn's clawbacks is what is no longer claimable), and its details
hold `{"not_taken": n}`, the part let go. The issued account gets back what was taken, so
`lifetime_earned` drops by that (not by what was let go: the member kept it). Earlier
clawbacks are accounted for from the journal, never from a cache: the lot's `remaining`
is current, and what step 3 has already recovered is what the earn's clawbacks took from
the expired account. Whatever the earlier clawbacks left, the claim is met in the order
above, so no point is taken twice.

Points given back later to the lot (a spend of it undone) go back to that lot while the
award is not fully clawed back; once it is and the lot is cancelled, they refund what the
clawbacks charged the member's other lots, as after a reversal.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from jifen.core.errors import InsufficientPoints, InvalidInput, NotFound, NotReversible
from jifen.ledger.models import (
    AccountKind,
    Bucket,
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
    lock_account,
    refuse_reversed,
)

CANCELLABLE = (LotStatus.PENDING, LotStatus.AVAILABLE)


class Shortfall(StrEnum):
    """What to do with points of the award the member has already spent."""

    DEBT = "debt"
    """Take them anyway: available may go negative (only where the account allows debt;
    otherwise the clawback is refused with `InsufficientPoints`)."""
    FORGIVE = "forgive"
    """Take only what the member has; the rest is let go and reported as not taken."""


@dataclass(frozen=True)
class Clawback:
    transaction_id: int
    """The clawback's journal transaction. There always is one: even when nothing could be
    taken, it records the points let go, so that no later clawback claims them again."""
    taken: int
    """Points removed from the member (pending and available, into debt included) or, for
    the part of the award that had expired, from the programme's expired account."""
    not_taken: int
    """Points of the claim let go (`Shortfall.FORGIVE` only; always 0 with `DEBT`)."""


def claw_back(
    session: Session,
    book: Book,
    transaction_id: int,
    points: int,
    *,
    shortfall: Shortfall,
    now: datetime,
    actor: str,
    reference: str | None = None,
    reason: str | None = None,
    details: dict[str, Any] | None = None,
) -> Clawback:
    """Take back `points` of the award of earn `transaction_id` (see the module's order).

    Frozen and closed members are clawed back from too, as they are reversed."""
    check_points(points)
    try:
        shortfall = Shortfall(shortfall)
    except ValueError:
        raise InvalidInput(field="shortfall", reason="must be 'debt' or 'forgive'") from None
    original = _original(session, book, transaction_id, TxnKind.EARN)
    assert original.member_id is not None
    account = lock_account(session, book, original.member_id, now)
    left = _claimable(session, original, points)
    lot = session.execute(
        select(Lot)
        .where(Lot.transaction_id == original.id)
        .execution_options(populate_existing=True)
    ).scalar_one()

    # Split the claim by source before writing anything: the transaction row, written
    # first, must already say what is let go (the journal is append-only).
    if lot.status == LotStatus.PENDING:
        # Nothing but clawbacks touches a pending lot, so what is left of it is the
        # unclaimed award: all of this claim.
        assert lot.remaining >= points, f"pending lot {lot.id} lost track of its clawbacks"
        from_lot, from_expired, from_spent = points, 0, 0
    else:
        from_lot = min(points, lot.remaining)
        from_expired = min(points - from_lot, _expired_unclaimed(session, book, original, lot))
        from_spent = points - from_lot - from_expired
    # The member's other lots hold what is left of available beyond this lot (laws: every
    # available lot is spendable once the account is up to date, and they sum to
    # max(available, 0)); `from_spent` is non-zero only once this lot is empty.
    chargeable = min(from_spent, max(account.available - from_lot, 0))
    not_taken = from_spent - chargeable if shortfall == Shortfall.FORGIVE else 0
    from_available = 0 if lot.status == LotStatus.PENDING else from_lot + from_spent - not_taken
    if from_available and account.available - from_available < 0 and not account.allow_negative:
        raise InsufficientPoints(needed=from_available, available=max(account.available, 0))
    taken = points - not_taken

    posting = Posting(
        session,
        book,
        TxnKind.CLAWBACK,
        now=now,
        actor=actor,
        member_id=original.member_id,
        points=points,
        reference=reference,
        reason=reason,
        details={**(details or {}), "not_taken": not_taken},
        clawback_of_id=original.id,
    )
    if lot.status == LotStatus.PENDING:
        posting.move(account, Bucket.PENDING, -from_lot)
    else:
        # Moved even when 0: finish() then finds the member's account for lifetime_earned.
        posting.move(account, Bucket.AVAILABLE, -from_available)
    posting.allocate(lot, -from_lot)
    if from_expired:
        posting.move(posting.program(AccountKind.EXPIRED), Bucket.AVAILABLE, -from_expired)
    charged = posting.consume(account, chargeable)
    assert charged == chargeable, f"clawback {posting.id}: {chargeable} chargeable, {charged} found"
    if taken:
        posting.move(posting.program(AccountKind.ISSUED), Bucket.AVAILABLE, taken)
    if points == left and lot.remaining == 0 and lot.status in CANCELLABLE:
        # As a reversal leaves it (an expired lot stays expired): points given back to it
        # later refund what the clawbacks charged.
        lot.status = LotStatus.CANCELLED
    posting.finish(
        "points.clawed_back",
        payload={
            "points": points,
            "taken": taken,
            "not_taken": not_taken,
            "clawback_of_id": original.id,
        },
    )
    return Clawback(transaction_id=posting.id, taken=taken, not_taken=not_taken)


def claw_back_growth(
    session: Session,
    book: Book,
    transaction_id: int,
    points: int,
    *,
    now: datetime,
    actor: str,
    reference: str | None = None,
    reason: str | None = None,
    details: dict[str, Any] | None = None,
) -> int:
    """Take back `points` of growth credit `transaction_id`; returns the clawback's id.

    Growth value is never spent, so the growth account always has the points to give."""
    check_points(points)
    original = _original(session, book, transaction_id, TxnKind.GROWTH)
    assert original.member_id is not None
    account = lock_account(session, book, original.member_id, now, AccountKind.GROWTH)
    _claimable(session, original, points)
    posting = Posting(
        session,
        book,
        TxnKind.CLAWBACK,
        now=now,
        actor=actor,
        member_id=original.member_id,
        points=points,
        reference=reference,
        reason=reason,
        details=details,
        clawback_of_id=original.id,
    )
    posting.move(account, Bucket.AVAILABLE, -points)
    posting.move(posting.program(AccountKind.GROWTH_ISSUED), Bucket.AVAILABLE, points)
    posting.finish("growth.clawed_back", payload={"points": points, "clawback_of_id": original.id})
    return posting.id


def _original(
    session: Session, book: Book, transaction_id: int, kind: TxnKind
) -> JournalTransaction:
    original = session.execute(
        select(JournalTransaction).where(
            JournalTransaction.id == transaction_id,
            JournalTransaction.program_id == book.program_id,
        )
    ).scalar_one_or_none()
    if original is None:
        raise NotFound(what="transaction", key=transaction_id)
    if original.kind != kind:
        raise NotReversible(
            transaction_id=transaction_id,
            reason=f"a {original.kind} transaction cannot be clawed back as a {kind}",
        )
    return original


def _claimable(session: Session, original: JournalTransaction, points: int) -> int:
    """What is left of the award to claw back (refusing a claim beyond it); under the
    member's lock, so concurrent clawbacks of one earn are counted one after the other."""
    refuse_reversed(session, original)
    left = original.points - clawed_back(session, original)
    if points > left:
        raise InvalidInput(
            field="points",
            reason=f"only {left} of the {original.points} points of transaction "
            f"{original.id} are left to claw back",
        )
    return left


def _expired_unclaimed(session: Session, book: Book, original: JournalTransaction, lot: Lot) -> int:
    """Points of the lot that expired and no clawback has yet taken back from the expired
    account. (Only a cancelled lot has pass-through allocations marked expired, and a
    cancelled lot has nothing left to claw back.)"""
    expired = -session.execute(
        select(func.coalesce(func.sum(LotAllocation.amount), 0)).where(
            LotAllocation.lot_id == lot.id, LotAllocation.expired.is_(True)
        )
    ).scalar_one()
    recovered = -session.execute(
        select(func.coalesce(func.sum(JournalEntry.amount), 0))
        .join(JournalTransaction, JournalTransaction.id == JournalEntry.transaction_id)
        .where(
            JournalTransaction.kind == TxnKind.CLAWBACK,
            JournalTransaction.clawback_of_id == original.id,
            JournalEntry.account_id == book.accounts[AccountKind.EXPIRED],
        )
    ).scalar_one()
    return int(expired) - int(recovered)
