"""Programmes (the key's own; creating and listing with the installation's root token)
and a programme's API keys (create, shown once; list without secrets; revoke)."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.harness import ROOT_TOKEN, Api, assert_problem
from jifen.access.service import Scope
from jifen.api.app import create_app
from jifen.core.settings import Settings

ROOT = {"Authorization": f"Bearer {ROOT_TOKEN}"}


def _create(api: Api, body: dict[str, Any], headers: dict[str, str] | None = None) -> Any:
    return api.client.post(
        "/v1/programs",
        json=body,
        headers={**ROOT, "Idempotency-Key": f"create-{body.get('code')}", **(headers or {})},
    )


# -- the key's own programme -----------------------------------------------------------------


def test_every_scope_reads_its_own_programme(api: Api) -> None:
    t = api.tenant(
        name="咖啡连锁",
        pending_days=7,
        allow_transfers=True,
        expiry_policy={"kind": "after_months", "months": 24, "round_to": "quarter"},
    )
    api.tenant(name="someone else")
    for scope in Scope:
        program = t.get("/v1/program", scope=scope).json()
        assert program["id"] == t.book.program_id
        assert program["name"] == "咖啡连锁"
        assert program["pending_days"] == 7
        assert program["allow_transfers"] is True
        assert program["expiry_policy"] == {
            "kind": "after_months",
            "months": 24,
            "round_to": "quarter",
        }
        assert program["timezone"] == "Asia/Shanghai"
        assert program["expiry_description"] == "获得后 24 个月到期，取整到季度末"
        assert program["point_value_description"] == "100 积分 = 10 CNY"


# -- creating and listing programmes (root token) --------------------------------------------


def test_create_a_programme_and_use_its_admin_key(api: Api) -> None:
    response = _create(
        api,
        {
            "code": "tea-house",
            "name": "茶馆",
            "timezone": "Europe/Berlin",
            "expiry_policy": {"kind": "fixed_date", "month": 12, "day": 31},
            "hold_minutes": 15,
        },
    )
    assert response.status_code == 201, response.text
    created = response.json()
    program, admin = created["program"], created["admin_key"]
    assert (program["code"], program["timezone"], program["hold_minutes"]) == (
        "tea-house",
        "Europe/Berlin",
        15,
    )
    assert program["created_at"] == "2026-01-15T02:00:00Z"
    assert admin["scope"] == "admin"
    assert admin["key"].startswith(f"jf_{admin['prefix']}_")
    # the new admin key works, in its own programme
    headers = {"Authorization": f"Bearer {admin['key']}"}
    assert api.client.get("/v1/program", headers=headers).json() == program
    listed = api.client.get("/v1/keys", headers=headers).json()
    assert [k["id"] for k in listed] == [admin["id"]]
    assert "key" not in listed[0]
    # and the programme is listed
    programs = api.client.get("/v1/programs", headers=ROOT).json()
    assert program in programs


def test_list_programmes(api: Api) -> None:
    a = api.tenant(name="A")
    b = api.tenant(name="B")
    response = api.client.get("/v1/programs", headers=ROOT)
    assert response.status_code == 200
    ids = [p["id"] for p in response.json()]
    assert ids == sorted(ids)
    assert {a.book.program_id, b.book.program_id} <= set(ids)


@pytest.mark.parametrize(
    ("authorization", "status", "code"),
    [
        pytest.param(None, 401, "unauthorized", id="absent"),
        pytest.param("Bearer", 401, "unauthorized", id="empty"),
        pytest.param("Bearer wrong-token", 401, "unauthorized", id="wrong"),
        pytest.param(f"Bearer {ROOT_TOKEN}x", 401, "unauthorized", id="longer"),
        pytest.param(f"Basic {ROOT_TOKEN}", 401, "unauthorized", id="not-bearer"),
        pytest.param("Bearer jf_000000000000_x", 401, "unauthorized", id="unknown-key"),
        pytest.param("{admin}", 403, "root-token-required", id="programme-key"),
    ],
)
def test_programme_routes_need_the_root_token(
    api: Api, authorization: str | None, status: int, code: str
) -> None:
    t = api.tenant()
    headers = {"Idempotency-Key": "root-1"}
    if authorization is not None:
        headers["Authorization"] = authorization.replace("{admin}", f"Bearer {t.admin}")
    with api.writes_nothing():
        assert_problem(api.client.get("/v1/programs", headers=headers), status, code)
        for body in ({"code": "sneaky", "name": "x"}, {"code": "Not valid"}):
            # the token is checked first: an invalid body tells a stranger nothing
            response = api.client.post("/v1/programs", json=body, headers=headers)
            assert_problem(response, status, code)


def test_without_a_root_token_the_programme_routes_are_off(api: Api) -> None:
    app = create_app(api.db, api.clock, settings=Settings(root_token=None))
    with TestClient(app) as client, api.writes_nothing():
        for headers in ({}, ROOT, {"Authorization": "Bearer "}):
            response = client.get("/v1/programs", headers={**headers, "Accept-Language": "en"})
            problem = assert_problem(response, 403, "root-api-disabled")
            assert "jifen programs create" in problem["detail"]
            for body in ({"code": "x1", "name": "x"}, {"code": "x1"}):
                response = client.post(
                    "/v1/programs", json=body, headers={**headers, "Idempotency-Key": "k"}
                )
                assert_problem(response, 403, "root-api-disabled")
    # an empty root token does not switch them on either
    app = create_app(api.db, api.clock, settings=Settings(root_token=""))
    with TestClient(app) as client:
        response = client.get("/v1/programs", headers={"Authorization": "Bearer "})
        assert_problem(response, 403, "root-api-disabled")


@pytest.mark.parametrize(
    "policy",
    [
        {"kind": "never"},
        {"kind": "after_months", "months": 12},
        {"kind": "after_months", "months": 1, "round_to": "year"},
        {"kind": "fixed_date", "month": 2, "day": 29},
        {"kind": "inactivity", "months": 18},
        {"kind": "anniversary", "years": 2},
    ],
)
def test_every_expiry_policy_can_be_configured(api: Api, policy: dict[str, Any]) -> None:
    code = f"p-{abs(hash(repr(policy))) % 10**9}"
    response = _create(api, {"code": code, "name": "x", "expiry_policy": policy, "language": "en"})
    assert response.status_code == 201, response.text
    program = response.json()["program"]
    assert program["expiry_policy"]["kind"] == policy["kind"]
    assert {k: program["expiry_policy"][k] for k in policy} == policy
    assert program["expiry_description"]  # described in the programme's language
    assert program["expiry_description"].isascii()


INVALID_SETTINGS: list[tuple[dict[str, Any], str | None]] = [
    ({"expiry_policy": {"kind": "after_months", "months": 0}}, "months"),
    ({"expiry_policy": {"kind": "after_months", "months": "12"}}, "months"),
    ({"expiry_policy": {"kind": "after_months", "months": 6, "round_to": "week"}}, "round_to"),
    ({"expiry_policy": {"kind": "fixed_date", "month": 4, "day": 31}}, None),
    ({"expiry_policy": {"kind": "fixed_date", "month": 13, "day": 1}}, "month"),
    ({"expiry_policy": {"kind": "someday"}}, None),
    ({"expiry_policy": {"kind": "never", "months": 3}}, "months"),
    ({"timezone": "Mars/Olympus"}, "timezone"),
    ({"timezone": "+08:00"}, "timezone"),
    ({"currency": "yuan"}, "currency"),
    ({"pending_days": -1}, "pending_days"),
    ({"hold_minutes": 0}, "hold_minutes"),
    ({"point_value_amount": "0"}, "point_value_amount"),
    ({"language": "fr"}, "language"),
    ({"code": "Not A Code"}, "code"),
    ({"code": "-dash"}, "code"),
    ({"name": ""}, "name"),
    ({"owner": "me"}, "owner"),
]


def test_programme_settings_are_validated(api: Api) -> None:
    with api.writes_nothing():
        for body, field in INVALID_SETTINGS:
            response = _create(api, {"code": "shop-x", "name": "x", **body})
            problem = assert_problem(response, 422, "invalid-input")
            if field is not None:
                fields = [err["field"].split(".")[-1] for err in problem["errors"]]
                assert field in fields, (body, problem)


def test_a_programme_code_is_unique_and_a_retry_creates_nothing(api: Api) -> None:
    body = {"code": "only-once", "name": "x"}
    assert _create(api, body).status_code == 201
    with api.writes_nothing():
        # the same request again (same Idempotency-Key): refused by the code, not doubled
        again = _create(api, body, {"Accept-Language": "en"})
        problem = assert_problem(again, 409, "conflict")
        assert "only-once" in problem["detail"]
        other_key = _create(api, body, {"Idempotency-Key": "another"})
        assert_problem(other_key, 409, "conflict")


# -- keys ------------------------------------------------------------------------------------


def test_create_a_key_shown_once_and_use_it(api: Api) -> None:
    t = api.tenant()
    member = t.member()
    response = t.post("/v1/keys", {"name": "  front desk  ", "scope": "read"})
    assert response.status_code == 201, response.text
    created = response.json()
    assert (created["name"], created["scope"]) == ("front desk", "read")
    assert created["revoked_at"] is None
    plaintext = created["key"]
    assert plaintext.startswith(f"jf_{created['prefix']}_")
    # it works, with its scope
    assert t.get(f"/v1/members/{member}", key=plaintext).status_code == 200
    assert_problem(
        t.post(f"/v1/members/{member}/earn", {"points": 1}, key=plaintext),
        403,
        "forbidden",
        scope="read",
    )
    # listed without any secret
    listed = t.get("/v1/keys").json()
    mine = next(k for k in listed if k["id"] == created["id"])
    assert mine == {k: v for k, v in created.items() if k != "key"}
    assert plaintext not in t.get("/v1/keys").text
    assert all(set(k) == set(mine) for k in listed)


def test_key_created_by_names_the_creating_key(api: Api) -> None:
    t = api.tenant()
    admin_id = t.get("/v1/keys").json()[0]["id"]
    created = t.post("/v1/keys", {"name": "app", "scope": "app"}).json()
    assert created["created_by"] == f"key:{admin_id}"


def test_key_validation(api: Api) -> None:
    t = api.tenant()
    with api.writes_nothing():
        for body, field in [
            ({"name": "x", "scope": "root"}, "scope"),
            ({"name": "", "scope": "read"}, "name"),
            ({"name": "   ", "scope": "read"}, "name"),
            ({"name": "x" * 101, "scope": "read"}, "name"),
            ({"scope": "read"}, "name"),
        ]:
            assert_problem(t.post("/v1/keys", body), 422, "invalid-input", field=field)


def test_revoke_a_key(api: Api) -> None:
    t = api.tenant()
    created = t.post("/v1/keys", {"name": "till", "scope": "pos"}).json()
    api.clock.advance(minutes=5)
    revoked = t.send("DELETE", f"/v1/keys/{created['id']}")
    assert revoked.status_code == 200
    assert revoked.json()["revoked_at"] == "2026-01-15T02:05:00Z"
    assert "key" not in revoked.json()
    assert_problem(t.get("/v1/program", key=created["key"]), 401, "unauthorized")
    # still listed, as revoked; revoking again changes nothing
    listed = {k["id"]: k for k in t.get("/v1/keys").json()}
    assert listed[created["id"]]["revoked_at"] == "2026-01-15T02:05:00Z"
    api.clock.advance(minutes=5)
    again = t.send("DELETE", f"/v1/keys/{created['id']}")
    assert again.json()["revoked_at"] == "2026-01-15T02:05:00Z"


def test_an_admin_key_can_revoke_itself(api: Api) -> None:
    t = api.tenant()
    own = t.get("/v1/keys").json()[0]["id"]
    assert t.send("DELETE", f"/v1/keys/{own}").status_code == 200
    assert_problem(t.get("/v1/keys"), 401, "unauthorized")
