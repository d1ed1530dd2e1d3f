"""Coupons over HTTP, on both stores: a coupon redeemed through `POST /v1/redemptions`, shown,
checked, used once (the same order with a new Idempotency-Key: the first result), tied to
the purchase of its order, cancelled and expired; every refusal is its problem detail, in
either language, and writes nothing."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from api.conftest import api, api_db  # noqa: F401 - the API tests' fixtures
from api.harness import Api, Tenant, assert_problem
from jifen.access.service import Scope
from jifen.rewards import codes

BASKET = [{"sku": "rice", "category": "food", "unit_price": "60"}]


def _coupon(t: Tenant, member: int, **terms: Any) -> str:
    """Redeem a coupon reward for `member` as a member would: its code as printed."""
    reward = f"cpn-{codes.new_code()[:6].lower()}"
    spec = {"kind": "fixed", "amount": "20", "min_spend": "50", "valid_days": 30} | terms
    body = {"name": "满50减20", "kind": "coupon", "points": 100, "coupon": spec}
    put = t.send("PUT", f"/v1/rewards/{reward}", body)
    assert put.status_code == 200, put.text
    t.earn(member, 100)
    redeemed = t.post("/v1/redemptions", {"member": {"id": member}, "reward": reward})
    assert redeemed.status_code == 201, redeemed.text
    code: str = redeemed.json()["coupons"][0]["code"]
    return code


def test_a_coupon_is_shown_checked_and_used_once(api: Api) -> None:  # noqa: F811
    t = api.tenant()
    member = t.member()
    code = _coupon(t, member)
    shown = t.get(f"/v1/coupons/{code.lower()}", scope=Scope.READ)
    assert shown.status_code == 200, shown.text
    coupon = shown.json()
    assert (coupon["display"], coupon["status"], coupon["member_id"]) == (code, "issued", member)
    assert (coupon["amount"], coupon["min_spend"], coupon["discount"]) == ("20.00", "50.00", None)

    checked = t.post(f"/v1/coupons/{code}/validate", {"lines": BASKET}, scope=Scope.APP, idem=None)
    assert checked.status_code == 200, checked.text
    assert (checked.json()["discount"], checked.json()["eligible_lines"]) == ("20.00", [1])

    body = {"order": "POS-7-0001", "member": {"id": member}, "lines": BASKET}
    used = t.post(f"/v1/coupons/{code}/use", body, scope=Scope.POS)
    assert used.status_code == 200, used.text
    first = used.json()
    assert (first["order"], first["discount"], first["repeated"]) == ("POS-7-0001", "20.00", False)
    assert first["coupon"]["status"] == "used"
    again = t.post(f"/v1/coupons/{code}/use", body, scope=Scope.POS)  # a new key
    assert again.status_code == 200
    assert again.json() == first | {"repeated": True}  # only the new key was recorded
    listed = t.get(f"/v1/members/{member}/coupons", status="used")
    assert [c["code"] for c in listed.json()] == [code.replace("-", "")]
    assert t.get(f"/v1/members/{member}/coupons", status="issued").json() == []


def test_the_coupon_is_tied_to_the_purchase_of_its_order(api: Api) -> None:  # noqa: F811
    t = api.tenant()
    member = t.member()
    code = _coupon(t, member)
    t.post(f"/v1/coupons/{code}/use", {"order": "A-1", "lines": BASKET})
    assert t.get(f"/v1/coupons/{code}").json()["purchase_id"] is None
    purchase = t.post(
        "/v1/purchases",
        {
            "member": {"id": member},
            "external_id": "A-1",
            "occurred_at": api.clock.now().isoformat(),
            "channel": "pos",
            "lines": [{"sku": "rice", "category": "food", "unit_price": "60", "discount": "20"}],
            "total": "40",
        },
    )
    assert purchase.status_code == 201, purchase.text
    assert t.get(f"/v1/coupons/{code}").json()["purchase_id"] == purchase.json()["id"]


def test_each_refusal_is_its_problem_and_writes_nothing(api: Api) -> None:  # noqa: F811
    t = api.tenant()
    member, other = t.member(), t.member()
    code = _coupon(t, member)
    used = _coupon(t, member)
    t.post(f"/v1/coupons/{used}/use", {"order": "A-1", "lines": BASKET})
    free = _coupon(t, member, kind="free_delivery", amount=None, min_spend="0")
    typo = code[:2] + ("A" if code[2] != "A" else "B") + code[3:]
    unknown = codes.display(codes.new_code())
    t.all_keys()
    cases = [
        (f"/v1/coupons/{typo}/use", {"order": "B-1"}, 422, "coupon-code-invalid", "check"),
        (
            f"/v1/coupons/{code[:-1]}O/use",
            {"order": "B-1"},
            422,
            "coupon-code-invalid",
            "look-alike",
        ),
        (f"/v1/coupons/{unknown}/use", {"order": "B-1"}, 404, "unknown-coupon", None),
        (f"/v1/coupons/{used}/use", {"order": "B-1"}, 409, "coupon-not-usable", "used"),
        (
            f"/v1/coupons/{code}/use",
            {"order": "B-1", "lines": [{"sku": "gum", "unit_price": "49.99"}]},
            409,
            "coupon-not-applicable",
            "min-spend",
        ),
        (
            f"/v1/coupons/{code}/use",
            {"order": "B-1", "member": {"id": other}},
            409,
            "coupon-not-applicable",
            "other-member",
        ),
        (
            f"/v1/coupons/{free}/use",
            {"order": "B-1"},
            409,
            "coupon-not-applicable",
            "no-delivery-fee",
        ),
    ]
    for path, fields, status, problem_type, reason in cases:
        body = {"lines": BASKET} | fields
        for route, idem in ((path, True), (path.replace("/use", "/validate"), None)):
            check_body = {k: v for k, v in body.items() if k != "order"} if idem is None else body
            with api.writes_nothing():
                response = t.post(route, check_body, scope=Scope.POS, idem=idem, lang="en")
            problem = assert_problem(response, status, problem_type)
            if reason is not None:
                assert problem["reason"] == reason, problem
    refused = t.post(f"/v1/coupons/{used}/use", {"order": "B-1", "lines": BASKET}, lang="en")
    assert "was used on order A-1" in refused.json()["detail"]
    zh = t.post(f"/v1/coupons/{typo}/use", {"order": "B-1", "lines": BASKET})
    assert "有一位输错，或相邻两位颠倒" in zh.json()["detail"]


def test_an_expired_coupon_is_refused_at_once_and_marked_by_the_job(api: Api) -> None:  # noqa: F811
    t = api.tenant()
    member = t.member()
    code = _coupon(t, member, valid_days=1)
    api.clock.advance(days=1)
    with api.writes_nothing():
        response = t.post(f"/v1/coupons/{code}/use", {"order": "A-1", "lines": BASKET})
    problem = assert_problem(response, 409, "coupon-not-usable", reason="expired")
    assert problem["expires_at"] == "2026-01-15T16:00:00+00:00"
    assert t.get(f"/v1/coupons/{code}").json()["status"] == "expired"
    ran = t.post("/v1/jobs/coupon-expiry")
    assert ran.status_code == 200, ran.text
    assert (ran.json()["job"], ran.json()["items"]) == ("coupon-expiry", 1)
    coupon = t.get(f"/v1/coupons/{code}").json()
    assert (coupon["status"], coupon["closed_at"]) == ("expired", "2026-01-15T16:00:00Z")
    assert t.post("/v1/jobs/coupon-expiry").json()["items"] == 0


def test_staff_cancel_a_coupon_and_tills_may_not(api: Api) -> None:  # noqa: F811
    t = api.tenant()
    member = t.member()
    code = _coupon(t, member)
    t.all_keys()
    with api.writes_nothing():
        assert_problem(
            t.post(f"/v1/coupons/{code}/cancel", {"reason": "x"}, scope=Scope.POS), 403, "forbidden"
        )
    done = t.post(f"/v1/coupons/{code}/cancel", {"reason": "printed twice"})
    assert done.status_code == 200, done.text
    assert (done.json()["status"], done.json()["cancel_reason"]) == ("cancelled", "printed twice")
    refused = t.post(f"/v1/coupons/{code}/use", {"order": "A-1", "lines": BASKET})
    assert_problem(refused, 409, "coupon-not-usable", reason="cancelled")
    api.clock.advance(timedelta(minutes=1))
    assert t.post(f"/v1/coupons/{code}/cancel", {"reason": "again"}).json() == done.json()
