"""Group commit of purchases (jifen.api.grouped), on both stores: requests that arrive
together are answered exactly as one by one — the same statuses, bodies, balances, lots,
events and idempotency records — whether the group takes them (new purchases) or sends
them the one-by-one way (replays, refusals, orders already recorded, frozen members); and
a group whose transaction fails is answered one by one, with nothing of it written.

A group is made for certain by holding the leader (tests/api/grouping.py)."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import httpx
import pytest
from fastapi.responses import JSONResponse
from sqlalchemy import func, select

from api.grouping import (
    HeldGroups,
    Request,
    answered_early,
    hold,
    lone,
    one_by_one,
    send,
    together,
)
from api.harness import Api, Tenant
from earning.shop import PER_YUAN, item, order, rule, set_rules
from jifen.access.service import Scope
from jifen.api import grouped
from jifen.db.idempotency import IdempotencyRecord
from jifen.db.outbox import OutboxEvent
from jifen.earning import batch
from jifen.ledger.models import Lot

RULES = (
    PER_YUAN,
    rule("double-fresh", {"multiplier": 2}, when={"category": ["fresh"]}),
    rule("first", {"bonus": 50}, when={"first_purchase": True}),
)


@pytest.fixture
def held(api: Api) -> Iterator[Callable[[int], HeldGroups]]:
    app = api.client.app
    before = app.state.groups  # type: ignore[attr-defined]
    yield lambda behind: hold(api, behind)
    app.state.groups = before  # type: ignore[attr-defined]


def _tenant(api: Api) -> Tenant:
    t = api.tenant(claim_days=30)
    t.all_keys()
    set_rules(api.db, t.book, api.clock, *RULES)
    return t


def _requests(api: Api, t: Tenant) -> tuple[list[Request], dict[str, int]]:
    """A first order sent alone, then a mix of what a group takes and what it must send
    the one-by-one way."""
    alice, bob, carol = t.member(phone="13800000001"), t.member(), t.member()
    frozen = t.member()
    t.set_status(frozen, "frozen")
    fresh = item("6901", "60.25", 2, category="fresh")
    plain = item("7702", "100", discount="10")
    old = api.clock.now() - timedelta(days=31)
    bodies: list[tuple[dict[str, Any], Scope, str]] = [
        (order("o-0", plain, member=alice), Scope.POS, "k-0"),  # the held one, alone
        (order("o-1", fresh, member=alice), Scope.POS, "k-1"),
        (order("o-2", fresh, plain, member={"phone": "13800000001"}), Scope.POS, "k-2"),
        (order("o-3", plain, member=bob), Scope.POS, "k-3"),
        (order("o-0", plain, member=alice), Scope.POS, "k-4"),  # recorded: 200, the first
        (order("o-3", plain, member=bob), Scope.POS, "k-5"),  # earlier in the group: 200
        (order("o-1", fresh, member=alice), Scope.POS, "k-1"),  # the same key: a replay
        (order("o-6", plain, member=frozen), Scope.POS, "k-6"),  # 409 member-frozen
        (order("o-7", plain, member={"card_number": "nobody"}), Scope.POS, "k-7"),  # 404
        (order("o-8", plain, member=carol, at=old), Scope.POS, "k-8"),  # claim window
        (order("o-9", plain, member=carol, channel="nowhere"), Scope.POS, "k-9"),  # code
        (order("o-10", plain, member=carol), Scope.APP, "k-10"),  # 403 forbidden
        (order("o-11", plain), Scope.POS, "k-11"),  # no member: unclaimed, one by one
        (order("o-12", fresh, member=carol), Scope.POS, "k-12"),
        (order("o-3", item("x", 1), member=bob), Scope.POS, "k-13"),  # 409 order-conflict
        (order("o-14", plain, member=bob), Scope.ADMIN, "k-14"),  # another actor
    ]
    return bodies, {"alice": alice, "bob": bob, "carol": carol, "frozen": frozen}


def _shape(response: httpx.Response, ids: dict[int, str]) -> tuple[int, Any]:
    """A response with the programme's own ids named by role, to compare two programmes."""
    body = response.json()
    if response.status_code >= 400:
        return response.status_code, body["type"]
    body = dict(body)
    body["id"] = ids.setdefault(body["id"], f"purchase {len(ids)}")
    return response.status_code, body


