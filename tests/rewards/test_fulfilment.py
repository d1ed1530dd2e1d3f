"""Goods fulfilment (R5): pending → shipped → delivered; any other step is refused as
redemption-state and changes nothing."""

from __future__ import annotations

from datetime import timedelta

import pytest

from jifen.core.errors import NotFound
from jifen.rewards import fulfilment, reads
from jifen.rewards.errors import RedemptionState
from rewards.mall import ADDRESS, Mall


def _ship(mall: Mall, redemption: int, tracking: str = "SF1234567890"):
    return mall.write(
        lambda s: fulfilment.ship(
            s,
            mall.program_id,
            redemption,
            carrier="顺丰",
            tracking=tracking,
            now=mall.clock.now(),
            actor="warehouse",
        )
    )


def _deliver(mall: Mall, redemption: int):
    return mall.write(
        lambda s: fulfilment.deliver(
            s, mall.program_id, redemption, now=mall.clock.now(), actor="warehouse"
        )
    )


def test_goods_move_pending_shipped_delivered(db, clock):
    mall = Mall(db, clock)
    mall.put(code="tea", kind="goods", points=100, stock=5)
    member = mall.member(1000)
    redemption = mall.redeem(member, "tea", shipping=ADDRESS)
    assert redemption.status == "pending"
    with mall.unchanged(), pytest.raises(RedemptionState) as early:
        _deliver(mall, redemption.id)
    assert early.value.params == {
        "redemption_id": redemption.id,
        "state": "pending",
        "action": "deliver",
    }
    clock.advance(timedelta(days=1))
    shipped_at = clock.now()
    shipped = _ship(mall, redemption.id)
    assert shipped.status == "shipped"
    with mall.unchanged(), pytest.raises(RedemptionState) as twice:
        _ship(mall, redemption.id, "another")
    assert twice.value.params["state"] == "shipped"
    clock.advance(timedelta(days=2))
    delivered = _deliver(mall, redemption.id)
    assert delivered.status == "delivered"
    out = mall.read(lambda s: reads.describe(s, reads.get(s, mall.program_id, redemption.id)))
    assert out.fulfilment.model_dump() == {
        "carrier": "顺丰",
        "tracking": "SF1234567890",
        "shipped_at": shipped_at,
        "delivered_at": clock.now(),
        "cancelled_at": None,
        "cancel_reason": None,
    }
    for step in (_ship, _deliver):
        with mall.unchanged(), pytest.raises(RedemptionState) as late:
            step(mall, redemption.id)
        assert late.value.params["state"] == "delivered"
    assert mall.available(member) == 900


def test_only_goods_are_shipped_and_a_cancelled_parcel_goes_nowhere(db, clock):
    mall = Mall(db, clock)
    mall.put(code="svc")
    mall.put(code="tea", kind="goods", points=100, stock=5)
    member = mall.member(1000)
    service = mall.redeem(member, "svc")
    with mall.unchanged(), pytest.raises(RedemptionState) as refused:
        _ship(mall, service.id)
    assert refused.value.params["state"] == "issued"
    assert "cannot be shipped" in refused.value.message("en")
    assert "不能发货" in refused.value.message("zh-CN")
    goods = mall.redeem(member, "tea", shipping=ADDRESS)
    mall.cancel(goods.id)
    with mall.unchanged(), pytest.raises(RedemptionState):
        _ship(mall, goods.id)
    with mall.unchanged(), pytest.raises(NotFound):
        _ship(mall, goods.id + 100)
