"""Redemption and gifts (PRODUCT.md R2): what happens after, cancelling and fulfilment,
is `jifen.rewards.fulfilment`.

A redemption is one transaction's worth of work, in this order:
1. the member's points account is locked (`ledger.posting.lock_account`): from here on,
   this member's redemptions, spends and earnings wait for ours, so the per-member
   limits below are counted over rows nobody else can add to meanwhile;
2. the reward is read and checked: active, inside its window, an experience not yet
   started, the member's tier allowed, the limits per programme-local day and ever
   (units of the member's live redemptions), stock left (a first look), points enough;
3. the redemption row is written, the ledger debits the price (earliest-expiring lots
   first, reference `redemption:<id>`), coupons are issued;
4. last, the stock is taken by one atomic UPDATE (`redeemed = redeemed + q WHERE stock
   IS NULL OR redeemed + q <= stock`): the reward's row is the one row every redeemer
   of the reward shares, and its lock is held until the commit, so it is taken after
   everything else is written (the outbox event included) and the answer is described
   from what the session holds, without a query; if the UPDATE finds too little left,
   the whole transaction is refused (`OutOfStock`).
Every refusal is raised before the caller commits, so it changes nothing. Locks are
always taken in the same order (member account, then redemption, coupons, reward), so
redemptions, cancellations and fulfilment steps cannot deadlock each other.

`give` is a redemption the member does not pay for (a tier's periodic benefit or a
birthday gift): no points, no tier check, no per-member limit, but the same stock rule
and the same issue.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from jifen.core.clock import start_of_day
from jifen.core.errors import InsufficientPoints, InvalidInput
from jifen.db.outbox import emit
from jifen.ledger import service as ledger
from jifen.ledger.posting import Book, ensure_writable, lock_account
from jifen.members import service as members
from jifen.programs.models import Program
from jifen.programs.rewards import RewardKind
from jifen.rewards import catalog, coupons
from jifen.rewards.errors import (
    LimitReached,
    OutOfStock,
    RewardUnavailable,
    TierNotAllowed,
)
from jifen.rewards.models import (
    Redemption,
    RedemptionStatus,
    Reward,
)
from jifen.rewards.schemas import (
    MAX_QUANTITY,
    RedemptionIn,
    ShippingAddress,
)
from jifen.tiers.standing import policy_of, tier_of

REDEEMED = "redeemed"
ISSUED = "jifen.rewards.issued_coupons"
"""`session.info` key: redemption id → the coupons this session issued for it."""
GIFT_SOURCES = frozenset({"benefit", "birthday"})


# ---------------------------------------------------------------- redeeming


def redeem(
    session: Session,
    program: Program,
    book: Book,
    data: RedemptionIn,
    *,
    now: datetime,
    actor: str,
) -> Redemption:
    """Spend the member's points on a reward and issue it, or refuse and change nothing."""
    member = members.resolve(session, program.id, data.member)
    quantity = _quantity(data.quantity)
    account = lock_account(session, book, member.id, now)
    ensure_writable(account)
    reward = catalog.get_reward(session, program.id, data.reward)
    _check_request(reward, data)
    refused = catalog.unavailable(reward, now)
    if refused is not None:
        raise refused
    tier = tier_of(session, program, member.id)
    check_tier(program, reward, tier)
    check_limits(session, book, reward, member.id, quantity, now)
    check_stock(reward, quantity)
    points = catalog.price_for(reward, tier) * quantity
    if account.available < points:
        raise InsufficientPoints(needed=points, available=max(account.available, 0))
    redemption = _insert(
        session,
        program,
        reward,
        member.id,
        quantity,
        points=points,
        cash=reward.cash * quantity if reward.cash is not None else None,
        payment_reference=data.payment_reference,
        source=REDEEMED,
        tier=tier,
        shipping=data.shipping,
        details=None,
        now=now,
        actor=actor,
    )
    if points > 0:
        redemption.spend_txn_id = ledger.debit(
            session,
            book,
            member.id,
            points,
            now=now,
            actor=actor,
            reference=f"redemption:{redemption.id}",
            details={
                "redemption_id": redemption.id,
                "reward": reward.code,
                "name": reward.name,
                "quantity": quantity,
            },
        ).id
    _issue(session, book, redemption, reward, now=now)
    emit(
        session,
        program_id=program.id,
        member_id=member.id,
        type="reward.redeemed",
        payload=event_payload(redemption),
        at=now,
    )
    session.flush()
    _take(session, reward, quantity)  # last: see the module's docstring
    return redemption


