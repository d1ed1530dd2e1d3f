"""Typed helpers for the tier tests: a programme with four tiers (普通 / 银卡 / 金卡 / 铂金 on
growth value over a rolling 12 months, unless a test gives its own policy), purchases
worth exact growth value, and what the tier tables and the outbox say."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import select

from earning.shop import PER_YUAN, buy, item, local, order, set_rules
from factories import make_member, make_program
from jifen.core.clock import FrozenClock
from jifen.db.outbox import OutboxEvent
from jifen.db.uow import Database
from jifen.earning.schemas import PurchaseOut
from jifen.jobs.runner import JobReport, run_job
from jifen.ledger.posting import Book
from jifen.programs.rewards import RewardSpec
from jifen.programs.service import get_program
from jifen.programs.tiers import TierPolicy
from jifen.rewards import catalog
from jifen.rewards.models import Redemption
from jifen.tiers import service
from jifen.tiers.models import BenefitIssue, MemberTier, TierChange, TierGrant
from jifen.tiers.schemas import GrantIn, GrantOut

__all__ = ["local"]

LEVELS: list[dict[str, Any]] = [
    {"code": "normal", "name": "普通会员"},
    {
        "code": "silver",
        "name": "银卡会员",
        "enter": {"growth": 1000},
        "retain": {"growth": 800},
        "benefits": {"earn_multiplier": "1.2"},
    },
    {
        "code": "gold",
        "name": "金卡会员",
        "enter": {"growth": 5000},
        "retain": {"growth": 4000},
        "benefits": {"earn_multiplier": "1.5"},
    },
    {
        "code": "platinum",
        "name": "铂金会员",
        "enter": {"growth": 20000},
        "retain": {"growth": 15000},
        "benefits": {"earn_multiplier": "2"},
    },
]

POLICY: dict[str, Any] = {
    "window": {"kind": "rolling", "months": 12},
    "grace_days": 30,
    "downgrade": "one_down",
    "levels": LEVELS,
}


def policy(**changes: Any) -> dict[str, Any]:
    return POLICY | changes


def set_tiers(db: Database, book: Book, document: dict[str, Any] | None) -> None:
    """What the lead's programme file apply stores: the TierPolicy as JSON."""
    stored = TierPolicy.model_validate(document).model_dump(mode="json") if document else None

    def write(s: Any) -> None:
        get_program(s, book.program_id).tiers = stored

    db.write(write)


def tiered(
    db: Database, clock: FrozenClock, document: dict[str, Any] | None = None, **settings: Any
) -> Book:
    """A programme earning 1 积分 and 1 成长值 per 元, with tiers (POLICY by default)."""
    book = make_program(db, clock, **settings)
    set_rules(db, book, clock, PER_YUAN)
    set_tiers(db, book, document or POLICY)
    return book


_orders = iter(range(1, 10**9))


def spend(
    db: Database,
    book: Book,
    clock: FrozenClock,
    member: int,
    amount: Any,
    *,
    at: datetime | None = None,
) -> PurchaseOut:
    """A purchase of `amount` 元 (that much growth value), occurring now unless `at`."""
    return buy(
        db,
        book,
        clock,
        order(
            f"o-{next(_orders)}",
            item("sku-1", amount),
            member=member,
            at=at or clock.now(),
        ),
    )


def member(db: Database, book: Book, clock: FrozenClock, **fields: Any) -> int:
    return make_member(db, book, clock, **fields)


def standing(db: Database, book: Book, member_id: int) -> tuple[str, str, datetime | None] | None:
    """(tier, qualified tier, grace_until) as stored; None without a row (the base tier)."""
    row = db.read(
        lambda s: s.execute(
            select(MemberTier.tier, MemberTier.qualified_tier, MemberTier.grace_until).where(
                MemberTier.program_id == book.program_id, MemberTier.member_id == member_id
            )
        ).one_or_none()
    )
    return None if row is None else (row[0], row[1], row[2])


def tier(db: Database, book: Book, member_id: int) -> str:
    found = standing(db, book, member_id)
    return "normal" if found is None else found[0]


