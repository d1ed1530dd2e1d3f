"""Many connections at one reward, one member, one request (PostgreSQL: real row locks,
READ COMMITTED). Never oversold, never charged twice, never past a limit."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from threading import Barrier

import pytest
from sqlalchemy import func, select

from jifen.core.errors import JifenError
from jifen.db.outbox import OutboxEvent
from jifen.db.uow import Database
from jifen.ledger.models import JournalTransaction
from jifen.rewards.errors import LimitReached, OutOfStock
from jifen.rewards.models import Coupon, Redemption
from rewards.mall import ADDRESS, COUPON, Mall

pytestmark = pytest.mark.postgres


def _wide(db: Database) -> Database:
    """The same database with a pool of 100 connections: one per redeemer."""
    return Database(db.url, pool_size=100, max_overflow=0)


def _count(mall: Mall, model, **where) -> int:
    return mall.read(
        lambda s: int(
            s.execute(
                select(func.count())
                .select_from(model)
                .where(model.program_id == mall.program_id)
                .filter_by(**where)
            ).scalar_one()
        )
    )


def test_100_concurrent_redeemers_of_10_items_make_exactly_10_redemptions(pg_db, clock):
    mall = Mall(pg_db, clock)
    mall.put(code="phone", name="手机", kind="goods", points=1000, stock=10)
    members = [mall.member(1500) for _ in range(100)]
    wide = _wide(pg_db)
    racing = mall.using(wide)
    start = Barrier(100)

    def attempt(member: int) -> str:
        start.wait()
        try:
            racing.redeem(member, "phone", shipping=ADDRESS)
        except OutOfStock as refused:
            return f"out, {refused.params['left']} left"
        return "won"

    try:
        with ThreadPoolExecutor(100) as pool:
            outcomes = dict(zip(members, pool.map(attempt, members), strict=True))
    finally:
        wide.dispose()
    winners = [m for m, outcome in outcomes.items() if outcome == "won"]
    assert len(winners) == 10
    assert list(outcomes.values()).count("out, 0 left") == 90
    assert mall.stock("phone") == (10, 10)
    assert _count(mall, Redemption) == 10
    assert _count(mall, JournalTransaction, kind="spend") == 10
    assert _count(mall, OutboxEvent, type="reward.redeemed") == 10
    assert sorted(
        mall.read(
            lambda s: list(
                s.execute(
                    select(Redemption.member_id).where(Redemption.program_id == mall.program_id)
                ).scalars()
            )
        )
    ) == sorted(winners)
    for member, outcome in outcomes.items():
        assert mall.available(member) == (500 if outcome == "won" else 1500), member


@pytest.mark.parametrize("limit", ["limit_per_member", "limit_per_day"])
def test_one_member_on_16_connections_against_a_limit_of_3_gets_exactly_3(pg_db, clock, limit):
    mall = Mall(pg_db, clock)
    mall.put(code="v10", kind="coupon", points=100, coupon=COUPON, **{limit: 3})
    member = mall.member(10_000)
    start = Barrier(16)

    def attempt(_: int) -> str:
        start.wait()
        try:
            mall.redeem(member, "v10")
        except LimitReached as refused:
            return f"limit, {refused.params['used']} used"
        return "ok"

    with ThreadPoolExecutor(16) as pool:
        outcomes = list(pool.map(attempt, range(16)))
    assert outcomes.count("ok") == 3
    assert outcomes.count("limit, 3 used") == 13
    assert _count(mall, Redemption) == 3
    assert _count(mall, Coupon) == 3
    assert mall.available(member) == 9_700
    assert mall.stock("v10") == (None, 3)


def test_redeemers_and_cancellers_of_one_reward_never_oversell(pg_db, clock):
    """Cancellations give units back while others redeem: at the end, what is redeemed is
    exactly the live redemptions, within the stock, and every balance adds up."""
    mall = Mall(pg_db, clock)
    mall.put(
        code="seat",
        kind="experience",
        points=100,
        stock=5,
        experience={"starts_at": "2027-01-01T19:00:00+08:00"},
    )
    members = [mall.member(300) for _ in range(20)]
    first = [mall.redeem(m, "seat").id for m in members[:5]]
    start = Barrier(20)

    def act(i: int) -> str:
        start.wait()
        try:
            if i < 5:
                mall.cancel(first[i])
                return "cancelled"
            mall.redeem(members[i], "seat")
        except JifenError as refused:
            return refused.code
        return "redeemed"

    with ThreadPoolExecutor(20) as pool:
        outcomes = list(pool.map(act, range(20)))
    assert outcomes[:5] == ["cancelled"] * 5
    live = _count(mall, Redemption, status="issued")
    assert live == outcomes.count("redeemed") <= 5
    assert mall.stock("seat") == (5, live)
    spent = sum(300 - mall.available(m) for m in members)
    assert spent == 100 * live
