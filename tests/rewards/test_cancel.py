"""Cancelling (R2): the points return to the very lots they came from with their original
expiry (an expired lot returns them expired), the stock comes back, coupons are cancelled
(refused if one was used), goods only while pending, an experience only before it starts;
twice is the same as once."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select, update

from jifen.core.errors import Forbidden, InvalidInput, NotFound
from jifen.db.outbox import OutboxEvent
from jifen.ledger.models import JournalTransaction
from jifen.rewards import fulfilment
from jifen.rewards.errors import CancelRefused, RedemptionState
from jifen.rewards.models import Coupon
from rewards.mall import ADDRESS, COUPON, Mall

YEARLY = {"kind": "after_months", "months": 12}


def _ship(mall: Mall, redemption: int) -> None:
    mall.write(
        lambda s: fulfilment.ship(
            s,
            mall.program_id,
            redemption,
            carrier="SF",
            tracking="SF1",
            now=mall.clock.now(),
            actor="t",
        )
    )


def test_cancelling_returns_the_points_to_their_original_lots_and_the_stock(db, clock):
    mall = Mall(db, clock, expiry_policy=YEARLY)
    member = mall.member()
    mall.earn(member, 200, at=clock.now() - timedelta(days=200))  # expires first
    mall.earn(member, 300)
    mall.put(code="tea", kind="goods", points=400, stock=5)
    before = mall.lots(member)
    redemption = mall.redeem(member, "tea", shipping=ADDRESS)
    assert [(a, r) for a, r, *_ in mall.lots(member)] == [(200, 0), (300, 100)]
    clock.advance(timedelta(days=3))
    cancelled = mall.cancel(redemption.id, reason="缺货")
    assert cancelled.status == "cancelled"
    assert mall.lots(member) == before  # amounts, remaining, status and expiry, exactly
    assert mall.available(member) == 500
    assert mall.stock("tea") == (5, 0)
    reversal = mall.read(lambda s: s.get(JournalTransaction, cancelled.cancel_txn_id))
    assert (reversal.kind, reversal.reverses_id) == ("reversal", redemption.spend_txn_id)
    assert reversal.reference == f"redemption-cancel:{redemption.id}"
    assert reversal.reason == "缺货"
    assert cancelled.fulfilment == {
        "cancelled_at": clock.now().isoformat(),
        "cancel_reason": "缺货",
    }
    types = mall.read(
        lambda s: list(
            s.execute(
                select(OutboxEvent.type).where(
                    OutboxEvent.program_id == mall.program_id, OutboxEvent.type.like("reward.%")
                )
            ).scalars()
        )
    )
    assert types == ["reward.redeemed", "reward.cancelled"]


def test_points_of_a_lot_that_expired_meanwhile_come_back_expired(db, clock):
    mall = Mall(db, clock, expiry_policy=YEARLY)
    member = mall.member()
    mall.earn(member, 200, at=clock.now() - timedelta(days=350))  # expires in about 15 days
    mall.earn(member, 300)
    mall.put(code="svc", points=400)
    redemption = mall.redeem(member, "svc")
    soon, later = (lot[3] for lot in mall.lots(member))
    clock.set(soon + timedelta(days=1))
    mall.cancel(redemption.id)
    assert mall.available(member) == 300  # the 200 of the expired lot went to expiry
    assert mall.lots(member) == [(200, 0, "expired", soon), (300, 300, "available", later)]


def test_cancelling_twice_returns_the_same_and_writes_nothing(db, clock):
    mall = Mall(db, clock)
    mall.put(code="svc", points=100, stock=3)
    member = mall.member(500)
    redemption = mall.redeem(member, "svc")
    first = mall.cancel(redemption.id)
    clock.advance(timedelta(hours=1))
    with mall.unchanged():
        second = mall.cancel(redemption.id, reason="again")
    assert (second.status, second.cancel_txn_id, second.updated_at) == (
        "cancelled",
        first.cancel_txn_id,
        first.updated_at,
    )
    assert mall.available(member) == 500
    assert mall.stock("svc") == (3, 0)


def test_coupons_are_cancelled_with_the_redemption(db, clock):
    mall = Mall(db, clock)
    mall.put(code="v10", kind="coupon", points=100, coupon=COUPON, stock=10)
    member = mall.member(500)
    redemption = mall.redeem(member, "v10", quantity=2)
    mall.cancel(redemption.id)
    assert [
        (c.status, c.closed_at, c.cancel_reason, c.actor) for c in mall.coupons(redemption.id)
    ] == [
        ("cancelled", clock.now(), "member asked", "t"),
        ("cancelled", clock.now(), "member asked", "t"),
    ]
    assert mall.available(member) == 500
    assert mall.stock("v10") == (10, 0)


def test_a_redemption_whose_coupon_was_used_cannot_be_cancelled(db, clock):
    mall = Mall(db, clock)
    mall.put(code="v10", kind="coupon", points=100, coupon=COUPON, stock=10)
    member = mall.member(500)
    redemption = mall.redeem(member, "v10", quantity=2)
    used = mall.coupons(redemption.id)[1]
    mall.write(
        lambda s: s.execute(
            update(Coupon)
            .where(Coupon.id == used.id)
            .values(status="used", used_at=clock.now(), used_order="o-1", discount=10)
        )
    )
    with mall.unchanged(), pytest.raises(CancelRefused) as refused:
        mall.cancel(redemption.id)
    shown = f"{used.code[:5]}-{used.code[5:10]}-{used.code[10:]}"
    assert refused.value.params == {
        "redemption_id": redemption.id,
        "reason": "coupon-used",
        "coupon": shown,
    }
    assert f"券 {shown} 已被使用" in refused.value.message("zh-CN")
    assert [c.status for c in mall.coupons(redemption.id)] == ["issued", "used"]
    assert mall.available(member) == 300


def test_goods_only_while_pending(db, clock):
    mall = Mall(db, clock)
    mall.put(code="tea", kind="goods", points=100, stock=5)
    member = mall.member(1000)
    shipped = mall.redeem(member, "tea", shipping=ADDRESS)
    _ship(mall, shipped.id)
    with mall.unchanged(), pytest.raises(RedemptionState) as refused:
        mall.cancel(shipped.id)
    assert refused.value.params == {
        "redemption_id": shipped.id,
        "state": "shipped",
        "action": "cancel",
    }
    assert (
        refused.value.message("en")
        == f"Redemption {shipped.id} is shipped: it cannot be cancelled."
    )
    assert "不能取消" in refused.value.message("zh-CN")
    mall.write(
        lambda s: fulfilment.deliver(s, mall.program_id, shipped.id, now=clock.now(), actor="t")
    )
    with mall.unchanged(), pytest.raises(RedemptionState):
        mall.cancel(shipped.id)
    assert mall.available(member) == 900


def test_an_experience_only_before_it_starts(db, clock):
    mall = Mall(db, clock)
    starts = clock.now() + timedelta(days=2)
    mall.put(
        code="trial",
        kind="experience",
        points=100,
        stock=10,
        experience={"starts_at": starts.isoformat()},
    )
    member = mall.member(1000)
    early, late = mall.redeem(member, "trial"), mall.redeem(member, "trial")
    assert mall.cancel(early.id).status == "cancelled"
    clock.set(starts)
    with mall.unchanged(), pytest.raises(CancelRefused) as refused:
        mall.cancel(late.id)
    assert refused.value.params["reason"] == "started"
    assert mall.available(member) == 900
    assert mall.stock("trial") == (10, 1)


def test_the_members_app_may_only_cancel_goods_not_yet_shipped(db, clock):
    mall = Mall(db, clock)
    mall.put(code="tea", kind="goods", points=100, stock=5)
    mall.put(code="svc", points=100)
    member = mall.member(1000)
    service = mall.redeem(member, "svc")
    goods = mall.redeem(member, "tea", shipping=ADDRESS)
    with mall.unchanged(), pytest.raises(Forbidden):
        mall.cancel(service.id, pending_goods_only=True)
    assert mall.cancel(goods.id, pending_goods_only=True).status == "cancelled"
    assert mall.available(member) == 900


def test_a_gift_is_cancelled_without_points(db, clock):
    mall = Mall(db, clock)
    mall.put(code="c", kind="coupon", points=0, coupon=COUPON, stock=2)
    member = mall.member()
    gift = mall.give(member, "c")
    cancelled = mall.cancel(gift.id)
    assert (cancelled.status, cancelled.cancel_txn_id) == ("cancelled", None)
    assert mall.stock("c") == (2, 0)
    assert [c.status for c in mall.coupons(gift.id)] == ["cancelled"]


def test_a_reason_is_needed_and_the_redemption_must_exist(db, clock):
    mall = Mall(db, clock)
    mall.put(code="svc")
    member = mall.member(1000)
    redemption = mall.redeem(member, "svc")
    with mall.unchanged(), pytest.raises(InvalidInput):
        mall.cancel(redemption.id, reason="  ")
    with mall.unchanged(), pytest.raises(NotFound):
        mall.cancel(redemption.id + 1)
    other = Mall(db, clock)  # another programme's redemption does not exist for this one
    with other.unchanged(), pytest.raises(NotFound):
        other.cancel(redemption.id)
