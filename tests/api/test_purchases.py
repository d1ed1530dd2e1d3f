"""Purchases over HTTP on both stores: record (201, then 200 with the first result for the
same order id, also 8 at once), read with the breakdown (1-based line numbers), the
rule-set version, pending_until, lines with what came back and the returns; returns,
claims and simulation; every refusal is a problem detail and writes nothing; another
programme's purchases are not there."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import timedelta
from threading import Barrier
from typing import Any

import pytest

from api.harness import Api, Tenant, assert_problem
from earning.shop import PER_YUAN, add_store, item, local, order, rule, set_rules
from jifen.access.service import Scope

BASKET = (item("6901", "60.25", 2, category="fresh"), item("7702", "100", discount="10"))
"""210.50 net: line 1 is 2 × 60.25 (120.50), line 2 is 100 less 10 (90.00)."""


def _tenant(api: Api, *rules: dict[str, Any], **settings: Any) -> Tenant:
    t = api.tenant(**settings)
    t.all_keys()  # made now, so that no later block writes a key
    set_rules(api.db, t.book, api.clock, *(rules or (PER_YUAN,)))
    return t


@contextmanager
def _awards_nothing(api: Api) -> Iterator[None]:
    """Nothing but the idempotency record of a successful request is written."""
    before = api.snapshot()
    yield
    after = api.snapshot()
    changed = [name for name in before if before[name] != after[name]]
    assert changed in ([], ["idempotency_keys"]), f"tables written: {changed}"


def _buy(t: Tenant, body: dict[str, Any], status: int = 201) -> dict[str, Any]:
    response = t.post("/v1/purchases", body, scope=Scope.POS)
    assert response.status_code == status, response.text
    found: dict[str, Any] = response.json()
    return found


# -- recording and reading ------------------------------------------------------------------


def test_a_purchase_is_recorded_once_and_shown_with_its_breakdown(api: Api) -> None:
    t = _tenant(
        api,
        PER_YUAN,
        rule("double-fresh", {"multiplier": 2}, when={"category": ["fresh"]}, name="生鲜双倍"),
        pending_days=7,
    )
    member = t.member(phone="13800138000")
    body = order("POS-0815-1", *BASKET, member={"phone": "13800138000"}, payment_method="wechat")
    first = _buy(t, body)
    assert first["member_id"] == member
    assert (first["status"], first["points"], first["growth"]) == ("awarded", 330, 210)
    assert (first["total"], first["net_total"]) == ("210.50", "210.50")
    assert first["rule_set_version"] == 2
    assert first["pending_until"] == "2026-01-22T16:00:00Z"  # 23 January begins in Shanghai
    assert first["breakdown"] == [
        {
            "rule": "base",
            "name": "1 元 = 1 积分",
            "effect": "per_amount",
            "basis": "210.50",
            "lines": [1, 2],
            "wanted": 210,
            "points": 210,
            "capped_by": None,
        },
        {
            "rule": "double-fresh",
            "name": "生鲜双倍",
            "effect": "multiplier",
            "basis": "120.5",
            "lines": [1],
            "wanted": 120,
            "points": 120,
            "capped_by": None,
        },
    ]
    assert [b["rule"] for b in first["growth_breakdown"]] == ["growth"]
    assert [(line["line_no"], line["amount"], line["discount"]) for line in first["lines"]] == [
        (1, "120.50", "0.00"),
        (2, "100.00", "10.00"),
    ]
    assert first["returns"] == []
    balance = t.balance(member)
    assert (balance.available, balance.pending, balance.growth_value) == (0, 330, 210)

    # the same order again (a till retrying with a new key) is the first result
    with _awards_nothing(api):
        again = t.post("/v1/purchases", body, scope=Scope.POS)
        assert again.status_code == 200, again.text
        assert again.json() == first
        assert t.get(f"/v1/purchases/{first['id']}", scope=Scope.READ).json() == first
    # the same key again is replayed as it was answered
    key = "till-7-receipt-2"
    created = t.post("/v1/purchases", order("POS-0815-2", *BASKET, member=member), idem=key)
    replay = t.post("/v1/purchases", order("POS-0815-2", *BASKET, member=member), idem=key)
    assert (created.status_code, replay.status_code) == (201, 201)
    assert replay.json() == created.json()
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert t.balance(member).pending == 660


def test_8_concurrent_posts_of_one_order_award_it_once(api: Api) -> None:
    t = _tenant(api)
    member = t.member()
    body = order("POS-1", *BASKET, member=member)
    start = Barrier(8)

    def post(_: int) -> tuple[int, dict[str, Any]]:
        start.wait()
        response = t.post("/v1/purchases", body, scope=Scope.POS)  # each with its own key
        return response.status_code, response.json()

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(post, range(8)))
    assert sorted(status for status, _ in results) == [200] * 7 + [201]
    assert len({body["id"] for _, body in results}) == 1
    assert t.available(member) == 210
    assert t.history_len(member) == 2  # one earn, one growth credit


def test_a_members_purchases_newest_first_in_pages(api: Api) -> None:
    t = _tenant(api)
    member, other = t.member(), t.member()
    ids = [_buy(t, order(f"o{i}", item("x", 10 + i), member=member))["id"] for i in range(3)]
    _buy(t, order("theirs", item("x", 5), member=other))
    page = t.get(f"/v1/members/{member}/purchases", limit=2)
    assert page.status_code == 200, page.text
    assert [p["id"] for p in page.json()] == [ids[2], ids[1]]
    rest = t.get(f"/v1/members/{member}/purchases", limit=2, before=ids[1]).json()
    assert [(p["id"], p["points"]) for p in rest] == [(ids[0], 10)]
    assert_problem(t.get("/v1/members/999999999/purchases"), 404, "not-found")


# -- refusals -------------------------------------------------------------------------------


BAD = [
    pytest.param({"total": "210.49"}, "total", id="total-does-not-add-up"),
    pytest.param({"lines": [item("x", "10", -1)]}, "lines.0.quantity", id="negative-quantity"),
    pytest.param({"lines": [item("x", "10", 0)]}, "lines.0.quantity", id="zero-quantity"),
    pytest.param({"lines": [item("x", "10", 2, amount="21")]}, "lines.0", id="amount-not-q-x-p"),
    pytest.param(
        {"lines": [item("x", "10", discount="10.01")]}, "lines.0", id="discount-above-amount"
    ),
    pytest.param({"lines": []}, "lines", id="no-lines"),
    pytest.param({"lines": [item("x", "0.001")]}, "lines.0.unit_price", id="sub-cent-price"),
    pytest.param({"member": {"id": 1, "phone": "1"}}, "member", id="two-identifiers"),
    pytest.param({"occurred_at": "2026-01-15T10:06:00+08:00"}, "occurred_at", id="future"),
    pytest.param({"occurred_at": "2026-01-15T10:00:00"}, "occurred_at", id="no-zone"),
    pytest.param({"bogus": 1}, "bogus", id="unknown-field"),
]


@pytest.mark.parametrize(("change", "field"), BAD)
def test_a_bad_purchase_is_a_422_and_writes_nothing(
    api: Api, change: dict[str, Any], field: str
) -> None:
    t = _tenant(api)
    member = t.member()
    body = order("o1", *BASKET, member=member)
    if "lines" in change and "total" not in change:
        change = change | {"total": "10.00"}
    with api.writes_nothing():
        problem = assert_problem(t.post("/v1/purchases", body | change), 422, "invalid-input")
    assert problem["field"] == field, problem


def test_unknown_codes_are_a_422_that_lists_the_known_ones(api: Api) -> None:
    t = _tenant(api)
    member = t.member()
    add_store(api.db, t.book, "sh-001")
    add_store(api.db, t.book, "sh-002", active=False)
    with api.writes_nothing():
        problem = assert_problem(
            t.post("/v1/purchases", order("o1", *BASKET, member=member, channel="fax")),
            422,
            "unknown-code",
            field="channel",
            known="app, mini_program, pos, store, web",
        )
        assert "fax" in problem["detail"]
        for store in ("sh-002", "sh-404"):
            problem = assert_problem(
                t.post("/v1/purchases", order("o1", *BASKET, member=member, store=store)),
                422,
                "unknown-code",
                field="store",
                known="sh-001",
            )
            assert store in problem["detail"]


def test_conflicts_and_members_who_cannot_earn(api: Api) -> None:
    t = _tenant(api, claim_days=30)
    member, other, frozen = t.member(), t.member(), t.member()
    t.set_status(frozen, "frozen")
    first = _buy(t, order("o1", *BASKET, member=member))
    old = api.clock.now() - timedelta(days=30, seconds=1)
    with api.writes_nothing():
        assert_problem(
            t.post("/v1/purchases", order("o1", *BASKET, member=other)),
            409,
            "order-conflict",
            purchase_id=first["id"],
            difference="member",
        )
        assert_problem(
            t.post("/v1/purchases", order("o1", item("x", 1), member=member)),
            409,
            "order-conflict",
            difference="total",
        )
        assert_problem(
            t.post("/v1/purchases", order("o2", *BASKET, member=frozen)), 409, "member-frozen"
        )
        assert_problem(
            t.post("/v1/purchases", order("o2", *BASKET, member={"card_number": "nobody"})),
            404,
            "not-found",
        )
        assert_problem(
            t.post("/v1/purchases", order("o2", *BASKET, member=member, at=old)),
            422,
            "outside-claim-window",
            days=30,
        )
        assert_problem(
            t.post("/v1/purchases", order("o2", *BASKET, member=member), scope=Scope.APP),
            403,
            "forbidden",
        )


# -- returns --------------------------------------------------------------------------------


def test_returns_over_http(api: Api) -> None:
    t = _tenant(api, pending_days=7)
    member = t.member()
    purchase = _buy(t, order("o1", *BASKET, member=member))
    path = f"/v1/purchases/{purchase['id']}/returns"
    refund = {"external_id": "RF-1", "lines": [{"line_no": 1, "quantity": 1}]}
    response = t.post(path, refund, scope=Scope.POS)
    assert response.status_code == 201, response.text
    first = response.json()
    assert {k: first[k] for k in ("amount", "points", "points_taken", "growth")} == {
        "amount": "60.25",
        "points": 60,
        "points_taken": 60,
        "growth": 60,
    }
    assert (first["policy"], first["withhold_amount"], first["purchase_status"]) == (
        "withhold",
        "0.00",
        "awarded",
    )
    with _awards_nothing(api):
        again = t.post(path, refund)  # the refund id again, with a new key
        assert (again.status_code, again.json()) == (200, first)
    with api.writes_nothing():
        assert_problem(t.post(path, {"external_id": "RF-1", "amount": "1"}), 409, "conflict")
        assert_problem(
            t.post(path, {"lines": [{"line_no": 1, "quantity": 2}]}),
            409,
            "return-exceeds-purchase",
            line=1,
            asked="2 items",
            left="1.000 items",
        )
        assert_problem(t.post(path, {"amount": "150.26"}), 409, "return-exceeds-purchase")
        assert_problem(t.post(path, {}), 422, "invalid-input")
        assert_problem(t.post(path, {"amount": "0"}), 422, "invalid-input")
        assert_problem(t.post("/v1/purchases/999999999/returns", {"amount": "1"}), 404, "not-found")
    # the same Idempotency-Key is replayed, not taken again
    key = "refund-2"
    second = t.post(path, {"amount": "50"}, idem=key)
    replay = t.post(path, {"amount": "50"}, idem=key)
    assert (second.status_code, replay.status_code) == (201, 201)
    assert replay.json() == second.json()
    assert t.balance(member).pending == 210 - 60 - 50

    shown = t.get(f"/v1/purchases/{purchase['id']}").json()
    assert [(line["returned_quantity"], line["returned_amount"]) for line in shown["lines"]] == [
        ("1.000", "80.30"),  # 60.25, then 20.05 of the 50 (5000 cents × 60.25/150.25)
        ("0.000", "29.95"),
    ]
    assert shown["net_total"] == "100.25"
    assert (shown["points_returned"], shown["growth_returned"]) == (110, 110)
    assert [(r["external_id"], r["amount"], r["points"]) for r in shown["returns"]] == [
        ("RF-1", "60.25", 60),
        (None, "50.00", 50),
    ]


# -- claims -------------------------------------------------------------------------------


def test_claims_over_http(api: Api) -> None:
    t = _tenant(api, claim_days=30)
    member, other = t.member(card_number="8800123"), t.member()
    _buy(t, order("R-1", *BASKET))
    _buy(t, order("R-old", *BASKET, at=api.clock.now() - timedelta(days=31)))
    body = {"external_id": "R-1", "member": {"card_number": "8800123"}}
    response = t.post("/v1/purchases/claims", body, scope=Scope.APP)
    assert response.status_code == 201, response.text
    claimed = response.json()
    assert (claimed["member_id"], claimed["status"], claimed["points"]) == (member, "awarded", 210)
    assert claimed["claimed_at"] == "2026-01-15T02:00:00Z"
    with _awards_nothing(api):
        again = t.post("/v1/purchases/claims", body)
        assert (again.status_code, again.json()) == (200, claimed)
    with api.writes_nothing():
        assert_problem(
            t.post("/v1/purchases/claims", {"external_id": "R-1", "member": {"id": other}}),
            409,
            "already-claimed",
            external_id="R-1",
            member_id=member,
        )
        assert_problem(
            t.post("/v1/purchases/claims", {"external_id": "R-old", "member": {"id": member}}),
            422,
            "outside-claim-window",
            days=30,
        )
        assert_problem(
            t.post("/v1/purchases/claims", {"external_id": "R-9", "member": {"id": member}}),
            404,
            "not-found",
        )
    assert t.available(member) == 210


# -- simulation ---------------------------------------------------------------------------


def test_simulate_answers_what_the_purchase_then_gets_and_writes_nothing(api: Api) -> None:
    t = _tenant(
        api,
        PER_YUAN,
        rule("member-day", {"multiplier": 2}, when={"days_of_month": [15]}),
        rule("promo", {"bonus": 30}, budget={"points": 40}),
    )
    member = t.member()
    body = order("o1", *BASKET, member=member)
    with api.writes_nothing():
        response = t.post("/v1/simulate", body, scope=Scope.READ, idem=False)
        assert response.status_code == 200, response.text
    simulated = response.json()
    assert (simulated["points"], simulated["growth"], simulated["rule_set_version"]) == (
        210 + 210 + 30,
        210,
        2,
    )
    bought = _buy(t, body)
    for name in ("points", "growth", "rule_set_version", "breakdown", "growth_breakdown"):
        assert simulated[name] == bought[name], name
    # the order id may be left out, and the budget's rest is what it says
    without_id = {k: v for k, v in body.items() if k != "external_id"}
    with api.writes_nothing():
        again = t.post("/v1/simulate", without_id, idem=False).json()
    assert [(b["rule"], b["points"], b["capped_by"]) for b in again["breakdown"]] == [
        ("base", 210, None),
        ("member-day", 210, None),
        ("promo", 10, "allowance"),
    ]
    with api.writes_nothing():
        assert_problem(
            t.post("/v1/simulate", body | {"channel": "fax"}, idem=False), 422, "unknown-code"
        )
    t.set_status(member, "frozen")
    assert_problem(t.post("/v1/simulate", body, idem=False), 409, "member-frozen")


# -- isolation --------------------------------------------------------------------------


def test_another_programmes_purchases_are_not_there(api: Api) -> None:
    mine, theirs = _tenant(api), _tenant(api)
    member = mine.member()
    purchase = _buy(mine, order("o1", *BASKET, member=member))
    _buy(mine, order("unclaimed", *BASKET))
    stranger = theirs.member()
    with api.writes_nothing():
        assert_problem(theirs.get(f"/v1/purchases/{purchase['id']}"), 404, "not-found")
        assert_problem(
            theirs.post(f"/v1/purchases/{purchase['id']}/returns", {"amount": "1"}),
            404,
            "not-found",
        )
        assert_problem(
            theirs.post(
                "/v1/purchases/claims", {"external_id": "unclaimed", "member": {"id": stranger}}
            ),
            404,
            "not-found",
        )
        assert_problem(theirs.get(f"/v1/members/{member}/purchases"), 404, "not-found")
    # the same order id is another order in another programme
    other = _buy(theirs, order("o1", *BASKET, member=stranger))
    assert other["id"] != purchase["id"]


def test_member_day_at_the_edges_of_the_shanghai_day_over_http(api: Api) -> None:
    t = _tenant(api, PER_YUAN, rule("member-day", {"multiplier": 2}, when={"days_of_month": [8]}))
    member = t.member()
    got = [
        _buy(t, order(f"o{i}", item("x", 100), member=member, at=at))["points"]
        for i, at in enumerate((local(2026, 1, 8, 23, 59), local(2026, 1, 9, 0, 1)))
    ]
    assert got == [200, 100]
