"""Points as payment over HTTP, on both stores, at 100 积分 = 10 元: quote, hold, the purchase
capturing the hold and earning on the cash part, void, lapse, a return giving the points
share back; every refusal its problem detail that writes nothing."""

from __future__ import annotations

from typing import Any

from api.conftest import api, api_db  # noqa: F401 - the API tests' fixtures
from api.harness import Api, Tenant, assert_problem
from jifen.access.service import Scope
from jifen.programs.rulesets import save_rules
from jifen.rules.schemas import RuleSet

RULES = {"max_share": "0.5", "min_points": 100, "step": 100, "excluded_categories": ["tobacco"]}
RICE = {"sku": "rice", "category": "food", "unit_price": "200"}
CIGARETTES = {"sku": "cig", "category": "tobacco", "unit_price": "50"}


def _shop(api: Api, **settings: Any) -> Tenant:  # noqa: F811
    t = api.tenant(**({"points_payment": RULES} | settings))
    rules = RuleSet.model_validate(
        {
            "earning_rules": [
                {"id": "base", "name": "1 元 = 1 积分", "effect": {"points_per_amount": 1}}
            ]
        }
    )
    api.db.write(
        lambda s: save_rules(s, t.book.program_id, rules, now=api.clock.now(), actor="test")
    )
    return t


def _purchase(t: Tenant, member: int, order: str, *lines: dict[str, Any], **extra: Any) -> Any:
    total = sum(float(line["unit_price"]) for line in lines)
    return t.post(
        "/v1/purchases",
        {
            "member": {"id": member},
            "external_id": order,
            "occurred_at": t.api.clock.now().isoformat(),
            "channel": "pos",
            "lines": list(lines),
            "total": f"{total:.2f}",
            **extra,
        },
        scope=Scope.POS,
    )


def test_quote_hold_and_a_purchase_paying_with_points(api: Api) -> None:  # noqa: F811
    t = _shop(api)
    member = t.member()
    t.earn(member, 1000)
    quote = t.post(
        "/v1/checkout/quote",
        {"member": {"id": member}, "lines": [RICE, CIGARETTES], "total": "250"},
        scope=Scope.READ,
        idem=None,
    )
    assert quote.status_code == 200, quote.text
    assert {k: quote.json()[k] for k in ("eligible_amount", "max_points", "max_value")} == {
        "eligible_amount": "200.00",
        "max_points": 1000,
        "max_value": "100.00",
    }
    body = {"member": {"id": member}, "order": "A-1", "points": 500, "lines": [RICE, CIGARETTES]}
    held = t.post("/v1/checkout/hold", body, scope=Scope.POS)
    assert held.status_code == 201, held.text
    hold = held.json()
    assert (hold["points"], hold["value"], hold["status"], hold["expires_at"]) == (
        500,
        "50.00",
        "active",
        "2026-01-15T02:30:00Z",
    )
    again = t.post("/v1/checkout/hold", body, scope=Scope.POS)  # a new key: the same hold
    assert (again.status_code, again.json()) == (200, hold)
    assert t.balance(member).held == 500

    bought = _purchase(t, member, "A-1", RICE, CIGARETTES, points_payment={"hold_id": hold["id"]})
    assert bought.status_code == 201, bought.text
    purchase = bought.json()
    assert (purchase["paid_points"], purchase["paid_points_value"], purchase["points"]) == (
        500,
        "50.00",
        200,  # 250 元 less 50 元 paid with points
    )
    assert [line["points_value"] for line in purchase["lines"]] == ["50.00", "0.00"]
    balance = t.balance(member)
    assert (balance.available, balance.held) == (700, 0)
    assert t.get(f"/v1/checkout/holds/{hold['id']}").json()["status"] == "captured"
    repeat = _purchase(t, member, "A-1", RICE, CIGARETTES, points_payment={"hold_id": hold["id"]})
    assert (repeat.status_code, repeat.json()) == (200, purchase)
    assert t.balance(member).available == 700

    returned = t.post(
        f"/v1/purchases/{purchase['id']}/returns", {"lines": [{"line_no": 1, "quantity": "1"}]}
    )
    assert returned.status_code == 201, returned.text
    refund = returned.json()
    assert (
        refund["amount"],
        refund["paid_points_refunded"],
        refund["paid_points_value_refunded"],
        refund["cash_refund"],
        refund["points"],
    ) == ("200.00", 500, "50.00", "150.00", 150)
    assert t.balance(member).available == 700 + 500 - 150


