"""Coupons (R3) through the services, on SQLite and PostgreSQL: coupons are made the way a
member gets them (a redemption of a coupon reward), then shown, checked against baskets,
used once (the same order again: the first result), cancelled and expired; every refusal
is specific and changes nothing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from itertools import count
from typing import Any

import pytest
from sqlalchemy import select

from jifen.core.errors import NotFound
from jifen.db.outbox import OutboxEvent
from jifen.db.uow import Database
from jifen.jobs.runner import run_job
from jifen.rewards import codes, coupons
from jifen.rewards.coupon_schemas import (
    BasketIn,
    CouponCheck,
    CouponOut,
    CouponState,
    CouponUse,
    UseIn,
)
from jifen.rewards.errors import (
    CouponCodeInvalid,
    CouponNotApplicable,
    CouponNotUsable,
    UnknownCoupon,
)
from jifen.rewards.models import Coupon
from rewards.mall import Mall

_rewards = count(1)
EXPIRES = datetime(2026, 2, 13, 16, 0, tzinfo=UTC)
"""A 30-day coupon issued on 15 January 2026 (Shanghai) is valid to the end of 13 February."""


def line(sku: str, amount: Any, category: str | None = None, **fields: Any) -> dict[str, Any]:
    found = {"sku": sku, "unit_price": str(amount), **fields}
    if category is not None:
        found["category"] = category
    return found


class Coupons:
    """A programme whose members redeem coupon rewards, and the coupon services called as
    the HTTP layer calls them (one unit of work each)."""

    def __init__(self, db: Database, clock: Any, **settings: Any) -> None:
        self.mall = Mall(db, clock, **settings)
        self.db = db
        self.clock = clock

    def issue(self, member: int | None = None, **terms: Any) -> str:
        """Redeem a fresh coupon reward (100 points) for `member` (a new one if none):
        the coupon's code."""
        if member is None:
            member = self.mall.member(100)
        elif self.mall.available(member) < 100:
            self.mall.earn(member, 100)
        reward = f"cpn-{next(_rewards)}"
        spec = {"kind": "fixed", "amount": "20", "valid_days": 30} | terms
        self.mall.put(code=reward, name=f"券 {reward}", kind="coupon", points=100, coupon=spec)
        redemption = self.mall.redeem(member, reward)
        (coupon,) = self.mall.coupons(redemption.id)
        return coupon.code

    def show(self, code: str) -> CouponOut:
        return self.db.read(
            lambda s: coupons.describe(
                s, coupons.find(s, self.mall.program_id, code), self.clock.now()
            )
        )

    def check(self, code: str, *lines: dict[str, Any], **body: Any) -> CouponCheck:
        data = BasketIn.model_validate({"lines": list(lines), **body})
        return self.db.read(
            lambda s: coupons.check(s, self.mall.program_id, code, data, now=self.clock.now())
        )

    def use(self, code: str, order: str, *lines: dict[str, Any], **body: Any) -> CouponUse:
        data = UseIn.model_validate({"order": order, "lines": list(lines), **body})
        return self.db.write(
            lambda s: coupons.use(
                s, self.mall.program_id, code, data, now=self.clock.now(), actor="till-1"
            )
        )

    def cancel(self, code: str, reason: str = "issued in error") -> CouponOut:
        return self.db.write(
            lambda s: coupons.cancel(
                s, self.mall.program_id, code, reason=reason, now=self.clock.now(), actor="staff"
            )
        )

    def row(self, code: str) -> Coupon:
        return self.db.read(
            lambda s: s.execute(select(Coupon).where(Coupon.code == code)).scalar_one()
        )

    def events(self, kind: str) -> list[dict[str, Any]]:
        return self.db.read(
            lambda s: [
                e.payload
                for e in s.execute(
                    select(OutboxEvent)
                    .where(OutboxEvent.program_id == self.mall.program_id, OutboxEvent.type == kind)
                    .order_by(OutboxEvent.id)
                ).scalars()
            ]
        )


@pytest.fixture
def shop(db, clock) -> Coupons:
    return Coupons(db, clock)


# -- reading ---------------------------------------------------------------------------------


def test_a_redeemed_coupon_shows_its_terms_and_status(shop: Coupons) -> None:
    member = shop.mall.member(100)
    code = shop.issue(member, amount="20", min_spend="100", categories=["food"])
    shown = shop.show(codes.display(code).lower())
    assert shown.code == code
    assert shown.display == codes.display(code)
    assert shown.status == CouponState.ISSUED
    assert shown.member_id == member
    assert (shown.kind, shown.amount, shown.min_spend) == ("fixed", Decimal("20"), Decimal("100"))
    assert shown.categories == ["food"]
    assert shown.expires_at == EXPIRES
    assert (shown.used_at, shown.used_order, shown.discount, shown.purchase_id) == (
        None,
        None,
        None,
        None,
    )
    assert shop.mall.available(member) == 0  # the coupon cost its 100 points


