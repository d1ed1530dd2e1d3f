"""The coffee chain (examples/coffee-chain.yaml): stars per drink, happy hour capped per
day, double stars for ordering ahead, a first-order gift, a refund, check-ins three times
an ISO week, expiry at a month's end six months on."""

from __future__ import annotations

from jifen.core.clock import FrozenClock
from jifen.db.uow import Database

from .journey import Journey, Points, by_rule, item


def latte(quantity: int = 1) -> dict[str, str]:
    return item("latte", "32.00", quantity, category="drinks")


def test_a_week_of_coffee(db: Database, clock: FrozenClock) -> None:
    j = Journey(db, clock, "coffee-chain")
    j.move(2026, 3, 2, 8)  # Monday
    lei = j.enrol("13900000002", name="李雷")
    assert j.event(lei, "sign_up", "APP-REG-lei").points == 5

    # Monday 08:30 at 静安寺: two lattes and a croissant, the first order ever
    j.move(2026, 3, 2, 8, 30)
    o1 = j.buy(
        lei,
        "DC-1",
        latte(2),
        item("croissant", "18.00", category="food"),
        store="sh-jingan",
    )
    assert by_rule(o1) == {
        "stars-per-drink": 2,  # two lattes
        "first-order": 10,  # 首单礼
    }  # the croissant: floor(18 / 20) = 0, so the food rule is not listed
    assert o1.points == 12
    assert o1.growth == 82  # 64 + 18 元
    assert o1.pending_until is None  # no return window: available at once
    # 5 (sign-up) + 12
    assert j.points(lei) == Points(available=17, pending=0, lifetime=17, growth=82)

    # he checks in at the table: 1 star (the week's first of 3)
    j.move(2026, 3, 2, 8, 31)
    assert j.event(lei, "check_in", "CI-0302").points == 1

    # Monday 15:10, ordered ahead in the app: an americano and a cake in happy hour
    j.move(2026, 3, 2, 15, 10)
    o2 = j.buy(
        lei,
        "DC-2",
        item("americano", "28.00", category="drinks"),
        item("cheesecake", "28.00", category="food"),
        channel="app",
    )
    assert by_rule(o2) == {
        "stars-per-drink": 1,
        "food": 1,  # floor(28 / 20)
        "happy-hour": 2,  # weekday, 15:10, a drink
        "order-ahead": 2,  # floor((1 + 28/20) × (2 − 1)) = floor(2.4)
    }
    assert o2.points == 6  # 1 + 1 + 2 + 2; no first-order gift the second time
    # 17 + 1 + 6
    assert j.points(lei) == Points(available=24, pending=0, lifetime=24, growth=138)

    # Monday 16:30 in the mini-program: happy hour again, but its 2 a day are used
    j.move(2026, 3, 2, 16, 30)
    o3 = j.buy(lei, "DC-3", latte(), channel="mini_program")
    assert by_rule(o3) == {"stars-per-drink": 1, "happy-hour": 0, "order-ahead": 1}
    capped = next(i for i in o3.breakdown if i.rule == "happy-hour")
    assert (capped.wanted, capped.capped_by) == (2, "allowance")  # the daily cap
    assert j.points(lei) == Points(available=26, pending=0, lifetime=26, growth=170)

    # Tuesday 14:00 sharp in 杭州: happy hour has begun, and a new day has a new cap
    j.move(2026, 3, 3, 14, 0)
    o4 = j.buy(lei, "DC-4", latte(), store="hz-xihu")
    assert by_rule(o4) == {"stars-per-drink": 1, "happy-hour": 2}
    j.move(2026, 3, 3, 14, 1)
    assert j.event(lei, "check_in", "CI-0303").points == 1  # the week's second
    # Tuesday 17:00 sharp: happy hour is over (17:00 is excluded)
    j.move(2026, 3, 3, 17, 0)
    o5 = j.buy(lei, "DC-5", latte(), store="hz-xihu")
    assert by_rule(o5) == {"stars-per-drink": 1}
    # Wednesday: the week's third check-in; Thursday's is one too many
    j.move(2026, 3, 4, 9)
    assert j.event(lei, "check_in", "CI-0304").points == 1
    j.move(2026, 3, 5, 9)
    assert j.event(lei, "check_in", "CI-0305").status == "limited"
    # Saturday 15:00: no happy hour at weekends
    j.move(2026, 3, 7, 15, 0)
    o6 = j.buy(lei, "DC-6", latte(), store="sh-jingan")
    assert by_rule(o6) == {"stars-per-drink": 1}
    # 26 + 3 (Tue 14:00) + 1 (check-in) + 1 (Tue 17:00) + 1 (check-in) + 1 (Sat);
    # growth 170 + 32 × 3
    assert j.points(lei) == Points(available=33, pending=0, lifetime=33, growth=266)

    # Saturday 15:05: the Tuesday-evening latte was the wrong drink and is refunded
    j.move(2026, 3, 7, 15, 5)
    refund = j.give_back(o5.id, external_id="DC-5-R", amount="32.00")
    assert (refund.points, refund.points_taken, refund.growth) == (1, 1, 32)
    assert j.points(lei) == Points(available=32, pending=0, lifetime=32, growth=234)

    # Sunday is still the same ISO week: no check-in star; Monday starts a new week
    j.move(2026, 3, 8, 10)
    assert j.event(lei, "check_in", "CI-0308").status == "limited"
    j.move(2026, 3, 9, 8)
    assert j.event(lei, "check_in", "CI-0309").points == 1
    assert j.points(lei) == Points(available=33, pending=0, lifetime=33, growth=234)

    # Stars earned in March expire 6 months later, at the end of September
    j.move(2026, 9, 10, 9)
    assert j.expiring(lei) == {j.at(2026, 9, 30).date(): 33}
    j.move(2026, 10, 1, 0, 1)
    assert j.run("expire") == 33
    assert j.points(lei) == Points(available=0, pending=0, lifetime=33, growth=234)
