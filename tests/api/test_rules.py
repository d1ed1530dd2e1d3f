"""Rules over HTTP: versions, If-Match, scopes, tenants kept apart, problem details; and
the stores and channels rules may name."""

from __future__ import annotations

import copy
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from api.harness import Api, Tenant, assert_problem
from jifen.access.service import Scope
from jifen.programs.apply import apply
from jifen.programs.config import load_program_file
from jifen.programs.models import RuleSetVersion
from jifen.programs.service import get_program

REPLAYED = "Idempotent-Replayed"

DOUBLE_DAY = {
    "earning_rules": [
        {"id": "base", "name": "1 元 = 1 积分", "effect": {"points_per_amount": "1"}},
        {
            "id": "member-day",
            "name": "会员日双倍",
            "when": {"days_of_month": [8], "hours": {"from": "10:00", "to": "22:00"}},
            "effect": {"multiplier": 2},
        },
    ],
    "event_rules": [{"type": "sign_up", "name": "注册", "points": 100}],
}


def put_rules(
    t: Tenant,
    body: Any,
    *,
    if_match: str | None = None,
    idem: str | bool = True,
    scope: Scope = Scope.ADMIN,
    lang: str | None = None,
) -> httpx.Response:
    headers = t._headers(scope, None, idem, lang)
    if if_match is not None:
        headers["If-Match"] = if_match
    response: httpx.Response = t.api.client.put("/v1/rules", json=body, headers=headers)
    return response


def versions(t: Tenant) -> int:
    return t.api.db.read(
        lambda s: s.execute(
            select(func.count())
            .select_from(RuleSetVersion)
            .where(RuleSetVersion.program_id == t.book.program_id)
        ).scalar_one()
    )


def test_a_new_programme_has_version_1_with_the_default_rules(api: Api) -> None:
    t = api.tenant()
    response = t.get("/v1/rules", scope=Scope.READ)
    assert response.status_code == 200, response.text
    assert response.headers["ETag"] == '"1"'
    body = response.json()
    assert (body["version"], body["actor"], body["created_at"]) == (
        1,
        "system",
        "2026-01-15T02:00:00Z",
    )
    rules = body["rules"]
    assert rules["earning_rules"] == []
    assert [rule["id"] for rule in rules["growth_rules"]] == ["growth"]
    assert rules["growth_rules"][0]["effect"]["points_per_amount"] == "1"
    assert rules["birthday"] is None
    assert t.get("/v1/rules/versions/1", scope=Scope.READ).json() == body


def test_put_makes_a_new_version_and_keeps_the_old_one(api: Api) -> None:
    t = api.tenant()
    first = t.get("/v1/rules").json()
    api.clock.advance(hours=1)
    response = put_rules(t, DOUBLE_DAY)
    assert response.status_code == 200, response.text
    assert response.headers["ETag"] == '"2"'
    saved = response.json()
    assert (saved["version"], saved["created"], saved["created_at"]) == (
        2,
        True,
        "2026-01-15T03:00:00Z",
    )
    assert saved["actor"].startswith("key:")
    rules = saved["rules"]
    assert [rule["id"] for rule in rules["earning_rules"]] == ["base", "member-day"]
    # by the names PUT takes (from/to), with every default filled in
    assert rules["earning_rules"][1]["when"]["hours"] == {"from": "10:00:00", "to": "22:00:00"}
    assert rules["earning_rules"][1]["stacking"] == "stack"
    # growth_rules were left out: the default
    assert rules["growth_rules"] == first["rules"]["growth_rules"]

    current = t.get("/v1/rules")
    assert current.headers["ETag"] == '"2"'
    assert current.json() == {k: v for k, v in saved.items() if k != "created"}
    assert t.get("/v1/rules/versions/1").json() == first
    assert versions(t) == 2


def test_the_same_rules_make_no_new_version(api: Api) -> None:
    t = api.tenant()
    put_rules(t, DOUBLE_DAY)
    # what GET answers, sent back as it is, and the short form again: no change either way
    for body in (t.get("/v1/rules").json()["rules"], DOUBLE_DAY):
        response = put_rules(t, body)
        assert response.status_code == 200, response.text
        assert response.json()["created"] is False
        assert response.json()["version"] == 2
        assert response.headers["ETag"] == '"2"'
    assert versions(t) == 2


