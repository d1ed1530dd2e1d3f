"""Behaviour events over HTTP: record, read, list; repeats and idempotent replays; every
refusal a problem detail that writes nothing; the birthday job by name."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from api.harness import Api, Tenant, assert_problem
from jifen.access.service import Scope
from jifen.programs.rulesets import save_rules
from jifen.rules.schemas import RuleSet

RULES: dict[str, Any] = {
    "event_rules": [
        {"type": "sign_up", "name": "注册", "points": 100, "growth": 10, "limit": {}},
        {"type": "check_in", "name": "签到", "points": 2, "limit": {"count": 1, "per": "day"}},
        {"type": "review", "name": "评价", "points": 10},
        {
            "type": "task_done",
            "name": "经理奖励",
            "max_points": 50,
            "budget": {"points": 60, "per": "manager"},
        },
    ],
    "birthday": {"points": 88, "window": "day"},
}


def with_rules(api: Api, rules: dict[str, Any] | None = None, **settings: Any) -> Tenant:
    t = api.tenant(**settings)
    rule_set = RuleSet.model_validate(rules or RULES)
    api.db.write(
        lambda s: save_rules(s, t.book.program_id, rule_set, now=api.clock.now(), actor="test")
    )
    return t


def event(member: int, event_type: str = "review", external_id: str = "ev-1", **body: Any) -> Any:
    return {"type": event_type, "member": {"id": member}, "external_id": external_id, **body}


def test_record_and_read_an_event(api: Api) -> None:
    t = with_rules(api)
    member = t.member()
    response = t.post("/v1/events", event(member, "sign_up", "signup-1"), scope=Scope.APP)
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["status"] == "awarded"
    assert (body["points"], body["growth"], body["type"]) == (100, 10, "sign_up")
    assert body["member_id"] == member
    assert body["external_id"] == "signup-1"
    assert body["reason"] is None
    assert body["repeat"] is False
    assert body["actor"].startswith("key:")
    assert body["points_transaction_id"]
    assert body["growth_transaction_id"]
    assert datetime.fromisoformat(body["occurred_at"]) == api.clock.now()
    balance = t.balance(member)
    assert (balance.available, balance.growth_value) == (100, 10)
    read = t.get(f"/v1/events/{body['id']}", scope=Scope.READ)
    assert read.status_code == 200
    assert read.json() == body
    txn = t.get(f"/v1/transactions/{body['points_transaction_id']}").json()
    assert txn["reference"] == f"event:{body['id']}"
    assert txn["reason"] == "注册"


def test_by_phone_with_a_time_and_attributes(api: Api) -> None:
    t = with_rules(api)
    member = t.member(phone="13811112222")
    when = (api.clock.now() - timedelta(days=2)).astimezone(UTC)
    body = {
        "type": "review",
        "member": {"phone": "138-1111-2222"},
        "external_id": "rv-9",
        "occurred_at": when.isoformat().replace("+00:00", "+08:00"),
        "attributes": {"sku": "A-1", "stars": "5"},
    }
    response = t.post("/v1/events", body, scope=Scope.POS)
    assert response.status_code == 201, response.text
    out = response.json()
    assert out["member_id"] == member
    assert datetime.fromisoformat(out["occurred_at"]) == when - timedelta(hours=8)
    assert out["attributes"] == {"sku": "A-1", "stars": "5"}


def test_once_ever_is_limited_with_a_reason(api: Api) -> None:
    t = with_rules(api)
    member = t.member()
    assert t.post("/v1/events", event(member, "sign_up", "a")).json()["status"] == "awarded"
    second = t.post("/v1/events", event(member, "sign_up", "b"))
    assert second.status_code == 201
    body = second.json()
    assert (body["status"], body["points"], body["growth"]) == ("limited", 0, 0)
    assert body["reason"] == "over the limit of once ever for sign_up: nothing given"
    assert body["points_transaction_id"] is None
    assert t.available(member) == 100


def test_daily_limit_in_local_days(api: Api) -> None:
    t = with_rules(api)
    member = t.member()
    # START is 10:00 in Shanghai on 15 January; 23:59 that day and 00:01 the next
    api.clock.set(datetime(2026, 1, 15, 16, 30, tzinfo=UTC))  # 00:30 on the 16th
    late = datetime(2026, 1, 15, 15, 59, tzinfo=UTC).isoformat()
    early = datetime(2026, 1, 15, 16, 1, tzinfo=UTC).isoformat()
    statuses = [
        t.post("/v1/events", event(member, "check_in", ext, occurred_at=at)).json()["status"]
        for ext, at in [("c1", late), ("c2", early), ("c3", late), ("c4", early)]
    ]
    assert statuses == ["awarded", "awarded", "limited", "limited"]


def test_a_repeated_external_id_is_the_first_result_and_an_idempotent_replay(api: Api) -> None:
    t = with_rules(api)
    member = t.member()
    first = t.post("/v1/events", event(member), idem="till-1")
    assert first.status_code == 201
    replay = t.post("/v1/events", event(member), idem="till-1")
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert replay.json() == first.json()
    again = t.post("/v1/events", event(member), idem="till-2")
    assert again.status_code == 201
    assert again.json() == {**first.json(), "repeat": True}
    assert t.available(member) == 10
    listed = t.get(f"/v1/members/{member}/events").json()
    assert len(listed["items"]) == 1


def test_budget_per_manager(api: Api) -> None:
    t = with_rules(api)
    member = t.member()

    def reward(ext: str, points: int, manager: str) -> tuple[str, int]:
        body = event(member, "task_done", ext, points=points, attributes={"manager": manager})
        response = t.post("/v1/events", body)
        assert response.status_code == 201, response.text
        return response.json()["status"], response.json()["points"]

    assert reward("t1", 50, "wang") == ("awarded", 50)
    assert reward("t2", 50, "wang") == ("budget", 10)
    assert reward("t3", 50, "li") == ("awarded", 50)
    short = t.get(f"/v1/members/{member}/events", type="task_done").json()["items"][1]
    assert (
        short["reason"]
        == "the task_done budget (60 points in total per manager) had only 10 points left"
    )
    assert t.available(member) == 110


def test_member_events_pages_and_filters(api: Api) -> None:
    t = with_rules(api)
    member, other = t.member(), t.member()
    ids = [
        t.post("/v1/events", event(member, kind, f"e{i}")).json()["id"]
        for i, kind in enumerate(["review", "check_in", "review", "review", "sign_up"])
    ]
    t.post("/v1/events", event(other, "review", "x"))
    seen: list[int] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 2}
        if cursor:
            params["cursor"] = cursor
        page = t.get(f"/v1/members/{member}/events", scope=Scope.READ, **params).json()
        seen += [item["id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == ids[::-1]
    reviews = t.get(f"/v1/members/{member}/events", type="review").json()["items"]
    assert [item["id"] for item in reviews] == [ids[3], ids[2], ids[0]]
    both = t.get(f"/v1/members/{member}/events", type=["check_in", "sign_up"]).json()["items"]
    assert [item["id"] for item in both] == [ids[4], ids[1]]


# -- refusals ---------------------------------------------------------------------------------


def test_bad_input_is_a_problem_and_writes_nothing(api: Api) -> None:
    t = with_rules(api)
    member = t.member()
    t.post("/v1/events", event(member, "review", "taken"))
    now = api.clock.now()
    cases: list[tuple[Any, int, str, dict[str, Any]]] = [
        (event(member, "survey_completed"), 422, "invalid-input", {"field": "type"}),
        (event(member, "birthday"), 422, "invalid-input", {"field": "type"}),
        (event(member, "Review"), 422, "invalid-input", {"field": "type"}),
        (event(member, external_id="birthday:1:2026"), 422, "invalid-input", {}),
        (event(member, external_id=""), 422, "invalid-input", {"field": "external_id"}),
        (event(member, external_id="  "), 422, "invalid-input", {"field": "external_id"}),
        (event(member, external_id="x" * 129), 422, "invalid-input", {"field": "external_id"}),
        (event(member, points=5), 422, "invalid-input", {"field": "points"}),
        (
            event(member, "task_done", points=51, attributes={"manager": "w"}),
            422,
            "invalid-input",
            {"field": "points"},
        ),
        (
            event(member, "task_done", points="5", attributes={"manager": "w"}),
            422,
            "invalid-input",
            {"field": "points"},
        ),
        (
            event(member, "task_done", points=5),
            422,
            "invalid-input",
            {"field": "attributes.manager"},
        ),
        (event(member, attributes={"n": 5}), 422, "invalid-input", {"field": "attributes.n"}),
        (
            event(member, occurred_at="2026-01-15T10:00:00"),
            422,
            "invalid-input",
            {"field": "occurred_at"},
        ),
        (
            event(member, occurred_at=(now + timedelta(minutes=6)).isoformat()),
            422,
            "invalid-input",
            {"field": "occurred_at"},
        ),
        (
            event(member, occurred_at=(now - timedelta(days=31)).isoformat()),
            422,
            "invalid-input",
            {"field": "occurred_at"},
        ),
        (event(member, colour="red"), 422, "invalid-input", {"field": "colour"}),
        (
            {"type": "review", "member": {}, "external_id": "m"},
            422,
            "invalid-input",
            {"field": "member"},
        ),
        (
            {
                "type": "review",
                "member": {"id": member, "phone": "13800000000"},
                "external_id": "m",
            },
            422,
            "invalid-input",
            {"field": "member"},
        ),
        (event(424242424242), 404, "not-found", {}),
        (event(member, "check_in", "taken"), 409, "conflict", {}),
        (event(t.member(), "review", "taken"), 409, "conflict", {}),
    ]
    with api.writes_nothing():
        for body, status, code, members in cases:
            response = t.post("/v1/events", body, lang="en")
            assert_problem(response, status, code, **members)
    unknown = t.post("/v1/events", event(member, "survey_completed"), lang="en")
    assert "known types: check_in, review, sign_up, task_done" in unknown.json()["detail"]
    assert unknown.json()["known"] == "check_in, review, sign_up, task_done"


@pytest.mark.parametrize("status", ["frozen", "closed"])
def test_a_frozen_or_closed_member_is_refused(api: Api, status: str) -> None:
    t = with_rules(api)
    member = t.member()
    t.set_status(member, status)
    with api.writes_nothing():
        response = t.post("/v1/events", event(member, "review"))
        assert_problem(response, 409, f"member-{status}", member_id=member)


def test_another_programmes_event_and_member_do_not_exist(api: Api) -> None:
    mine, theirs = with_rules(api), with_rules(api)
    member, mine_member = theirs.member(), mine.member()
    their_event = theirs.post("/v1/events", event(member)).json()["id"]
    with api.writes_nothing():
        assert_problem(mine.get(f"/v1/events/{their_event}"), 404, "not-found")
        assert_problem(mine.get(f"/v1/members/{member}/events"), 404, "not-found")
        assert_problem(mine.post("/v1/events", event(member, external_id="z")), 404, "not-found")
        assert_problem(mine.get("/v1/events/0"), 422, "invalid-input")
        assert_problem(
            mine.get(f"/v1/members/{mine_member}/events", cursor="bm9wZQ"), 422, "invalid-input"
        )
    # their external id is theirs alone: the same id in my programme is another event
    assert mine.post("/v1/events", event(mine_member)).status_code == 201


def test_read_keys_cannot_record(api: Api) -> None:
    t = with_rules(api)
    member = t.member()
    t.all_keys()
    with api.writes_nothing():
        response = t.post("/v1/events", event(member), scope=Scope.READ)
        assert_problem(response, 403, "forbidden", needed="admin, pos, app")


# -- the birthday job -------------------------------------------------------------------------


def test_the_birthday_job_by_name(api: Api) -> None:
    t = with_rules(api)
    api.clock.set(datetime(2026, 3, 9, 16, 30, tzinfo=UTC))  # 00:30 on 10 March in Shanghai
    member = t.member(birthday=date(1990, 3, 10))
    t.member(birthday=date(1990, 3, 9))
    t.all_keys()
    first = t.post("/v1/jobs/birthday")
    assert first.status_code == 200, first.text
    assert first.json() == {
        "job": "birthday",
        "batches": 1,
        "accounts": 1,
        "items": 1,
        "points": 88,
    }
    assert t.post("/v1/jobs/birthday").json()["items"] == 0
    assert t.available(member) == 88
    [item] = t.get(f"/v1/members/{member}/events").json()["items"]
    assert (item["type"], item["external_id"]) == ("birthday", f"birthday:{member}:2026")
    with api.writes_nothing():
        assert_problem(t.post("/v1/jobs/birthday", scope=Scope.POS), 403, "forbidden")
