"""Holds over HTTP: authorise, capture whole or part, void, and lapse at the deadline."""

from __future__ import annotations

from datetime import timedelta

from api.harness import Api, assert_problem
from jifen.access.service import Scope

YEARLY = {"kind": "after_months", "months": 12}


def test_authorise_sets_points_aside(api: Api) -> None:
    t = api.tenant()
    member = t.member()
    t.earn(member, 100)
    response = t.post(
        "/v1/holds", {"member_id": member, "points": 30, "reference": "cart-1"}, scope=Scope.POS
    )
    assert response.status_code == 201, response.text
    hold = response.json()
    assert hold["status"] == "active"
    assert (hold["amount"], hold["captured"], hold["reference"]) == (30, 0, "cart-1")
    # the programme's default deadline: 30 minutes
    assert hold["expires_at"] == "2026-01-15T02:30:00Z"
    balance = t.get(f"/v1/members/{member}/balance").json()
    assert (balance["available"], balance["held"]) == (70, 30)
    assert t.get(f"/v1/holds/{hold['id']}", scope=Scope.READ).json() == hold
    # held points cannot be spent twice
    assert_problem(
        t.post(f"/v1/members/{member}/spend", {"points": 71}), 409, "insufficient-points"
    )


def test_deadline_by_minutes_or_instant(api: Api) -> None:
    t = api.tenant(hold_minutes=5)
    member = t.member()
    t.earn(member, 100)
    assert t.hold(member, 1)["expires_at"] == "2026-01-15T02:05:00Z"
    assert t.hold(member, 1, expires_in_minutes=90)["expires_at"] == "2026-01-15T03:30:00Z"
    at = t.hold(member, 1, expires_at="2026-01-15T12:00:00+08:00")
    assert at["expires_at"] == "2026-01-15T04:00:00Z"


def test_capture_the_whole_hold(api: Api) -> None:
    t = api.tenant()
    member = t.member()
    t.earn(member, 100)
    hold = t.hold(member, 40)
    response = t.post(f"/v1/holds/{hold['id']}/capture", scope=Scope.APP)
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["hold"]["status"], body["hold"]["captured"]) == ("captured", 40)
    assert body["hold"]["closed_at"] == "2026-01-15T02:00:00Z"
    assert (body["transaction"]["kind"], body["transaction"]["points"]) == ("capture", 40)
    assert (body["balance"]["available"], body["balance"]["held"]) == (60, 0)
    assert t.get(f"/v1/holds/{hold['id']}").json() == body["hold"]