def _ledger(api: Api, t: Tenant, members: dict[str, int]) -> dict[str, Any]:
    def read(session: Any) -> dict[str, Any]:
        program = t.book.program_id
        events = session.execute(
            select(OutboxEvent.type, func.count())
            .where(OutboxEvent.program_id == program)
            .group_by(OutboxEvent.type)
            .order_by(OutboxEvent.type)
        ).all()
        lots = session.execute(
            select(Lot.member_id, Lot.amount, Lot.status, Lot.available_at)
            .where(Lot.program_id == program)
            .order_by(Lot.member_id, Lot.amount)
        ).all()
        keys = session.execute(
            select(IdempotencyRecord.status_code, func.count())
            .where(IdempotencyRecord.program_id == program)
            .group_by(IdempotencyRecord.status_code)
            .order_by(IdempotencyRecord.status_code)
        ).all()
        role = {member_id: name for name, member_id in members.items()}
        return {
            "events": [tuple(e) for e in events],
            "lots": [(role[m], a, s, at) for m, a, s, at in lots],
            "keys": [tuple(k) for k in keys],
        }

    found = api.db.read(read)
    found["balances"] = {
        name: (t.balance(m).available, t.balance(m).pending) for name, m in members.items()
    }
    return found


def test_a_group_answers_and_books_exactly_what_one_by_one_does(
    api: Api, held: Callable[[int], HeldGroups]
) -> None:
    alone = _tenant(api)
    requests, alone_members = _requests(api, alone)
    expected = one_by_one(alone, requests)

    t = _tenant(api)
    requests, members = _requests(api, t)
    groups = held(len([r for r in requests[1:] if not answered_early(r)]))
    got = together(t, requests)

    # the first alone (a group of one), then everything but the unclaimed order
    assert groups.sizes == [1, 14]
    ids_expected: dict[int, str] = {}
    ids_got: dict[int, str] = {}
    shapes = [_shape(r, ids_expected) for r in expected]
    assert [_shape(r, ids_got) for r in got] == _renamed(shapes, alone_members, members)
    assert [r.headers.get("Idempotent-Replayed") for r in got] == [
        r.headers.get("Idempotent-Replayed") for r in expected
    ]
    assert [r.status_code for r in got] == [
        201, 201, 201, 201, 200, 200, 201, 409, 404, 422, 422, 403, 201, 201, 409, 201
    ]  # fmt: skip
    assert _ledger(api, t, members) == _ledger(api, alone, alone_members)
    # a group's 201 is the very bytes the route renders for the same body
    for response in got:
        assert response.content == JSONResponse(response.json()).body

    # every key the group claimed replays its first answer
    for request, first in zip(requests, got, strict=True):
        if first.status_code < 400:
            again = send(t, request)
            assert again.status_code == first.status_code
            assert again.json() == first.json()
            assert again.headers["Idempotent-Replayed"] == "true"


def test_lone_requests_are_groups_of_one_answering_exactly_what_one_by_one_does(
    api: Api,
) -> None:
    """Sent one after the other, each request that names a member is a group of one: the
    new purchases are booked by it, and the rest (replays, an order recorded already or
    in conflict, a frozen member, an unknown one, the claim window, an unknown code, a
    key without the scope, a key reused for another order: given up by the group's
    transaction) leave it for the one-by-one way; the answers, bytes, replays,
    balances, lots, events and keys are those of the one-by-one way."""
    reused = (order("o-15", item("7702", "100"), member=None), Scope.POS, "k-3")

    def requests_of(t: Tenant) -> tuple[list[Request], dict[str, int]]:
        requests, members = _requests(api, t)
        body, scope, key = reused
        # a key of an earlier order with another order: 422 (and nothing written)
        return [*requests, ({**body, "member": {"id": members["carol"]}}, scope, key)], members

    plain = _tenant(api)
    requests, plain_members = requests_of(plain)
    expected = one_by_one(plain, requests)
    assert expected[-1].json()["type"] == "/problems/idempotency-key-reused"

    t = _tenant(api)
    requests, members = requests_of(t)
    got, groups = lone(t, requests)

    queued = [(r, e) for r, e in zip(requests, expected, strict=True) if not answered_early(r)]
    assert groups.sizes == [1] * len(queued) == [1] * 16
    new = [e.status_code == 201 and "Idempotent-Replayed" not in e.headers for _, e in queued]
    assert groups.booked == [int(n) for n in new]
    assert sum(new) == 6
    ids_expected: dict[int, str] = {}
    ids_got: dict[int, str] = {}
    shapes = [_shape(r, ids_expected) for r in expected]
    assert [_shape(r, ids_got) for r in got] == _renamed(shapes, plain_members, members)
    assert [r.headers.get("Idempotent-Replayed") for r in got] == [
        r.headers.get("Idempotent-Replayed") for r in expected
    ]
    assert [r.status_code for r in got] == [r.status_code for r in expected]
    assert _ledger(api, t, members) == _ledger(api, plain, plain_members)
    for response in got:
        assert response.content == JSONResponse(response.json()).body