def test_a_typo_is_refused_before_any_lookup_and_an_unknown_code_is_not_found(
    shop: Coupons,
) -> None:
    code = shop.issue()
    typo = code[:3] + ("A" if code[3] != "A" else "B") + code[4:]
    with pytest.raises(CouponCodeInvalid) as caught:
        shop.show(typo)
    assert caught.value.params["reason"] == "check"
    unknown = codes.new_code()
    with pytest.raises(UnknownCoupon) as missing:
        shop.show(unknown)
    assert missing.value.params["code"] == codes.display(unknown)


def test_another_programmes_coupon_does_not_exist_here(db, clock) -> None:
    ours, theirs = Coupons(db, clock), Coupons(db, clock)
    code = theirs.issue()
    with pytest.raises(UnknownCoupon):
        ours.show(code)


def test_a_members_coupons_by_status_newest_first(shop: Coupons) -> None:
    member = shop.mall.member(1000)
    first, second, third, fourth = (shop.issue(member) for _ in range(4))
    shop.use(second, "A-1", line("tea", 50))
    shop.cancel(third)
    shop.clock.advance(days=20)
    late = shop.issue(member, valid_days=1)
    shop.clock.advance(days=15)  # the first four are past their time, `late` too
    other = shop.issue(member)

    def listed(status: CouponState | None = None) -> list[str]:
        return [
            c.code
            for c in shop.db.read(
                lambda s: coupons.list_for_member(
                    s, shop.mall.program_id, member, now=shop.clock.now(), status=status
                )
            )
        ]

    assert listed() == [other, late, fourth, third, second, first]
    assert listed(CouponState.ISSUED) == [other]
    assert listed(CouponState.EXPIRED) == [late, fourth, first]  # before the job ran
    assert listed(CouponState.USED) == [second]
    assert listed(CouponState.CANCELLED) == [third]
    ids = shop.db.read(
        lambda s: [
            c.id
            for c in s.execute(
                select(Coupon).where(Coupon.member_id == member).order_by(Coupon.id.desc())
            ).scalars()
        ]
    )
    page = shop.db.read(
        lambda s: coupons.list_for_member(
            s, shop.mall.program_id, member, now=shop.clock.now(), before=ids[1], limit=2
        )
    )
    assert [c.code for c in page] == [fourth, third]
    with pytest.raises(NotFound):
        shop.db.read(
            lambda s: coupons.list_for_member(s, shop.mall.program_id, 10**9, now=shop.clock.now())
        )


# -- the discount ----------------------------------------------------------------------------


def test_fixed_takes_its_amount_off_but_never_more_than_the_eligible_lines(shop: Coupons) -> None:
    code = shop.issue(amount="20", min_spend="30")
    found = shop.check(code, line("tea", "35.50"), line("cup", 5))
    assert (found.discount, found.eligible_amount, found.eligible_lines) == (
        Decimal("20.00"),
        Decimal("40.50"),
        [1, 2],
    )
    small = shop.issue(amount="20")
    assert shop.check(small, line("gum", "3.20")).discount == Decimal("3.20")


def test_percent_is_rounded_down_to_the_cent_and_capped(shop: Coupons) -> None:
    code = shop.issue(kind="percent", amount=None, percent="15", cap="30")
    assert shop.check(code, line("tea", "33.33")).discount == Decimal("4.99")  # 4.9995
    assert shop.check(code, line("tea", "199.99")).discount == Decimal("29.99")  # 29.9985
    assert shop.check(code, line("tea", "1000")).discount == Decimal("30.00")  # capped
    uncapped = shop.issue(kind="percent", amount=None, percent="12.5")
    assert shop.check(uncapped, line("tea", "1000")).discount == Decimal("125.00")


def test_categories_limit_the_eligible_lines_and_min_spend_counts_only_them(
    shop: Coupons,
) -> None:
    code = shop.issue(
        kind="percent", amount=None, percent="10", min_spend="100", categories=["food", "drink"]
    )
    basket = [line("rice", 60, "food"), line("tv", 3000, "electronics"), line("tea", 45, "drink")]
    found = shop.check(code, *basket)
    assert (found.discount, found.eligible_amount, found.eligible_lines) == (
        Decimal("10.50"),
        Decimal("105.00"),
        [1, 3],
    )
    with pytest.raises(CouponNotApplicable) as caught:
        shop.check(code, line("rice", 60, "food"), line("tv", 3000, "electronics"))
    assert caught.value.params | {"code": None} == {
        "code": None,
        "reason": "min-spend",
        "min_spend": "100.00",
        "eligible": "60.00",
    }
    assert "which come to 60.00" in caught.value.message("en")
    with pytest.raises(CouponNotApplicable) as none:
        shop.check(code, line("tv", 3000, "electronics"))
    assert none.value.params["reason"] == "no-eligible-line"
    assert none.value.params["categories"] == "drink, food"