def test_refusals_are_their_problems_and_write_nothing(api: Api) -> None:  # noqa: F811
    t = _shop(api)
    member, other = t.member(), t.member()
    t.earn(member, 800)
    t.earn(other, 1000)
    held = t.post(
        "/v1/checkout/hold",
        {"member": {"id": member}, "order": "A-1", "points": 500, "lines": [RICE]},
    ).json()
    recorded = _purchase(t, other, "DONE-1", RICE)
    assert recorded.status_code == 201
    t.all_keys()

    def hold(points: int, order: str = "B-1", who: int = member) -> dict[str, Any]:
        return {"member": {"id": who}, "order": order, "points": points, "lines": [RICE]}

    cases = [
        (hold(150), 422, "points-payment-refused", {"reason": "step", "step": 100}),
        (hold(50), 422, "points-payment-refused", {"reason": "below-minimum", "minimum": 100}),
        (hold(1100, who=other), 422, "points-payment-refused", {"reason": "above-maximum"}),
        (hold(400), 409, "insufficient-points", {"needed": 400, "available": 300}),
        (hold(500, "DONE-1", other), 409, "order-already-recorded", {"order": "DONE-1"}),
        (hold(600, "A-1"), 409, "order-already-held", {"hold_id": held["id"]}),
    ]
    for body, status, problem_type, members in cases:
        with api.writes_nothing():
            response = t.post("/v1/checkout/hold", body, scope=Scope.APP, lang="en")
        assert_problem(response, status, problem_type, **members)
    paid = {"points_payment": {"hold_id": held["id"]}}
    for who, order, reason in ((other, "A-1", "member"), (member, "B-1", "order")):
        with api.writes_nothing():
            response = _purchase(t, who, order, RICE, **paid)
        assert_problem(response, 409, "checkout-hold-mismatch", reason=reason, hold_id=held["id"])
    detail = t.post("/v1/checkout/hold", hold(150), lang="en").json()["detail"]
    assert detail == "150 points cannot pay for this order: points are used in multiples of 100."


def test_points_payment_disabled(api: Api) -> None:  # noqa: F811
    t = _shop(api, points_payment=None)
    member = t.member()
    t.earn(member, 1000)
    with api.writes_nothing():
        quote = t.post("/v1/checkout/quote", {"member": {"id": member}, "lines": [RICE]}, idem=None)
        held = t.post(
            "/v1/checkout/hold",
            {"member": {"id": member}, "order": "A-1", "points": 500, "lines": [RICE]},
        )
    assert_problem(quote, 409, "points-payment-disabled")
    assert_problem(held, 409, "points-payment-disabled")


def test_a_lapsed_hold_is_shown_lapsed_and_its_points_are_back(api: Api) -> None:  # noqa: F811
    t = _shop(api)
    member = t.member()
    t.earn(member, 1000)
    hold = t.post(
        "/v1/checkout/hold",
        {"member": {"id": member}, "order": "A-1", "points": 500, "lines": [RICE]},
    ).json()
    api.clock.advance(minutes=30)
    # no job has run: the quote applies the lapse before it reads the balance
    quote = t.post("/v1/checkout/quote", {"member": {"id": member}, "lines": [RICE]}, idem=None)
    assert quote.json()["available"] == 1000
    shown = t.get(f"/v1/checkout/holds/{hold['id']}").json()
    assert (shown["status"], shown["closed_at"]) == ("lapsed", "2026-01-15T02:30:00Z")
    response = _purchase(t, member, "A-1", RICE, points_payment={"hold_id": hold["id"]})
    assert_problem(response, 409, "hold-expired")


def test_void_gives_the_points_back(api: Api) -> None:  # noqa: F811
    t = _shop(api)
    member = t.member()
    t.earn(member, 1000)
    hold = t.post(
        "/v1/checkout/hold",
        {"member": {"id": member}, "order": "A-1", "points": 500, "lines": [RICE]},
    ).json()
    voided = t.post(f"/v1/checkout/holds/{hold['id']}/void", scope=Scope.POS)
    assert voided.status_code == 200, voided.text
    assert voided.json()["status"] == "voided"
    assert t.balance(member).available == 1000
    assert t.post(f"/v1/checkout/holds/{hold['id']}/void").json() == voided.json()
    plain = t.hold(member, 100)["id"]  # a ledger hold, not a checkout's
    assert_problem(t.post(f"/v1/checkout/holds/{plain}/void"), 404, "not-found")
    assert_problem(t.get(f"/v1/checkout/holds/{plain}"), 404, "not-found")
