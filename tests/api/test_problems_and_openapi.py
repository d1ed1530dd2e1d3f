"""Problem details (RFC 9457) in both languages, the catalogue of problem types, and the
OpenAPI document."""

from __future__ import annotations

from typing import Any

import pytest

from api.harness import Api, assert_problem
from jifen.api.problems import PROBLEM_JSON, problem_types


def test_problems_are_zh_cn_by_default_and_en_on_request(api: Api) -> None:
    t = api.tenant()
    member = t.member()
    t.earn(member, 10)
    path = f"/v1/members/{member}/spend"
    zh = t.post(path, {"points": 20})
    body = assert_problem(zh, 409, "insufficient-points", needed=20, available=10)
    assert zh.headers["content-type"] == PROBLEM_JSON
    assert zh.headers["content-language"] == "zh-CN"
    assert body["title"] == "积分不足"
    assert body["detail"] == "可用积分不足：需要 20，可用 10。"
    assert body["instance"] == path
    for accept in ("en", "en-US,en;q=0.9", "fr, en;q=0.5"):
        en = t.post(path, {"points": 20}, lang=accept)
        body = assert_problem(en, 409, "insufficient-points")
        assert en.headers["content-language"] == "en"
        assert body["title"] == "Insufficient points"
        assert body["detail"] == "Insufficient points: 20 needed, 10 available."
    for accept in ("zh", "zh-TW", "de"):
        assert t.post(path, {"points": 20}, lang=accept).json()["title"] == "积分不足"
    # the caller's preference (q) decides, not the order
    for accept, title in [
        ("en;q=0.1, zh-CN;q=0.9", "积分不足"),
        ("zh-CN;q=0.2, en;q=0.8", "Insufficient points"),
        ("zh;q=0, en", "Insufficient points"),
        ("de, en;q=0.5, zh;q=0.4", "Insufficient points"),
        ("en;q=oops, zh", "积分不足"),
    ]:
        response = t.post(path, {"points": 20}, lang=accept)
        assert response.json()["title"] == title, accept


def test_validation_problems_list_every_field(api: Api) -> None:
    t = api.tenant()
    member = t.member()
    response = t.post(
        "/v1/holds", {"member_id": member, "points": -1, "expires_in_minutes": 0}, lang="en"
    )
    body = assert_problem(response, 422, "invalid-input")
    fields = {err["field"] for err in body["errors"]}
    assert fields == {"points", "expires_in_minutes"}
    assert all(err["message"] for err in body["errors"])
    assert body["title"] == "Invalid input"
    assert body["field"] in fields


def test_unknown_route_and_method_are_problems(api: Api) -> None:
    t = api.tenant()
    for path in ("/v1/nothing", "/v2/members/1", "/", "/v1/members/1/balance/extra"):
        response = t.get(path, lang="en")
        body = assert_problem(response, 404, "not-found")
        assert "/docs" in body["detail"]
    member = t.member()
    for method, path in [
        ("DELETE", f"/v1/members/{member}"),
        ("PUT", f"/v1/members/{member}/balance"),
        ("GET", f"/v1/members/{member}/earn"),
        ("POST", "/v1/program"),
    ]:
        response = t.send(method, path, None)
        body = assert_problem(response, 405, "method-not-allowed", method=method)
        assert response.headers["allow"]
        assert method not in response.headers["allow"]


