"""Many tills at one coupon, one checkout hold (PostgreSQL: separate connections, real row
locks, READ COMMITTED). A coupon is used once; a hold is spent once; a retried order gets
the first result."""

from __future__ import annotations

from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from threading import Barrier
from typing import Any

import pytest
from sqlalchemy import func, select

from jifen.core.errors import HoldNotActive, JifenError
from jifen.db.outbox import OutboxEvent
from jifen.db.uow import Database
from jifen.earning.models import Purchase
from jifen.ledger.models import JournalTransaction
from jifen.rewards.errors import CouponNotUsable
from rewards.test_checkout import FOOD_200, Till
from rewards.test_coupons import Coupons, line

pytestmark = pytest.mark.postgres
WORKERS = 16


def _count(db: Database, model: Any, program_id: int, **where: Any) -> int:
    return db.read(
        lambda s: int(
            s.execute(
                select(func.count())
                .select_from(model)
                .where(model.program_id == program_id)
                .filter_by(**where)
            ).scalar_one()
        )
    )


def _race(n: int, attempt: Any) -> list[Any]:
    start = Barrier(n)

    def run(i: int) -> Any:
        start.wait()
        try:
            return attempt(i)
        except JifenError as refused:
            return refused

    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(run, range(n)))


def test_a_coupon_used_on_16_orders_at_once_is_used_once(pg_db, clock) -> None:
    shop = Coupons(pg_db, clock)
    code = shop.issue(amount="20")
    outcomes = _race(WORKERS, lambda i: shop.use(code, f"ORDER-{i}", line("tea", 60)))
    used = [o for o in outcomes if not isinstance(o, JifenError)]
    refused = [o for o in outcomes if isinstance(o, JifenError)]
    assert len(used) == 1
    (won,) = used
    assert (won.discount, won.repeated) == (Decimal("20.00"), False)
    assert len(refused) == WORKERS - 1
    for problem in refused:
        assert isinstance(problem, CouponNotUsable)
        assert (problem.params["reason"], problem.params["order"]) == ("used", won.order)
    row = shop.row(code)
    assert (row.status, row.used_order, row.discount) == ("used", won.order, Decimal("20.00"))
    assert len(shop.events("coupon.used")) == 1


def test_one_order_retried_on_16_connections_gets_one_result(pg_db, clock) -> None:
    shop = Coupons(pg_db, clock)
    code = shop.issue(amount="20")
    outcomes = _race(WORKERS, lambda i: shop.use(code, "ORDER-1", line("tea", 60)))
    assert not [o for o in outcomes if isinstance(o, JifenError)]
    assert Counter(o.repeated for o in outcomes) == {False: 1, True: WORKERS - 1}
    assert {(o.order, o.discount) for o in outcomes} == {("ORDER-1", Decimal("20.00"))}
    assert len(shop.events("coupon.used")) == 1


def test_one_paid_order_retried_on_8_connections_spends_the_hold_once(pg_db, clock) -> None:
    till = Till(pg_db, clock)
    member = till.mall.member(1000)
    held, _ = till.hold(member, "A-1", 500)
    outcomes = _race(8, lambda i: till.buy(member, "A-1", FOOD_200, hold=held.id))
    assert not [o for o in outcomes if isinstance(o, JifenError)], outcomes
    assert Counter(created for _, created in outcomes) == {True: 1, False: 7}
    assert {shown.id for shown, _ in outcomes} == {outcomes[0][0].id}
    program = till.mall.program_id
    assert _count(pg_db, Purchase, program) == 1
    assert _count(pg_db, JournalTransaction, program, kind="capture") == 1
    assert till.balance(member) == (650, 0)


def test_a_void_racing_the_purchase_either_spends_or_returns_the_points(pg_db, clock) -> None:
    till = Till(pg_db, clock)
    for _ in range(4):
        member = till.mall.member(1000)
        held, _ = till.hold(member, f"A-{member}", 500)

        def attempt(i: int, member: int = member, hold: int = held.id) -> Any:
            if i == 0:
                return till.void(hold)
            return till.buy(member, f"A-{member}", FOOD_200, hold=hold)

        voided, bought = _race(2, attempt)
        if isinstance(bought, HoldNotActive):  # the void came first
            assert voided.status == "voided"
            assert till.balance(member) == (1000, 0)
        else:  # the purchase came first: the void is refused
            assert isinstance(voided, HoldNotActive)
            assert bought[0].paid_points == 500
            assert till.balance(member) == (650, 0)
    assert (
        _count(pg_db, OutboxEvent, till.mall.program_id, type="hold.voided")
        + _count(pg_db, JournalTransaction, till.mall.program_id, kind="capture")
        == 4
    )