def test_line_discounts_count_net(shop: Coupons) -> None:
    code = shop.issue(amount="10", min_spend="100")
    with pytest.raises(CouponNotApplicable) as caught:
        shop.check(code, line("tea", 105, discount="10"))
    assert caught.value.params["eligible"] == "95.00"
    assert shop.check(code, line("tea", 110, discount="10")).discount == Decimal("10.00")


def test_free_delivery_waives_the_fee_up_to_its_cap(shop: Coupons) -> None:
    code = shop.issue(kind="free_delivery", amount=None, cap="8", min_spend="50")
    assert shop.check(code, line("tea", 60), delivery_fee="6").discount == Decimal("6.00")
    assert shop.check(code, line("tea", 60), delivery_fee="12").discount == Decimal("8.00")
    for fee in (None, "0"):
        with pytest.raises(CouponNotApplicable) as caught:
            shop.check(code, line("tea", 60), delivery_fee=fee)
        assert caught.value.params["reason"] == "no-delivery-fee"
    with pytest.raises(CouponNotApplicable) as short:
        shop.check(code, line("tea", 40), delivery_fee="6")
    assert short.value.params["reason"] == "min-spend"


def test_a_basket_of_free_items_gets_nothing_off(shop: Coupons) -> None:
    code = shop.issue()
    with pytest.raises(CouponNotApplicable) as caught:
        shop.check(code, line("sample", 0))
    assert caught.value.params["reason"] == "nothing-off"


def test_another_members_coupon_does_not_apply_and_a_bearer_may_use_it(shop: Coupons) -> None:
    owner, other = shop.mall.member(100), shop.mall.member()
    code = shop.issue(owner)
    with pytest.raises(CouponNotApplicable) as caught:
        shop.check(code, line("tea", 50), member={"id": other})
    assert caught.value.params["reason"] == "other-member"
    assert "这是其他会员的券" in caught.value.message("zh-CN")
    assert shop.check(code, line("tea", 50), member={"id": owner}).discount == Decimal("20.00")
    assert shop.check(code, line("tea", 50)).discount == Decimal("20.00")  # no member named
    with pytest.raises(NotFound):
        shop.check(code, line("tea", 50), member={"id": 10**9})


def test_checking_writes_nothing(shop: Coupons) -> None:
    code = shop.issue()
    with shop.mall.unchanged():
        shop.check(code, line("tea", 50))
        shop.check(code, line("tea", 50))
    assert shop.show(code).status == CouponState.ISSUED


# -- using -----------------------------------------------------------------------------------


def test_use_marks_it_used_once_with_the_order_and_discount(shop: Coupons) -> None:
    member = shop.mall.member(100)
    code = shop.issue(member, amount="20", min_spend="50")
    used = shop.use(code, "POS-1-0001", line("tea", 60), member={"id": member})
    assert (used.order, used.discount, used.repeated) == ("POS-1-0001", Decimal("20.00"), False)
    assert used.coupon.status == CouponState.USED
    row = shop.row(code)
    assert (row.status, row.used_order, row.discount, row.used_at, row.actor) == (
        "used",
        "POS-1-0001",
        Decimal("20.00"),
        shop.clock.now(),
        "till-1",
    )
    (event,) = shop.events("coupon.used")
    assert event == {
        "coupon_id": row.id,
        "code": code,
        "order": "POS-1-0001",
        "discount": "20.00",
        "reward_id": row.reward_id,
    }


def test_the_same_order_again_gets_the_first_result_and_writes_nothing(shop: Coupons) -> None:
    code = shop.issue(amount="20")
    first = shop.use(code, "A-1", line("tea", 60))
    shop.clock.advance(minutes=3)
    with shop.mall.unchanged():
        again = shop.use(code, "A-1", line("tea", 999), line("cake", 30))  # another basket
    assert (again.order, again.discount, again.repeated) == ("A-1", Decimal("20.00"), True)
    assert again.coupon == first.coupon
    assert len(shop.events("coupon.used")) == 1


