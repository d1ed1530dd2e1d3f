"""Ledger jobs on demand (`POST /v1/jobs/{name}`, admin keys): expire, release, lapse;
each does what is due at the service's time, and running it again does nothing more."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from api.harness import Api, assert_problem
from jifen.access.service import Scope

MONTHLY = {"kind": "after_months", "months": 1}


def test_expire_after_the_clock_passes_a_lots_expiry(api: Api) -> None:
    t = api.tenant(expiry_policy=MONTHLY)
    a, b = t.member(), t.member()
    t.earn(a, 100)
    t.spend(a, 30)
    t.earn(b, 50)
    api.clock.advance(days=20)
    t.earn(b, 25)  # expires 20 days later than the rest
    # nothing is due yet
    assert t.post("/v1/jobs/expire").json() == {
        "job": "expire",
        "batches": 0,
        "accounts": 0,
        "items": 0,
        "points": 0,
    }
    api.clock.set(datetime(2026, 2, 15, 16, 0, tzinfo=UTC))  # end of 15 February, Shanghai
    response = t.post("/v1/jobs/expire")
    assert response.status_code == 200, response.text
    report = response.json()
    assert report["job"] == "expire"
    assert (report["accounts"], report["items"], report["points"]) == (2, 2, 120)
    assert report["batches"] >= 1
    assert (t.balance(a).available, t.balance(b).available) == (0, 25)
    expired = t.get(f"/v1/members/{a}/history", type="expire").json()["items"]
    assert [(i["points"], i["actor"]) for i in expired] == [(-70, "job:expire")]
    assert [lot["status"] for lot in t.lots(b)] == ["expired", "available"]
    # lifetime earnings are history: expiry does not take them back
    assert t.balance(a).lifetime_earned == 100
    # again: nothing more to do
    again = t.post("/v1/jobs/expire").json()
    assert (again["accounts"], again["items"], again["points"]) == (0, 0, 0)
    assert (t.balance(a).available, t.balance(b).available) == (0, 25)
    assert len(t.get(f"/v1/members/{a}/history", type="expire").json()["items"]) == 1


def test_release_makes_pending_points_available(api: Api) -> None:
    t = api.tenant(pending_days=3)
    members = [t.member() for _ in range(4)]
    for i, member in enumerate(members):
        t.earn(member, 10 * (i + 1))
    api.clock.advance(days=1)
    t.earn(members[0], 5)  # released a day later
    api.clock.set(datetime(2026, 1, 18, 16, 0, tzinfo=UTC))  # local midnight, 19 January
    report = t.post("/v1/jobs/release").json()
    assert (report["accounts"], report["items"], report["points"]) == (4, 4, 100)
    assert [t.balance(m).available for m in members] == [10, 20, 30, 40]
    assert t.balance(members[0]).pending == 5
    assert t.post("/v1/jobs/release").json()["items"] == 0
    api.clock.advance(days=1)
    assert t.post("/v1/jobs/release").json()["points"] == 5
    assert t.balance(members[0]).available == 15


def test_lapse_only_returns_holds_past_their_deadline(api: Api) -> None:
    t = api.tenant()
    member = t.member()
    t.earn(member, 100)
    t.hold(member, 10, expires_in_minutes=10)
    t.hold(member, 20, expires_in_minutes=60)
    api.clock.advance(minutes=30)
    report = t.post("/v1/jobs/lapse").json()
    assert (report["items"], report["points"]) == (1, 10)
    balance = t.balance(member)
    assert (balance.available, balance.held) == (80, 20)
    assert t.post("/v1/jobs/lapse").json()["items"] == 0


@pytest.mark.parametrize("name", ["purge", "EXPIRE", "expire-all", "%20"])
def test_an_unknown_job_is_a_problem(api: Api, name: str) -> None:
    t = api.tenant()
    with api.writes_nothing():
        response = t.post(f"/v1/jobs/{name}")
        problem = assert_problem(response, 422, "invalid-input", field="name")
        assert "expire" in problem["detail"]


def test_only_admin_keys_run_jobs(api: Api) -> None:
    t = api.tenant(expiry_policy=MONTHLY)
    member = t.member()
    t.earn(member, 10)
    api.clock.advance(days=40)
    t.all_keys()
    with api.writes_nothing():
        for scope in (Scope.POS, Scope.APP, Scope.READ):
            for name in ("expire", "release", "lapse"):
                response = t.post(f"/v1/jobs/{name}", scope=scope)
                assert_problem(response, 403, "forbidden", needed="admin")
    assert t.post("/v1/jobs/expire").json()["points"] == 10
