"""The quick way in for balance reads (jifen.api.lane.BalanceLane): every request gets
exactly the answer the route gives without the lane (the app with `quick_balance` off) —
status, headers and body, byte for byte — whether the lane answers it from its one
statement or leaves it to the route (a key it does not admit, a member it does not find,
something fallen due, anything but a plain GET); and the lane does answer the plain ones."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from api.harness import Api, client_with
from earning.shop import PER_YUAN, item, order, set_rules
from jifen.access.service import Scope
from jifen.api import balances

MONTHLY = {"kind": "after_months", "months": 1}


@pytest.fixture
def plain(api: Api) -> Iterator[TestClient]:
    """The same database and clock, without the balance lane."""
    with client_with(api.db, api.clock, quick_balance=False) as client:
        yield client


@pytest.fixture
def answered(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The member ids of the balances the lane answered itself."""
    seen: list[int] = []
    real = balances.quick_balances

    def spy(*args: Any) -> Any:
        found = real(*args)
        seen.extend(balance.member_id for balance in found if balance is not None)
        return found

    monkeypatch.setattr(balances, "quick_balances", spy)
    return seen


def _get(client: TestClient, path: str, headers: dict[str, str]) -> Any:
    response: httpx.Response = client.get(path, headers=headers)
    kept = {k: v for k, v in response.headers.items() if k not in {"date", "server"}}
    return response.status_code, kept, response.content


def _bearer(key: str, **more: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}", **more}


def test_the_lane_answers_plain_reads_as_the_route_does(
    api: Api, plain: TestClient, answered: list[int]
) -> None:
    t = api.tenant(expiry_policy=MONTHLY, pending_days=7)
    rich, spent, empty = t.member(), t.member(), t.member()
    t.earn(rich, 100)
    t.earn(spent, 10)
    api.clock.advance(days=8)
    t.spend(spent, 10)
    t.earn(rich, 40)
    api.clock.advance(days=8)
    t.earn(rich, 7)
    api.clock.advance(days=1)
    set_rules(api.db, t.book, api.clock, PER_YUAN)
    bought = t.post("/v1/purchases", order("o-1", item("6901", "88.80"), member=rich))
    assert bought.status_code == 201, bought.text
    t.hold(rich, 15)
    for member in (rich, spent, empty):
        for scope in Scope:
            headers = _bearer(t.key(scope))
            path = f"/v1/members/{member}/balance"
            assert _get(api.client, path, headers) == _get(plain, path, headers)
    assert answered == [m for m in (rich, spent, empty) for _ in Scope]
    body = api.client.get(f"/v1/members/{rich}/balance", headers=_bearer(t.admin)).json()
    assert (body["available"], body["pending"], body["held"]) == (213, 7, 15)
    assert body["growth_value"] == 88
    assert [day["points"] for day in body["expiring_soon"]] == [
        173,
        40,
    ]  # all 213 available, by day


def test_what_the_lane_leaves_to_the_route_is_answered_as_without_it(
    api: Api, plain: TestClient, answered: list[int]
) -> None:
    t = api.tenant()
    other = api.tenant()
    member = t.member()
    t.earn(member, 50)
    stranger = other.member()
    revoked = t.key(Scope.POS)
    key_id = next(k["id"] for k in t.get("/v1/keys").json() if k["scope"] == "pos")
    assert t.send("DELETE", f"/v1/keys/{key_id}").status_code == 200
    prefix = t.admin.rsplit("_", 1)[0]
    good = _bearer(t.admin)
    cases: list[tuple[str, int, str, dict[str, str]]] = [
        ("unknown member", 404, f"/v1/members/{member + 1000}/balance", good),
        ("another programme's member", 404, f"/v1/members/{stranger}/balance", good),
        ("in English", 404, f"/v1/members/{stranger}/balance", {**good, "Accept-Language": "en"}),
        ("unknown key", 401, f"/v1/members/{member}/balance", _bearer("jf_nobody_secret")),
        ("wrong secret", 401, f"/v1/members/{member}/balance", _bearer(f"{prefix}_wrong")),
        ("revoked key", 401, f"/v1/members/{member}/balance", _bearer(revoked)),
        ("no key", 401, f"/v1/members/{member}/balance", {}),
        ("not a bearer", 401, f"/v1/members/{member}/balance", {"Authorization": "Basic eA=="}),
        ("not one of ours", 401, f"/v1/members/{member}/balance", _bearer("abc")),
        ("zero", 422, "/v1/members/0/balance", good),
        ("not a number", 422, "/v1/members/abc/balance", good),
        ("beyond 64 bits", 422, f"/v1/members/{2**63}/balance", good),
        ("leading zero", 200, f"/v1/members/0{member}/balance", good),
        ("a query string", 200, f"/v1/members/{member}/balance?x=1", good),
    ]
    for name, status, path, headers in cases:
        with_lane = _get(api.client, path, headers)
        assert with_lane[0] == status, (name, with_lane)
        assert with_lane == _get(plain, path, headers), name
    assert answered == []
    twice = [("authorization", f"Bearer {t.admin}"), ("authorization", f"Bearer {t.admin}")]
    response = api.client.get(f"/v1/members/{member}/balance", headers=twice)
    assert response.status_code == 200
    assert answered == []