def give(
    session: Session,
    program: Program,
    book: Book,
    member_id: int,
    reward_code: str,
    *,
    source: str,
    quantity: int = 1,
    now: datetime,
    actor: str,
    details: dict[str, Any] | None = None,
    shipping: ShippingAddress | None = None,
) -> Redemption:
    """Give the member a reward free (`source`: "benefit", a tier's periodic benefit, or
    "birthday", a birthday gift), issued exactly as a redemption would issue it.

    No points, no tier check, no per-member limit, no availability window (a benefit's
    reward is often withdrawn from the mall, or priced 0, precisely because it is only
    given). Refused like a redemption: an unknown reward, one withdrawn (`active:
    false`), an experience already started, too little stock (taken atomically), a
    frozen or closed member. Goods wait as `pending` (with `shipping` when given)."""
    if source not in GIFT_SOURCES:
        raise InvalidInput(field="source", reason="must be benefit or birthday")
    quantity = _quantity(quantity)
    ensure_writable(lock_account(session, book, member_id, now))
    reward = catalog.get_reward(session, program.id, reward_code)
    if not reward.active:
        raise RewardUnavailable(code=reward.code, reward=reward.code, reason="inactive")
    started = catalog.started_at(reward, now)
    if started is not None:
        raise RewardUnavailable(
            code=reward.code, reward=reward.code, reason="started", starts_at=started.isoformat()
        )
    check_stock(reward, quantity)
    redemption = _insert(
        session,
        program,
        reward,
        member_id,
        quantity,
        points=0,
        cash=None,
        payment_reference=None,
        source=source,
        tier=tier_of(session, program, member_id),
        shipping=shipping,
        details=details,
        now=now,
        actor=actor,
    )
    _issue(session, book, redemption, reward, now=now)
    emit(
        session,
        program_id=program.id,
        member_id=member_id,
        type="reward.given",
        payload=event_payload(redemption),
        at=now,
    )
    session.flush()
    _take(session, reward, quantity)
    return redemption


def _quantity(quantity: Any) -> int:
    if isinstance(quantity, bool) or not isinstance(quantity, int):
        raise InvalidInput(field="quantity", reason="must be a whole number")
    if not 1 <= quantity <= MAX_QUANTITY:
        raise InvalidInput(field="quantity", reason=f"must be from 1 to {MAX_QUANTITY}")
    return quantity


def _check_request(reward: Reward, data: RedemptionIn) -> None:
    """What the request must carry for this kind of reward."""
    if reward.kind == RewardKind.GOODS and data.shipping is None:
        raise InvalidInput(field="shipping", reason="goods need a shipping address")
    if reward.kind != RewardKind.GOODS and data.shipping is not None:
        raise InvalidInput(
            field="shipping", reason=f"a {reward.kind} reward is not shipped: leave it out"
        )
    if reward.cash is not None and data.payment_reference is None:
        raise InvalidInput(
            field="payment_reference",
            reason=f"reward {reward.code!r} costs points and {reward.cash} in money: give the "
            "reference of the money's payment",
        )
    if reward.cash is None and data.payment_reference is not None:
        raise InvalidInput(
            field="payment_reference", reason=f"reward {reward.code!r} is paid in points only"
        )


def _tier_names(program: Program, codes_: list[str]) -> str:
    policy = policy_of(program)
    names = []
    for code in codes_:
        tier = policy.get(code) if policy is not None else None
        names.append(f"{tier.name} ({code})" if tier is not None else code)
    return ", ".join(names) or "—"


def check_tier(program: Program, reward: Reward, tier: str | None) -> None:
    if reward.tiers is not None and tier not in reward.tiers:
        raise TierNotAllowed(
            code=reward.code,
            reward=reward.code,
            allowed=_tier_names(program, list(reward.tiers)),
            tier=_tier_names(program, [tier]) if tier is not None else "—",
            member_tier=tier,
        )


def local_day(book: Book, now: datetime) -> tuple[datetime, datetime]:
    """The programme-local day containing `now`, as [start, end) instants."""
    day = now.astimezone(book.tz).date()
    return start_of_day(day, book.tz), start_of_day(day + timedelta(days=1), book.tz)


