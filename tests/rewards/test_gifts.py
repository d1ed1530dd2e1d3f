"""`give`: a reward given free as a tier benefit or birthday gift — no points, no tier
check, no per-member limit, the window ignored, but stock taken atomically and the reward
issued exactly as a redemption issues it."""

from __future__ import annotations

from datetime import timedelta

import pytest

from jifen.core.errors import InvalidInput, MemberFrozen
from jifen.db.outbox import OutboxEvent
from jifen.members import service as members
from jifen.members.schemas import MemberStatus
from jifen.rewards.errors import OutOfStock, RewardUnavailable, UnknownReward
from jifen.rewards.models import Coupon, Redemption
from rewards.mall import ADDRESS, COUPON, Mall


def test_a_coupon_benefit_costs_nothing_and_issues_coupons(db, clock):
    mall = Mall(db, clock)
    mall.put(
        code="free-delivery",
        kind="coupon",
        points=0,
        active=True,
        tiers=["gold"],
        limit_per_member=1,
        stock=100,
        coupon={"kind": "free_delivery", "valid_days": 31},
    )
    member = mall.member(50)  # normal tier: the tier restriction does not apply to gifts
    given = mall.give(member, "free-delivery", quantity=2, details={"period": "2026-01"})
    again = mall.give(member, "free-delivery", source="birthday")  # no per-member limit
    assert (given.points, given.source, given.status, given.quantity) == (0, "benefit", "issued", 2)
    assert given.spend_txn_id is None
    assert given.tier == "normal"
    assert given.details == {"period": "2026-01"}
    assert again.source == "birthday"
    issued = mall.coupons(given.id)
    assert [c.kind for c in issued] == ["free_delivery", "free_delivery"]
    assert len({c.code for c in issued}) == 2
    assert mall.available(member) == 50
    assert mall.stock("free-delivery") == (100, 3)
    events = mall.read(
        lambda s: [
            e.type for e in s.query(OutboxEvent).filter(OutboxEvent.program_id == mall.program_id)
        ]
    )
    assert events.count("reward.given") == 2


def test_goods_given_wait_pending_with_the_address_if_given(db, clock):
    mall = Mall(db, clock)
    mall.put(code="mug", kind="goods", points=0, stock=1)
    member = mall.member()
    from jifen.rewards.schemas import ShippingAddress

    given = mall.give(member, "mug", shipping=ShippingAddress.model_validate(ADDRESS))
    assert given.status == "pending"
    assert given.shipping["city"] == "上海市"
    with pytest.raises(OutOfStock) as refused:
        mall.give(mall.member(), "mug")
    assert refused.value.params == {"code": "mug", "reward": "mug", "quantity": 1, "left": 0}
    assert mall.stock("mug") == (1, 1)
    assert mall.count(Redemption) == 1


def test_gifts_ignore_the_window_but_not_a_withdrawn_reward_or_a_started_event(db, clock):
    mall = Mall(db, clock)
    now = clock.now()
    mall.put(code="late", available_until=now - timedelta(days=1))
    mall.put(code="off", active=False)
    mall.put(
        code="event",
        kind="experience",
        points=0,
        experience={"starts_at": (now - timedelta(minutes=1)).isoformat()},
    )
    member = mall.member()
    assert mall.give(member, "late").status == "issued"
    with pytest.raises(RewardUnavailable) as off:
        mall.give(member, "off")
    assert off.value.params["reason"] == "inactive"
    with pytest.raises(RewardUnavailable) as started:
        mall.give(member, "event")
    assert started.value.params["reason"] == "started"
    with pytest.raises(UnknownReward):
        mall.give(member, "nope")
    with pytest.raises(InvalidInput):
        mall.give(member, "late", source="redeemed")
    with pytest.raises(InvalidInput):
        mall.give(member, "late", quantity=0)
    assert mall.count(Redemption) == 1


def test_a_frozen_member_gets_no_gift(db, clock):
    mall = Mall(db, clock)
    mall.put(code="c", kind="coupon", points=0, coupon=COUPON)
    member = mall.member()
    mall.write(
        lambda s: members.set_status(
            s, mall.book, member, MemberStatus.FROZEN, reason="x", now=clock.now()
        )
    )
    with pytest.raises(MemberFrozen):
        mall.give(member, "c")
    assert (mall.count(Redemption), mall.count(Coupon)) == (0, 0)
