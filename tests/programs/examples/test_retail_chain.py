"""The brief's retail chain (examples/retail-chain.yaml): one member's spring, from sign-up
to the expiry of her points two years later."""

from __future__ import annotations

from decimal import Decimal

from jifen.core.clock import FrozenClock
from jifen.db.uow import Database

from .journey import Journey, Points, by_rule, growth_by_rule, item


def test_a_member_s_spring(db: Database, clock: FrozenClock) -> None:
    j = Journey(db, clock, "retail-chain")

    # 1 March: 王芳 signs up in the mini-program and completes her profile
    j.move(2026, 3, 1, 10)
    fang = j.enrol("13900000001", name="王芳", birthday="1990-03-20")
    assert j.event(fang, "sign_up", "REG-13900000001").points == 100
    j.move(2026, 3, 1, 10, 5)
    assert j.event(fang, "profile_completed", "PROFILE-13900000001").points == 50
    # once ever: a second sign-up (a re-install of the app) gives nothing
    again = j.event(fang, "sign_up", "REG-13900000001-2")
    assert (again.status, again.points) == ("limited", 0)
    # behaviour points are available at once; no growth value from them
    assert j.points(fang) == Points(available=150, pending=0, lifetime=150, growth=0)

    # Thursday 5 March, 19:30 in 徐汇: salmon (fresh) and detergent (130 元, 10 off)
    j.move(2026, 3, 5, 19, 30)
    p1 = j.buy(
        fang,
        "LJ-0305-001",
        item("salmon", "68.50", category="fresh"),
        item("detergent", "130.00", category="household", discount="10.00"),
        store="sh-001",
        payment_method="wechat",
    )
    assert by_rule(p1) == {
        "base": 188,  # floor(68.50 + 130.00 − 10.00 = 188.50): net of the discount
        "double-fresh": 68,  # floor(68.50 × (2 − 1))
    }
    assert p1.points == 256  # 188 base + 68 fresh double
    assert growth_by_rule(p1) == {"growth": 188}  # floor(188.50), no multipliers
    assert p1.pending_until == j.at(2026, 3, 13, 0)  # end of the 7th day after 5 March
    # 150 (events) available; 256 pending
    assert j.points(fang) == Points(available=150, pending=256, lifetime=406, growth=188)

    # Sunday 8 March, the member day, 10:15 in the 北京朝阳 store (华北)
    j.move(2026, 3, 8, 10, 15)
    basket = (
        item("strawberry", "50.00", 2, category="fresh"),
        item("tissue", "50.00", 3, category="household"),
    )
    # the till asks first what the order would earn (simulate writes nothing) …
    asked = j.simulate(fang, *basket, store="bj-001", payment_method="alipay")
    p2 = j.buy(fang, "LJ-0308-002", *basket, store="bj-001", payment_method="alipay")
    # … and gets exactly what the purchase then earns
    assert asked.breakdown == p2.breakdown
    assert by_rule(p2) == {
        "base": 250,  # 100 + 150
        "double-fresh": 100,  # the strawberries once more
        "member-day": 250,  # the whole order once more
        "spend-200": 20,  # 满200送20 (250 ≥ 200, < 500)
    }
    assert p2.points == 620  # 250 + 100 + 250 + 20
    # pending 256 + 620; lifetime 406 + 620; growth 188 + 250
    assert j.points(fang) == Points(available=150, pending=876, lifetime=1026, growth=438)

    # Tuesday 10 March, the app: a 520 元 rice cooker
    j.move(2026, 3, 10, 15)
    p3 = j.buy(
        fang, "LJ-0310-003", item("rice-cooker", "520.00", category="electronics"), channel="app"
    )
    # 满500送80 beats 满200送20 in their best_of group: 80, not 100
    assert by_rule(p3) == {"base": 520, "spend-500": 80}
    # pending 876 + 600; growth 438 + 520
    assert j.points(fang) == Points(available=150, pending=1476, lifetime=1626, growth=958)

    # 11 March: one box of strawberries comes back (a partial return by quantity).
    # The order is now 50 + 150 = 200 元: still 满200, so the 20 stays.
    j.move(2026, 3, 11, 10)
    r1 = j.give_back(p2.id, external_id="RT-1", lines=[{"line_no": 1, "quantity": 1}])
    assert r1.amount == Decimal("50.00")
    assert by_rule(r1) == {
        "base": 50,  # 250 → 200
        "double-fresh": 50,  # 100 → 50
        "member-day": 50,  # 250 → 200
    }
    assert (r1.points, r1.points_taken, r1.growth) == (150, 150, 50)  # still pending: cancelled
    assert j.points(fang) == Points(available=150, pending=1326, lifetime=1476, growth=908)

    # 12 March: a pack of tissues too. 150 元 left: below 200, the 满200送20 goes.
    j.move(2026, 3, 12, 10)
    r2 = j.give_back(p2.id, external_id="RT-2", lines=[{"line_no": 2, "quantity": 1}])
    assert by_rule(r2) == {
        "base": 50,  # 200 → 150
        "member-day": 50,  # 200 → 150
        "spend-200": 20,  # lost whole once below the threshold
    }  # double-fresh keeps 50: the fresh line did not change
    assert (r2.points, r2.growth) == (120, 50)
    # the member-day order now gives 150 + 50 + 150 = 350; pending 1326 − 120
    assert j.points(fang) == Points(available=150, pending=1206, lifetime=1356, growth=858)
    assert j.purchase(p2.id).points_returned == 270  # 150 + 120

    # 13 March 00:05: the release job makes 5 March's points available
    j.move(2026, 3, 13, 0, 5)
    assert j.run("release") == 256
    # 150 + 256 available; 350 + 600 still pending
    assert j.points(fang) == Points(available=406, pending=950, lifetime=1356, growth=858)

    # 15 March: a cashier in 浦东 rings up an order; 王芳 forgot her card
    j.move(2026, 3, 15, 18)
    j.buy(
        None,
        "LJ-0315-104",
        item("yoghurt", "35.80", category="dairy"),
        item("kitchen-roll", "64.20", category="household"),
        store="sh-002",
    )

    # 16 and 18 March: the member-day order and the rice cooker are released
    j.move(2026, 3, 16, 0, 5)
    assert j.run("release") == 350
    j.move(2026, 3, 18, 0, 5)
    assert j.run("release") == 600
    assert j.points(fang) == Points(available=1356, pending=0, lifetime=1356, growth=858)

    # 18 March, evening: she answers the member survey (once ever: 30)
    j.move(2026, 3, 18, 20)
    assert j.event(fang, "survey_completed", "SURVEY-2026-Q1-fang").points == 30

    # 20 March, her birthday: the birthday job gives 200, once, however often it runs
    j.move(2026, 3, 19, 23, 55)
    assert j.run("birthday") == 0  # not yet her birthday in Shanghai
    j.move(2026, 3, 20, 0, 10)
    assert j.run("birthday") == 200
    assert j.run("birthday") == 0
    # 1356 + 30 + 200
    assert j.points(fang) == Points(available=1586, pending=0, lifetime=1586, growth=858)

    # 20 March: she claims the 15 March receipt within the 30-day claim window
    j.move(2026, 3, 20, 9)
    claimed = j.claim("LJ-0315-104", fang)
    assert by_rule(claimed) == {"base": 100, "double-fresh": 35}  # floor(35.80)
    # pending from the purchase's day: until the end of 22 March
    assert claimed.pending_until == j.at(2026, 3, 23, 0)
    # pending 135; lifetime 1586 + 135; growth 858 + 100
    assert j.points(fang) == Points(available=1586, pending=135, lifetime=1721, growth=958)

    # 21 March: she pays 138 元 of a bill with points (1380 积分; 100 积分 = 10 元)
    j.move(2026, 3, 21, 11)
    j.spend(fang, 1380, "积分抵现 138 元")
    j.move(2026, 3, 23, 0, 5)
    assert j.run("release") == 135
    # 1586 − 1380 + 135
    assert j.points(fang) == Points(available=341, pending=0, lifetime=1721, growth=958)

    # 25 March: the rice cooker goes back (a whole order, after its return window).
    # It earned 600; she has 341 left. withhold: take those, keep the value of the
    # other 259 back from the 520 元 refund: 259 × 10 / 100 = 25.90 元.
    j.move(2026, 3, 25, 14)
    r3 = j.give_back(p3.id, external_id="RT-3", amount="520.00")
    assert by_rule(r3) == {"base": 520, "spend-500": 80}
    assert (r3.points, r3.points_taken, r3.points_not_taken) == (600, 341, 259)
    assert r3.withhold_amount == Decimal("25.90")
    assert r3.purchase_status == "returned"
    # lifetime drops by what was taken (1721 − 341), not by what she kept (the ledger's
    # rule); growth loses the rice cooker's 520
    assert j.points(fang) == Points(available=0, pending=0, lifetime=1380, growth=438)

    # Thursday 9 April 00:10 in Shanghai is still 8 April in UTC: not a member day
    j.move(2026, 4, 9, 0, 10)
    p4 = j.buy(fang, "LJ-0409-005", item("milk", "88.00", category="dairy"), channel="mini_program")
    assert by_rule(p4) == {"base": 88, "double-fresh": 88}
    j.move(2026, 4, 17, 0, 5)
    assert j.run("release") == 176
    # lifetime 1380 + 176; growth 438 + 88
    assert j.points(fang) == Points(available=176, pending=0, lifetime=1556, growth=526)

    # Points earned on 9 April 2026 expire at the end of April 2028 (24 months, rounded
    # up to the month's end); a month before, they are "expiring soon"
    j.move(2028, 4, 5, 9)
    assert j.expiring(fang) == {j.at(2028, 4, 30).date(): 176}
    j.move(2028, 5, 1, 0, 1)
    assert j.run("expire") == 176
    assert j.points(fang) == Points(available=0, pending=0, lifetime=1556, growth=526)
