"""What members and staff see of redemptions (PRODUCT.md R1, R2, R5): a member's offer for
a reward (their price, and the refusal a redemption would get now), a redemption with its
reward and coupons, a member's redemptions, and the charity totals.

Reads only: nothing here locks or writes. A member's offer runs the very checks a
redemption runs (`jifen.rewards.redemptions`), so "may redeem" and a real redemption at
that moment agree; the redemption, under its locks, decides for real.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import distinct, func, select
from sqlalchemy.orm import Session

from jifen.core.errors import InsufficientPoints, JifenError, NotFound
from jifen.ledger.models import Account, AccountKind, Lot, LotStatus
from jifen.ledger.posting import Book, ensure_writable
from jifen.members import service as members
from jifen.programs.models import Program
from jifen.programs.rewards import RewardKind
from jifen.rewards import catalog, codes, redemptions
from jifen.rewards.models import Coupon, Redemption, RedemptionStatus, Reward
from jifen.rewards.schemas import (
    CauseTotal,
    CharityTotals,
    CouponOut,
    Fulfilment,
    MemberOffer,
    RedemptionOut,
    Refusal,
    ShippingAddress,
)
from jifen.tiers.standing import tier_of

# ---------------------------------------------------------------- a member's offer


@dataclass(frozen=True)
class Shopper:
    """The member side of an offer, read once for a whole catalog."""

    member_id: int
    account: Account
    tier: str | None
    spendable: int


def shopper(
    session: Session, program: Program, book: Book, member_id: int, now: datetime
) -> Shopper:
    account = _points_account(session, book, member_id)
    return Shopper(
        member_id=member_id,
        account=account,
        tier=tier_of(session, program, member_id),
        spendable=_spendable(session, account, now),
    )


def offer(
    session: Session,
    program: Program,
    book: Book,
    reward: Reward,
    who: Shopper,
    now: datetime,
    *,
    lang: str = "zh-CN",
) -> MemberOffer:
    """What the member would pay for one unit now, and the refusal a redemption of one
    unit would get, its detail in `lang` (read without locks: a redemption decides for
    real)."""
    price = catalog.price_for(reward, who.tier)
    refusal: JifenError | None = None
    try:
        ensure_writable(who.account)
        refused = catalog.unavailable(reward, now)
        if refused is not None:
            raise refused
        redemptions.check_tier(program, reward, who.tier)
        redemptions.check_limits(session, book, reward, who.member_id, 1, now)
        redemptions.check_stock(reward, 1)
        if who.spendable < price:
            raise InsufficientPoints(needed=price, available=max(who.spendable, 0))
    except JifenError as exc:
        refusal = exc
    return MemberOffer(
        member_id=who.member_id,
        tier=who.tier,
        points=price,
        cash=reward.cash,
        may_redeem=refusal is None,
        refusal=(
            Refusal(
                type=f"/problems/{refusal.code}", code=refusal.code, detail=refusal.message(lang)
            )
            if refusal is not None
            else None
        ),
    )


def _points_account(session: Session, book: Book, member_id: int) -> Account:
    account = session.execute(
        select(Account).where(
            Account.program_id == book.program_id,
            Account.member_id == member_id,
            Account.kind == AccountKind.POINTS,
        )
    ).scalar_one_or_none()
    if account is None:
        raise NotFound(what="member", key=member_id)
    return account


def _spendable(session: Session, account: Account, now: datetime) -> int:
    """Available points at `now` without a write: the cached balance, or, when lots have
    fallen due since (expired, released), what the lots hold at `now`."""
    if account.next_due_at is None or account.next_due_at > now or account.available < 0:
        return account.available
    lots = session.execute(
        select(func.coalesce(func.sum(Lot.remaining), 0)).where(
            Lot.account_id == account.id,
            (
                (Lot.status == LotStatus.AVAILABLE)
                | ((Lot.status == LotStatus.PENDING) & (Lot.available_at <= now))
            ),
            (Lot.expires_at.is_(None)) | (Lot.expires_at > now),
        )
    ).scalar_one()
    return int(lots)


# ---------------------------------------------------------------- reading


def list_for_member(
    session: Session, program_id: int, member_id: int, *, before: int | None, limit: int
) -> list[Redemption]:
    """The member's redemptions and gifts, newest first; `before`: ids below it."""
    members.get(session, program_id, member_id)
    query = select(Redemption).where(
        Redemption.program_id == program_id, Redemption.member_id == member_id
    )
    if before is not None:
        query = query.where(Redemption.id < before)
    return list(session.execute(query.order_by(Redemption.id.desc()).limit(limit)).scalars())


