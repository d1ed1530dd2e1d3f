"""Every bad request gets its problem detail, and nothing at all is written: every table
is compared row for row before and after (`Api.writes_nothing`)."""

from __future__ import annotations

from typing import Any

import pytest

from api.harness import Api, assert_problem
from jifen.ledger.posting import MAX_POINTS

BAD_POINTS = [
    pytest.param(0, id="zero"),
    pytest.param(-5, id="negative"),
    pytest.param(1.5, id="fraction"),
    pytest.param(10.0, id="float-whole"),
    pytest.param("10", id="string"),
    pytest.param(True, id="bool"),
    pytest.param(None, id="null"),
    pytest.param(MAX_POINTS + 1, id="too-large"),
    pytest.param(2**80, id="huge"),
]


@pytest.mark.parametrize("points", BAD_POINTS)
def test_bad_points_are_refused_everywhere_and_write_nothing(api: Api, points: Any) -> None:
    t = api.tenant(allow_transfers=True)
    member, other = t.member(), t.member()
    t.earn(member, 500)
    hold = t.hold(member, 100)["id"]
    before = t.balance(member)
    targets: list[tuple[str, dict[str, Any]]] = [  # each valid but for the points
        (f"/v1/members/{member}/earn", {}),
        (f"/v1/members/{member}/spend", {}),
        (f"/v1/members/{member}/adjustments", {"reason": "fix"}),
        ("/v1/holds", {"member_id": member}),
        (f"/v1/holds/{hold}/capture", {}),
        ("/v1/transfers", {"from_member_id": member, "to_member_id": other}),
    ]
    with api.writes_nothing():
        for path, body in targets:
            if path.endswith("/adjustments") and isinstance(points, int) and points < 0:
                continue  # a negative adjustment is a debit (tested below)
            if path.endswith("/capture") and points is None:
                continue  # an explicit null is the default: capture the whole hold
            response = t.post(path, {**body, "points": points})
            problem = assert_problem(response, 422, "invalid-input")
            assert problem["field"] == "points", (path, problem)
            assert problem["errors"][0]["field"] == "points"
    assert t.balance(member) == before


def test_adjustment_of_zero_or_beyond_the_limit_is_refused(api: Api) -> None:
    t = api.tenant()
    member = t.member()
    t.earn(member, 50)
    with api.writes_nothing():
        for points in (0, -(MAX_POINTS + 1), MAX_POINTS + 1, -1.5):
            response = t.post(
                f"/v1/members/{member}/adjustments", {"points": points, "reason": "x"}
            )
            assert_problem(response, 422, "invalid-input", field="points")
        for body in ({"points": 5}, {"points": 5, "reason": ""}):
            response = t.post(f"/v1/members/{member}/adjustments", body)
            assert_problem(response, 422, "invalid-input", field="reason")


def test_the_largest_allowed_points_value_is_accepted(api: Api) -> None:
    t = api.tenant()
    member = t.member()
    t.earn(member, MAX_POINTS)
    assert t.available(member) == MAX_POINTS


def test_unknown_fields_are_refused(api: Api) -> None:
    t = api.tenant(allow_transfers=True)
    m, o = t.member(), t.member()
    txn = t.earn(m, 10).json()["transaction"]["id"]
    hold = t.hold(m, 5)["id"]
    cases: list[tuple[str, str, dict[str, Any], str]] = [
        ("POST", f"/v1/members/{m}/earn", {"points": 1, "colour": "red"}, "colour"),
        ("POST", f"/v1/members/{m}/spend", {"points": 1, "member_id": 2}, "member_id"),
        ("POST", f"/v1/members/{m}/adjustments", {"points": 1, "reason": "x", "by": 1}, "by"),
        ("POST", "/v1/holds", {"member_id": m, "points": 1, "hold_minutes": 5}, "hold_minutes"),
        (
            "POST",
            "/v1/transfers",
            {"from_member_id": m, "to_member_id": o, "points": 1, "note": 1},
            "note",
        ),
        ("POST", "/v1/members", {"phone": "13900000000", "status": "frozen"}, "status"),
        ("PATCH", f"/v1/members/{m}", {"status": "closed"}, "status"),
        ("PATCH", f"/v1/members/{m}", {"program_id": 9}, "program_id"),
        (
            "POST",
            f"/v1/members/{m}/status",
            {"status": "frozen", "reason": "x", "until": 1},
            "until",
        ),
        ("POST", "/v1/keys", {"name": "k", "scope": "read", "program_id": 2}, "program_id"),
        ("POST", f"/v1/transactions/{txn}/reversal", {"reason": "x", "points": 3}, "points"),
        ("POST", f"/v1/holds/{hold}/capture", {"points": 3, "tip": 1}, "tip"),
    ]
    with api.writes_nothing():
        for method, path, body, unknown in cases:
            problem = assert_problem(t.send(method, path, body), 422, "invalid-input")
            assert [err["field"] for err in problem["errors"]] == [unknown], problem


