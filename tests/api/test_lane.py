"""The quick way in for purchases (jifen.api.lane): every request gets exactly the answer
the route gives without it (the app with group commit off has no lane) — statuses,
problem bodies and headers — whether the lane answers it (refusals of well-formed
purchases, rendered by the lane) or lets it through to FastAPI (no key, a malformed body,
a missing Idempotency-Key …); and the lane does answer the well-formed ones itself."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from api.harness import Api, Tenant, client_with
from earning.shop import PER_YUAN, item, order, set_rules
from jifen.access.service import Scope
from jifen.api import lane


@pytest.fixture
def plain(api: Api) -> Iterator[TestClient]:
    """The same database and clock, without the lane (group commit off)."""
    with client_with(api.db, api.clock, group_commit=False) as client:
        yield client


@pytest.fixture
def rendered(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The statuses of the refusals the lane rendered itself."""
    seen: list[int] = []
    real = lane.problem_response

    def spy(*args: Any, **kwargs: Any) -> Any:
        response = real(*args, **kwargs)
        seen.append(response.status_code)
        return response

    monkeypatch.setattr(lane, "problem_response", spy)
    return seen


def _send(client: TestClient, headers: dict[str, str], body: bytes, query: str = "") -> Any:
    response: httpx.Response = client.post(f"/v1/purchases{query}", content=body, headers=headers)
    kept = {k: v for k, v in response.headers.items() if k not in {"date", "server"}}
    return response.status_code, kept, response.content


def _cases(t: Tenant) -> list[tuple[str, int, dict[str, str], bytes]]:
    alice = t.member(phone="13800000001")
    frozen = t.member()
    t.set_status(frozen, "frozen")
    pos, app_key = t.key(Scope.POS), t.key(Scope.APP)
    good = order("l-1", item("6901", "60.25", 2), member=alice)

    def heads(key: str | None = pos, idem: str | None = "k", **more: str) -> dict[str, str]:
        headers = {"Content-Type": "application/json", **more}
        if key is not None:
            headers["Authorization"] = f"Bearer {key}"
        if idem is not None:
            headers["Idempotency-Key"] = idem
        return headers

    def body(**changes: Any) -> bytes:
        return json.dumps({**good, **changes}).encode()

    return [
        # answered by the lane: well-formed purchases the one-by-one path refuses
        ("no such member", 404, heads(), body(member={"phone": "13900000009"})),
        ("frozen member", 409, heads(), body(member={"id": frozen})),
        ("unknown channel", 422, heads(), body(channel="nowhere")),
        ("in English", 422, heads(**{"Accept-Language": "en"}), body(channel="nowhere")),
        ("a key without the scope", 403, heads(app_key), body()),
        ("an unknown key", 401, heads("jf_nobody_secret"), body()),
        # let through to FastAPI
        ("no key", 401, heads(None), body()),
        ("not a bearer key", 401, {**heads(None), "Authorization": f"Basic {pos}"}, body()),
        ("no Idempotency-Key", 400, heads(idem=None), body()),
        ("no content type", 422, {k: v for k, v in heads().items() if k != "Content-Type"}, body()),
        ("a text body", 422, heads(**{"Content-Type": "text/plain"}), body()),
        ("not JSON", 422, heads(), b"{not json"),
        ("a JSON list", 422, heads(), b"[]"),
        ("no lines", 422, heads(), body(lines=[])),
        ("a NUL in the body", 422, heads(), body(external_id="l-\u0000")),
        ("a NUL in the Idempotency-Key", 422, heads(idem="k\u0000"), body()),
    ]


def test_the_lane_answers_as_the_route(api: Api, plain: TestClient, rendered: list[int]) -> None:
    t = api.tenant()
    for name, status, headers, body in _cases(t):
        with api.writes_nothing():
            laned = _send(api.client, headers, body)
            routed = _send(plain, headers, body)
        assert laned[0] == status, (name, laned)
        assert laned == routed, name
    assert sorted(rendered) == [401, 403, 404, 409, 422, 422]


def test_a_purchase_through_the_lane_is_recorded_once(api: Api, plain: TestClient) -> None:
    t = api.tenant()
    set_rules(api.db, t.book, api.clock, PER_YUAN)
    alice = t.member()
    headers = {
        "Authorization": f"Bearer {t.key(Scope.POS)}",
        "Idempotency-Key": "once",
        "Content-Type": "application/json",
    }
    body = json.dumps(order("l-2", item("6901", "100"), member=alice)).encode()

    first = _send(api.client, headers, body)
    again = _send(plain, headers, body)  # the same key through the route: a replay
    reused = _send(api.client, headers, body.replace(b"100", b"101"))

    assert first[0] == 201
    balance = t.balance(alice)
    assert json.loads(first[2])["points"] == balance.available + balance.pending == 100  # once
    assert again[0] == 201
    assert again[1]["idempotent-replayed"] == "true"
    assert json.loads(again[2]) == json.loads(first[2])
    assert reused[0] == 422
    assert json.loads(reused[2])["type"] == "/problems/idempotency-key-reused"


def test_a_query_string_goes_the_route_s_way(api: Api, rendered: list[int]) -> None:
    t = api.tenant()
    headers = {
        "Authorization": f"Bearer {t.key(Scope.POS)}",
        "Idempotency-Key": "q",
        "Content-Type": "application/json",
    }
    body = json.dumps(order("l-3", item("6901", "10"), member={"phone": "13900000008"}))
    status, _, content = _send(api.client, headers, body.encode(), "?lang=en")
    assert status == 404
    assert json.loads(content)["type"] == "/problems/not-found"
    assert rendered == []  # the route rendered it