def test_another_order_is_refused_naming_the_order_it_was_used_on(shop: Coupons) -> None:
    code = shop.issue()
    shop.use(code, "A-1", line("tea", 60))
    with shop.mall.unchanged(), pytest.raises(CouponNotUsable) as caught:
        shop.use(code, "B-2", line("tea", 60))
    assert caught.value.params["reason"] == "used"
    assert caught.value.params["order"] == "A-1"
    assert "used on order A-1" in caught.value.message("en")
    assert "订单 A-1" in caught.value.message("zh-CN")
    with pytest.raises(CouponNotUsable):
        shop.check(code, line("tea", 60))


def test_a_coupon_past_its_time_is_refused_before_the_job_has_run(shop: Coupons) -> None:
    code = shop.issue()
    shop.clock.set(EXPIRES - timedelta(seconds=1))
    assert shop.check(code, line("tea", 60)).discount == Decimal("20.00")
    shop.clock.set(EXPIRES)
    with shop.mall.unchanged():
        for attempt in (
            lambda: shop.check(code, line("tea", 60)),
            lambda: shop.use(code, "A-1", line("tea", 60)),
        ):
            with pytest.raises(CouponNotUsable) as caught:
                attempt()
            assert caught.value.params["reason"] == "expired"
            assert caught.value.params["expires_at"] == EXPIRES.isoformat()
    assert shop.row(code).status == "issued"  # as stored: the job marks it
    assert shop.show(code).status == CouponState.EXPIRED


def test_refusals_of_use_change_nothing(shop: Coupons) -> None:
    member, other = shop.mall.member(100), shop.mall.member()
    code = shop.issue(member, amount="20", min_spend="100")
    attempts = [
        (lambda: shop.use(code, "A-1", line("tea", 99)), CouponNotApplicable, "min-spend"),
        (
            lambda: shop.use(code, "A-1", line("tea", 100), member={"id": other}),
            CouponNotApplicable,
            "other-member",
        ),
        (lambda: shop.use(code[:-1] + "0", "A-1", line("tea", 100)), CouponCodeInvalid, None),
    ]
    with shop.mall.unchanged():
        for attempt, error, reason in attempts:
            with pytest.raises(error) as caught:
                attempt()
            if reason:
                assert caught.value.params["reason"] == reason
    assert shop.use(code, "A-1", line("tea", 100)).discount == Decimal("20.00")


# -- cancelling and expiry ---------------------------------------------------------------------


def test_cancel_an_issued_coupon_once(shop: Coupons) -> None:
    code = shop.issue()
    done = shop.cancel(code, "printed twice")
    assert (done.status, done.closed_at, done.cancel_reason) == (
        CouponState.CANCELLED,
        shop.clock.now(),
        "printed twice",
    )
    with shop.mall.unchanged():
        assert shop.cancel(code, "again") == done
    with pytest.raises(CouponNotUsable) as caught:
        shop.use(code, "A-1", line("tea", 60))
    assert caught.value.params["reason"] == "cancelled"
    assert len(shop.events("coupon.cancelled")) == 1


def test_a_used_or_expired_coupon_cannot_be_cancelled(shop: Coupons) -> None:
    used, old = shop.issue(), shop.issue(valid_days=1)
    shop.use(used, "A-1", line("tea", 60))
    shop.clock.advance(days=2)
    with shop.mall.unchanged():
        for code, reason in ((used, "used"), (old, "expired")):
            with pytest.raises(CouponNotUsable) as caught:
                shop.cancel(code)
            assert caught.value.params["reason"] == reason


def test_the_expiry_job_marks_what_is_due_in_batches_once(shop: Coupons) -> None:
    member = shop.mall.member(10_000)
    due = [shop.issue(member, valid_days=1) for _ in range(5)]
    later = shop.issue(member, valid_days=3)
    used = shop.issue(member, valid_days=1)
    shop.use(used, "A-1", line("tea", 60))
    shop.clock.advance(days=2)
    report = run_job(shop.db, "coupon-expiry", now=shop.clock.now(), batch_size=2)
    assert (report.totals.items, report.batches) == (5, 3)
    for code in due:
        row = shop.row(code)
        assert (row.status, row.closed_at, row.actor) == (
            "expired",
            row.expires_at,
            "job:coupon-expiry",
        )
    assert shop.row(later).status == "issued"
    assert shop.row(used).status == "used"
    events = shop.events("coupon.expired")
    assert sorted(e["code"] for e in events) == sorted(due)
    with shop.mall.unchanged():
        again = run_job(shop.db, "coupon-expiry", now=shop.clock.now())
    assert (again.totals.items, again.batches) == (0, 0)
    shop.clock.advance(days=1)
    assert run_job(shop.db, "coupon-expiry", now=shop.clock.now()).totals.items == 1
    assert shop.row(later).status == "expired"