def test_malformed_json_is_a_problem_and_writes_nothing(api: Api) -> None:
    t = api.tenant()
    member = t.member()
    headers = {
        "Authorization": f"Bearer {t.admin}",
        "Idempotency-Key": "malformed-1",
        "Content-Type": "application/json",
    }
    with api.writes_nothing():
        for raw in (b'{"points": 10', b"points=10", b'{"points": 10}}', b"\xff\xfe"):
            response = api.client.post(f"/v1/members/{member}/earn", content=raw, headers=headers)
            problem = assert_problem(response, 422, "invalid-input")
            assert problem["field"] == "body", problem
        # a JSON value of the wrong shape
        for body in ([1, 2], 10, "ten", None):
            response = t.post(f"/v1/members/{member}/earn", body, idem="malformed-2")
            assert_problem(response, 422, "invalid-input")
    # the key was not burnt by any of it
    ok = t.post(f"/v1/members/{member}/earn", {"points": 10}, idem="malformed-1")
    assert ok.status_code == 201
    assert t.available(member) == 10


MEMBER_ROUTES: list[tuple[str, str, Any]] = [
    ("GET", "", None),
    ("GET", "/balance", None),
    ("GET", "/history", None),
    ("GET", "/lots", None),
    ("POST", "/earn", {"points": 5}),
    ("POST", "/spend", {"points": 5}),
    ("POST", "/adjustments", {"points": 5, "reason": "x"}),
    ("POST", "/status", {"status": "frozen", "reason": "x"}),
    ("PATCH", "", {"name": "x"}),
]


def test_an_unknown_member_is_404_everywhere(api: Api) -> None:
    t = api.tenant()
    member = t.member()
    t.earn(member, 100)
    with api.writes_nothing():
        for member_id in (999999999999, 2**63 - 1):
            for method, suffix, body in MEMBER_ROUTES:
                path = f"/v1/members/{member_id}{suffix}"
                response = t.get(path) if method == "GET" else t.send(method, path, body)
                assert_problem(response, 404, "not-found")
            response = t.post("/v1/holds", {"member_id": member_id, "points": 5})
            assert_problem(response, 404, "not-found")
    assert t.available(member) == 100


def test_an_impossible_id_is_invalid_input_not_a_crash(api: Api) -> None:
    t = api.tenant(allow_transfers=True)
    member = t.member()
    t.earn(member, 100)
    with api.writes_nothing():
        for member_id in ("0", "-1", str(2**63), "99999999999999999999", "abc", "1.5"):
            for method, suffix, body in MEMBER_ROUTES:
                path = f"/v1/members/{member_id}{suffix}"
                response = t.get(path) if method == "GET" else t.send(method, path, body)
                assert_problem(response, 422, "invalid-input", field="member_id")
        for bad in (0, -1, 2**63, 10**30):  # in a body, too
            response = t.post("/v1/holds", {"member_id": bad, "points": 5})
            assert_problem(response, 422, "invalid-input", field="member_id")
            for ids in (
                {"from_member_id": bad, "to_member_id": member},
                {"from_member_id": member, "to_member_id": bad},
            ):
                response = t.post("/v1/transfers", {**ids, "points": 5})
                assert_problem(response, 422, "invalid-input")
        for bad_id in ("0", str(2**64), "x"):
            for method, path in [
                ("GET", f"/v1/holds/{bad_id}"),
                ("POST", f"/v1/holds/{bad_id}/void"),
                ("GET", f"/v1/transactions/{bad_id}"),
                ("DELETE", f"/v1/keys/{bad_id}"),
            ]:
                response = t.get(path) if method == "GET" else t.send(method, path, None)
                assert_problem(response, 422, "invalid-input")
    assert t.available(member) == 100