def history(db: Database, book: Book, member_id: int) -> list[tuple[str, str, str]]:
    """(from, to, reason) oldest first."""
    rows = db.read(
        lambda s: s.execute(
            select(TierChange.from_tier, TierChange.to_tier, TierChange.reason)
            .where(TierChange.program_id == book.program_id, TierChange.member_id == member_id)
            .order_by(TierChange.id)
        ).all()
    )
    return [(a, b, c) for a, b, c in rows]


def history_details(db: Database, book: Book, member_id: int) -> list[dict[str, Any]]:
    rows = db.read(
        lambda s: s.execute(
            select(TierChange.details)
            .where(TierChange.program_id == book.program_id, TierChange.member_id == member_id)
            .order_by(TierChange.id)
        ).scalars()
    )
    return [dict(d or {}) for d in rows]


def tier_events(db: Database, book: Book, member_id: int | None = None) -> list[tuple[str, Any]]:
    """Outbox `tier.*` rows (type, payload), oldest first."""

    def read(s: Any) -> list[tuple[str, Any]]:
        query = (
            select(OutboxEvent.type, OutboxEvent.payload)
            .where(OutboxEvent.program_id == book.program_id, OutboxEvent.type.like("tier.%"))
            .order_by(OutboxEvent.id)
        )
        if member_id is not None:
            query = query.where(OutboxEvent.member_id == member_id)
        return [(t, p) for t, p in s.execute(query).all()]

    return db.read(read)


def issues(db: Database, book: Book) -> list[tuple[int, str, str, str]]:
    """Benefit issues (member, benefit, period, tier) in id order."""
    rows = db.read(
        lambda s: s.execute(
            select(
                BenefitIssue.member_id, BenefitIssue.benefit, BenefitIssue.period, BenefitIssue.tier
            )
            .where(BenefitIssue.program_id == book.program_id)
            .order_by(BenefitIssue.id)
        ).all()
    )
    return [(a, b, c, d) for a, b, c, d in rows]


def grants(db: Database, book: Book) -> list[TierGrant]:
    return db.read(
        lambda s: list(
            s.execute(
                select(TierGrant)
                .where(TierGrant.program_id == book.program_id)
                .order_by(TierGrant.id)
            ).scalars()
        )
    )


def run(db: Database, book: Book, clock: FrozenClock, job: str = "tiers") -> JobReport:
    return run_job(db, job, now=clock.now(), program_id=book.program_id, batch_size=7)


def money(value: str) -> Decimal:
    return Decimal(value)


def put_reward(db: Database, book: Book, clock: FrozenClock, code: str, **fields: Any) -> None:
    """A reward in the catalog (a 0-point free-delivery coupon unless told otherwise)."""
    data: dict[str, Any] = {
        "code": code,
        "name": code,
        "kind": "coupon",
        "points": 0,
        "coupon": {"kind": "free_delivery", "valid_days": 31},
    }
    spec = RewardSpec.model_validate(data | fields)
    db.write(
        lambda s: catalog.put_reward(s, get_program(s, book.program_id), spec, now=clock.now())
    )


def grant(
    db: Database,
    book: Book,
    clock: FrozenClock,
    member_id: int,
    tier_code: str,
    *,
    days: int = 365,
    kind: str = "staff",
    reference: str | None = None,
) -> GrantOut:
    data = GrantIn.model_validate(
        {"tier": tier_code, "kind": kind, "days": days, "reference": reference}
    )

    def write(s: Any) -> GrantOut:
        made, _ = service.grant(
            s, get_program(s, book.program_id), book, member_id, data, now=clock.now(), actor="t"
        )
        return service.describe_grant(made, clock.now())

    return db.write(write)


def given(db: Database, book: Book) -> list[tuple[int, str, str, int]]:
    """Redemptions (member, reward, source, quantity) in id order."""
    rows = db.read(
        lambda s: s.execute(
            select(
                Redemption.member_id,
                Redemption.reward_code,
                Redemption.source,
                Redemption.quantity,
            )
            .where(Redemption.program_id == book.program_id)
            .order_by(Redemption.id)
        ).all()
    )
    return [(a, b, c, d) for a, b, c, d in rows]
