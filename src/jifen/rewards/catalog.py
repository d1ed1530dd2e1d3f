"""The rewards catalog (PRODUCT.md R1): rewards as specs in, rows with counters out.

What this module guarantees:
- `put_reward` is an upsert by (programme, code) whose result is exactly the spec:
  `spec_of(put_reward(spec))` equals `spec`, and putting `spec_of(reward)` again changes
  nothing (so applying the same programme file twice writes nothing). It never touches
  `redeemed`, and it refuses a `stock` below what live redemptions already hold
  (`StockBelowRedeemed`), deciding that under the reward's row lock, so a redemption
  taking the last units at the same moment cannot slip under it.
- `add_stock` changes `stock` by one atomic UPDATE guarded the same way.
- `redeemed` is changed only by `take_stock` / `give_back_stock`, single atomic UPDATEs
  (`redeemed = redeemed + :q WHERE stock IS NULL OR redeemed + :q <= stock`), with the
  CHECK constraint `never_oversold` behind them: no interleaving of redeemers oversells.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from jifen.core.errors import InvalidInput
from jifen.programs.models import Program
from jifen.programs.rewards import CouponSpec, Experience, RewardKind, RewardSpec
from jifen.rewards.errors import RewardUnavailable, StockBelowRedeemed, UnknownReward
from jifen.rewards.models import Reward
from jifen.rewards.schemas import MemberOffer, RewardOut

# ---------------------------------------------------------------- spec ⇄ row


def _values(spec: RewardSpec) -> dict[str, Any]:
    """The columns a spec sets (everything but the counters and times)."""
    details: dict[str, Any] = {}
    if spec.coupon is not None:
        details["coupon"] = spec.coupon.model_dump(mode="json")
    if spec.experience is not None:
        details["experience"] = spec.experience.model_dump(mode="json")
    if spec.cause is not None:
        details["cause"] = spec.cause
    return {
        "name": spec.name,
        "description": spec.description,
        "kind": spec.kind.value,
        "points": spec.points,
        "cash": spec.cash,
        "prices": dict(spec.prices) or None,
        "tiers": list(spec.tiers) if spec.tiers is not None else None,
        "available_from": spec.available_from,
        "available_until": spec.available_until,
        "stock": spec.stock,
        "limit_per_day": spec.limit_per_day,
        "limit_per_member": spec.limit_per_member,
        "details": details or None,
        "active": spec.active,
    }


def spec_of(reward: Reward) -> RewardSpec:
    """The reward as the spec that makes it (the programme file's item, exported)."""
    details = reward.details or {}
    return RewardSpec(
        code=reward.code,
        name=reward.name,
        description=reward.description,
        kind=RewardKind(reward.kind),
        points=reward.points,
        cash=reward.cash,
        prices=dict(reward.prices or {}),
        tiers=list(reward.tiers) if reward.tiers is not None else None,
        available_from=reward.available_from,
        available_until=reward.available_until,
        stock=reward.stock,
        limit_per_day=reward.limit_per_day,
        limit_per_member=reward.limit_per_member,
        coupon=CouponSpec.model_validate(details["coupon"]) if "coupon" in details else None,
        experience=(
            Experience.model_validate(details["experience"]) if "experience" in details else None
        ),
        cause=details.get("cause"),
        active=reward.active,
    )


def same_spec(a: RewardSpec, b: RewardSpec) -> bool:
    """Equal as rewards: instants compare as instants (+08:00 and UTC alike), amounts as
    numbers (10 and 10.00 alike)."""
    return a.model_dump() == b.model_dump()


# ---------------------------------------------------------------- reading


def find_reward(session: Session, program_id: int, code: str) -> Reward | None:
    return session.execute(
        select(Reward).where(Reward.program_id == program_id, Reward.code == code)
    ).scalar_one_or_none()


def get_reward(session: Session, program_id: int, code: str) -> Reward:
    reward = find_reward(session, program_id, code)
    if reward is None:
        raise UnknownReward(code=code, reward=code)
    return reward


def list_rewards(
    session: Session,
    program_id: int,
    *,
    kind: RewardKind | None = None,
    available_at: datetime | None = None,
) -> list[Reward]:
    """The catalog in the order the rewards were first defined; `kind` keeps one kind,
    `available_at` only what can be redeemed at that instant (`unavailable` is None)."""
    query = select(Reward).where(Reward.program_id == program_id)
    if kind is not None:
        query = query.where(Reward.kind == kind.value)
    if available_at is not None:
        query = query.where(Reward.active.is_(True))
    found = list(session.execute(query.order_by(Reward.id)).scalars())
    if available_at is not None:
        found = [reward for reward in found if unavailable(reward, available_at) is None]
    return found


def left(reward: Reward) -> int | None:
    """Units that may still be redeemed (None: no limit)."""
    return None if reward.stock is None else reward.stock - reward.redeemed


def experience_of(reward: Reward) -> Experience | None:
    details = reward.details or {}
    return Experience.model_validate(details["experience"]) if "experience" in details else None


def unavailable(reward: Reward, now: datetime) -> RewardUnavailable | None:
    """Why the reward cannot be redeemed at `now` (None: it can, stock and the member
    aside): withdrawn, outside its window, an event already started, or a benefit only
    (a points price of 0)."""
    code = reward.code
    if not reward.active:
        return RewardUnavailable(code=code, reward=code, reason="inactive")
    if reward.available_from is not None and now < reward.available_from:
        return RewardUnavailable(
            code=code,
            reward=code,
            reason="not-yet",
            available_from=reward.available_from.isoformat(),
        )
    if reward.available_until is not None and now >= reward.available_until:
        return RewardUnavailable(
            code=code,
            reward=code,
            reason="ended",
            available_until=reward.available_until.isoformat(),
        )
    started = started_at(reward, now)
    if started is not None:
        return RewardUnavailable(
            code=code, reward=code, reason="started", starts_at=started.isoformat()
        )
    if reward.points == 0:
        return RewardUnavailable(code=code, reward=code, reason="benefit-only")
    return None


def started_at(reward: Reward, now: datetime) -> datetime | None:
    """An experience whose event has started by `now`: its start (else None)."""
    experience = experience_of(reward)
    if experience is not None and now >= experience.starts_at:
        return experience.starts_at
    return None


def price_for(reward: Reward, tier: str | None) -> int:
    """Points for one unit at the member's tier (the tier's price where one is set)."""
    prices = reward.prices or {}
    if tier is not None and tier in prices:
        return int(prices[tier])
    return reward.points


def describe(reward: Reward, now: datetime, offer: MemberOffer | None = None) -> RewardOut:
    spec = spec_of(reward)
    return RewardOut(
        code=spec.code,
        name=spec.name,
        description=spec.description,
        kind=spec.kind,
        points=spec.points,
        cash=spec.cash,
        prices=spec.prices,
        tiers=spec.tiers,
        available_from=spec.available_from,
        available_until=spec.available_until,
        stock=spec.stock,
        redeemed=reward.redeemed,
        left=left(reward),
        limit_per_day=spec.limit_per_day,
        limit_per_member=spec.limit_per_member,
        coupon=spec.coupon,
        experience=spec.experience,
        cause=spec.cause,
        active=spec.active,
        available_now=unavailable(reward, now) is None,
        created_at=reward.created_at,
        updated_at=reward.updated_at,
        member=offer,
    )


# ---------------------------------------------------------------- writing


def _locked(session: Session, program_id: int, code: str) -> Reward | None:
    return session.execute(
        select(Reward)
        .where(Reward.program_id == program_id, Reward.code == code)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).scalar_one_or_none()


def put_reward(
    session: Session, program: Program, spec: RewardSpec, *, now: datetime
) -> tuple[Reward, bool]:
    """Create the reward `spec.code` or make it equal `spec`; whether anything changed.

    What members have redeemed (`redeemed`) is kept: `stock` is what may ever be
    redeemed, so it may not be set below it (`StockBelowRedeemed`)."""
    values = _values(spec)
    reward = _locked(session, program.id, spec.code)
    if reward is None:
        reward = Reward(
            program_id=program.id,
            code=spec.code,
            redeemed=0,
            created_at=now,
            updated_at=now,
            **values,
        )
        try:
            with session.begin_nested():
                session.add(reward)
                session.flush()
        except IntegrityError:  # a concurrent put created it first: update that one
            reward = _locked(session, program.id, spec.code)
            assert reward is not None
        else:
            return reward, True
    if same_spec(spec_of(reward), spec):
        return reward, False
    if spec.stock is not None and spec.stock < reward.redeemed:
        raise StockBelowRedeemed(
            code=spec.code, reward=spec.code, redeemed=reward.redeemed, stock=spec.stock
        )
    for name, value in values.items():
        setattr(reward, name, value)
    reward.updated_at = now
    session.flush()
    return reward, True


def add_stock(session: Session, program_id: int, code: str, add: int, *, now: datetime) -> Reward:
    """Raise (or, negative, lower) the reward's stock by `add` in one atomic UPDATE; never
    below what is redeemed, and not for a reward without a stock limit."""
    if isinstance(add, bool) or not isinstance(add, int) or add == 0:
        raise InvalidInput(field="add", reason="must be a non-zero whole number")
    reward = get_reward(session, program_id, code)
    if reward.stock is None:
        raise InvalidInput(
            field="add",
            reason=f"reward {code!r} has no stock limit; give it a stock with PUT first",
        )
    done = session.execute(
        update(Reward)
        .where(Reward.id == reward.id, Reward.redeemed <= Reward.stock + add)
        .values(stock=Reward.stock + add, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    session.refresh(reward)
    if done.rowcount == 0:  # type: ignore[attr-defined]
        raise StockBelowRedeemed(
            code=code, reward=code, redeemed=reward.redeemed, stock=(reward.stock or 0) + add
        )
    return reward


def take_stock(session: Session, reward_id: int, quantity: int) -> bool:
    """Take `quantity` units in one atomic UPDATE; False when fewer are left. The row
    stays locked to this transaction until it ends."""
    done = session.execute(
        update(Reward)
        .where(
            Reward.id == reward_id,
            (Reward.stock.is_(None)) | (Reward.redeemed + quantity <= Reward.stock),
        )
        .values(redeemed=Reward.redeemed + quantity)
        .execution_options(synchronize_session=False)
    )
    return bool(done.rowcount)  # type: ignore[attr-defined]


def give_back_stock(session: Session, reward_id: int, quantity: int) -> None:
    """A cancelled redemption's units become available again (one atomic UPDATE)."""
    session.execute(
        update(Reward)
        .where(Reward.id == reward_id)
        .values(redeemed=Reward.redeemed - quantity)
        .execution_options(synchronize_session=False)
    )
