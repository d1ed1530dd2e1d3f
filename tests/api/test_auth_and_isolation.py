"""Keys: who may call at all (401), and tenants kept apart: a key of programme A can
neither read nor write anything of programme B, and learns nothing about it (404 exactly
as for an id that does not exist, never 403, never data)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import text

from api.harness import Api, Tenant, assert_problem
from jifen.access.service import Scope

# -- 401 -----------------------------------------------------------------------------------

PROBES: list[tuple[str, str, Any]] = [
    ("GET", "/v1/program", None),
    ("GET", "/v1/keys", None),
    ("POST", "/v1/keys", {"name": "k", "scope": "read"}),
    ("GET", "/v1/members/{m}", None),
    ("GET", "/v1/members/{m}/balance", None),
    ("POST", "/v1/members/{m}/earn", {"points": 10}),
    ("POST", "/v1/members/{m}/spend", {"points": 10}),
    ("POST", "/v1/jobs/expire", None),
]


AUTHORIZATIONS = [
    None,  # absent
    "",
    "Bearer",
    "Bearer ",
    "Basic dXNlcjpwYXNz",
    "Bearer not-a-key",
    "Bearer jf_",
    "Bearer jf_nosecret",
    "Bearer jf_000000000000_secret",  # unknown prefix
    "Bearer {wrong_secret}",  # a real key's prefix with another secret
    "Bearer {root}",  # the installation's root token is no programme key
    "{key}",  # a real key without the Bearer scheme
]


def test_without_a_valid_key_everything_is_401(api: Api) -> None:
    t = api.tenant()
    member = t.member()
    t.earn(member, 100)
    prefix, _secret = t.admin.removeprefix("jf_").split("_", 1)
    fill = {
        "{wrong_secret}": f"jf_{prefix}_{'x' * 43}",
        "{root}": "root-secret-token",
        "{key}": t.admin,
    }
    with api.writes_nothing():
        for template in AUTHORIZATIONS:
            headers: dict[str, str] = {"Idempotency-Key": "k-401"}
            authorization = template
            if authorization is not None:
                for name, value in fill.items():
                    authorization = authorization.replace(name, value)
                headers["Authorization"] = authorization
            for method, path, body in PROBES:
                response = api.client.request(
                    method, path.replace("{m}", str(member)), json=body, headers=headers
                )
                problem = assert_problem(response, 401, "unauthorized")
                assert "Bearer" in problem["detail"], template


def test_401_comes_before_validation_and_in_english_on_request(api: Api) -> None:
    t = api.tenant()
    member = t.member()
    with api.writes_nothing():
        # something that is not one of our keys at all is refused before the body is read
        headers = {"Authorization": "Bearer nope", "Accept-Language": "en"}
        response = api.client.post(
            f"/v1/members/{member}/earn", json={"points": "ten"}, headers=headers
        )
        problem = assert_problem(response, 401, "unauthorized")
        assert problem["detail"].startswith("Missing or invalid API key")
        # a plausible key is checked in the request's transaction, after validation
        headers = {"Authorization": "Bearer jf_000000000000_x", "Accept-Language": "en"}
        response = api.client.post(
            f"/v1/members/{member}/earn", json={"points": 1}, headers=headers
        )
        problem = assert_problem(response, 401, "unauthorized")
        assert problem["title"] == "Not authenticated"


def test_a_revoked_key_is_refused_at_once(api: Api) -> None:
    t = api.tenant()
    member = t.member()
    t.earn(member, 100)
    pos = t.key(Scope.POS)
    assert t.post(f"/v1/members/{member}/spend", {"points": 1}, key=pos).status_code == 201
    key_id = next(k["id"] for k in t.get("/v1/keys").json() if k["scope"] == "pos")
    revoked = t.send("DELETE", f"/v1/keys/{key_id}")
    assert revoked.status_code == 200
    assert revoked.json()["revoked_at"] is not None
    with api.writes_nothing():
        for response in (
            t.post(f"/v1/members/{member}/spend", {"points": 1}, key=pos),
            t.get(f"/v1/members/{member}/balance", key=pos),
            t.get("/v1/program", key=pos),
        ):
            assert_problem(response, 401, "unauthorized")
    assert t.available(member) == 99


def test_a_revoked_key_cannot_replay_its_own_writes(api: Api) -> None:
    t = api.tenant()
    member = t.member()
    t.earn(member, 100)
    pos = t.key(Scope.POS)
    first = t.post(f"/v1/members/{member}/spend", {"points": 7}, key=pos, idem="spend-once")
    assert first.status_code == 201
    key_id = next(k["id"] for k in t.get("/v1/keys").json() if k["scope"] == "pos")
    assert t.send("DELETE", f"/v1/keys/{key_id}").status_code == 200
    retry = t.post(f"/v1/members/{member}/spend", {"points": 7}, key=pos, idem="spend-once")
    assert_problem(retry, 401, "unauthorized")
    assert t.available(member) == 93


# -- isolation ------------------------------------------------------------------------------


def _world(api: Api) -> tuple[Tenant, Tenant, dict[str, int]]:
    """Two programmes; B has a member with points, a hold, transactions, a key."""
    a = api.tenant(allow_transfers=True)
    b = api.tenant(allow_transfers=True)
    a_member = a.member(phone="13911111111", email="same@example.com")
    a.earn(a_member, 100)
    b_member = b.member(
        phone="13922222222", email="b@example.com", card_number="B-1", external_id="crm-b"
    )
    earned = b.earn(b_member, 500).json()["transaction"]["id"]
    hold = b.hold(b_member, 50)["id"]
    b.key(Scope.READ)
    b_key = next(k["id"] for k in b.get("/v1/keys").json() if k["scope"] == "read")
    return (
        a,
        b,
        {
            "a_member": a_member,
            "member": b_member,
            "txn": earned,
            "hold": hold,
            "key": b_key,
        },
    )


def test_reads_of_another_programme_are_404(api: Api) -> None:
    a, b, ids = _world(api)
    m, txn, hold = ids["member"], ids["txn"], ids["hold"]
    a.all_keys()
    with api.writes_nothing():
        for scope in (Scope.ADMIN, Scope.READ):  # the widest, and the narrowest
            for path, params in [
                (f"/v1/members/{m}", {}),
                (f"/v1/members/{m}/balance", {}),
                (f"/v1/members/{m}/history", {}),
                (f"/v1/members/{m}/lots", {}),
                (f"/v1/transactions/{txn}", {}),
                (f"/v1/holds/{hold}", {}),
                ("/v1/members", {"phone": "13922222222"}),
                ("/v1/members", {"email": "b@example.com"}),
                ("/v1/members", {"card_number": "B-1"}),
                ("/v1/members", {"external_id": "crm-b"}),
            ]:
                response = a.get(path, scope=scope, lang="en", **params)
                problem = assert_problem(response, 404, "not-found")
                # a problem, and nothing of B's data: only what was asked for is echoed
                assert set(problem) == {
                    "type",
                    "title",
                    "status",
                    "detail",
                    "instance",
                    "what",
                    "key",
                }
                assert problem["detail"].startswith("No ")
    # and B, asking for the same things, sees them
    assert b.get(f"/v1/members/{m}/balance").json()["available"] == 450
    assert b.get(f"/v1/holds/{hold}").json()["amount"] == 50


def test_an_unknown_id_and_another_programmes_id_look_the_same(api: Api) -> None:
    a, _b, ids = _world(api)
    theirs = a.get(f"/v1/members/{ids['member']}/balance", lang="en").json()
    nobody = a.get("/v1/members/987654321987/balance", lang="en").json()
    assert theirs.keys() == nobody.keys()
    assert theirs["type"] == nobody["type"] == "/problems/not-found"
    assert theirs["title"] == nobody["title"]
    assert theirs["detail"].replace(str(ids["member"]), "N") == nobody["detail"].replace(
        "987654321987", "N"
    )


def test_writes_to_another_programme_are_404_and_change_nothing(api: Api) -> None:
    a, b, ids = _world(api)
    m, txn, hold = ids["member"], ids["txn"], ids["hold"]
    before = b.balance(m)
    writes: list[tuple[str, str, Any]] = [
        ("POST", f"/v1/members/{m}/earn", {"points": 10}),
        ("POST", f"/v1/members/{m}/spend", {"points": 10}),
        ("POST", f"/v1/members/{m}/adjustments", {"points": 10, "reason": "x"}),
        ("POST", f"/v1/members/{m}/adjustments", {"points": -10, "reason": "x"}),
        ("POST", f"/v1/members/{m}/status", {"status": "frozen", "reason": "x"}),
        ("PATCH", f"/v1/members/{m}", {"name": "hijacked"}),
        ("POST", "/v1/holds", {"member_id": m, "points": 10}),
        ("POST", f"/v1/holds/{hold}/capture", {"points": 10}),
        ("POST", f"/v1/holds/{hold}/void", None),
        ("POST", f"/v1/transactions/{txn}/reversal", {"reason": "x"}),
        (
            "POST",
            "/v1/transfers",
            {"from_member_id": m, "to_member_id": ids["a_member"], "points": 10},
        ),
        (
            "POST",
            "/v1/transfers",
            {"from_member_id": ids["a_member"], "to_member_id": m, "points": 10},
        ),
        ("DELETE", f"/v1/keys/{ids['key']}", None),
    ]
    with api.writes_nothing():
        for method, path, body in writes:
            response = a.send(method, path, body)
            assert_problem(response, 404, "not-found")
    assert b.balance(m) == before
    assert b.get(f"/v1/holds/{hold}").json()["status"] == "active"
    assert b.get(f"/v1/members/{m}").json()["name"] is None
    assert all(k["revoked_at"] is None for k in b.get("/v1/keys").json())
    assert a.available(ids["a_member"]) == 100


def test_isolation_holds_in_both_directions(api: Api) -> None:
    a = api.tenant()
    b = api.tenant()
    a_member, b_member = a.member(), b.member()
    a.earn(a_member, 10)
    b.earn(b_member, 20)
    with api.writes_nothing():
        for mine, theirs, member in ((a, b, b_member), (b, a, a_member)):
            assert_problem(mine.get(f"/v1/members/{member}/balance"), 404, "not-found")
            assert_problem(mine.post(f"/v1/members/{member}/earn", {"points": 1}), 404, "not-found")
            # each lists only its own keys and sees its own programme
            own = mine.get("/v1/program").json()
            assert own["id"] == mine.book.program_id != theirs.book.program_id
            listed = mine.get("/v1/keys").json()
            assert len(listed) == 1
    assert (a.available(a_member), b.available(b_member)) == (10, 20)


def test_identifiers_are_per_programme(api: Api) -> None:
    a = api.tenant()
    b = api.tenant()
    in_a = a.post("/v1/members", {"phone": "13933333333", "email": "x@example.com"})
    in_b = b.post("/v1/members", {"phone": "13933333333", "email": "x@example.com"})
    assert in_a.status_code == in_b.status_code == 201
    assert in_a.json()["id"] != in_b.json()["id"]
    assert a.get("/v1/members", phone="13933333333").json()["id"] == in_a.json()["id"]
    assert b.get("/v1/members", phone="13933333333").json()["id"] == in_b.json()["id"]


def test_idempotency_keys_are_per_programme(api: Api) -> None:
    a = api.tenant()
    b = api.tenant()
    a_member, b_member = a.member(), b.member()
    first = a.post(f"/v1/members/{a_member}/earn", {"points": 10}, idem="shared-key")
    # the same key in another programme is another key: it runs, it does not replay A's
    second = b.post(f"/v1/members/{b_member}/earn", {"points": 20}, idem="shared-key")
    assert first.status_code == second.status_code == 201
    assert "Idempotent-Replayed" not in second.headers
    assert second.json()["balance"]["member_id"] == b_member
    assert (a.available(a_member), b.available(b_member)) == (10, 20)


def test_jobs_run_for_the_callers_programme_only(api: Api) -> None:
    policy = {"kind": "after_months", "months": 1}
    a = api.tenant(expiry_policy=policy)
    b = api.tenant(expiry_policy=policy)
    a_member, b_member = a.member(), b.member()
    a.earn(a_member, 10)
    b.earn(b_member, 20)
    api.clock.advance(days=40)
    ran = a.post("/v1/jobs/expire")
    assert ran.status_code == 200, ran.text
    assert ran.json()["points"] == 10
    # B's lot was not touched by A's job: it is still available until B runs or reads
    query = text("SELECT status FROM lots WHERE member_id = :m")
    b_lots = api.db.read(lambda s: list(s.execute(query, {"m": b_member}).scalars()))
    assert b_lots == ["available"]
    assert b.post("/v1/jobs/expire").json()["points"] == 20


def test_a_programme_key_cannot_reach_installation_routes(api: Api) -> None:
    t = api.tenant()
    t.all_keys()
    with api.writes_nothing():
        for scope in Scope:
            assert_problem(t.get("/v1/programs", scope=scope), 403, "root-token-required")
            response = t.post("/v1/programs", {"code": "stolen", "name": "x"}, scope=scope)
            assert_problem(response, 403, "root-token-required")
