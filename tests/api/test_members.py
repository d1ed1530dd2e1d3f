"""Members over HTTP: enrol with each identifier, look them up, update the profile,
change the status."""

from __future__ import annotations

import pytest

from api.harness import Api, assert_problem
from jifen.access.service import Scope

IDENTIFIERS = [
    ("phone", "139 0000-1234", "13900001234"),
    ("email", "Li.Lei@Example.COM", "li.lei@example.com"),
    ("card_number", " VIP-0042 ", "VIP-0042"),
    ("external_id", "crm:42", "crm:42"),
]


@pytest.mark.parametrize(("field", "given", "stored"), IDENTIFIERS)
def test_enrol_and_find_by_each_identifier(api: Api, field: str, given: str, stored: str) -> None:
    t = api.tenant()
    response = t.post("/v1/members", {field: given, "name": "李雷"}, scope=Scope.POS)
    assert response.status_code == 201, response.text
    member = response.json()
    assert member[field] == stored
    assert member["status"] == "active"
    assert member["program_id"] == t.book.program_id
    assert member["enrolled_at"] == "2026-01-15T02:00:00Z"
    # found by the identifier as given or as stored (the scope matrix covers who may)
    for value in {given, stored}:
        found = t.get("/v1/members", scope=Scope.READ, **{field: value})
        assert found.status_code == 200, found.text
        assert found.json()["id"] == member["id"]
    assert t.get(f"/v1/members/{member['id']}").json() == member
    # a new member starts with an empty account
    balance = t.get(f"/v1/members/{member['id']}/balance").json()
    assert (balance["available"], balance["pending"], balance["held"]) == (0, 0, 0)


@pytest.mark.parametrize(("field", "given", "stored"), IDENTIFIERS)
def test_duplicate_identifier_is_refused(api: Api, field: str, given: str, stored: str) -> None:
    t = api.tenant()
    first = t.post("/v1/members", {field: stored}).json()
    other = t.member(external_id="other") if field != "external_id" else t.member()
    with api.writes_nothing():
        response = t.post("/v1/members", {field: given, "name": "someone else"}, lang="en")
        problem = assert_problem(
            response, 409, "duplicate-identifier", field=field, member_id=first["id"]
        )
        assert stored in problem["detail"]
        # nor can another member take it by a profile update
        response = t.send("PATCH", f"/v1/members/{other}", {field: given})
        assert_problem(response, 409, "duplicate-identifier", member_id=first["id"])
    assert t.get(f"/v1/members/{other}").json()[field] != stored


def test_lookup_needs_exactly_one_identifier(api: Api) -> None:
    t = api.tenant()
    t.member(phone="13900000009", email="a@example.com")
    for response in (
        t.get("/v1/members"),
        t.get("/v1/members", phone="13900000009", email="a@example.com"),
    ):
        problem = assert_problem(response, 422, "invalid-input")
        assert problem["field"] == "query"
    assert_problem(t.get("/v1/members", phone="13900000008"), 404, "not-found")
    assert_problem(t.get("/v1/members", phone="x"), 422, "invalid-input", field="phone")
    assert_problem(t.get("/v1/members", email="nope"), 422, "invalid-input", field="email")


def test_enrol_with_a_full_profile(api: Api) -> None:
    t = api.tenant()
    body = {
        "phone": "+86 139 0000 7777",
        "email": "han@example.com",
        "card_number": "C-7",
        "external_id": "ext-7",
        "name": "韩梅梅",
        "birthday": "1995-02-28",
        "gender": "female",
        "city": "上海",
        "language": "en",
        "attributes": {"store": 12, "tags": ["vip"]},
        "enrolment_channel": "wechat",
        "enrolled_at": "2025-06-01T08:00:00+08:00",
    }
    response = t.post("/v1/members", body, scope=Scope.APP)
    assert response.status_code == 201, response.text
    member = response.json()
    assert member["phone"] == "+8613900007777"
    assert member["birthday"] == "1995-02-28"
    assert member["attributes"] == {"store": 12, "tags": ["vip"]}
    assert member["enrolled_at"] == "2025-06-01T00:00:00Z"
    assert member["enrolment_channel"] == "wechat"
    assert t.get(f"/v1/members/{member['id']}").json() == member