def test_unknown_hold_and_transaction(api: Api) -> None:
    t = api.tenant()
    member = t.member()
    t.earn(member, 100)
    with api.writes_nothing():
        assert_problem(t.get("/v1/holds/424242424242"), 404, "not-found")
        assert_problem(t.post("/v1/holds/424242424242/capture"), 404, "not-found")
        assert_problem(t.post("/v1/holds/424242424242/void"), 404, "not-found")
        assert_problem(t.get("/v1/transactions/424242424242"), 404, "not-found")
        assert_problem(
            t.post("/v1/transactions/424242424242/reversal", {"reason": "x"}), 404, "not-found"
        )
        assert_problem(t.send("DELETE", "/v1/keys/424242424242"), 404, "not-found")
        response = t.post(
            "/v1/transfers", {"from_member_id": member, "to_member_id": 424242424242, "points": 1}
        )
        assert_problem(response, 409, "transfers-disabled")


def test_transfers_refused_when_the_programme_disallows_them(api: Api) -> None:
    t = api.tenant(allow_transfers=False)
    a, b = t.member(), t.member()
    t.earn(a, 100)
    with api.writes_nothing():
        response = t.post(
            "/v1/transfers", {"from_member_id": a, "to_member_id": b, "points": 10}, lang="en"
        )
        problem = assert_problem(response, 409, "transfers-disabled")
        assert "transfer" in problem["detail"]
    assert t.available(a) == 100
    assert t.available(b) == 0


def test_transfer_to_self_unknown_or_too_much(api: Api) -> None:
    t = api.tenant(allow_transfers=True)
    a, b = t.member(), t.member()
    t.earn(a, 100)
    with api.writes_nothing():
        body = {"from_member_id": a, "to_member_id": a, "points": 10}
        assert_problem(t.post("/v1/transfers", body), 422, "invalid-input", field="to_member_id")
        body = {"from_member_id": a, "to_member_id": 999999999999, "points": 10}
        assert_problem(t.post("/v1/transfers", body), 404, "not-found")
        body = {"from_member_id": 999999999999, "to_member_id": a, "points": 10}
        assert_problem(t.post("/v1/transfers", body), 404, "not-found")
        body = {"from_member_id": a, "to_member_id": b, "points": 101}
        assert_problem(
            t.post("/v1/transfers", body), 409, "insufficient-points", needed=101, available=100
        )
        body = {"from_member_id": a, "to_member_id": 2**70, "points": 10}
        assert_problem(t.post("/v1/transfers", body), 422, "invalid-input")


def test_spending_more_than_available(api: Api) -> None:
    t = api.tenant()
    member = t.member()
    t.earn(member, 30)
    with api.writes_nothing():
        response = t.post(f"/v1/members/{member}/spend", {"points": 31}, lang="en")
        problem = assert_problem(response, 409, "insufficient-points", needed=31, available=30)
        assert "31" in problem["detail"]
        assert "30" in problem["detail"]
        response = t.post(f"/v1/members/{member}/adjustments", {"points": -31, "reason": "x"})
        assert_problem(response, 409, "insufficient-points")
        response = t.post("/v1/holds", {"member_id": member, "points": 31})
        assert_problem(response, 409, "insufficient-points")


@pytest.mark.parametrize("status", ["frozen", "closed"])
def test_frozen_or_closed_member_can_neither_earn_nor_spend(api: Api, status: str) -> None:
    t = api.tenant(allow_transfers=True)
    member, other = t.member(), t.member()
    t.earn(member, 100)
    t.earn(other, 100)
    hold = t.hold(member, 10)["id"]
    t.set_status(member, status, reason="fraud check")
    code = f"member-{status}"
    word = {"frozen": "frozen", "closed": "closed"}[status]
    writes: list[tuple[str, dict[str, Any]]] = [
        (f"/v1/members/{member}/earn", {"points": 5}),
        (f"/v1/members/{member}/spend", {"points": 5}),
        (f"/v1/members/{member}/adjustments", {"points": 5, "reason": "x"}),
        (f"/v1/members/{member}/adjustments", {"points": -5, "reason": "x"}),
        ("/v1/holds", {"member_id": member, "points": 5}),
        (f"/v1/holds/{hold}/capture", {}),
        ("/v1/transfers", {"from_member_id": member, "to_member_id": other, "points": 5}),
        ("/v1/transfers", {"from_member_id": other, "to_member_id": member, "points": 5}),
    ]
    with api.writes_nothing():
        for path, body in writes:
            problem = assert_problem(t.post(path, body, lang="en"), 409, code, member_id=member)
            assert word in problem["detail"], problem
            zh = assert_problem(t.post(path, body), 409, code)
            assert {"frozen": "冻结", "closed": "注销"}[status] in zh["detail"]
    balance = t.balance(member)
    assert (balance.available, balance.held) == (90, 10)
    assert t.available(other) == 100


