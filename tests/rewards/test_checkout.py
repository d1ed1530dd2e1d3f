"""Points as payment (R4, L5) through the services, on SQLite and PostgreSQL: the quote's
math, holds checked against it, lapse and void giving the points back to the lots they
came from, the purchase capturing the hold and earning on the cash part only, returns
giving the points share back, and every refusal specific and changing nothing.

The programme: 100 积分 = 10 元, points may pay half of the eligible amount, at least
100 points, in steps of 100, never for tobacco; 1 元 earns 1 积分."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import select

from earning.shop import PER_YUAN, give_back, item, order, record, set_rules, simulate
from jifen.core.errors import (
    HoldExpired,
    HoldNotActive,
    InsufficientPoints,
    InvalidInput,
    NotFound,
    NotReversible,
)
from jifen.db.uow import Database
from jifen.earning.schemas import PurchaseOut
from jifen.jobs.runner import run_job
from jifen.ledger import service as ledger
from jifen.ledger.models import Hold, JournalTransaction
from jifen.ledger.queries import current_balance
from jifen.rewards import checkout
from jifen.rewards.checkout_schemas import CheckoutHoldOut, HoldIn, LimitedBy, Quote, QuoteIn
from jifen.rewards.errors import (
    CheckoutHoldMismatch,
    OrderAlreadyHeld,
    OrderAlreadyRecorded,
    PointsPaymentDisabled,
    PointsPaymentRefused,
)
from rewards.mall import Mall

RULES = {
    "max_share": "0.5",
    "min_points": 100,
    "step": 100,
    "excluded_categories": ["tobacco"],
}
YEARLY = {"kind": "after_months", "months": 12}


class Till:
    """A programme that takes points as payment, and the checkout services called as the
    HTTP layer calls them (one unit of work each)."""

    def __init__(self, db: Database, clock: Any, **settings: Any) -> None:
        settings = {"points_payment": RULES, "expiry_policy": YEARLY} | settings
        self.mall = Mall(db, clock, **settings)
        self.db, self.clock, self.book = db, clock, self.mall.book
        set_rules(db, self.book, clock, PER_YUAN)

    def quote(self, member: int, *lines: dict[str, Any]) -> Quote:
        data = QuoteIn.model_validate({"member": {"id": member}, "lines": list(lines)})
        found = self.db.read(
            lambda s: checkout.quote(s, self.mall.program(s), self.book, data, now=self.clock.now())
        )
        assert found is not None, "something fell due for the member"
        return found

    def hold(
        self, member: int, order_id: str, points: int, *lines: dict[str, Any]
    ) -> tuple[CheckoutHoldOut, bool]:
        data = HoldIn.model_validate(
            {
                "member": {"id": member},
                "order": order_id,
                "points": points,
                "lines": list(lines) or [item("rice", 200, category="food")],
            }
        )
        return self.db.write(
            lambda s: checkout.hold(
                s, self.mall.program(s), self.book, data, now=self.clock.now(), actor="till"
            )
        )

    def void(self, hold_id: int) -> CheckoutHoldOut:
        return self.db.write(
            lambda s: checkout.void(
                s, self.mall.program(s), self.book, hold_id, now=self.clock.now(), actor="till"
            )
        )

    def buy(
        self, member: int | None, order_id: str, *lines: dict[str, Any], hold: int | None = None
    ) -> tuple[PurchaseOut, bool]:
        body = order(order_id, *lines, member=member, at=self.clock.now())
        if hold is not None:
            body["points_payment"] = {"hold_id": hold}
        return record(self.db, self.book, self.clock, body)

    def hold_row(self, hold_id: int) -> Hold:
        return self.db.read(
            lambda s: s.execute(select(Hold).where(Hold.id == hold_id)).scalar_one()
        )

    def balance(self, member: int) -> tuple[int, int]:
        """(available, held) now."""
        found = current_balance(self.db, self.book, member, self.clock.now())
        return found.available, found.held


@pytest.fixture
def till(db, clock) -> Till:
    return Till(db, clock)


FOOD_200 = item("rice", 200, category="food")


# -- the quote -------------------------------------------------------------------------------


def test_the_quote_takes_the_share_of_the_eligible_lines_in_steps(till: Till) -> None:
    member = till.mall.member(2350)
    quoted = till.quote(member, FOOD_200, item("cigarettes", 50, category="tobacco"))
    assert quoted.model_dump() == {
        "member_id": member,
        "total": Decimal("250"),
        "eligible_amount": Decimal("200"),
        "excluded_amount": Decimal("50"),
        "max_share": Decimal("0.5"),
        "share_points": 1000,  # half of 200 元 is 100 元 = 1,000 积分
        "available": 2350,
        "max_points": 1000,
        "max_value": Decimal("100.00"),
        "min_points": 100,
        "step": 100,
        "point_value_points": 100,
        "point_value_amount": Decimal("10"),
        "limited_by": LimitedBy.SHARE,
    }


def test_the_quote_rounds_the_share_down_to_the_step(till: Till) -> None:
    member = till.mall.member(5000)
    quoted = till.quote(member, item("rice", "57.90", category="food"))  # half: 28.95 元
    assert (quoted.share_points, quoted.max_points, quoted.max_value) == (
        200,
        200,
        Decimal("20.00"),
    )


def test_the_quote_is_bounded_by_available_points_in_steps(till: Till) -> None:
    member = till.mall.member(750)
    quoted = till.quote(member, FOOD_200)
    assert (quoted.available, quoted.max_points, quoted.max_value, quoted.limited_by) == (
        750,
        700,
        Decimal("70.00"),
        LimitedBy.BALANCE,
    )


def test_below_the_minimum_the_quote_is_zero(till: Till) -> None:
    poor = till.mall.member(90)
    assert (till.quote(poor, FOOD_200).max_points, till.quote(poor, FOOD_200).limited_by) == (
        0,
        LimitedBy.MINIMUM,
    )
    rich = till.mall.member(5000)
    small = till.quote(rich, item("gum", "15", category="food"))  # half: 7.50 元 = 75 积分
    assert (small.share_points, small.max_points, small.limited_by) == (0, 0, LimitedBy.MINIMUM)


def test_excluded_lines_are_not_paid_with_points(till: Till) -> None:
    member = till.mall.member(5000)
    quoted = till.quote(member, item("cigarettes", 300, category="tobacco"))
    assert (quoted.eligible_amount, quoted.max_points, quoted.limited_by) == (
        Decimal("0"),
        0,
        LimitedBy.NOTHING_ELIGIBLE,
    )


def test_a_full_share_in_single_points_is_exact_to_the_cent(db, clock) -> None:
    till = Till(db, clock, points_payment={"max_share": "1", "step": 1})
    member = till.mall.member(10_000)
    quoted = till.quote(member, item("tea", "33.33"), item("cup", "0.05"))
    assert (quoted.share_points, quoted.max_points, quoted.max_value) == (
        333,
        333,
        Decimal("33.30"),
    )


def test_pending_and_held_points_are_not_available_to_the_quote(db, clock) -> None:
    till = Till(db, clock, pending_days=7)
    member = till.mall.member(600)
    till.buy(member, "EARLIER", item("rice", 300, category="food"))  # 300 pending
    till.hold(member, "A-1", 200)
    assert till.quote(member, FOOD_200).available == 400


def test_quote_and_hold_are_refused_when_points_cannot_pay(db, clock) -> None:
    till = Till(db, clock, points_payment=None)
    member = till.mall.member(1000)
    with till.mall.unchanged():
        with pytest.raises(PointsPaymentDisabled):
            till.quote(member, FOOD_200)
        with pytest.raises(PointsPaymentDisabled) as caught:
            till.hold(member, "A-1", 500)
    assert "本计划未开通积分抵现" in caught.value.message("zh-CN")


# -- holds -----------------------------------------------------------------------------------


def test_a_hold_sets_the_points_aside_until_the_programmes_deadline(till: Till) -> None:
    member = till.mall.member(1000)
    held, created = till.hold(member, "A-1", 500)
    assert created
    assert held.model_dump() == {
        "id": held.id,
        "member_id": member,
        "order": "A-1",
        "points": 500,
        "value": Decimal("50.00"),
        "status": "active",
        "created_at": till.clock.now(),
        "expires_at": till.clock.now() + timedelta(minutes=30),
        "closed_at": None,
        "eligible_amount": Decimal("200"),
    }
    assert till.balance(member) == (500, 500)
    assert till.hold_row(held.id).reference == "checkout:A-1#1"


@pytest.mark.parametrize(
    ("points", "reason", "fragment"),
    [
        (50, "below-minimum", "at least 100 points"),
        (150, "step", "multiples of 100"),
        (1100, "above-maximum", "at most 1000 points (50% of the eligible 200.00)"),
    ],
)
def test_a_hold_against_the_rules_is_refused_and_changes_nothing(
    till: Till, points: int, reason: str, fragment: str
) -> None:
    member = till.mall.member(5000)
    with till.mall.unchanged(), pytest.raises(PointsPaymentRefused) as caught:
        till.hold(member, "A-1", points)
    assert caught.value.params["reason"] == reason
    assert caught.value.params["points"] == points
    assert fragment in caught.value.message("en")
    assert f"不能使用 {points} 积分抵现" in caught.value.message("zh-CN")


def test_a_hold_beyond_the_balance_is_refused(till: Till) -> None:
    member = till.mall.member(800)
    with till.mall.unchanged(), pytest.raises(InsufficientPoints):
        till.hold(member, "A-1", 900)


def test_the_same_hold_again_is_the_first_and_another_amount_waits_for_a_void(
    till: Till,
) -> None:
    member, other = till.mall.member(2000), till.mall.member(2000)
    first, _ = till.hold(member, "A-1", 500)
    with till.mall.unchanged():
        again, created = till.hold(member, "A-1", 500)
        assert (again, created) == (first, False)
        for who, points in ((member, 600), (other, 500)):
            with pytest.raises(OrderAlreadyHeld) as caught:
                till.hold(who, "A-1", points)
            assert caught.value.params["hold_id"] == first.id
    till.void(first.id)
    second, created = till.hold(member, "A-1", 600)
    assert created
    assert till.hold_row(second.id).reference == "checkout:A-1#2"
    assert till.balance(member) == (1400, 600)


def test_an_order_already_recorded_cannot_be_held_for(till: Till) -> None:
    member = till.mall.member(2000)
    bought, _ = till.buy(member, "A-1", FOOD_200)
    with till.mall.unchanged(), pytest.raises(OrderAlreadyRecorded) as caught:
        till.hold(member, "A-1", 500)
    assert caught.value.params["purchase_id"] == bought.id


def test_a_lapsed_hold_gives_its_points_back_to_the_same_lots_by_the_job(till: Till) -> None:
    member = till.mall.member()
    till.mall.earn(member, 300, at=till.clock.now() - timedelta(days=200))  # expires first
    till.mall.earn(member, 400)
    before = till.mall.lots(member)
    held, _ = till.hold(member, "A-1", 500)
    assert [lot[1] for lot in till.mall.lots(member)] == [0, 200]  # earliest expiry first
    till.clock.advance(minutes=30)
    report = run_job(till.db, "lapse", now=till.clock.now(), program_id=till.mall.program_id)
    assert report.totals.items == 1
    assert till.mall.lots(member) == before  # the same lots, the same expiry
    assert till.hold_row(held.id).status == "lapsed"
    assert till.balance(member) == (700, 0)


def test_a_lapsed_hold_gives_its_points_back_at_the_members_next_write(till: Till) -> None:
    member = till.mall.member(1000)
    before = till.mall.lots(member)
    held, _ = till.hold(member, "A-1", 500)
    till.clock.advance(minutes=31)
    # no job: the next write to the member (a new hold) lapses the old one first
    second, created = till.hold(member, "A-1", 1000)
    assert created
    assert till.hold_row(held.id).status == "lapsed"
    assert till.hold_row(second.id).amount == 1000
    assert till.void(second.id).status == "voided"
    assert till.mall.lots(member) == before


def test_a_lapsed_hold_cannot_pay_and_the_purchase_writes_nothing(till: Till) -> None:
    member = till.mall.member(1000)
    held, _ = till.hold(member, "A-1", 500)
    till.clock.advance(minutes=30)
    run_job(till.db, "lapse", now=till.clock.now())
    with till.mall.unchanged(), pytest.raises(HoldExpired):
        till.buy(member, "A-1", FOOD_200, hold=held.id)
    assert till.balance(member) == (1000, 0)


def test_void_returns_the_points_and_again_shows_it_as_it_is(till: Till) -> None:
    member = till.mall.member(1000)
    before = till.mall.lots(member)
    held, _ = till.hold(member, "A-1", 500)
    voided = till.void(held.id)
    assert (voided.status, voided.closed_at) == ("voided", till.clock.now())
    assert till.balance(member) == (1000, 0)
    assert till.mall.lots(member) == before
    with till.mall.unchanged():
        assert till.void(held.id) == voided
    with till.mall.unchanged(), pytest.raises(HoldNotActive):
        till.buy(member, "A-1", FOOD_200, hold=held.id)  # a voided hold does not pay


def test_only_checkout_holds_are_voided_here(till: Till) -> None:
    member = till.mall.member(1000)
    other = till.db.write(
        lambda s: (
            ledger.authorise_hold(s, till.book, member, 100, now=till.clock.now(), actor="t").id
        )
    )
    with till.mall.unchanged(), pytest.raises(NotFound):
        till.void(other)


# -- capture through the purchase --------------------------------------------------------------


def test_a_200_yuan_order_paying_500_points_earns_on_150_yuan(till: Till) -> None:
    member = till.mall.member(1000)
    held, _ = till.hold(member, "A-1", 500)
    bought, created = till.buy(member, "A-1", FOOD_200, hold=held.id)
    assert created
    assert (bought.hold_id, bought.paid_points, bought.paid_points_value) == (
        held.id,
        500,
        Decimal("50.00"),
    )
    assert [line.points_value for line in bought.lines] == [Decimal("50.00")]
    assert (bought.total, bought.points) == (Decimal("200.00"), 150)
    assert till.balance(member) == (1000 - 500 + 150, 0)
    assert till.hold_row(held.id).status == "captured"
    txn = till.db.read(
        lambda s: s.execute(
            select(JournalTransaction).where(
                JournalTransaction.hold_id == held.id, JournalTransaction.kind == "capture"
            )
        ).scalar_one()
    )
    assert (txn.points, txn.details) == (500, {"purchase_id": bought.id, "order": "A-1"})


def test_the_value_is_split_over_the_eligible_lines_to_the_cent(till: Till) -> None:
    member = till.mall.member(5000)
    lines = [
        item("tea", "33.33", category="drink"),
        item("cake", "33.33", category="food"),
        item("cigarettes", "80", category="tobacco"),
        item("rice", "33.34", category="food"),
    ]
    held, _ = till.hold(member, "A-1", 100, *lines)  # 10 元 over 100 元 eligible
    bought, _ = till.buy(member, "A-1", *lines, hold=held.id)
    assert [line.points_value for line in bought.lines] == [
        Decimal("3.33"),
        Decimal("3.33"),
        Decimal("0.00"),
        Decimal("3.34"),  # the largest remainder gets the odd cent
    ]
    assert bought.points == 170  # 180.00 − 10.00 in cash: 170 元 earns 170 积分


def test_a_repeated_order_returns_the_first_result_and_captures_nothing(till: Till) -> None:
    member = till.mall.member(1000)
    held, _ = till.hold(member, "A-1", 500)
    first, _ = till.buy(member, "A-1", FOOD_200, hold=held.id)
    with till.mall.unchanged():
        again, created = till.buy(member, "A-1", FOOD_200, hold=held.id)
    assert (again, created) == (first, False)
    assert till.balance(member) == (650, 0)


def test_a_hold_of_another_member_or_order_cannot_pay(till: Till) -> None:
    member, other = till.mall.member(1000), till.mall.member(1000)
    held, _ = till.hold(member, "A-1", 500)
    attempts = [
        (lambda: till.buy(other, "A-1", FOOD_200, hold=held.id), "member", member),
        (lambda: till.buy(member, "B-2", FOOD_200, hold=held.id), "order", "A-1"),
    ]
    with till.mall.unchanged():
        for attempt, reason, held_for in attempts:
            with pytest.raises(CheckoutHoldMismatch) as caught:
                attempt()
            assert caught.value.params == {
                "hold_id": held.id,
                "reason": reason,
                "held_for": held_for,
            }
        with pytest.raises(InvalidInput) as anonymous:
            till.buy(None, "A-1", FOOD_200, hold=held.id)
        assert anonymous.value.params["field"] == "points_payment"
        with pytest.raises(NotFound):
            till.buy(member, "A-1", FOOD_200, hold=10**9)
    assert till.hold_row(held.id).status == "active"


def test_a_basket_that_shrank_since_the_hold_cannot_be_overpaid(till: Till) -> None:
    member = till.mall.member(1000)
    held, _ = till.hold(member, "A-1", 1000)  # all of the share of 200 元
    smaller = item("rice", 150, category="food")
    with till.mall.unchanged(), pytest.raises(PointsPaymentRefused) as caught:
        till.buy(member, "A-1", smaller, hold=held.id)
    assert (caught.value.params["reason"], caught.value.params["maximum"]) == ("above-maximum", 700)


def test_simulate_earns_what_the_purchase_with_the_hold_earns(till: Till) -> None:
    member = till.mall.member(1000)
    held, _ = till.hold(member, "A-1", 500)
    body = order("A-1", FOOD_200, member=member, at=till.clock.now())
    body["points_payment"] = {"hold_id": held.id}
    with till.mall.unchanged():
        simulated = simulate(till.db, till.book, till.clock, body)
    bought, _ = till.buy(member, "A-1", FOOD_200, hold=held.id)
    assert simulated.points == bought.points == 150


# -- returns ---------------------------------------------------------------------------------


def test_a_return_gives_back_the_points_share_to_the_original_lots(till: Till) -> None:
    member = till.mall.member()
    till.mall.earn(member, 300, at=till.clock.now() - timedelta(days=200))
    till.mall.earn(member, 700)
    lots_before = till.mall.lots(member)
    lines = [item("rice", 100, category="food"), item("oil", 100, category="food")]
    held, _ = till.hold(member, "A-1", 500, *lines)
    bought, _ = till.buy(member, "A-1", *lines, hold=held.id)
    assert bought.points == 150
    assert till.balance(member) == (650, 0)

    first, _ = give_back(
        till.db, till.book, till.clock, bought.id, lines=[{"line_no": 1, "quantity": "1"}]
    )
    assert (first.amount, first.paid_points_refunded, first.paid_points_value_refunded) == (
        Decimal("100.00"),
        250,
        Decimal("25.00"),
    )
    assert first.cash_refund == Decimal("75.00")
    assert first.points == 75  # the award was on 150 元 cash; 75 元 of it came back
    assert till.balance(member) == (650 + 250 - 75, 0)

    second, _ = give_back(
        till.db, till.book, till.clock, bought.id, lines=[{"line_no": 2, "quantity": "1"}]
    )
    assert (second.paid_points_refunded, second.cash_refund, second.points) == (
        250,
        Decimal("75.00"),
        75,
    )
    assert till.balance(member) == (1000, 0)
    # the points paid went back to the lots they came from, with their expiry; the award
    # (its own lot) was taken back whole
    assert till.mall.lots(member)[:2] == lots_before
    capture = till.db.read(
        lambda s: s.execute(
            select(JournalTransaction.id).where(
                JournalTransaction.hold_id == held.id, JournalTransaction.kind == "capture"
            )
        ).scalar_one()
    )
    with pytest.raises(NotReversible):
        till.db.write(
            lambda s: ledger.reverse(s, till.book, capture, now=till.clock.now(), actor="t")
        )


def test_partial_returns_round_down_until_the_last_gives_back_the_rest(till: Till) -> None:
    member = till.mall.member(1000)
    line = item("tea", "10", quantity=3, category="drink")  # 30 元, half: 15 元
    held, _ = till.hold(member, "A-1", 100, line)  # 10 元 of it
    bought, _ = till.buy(member, "A-1", line, hold=held.id)
    assert (bought.points, bought.lines[0].points_value) == (20, Decimal("10.00"))
    back = []
    for _ in range(3):
        done, _created = give_back(
            till.db, till.book, till.clock, bought.id, lines=[{"line_no": 1, "quantity": "1"}]
        )
        back.append((done.paid_points_refunded, done.paid_points_value_refunded, done.cash_refund))
    assert back == [
        (33, Decimal("3.33"), Decimal("6.67")),
        (33, Decimal("3.34"), Decimal("6.66")),
        (34, Decimal("3.33"), Decimal("6.67")),
    ]
    assert till.balance(member) == (1000, 0)


def test_a_price_refund_gives_back_points_in_proportion_too(till: Till) -> None:
    member = till.mall.member(1000)
    held, _ = till.hold(member, "A-1", 500)
    bought, _ = till.buy(member, "A-1", FOOD_200, hold=held.id)
    done, _ = give_back(till.db, till.book, till.clock, bought.id, amount="40")
    assert (done.paid_points_refunded, done.paid_points_value_refunded, done.cash_refund) == (
        100,
        Decimal("10.00"),
        Decimal("30.00"),
    )
    assert done.points == 30  # the cash part fell from 150 to 120 元
