"""The restaurant group (examples/restaurant.yaml): points per 10 元, double at weekday
lunch, the dish of the month per bill line, a new branch's opening bonus on a daily
budget shared by all members, a refunded dish, a receipt claimed late, reviews twice a
month, birthday points in the birthday month, expiry at the end of the next year."""

from __future__ import annotations

import pytest

from jifen.core.clock import FrozenClock
from jifen.core.errors import OutsideClaimWindow
from jifen.db.uow import Database

from .journey import Journey, Points, by_rule, item

FISH = "DISH-0326"  # 水煮鱼, the dish of March 2026


def test_a_month_of_meals(db: Database, clock: FrozenClock) -> None:
    j = Journey(db, clock, "restaurant")
    j.move(2026, 3, 1, 11)
    jing = j.enrol("13900000004", name="陈静", birthday="1988-03-12")
    yang = j.enrol("13900000005", name="刘洋")
    min_ = j.enrol("13900000006", name="赵敏")
    assert j.event(jing, "sign_up", "WX-jing").points == 30
    # March is 陈静's birthday month (window: month): the job gives her 100 on the 1st
    j.move(2026, 3, 1, 11, 5)
    assert j.run("birthday") == 100  # nobody else has a birthday in March

    # Tuesday 3 March, 12:30 at 春熙路: lunch for two
    j.move(2026, 3, 3, 12, 30)
    lunch = j.buy(
        jing,
        "SX-0303-017",
        item(FISH, "88.00"),
        item("rice", "3.00", 2),
        item("maoxuewang", "44.00"),
        store="cd-chunxi",
        payment_method="wechat",
    )
    assert by_rule(lunch) == {
        "base": 13,  # floor(138 / 10)
        "weekday-lunch": 13,  # floor(13.8 × (2 − 1))
        "dish-of-the-month": 5,  # one bill line of the fish
    }
    assert lunch.points == 31  # 13 + 13 + 5
    # 30 (sign-up) + 100 (birthday) + 31
    assert j.points(jing) == Points(available=161, pending=0, lifetime=161, growth=138)
    j.move(2026, 3, 3, 13, 30)
    assert j.event(jing, "review", "REVIEW-SX-0303-017").points == 20  # March's first

    # 14:00 sharp, 刘洋 pays at the next table: lunch is over
    j.move(2026, 3, 3, 14, 0)
    late = j.buy(yang, "SX-0303-021", item("dandanmian", "56.00"), store="cd-chunxi")
    assert by_rule(late) == {"base": 5}  # floor(5.6)

    # 15:00: the 毛血旺 was cold; the restaurant refunds it (line 3)
    j.move(2026, 3, 3, 15)
    refund = j.give_back(lunch.id, external_id="SX-R-1", lines=[{"line_no": 3, "amount": "44.00"}])
    assert by_rule(refund) == {
        "base": 4,  # 13 → floor(94 / 10) = 9
        "weekday-lunch": 4,  # 13 → 9
    }  # the fish's 5 stays
    assert (refund.points, refund.growth) == (8, 44)
    # 161 + 20 − 8
    assert j.points(jing) == Points(available=173, pending=0, lifetime=173, growth=94)

    # Thursday 5 March, dinner in 重庆: 刘洋 does not scan the receipt's code
    j.move(2026, 3, 5, 19)
    j.buy(None, "SX-0305-044", item("hotpot", "180.00"), store="cq-jiefangbei")

    # Saturday 7 March at the new 高新 branch: the opening bonus has 100 points a day
    j.move(2026, 3, 7, 12)
    first = j.buy(
        jing,
        "SX-0307-001",
        item(FISH, "88.00"),
        item("beer", "24.00"),
        item(FISH, "88.00"),  # a second portion, ordered later: a second bill line
        store="cd-gaoxin",
    )
    assert by_rule(first) == {
        "base": 20,  # 200 / 10
        "dish-of-the-month": 10,  # two lines of the fish × 5
        "gaoxin-opening": 50,  # 满 100; no weekday lunch on a Saturday
    }
    j.move(2026, 3, 7, 12, 50)
    assert j.event(jing, "review", "REVIEW-SX-0307-001").points == 20  # March's second
    j.move(2026, 3, 7, 13)
    second = j.buy(yang, "SX-0307-002", item("hotpot", "120.00"), store="cd-gaoxin")
    assert by_rule(second) == {"base": 12, "gaoxin-opening": 50}  # the day's last 50
    j.move(2026, 3, 7, 19)
    third = j.buy(min_, "SX-0307-003", item("hotpot", "150.00"), store="cd-gaoxin")
    assert by_rule(third) == {"base": 15, "gaoxin-opening": 0}  # the day's 100 are given
    gone = next(i for i in third.breakdown if i.rule == "gaoxin-opening")
    assert (gone.wanted, gone.capped_by) == (50, "allowance")

    # Sunday: a new day, a new budget; 99.90 元 is not 满 100
    j.move(2026, 3, 8, 12)
    short = j.buy(min_, "SX-0308-001", item("noodles", "99.90"), store="cd-gaoxin")
    assert by_rule(short) == {"base": 9}
    j.move(2026, 3, 8, 18)
    sunday = j.buy(min_, "SX-0308-002", item("hotpot", "100.00"), store="cd-gaoxin")
    assert by_rule(sunday) == {"base": 10, "gaoxin-opening": 50}
    # 15 + 9 + 60
    assert j.points(min_) == Points(available=84, pending=0, lifetime=84, growth=349)
    # a third review in March earns nothing (2 a month)
    j.move(2026, 3, 8, 19)
    assert j.event(jing, "review", "REVIEW-SX-0308-x").status == "limited"
    # 173 + 80 (Saturday) + 20 (review)
    assert j.points(jing) == Points(available=273, pending=0, lifetime=273, growth=294)

    # Tuesday 10 March 19:00 in 重庆: 刘洋 forgets to scan; on Thursday he claims the
    # receipt (within 3 days); the one from 5 March is too old by then
    j.move(2026, 3, 10, 19)
    j.buy(None, "SX-0310-009", item("hotpot", "260.00"), store="cq-jiefangbei")
    j.move(2026, 3, 12, 20)
    claimed = j.claim("SX-0310-009", yang)
    assert by_rule(claimed) == {"base": 26}  # dinner: no lunch multiplier
    with pytest.raises(OutsideClaimWindow):
        j.claim("SX-0305-044", yang)
    # 5 (Tue) + 62 (Sat) + 26 (claimed)
    assert j.points(yang) == Points(available=93, pending=0, lifetime=93, growth=436)
    # her birthday itself (12 March): the job has given this year's already
    assert j.run("birthday") == 0

    # April: reviews earn again
    j.move(2026, 4, 1, 20)
    assert j.event(jing, "review", "REVIEW-SX-0401-003").points == 20

    # Points earned in 2026 expire at the end of 2027
    j.move(2027, 12, 10, 10)
    assert j.expiring(jing) == {j.at(2027, 12, 31).date(): 293}  # 273 + 20
    j.move(2028, 1, 1, 0, 1)
    assert j.run("expire") == 293 + 93 + 84  # 陈静, 刘洋, 赵敏
    assert j.points(jing) == Points(available=0, pending=0, lifetime=293, growth=294)