def test_closed_member_cannot_be_reopened(api: Api) -> None:
    t = api.tenant()
    member = t.member()
    t.set_status(member, "closed")
    with api.writes_nothing():
        for status in ("active", "frozen"):
            response = t.post(f"/v1/members/{member}/status", {"status": status, "reason": "x"})
            assert_problem(response, 409, "conflict")
        response = t.post(f"/v1/members/{member}/status", {"status": "gone", "reason": "x"})
        assert_problem(response, 422, "invalid-input", field="status")
        response = t.post(f"/v1/members/{member}/status", {"status": "frozen"})
        assert_problem(response, 422, "invalid-input", field="reason")


def test_bad_query_parameters(api: Api) -> None:
    t = api.tenant()
    member = t.member()
    t.earn(member, 10)
    history = f"/v1/members/{member}/history"
    with api.writes_nothing():
        assert_problem(t.get(history, cursor="not-a-cursor"), 422, "invalid-input", field="cursor")
        assert_problem(t.get(history, cursor="!!!"), 422, "invalid-input", field="cursor")
        assert_problem(t.get(history, cursor="x" * 101), 422, "invalid-input", field="cursor")
        assert_problem(t.get(history, limit=0), 422, "invalid-input", field="limit")
        assert_problem(t.get(history, limit=501), 422, "invalid-input", field="limit")
        assert_problem(t.get(history, type="bogus"), 422, "invalid-input", field="type.0")
        assert_problem(t.get(history, since="yesterday"), 422, "invalid-input", field="since")
        # instants need a zone: a naive one is ambiguous
        assert_problem(
            t.get(history, since="2026-01-01T00:00:00"), 422, "invalid-input", field="since"
        )
        lots = f"/v1/members/{member}/lots"
        assert_problem(t.get(lots, status="gone"), 422, "invalid-input", field="status.0")
        assert_problem(t.get(lots, limit=0), 422, "invalid-input", field="limit")


def test_a_forged_cursor_is_a_problem_not_a_crash(api: Api) -> None:
    import base64

    t = api.tenant()
    member = t.member()
    t.earn(member, 10)
    history = f"/v1/members/{member}/history"
    for raw in (
        b"t99999999999999999999999999",
        b"t9223372036854775808",
        b"t-5",
        b"t0",
        b"tabc",
        b"x12",
        b"t",
        b"t1.5",
    ):
        cursor = base64.urlsafe_b64encode(raw).decode().rstrip("=")
        response = t.get(history, cursor=cursor)
        assert_problem(response, 422, "invalid-input", field="cursor")
    # the largest possible id is a cursor before everything
    cursor = base64.urlsafe_b64encode(b"t9223372036854775807").decode().rstrip("=")
    assert len(t.get(history, cursor=cursor).json()["items"]) == 1


def test_profile_validation(api: Api) -> None:
    t = api.tenant()
    member = t.member(phone="13900000001")
    path = f"/v1/members/{member}"
    with api.writes_nothing():
        for body, field in [
            ({"birthday": "1800-01-01"}, "birthday"),
            ({"birthday": "2026-01-17"}, "birthday"),  # the clock stands at 2026-01-15
            ({"birthday": "not a date"}, "birthday"),
            ({"email": "not-an-email"}, "email"),
            ({"phone": "12"}, "phone"),
            ({"card_number": "  "}, "card_number"),
            ({"language": "fr"}, "language"),
            ({"attributes": None}, "attributes"),
            ({"phone": None}, "identifiers"),
        ]:
            response = t.send("PATCH", path, body)
            assert_problem(response, 422, "invalid-input", field=field)
    assert t.get(path).json()["phone"] == "13900000001"


def test_enrolment_validation(api: Api) -> None:
    t = api.tenant()
    with api.writes_nothing():
        for body, field in [
            ({}, "body"),
            ({"name": "无标识"}, "body"),
            ({"phone": "abc"}, "phone"),
            ({"email": "@@"}, "email"),
            ({"phone": "13900000000", "enrolled_at": "2099-01-01T00:00:00Z"}, "enrolled_at"),
            ({"phone": "13900000000", "birthday": "2026-01-17"}, "birthday"),
        ]:
            problem = assert_problem(t.post("/v1/members", body), 422, "invalid-input")
            assert problem["field"] == field, problem