def test_a_member_with_something_due_is_brought_up_to_date_by_the_route(
    api: Api, plain: TestClient, answered: list[int]
) -> None:
    t = api.tenant(expiry_policy=MONTHLY, pending_days=2)
    member = t.member()
    t.earn(member, 30)
    api.clock.advance(days=3)  # the lot is released: due, not yet applied
    path = f"/v1/members/{member}/balance"
    response = api.client.get(path, headers=_bearer(t.admin))
    assert response.status_code == 200
    assert (response.json()["available"], response.json()["pending"]) == (30, 0)
    assert answered == []  # left to the route, which applied the release
    assert _get(api.client, path, _bearer(t.admin)) == _get(plain, path, _bearer(t.admin))
    assert answered == [member]  # now nothing is due: the lane answers
    api.clock.advance(days=40)  # the lot expired
    assert api.client.get(path, headers=_bearer(t.admin)).json()["available"] == 0
    assert answered == [member]


def test_a_group_of_reads_gets_each_read_its_own_answer(api: Api, plain: TestClient) -> None:
    """Reads of several programmes, keys and members in one group (one statement on
    PostgreSQL): each gets the route's answer, or None where the route must answer."""
    t, other = api.tenant(expiry_policy=MONTHLY), api.tenant()
    first, second, theirs = t.member(), t.member(), other.member()
    t.earn(first, 70)
    api.clock.advance(days=2)
    t.earn(first, 5)
    t.earn(second, 9)
    other.earn(theirs, 11)
    revoked = t.key(Scope.POS)
    key_id = next(k["id"] for k in t.get("/v1/keys").json() if k["scope"] == "pos")
    assert t.send("DELETE", f"/v1/keys/{key_id}").status_code == 200
    reads = [
        (t.admin, first),
        (other.admin, theirs),
        (t.admin, theirs),  # another programme's member
        ("not-ours", first),
        (revoked, second),
        (t.key(Scope.APP), second),
        (t.admin, first),  # the same read twice
        (f"{t.admin}x", second),  # a wrong secret
        (other.admin, first + 10_000),
    ]
    now = api.clock.now()
    answers = balances.quick_balances(api.db, reads, now)
    expected = []
    for token, member in reads:
        response = plain.get(f"/v1/members/{member}/balance", headers=_bearer(token))
        expected.append(response.json() if response.status_code == 200 else None)
    assert [a.model_dump(mode="json") if a else None for a in answers] == expected
    answered = [a is not None for a in answers]
    assert answered == [True, True, False, False, False, True, True, False, False]


def test_reads_arriving_together_are_answered_in_one_group(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    t = api.tenant()
    members = [t.member() for _ in range(5)]
    for points, member in enumerate(members, start=1):
        t.earn(member, points)
    groups: list[int] = []
    real = balances.quick_balances

    def counted(db: Any, reads: Any, now: Any) -> Any:
        groups.append(len(reads))
        return real(db, reads, now)

    monkeypatch.setattr(balances, "quick_balances", counted)
    reads = balances.Reads(api.db, api.clock)

    async def all_at_once() -> list[Any]:
        return await asyncio.gather(*(reads.balance(t.admin, m) for m in members * 3))

    answers = asyncio.run(all_at_once())
    assert [a.available for a in answers] == [1, 2, 3, 4, 5] * 3
    assert groups == [15]  # queued while the loop was busy: one group, one statement


def test_a_group_whose_statement_fails_is_answered_by_the_route(
    api: Api, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    t = api.tenant()
    member = t.member()
    t.earn(member, 12)

    def failing(*_: Any) -> Any:
        raise ConnectionError("the store went away")

    monkeypatch.setattr(balances, "quick_balances", failing)
    response = api.client.get(f"/v1/members/{member}/balance", headers=_bearer(t.admin))
    assert response.status_code == 200
    assert response.json()["available"] == 12
    assert "a group of 1 balance reads failed" in caplog.text