def test_capture_part_returns_the_rest_to_the_latest_expiring_lots(api: Api) -> None:
    t = api.tenant(expiry_policy=YEARLY)
    member = t.member()
    t.earn(member, 50)
    api.clock.advance(days=30)
    t.earn(member, 50)
    hold = t.hold(member, 80)  # 50 from the first lot, 30 from the second
    response = t.post(f"/v1/holds/{hold['id']}/capture", {"points": 60, "reference": "pos-7"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["hold"]["captured"], body["hold"]["amount"]) == (60, 80)
    assert (body["balance"]["available"], body["balance"]["held"]) == (40, 0)
    assert body["transaction"]["reference"] == "pos-7"
    first, second = t.lots(member)
    # what was spent is the earliest-expiring part: the first lot whole, 10 of the second
    assert (first["remaining"], second["remaining"]) == (0, 40)


def test_capture_more_than_held_is_refused(api: Api) -> None:
    t = api.tenant()
    member = t.member()
    t.earn(member, 100)
    hold = t.hold(member, 40)
    with api.writes_nothing():
        response = t.post(f"/v1/holds/{hold['id']}/capture", {"points": 41}, lang="en")
        problem = assert_problem(response, 422, "capture-exceeds-hold", amount=41, held=40)
        assert "41" in problem["detail"]
    assert t.get(f"/v1/holds/{hold['id']}").json()["status"] == "active"
    assert t.post(f"/v1/holds/{hold['id']}/capture", {"points": 40}).status_code == 200


def test_void_gives_everything_back(api: Api) -> None:
    t = api.tenant(expiry_policy=YEARLY)
    member = t.member()
    t.earn(member, 100)
    lots_before = t.lots(member)
    hold = t.hold(member, 70)
    response = t.post(f"/v1/holds/{hold['id']}/void", scope=Scope.POS)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["hold"]["status"] == "voided"
    assert body["transaction"]["kind"] == "void"
    assert (body["balance"]["available"], body["balance"]["held"]) == (100, 0)
    assert t.lots(member) == lots_before


def test_a_closed_hold_cannot_be_captured_or_voided_again(api: Api) -> None:
    t = api.tenant()
    member = t.member()
    t.earn(member, 100)
    captured = t.hold(member, 10)["id"]
    voided = t.hold(member, 10)["id"]
    assert t.post(f"/v1/holds/{captured}/capture").status_code == 200
    assert t.post(f"/v1/holds/{voided}/void").status_code == 200
    with api.writes_nothing():
        for hold, status in ((captured, "captured"), (voided, "voided")):
            for action in ("capture", "void"):
                response = t.post(f"/v1/holds/{hold}/{action}", lang="en")
                problem = assert_problem(response, 409, "hold-not-active", hold_id=hold)
                assert status in problem["detail"]
    assert t.available(member) == 90


def test_capture_after_the_deadline_is_hold_expired(api: Api) -> None:
    t = api.tenant()
    member = t.member()
    t.earn(member, 100)
    hold = t.hold(member, 40, expires_in_minutes=10)
    api.clock.advance(minutes=9, seconds=59)
    assert t.get(f"/v1/holds/{hold['id']}").json()["status"] == "active"
    api.clock.advance(seconds=1)
    for action in ("capture", "void"):
        response = t.post(f"/v1/holds/{hold['id']}/{action}", lang="en")
        problem = assert_problem(response, 409, "hold-expired", hold_id=hold["id"])
        assert "expired" in problem["detail"]
    # the points are back, with nothing spent
    balance = t.get(f"/v1/members/{member}/balance").json()
    assert (balance["available"], balance["held"]) == (100, 0)
    assert t.get(f"/v1/holds/{hold['id']}").json()["status"] == "lapsed"


def test_a_hold_lapses_on_the_next_read(api: Api) -> None:
    t = api.tenant()
    member = t.member()
    t.earn(member, 100)
    hold = t.hold(member, 40)
    api.clock.advance(minutes=31)
    read = t.get(f"/v1/holds/{hold['id']}").json()
    assert read["status"] == "lapsed"
    assert read["closed_at"] is not None
    balance = t.get(f"/v1/members/{member}/balance").json()
    assert (balance["available"], balance["held"]) == (100, 0)
    kinds = [i["kind"] for i in t.get(f"/v1/members/{member}/history").json()["items"]]
    assert kinds == ["lapse", "hold", "earn"]


def test_the_lapse_job_returns_due_holds(api: Api) -> None:
    t = api.tenant()
    members = [t.member() for _ in range(3)]
    for member in members:
        t.earn(member, 100)
    holds = [t.hold(member, 25) for member in members]
    t.hold(members[0], 25, expires_in_minutes=120)  # not due yet
    api.clock.advance(minutes=45)
    ran = t.post("/v1/jobs/lapse")
    assert ran.status_code == 200, ran.text
    assert (ran.json()["items"], ran.json()["points"], ran.json()["accounts"]) == (3, 75, 3)
    assert [t.balance(m).held for m in members] == [25, 0, 0]
    assert {t.get(f"/v1/holds/{h['id']}").json()["status"] for h in holds} == {"lapsed"}
    assert t.post("/v1/jobs/lapse").json()["items"] == 0


def test_frozen_members_hold_can_be_voided_and_lapses(api: Api) -> None:
    t = api.tenant()
    member = t.member()
    t.earn(member, 100)
    voided = t.hold(member, 10)["id"]
    lapsing = t.hold(member, 20)["id"]
    t.set_status(member, "frozen")
    assert_problem(t.post(f"/v1/holds/{voided}/capture"), 409, "member-frozen")
    assert t.post(f"/v1/holds/{voided}/void").status_code == 200
    api.clock.advance(timedelta(hours=1))
    assert t.post("/v1/jobs/lapse").json()["items"] == 1
    assert t.get(f"/v1/holds/{lapsing}").json()["status"] == "lapsed"
    balance = t.get(f"/v1/members/{member}/balance").json()
    assert (balance["available"], balance["held"]) == (100, 0)