def test_hold_deadline_validation(api: Api) -> None:
    t = api.tenant()
    member = t.member()
    t.earn(member, 100)
    now = api.clock.now()
    cases: list[tuple[dict[str, Any], str]] = [
        ({"expires_in_minutes": 0}, "expires_in_minutes"),
        ({"expires_in_minutes": 60 * 24 * 31}, "expires_in_minutes"),
        ({"expires_at": "2026-01-15T12:00:00"}, "expires_at"),  # naive
        ({"expires_at": now.isoformat()}, "expires_at"),  # not in the future
        ({"expires_in_minutes": 5, "expires_at": "2099-01-01T00:00:00Z"}, "body"),
        ({"expires_at": "2026-02-14T02:00:01Z"}, "expires_at"),  # over 30 days
        ({"expires_at": "2100-01-01T00:00:00Z"}, "expires_at"),
    ]
    with api.writes_nothing():
        for body, field in cases:
            response = t.post("/v1/holds", {"member_id": member, "points": 10, **body})
            assert_problem(response, 422, "invalid-input", field=field)
    assert t.balance(member).held == 0
    # exactly 30 days is the longest a hold may last
    assert t.hold(member, 1, expires_at="2026-02-14T02:00:00Z")["expires_at"] == (
        "2026-02-14T02:00:00Z"
    )


def test_the_nul_character_is_refused_everywhere(api: Api) -> None:
    """PostgreSQL text cannot hold U+0000: refused up front, on both stores alike."""
    t = api.tenant()
    member = t.member()
    t.earn(member, 10)
    nul = "a\u0000b"
    with api.writes_nothing():
        for method, path, body, field in [
            ("POST", "/v1/members", {"phone": "13900000003", "name": nul}, "name"),
            ("POST", f"/v1/members/{member}/earn", {"points": 1, "reference": nul}, "reference"),
            ("POST", f"/v1/members/{member}/spend", {"points": 1, "reason": nul}, "reason"),
            ("PATCH", f"/v1/members/{member}", {"attributes": {"k": [nul]}}, "attributes.k.0"),
            ("PATCH", f"/v1/members/{member}", {"attributes": {nul: 1}}, f"attributes.{nul}"),
            ("POST", "/v1/keys", {"name": nul, "scope": "read"}, "name"),
        ]:
            response = t.send(method, path, body)
            assert_problem(response, 422, "invalid-input", field=field)
        response = t.post(f"/v1/members/{member}/earn", {"points": 1}, idem=nul)
        assert_problem(response, 422, "invalid-input", field="Idempotency-Key")
        assert_problem(
            t.get("/v1/members", external_id=nul), 422, "invalid-input", field="external_id"
        )
        assert_problem(
            t.get(f"/v1/members/{member}/history", cursor=nul), 422, "invalid-input", field="cursor"
        )
        response = api.client.post(
            "/v1/programs",
            json={"code": "nul-name", "name": nul},
            headers={"Authorization": "Bearer root-secret-token", "Idempotency-Key": "k"},
        )
        assert_problem(response, 422, "invalid-input", field="name")


def test_instants_beyond_the_calendar_in_utc_are_refused(api: Api) -> None:
    t = api.tenant()
    member = t.member()
    t.earn(member, 10)
    late, early = "9999-12-31T23:59:59-05:00", "0001-01-01T00:00:00+01:00"
    history = f"/v1/members/{member}/history"
    with api.writes_nothing():
        for instant in (late, early):
            assert_problem(t.get(history, since=instant), 422, "invalid-input", field="since")
            assert_problem(t.get(history, until=instant), 422, "invalid-input", field="until")
        response = t.post("/v1/holds", {"member_id": member, "points": 1, "expires_at": late})
        assert_problem(response, 422, "invalid-input", field="expires_at")
        response = t.post("/v1/members", {"phone": "13900000004", "enrolled_at": early})
        assert_problem(response, 422, "invalid-input", field="enrolled_at")
    # the extremes that stay in range are fine
    assert (
        len(
            t.get(history, since="0001-01-01T00:00:00Z", until="9999-12-31T00:00:00Z").json()[
                "items"
            ]
        )
        == 1
    )