def test_an_unexpected_error_is_a_bare_500(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    from jifen.ledger import service

    t = api.tenant()
    member = t.member()

    def boom(*_: Any, **__: Any) -> Any:
        raise RuntimeError("secret internals")

    monkeypatch.setattr(service, "credit", boom)
    with api.writes_nothing():
        response = t.post(f"/v1/members/{member}/earn", {"points": 1}, idem="crash-1")
        body = assert_problem(response, 500, "internal-error")
    assert "secret" not in response.text
    assert "Traceback" not in response.text
    assert set(body) == {"type", "title", "status", "detail", "instance"}
    monkeypatch.undo()
    # the crash wrote nothing, not even the key: the retry runs
    retry = t.post(f"/v1/members/{member}/earn", {"points": 1}, idem="crash-1")
    assert retry.status_code == 201
    assert "Idempotent-Replayed" not in retry.headers


def test_the_catalogue_of_problem_types(api: Api) -> None:
    response = api.client.get("/problems")
    assert response.status_code == 200
    listed = {p["code"]: p for p in response.json()}
    for code in (
        "invalid-input",
        "not-found",
        "unauthorized",
        "forbidden",
        "idempotency-key-missing",
        "idempotency-key-reused",
        "insufficient-points",
        "member-frozen",
        "member-closed",
        "hold-expired",
        "hold-not-active",
        "capture-exceeds-hold",
        "not-reversible",
        "transfers-disabled",
        "duplicate-identifier",
        "duplicate-reference",
        "method-not-allowed",
        "root-api-disabled",
        "root-token-required",
        "internal-error",
    ):
        assert code in listed, code
        assert listed[code]["type"] == f"/problems/{code}"
    assert set(listed) == set(problem_types())
    frozen = api.client.get("/problems/member-frozen").json()
    assert frozen == listed["member-frozen"]
    assert frozen["status"] == 409
    assert frozen["title"] == "会员已冻结"
    en = api.client.get("/problems/member-frozen", headers={"Accept-Language": "en"}).json()
    assert en["title"] == "Member frozen"
    assert "frozen" in en["description"]
    assert_problem(api.client.get("/problems/no-such-problem"), 404, "not-found")


def test_every_problem_type_a_response_names_is_in_the_catalogue(api: Api) -> None:
    t = api.tenant()
    member = t.member()
    codes = {
        t.post(f"/v1/members/{member}/spend", {"points": 1}).json()["type"],
        t.get("/v1/members/424242424242").json()["type"],
        t.post(f"/v1/members/{member}/spend", {"points": 0}).json()["type"],
    }
    for problem_type in codes:
        assert api.client.get(problem_type).status_code == 200, problem_type


READ_ONLY_POSTS = ("/v1/simulate", "/v1/coupons/{code}/validate", "/v1/checkout/quote")


def test_openapi_lists_every_route_with_its_problems(api: Api) -> None:
    response = api.client.get("/openapi.json")
    assert response.status_code == 200
    spec = response.json()
    assert spec["info"]["title"] == "jifen"
    paths = spec["paths"]
    expected = {
        "/v1/health": {"get"},
        "/v1/program": {"get"},
        "/v1/programs": {"get", "post"},
        "/v1/keys": {"get", "post"},
        "/v1/keys/{key_id}": {"delete"},
        "/v1/members": {"get", "post"},
        "/v1/members/{member_id}": {"get", "patch"},
        "/v1/members/{member_id}/status": {"post"},
        "/v1/members/{member_id}/balance": {"get"},
        "/v1/members/{member_id}/history": {"get"},
        "/v1/members/{member_id}/lots": {"get"},
        "/v1/members/{member_id}/earn": {"post"},
        "/v1/members/{member_id}/spend": {"post"},
        "/v1/members/{member_id}/adjustments": {"post"},
        "/v1/transfers": {"post"},
        "/v1/transactions/{transaction_id}": {"get"},
        "/v1/transactions/{transaction_id}/reversal": {"post"},
        "/v1/holds": {"post"},
        "/v1/holds/{hold_id}": {"get"},
        "/v1/holds/{hold_id}/capture": {"post"},
        "/v1/holds/{hold_id}/void": {"post"},
        "/v1/purchases": {"post"},
        "/v1/purchases/{purchase_id}": {"get"},
        "/v1/members/{member_id}/purchases": {"get"},
        "/v1/purchases/{purchase_id}/returns": {"post"},
        "/v1/purchases/claims": {"post"},
        "/v1/simulate": {"post"},
        "/v1/jobs/{name}": {"post"},
        "/v1/rules": {"get", "put"},
        "/v1/rules/versions/{version}": {"get"},
        "/v1/stores": {"get"},
        "/v1/channels": {"get"},
        "/v1/events": {"post"},
        "/v1/events/{event_id}": {"get"},
        "/v1/members/{member_id}/events": {"get"},
        "/v1/segments/{code}/members": {"get"},
        "/v1/segments/{code}/members/{member_id}": {"put", "delete"},
        "/v1/members/{member_id}/segments": {"get"},
        "/v1/rewards": {"get"},
        "/v1/rewards/{code}": {"get", "put"},
        "/v1/rewards/{code}/stock": {"post"},
        "/v1/charity": {"get"},
        "/v1/redemptions": {"post"},
        "/v1/redemptions/{redemption_id}": {"get"},
        "/v1/members/{member_id}/redemptions": {"get"},
        "/v1/redemptions/{redemption_id}/cancel": {"post"},
        "/v1/redemptions/{redemption_id}/ship": {"post"},
        "/v1/redemptions/{redemption_id}/deliver": {"post"},
        "/v1/tiers": {"get"},
        "/v1/members/{member_id}/tier": {"get"},
        "/v1/members/{member_id}/tier/history": {"get"},
        "/v1/members/{member_id}/tier/grants": {"post"},
        "/v1/members/{member_id}/tier/grants/{grant_id}/revoke": {"post"},
        "/v1/coupons/{code}": {"get"},
        "/v1/members/{member_id}/coupons": {"get"},
        "/v1/coupons/{code}/validate": {"post"},
        "/v1/coupons/{code}/use": {"post"},
        "/v1/coupons/{code}/cancel": {"post"},
        "/v1/checkout/quote": {"post"},
        "/v1/checkout/hold": {"post"},
        "/v1/checkout/holds/{hold_id}": {"get"},
        "/v1/checkout/holds/{hold_id}/void": {"post"},
        "/problems": {"get"},
        "/problems/{code}": {"get"},
    }
    assert {path: set(ops) for path, ops in paths.items()} == expected
    schemas = spec["components"]["schemas"]
    assert {"Problem", "ValidationProblem", "FieldProblem"} <= set(schemas)
    assert "HTTPValidationError" not in schemas
    for path, operations in paths.items():
        for method, operation in operations.items():
            assert operation.get("summary"), (method, path)
            for status, answer in operation["responses"].items():
                if status.startswith("2"):
                    continue
                content = answer["content"]
                assert list(content) == [PROBLEM_JSON], (method, path, status)
                ref = content[PROBLEM_JSON]["schema"]["$ref"]
                assert ref.endswith("ValidationProblem" if status == "422" else "Problem")
                assert "`" in answer["description"]  # names its problem codes
            if path.startswith("/v1/") and path not in ("/v1/health", "/v1/programs"):
                assert "401" in operation["responses"], (method, path)
                assert "403" in operation["responses"], (method, path)
                assert operation.get("security"), (method, path)
            # simulate, a coupon's check and a checkout quote write nothing
            writes = path.startswith("/v1/") and path not in READ_ONLY_POSTS
            if method in ("post", "put", "patch", "delete") and writes:
                assert "400" in operation["responses"], (method, path)  # no Idempotency-Key
                params = {p["name"] for p in operation.get("parameters", [])}
                assert "Idempotency-Key" in params, (method, path)
    spend = paths["/v1/members/{member_id}/spend"]["post"]["responses"]
    assert "`insufficient-points`" in spend["409"]["description"]
    assert "`member-frozen`" in spend["409"]["description"]
    capture = paths["/v1/holds/{hold_id}/capture"]["post"]["responses"]
    assert "`hold-expired`" in capture["409"]["description"]
    assert "`capture-exceeds-hold`" in capture["422"]["description"]
    put_rules = paths["/v1/rules"]["put"]
    assert "`rules-version-mismatch`" in put_rules["responses"]["412"]["description"]
    assert "If-Match" in {p["name"] for p in put_rules["parameters"]}
    rules = paths["/v1/rules"]["get"]["responses"]["200"]["content"]["application/json"]
    assert rules["schema"]["$ref"].endswith("/RulesOut")
    redeem = paths["/v1/redemptions"]["post"]["responses"]
    for code in ("out-of-stock", "limit-reached", "insufficient-points", "reward-unavailable"):
        assert f"`{code}`" in redeem["409"]["description"]
    assert "`tier-not-allowed`" in redeem["403"]["description"]
    assert "`unknown-reward`" in redeem["404"]["description"]
    grants = paths["/v1/members/{member_id}/tier/grants"]["post"]["responses"]
    for code in ("unknown-tier", "grant-ends-before-start"):
        assert f"`{code}`" in grants["422"]["description"]
    assert "`grant-reference-conflict`" in grants["409"]["description"]
    transfer = paths["/v1/transfers"]["post"]["responses"]
    assert "`transfers-disabled`" in transfer["409"]["description"]
    use = paths["/v1/coupons/{code}/use"]["post"]["responses"]
    assert "`coupon-not-usable`" in use["409"]["description"]
    assert "`coupon-not-applicable`" in use["409"]["description"]
    assert "`coupon-code-invalid`" in use["422"]["description"]
    assert "`unknown-coupon`" in use["404"]["description"]
    purchase = paths["/v1/purchases"]["post"]["responses"]
    assert "`checkout-hold-mismatch`" in purchase["409"]["description"]
    assert "`points-payment-refused`" in purchase["422"]["description"]
    hold = paths["/v1/checkout/hold"]["post"]["responses"]
    assert "`points-payment-refused`" in hold["422"]["description"]
    assert "`points-payment-disabled`" in hold["409"]["description"]


def test_docs_page_loads(api: Api) -> None:
    response = api.client.get("/docs")
    assert response.status_code == 200
    assert "text/html" in response.headers["content-type"]
    assert "/openapi.json" in response.text
    assert "swagger" in response.text.lower()


def test_health_says_when_the_database_is_unreachable(api: Api) -> None:
    from fastapi.testclient import TestClient

    from jifen.api.app import create_app
    from jifen.core.settings import Settings
    from jifen.db.uow import Database

    gone = Database("postgresql://nobody@127.0.0.1:9/nothing", pool_size=1, max_overflow=0)
    app = create_app(gone, api.clock, settings=Settings(root_token=None))
    with TestClient(app, raise_server_exceptions=False) as client:
        response = client.get("/v1/health", headers={"Accept-Language": "en"})
    gone.dispose()
    body = assert_problem(response, 503, "database-unavailable")
    assert "retry" in body["detail"]
