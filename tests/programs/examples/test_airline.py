"""The airline (examples/airline.yaml): miles from each segment's distance by fare class,
a new route's bonus, growth value by segments flown, refunds taking miles back into
debt, and missing miles claimed months later."""

from __future__ import annotations

from typing import Any

from jifen.core.clock import FrozenClock
from jifen.db.uow import Database

from .journey import Journey, Points, by_rule, growth_by_rule, item

PEK_SHA_KM = 1178
PEK_CAN_KM = 1967


def segment(
    flight: str, fare: str, route: str, km: int, price: str, cabin: str = "economy"
) -> dict[str, Any]:
    return item(
        flight,
        price,
        category="flight",
        attributes={"fare_class": fare, "route": route, "distance": km, "cabin": cabin},
    )


def test_a_frequent_flyer(db: Database, clock: FrozenClock) -> None:
    j = Journey(db, clock, "airline")

    # 20 January: a company travel agent books 张伟 a flight without his member number
    j.move(2026, 1, 20, 9)
    j.buy(
        None,
        "TKT-781-0001",
        segment("YC1503", "Y", "PEK-SHA", PEK_SHA_KM, "1250.00"),
        channel="agency",
    )

    j.move(2026, 3, 1, 10)
    wei = j.enrol("13900000003", name="张伟", card_number="YC88001234")
    assert j.event(wei, "sign_up", "FFP-YC88001234").points == 1000  # 入会奖励

    # 2 March, on the website: a round trip, business out, discounted economy back,
    # and 20 kg of extra baggage (no distance, no fare class: no miles)
    j.move(2026, 3, 2, 10)
    t1 = j.buy(
        wei,
        "TKT-781-0002",
        segment("YC1501", "J", "PEK-SHA", PEK_SHA_KM, "2980.00", cabin="business"),
        segment("YC1502", "M", "SHA-PEK", PEK_SHA_KM, "890.00"),
        item("BAG-20KG", "200.00", category="ancillary"),
        channel="web",
    )
    assert by_rule(t1) == {
        "miles-premium": 1767,  # floor(1178 × 1.5)
        "miles-discount-economy": 589,  # 1178 × 0.5
    }
    assert t1.points == 2356  # 1767 + 589
    assert growth_by_rule(t1) == {
        "segments": 20,  # two segments × 10 (the baggage is no segment)
        "premium-cabin": 5,  # the business segment: (1.5 − 1) × 10
    }
    # 1000 (sign-up) + 2356
    assert j.points(wei) == Points(available=3356, pending=0, lifetime=3356, growth=25)

    # 5 March, in the app: Beijing–Guangzhou on the new route, full-fare economy
    j.move(2026, 3, 5, 21)
    t2 = j.buy(
        wei,
        "TKT-781-0003",
        segment("YC1301", "Y", "PEK-CAN", PEK_CAN_KM, "1700.00"),
        channel="app",
    )
    assert by_rule(t2) == {"miles-full-economy": 1967, "new-route-pek-can": 500}
    assert growth_by_rule(t2) == {"segments": 10}
    # 3356 + 2467; growth 25 + 10
    assert j.points(wei) == Points(available=5823, pending=0, lifetime=5823, growth=35)

    # 6 March: 5000 miles for an upgrade voucher
    j.move(2026, 3, 6, 9)
    j.spend(wei, 5000, "升舱券")
    assert j.points(wei).available == 823

    # 10 March: the Guangzhou trip is cancelled and the ticket refunded. Its 2467 miles
    # go back although only 823 are left: policy debt, the balance goes to −1644
    j.move(2026, 3, 10, 9)
    r1 = j.give_back(t2.id, external_id="RF-0003", amount="1700.00")
    assert by_rule(r1) == {"miles-full-economy": 1967, "new-route-pek-can": 500}
    assert (r1.points, r1.points_taken, r1.points_not_taken) == (2467, 2467, 0)
    assert r1.policy == "debt"
    # 823 − 2467; lifetime 5823 − 2467; growth 35 − 10
    assert j.points(wei) == Points(available=-1644, pending=0, lifetime=3356, growth=25)

    # 12 March: the unused return leg of the round trip is refunded (a partial return)
    j.move(2026, 3, 12, 9)
    r2 = j.give_back(t1.id, external_id="RF-0002-2", lines=[{"line_no": 2, "quantity": 1}])
    assert by_rule(r2) == {"miles-discount-economy": 589}  # the business leg keeps its miles
    assert {i["rule"]: i["points"] for i in r2.breakdown if i["kind"] == "growth"} == {
        "segments": 10  # one segment less; the business segment keeps its 5
    }
    assert r2.purchase_status == "awarded"  # the ticket is not all returned
    # −1644 − 589; lifetime 3356 − 589; growth 25 − 10
    assert j.points(wei) == Points(available=-2233, pending=0, lifetime=2767, growth=15)

    # 20 March: he claims the January flight (missing miles, within 180 days); its miles
    # repay part of the debt
    j.move(2026, 3, 20, 9)
    claimed = j.claim("TKT-781-0001", wei)
    assert by_rule(claimed) == {"miles-full-economy": 1178}
    assert growth_by_rule(claimed) == {"segments": 10}
    # −2233 + 1178; lifetime 2767 + 1178; growth 15 + 10
    assert j.points(wei) == Points(available=-1055, pending=0, lifetime=3945, growth=25)

    # 1 April: first class out, a deep-discount fare (V) back: V earns no miles, but the
    # segment still counts for growth
    j.move(2026, 4, 1, 8)
    t3 = j.buy(
        wei,
        "TKT-781-0004",
        segment("YC1501", "F", "PEK-SHA", PEK_SHA_KM, "5200.00", cabin="first"),
        segment("YC1502", "V", "SHA-PEK", PEK_SHA_KM, "420.00"),
        channel="app",
    )
    assert by_rule(t3) == {"miles-premium": 1767}
    assert growth_by_rule(t3) == {"segments": 20, "premium-cabin": 5}
    # the debt is repaid: −1055 + 1767; lifetime 3945 + 1767; growth 25 + 25
    assert j.points(wei) == Points(available=712, pending=0, lifetime=5712, growth=50)
