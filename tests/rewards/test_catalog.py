"""The catalog: put is an upsert that keeps `redeemed`, spec_of round-trips exactly, stock
cannot fall below what is redeemed, restocks are atomic, listing filters."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from jifen.core.errors import InvalidInput
from jifen.programs.rewards import RewardKind
from jifen.rewards import catalog
from jifen.rewards.errors import StockBelowRedeemed, UnknownReward
from rewards.mall import ADDRESS, COUPON, Mall, reward_spec

SHANGHAI = ZoneInfo("Asia/Shanghai")

EVERY_FIELD = {
    "code": "voucher-10",
    "name": "10 元代金券",
    "description": "满 50 可用",
    "kind": "coupon",
    "points": 100,
    "prices": {"gold": 80, "platinum": 60},
    "tiers": ["silver", "gold", "platinum"],
    "available_from": datetime(2026, 1, 1, tzinfo=SHANGHAI),
    "available_until": datetime(2026, 12, 31, 23, 59, tzinfo=SHANGHAI),
    "stock": 500,
    "limit_per_day": 2,
    "limit_per_member": 10,
    "coupon": {
        "kind": "percent",
        "percent": "12.5",
        "cap": "30",
        "min_spend": "99.90",
        "categories": ["fresh", "dairy"],
        "valid_until": "2027-01-31",
    },
    "active": True,
}


def test_put_creates_then_changes_nothing_when_put_again(db, clock):
    mall = Mall(db, clock)
    spec = reward_spec(**EVERY_FIELD)
    _, changed = mall.write(lambda s: catalog.put_reward(s, mall.program(s), spec, now=clock.now()))
    assert changed
    assert catalog.same_spec(
        mall.read(lambda s: catalog.spec_of(catalog.get_reward(s, mall.program_id, "voucher-10"))),
        spec,
    )
    clock.advance(timedelta(hours=1))
    again = mall.write(lambda s: catalog.put_reward(s, mall.program(s), spec, now=clock.now())[1])
    assert again is False
    stored = mall.reward("voucher-10")
    assert stored.updated_at == stored.created_at  # nothing written the second time


@pytest.mark.parametrize(
    "fields",
    [
        EVERY_FIELD,
        {"code": "tea", "name": "茶具", "kind": "goods", "points": 3000, "stock": 20},
        {
            "code": "concert",
            "name": "新品体验会",
            "kind": "experience",
            "points": 500,
            "stock": 30,
            "experience": {"starts_at": "2026-03-01T19:30:00+08:00", "location": "上海"},
        },
        {"code": "hope", "name": "希望工程", "kind": "charity", "points": 100, "cause": "hope"},
        {"code": "mix", "name": "积分+现金", "kind": "goods", "points": 500, "cash": "19.90"},
        {
            "code": "gift",
            "name": "生日券",
            "kind": "coupon",
            "points": 0,
            "active": False,
            "coupon": {"kind": "free_delivery", "valid_days": 7},
        },
    ],
    ids=lambda f: f["code"],
)
def test_spec_of_round_trips_exactly(db, clock, fields):
    mall = Mall(db, clock)
    spec = mall.put(**fields)
    back = mall.read(lambda s: catalog.spec_of(catalog.get_reward(s, mall.program_id, spec.code)))
    assert catalog.same_spec(back, spec)
    changed = mall.write(lambda s: catalog.put_reward(s, mall.program(s), back, now=clock.now())[1])
    assert changed is False


def test_put_changes_the_spec_and_keeps_what_is_redeemed(db, clock):
    mall = Mall(db, clock)
    mall.put(code="tea", kind="goods", points=300, stock=5)
    member = mall.member(1000)
    mall.redeem(member, "tea", quantity=2, shipping=ADDRESS)
    spec = reward_spec(code="tea", kind="goods", points=250, stock=8, name="新茶具")
    reward, changed = mall.write(
        lambda s: catalog.put_reward(s, mall.program(s), spec, now=clock.now())
    )
    assert changed
    assert (reward.points, reward.name, reward.stock, reward.redeemed) == (250, "新茶具", 8, 2)
    assert catalog.left(mall.reward("tea")) == 6


def test_put_refuses_a_stock_below_what_is_redeemed_and_changes_nothing(db, clock):
    mall = Mall(db, clock)
    mall.put(code="tea", kind="goods", points=300, stock=5)
    member = mall.member(1000)
    mall.redeem(member, "tea", quantity=3, shipping=ADDRESS)
    spec = reward_spec(code="tea", kind="goods", points=1, stock=2)
    with pytest.raises(StockBelowRedeemed) as refused:
        mall.write(lambda s: catalog.put_reward(s, mall.program(s), spec, now=clock.now()))
    assert refused.value.params == {"code": "tea", "reward": "tea", "redeemed": 3, "stock": 2}
    reward = mall.reward("tea")
    assert (reward.points, reward.stock, reward.redeemed) == (300, 5, 3)
    # exactly what is redeemed is allowed: nothing left
    mall.write(
        lambda s: catalog.put_reward(
            s, mall.program(s), spec.model_copy(update={"stock": 3}), now=clock.now()
        )
    )
    assert mall.stock("tea") == (3, 3)


def test_add_stock_raises_and_lowers_but_never_below_redeemed(db, clock):
    mall = Mall(db, clock)
    mall.put(code="tea", kind="goods", points=300, stock=5)
    member = mall.member(1000)
    mall.redeem(member, "tea", quantity=2, shipping=ADDRESS)

    def add(n: int):
        return mall.write(
            lambda s: catalog.add_stock(s, mall.program_id, "tea", n, now=clock.now())
        )

    assert add(10).stock == 15
    assert add(-13).stock == 2
    with pytest.raises(StockBelowRedeemed) as refused:
        add(-1)
    assert refused.value.params == {"code": "tea", "reward": "tea", "redeemed": 2, "stock": 1}
    assert mall.stock("tea") == (2, 2)
    with pytest.raises(InvalidInput):
        add(0)
    mall.put(code="svc")
    with pytest.raises(InvalidInput) as unlimited:
        mall.write(lambda s: catalog.add_stock(s, mall.program_id, "svc", 5, now=clock.now()))
    assert "no stock limit" in unlimited.value.params["reason"]
    with pytest.raises(UnknownReward):
        mall.write(lambda s: catalog.add_stock(s, mall.program_id, "nope", 5, now=clock.now()))


def test_list_filters_by_kind_and_availability(db, clock):
    mall = Mall(db, clock)
    now = clock.now()
    mall.put(code="svc")
    mall.put(code="old", available_until=now - timedelta(seconds=1))
    mall.put(code="soon", available_from=now + timedelta(days=1))
    mall.put(code="off", active=False)
    mall.put(code="only-gift", points=0)
    mall.put(code="tea", kind="goods", points=300, stock=0)
    mall.put(code="event", kind="experience", points=10, experience={"starts_at": now.isoformat()})
    mall.put(code="coupon", kind="coupon", points=100, coupon=COUPON)

    def codes(**kw):
        return [r.code for r in mall.read(lambda s: catalog.list_rewards(s, mall.program_id, **kw))]

    assert codes() == ["svc", "old", "soon", "off", "only-gift", "tea", "event", "coupon"]
    assert codes(kind=RewardKind.SERVICE) == ["svc", "old", "soon", "off", "only-gift"]
    # out of stock is still on offer (shown with left: 0); an event starting now is not
    assert codes(available_at=now) == ["svc", "tea", "coupon"]
    assert codes(available_at=now + timedelta(days=2), kind=RewardKind.SERVICE) == ["svc", "soon"]


def test_prices_by_tier(db, clock):
    mall = Mall(db, clock)
    mall.put(code="svc", points=100, prices={"gold": 80, "normal": 120})
    reward = mall.reward("svc")
    assert catalog.price_for(reward, "gold") == 80
    assert catalog.price_for(reward, "normal") == 120
    assert catalog.price_for(reward, "silver") == 100
    assert catalog.price_for(reward, None) == 100
