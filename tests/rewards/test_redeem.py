"""Redeeming (R2): the price at the member's tier is debited from the earliest-expiring
lots, stock taken, the reward issued, all in one transaction; every refusal is specific and
changes nothing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError
from sqlalchemy import select

from jifen.core.errors import InsufficientPoints, InvalidInput, MemberClosed, MemberFrozen, NotFound
from jifen.db.outbox import OutboxEvent
from jifen.ledger import service as ledger
from jifen.ledger.models import JournalTransaction
from jifen.members import service as members
from jifen.members.schemas import MemberRef, MemberStatus
from jifen.rewards import reads, redemptions
from jifen.rewards.errors import (
    LimitReached,
    OutOfStock,
    RewardUnavailable,
    TierNotAllowed,
    UnknownReward,
)
from jifen.rewards.schemas import RedemptionIn
from rewards.mall import ADDRESS, COUPON, Mall

SHANGHAI = ZoneInfo("Asia/Shanghai")
MONTHLY = {"kind": "after_months", "months": 1}


def test_a_redemption_debits_the_earliest_expiring_lots_first(db, clock):
    mall = Mall(db, clock, expiry_policy={"kind": "after_months", "months": 12})
    member = mall.member()
    mall.earn(member, 300)  # expires in 12 months
    mall.earn(member, 200, at=clock.now() - timedelta(days=200))  # expires sooner
    mall.put(code="svc", points=250)
    redemption = mall.redeem(member, "svc")
    assert (redemption.points, redemption.quantity, redemption.status) == (250, 1, "issued")
    assert redemption.source == "redeemed"
    assert redemption.tier == "normal"
    assert mall.available(member) == 250
    lots = mall.lots(member)
    assert [(amount, remaining) for amount, remaining, *_ in lots] == [(300, 250), (200, 0)]
    spend = mall.read(lambda s: s.get(JournalTransaction, redemption.spend_txn_id))
    assert spend.kind == "spend"
    assert spend.points == 250
    assert spend.reference == f"redemption:{redemption.id}"
    assert spend.details == {
        "redemption_id": redemption.id,
        "reward": "svc",
        "name": "优先服务",
        "quantity": 1,
    }
    events = mall.read(
        lambda s: [
            (e.type, e.payload)
            for e in s.execute(
                select(OutboxEvent).where(
                    OutboxEvent.program_id == mall.program_id, OutboxEvent.type.like("reward.%")
                )
            ).scalars()
        ]
    )
    assert events == [
        (
            "reward.redeemed",
            {
                "redemption_id": redemption.id,
                "reward": "svc",
                "kind": "service",
                "quantity": 1,
                "points": 250,
                "source": "redeemed",
                "status": "issued",
            },
        )
    ]


def test_quantity_multiplies_price_and_takes_that_much_stock(db, clock):
    mall = Mall(db, clock)
    mall.put(code="tea", kind="goods", points=120, stock=10)
    member = mall.member(1000)
    redemption = mall.redeem(member, "tea", quantity=3, shipping=ADDRESS)
    assert (redemption.points, redemption.status) == (360, "pending")
    assert redemption.shipping == ADDRESS
    assert mall.available(member) == 640
    assert mall.stock("tea") == (10, 3)


def test_tier_price_and_tier_restriction(db, clock):
    mall = Mall(db, clock)
    mall.put(
        code="lounge", points=1000, prices={"gold": 600, "platinum": 0}, tiers=["gold", "platinum"]
    )
    normal = mall.member(5000)
    gold = mall.member(5000, tier="gold")
    platinum = mall.member(5000, tier="platinum")
    with mall.unchanged(), pytest.raises(TierNotAllowed) as refused:
        mall.redeem(normal, "lounge")
    assert refused.value.params["allowed"] == "金卡会员 (gold), 铂金会员 (platinum)"
    assert refused.value.params["tier"] == "普通会员 (normal)"
    assert "仅限" in refused.value.message("zh-CN")
    assert mall.redeem(gold, "lounge", quantity=2).points == 1200
    assert mall.available(gold) == 3800
    free = mall.redeem(platinum, "lounge")
    assert (free.points, free.spend_txn_id, free.tier) == (0, None, "platinum")
    assert mall.available(platinum) == 5000
    assert mall.stock("lounge") == (None, 3)


def test_a_programme_without_tiers_cannot_redeem_a_tier_only_reward(db, clock):
    mall = Mall(db, clock)
    mall.write(lambda s: setattr(mall.program(s), "tiers", None))
    mall.put(code="vip", tiers=["gold"])
    mall.put(code="svc", prices={"gold": 1})
    member = mall.member(500)
    with mall.unchanged(), pytest.raises(TierNotAllowed) as refused:
        mall.redeem(member, "vip")
    assert refused.value.params["tier"] == "—"
    assert mall.redeem(member, "svc").tier is None
    assert mall.available(member) == 400


def test_points_and_cash(db, clock):
    mall = Mall(db, clock)
    mall.put(code="kettle", kind="goods", points=800, cash="49.90", stock=5)
    member = mall.member(2000)
    with mall.unchanged(), pytest.raises(InvalidInput) as missing:
        mall.redeem(member, "kettle", shipping=ADDRESS)
    assert missing.value.params["field"] == "payment_reference"
    redemption = mall.redeem(
        member, "kettle", quantity=2, shipping=ADDRESS, payment_reference="wx-pay-001"
    )
    assert (redemption.points, redemption.cash) == (1600, Decimal("99.80"))
    assert redemption.payment_reference == "wx-pay-001"
    assert mall.available(member) == 400
    mall.put(code="svc")
    with mall.unchanged(), pytest.raises(InvalidInput) as extra:
        mall.redeem(member, "svc", payment_reference="wx-pay-002")
    assert extra.value.params["field"] == "payment_reference"


def test_a_coupon_reward_issues_one_coupon_per_unit(db, clock):
    mall = Mall(db, clock)
    mall.put(code="v10", kind="coupon", points=100, coupon=COUPON)
    member = mall.member(500)
    redemption = mall.redeem(member, "v10", quantity=2)
    issued = mall.coupons(redemption.id)
    assert len(issued) == 2
    assert {c.status for c in issued} == {"issued"}
    assert {c.amount for c in issued} == {Decimal("10")}
    assert {c.min_spend for c in issued} == {Decimal("50")}
    # 30 programme-local days, the day of issue the first: to the end of 13 February
    assert {c.expires_at for c in issued} == {datetime(2026, 2, 14, tzinfo=SHANGHAI)}
    out = mall.read(lambda s: reads.describe(s, reads.get(s, mall.program_id, redemption.id)))
    assert [c.code.count("-") for c in out.coupons] == [2, 2]


def test_a_donation_records_its_cause_and_the_totals(db, clock):
    mall = Mall(db, clock)
    mall.put(code="hope", name="希望工程", kind="charity", points=100, cause="hope-project")
    mall.put(code="tree", name="种树", kind="charity", points=50, cause="trees")
    a, b = mall.member(1000), mall.member(1000)
    first = mall.redeem(a, "hope", quantity=3)
    mall.redeem(a, "hope")
    mall.redeem(b, "hope")
    mall.redeem(b, "tree", quantity=2)
    cancelled = mall.redeem(b, "tree")
    mall.cancel(cancelled.id)
    assert first.cause == "hope-project"
    totals = mall.read(lambda s: reads.charity_totals(s, mall.program_id))
    assert [t.model_dump() for t in totals.causes] == [
        {"cause": "hope-project", "donations": 3, "units": 5, "points": 500, "members": 2},
        {"cause": "trees", "donations": 1, "units": 2, "points": 100, "members": 1},
    ]


def test_the_per_day_limit_resets_the_next_programme_local_day(db, clock):
    mall = Mall(db, clock)
    mall.put(code="svc", points=10, limit_per_day=2)
    member = mall.member(1000)
    clock.set(datetime(2026, 1, 20, 23, 30, tzinfo=SHANGHAI))  # 15:30 UTC
    mall.redeem(member, "svc")
    mall.redeem(member, "svc")
    with mall.unchanged(), pytest.raises(LimitReached) as refused:
        mall.redeem(member, "svc")
    assert refused.value.params == {
        "code": "svc",
        "reward": "svc",
        "period": "day",
        "limit": 2,
        "used": 2,
    }
    assert "每天" in refused.value.message("zh-CN")
    assert "a day" in refused.value.message("en")
    clock.set(datetime(2026, 1, 20, 23, 59, 59, tzinfo=SHANGHAI))
    with pytest.raises(LimitReached):
        mall.redeem(member, "svc")
    clock.set(datetime(2026, 1, 21, 0, 0, tzinfo=SHANGHAI))  # still the 20th in UTC
    assert clock.now().astimezone(UTC).day == 20
    mall.redeem(member, "svc", quantity=2)
    with pytest.raises(LimitReached) as again:
        mall.redeem(member, "svc")
    assert again.value.params["used"] == 2
    assert mall.available(member) == 960


def test_the_lifetime_limit_counts_units_and_not_cancelled_ones_or_gifts(db, clock):
    mall = Mall(db, clock)
    mall.put(code="svc", points=10, limit_per_member=3)
    member = mall.member(1000)
    first = mall.redeem(member, "svc", quantity=2)
    with mall.unchanged(), pytest.raises(LimitReached) as refused:
        mall.redeem(member, "svc", quantity=2)
    assert refused.value.params == {
        "code": "svc",
        "reward": "svc",
        "period": "ever",
        "limit": 3,
        "used": 2,
    }
    mall.give(member, "svc", quantity=5)  # gifts do not count
    mall.redeem(member, "svc")
    clock.advance(timedelta(days=400))
    with pytest.raises(LimitReached):
        mall.redeem(member, "svc")
    mall.cancel(first.id)
    assert mall.redeem(member, "svc", quantity=2).quantity == 2


def test_out_of_stock_names_what_is_left_and_changes_nothing(db, clock):
    mall = Mall(db, clock)
    mall.put(code="tea", kind="goods", points=100, stock=3)
    a, b = mall.member(1000), mall.member(1000)
    mall.redeem(a, "tea", quantity=2, shipping=ADDRESS)
    with mall.unchanged(), pytest.raises(OutOfStock) as refused:
        mall.redeem(b, "tea", quantity=2, shipping=ADDRESS)
    assert refused.value.params == {"code": "tea", "reward": "tea", "quantity": 2, "left": 1}
    assert "剩余 1" in refused.value.message("zh-CN")
    mall.redeem(b, "tea", shipping=ADDRESS)
    with mall.unchanged(), pytest.raises(OutOfStock) as empty:
        mall.redeem(b, "tea", shipping=ADDRESS)
    assert empty.value.params["left"] == 0
    assert mall.stock("tea") == (3, 3)
    assert (mall.available(a), mall.available(b)) == (800, 900)


def test_not_enough_points(db, clock):
    mall = Mall(db, clock, pending_days=7)
    mall.put(code="svc", points=300)
    member, other = mall.member(250), mall.member(500)
    mall.write(
        lambda s: ledger.credit(s, mall.book, member, 500, now=clock.now(), actor="t", pending=True)
    )
    with mall.unchanged(), pytest.raises(InsufficientPoints) as refused:
        mall.redeem(member, "svc")  # pending points cannot be spent
    assert refused.value.params == {"needed": 300, "available": 250}
    with mall.unchanged(), pytest.raises(InsufficientPoints) as twice:
        mall.redeem(other, "svc", quantity=2)
    assert twice.value.params == {"needed": 600, "available": 500}


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"active": False}, "inactive"),
        ({"available_from": "2026-01-16T00:00:00+08:00"}, "not-yet"),
        ({"available_until": "2026-01-15T10:00:00+08:00"}, "ended"),
        ({"points": 0}, "benefit-only"),
        (
            {
                "kind": "experience",
                "stock": 30,
                "experience": {"starts_at": "2026-01-15T10:00:00+08:00"},
            },
            "started",
        ),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_unavailable_rewards(db, clock, fields, reason):
    mall = Mall(db, clock)  # now is 2026-01-15 10:00 in Shanghai
    mall.put(code="svc", **fields)
    member = mall.member(1000)
    with mall.unchanged(), pytest.raises(RewardUnavailable) as refused:
        mall.redeem(member, "svc")
    assert refused.value.params["reason"] == reason
    assert "svc" in refused.value.message("en")
    assert refused.value.message("zh-CN").startswith("奖励 svc 现在不可兑换：")


def test_an_experience_is_redeemable_until_it_starts(db, clock):
    mall = Mall(db, clock)
    starts = clock.now() + timedelta(hours=1)
    mall.put(
        code="trial",
        kind="experience",
        points=200,
        stock=2,
        experience={"starts_at": starts.isoformat(), "location": "上海"},
    )
    member = mall.member(1000)
    assert mall.redeem(member, "trial").status == "issued"
    clock.set(starts)
    with pytest.raises(RewardUnavailable):
        mall.redeem(member, "trial")


@pytest.mark.parametrize(
    ("reward", "fields", "field"),
    [
        ("tea", {}, "shipping"),
        ("svc", {"shipping": ADDRESS}, "shipping"),
        ("svc", {"quantity": 0}, "quantity"),
        ("svc", {"quantity": 1001}, "quantity"),
    ],
)
def test_bad_input_is_refused_and_changes_nothing(db, clock, reward, fields, field):
    mall = Mall(db, clock)
    mall.put(code="tea", kind="goods", points=100, stock=5)
    mall.put(code="svc")
    member = mall.member(1000)
    with mall.unchanged():
        if "quantity" in fields:  # the API refuses it as a body; the service, called directly
            with pytest.raises(ValidationError):
                RedemptionIn.model_validate({"member": {"id": member}, "reward": reward, **fields})
            data = RedemptionIn.model_construct(
                member=MemberRef(id=member), reward=reward, quantity=fields["quantity"]
            )
            with pytest.raises(InvalidInput) as refused:
                mall.write(
                    lambda s: redemptions.redeem(
                        s, mall.program(s), mall.book, data, now=clock.now(), actor="t"
                    )
                )
        else:
            with pytest.raises(InvalidInput) as refused:
                mall.redeem(member, reward, **fields)
    assert refused.value.params["field"] == field


def test_unknown_reward_and_member(db, clock):
    mall = Mall(db, clock)
    member = mall.member(1000)
    with mall.unchanged(), pytest.raises(UnknownReward) as refused:
        mall.redeem(member, "nope")
    assert refused.value.params == {"code": "nope", "reward": "nope"}
    mall.put(code="svc")
    with mall.unchanged(), pytest.raises(NotFound):
        mall.redeem(member + 1000, "svc")


@pytest.mark.parametrize(("status", "error"), [("frozen", MemberFrozen), ("closed", MemberClosed)])
def test_a_frozen_or_closed_member_cannot_redeem(db, clock, status, error):
    mall = Mall(db, clock)
    mall.put(code="svc")
    member = mall.member(1000)
    mall.write(
        lambda s: members.set_status(
            s, mall.book, member, MemberStatus(status), reason="x", now=clock.now()
        )
    )
    with mall.unchanged(), pytest.raises(error):
        mall.redeem(member, "svc")


def test_the_member_can_be_named_by_phone(db, clock):
    mall = Mall(db, clock)
    mall.put(code="svc")
    member = mall.member(1000, phone="13912345678")
    data = RedemptionIn.model_validate({"member": {"phone": "139 1234 5678"}, "reward": "svc"})
    done = mall.write(
        lambda s: redemptions.redeem(
            s, mall.program(s), mall.book, data, now=clock.now(), actor="t"
        )
    )
    assert done.member_id == member