def describe_many(session: Session, found: list[Redemption]) -> list[RedemptionOut]:
    """Redemptions with their reward's name and coupons: the rewards from the session
    where it has them, the coupons from what this session issued
    (`redemptions.ISSUED`) or else in one query."""
    if not found:
        return []
    rewards: dict[int, Reward] = {}
    for reward_id in {r.reward_id for r in found}:
        reward = session.get(Reward, reward_id)
        assert reward is not None
        rewards[reward_id] = reward
    known: dict[int, list[Coupon]] = session.info.get(redemptions.ISSUED, {})
    by_redemption: dict[int, list[Coupon]] = defaultdict(list)
    unknown = [r.id for r in found if r.id not in known]
    if unknown:
        for coupon in session.execute(
            select(Coupon).where(Coupon.redemption_id.in_(unknown)).order_by(Coupon.id)
        ).scalars():
            by_redemption[coupon.redemption_id].append(coupon)
    for redemption_id in {r.id for r in found} - set(unknown):
        by_redemption[redemption_id] = list(known[redemption_id])
    return [_describe(r, rewards[r.reward_id], by_redemption[r.id]) for r in found]


def describe(session: Session, redemption: Redemption) -> RedemptionOut:
    return describe_many(session, [redemption])[0]


def _describe(redemption: Redemption, reward: Reward, issued: list[Coupon]) -> RedemptionOut:
    fulfilment = redemption.fulfilment or {}
    return RedemptionOut(
        id=redemption.id,
        member_id=redemption.member_id,
        reward=redemption.reward_code,
        reward_name=reward.name,
        kind=RewardKind(redemption.kind),
        quantity=redemption.quantity,
        points=redemption.points,
        cash=redemption.cash,
        payment_reference=redemption.payment_reference,
        status=redemption.status,
        source=redemption.source,
        tier=redemption.tier,
        cause=redemption.cause,
        shipping=ShippingAddress.model_validate(redemption.shipping)
        if redemption.shipping
        else None,
        fulfilment=Fulfilment.model_validate(
            {k: v for k, v in fulfilment.items() if k in Fulfilment.model_fields}
        ),
        coupons=[
            CouponOut(
                code=codes.display(c.code),
                kind=c.kind,
                amount=c.amount,
                percent=c.percent,
                cap=c.cap,
                min_spend=c.min_spend,
                categories=c.categories,
                status=c.status,
                issued_at=c.issued_at,
                expires_at=c.expires_at,
            )
            for c in issued
        ],
        experience=catalog.experience_of(reward)
        if redemption.kind == RewardKind.EXPERIENCE
        else None,
        spend_transaction_id=redemption.spend_txn_id,
        cancel_transaction_id=redemption.cancel_txn_id,
        details=redemption.details,
        created_at=redemption.created_at,
        updated_at=redemption.updated_at,
        actor=redemption.actor,
    )


def charity_totals(session: Session, program_id: int) -> CharityTotals:
    """Per cause: live donations, units, points and distinct members."""
    rows = session.execute(
        select(
            Redemption.cause,
            func.count(),
            func.coalesce(func.sum(Redemption.quantity), 0),
            func.coalesce(func.sum(Redemption.points), 0),
            func.count(distinct(Redemption.member_id)),
        )
        .where(
            Redemption.program_id == program_id,
            Redemption.kind == RewardKind.CHARITY,
            Redemption.status != RedemptionStatus.CANCELLED,
        )
        .group_by(Redemption.cause)
        .order_by(Redemption.cause)
    ).all()
    return CharityTotals(
        causes=[
            CauseTotal(
                cause=str(cause),
                donations=int(count),
                units=int(units),
                points=int(points),
                members=int(people),
            )
            for cause, count, units, points, people in rows
        ]
    )


def get(session: Session, program_id: int, redemption_id: int) -> Redemption:
    redemption = session.execute(
        select(Redemption).where(
            Redemption.id == redemption_id, Redemption.program_id == program_id
        )
    ).scalar_one_or_none()
    if redemption is None:
        raise NotFound(what="redemption", key=redemption_id)
    return redemption