def test_if_match(api: Api) -> None:
    t = api.tenant()
    assert put_rules(t, DOUBLE_DAY, if_match='"1"').json()["version"] == 2
    changed = copy.deepcopy(DOUBLE_DAY)
    changed["earning_rules"][1]["effect"] = {"multiplier": 3}
    # an editor who read version 1 would overwrite version 2 unknowingly: refused
    for stale in ('"1"', "1", 'W/"1"', '"1", "3"'):
        with api.writes_nothing():
            problem = assert_problem(
                put_rules(t, changed, if_match=stale, lang="en"),
                412,
                "rules-version-mismatch",
                current_version=2,
            )
        assert "current version is 2" in problem["detail"]
    # also when the rules sent equal the current ones: the precondition comes first
    assert_problem(put_rules(t, DOUBLE_DAY, if_match='"1"'), 412, "rules-version-mismatch")
    zh = assert_problem(put_rules(t, changed, if_match='"1"'), 412, "rules-version-mismatch")
    assert "规则已被他人修改" in zh["detail"]
    # a malformed If-Match is not a version at all
    with api.writes_nothing():
        assert_problem(
            put_rules(t, changed, if_match="latest"), 422, "invalid-input", field="If-Match"
        )
    # the right version, a list holding it, or any version
    assert put_rules(t, changed, if_match='"2"').json()["version"] == 3
    changed["earning_rules"][1]["effect"] = {"multiplier": 4}
    assert put_rules(t, changed, if_match='"1", "3"').json()["version"] == 4
    changed["earning_rules"][1]["effect"] = {"multiplier": 5}
    assert put_rules(t, changed, if_match="*").json()["version"] == 5
    assert versions(t) == 5


def test_put_is_idempotent(api: Api) -> None:
    t = api.tenant()
    first = put_rules(t, DOUBLE_DAY, idem="rules-1")
    assert first.status_code == 200
    assert REPLAYED not in first.headers
    with api.writes_nothing():
        again = put_rules(t, DOUBLE_DAY, idem="rules-1", if_match='"1"')  # stale by now
        assert again.status_code == 200
        assert again.headers[REPLAYED] == "true"
        assert again.headers["ETag"] == '"2"'
        assert again.json() == first.json()
        other = {"earning_rules": DOUBLE_DAY["earning_rules"][:1]}
        assert_problem(put_rules(t, other, idem="rules-1"), 422, "idempotency-key-reused")
        assert_problem(put_rules(t, DOUBLE_DAY, idem=False), 400, "idempotency-key-missing")
    assert versions(t) == 2


@pytest.mark.parametrize(
    ("body", "field", "fragment"),
    [
        (
            {"earning_rules": [{"id": "x", "name": "x", "effect": {"bonus": 5, "multiplier": 2}}]},
            "earning_rules.0.effect",
            "give exactly one of points_per_amount",
        ),
        (
            {"earning_rules": [{"id": "x", "name": "x", "efect": {"bonus": 5}}]},
            "earning_rules.0.efect",
            "Extra inputs are not permitted",
        ),
        (
            {"event_rules": [{"type": "check_in", "name": "签到", "limit": {"per": "fortnight"}}]},
            "event_rules.0.limit.per",
            "Input should be",
        ),
        ({"tiers": []}, "tiers", "Extra inputs are not permitted"),
        (
            {
                "earning_rules": [
                    {"id": "x", "name": "x", "effect": {"bonus": 1}, "when": {"store": ["sh-1"]}}
                ]
            },
            "earning_rules.0.when.store.0",
            "no store 'sh-1' in this programme",
        ),
        (
            {
                "earning_rules": [
                    {
                        "id": "x",
                        "name": "x",
                        "effect": {"bonus": 1},
                        "when": {"channel": ["wechat"]},
                    }
                ]
            },
            "earning_rules.0.when.channel.0",
            "no channel 'wechat' in this programme",
        ),
        ([], "body", "valid dictionary"),
    ],
)
def test_invalid_rules_are_422_naming_the_field(
    api: Api, body: Any, field: str, fragment: str
) -> None:
    t = api.tenant()
    t.all_keys()
    with api.writes_nothing():
        problem = assert_problem(put_rules(t, body, lang="en"), 422, "invalid-input")
    # request validation lists every field it refused; the first is the problem's `field`
    errors = problem.get("errors", [{"field": problem["field"], "message": problem["reason"]}])
    assert errors[0]["field"] == problem["field"]
    assert any(e["field"] == field and fragment in e["message"] for e in errors), problem