def _renamed(
    shapes: list[tuple[int, Any]], before: dict[str, int], after: dict[str, int]
) -> list[tuple[int, Any]]:
    """Shapes of one programme's responses with its member ids as the other's."""
    ids = {before[name]: after[name] for name in before}
    renamed = []
    for status, body in shapes:
        if isinstance(body, dict) and body.get("member_id") is not None:
            renamed.append((status, {**body, "member_id": ids[body["member_id"]]}))
        else:
            renamed.append((status, body))
    return renamed


def test_a_group_whose_transaction_fails_is_answeredone_by_one(
    api: Api, held: Callable[[int], HeldGroups], monkeypatch: pytest.MonkeyPatch
) -> None:
    t = _tenant(api)
    alice, bob = t.member(), t.member()
    plain = item("7702", "100", discount="10")
    requests: list[Request] = [
        (order(f"o-{i}", plain, member=alice if i % 2 else bob), Scope.POS, f"k-{i}")
        for i in range(6)
    ]
    failures = []
    real = batch.book_orders

    def fails_once(*args: Any, **kwargs: Any) -> Any:
        if not failures and len(args[4]) > 1:  # the group of five (not the first, alone)
            real(*args, **kwargs)  # written, then the transaction dies
            failures.append(1)
            raise RuntimeError("the connection broke")
        return real(*args, **kwargs)

    monkeypatch.setattr(grouped.batch, "book_orders", fails_once)
    groups = held(5)
    got = together(t, requests)
    assert groups.sizes == [1, 5]
    assert groups.booked == [1, 0]
    assert failures == [1]
    assert [r.status_code for r in got] == [201] * 6
    assert t.available(alice) == 320  # 3 × 90, and 50 for the first
    assert t.available(bob) == 320
    assert len({r.json()["id"] for r in got}) == 6


def test_a_group_that_loses_a_key_to_another_request_is_answered_one_by_one(
    api: Api, held: Callable[[int], HeldGroups], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The group checks its keys before booking and records them with the answers at the
    end; a key claimed in between (here: the check is made to miss a key the held
    request committed) gives the whole group up, and the one-by-one way answers all."""
    t = _tenant(api)
    alice, bob = t.member(), t.member()
    plain = item("7702", "100", discount="10")
    requests: list[Request] = [
        (order("o-0", plain, member=alice), Scope.POS, "k-0"),  # held, alone
        (order("o-1", plain, member=bob), Scope.POS, "k-1"),
        (order("o-2", plain, member=alice), Scope.POS, "k-0"),  # the key of another order
        (order("o-3", plain, member=bob), Scope.POS, "k-3"),
    ]
    monkeypatch.setattr(grouped, "known_keys", lambda *args: set())
    groups = held(3)
    got = together(t, requests)
    assert groups.sizes == [1, 3]
    assert groups.booked == [1, 0]
    assert [r.status_code for r in got] == [201, 201, 422, 201]
    assert got[2].json()["type"] == "/problems/idempotency-key-reused"
    assert t.available(alice) == 140  # o-0 only: 90, and 50 for the first
    assert t.available(bob) == 230  # o-1 and o-3, once each


def test_concurrent_purchases_of_many_members_add_up(api: Api) -> None:
    """No holding: 8 threads send 40 purchases as fast as they can; whatever groups form,
    every purchase is booked once."""
    t = _tenant(api)
    members = [t.member() for _ in range(5)]
    plain = item("7702", "100", discount="10")

    def send(i: int) -> httpx.Response:
        body = order(f"o-{i}", plain, member=members[i % 5])
        return t.post("/v1/purchases", body, scope=Scope.POS, idem=str(uuid.uuid4()))

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(send, range(40)))
    assert [a.status_code for a in answers] == [201] * 40
    # 8 purchases of 90 points each, the first one with a 50-point bonus
    assert [t.available(m) for m in members] == [8 * 90 + 50] * 5