def test_profile_update_changes_only_what_is_sent(api: Api) -> None:
    t = api.tenant()
    member = t.post("/v1/members", {"phone": "13900000100", "name": "王五", "city": "北京"}).json()
    path = f"/v1/members/{member['id']}"
    api.clock.advance(hours=2)
    response = t.send(
        "PATCH",
        path,
        {"birthday": "1990-05-17", "email": "Wang@Example.com", "attributes": {"size": "M"}},
        scope=Scope.APP,
    )
    assert response.status_code == 200, response.text
    updated = response.json()
    assert updated["birthday"] == "1990-05-17"
    assert updated["email"] == "wang@example.com"
    assert updated["attributes"] == {"size": "M"}
    assert (updated["name"], updated["city"], updated["phone"]) == ("王五", "北京", "13900000100")
    assert updated["updated_at"] == "2026-01-15T04:00:00Z"
    assert updated["enrolled_at"] == member["enrolled_at"]
    assert t.get(path).json() == updated
    assert t.get("/v1/members", email="wang@example.com").json()["id"] == member["id"]
    # clearing a field, and dropping one identifier while another remains
    cleared = t.send("PATCH", path, {"city": None, "phone": None}).json()
    assert cleared["city"] is None
    assert cleared["phone"] is None
    assert_problem(t.get("/v1/members", phone="13900000100"), 404, "not-found")
    # the freed phone can be taken by someone else
    assert t.post("/v1/members", {"phone": "13900000100"}).status_code == 201


def test_a_member_keeps_at_least_one_identifier(api: Api) -> None:
    t = api.tenant()
    member = t.member(phone="13900000200")
    with api.writes_nothing():
        response = t.send("PATCH", f"/v1/members/{member}", {"phone": None, "email": None})
        assert_problem(response, 422, "invalid-input", field="identifiers")


def test_status_changes(api: Api) -> None:
    t = api.tenant()
    member = t.member()
    t.earn(member, 100)
    path = f"/v1/members/{member}/status"
    frozen = t.post(path, {"status": "frozen", "reason": "可疑交易"})
    assert frozen.status_code == 200
    assert (frozen.json()["status"], frozen.json()["status_reason"]) == ("frozen", "可疑交易")
    assert t.get(f"/v1/members/{member}").json()["status"] == "frozen"
    # reads still work and the points are still there
    assert t.get(f"/v1/members/{member}/balance").json()["available"] == 100
    assert_problem(t.post(f"/v1/members/{member}/spend", {"points": 1}), 409, "member-frozen")
    active = t.post(path, {"status": "active", "reason": "cleared"})
    assert active.json()["status"] == "active"
    assert t.post(f"/v1/members/{member}/spend", {"points": 1}).status_code == 201
    closed = t.post(path, {"status": "closed", "reason": "asked to leave"})
    assert closed.json()["status"] == "closed"
    assert_problem(t.post(f"/v1/members/{member}/earn", {"points": 1}), 409, "member-closed")
    assert t.available(member) == 99
    # closing twice is harmless; reopening is refused
    assert t.post(path, {"status": "closed", "reason": "again"}).status_code == 200
    assert_problem(t.post(path, {"status": "active", "reason": "x"}), 409, "conflict")


def test_profile_of_a_frozen_member_can_still_be_updated(api: Api) -> None:
    t = api.tenant()
    member = t.member()
    t.set_status(member, "frozen")
    response = t.send("PATCH", f"/v1/members/{member}", {"name": "new"})
    assert response.status_code == 200
    assert response.json()["status"] == "frozen"


def test_enrolled_at_must_carry_a_zone(api: Api) -> None:
    t = api.tenant()
    with api.writes_nothing():
        response = t.post(
            "/v1/members", {"phone": "13900000300", "enrolled_at": "2025-06-01T08:00:00"}
        )
        assert_problem(response, 422, "invalid-input", field="enrolled_at")
