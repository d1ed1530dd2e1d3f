"""Typed helpers for the rewards tests: a programme with tiers, rewards put through the
catalog, members with points (in lots with chosen expiry), and what the database says
(balances, lots, stock, rows), each read in a unit of work of its own."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from factories import make_member, make_program
from jifen.core.clock import FrozenClock
from jifen.db.models import Base
from jifen.db.uow import Database
from jifen.ledger import service as ledger
from jifen.ledger.models import Lot
from jifen.ledger.posting import Book
from jifen.ledger.queries import current_balance
from jifen.programs.models import Program
from jifen.programs.rewards import RewardSpec
from jifen.programs.service import get_program
from jifen.programs.tiers import TierPolicy
from jifen.rewards import catalog, fulfilment, reads, redemptions
from jifen.rewards.models import Coupon, Redemption, Reward
from jifen.rewards.schemas import RedemptionIn
from jifen.tiers.models import MemberTier

T = TypeVar("T")

TIERS = {
    "window": {"kind": "rolling", "months": 12},
    "levels": [
        {"code": "normal", "name": "普通会员"},
        {"code": "silver", "name": "银卡会员", "enter": {"growth": 1000}},
        {"code": "gold", "name": "金卡会员", "enter": {"growth": 5000}},
        {"code": "platinum", "name": "铂金会员", "enter": {"growth": 20000}},
    ],
}

ADDRESS = {
    "name": "李娜",
    "phone": "13800000001",
    "province": "上海市",
    "city": "上海市",
    "district": "浦东新区",
    "address": "世纪大道 100 号 8 楼",
}


class Mall:
    """A programme (with the four tiers) on a database, and ways to act on it."""

    def __init__(self, db: Database, clock: FrozenClock, **settings: Any) -> None:
        self.db = db
        self.clock = clock
        self.book: Book = make_program(db, clock, **settings)

        def set_tiers(session: Session) -> None:
            program = get_program(session, self.book.program_id)
            program.tiers = TierPolicy.model_validate(TIERS).model_dump(mode="json")

        db.write(set_tiers)

    def using(self, db: Database) -> Mall:
        """The same programme reached through another `Database` (a wider pool, say)."""
        other = Mall.__new__(Mall)
        other.__dict__.update(self.__dict__, db=db)
        return other

    @property
    def program_id(self) -> int:
        return self.book.program_id

    def program(self, session: Session) -> Program:
        return get_program(session, self.book.program_id)

    def write(self, fn: Callable[[Session], T]) -> T:
        return self.db.write(fn)

    def read(self, fn: Callable[[Session], T]) -> T:
        return self.db.read(fn)

    # -- catalog
    def put(self, **fields: Any) -> RewardSpec:
        spec = reward_spec(**fields)
        self.write(lambda s: catalog.put_reward(s, self.program(s), spec, now=self.clock.now()))
        return spec

    def reward(self, code: str) -> Reward:
        return self.read(lambda s: catalog.get_reward(s, self.program_id, code))

    def stock(self, code: str) -> tuple[int | None, int]:
        reward = self.reward(code)
        return reward.stock, reward.redeemed

    # -- members
    def member(self, points: int = 0, *, tier: str | None = None, **fields: Any) -> int:
        member = make_member(self.db, self.book, self.clock, **fields)
        if points:
            self.earn(member, points)
        if tier is not None:
            self.set_tier(member, tier)
        return member

    def earn(self, member: int, points: int, *, at: datetime | None = None) -> int:
        """Credit `points` in a lot earned at `at` (its expiry follows the programme)."""
        now = self.clock.now()
        return self.write(
            lambda s: (
                ledger.credit(
                    s, self.book, member, points, now=now, actor="test", earned_at=at or now
                ).id
            )
        )

    def set_tier(self, member: int, tier: str) -> None:
        now = self.clock.now()

        def place(session: Session) -> None:
            found = session.execute(
                select(MemberTier).where(
                    MemberTier.program_id == self.program_id, MemberTier.member_id == member
                )
            ).scalar_one_or_none()
            if found is None:
                session.add(
                    MemberTier(
                        program_id=self.program_id,
                        member_id=member,
                        tier=tier,
                        qualified_tier=tier,
                        since=now,
                        updated_at=now,
                    )
                )
            else:
                session.execute(
                    update(MemberTier)
                    .where(MemberTier.id == found.id)
                    .values(tier=tier, qualified_tier=tier)
                )

        self.write(place)

    def available(self, member: int) -> int:
        return current_balance(self.db, self.book, member, self.clock.now()).available

    def lots(self, member: int) -> list[tuple[int, int, str, datetime | None]]:
        """(amount, remaining, status, expires_at) of each lot, in id order."""
        return self.read(
            lambda s: [
                (lot.amount, lot.remaining, lot.status, lot.expires_at)
                for lot in s.execute(
                    select(Lot)
                    .where(Lot.program_id == self.program_id, Lot.member_id == member)
                    .order_by(Lot.id)
                ).scalars()
            ]
        )

    # -- redeeming
    def redeem(self, member: int, reward: str, **fields: Any) -> Redemption:
        data = RedemptionIn.model_validate({"member": {"id": member}, "reward": reward, **fields})
        now = self.clock.now()
        return self.write(
            lambda s: redemptions.redeem(s, self.program(s), self.book, data, now=now, actor="test")
        )

    def give(self, member: int, reward: str, **kw: Any) -> Redemption:
        now = self.clock.now()
        kw.setdefault("source", "benefit")
        return self.write(
            lambda s: redemptions.give(
                s, self.program(s), self.book, member, reward, now=now, actor="job", **kw
            )
        )

    def cancel(self, redemption: int, reason: str = "member asked", **kw: Any) -> Redemption:
        now = self.clock.now()
        return self.write(
            lambda s: fulfilment.cancel(
                s, self.program(s), self.book, redemption, reason=reason, now=now, actor="t", **kw
            )
        )

    def redemption(self, redemption: int) -> Redemption:
        return self.read(lambda s: reads.get(s, self.program_id, redemption))

    def coupons(self, redemption: int) -> list[Coupon]:
        return self.read(
            lambda s: list(
                s.execute(
                    select(Coupon).where(Coupon.redemption_id == redemption).order_by(Coupon.id)
                ).scalars()
            )
        )

    def count(self, model: Any) -> int:
        return self.read(
            lambda s: int(
                s.execute(
                    select(func.count())
                    .select_from(model)
                    .where(model.program_id == self.program_id)
                ).scalar_one()
            )
        )

    # -- "nothing changed"
    def snapshot(self) -> dict[str, Any]:
        """Every row of this programme in every table, and each table's count and highest
        id (so a row written anywhere shows too)."""

        def dump(session: Session) -> dict[str, Any]:
            found: dict[str, Any] = {}
            for table in Base.metadata.sorted_tables:
                owner = table.c.id if table.name == "programs" else table.c.program_id
                mine = select(table).where(owner == self.program_id).order_by(table.c.id)
                found[table.name] = (
                    tuple(session.execute(select(func.count(), func.max(table.c.id))).one()),
                    [tuple(row) for row in session.execute(mine)],
                )
            return found

        return self.read(dump)

    @contextmanager
    def unchanged(self) -> Iterator[None]:
        """Assert that the block leaves every table as it found it."""
        before = self.snapshot()
        yield
        after = self.snapshot()
        changed = [name for name in before if before[name] != after[name]]
        assert not changed, f"tables written: {changed}"


def reward_spec(**fields: Any) -> RewardSpec:
    """A reward spec: a 100-point service called `svc` unless told otherwise."""
    data: dict[str, Any] = {"code": "svc", "name": "优先服务", "kind": "service", "points": 100}
    return RewardSpec.model_validate(data | fields)


COUPON = {"kind": "fixed", "amount": "10", "min_spend": "50", "valid_days": 30}
