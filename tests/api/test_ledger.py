"""The ledger end to end over HTTP: earning (pending and available), spending from the
earliest-expiring lots, adjustments, transfers that keep the sender's expiry, reversals
that restore lots, balances with what expires soon, and the member's history."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from api.harness import Api, Tenant, assert_problem
from jifen.access.service import Scope

MONTHLY = {"kind": "after_months", "months": 1}
YEARLY = {"kind": "after_months", "months": 12}


def _key_id(t: Tenant, scope: Scope) -> int:
    t.key(scope)
    return int(next(k["id"] for k in t.get("/v1/keys").json() if k["scope"] == scope.value))


# -- earning -------------------------------------------------------------------------------


def test_earn_returns_the_transaction_and_the_new_balance(api: Api) -> None:
    t = api.tenant()
    member = t.member()
    response = t.post(
        f"/v1/members/{member}/earn",
        {"points": 120, "reference": "order-1", "reason": "purchase"},
        scope=Scope.POS,
    )
    assert response.status_code == 201, response.text
    body = response.json()
    txn = body["transaction"]
    assert txn["kind"] == "earn"
    assert txn["points"] == 120
    assert txn["member_id"] == member
    assert (txn["reference"], txn["reason"]) == ("order-1", "purchase")
    assert txn["actor"] == f"key:{_key_id(t, Scope.POS)}"
    assert txn["created_at"] == "2026-01-15T02:00:00Z"
    balance = body["balance"]
    assert (balance["available"], balance["pending"], balance["held"]) == (120, 0, 0)
    assert balance["lifetime_earned"] == 120
    assert t.get(f"/v1/transactions/{txn['id']}").json() == txn
    assert t.get(f"/v1/members/{member}/balance").json() == balance


def test_a_reference_is_used_once(api: Api) -> None:
    t = api.tenant()
    member = t.member()
    first = t.earn(member, 10, reference="order-9").json()["transaction"]["id"]
    with api.writes_nothing():
        for path, body in [
            (f"/v1/members/{member}/earn", {"points": 10, "reference": "order-9"}),
            (f"/v1/members/{member}/spend", {"points": 1, "reference": "order-9"}),
            ("/v1/holds", {"member_id": member, "points": 1, "reference": "order-9"}),
        ]:
            response = t.post(path, body)
            assert_problem(
                response, 409, "duplicate-reference", reference="order-9", transaction_id=first
            )
    assert t.available(member) == 10


def test_pending_points_become_available_when_the_return_window_closes(api: Api) -> None:
    t = api.tenant(pending_days=7)
    member = t.member()
    body = t.earn(member, 100).json()
    assert (body["balance"]["available"], body["balance"]["pending"]) == (0, 100)
    [lot] = t.lots(member)
    assert lot["status"] == "pending"
    # earned 15 January 10:00 Shanghai: released at local midnight starting 23 January
    assert lot["available_at"] == "2026-01-22T16:00:00Z"
    assert_problem(
        t.post(f"/v1/members/{member}/spend", {"points": 1}),
        409,
        "insufficient-points",
        available=0,
    )
    api.clock.set(datetime(2026, 1, 22, 15, 59, tzinfo=UTC))
    balance = t.get(f"/v1/members/{member}/balance").json()
    assert (balance["available"], balance["pending"]) == (0, 100)
    api.clock.set(datetime(2026, 1, 22, 16, 0, tzinfo=UTC))
    ran = t.post("/v1/jobs/release")
    assert ran.status_code == 200
    assert (ran.json()["items"], ran.json()["points"]) == (1, 100)
    balance = t.get(f"/v1/members/{member}/balance").json()
    assert (balance["available"], balance["pending"]) == (100, 0)
    assert t.lots(member)[0]["status"] == "available"
    assert t.spend(member, 100).json()["balance"]["available"] == 0


def test_pending_points_are_released_by_a_read_without_the_job(api: Api) -> None:
    t = api.tenant(pending_days=1)
    member = t.member()
    t.earn(member, 40)
    t.earn(member, 60, pending=False)  # explicitly available at once
    assert t.get(f"/v1/members/{member}/balance").json()["pending"] == 40
    api.clock.advance(days=2)
    balance = t.get(f"/v1/members/{member}/balance").json()
    assert (balance["available"], balance["pending"]) == (100, 0)
    kinds = [item["kind"] for item in t.get(f"/v1/members/{member}/history").json()["items"]]
    assert kinds == ["release", "earn", "earn"]


def test_earn_pending_on_a_programme_without_a_return_window_is_available(api: Api) -> None:
    t = api.tenant(pending_days=0)
    member = t.member()
    assert t.earn(member, 5, pending=True).json()["balance"]["available"] == 5


# -- spending and lots ---------------------------------------------------------------------


def test_spend_takes_the_earliest_expiring_lots_first(api: Api) -> None:
    t = api.tenant(expiry_policy=YEARLY)
    member = t.member()
    t.earn(member, 100)
    api.clock.advance(days=40)
    t.earn(member, 100)
    response = t.post(f"/v1/members/{member}/spend", {"points": 150}, scope=Scope.APP)
    assert response.status_code == 201
    assert response.json()["balance"]["available"] == 50
    assert response.json()["transaction"]["kind"] == "spend"
    first, second = t.lots(member)
    assert first["expires_at"] < second["expires_at"]
    assert (first["amount"], first["remaining"]) == (100, 0)
    assert (second["amount"], second["remaining"]) == (100, 50)
    # each expires at a local midnight twelve months on
    assert first["expires_at"] == "2027-01-15T16:00:00Z"
    assert second["expires_at"] == "2027-02-24T16:00:00Z"
    assert first["earned_at"] == "2026-01-15T02:00:00Z"
    filtered = t.get(f"/v1/members/{member}/lots", status="available").json()
    assert [lot["id"] for lot in filtered] == [first["id"], second["id"]]
    assert t.get(f"/v1/members/{member}/lots", status="expired").json() == []
    assert len(t.get(f"/v1/members/{member}/lots", limit=1).json()) == 1


def test_balance_lists_what_expires_within_30_days(api: Api) -> None:
    t = api.tenant(expiry_policy=MONTHLY)
    member = t.member()
    t.earn(member, 100)
    api.clock.advance(days=10)
    t.earn(member, 30)
    balance = t.get(f"/v1/members/{member}/balance").json()
    # the first lot expires at the end of 15 February (local), the second not within 30 days
    assert balance["expiring_soon"] == [{"date": "2026-02-15", "points": 100}]
    t.spend(member, 60)
    assert t.get(f"/v1/members/{member}/balance").json()["expiring_soon"] == [
        {"date": "2026-02-15", "points": 40}
    ]
    api.clock.advance(days=10)
    assert t.get(f"/v1/members/{member}/balance").json()["expiring_soon"] == [
        {"date": "2026-02-15", "points": 40},
        {"date": "2026-02-25", "points": 30},
    ]
    assert t.get(f"/v1/members/{member}/balance").json()["as_of"] == "2026-02-04T02:00:00Z"


def test_expired_points_leave_the_balance_on_read(api: Api) -> None:
    t = api.tenant(expiry_policy=MONTHLY)
    member = t.member()
    t.earn(member, 100)
    api.clock.set(datetime(2026, 2, 15, 15, 59, tzinfo=UTC))
    assert t.get(f"/v1/members/{member}/balance").json()["available"] == 100
    api.clock.set(datetime(2026, 2, 15, 16, 0, tzinfo=UTC))
    balance = t.get(f"/v1/members/{member}/balance").json()
    assert balance["available"] == 0
    assert balance["lifetime_earned"] == 100
    [lot] = t.lots(member)
    assert (lot["status"], lot["remaining"]) == ("expired", 0)
    assert_problem(t.post(f"/v1/members/{member}/spend", {"points": 1}), 409, "insufficient-points")


def test_lots_and_history_are_brought_up_to_date_like_the_balance(api: Api) -> None:
    t = api.tenant(expiry_policy=MONTHLY, pending_days=3)
    member = t.member()
    t.earn(member, 100)
    api.clock.advance(days=5)
    [lot] = t.lots(member)
    assert lot["status"] == "available"
    assert t.get(f"/v1/members/{member}/history").json()["items"][0]["kind"] == "release"
    api.clock.advance(days=40)
    [lot] = t.lots(member)
    assert (lot["status"], lot["remaining"]) == ("expired", 0)
    assert t.get(f"/v1/members/{member}/history").json()["items"][0]["kind"] == "expire"


# -- adjustments -----------------------------------------------------------------------------


def test_adjustments_credit_and_debit_with_reason_and_actor(api: Api) -> None:
    t = api.tenant()
    member = t.member()
    t.earn(member, 100)
    up = t.post(f"/v1/members/{member}/adjustments", {"points": 50, "reason": "  goodwill "})
    assert up.status_code == 201, up.text
    assert up.json()["transaction"]["kind"] == "adjust"
    assert up.json()["transaction"]["reason"] == "goodwill"
    assert up.json()["transaction"]["actor"] == f"key:{_key_id(t, Scope.ADMIN)}"
    assert up.json()["balance"]["available"] == 150
    # an adjustment is not an earning
    assert up.json()["balance"]["lifetime_earned"] == 100
    down = t.post(
        f"/v1/members/{member}/adjustments",
        {"points": -30, "reason": "duplicate receipt", "reference": "ticket-7"},
    )
    assert down.status_code == 201
    assert down.json()["balance"]["available"] == 120
    items = t.get(f"/v1/members/{member}/history", type="adjust").json()["items"]
    assert [(i["points"], i["reason"], i["reference"]) for i in items] == [
        (-30, "duplicate receipt", "ticket-7"),
        (50, "goodwill", None),
    ]
    assert {i["actor"] for i in items} == {f"key:{_key_id(t, Scope.ADMIN)}"}


# -- transfers -------------------------------------------------------------------------------


def test_a_transfer_keeps_the_senders_expiry_dates(api: Api) -> None:
    t = api.tenant(allow_transfers=True, expiry_policy=YEARLY)
    sender, receiver = t.member(), t.member()
    t.earn(sender, 100)
    api.clock.advance(days=90)
    t.earn(sender, 100)
    response = t.post(
        "/v1/transfers",
        {"from_member_id": sender, "to_member_id": receiver, "points": 150, "reason": "gift"},
        scope=Scope.APP,
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["transaction"]["kind"] == "transfer"
    assert body["transaction"]["details"] == {"to_member_id": receiver}
    assert body["from_balance"]["available"] == 50
    assert body["to_balance"]["available"] == 150
    sender_lots = t.lots(sender)
    receiver_lots = t.lots(receiver)
    assert [(lot["remaining"], lot["expires_at"]) for lot in receiver_lots] == [
        (100, sender_lots[0]["expires_at"]),
        (50, sender_lots[1]["expires_at"]),
    ]
    assert receiver_lots[0]["expires_at"] == "2027-01-15T16:00:00Z"
    # transfers received are not earnings
    assert body["to_balance"]["lifetime_earned"] == 0
    sent = t.get(f"/v1/members/{sender}/history", type="transfer").json()["items"]
    got = t.get(f"/v1/members/{receiver}/history", type="transfer").json()["items"]
    assert sent[0]["points"] == -150
    assert got[0]["points"] == 150
    assert sent[0]["id"] == got[0]["id"]


# -- reversals -------------------------------------------------------------------------------


def test_reversing_a_spend_restores_the_lots_it_took(api: Api) -> None:
    t = api.tenant(expiry_policy=YEARLY)
    member = t.member()
    t.earn(member, 100)
    api.clock.advance(days=30)
    t.earn(member, 100)
    lots_before = t.lots(member)
    spent = t.spend(member, 150).json()["transaction"]["id"]
    api.clock.advance(days=1)
    response = t.post(f"/v1/transactions/{spent}/reversal", {"reason": "order cancelled"})
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["transaction"]["kind"] == "reversal"
    assert body["transaction"]["reverses_id"] == spent
    assert body["balance"]["available"] == 200
    assert t.lots(member) == lots_before  # same lots, same expiry, all points back
    original = t.get(f"/v1/members/{member}/history", type="spend").json()["items"][0]
    assert original["reversed_by_id"] == body["transaction"]["id"]


def test_reversing_an_earn_takes_its_lot_back(api: Api) -> None:
    t = api.tenant()
    member = t.member()
    keep = t.earn(member, 50).json()["transaction"]["id"]
    earned = t.earn(member, 100).json()["transaction"]["id"]
    response = t.post(f"/v1/transactions/{earned}/reversal", {"reason": "fraud"})
    assert response.status_code == 201
    assert response.json()["balance"]["available"] == 50
    assert response.json()["balance"]["lifetime_earned"] == 50
    statuses = {lot["transaction_id"]: lot["status"] for lot in t.lots(member)}
    assert statuses == {keep: "available", earned: "cancelled"}


def test_a_transaction_is_reversed_once(api: Api) -> None:
    t = api.tenant()
    member = t.member()
    earned = t.earn(member, 100).json()["transaction"]["id"]
    reversal = t.post(f"/v1/transactions/{earned}/reversal", {"reason": "x"}).json()
    with api.writes_nothing():
        again = t.post(f"/v1/transactions/{earned}/reversal", {"reason": "x"}, lang="en")
        problem = assert_problem(again, 409, "not-reversible", transaction_id=earned)
        assert str(reversal["transaction"]["id"]) in problem["detail"]
        # a reversal itself is not reversed, nor is a hold
        response = t.post(
            f"/v1/transactions/{reversal['transaction']['id']}/reversal", {"reason": "x"}
        )
        assert_problem(response, 409, "not-reversible")
    t.earn(member, 10)
    hold = t.hold(member, 5)
    hold_txn = t.get(f"/v1/members/{member}/history", type="hold").json()["items"][0]
    assert hold_txn["hold_id"] == hold["id"]
    with api.writes_nothing():
        response = t.post(f"/v1/transactions/{hold_txn['id']}/reversal", {"reason": "x"})
        assert_problem(response, 409, "not-reversible")
        assert_problem(
            t.post(f"/v1/transactions/{earned}/reversal", {}), 422, "invalid-input", field="reason"
        )


def test_a_reversal_that_would_leave_debt_is_refused_unless_allowed(api: Api) -> None:
    t = api.tenant()
    member = t.member()
    earned = t.earn(member, 100).json()["transaction"]["id"]
    t.spend(member, 80)
    with api.writes_nothing():
        for body in ({"reason": "x"}, {"reason": "x", "allow_debt": True}):
            response = t.post(f"/v1/transactions/{earned}/reversal", body)
            assert_problem(response, 409, "insufficient-points", needed=100, available=20)
    indebted = api.tenant(allow_negative_balance=True)
    member = indebted.member()
    earned = indebted.earn(member, 100).json()["transaction"]["id"]
    indebted.spend(member, 80)
    refused = indebted.post(
        f"/v1/transactions/{earned}/reversal", {"reason": "x", "allow_debt": False}
    )
    assert_problem(refused, 409, "insufficient-points")
    done = indebted.post(f"/v1/transactions/{earned}/reversal", {"reason": "chargeback"})
    assert done.status_code == 201
    assert done.json()["balance"]["available"] == -80
    # later earnings repay the debt first
    assert indebted.earn(member, 100).json()["balance"]["available"] == 20


def test_reversing_a_spend_after_its_lot_expired_returns_expired_points(api: Api) -> None:
    t = api.tenant(expiry_policy=MONTHLY)
    member = t.member()
    t.earn(member, 100)
    spent = t.spend(member, 40).json()["transaction"]["id"]
    api.clock.advance(days=40)
    assert t.get(f"/v1/members/{member}/balance").json()["available"] == 0
    response = t.post(f"/v1/transactions/{spent}/reversal", {"reason": "late refund"})
    assert response.status_code == 201
    assert response.json()["balance"]["available"] == 0
    [lot] = t.lots(member)
    assert (lot["status"], lot["remaining"]) == ("expired", 0)


# -- history ---------------------------------------------------------------------------------


def _history(t: Tenant, member: int, **params: Any) -> list[dict[str, Any]]:
    response = t.get(f"/v1/members/{member}/history", **params)
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


def test_history_pages_walk_every_item_once(api: Api) -> None:
    t = api.tenant()
    member, other = t.member(), t.member()
    for i in range(12):
        t.earn(member, 10 + i)
        if i % 3 == 0:
            t.spend(member, 5)
            t.earn(other, 1)  # someone else's transactions never show up
    everything = _history(t, member, limit=500)
    assert len(everything) == 12 + 4
    assert [i["id"] for i in everything] == sorted((i["id"] for i in everything), reverse=True)
    for limit in (1, 5, 16):
        seen: list[dict[str, Any]] = []
        cursor = None
        pages = 0
        while True:
            params: dict[str, Any] = {"limit": limit}
            if cursor:
                params["cursor"] = cursor
            page = t.get(f"/v1/members/{member}/history", **params).json()
            seen.extend(page["items"])
            pages += 1
            cursor = page["next_cursor"]
            if cursor is None:
                break
            assert len(page["items"]) == limit
        assert seen == everything
        assert pages == -(-len(everything) // limit)  # never an empty last page
    # the points of each item, summed, are the balance
    assert sum(i["points"] for i in everything) == t.available(member)


def test_history_filters_by_kind_and_time(api: Api) -> None:
    t = api.tenant()
    member = t.member()
    days = []
    for day in range(4):
        days.append(api.clock.now())
        t.earn(member, 100)
        t.spend(member, 10)
        if day == 2:
            t.post(f"/v1/members/{member}/adjustments", {"points": 5, "reason": "x"})
        api.clock.advance(days=1)
    spends = _history(t, member, type="spend")
    assert [i["kind"] for i in spends] == ["spend"] * 4
    assert all(i["points"] == -10 for i in spends)
    mixed = _history(t, member, type=["spend", "adjust"])
    assert sorted(i["kind"] for i in mixed) == ["adjust"] + ["spend"] * 4
    window = _history(t, member, since=days[1].isoformat(), until=days[3].isoformat())
    assert {i["created_at"] for i in window} == {
        days[1].isoformat().replace("+00:00", "Z"),
        days[2].isoformat().replace("+00:00", "Z"),
    }
    assert len(window) == 5  # earn + spend on day 1; earn + spend + adjust on day 2
    # since is inclusive, until exclusive; a zone other than UTC means the same instant
    shanghai = (days[1] + timedelta(hours=8)).strftime("%Y-%m-%dT%H:%M:%S+08:00")
    assert _history(t, member, since=shanghai, until=days[2].isoformat()) == window[-2:]
    assert _history(t, member, since=days[3].isoformat(), type="adjust") == []
    # filters and pages together
    page = t.get(f"/v1/members/{member}/history", type="earn", limit=3).json()
    rest = t.get(
        f"/v1/members/{member}/history", type="earn", limit=3, cursor=page["next_cursor"]
    ).json()
    assert [i["kind"] for i in page["items"] + rest["items"]] == ["earn"] * 4
    assert rest["next_cursor"] is None


def test_history_shows_each_bucket_of_a_hold(api: Api) -> None:
    t = api.tenant()
    member = t.member()
    t.earn(member, 100)
    hold = t.hold(member, 30)
    t.post(f"/v1/holds/{hold['id']}/capture", {"points": 20})
    capture, held, earn = _history(t, member)
    assert (held["kind"], held["points"], held["available"], held["held"]) == ("hold", 0, -30, 30)
    assert (capture["kind"], capture["points"]) == ("capture", -20)
    assert (capture["available"], capture["held"]) == (10, -30)
    assert capture["hold_id"] == held["hold_id"] == hold["id"]
    assert earn["points"] == 100


def test_get_a_transaction(api: Api) -> None:
    t = api.tenant()
    member = t.member()
    earned = t.earn(member, 10, reason="welcome").json()["transaction"]
    for scope in Scope:
        response = t.get(f"/v1/transactions/{earned['id']}", scope=scope)
        assert response.status_code == 200
        assert response.json() == earned


def test_reversing_a_capture_and_a_transfer(api: Api) -> None:
    t = api.tenant(allow_transfers=True, expiry_policy=YEARLY)
    member, friend = t.member(), t.member()
    t.earn(member, 100)
    lots_before = t.lots(member)
    hold = t.hold(member, 40)
    captured = t.post(f"/v1/holds/{hold['id']}/capture", {"points": 30}).json()
    assert captured["balance"]["available"] == 70
    undone = t.post(
        f"/v1/transactions/{captured['transaction']['id']}/reversal", {"reason": "returned goods"}
    )
    assert undone.status_code == 201, undone.text
    assert undone.json()["balance"]["available"] == 100
    assert t.lots(member) == lots_before
    sent = t.post(
        "/v1/transfers", {"from_member_id": member, "to_member_id": friend, "points": 60}
    ).json()
    back = t.post(f"/v1/transactions/{sent['transaction']['id']}/reversal", {"reason": "x"})
    assert back.status_code == 201, back.text
    assert (t.available(member), t.available(friend)) == (100, 0)
    assert t.lots(member) == lots_before
    assert [lot["status"] for lot in t.lots(friend)] == ["cancelled"]


def test_a_frozen_members_transactions_can_still_be_reversed(api: Api) -> None:
    t = api.tenant()
    member = t.member()
    t.earn(member, 100)
    spent = t.spend(member, 40).json()["transaction"]["id"]
    t.set_status(member, "frozen")
    response = t.post(f"/v1/transactions/{spent}/reversal", {"reason": "correction"})
    assert response.status_code == 201, response.text
    assert response.json()["balance"]["available"] == 100


def test_a_return_of_pending_points_is_not_refused_for_an_existing_debt(api: Api) -> None:
    t = api.tenant(allow_negative_balance=True, pending_days=7)
    member = t.member()
    pending = t.earn(member, 287).json()["transaction"]["id"]
    earned = t.earn(member, 160, pending=False).json()["transaction"]["id"]
    t.spend(member, 160)
    debt = t.post(f"/v1/transactions/{earned}/reversal", {"reason": "chargeback"})
    assert debt.json()["balance"]["available"] == -160
    # the return takes only pending points: no available points needed, the debt stays
    response = t.post(
        f"/v1/transactions/{pending}/reversal", {"reason": "returned", "allow_debt": False}
    )
    assert response.status_code == 201, response.text
    balance = response.json()["balance"]
    assert (balance["available"], balance["pending"], balance["lifetime_earned"]) == (-160, 0, 0)
