"""Idempotent writes: a retry with the same key and body gets the first answer and has no
second effect; the key with another body is refused; a refused request leaves the key
free; a write without a key is refused."""

from __future__ import annotations

import json
from typing import Any

import pytest

from api.harness import Api, Tenant, assert_problem
from jifen.access.service import Scope

REPLAYED = "Idempotent-Replayed"


def _writes(t: Tenant, member: int, other: int) -> list[tuple[str, str, Any, int]]:
    """(method, path, body, status) of a write of each kind, each valid once."""
    earned = t.earn(member, 10).json()["transaction"]["id"]
    hold = t.hold(member, 10)["id"]
    hold2 = t.hold(member, 10)["id"]
    key = t.post("/v1/keys", {"name": "spare", "scope": "read"}).json()["id"]
    return [
        ("POST", f"/v1/members/{member}/earn", {"points": 25}, 201),
        ("POST", f"/v1/members/{member}/spend", {"points": 5}, 201),
        ("POST", f"/v1/members/{member}/adjustments", {"points": 7, "reason": "x"}, 201),
        (
            "POST",
            "/v1/transfers",
            {"from_member_id": member, "to_member_id": other, "points": 3},
            201,
        ),
        ("POST", f"/v1/transactions/{earned}/reversal", {"reason": "x"}, 201),
        ("POST", "/v1/holds", {"member_id": member, "points": 4}, 201),
        ("POST", f"/v1/holds/{hold}/capture", {"points": 6}, 200),
        ("POST", f"/v1/holds/{hold2}/void", None, 200),
        ("POST", "/v1/members", {"phone": "13700009999"}, 201),
        ("PATCH", f"/v1/members/{other}", {"name": "新"}, 200),
        ("POST", f"/v1/members/{other}/status", {"status": "active", "reason": "ok"}, 200),
        ("DELETE", f"/v1/keys/{key}", None, 200),
        ("POST", "/v1/jobs/expire", None, 200),
    ]


def test_every_write_replays_its_first_answer_with_one_effect(api: Api) -> None:
    t = api.tenant(allow_transfers=True)
    member, other = t.member(), t.member()
    t.earn(member, 1000)
    for method, path, body, status in _writes(t, member, other):
        key = f"once:{method}:{path}"
        first = t.send(method, path, body, idem=key)
        assert first.status_code == status, (path, first.text)
        assert REPLAYED not in first.headers
        with api.writes_nothing():
            again = t.send(method, path, body, idem=key)
            assert again.status_code == status, (path, again.text)
            assert again.headers[REPLAYED] == "true"
            assert again.json() == first.json(), path


def test_a_replayed_earn_credits_once(api: Api) -> None:
    t = api.tenant()
    member = t.member()
    responses = [
        t.post(f"/v1/members/{member}/earn", {"points": 100}, idem="order-77") for _ in range(5)
    ]
    assert {r.status_code for r in responses} == {201}
    assert [r.headers.get(REPLAYED) for r in responses] == [None] + ["true"] * 4
    assert len({json.dumps(r.json(), sort_keys=True) for r in responses}) == 1
    assert t.available(member) == 100
    assert t.history_len(member) == 1
    # later changes don't alter what a replay says: it is the first response, as it was
    t.earn(member, 1)
    replay = t.post(f"/v1/members/{member}/earn", {"points": 100}, idem="order-77")
    assert replay.json()["balance"]["available"] == 100
    assert t.available(member) == 101


def test_the_same_body_in_another_key_order_or_spacing_is_the_same_request(api: Api) -> None:
    t = api.tenant()
    member = t.member()
    headers = {
        "Authorization": f"Bearer {t.admin}",
        "Idempotency-Key": "spacing",
        "Content-Type": "application/json",
    }
    path = f"/v1/members/{member}/earn"
    first = api.client.post(path, content=b'{"points": 10, "reason": "a"}', headers=headers)
    again = api.client.post(path, content=b'{ "reason":"a","points":10 }', headers=headers)
    assert (first.status_code, again.status_code) == (201, 201)
    assert again.headers[REPLAYED] == "true"
    assert t.available(member) == 10


@pytest.mark.parametrize(
    ("second_path", "second_body"),
    [
        pytest.param("/earn", {"points": 11}, id="other-points"),
        pytest.param("/earn", {"points": 10, "reason": "x"}, id="extra-field"),
        pytest.param("/spend", {"points": 10}, id="other-route"),
        pytest.param("/earn@other", {"points": 10}, id="other-member"),
    ],
)
def test_the_same_key_with_another_request_is_refused(
    api: Api, second_path: str, second_body: dict[str, Any]
) -> None:
    t = api.tenant()
    member, other = t.member(), t.member()
    first = t.post(f"/v1/members/{member}/earn", {"points": 10}, idem="key-1")
    assert first.status_code == 201
    target = other if second_path.endswith("@other") else member
    path = f"/v1/members/{target}{second_path.split('@', maxsplit=1)[0]}"
    with api.writes_nothing():
        response = t.post(path, second_body, idem="key-1", lang="en")
        problem = assert_problem(response, 422, "idempotency-key-reused", key="key-1")
        assert "key-1" in problem["detail"]
    assert (t.available(member), t.available(other)) == (10, 0)


def test_the_same_key_from_another_api_key_is_another_request(api: Api) -> None:
    t = api.tenant()
    member = t.member()
    assert t.post(f"/v1/members/{member}/earn", {"points": 10}, idem="k").status_code == 201
    response = t.post(f"/v1/members/{member}/earn", {"points": 10}, idem="k", scope=Scope.POS)
    assert_problem(response, 422, "idempotency-key-reused")
    assert t.available(member) == 10


