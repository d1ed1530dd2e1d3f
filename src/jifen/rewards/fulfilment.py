"""After a redemption: cancelling it, and shipping and delivering goods (PRODUCT.md R2, R5).

A cancellation reverses the spend (`ledger.service.reverse`: the points go back to the
very lots they came from, each with its original expiry; a lot that has expired
meanwhile returns them expired), gives the units back to the stock, cancels the
redemption's unused coupons (refused if one was used), and is idempotent: cancelling a
cancelled redemption returns it unchanged.

Goods move pending → shipped → delivered; any other step is refused
(`RedemptionState`). Every step locks the member's points account first and then the
redemption, the order `jifen.rewards.redemptions` uses, so steps and redemptions cannot
deadlock each other.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from jifen.core.errors import Forbidden, InvalidInput, NotFound
from jifen.db.outbox import emit
from jifen.ledger import service as ledger
from jifen.ledger.posting import Book, lock_account
from jifen.programs.models import Program
from jifen.programs.rewards import RewardKind
from jifen.rewards import catalog, codes, reads, redemptions
from jifen.rewards.errors import (
    CancelRefused,
    RedemptionState,
)
from jifen.rewards.models import (
    Coupon,
    CouponStatus,
    Redemption,
    RedemptionStatus,
    Reward,
)


def _locked(session: Session, program_id: int, redemption_id: int) -> Redemption:
    redemption = session.execute(
        select(Redemption)
        .where(Redemption.id == redemption_id, Redemption.program_id == program_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).scalar_one_or_none()
    if redemption is None:
        raise NotFound(what="redemption", key=redemption_id)
    return redemption


def cancel(
    session: Session,
    program: Program,
    book: Book,
    redemption_id: int,
    *,
    reason: str,
    now: datetime,
    actor: str,
    pending_goods_only: bool = False,
) -> Redemption:
    """Undo a redemption: points back to their original lots, stock back, coupons
    cancelled. Goods only while pending, an experience only before it starts, coupons
    only while none is used. `pending_goods_only` (a member's app): nothing but goods
    not yet shipped. Cancelling again returns the cancelled redemption unchanged."""
    if not reason or not reason.strip():
        raise InvalidInput(field="reason", reason="a cancellation needs a reason")
    found = reads.get(session, program.id, redemption_id)
    lock_account(session, book, found.member_id, now)  # the member first, as everywhere
    redemption = _locked(session, program.id, redemption_id)
    if redemption.status == RedemptionStatus.CANCELLED:
        return redemption
    if pending_goods_only and redemption.status != RedemptionStatus.PENDING:
        raise Forbidden(scope="app", needed="admin")
    if redemption.status in (RedemptionStatus.SHIPPED, RedemptionStatus.DELIVERED):
        raise RedemptionState(redemption_id=redemption.id, state=redemption.status, action="cancel")
    reward = session.get(Reward, redemption.reward_id)
    assert reward is not None
    started = catalog.started_at(reward, now)  # only experiences start
    if started is not None:
        raise CancelRefused(
            redemption_id=redemption.id, reason="started", starts_at=started.isoformat()
        )
    if redemption.kind == RewardKind.COUPON:
        _cancel_coupons(session, redemption, reason=reason.strip(), now=now, actor=actor)
    if redemption.spend_txn_id is not None:
        redemption.cancel_txn_id = ledger.reverse(
            session,
            book,
            redemption.spend_txn_id,
            now=now,
            actor=actor,
            reason=reason.strip(),
            reference=f"redemption-cancel:{redemption.id}",
        ).id
    catalog.give_back_stock(session, reward.id, redemption.quantity)
    redemption.status = RedemptionStatus.CANCELLED
    redemption.fulfilment = (redemption.fulfilment or {}) | {
        "cancelled_at": now.isoformat(),
        "cancel_reason": reason.strip(),
    }
    redemption.updated_at = now
    emit(
        session,
        program_id=program.id,
        member_id=redemption.member_id,
        type="reward.cancelled",
        payload=redemptions.event_payload(redemption) | {"reason": reason.strip()},
        at=now,
    )
    session.flush()
    return redemption


def _cancel_coupons(
    session: Session, redemption: Redemption, *, reason: str, now: datetime, actor: str
) -> None:
    """Cancel the unused coupons in one UPDATE (each row locked against a concurrent use),
    then refuse if any was used: the refusal rolls the UPDATE back."""
    session.execute(
        update(Coupon)
        .where(Coupon.redemption_id == redemption.id, Coupon.status == CouponStatus.ISSUED)
        .values(status=CouponStatus.CANCELLED, closed_at=now, cancel_reason=reason, actor=actor)
        .execution_options(synchronize_session=False)
    )
    for held in list(session.identity_map.values()):  # what this session holds is stale now
        if isinstance(held, Coupon) and held.redemption_id == redemption.id:
            session.expire(held)
    used = session.execute(
        select(Coupon.code)
        .where(Coupon.redemption_id == redemption.id, Coupon.status == CouponStatus.USED)
        .order_by(Coupon.id)
        .limit(1)
    ).scalar_one_or_none()
    if used is not None:
        raise CancelRefused(
            redemption_id=redemption.id, reason="coupon-used", coupon=codes.display(used)
        )


def ship(
    session: Session,
    program_id: int,
    redemption_id: int,
    *,
    carrier: str,
    tracking: str,
    now: datetime,
    actor: str,
) -> Redemption:
    """Goods pending → shipped, with the carrier and tracking number."""
    redemption = _locked(session, program_id, redemption_id)
    if redemption.status != RedemptionStatus.PENDING:
        raise RedemptionState(redemption_id=redemption.id, state=redemption.status, action="ship")
    redemption.status = RedemptionStatus.SHIPPED
    redemption.fulfilment = (redemption.fulfilment or {}) | {
        "carrier": carrier,
        "tracking": tracking,
        "shipped_at": now.isoformat(),
        "shipped_by": actor,
    }
    redemption.updated_at = now
    emit(
        session,
        program_id=program_id,
        member_id=redemption.member_id,
        type="reward.shipped",
        payload=redemptions.event_payload(redemption) | {"carrier": carrier, "tracking": tracking},
        at=now,
    )
    session.flush()
    return redemption


def deliver(
    session: Session, program_id: int, redemption_id: int, *, now: datetime, actor: str
) -> Redemption:
    """Goods shipped → delivered."""
    redemption = _locked(session, program_id, redemption_id)
    if redemption.status != RedemptionStatus.SHIPPED:
        raise RedemptionState(
            redemption_id=redemption.id, state=redemption.status, action="deliver"
        )
    redemption.status = RedemptionStatus.DELIVERED
    redemption.fulfilment = (redemption.fulfilment or {}) | {
        "delivered_at": now.isoformat(),
        "delivered_by": actor,
    }
    redemption.updated_at = now
    emit(
        session,
        program_id=program_id,
        member_id=redemption.member_id,
        type="reward.delivered",
        payload=redemptions.event_payload(redemption),
        at=now,
    )
    session.flush()
    return redemption
