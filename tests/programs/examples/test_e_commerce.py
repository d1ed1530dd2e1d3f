"""The online shop (examples/e-commerce.yaml): no points on gift cards, 双十一 double
points under a monthly cap, a co-branded-card bonus, a 15-day return window, and
returns after the points were spent running the balance into debt, repaid by the next
points released."""

from __future__ import annotations

from decimal import Decimal

from jifen.core.clock import FrozenClock
from jifen.db.uow import Database

from .journey import Journey, Points, by_rule, growth_by_rule, item


def test_double_eleven(db: Database, clock: FrozenClock) -> None:
    j = Journey(db, clock, "e-commerce")
    j.move(2026, 10, 20, 21)
    ting = j.enrol("13900000007", name="周婷")
    assert j.event(ting, "sign_up", "REG-ting").points == 50

    # 25 October, on the website: a coat and a 500 元 gift card for a friend
    j.move(2026, 10, 25, 20)
    p1 = j.buy(
        ting,
        "YX-1025-001",
        item("coat", "299.00", category="apparel"),
        item("gift-card-500", "500.00", category="gift-card"),
        channel="web",
        payment_method="alipay",
    )
    assert by_rule(p1) == {"base": 299}  # the gift card earns nothing
    assert growth_by_rule(p1) == {"growth": 299}
    assert p1.pending_until == j.at(2026, 11, 10, 0)  # the end of the 15th day after
    # 50 (sign-up) available, 299 pending
    assert j.points(ting) == Points(available=50, pending=299, lifetime=349, growth=299)

    # 10 November: released; she spends 300 on coupons
    j.move(2026, 11, 10, 0, 5)
    assert j.run("release") == 299
    j.move(2026, 11, 10, 10)
    j.spend(ting, 300, "满 300 减 30 优惠券")
    # 50 + 299 − 300
    assert j.points(ting) == Points(available=49, pending=0, lifetime=349, growth=299)

    # 11 November (双十一) 10:00 in the app, paid with the co-branded card
    j.move(2026, 11, 11, 10)
    p2 = j.buy(
        ting,
        "YX-1111-002",
        item("serum", "600.00", 2, category="beauty"),
        item("duvet", "300.00", category="home"),
        channel="app",
        payment_method="cobrand_card",
    )
    assert by_rule(p2) == {
        "base": 1500,  # 1200 + 300
        "double-eleven": 1000,  # wants 1500 more, capped at 1000 a month per member
        "cobrand-card": 20,
    }
    doubled = next(i for i in p2.breakdown if i.rule == "double-eleven")
    assert (doubled.wanted, doubled.capped_by) == (1500, "allowance")
    # 1500 + 1000 + 20 pending; growth 299 + 1500
    assert j.points(ting) == Points(available=49, pending=2520, lifetime=2869, growth=1799)

    # 18:00 the same day: one bottle of serum goes back (a partial return by quantity).
    # The order is now 900 元: base 900; double-eleven would give 900 now, less than
    # the 1000 it kept, so it keeps 900; the card bonus stays (still ≥ 100 元)
    j.move(2026, 11, 11, 18)
    r1 = j.give_back(p2.id, external_id="YX-R-2-1", lines=[{"line_no": 1, "quantity": 1}])
    assert r1.amount == Decimal("600.00")
    assert by_rule(r1) == {"base": 600, "double-eleven": 100}
    assert (r1.points, r1.points_taken, r1.growth) == (700, 700, 600)  # pending: cancelled
    assert j.points(ting) == Points(available=49, pending=1820, lifetime=2169, growth=1199)

    # 21:00 in the mini-program: the 100 points the return gave back to the monthly cap
    # are all double-eleven can still give her this month
    j.move(2026, 11, 11, 21)
    p3 = j.buy(ting, "YX-1111-003", item("tea", "300.00", category="food"), channel="mini_program")
    assert by_rule(p3) == {"base": 300, "double-eleven": 100}  # 1000 − 900 used
    assert j.points(ting) == Points(available=49, pending=2220, lifetime=2569, growth=1499)

    # 12 November: the coat of 25 October goes back (a partial return: the gift card
    # stays). Its 299 points are available but she has spent 250 of them: policy debt
    # takes them anyway, and her balance is −250
    j.move(2026, 11, 12, 10)
    r2 = j.give_back(p1.id, external_id="YX-R-1-1", lines=[{"line_no": 1, "quantity": 1}])
    assert by_rule(r2) == {"base": 299}
    assert (r2.points, r2.points_taken, r2.points_not_taken) == (299, 299, 0)
    assert r2.withhold_amount == Decimal(0)
    assert r2.purchase_status == "awarded"  # the gift card was kept
    # 49 − 299; lifetime 2569 − 299; growth 1499 − 299
    assert j.points(ting) == Points(available=-250, pending=2220, lifetime=2270, growth=1200)

    # 12 November, after the festival: no more doubling
    j.move(2026, 11, 12, 20)
    p4 = j.buy(ting, "YX-1112-004", item("scarf", "100.00", category="apparel"), channel="web")
    assert by_rule(p4) == {"base": 100}

    # 27 November 00:05: the 双十一 orders are released and repay the debt first
    j.move(2026, 11, 27, 0, 5)
    assert j.run("release") == 2220  # 1820 + 400
    # −250 + 2220; 100 still pending until the end of 27 November
    assert j.points(ting) == Points(available=1970, pending=100, lifetime=2370, growth=1300)

    # a photo review of the serum: 10, available at once
    j.move(2026, 11, 27, 20)
    assert j.event(ting, "review", "REVIEW-YX-1111-002").points == 10
    assert j.points(ting) == Points(available=1980, pending=100, lifetime=2380, growth=1300)