def test_a_refused_request_does_not_burn_its_key(api: Api) -> None:
    t = api.tenant()
    member = t.member()
    t.earn(member, 30)
    path = f"/v1/members/{member}/spend"
    refused = t.post(path, {"points": 50}, idem="checkout-5")
    assert_problem(refused, 409, "insufficient-points", needed=50, available=30)
    # the same request again is refused again, not replayed
    again = t.post(path, {"points": 50}, idem="checkout-5")
    assert_problem(again, 409, "insufficient-points")
    assert REPLAYED not in again.headers
    t.earn(member, 20)
    done = t.post(path, {"points": 50}, idem="checkout-5")
    assert done.status_code == 201, done.text
    assert REPLAYED not in done.headers
    assert t.available(member) == 0
    replay = t.post(path, {"points": 50}, idem="checkout-5")
    assert replay.headers[REPLAYED] == "true"
    assert t.available(member) == 0


def test_a_refused_request_leaves_the_key_free_for_another_body(api: Api) -> None:
    t = api.tenant()
    member = t.member()
    t.earn(member, 30)
    assert_problem(
        t.post(f"/v1/members/{member}/spend", {"points": 50}, idem="k2"),
        409,
        "insufficient-points",
    )
    assert t.post(f"/v1/members/{member}/spend", {"points": 20}, idem="k2").status_code == 201
    assert t.available(member) == 10


@pytest.mark.parametrize("method", ["POST", "PATCH", "DELETE"])
def test_a_write_without_a_key_is_refused(api: Api, method: str) -> None:
    t = api.tenant()
    member = t.member()
    t.earn(member, 10)
    path = {
        "POST": f"/v1/members/{member}/spend",
        "PATCH": f"/v1/members/{member}",
        "DELETE": "/v1/keys/1",
    }[method]
    body = {"POST": {"points": 1}, "PATCH": {"name": "x"}, "DELETE": None}[method]
    with api.writes_nothing():
        for idem in (None, ""):
            response = t.send(method, path, body, idem=idem, lang="en")
            problem = assert_problem(response, 400, "idempotency-key-missing")
            assert "Idempotency-Key" in problem["detail"]
    assert t.available(member) == 10


def test_jobs_and_programmes_need_a_key_too(api: Api) -> None:
    t = api.tenant()
    with api.writes_nothing():
        assert_problem(t.post("/v1/jobs/expire", idem=None), 400, "idempotency-key-missing")
        response = api.client.post(
            "/v1/programs",
            json={"code": "no-key", "name": "x"},
            headers={"Authorization": "Bearer root-secret-token"},
        )
        assert_problem(response, 400, "idempotency-key-missing")


def test_an_overlong_key_is_refused(api: Api) -> None:
    t = api.tenant()
    member = t.member()
    with api.writes_nothing():
        response = t.post(f"/v1/members/{member}/earn", {"points": 1}, idem="k" * 201)
        assert_problem(response, 422, "invalid-input", field="Idempotency-Key")
    assert t.post(f"/v1/members/{member}/earn", {"points": 1}, idem="k" * 200).status_code == 201


def test_a_new_keys_secret_is_not_replayed(api: Api) -> None:
    t = api.tenant()
    first = t.post("/v1/keys", {"name": "till 1", "scope": "pos"}, idem="new-key")
    assert first.status_code == 201
    secret = first.json()["key"]
    assert secret.startswith("jf_")
    replay = t.post("/v1/keys", {"name": "till 1", "scope": "pos"}, idem="new-key")
    assert replay.status_code == 201
    assert replay.headers[REPLAYED] == "true"
    assert replay.json()["key"] is None
    assert {k: v for k, v in replay.json().items() if k != "key"} == {
        k: v for k, v in first.json().items() if k != "key"
    }
    assert secret not in json.dumps(api.snapshot(), default=str)
    assert len([k for k in t.get("/v1/keys").json() if k["name"] == "till 1"]) == 1


def test_job_replays_report_the_first_run(api: Api) -> None:
    t = api.tenant(expiry_policy={"kind": "after_months", "months": 1})
    member = t.member()
    t.earn(member, 10)
    api.clock.advance(days=40)
    first = t.post("/v1/jobs/expire", idem="nightly-1")
    assert first.json()["points"] == 10
    again = t.post("/v1/jobs/expire", idem="nightly-1")
    assert again.headers[REPLAYED] == "true"
    assert again.json() == first.json()
    assert_problem(t.post("/v1/jobs/release", idem="nightly-1"), 422, "idempotency-key-reused")


def test_concurrent_retries_with_one_key_have_one_effect(api: Api) -> None:
    from concurrent.futures import ThreadPoolExecutor

    t = api.tenant()
    member = t.member()
    t.earn(member, 100)
    path = f"/v1/members/{member}/spend"

    def spend(_: int) -> Any:
        return t.post(path, {"points": 30}, idem="double-click")

    with ThreadPoolExecutor(max_workers=6) as pool:
        responses = list(pool.map(spend, range(6)))
    assert [r.status_code for r in responses] == [201] * 6, [r.text for r in responses]
    assert sum(REPLAYED not in r.headers for r in responses) == 1
    assert len({r.json()["transaction"]["id"] for r in responses}) == 1
    assert t.available(member) == 70