def _used(
    session: Session,
    reward: Reward,
    member_id: int,
    since: datetime | None = None,
    until: datetime | None = None,
) -> int:
    """Units of the reward in the member's live redemptions (gifts do not count)."""
    query = select(func.coalesce(func.sum(Redemption.quantity), 0)).where(
        Redemption.program_id == reward.program_id,
        Redemption.member_id == member_id,
        Redemption.reward_id == reward.id,
        Redemption.status != RedemptionStatus.CANCELLED,
        Redemption.source == REDEEMED,
    )
    if since is not None:
        query = query.where(Redemption.created_at >= since)
    if until is not None:
        query = query.where(Redemption.created_at < until)
    return int(session.execute(query).scalar_one())


def check_limits(
    session: Session, book: Book, reward: Reward, member_id: int, quantity: int, now: datetime
) -> None:
    """Counted under the member's lock (by `redeem`): no concurrent redemption of this
    member can add a row between the count and our insert."""
    if reward.limit_per_day is not None:
        start, end = local_day(book, now)
        used = _used(session, reward, member_id, start, end)
        if used + quantity > reward.limit_per_day:
            raise LimitReached(
                code=reward.code,
                reward=reward.code,
                period="day",
                limit=reward.limit_per_day,
                used=used,
            )
    if reward.limit_per_member is not None:
        used = _used(session, reward, member_id)
        if used + quantity > reward.limit_per_member:
            raise LimitReached(
                code=reward.code,
                reward=reward.code,
                period="ever",
                limit=reward.limit_per_member,
                used=used,
            )


def check_stock(reward: Reward, quantity: int) -> None:
    """A first look (the atomic UPDATE at the end decides): refuse early what is
    plainly out of stock, before anything is written."""
    remaining = catalog.left(reward)
    if remaining is not None and remaining < quantity:
        raise OutOfStock(
            code=reward.code, reward=reward.code, quantity=quantity, left=max(remaining, 0)
        )


def _take(session: Session, reward: Reward, quantity: int) -> None:
    if not catalog.take_stock(session, reward.id, quantity):
        session.refresh(reward)
        raise OutOfStock(
            code=reward.code,
            reward=reward.code,
            quantity=quantity,
            left=max(catalog.left(reward) or 0, 0),
        )


def _insert(
    session: Session,
    program: Program,
    reward: Reward,
    member_id: int,
    quantity: int,
    *,
    points: int,
    cash: Decimal | None,
    payment_reference: str | None,
    source: str,
    tier: str | None,
    shipping: ShippingAddress | None,
    details: dict[str, Any] | None,
    now: datetime,
    actor: str,
) -> Redemption:
    goods = reward.kind == RewardKind.GOODS
    cause = (reward.details or {}).get("cause") if reward.kind == RewardKind.CHARITY else None
    redemption = Redemption(
        program_id=program.id,
        member_id=member_id,
        reward_id=reward.id,
        reward_code=reward.code,
        kind=reward.kind,
        quantity=quantity,
        points=points,
        cash=cash,
        payment_reference=payment_reference,
        status=RedemptionStatus.PENDING if goods else RedemptionStatus.ISSUED,
        source=source,
        tier=tier,
        cause=cause,
        shipping=shipping.model_dump(mode="json", exclude_none=True) if shipping else None,
        fulfilment=None,
        details=details,
        created_at=now,
        updated_at=now,
        actor=actor,
    )
    session.add(redemption)
    session.flush()
    return redemption


def _issue(
    session: Session, book: Book, redemption: Redemption, reward: Reward, *, now: datetime
) -> None:
    """Coupons get their codes now; goods wait (pending) for shipping; a donation records
    its cause (on the row); services and experiences are the member's (issued)."""
    issued = []
    if reward.kind == RewardKind.COUPON:
        issued = coupons.issue(session, redemption, reward, tz=book.tz, now=now)
    # What was issued is known to this session: describing the redemption before the
    # commit (the API's answer) needs no query while the reward's row is locked.
    session.info.setdefault(ISSUED, {})[redemption.id] = issued


def event_payload(redemption: Redemption) -> dict[str, Any]:
    return {
        "redemption_id": redemption.id,
        "reward": redemption.reward_code,
        "kind": redemption.kind,
        "quantity": redemption.quantity,
        "points": redemption.points,
        "source": redemption.source,
        "status": redemption.status,
    }