def test_scopes(api: Api) -> None:
    t = api.tenant()
    keys = t.all_keys()
    for scope in Scope:
        assert t.get("/v1/rules", key=keys[scope]).status_code == 200
        assert t.get("/v1/rules/versions/1", key=keys[scope]).status_code == 200
        assert t.get("/v1/stores", key=keys[scope]).status_code == 200
        assert t.get("/v1/channels", key=keys[scope]).status_code == 200
        if scope == Scope.ADMIN:
            continue
        with api.writes_nothing():
            assert_problem(put_rules(t, DOUBLE_DAY, scope=scope), 403, "forbidden", needed="admin")
    bad = {"Authorization": "Bearer jf_nope_nope", "Idempotency-Key": "k"}
    with api.writes_nothing():
        for response in (
            api.client.get("/v1/rules", headers=bad),
            api.client.put("/v1/rules", json=DOUBLE_DAY, headers=bad),
            api.client.put("/v1/rules", json=DOUBLE_DAY),
        ):
            assert_problem(response, 401, "unauthorized")


def test_tenants_are_kept_apart(api: Api) -> None:
    a, b = api.tenant(), api.tenant()
    put_rules(a, DOUBLE_DAY)
    put_rules(a, {"earning_rules": DOUBLE_DAY["earning_rules"][:1]})
    assert b.get("/v1/rules").json()["version"] == 1
    assert b.get("/v1/rules").json()["rules"]["earning_rules"] == []
    assert_problem(b.get("/v1/rules/versions/2"), 404, "not-found")
    assert a.get("/v1/rules/versions/2").status_code == 200
    # B's If-Match is checked against B's own version, not A's
    assert_problem(put_rules(b, DOUBLE_DAY, if_match='"3"'), 412, "rules-version-mismatch")
    assert put_rules(b, DOUBLE_DAY, if_match='"1"').json()["version"] == 2
    assert a.get("/v1/rules").json()["version"] == 3


def test_unknown_versions(api: Api) -> None:
    t = api.tenant()
    assert_problem(t.get("/v1/rules/versions/2"), 404, "not-found")
    for bad in ("0", "-1", "x", str(2**31)):
        assert_problem(t.get(f"/v1/rules/versions/{bad}"), 422, "invalid-input", field="version")


def test_stores_and_channels(api: Api) -> None:
    t = api.tenant()
    channels = t.get("/v1/channels", scope=Scope.READ).json()
    assert [(c["code"], c["kind"], c["active"]) for c in channels] == [
        ("app", "app", True),
        ("mini_program", "mini_program", True),
        ("pos", "pos", True),
        ("store", "store", True),
        ("web", "web", True),
    ]
    assert t.get("/v1/stores").json() == []

    code = api.db.read(lambda s: get_program(s, t.book.program_id).code)
    text = f"""\
program: {{code: {code}, name: 测试计划}}
stores:
  - {{code: sh-001, name: 上海店, region: 华东}}
channels:
  - {{code: pos, name: 收银台, kind: pos}}
  - {{code: wechat, name: 微信小程序, kind: mini_program}}
"""
    loaded = load_program_file(text)
    api.db.write(lambda s: apply(s, loaded, now=api.clock.now(), actor="test"))
    assert t.get("/v1/stores").json() == [
        {"code": "sh-001", "name": "上海店", "region": "华东", "active": True}
    ]
    assert [(c["code"], c["active"]) for c in t.get("/v1/channels").json()] == [
        ("app", False),
        ("mini_program", False),
        ("pos", True),
        ("store", False),
        ("web", False),
        ("wechat", True),
    ]
    # rules may name them now, inactive ones too (history)
    named = {
        "earning_rules": [
            {
                "id": "x",
                "name": "x",
                "effect": {"bonus": 1},
                "when": {"store": ["sh-001"], "channel": ["wechat", "web"]},
            }
        ]
    }
    assert put_rules(t, named).json()["created"] is True
