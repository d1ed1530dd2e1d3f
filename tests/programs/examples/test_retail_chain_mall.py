"""The brief's retail chain (examples/retail-chain.yaml), its tiers and its rewards mall:
one member's year from 普通 to 金卡, redeeming a 10-元 voucher for 100 积分 and using
it, paying with points at the till (100 积分 = 10 元), a birthday gift, the monthly
free-delivery coupon of 金卡 members, and a cancelled parcel whose points come back."""

from __future__ import annotations

from jifen.core.clock import FrozenClock
from jifen.db.uow import Database

from .journey import Journey, Points, by_rule, item


def test_from_normal_to_gold_through_the_mall(db: Database, clock: FrozenClock) -> None:
    j = Journey(db, clock, "retail-chain")
    j.move(2026, 1, 15, 11)
    lei = j.enrol("13900000007", name="李雷", birthday="1992-06-15")
    assert j.tier(lei) == "normal"

    # 17 January: a 1,500 元 television. 1,500 growth value: still 普通 (银卡 needs 2,000)
    j.move(2026, 1, 17, 15)
    tv = j.buy(lei, "LJ-0117-001", item("tv", "1500.00", category="electronics"), channel="app")
    assert by_rule(tv) == {"base": 1500, "spend-500": 80}
    assert j.tier(lei) == "normal"
    shown = j.standing(lei)
    assert shown.next is not None
    assert (shown.next.code, [(m.measure, m.missing) for m in shown.next.missing]) == (
        "silver",
        [("growth", 500)],
    )

    # 20 January: 600 元 more crosses 2,000: 银卡 on this purchase, which still earns at
    # 普通 (no tier bonus in its breakdown)
    j.move(2026, 1, 20, 11)
    crossing = j.buy(lei, "LJ-0120-002", item("pans", "600.00", category="household"))
    assert by_rule(crossing) == {"base": 600, "spend-500": 80}
    assert j.tier(lei) == "silver"

    # 3 February: the next order earns the 银卡 bonus: 1.2 × the base, +20
    j.move(2026, 2, 3, 18)
    after = j.buy(lei, "LJ-0203-003", item("rice", "100.00", category="grocery"))
    assert by_rule(after) == {"base": 100, "tier-bonus": 20}
    j.move(2026, 2, 11, 9)
    j.run("release")
    assert j.points(lei) == Points(available=2380, pending=0, lifetime=2380, growth=2200)

    # 100 积分 = a 10-元 voucher: two of them, paid from the earliest-expiring lots
    voucher = j.redeem(lei, "voucher-10", quantity=2)
    assert (voucher.points, voucher.status, len(voucher.coupons)) == (200, "issued", 2)
    assert j.points(lei).available == 2180
    # the till takes one off a 50 元 order; the same order sent again: the first result
    j.move(2026, 2, 12, 10)
    code = voucher.coupons[0].code
    used = j.use_coupon(code, "LJ-0212-004", item("milk", "50.00", category="dairy"))
    assert (used.discount, used.repeated) == (10, False)
    again = j.use_coupon(code, "LJ-0212-004", item("milk", "50.00", category="dairy"))
    assert (again.discount, again.repeated) == (10, True)

    # points as payment at the till: a 300 元 order with 20 元 of cigarettes, which
    # points cannot pay. At most half of the other 280 元 (140 元 = 1,400 积分); the
    # member pays 1,000 积分 (100 元) and earns on the 200 元 paid in cash only
    j.move(2026, 2, 14, 19)
    basket = (
        item("wine", "280.00", category="drinks"),
        item("cigarettes", "20.00", category="tobacco"),
    )
    quoted = j.quote(lei, *basket)
    assert (quoted.max_points, quoted.max_value) == (1400, 140)
    hold = j.hold(lei, "LJ-0214-005", 1000, *basket)
    assert j.points(lei).available == 1180
    paid = j.buy(lei, "LJ-0214-005", *basket, points_payment={"hold_id": hold})
    assert (paid.paid_points, paid.paid_points_value) == (1000, 100)
    # 200 元 in cash: 200 base, 满200送20, and 银卡's 0.2 × 200
    assert by_rule(paid) == {"base": 200, "spend-200": 20, "tier-bonus": 40}
    assert j.points(lei) == Points(available=1180, pending=260, lifetime=2640, growth=2400)

    # a tote bag (1,500 积分 for 银卡: no tier price) is more than she has available
    j.move(2026, 2, 22, 10)
    j.run("release")
    assert j.points(lei).available == 1440

    # 8 March, member day: a 5,600 元 sofa takes her past 8,000 growth value: 金卡
    j.move(2026, 3, 8, 14)
    sofa = j.buy(lei, "LJ-0308-006", item("sofa", "5600.00", category="furniture"))
    assert by_rule(sofa) == {
        "base": 5600,
        "member-day": 5600,
        "tier-bonus": 1120,  # still 银卡 for this order: 0.2 × 5,600
        "spend-500": 80,
    }
    assert j.tier(lei) == "gold"
    j.move(2026, 3, 16, 9)
    j.run("release")
    assert j.points(lei).available == 1440 + 12400

    # 金卡: the tote bag at its 金卡 price, 1,200 积分; then cancelled before it ships:
    # the points go back to the lots they came from
    before = j.points(lei)
    bag = j.redeem(
        lei,
        "tote-bag",
        shipping={"name": "李雷", "phone": "13900000007", "city": "上海", "address": "漕溪路 1 号"},
    )
    assert (bag.points, bag.status) == (1200, "pending")
    assert j.points(lei).available == before.available - 1200
    j.cancel(bag.id, "买错了")
    assert j.points(lei) == before

    # the 金卡 monthly free-delivery coupon, once a month however often the job runs
    j.move(2026, 4, 1, 8)
    assert j.run("tier-benefits") == 0  # a coupon, no points
    j.run("tier-benefits")
    free = [c for c in j.coupons(lei) if c.kind == "free_delivery"]
    assert len(free) == 1

    # her birthday: 200 积分 for everyone, and 金卡's gift of 200 积分 and a 20-元 coupon
    j.move(2026, 6, 15, 9)
    awarded = j.run("birthday")
    assert awarded == 400
    birthday_coupons = [c for c in j.coupons(lei) if c.reward == "birthday-coupon"]
    assert len(birthday_coupons) == 1
