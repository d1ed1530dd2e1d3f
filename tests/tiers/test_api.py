"""Tiers over HTTP, on both stores: the definition, a member's standing with the exact
amounts missing and the deadline (zh-CN by default, en on request), history, grants
(staff, paid with its reference once, invitation) and revocations, and every refusal a
specific problem that writes nothing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from api.conftest import api, api_db  # noqa: F401 - the API tests' fixtures
from api.harness import Api, Tenant, assert_problem
from jifen.programs.service import get_program
from jifen.programs.tiers import TierPolicy

from .kit import LEVELS, POLICY, local


def _tenant(api: Api, document: dict[str, Any] | None = POLICY) -> Tenant:  # noqa: F811
    t = api.tenant()
    if document is not None:
        stored = TierPolicy.model_validate(document).model_dump(mode="json")

        def set_tiers(session: Any) -> None:
            get_program(session, t.book.program_id).tiers = stored

        api.db.write(set_tiers)
    return t


_orders = iter(range(1, 10**9))


def _buy(t: Tenant, member: int, amount: str) -> dict[str, Any]:
    body = {
        "external_id": f"api-{next(_orders)}",
        "member": {"id": member},
        "occurred_at": t.api.clock.now().isoformat(),
        "channel": "store",
        "lines": [{"sku": "tea", "unit_price": amount}],
        "total": amount,
    }
    response = t.post("/v1/purchases", body)
    assert response.status_code == 201, response.text
    found: dict[str, Any] = response.json()
    return found


def _tier(t: Tenant, member: int, **kw: Any) -> dict[str, Any]:
    response = t.get(f"/v1/members/{member}/tier", **kw)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _history(t: Tenant, member: int) -> list[tuple[str, str, str]]:
    response = t.get(f"/v1/members/{member}/tier/history")
    assert response.status_code == 200, response.text
    return [(i["from_tier"], i["to_tier"], i["reason"]) for i in response.json()["items"]]


def test_the_definition(api: Api) -> None:  # noqa: F811
    t = _tenant(api)
    body = t.get("/v1/tiers").json()
    assert body["configured"] is True
    assert [level["code"] for level in body["policy"]["levels"]] == [
        "normal",
        "silver",
        "gold",
        "platinum",
    ]
    assert body["policy"]["levels"][2]["retain"] == {
        "growth": 4000,
        "spend": None,
        "purchases": None,
    }
    plain = _tenant(api, None)
    assert plain.get("/v1/tiers").json() == {"configured": False, "policy": None}


def test_calendar_standing_says_exactly_what_is_missing_and_by_when(api: Api) -> None:  # noqa: F811
    t = _tenant(api, POLICY | {"window": {"kind": "calendar", "period": "quarter"}})
    api.clock.set(local(2027, 2, 10, 12))
    member = t.member()
    _buy(t, member, "1000")
    _buy(t, member, "2760")
    body = _tier(t, member)
    assert body["tier"]["code"] == "silver"
    assert body["tier"]["held_by"] == {
        "how": "qualified",
        "grant_id": None,
        "kind": None,
        "ends_at": None,
    }
    assert body["tier"]["benefits"]["earn_multiplier"] == "1.2"
    assert body["window"] == {
        "kind": "calendar",
        "months": None,
        "period": "quarter",
        "start": "2027-01-01",
    }
    assert body["measures"] == {"growth": 3760, "spend": "3760.00", "purchases": 2}
    nxt = body["next"]
    assert nxt["code"] == "gold"
    assert nxt["missing"] == [
        {"measure": "growth", "threshold": 5000, "current": 3760, "missing": 1240}
    ]
    assert nxt["deadline"] == "2027-03-31"
    assert nxt["drops_out_from"] is None
    assert nxt["message"] == "还差 1,240 成长值，2027-03-31 前可升级为金卡会员"
    keep = body["keep"]
    assert keep["code"] == "silver"
    assert keep["met"] is True
    assert keep["threshold"] == {"growth": 800}
    assert keep["missing"] == [
        {"measure": "growth", "threshold": 800, "current": 3760, "missing": 0}
    ]
    assert keep["message"] == "已满足保持银卡会员的条件"
    en = _tier(t, member, lang="en")
    assert en["next"]["message"] == "1,240 growth value more by 2027-03-31 to reach 金卡会员"
    assert en["keep"]["message"] == "The record keeps 银卡会员"


def test_rolling_standing_has_no_deadline_but_says_when_amounts_drop_out(api: Api) -> None:  # noqa: F811
    t = _tenant(api)
    member = t.member()
    _buy(t, member, "300")
    api.clock.advance(days=40)
    _buy(t, member, "400")
    body = _tier(t, member)
    assert body["tier"]["code"] == "normal"
    assert body["tier"]["since"] is None
    assert body["keep"] is None
    nxt = body["next"]
    assert nxt["missing"] == [
        {"measure": "growth", "threshold": 1000, "current": 700, "missing": 300}
    ]
    assert nxt["deadline"] is None
    assert nxt["drops_out_from"] == "2027-01-16"  # the 300 of 2026-01-15 counts through 2027-01-15
    assert nxt["message"] == (
        "还差 300 成长值即可升级为银卡会员"
        "（按近 12 个月累计，最早计入的部分自 2027-01-16 起不再计入）"
    )
    en = _tier(t, member, lang="en")["next"]["message"]
    assert en == (
        "300 growth value more to reach 银卡会员 (counted over the last 12 months; "
        "the oldest amount counted drops out from 2027-01-16)"
    )


def test_keep_shows_the_shortfall_and_the_grace_period(api: Api) -> None:  # noqa: F811
    t = _tenant(api)
    member = t.member()
    _buy(t, member, "5000")
    api.clock.advance(days=370)
    _buy(t, member, "3500")
    assert t.post("/v1/jobs/tiers").status_code == 200
    body = _tier(t, member)
    assert body["tier"]["code"] == "gold"
    keep = body["keep"]
    assert keep["met"] is False
    assert keep["missing"] == [
        {"measure": "growth", "threshold": 4000, "current": 3500, "missing": 500}
    ]
    grace_end = datetime(2027, 2, 19, 16, tzinfo=UTC)  # the end of 19 February in Shanghai
    assert keep["grace_until"] == grace_end.isoformat().replace("+00:00", "Z")
    assert keep["message"] == "还差 500 成长值可保持金卡会员（宽限期至 2027-02-19）"
    assert _tier(t, member, lang="en")["keep"]["message"] == (
        "500 growth value more to keep 金卡会员 (grace period until 2027-02-19)"
    )
    assert _history(t, member) == [
        ("gold", "gold", "grace_started"),
        ("normal", "gold", "qualified"),
    ]


def test_spend_and_purchases_read_in_both_languages(api: Api) -> None:  # noqa: F811
    levels = [LEVELS[0], {"code": "vip", "name": "VIP", "enter": {"spend": "2000", "purchases": 5}}]
    t = _tenant(api, POLICY | {"levels": levels, "window": {"kind": "calendar", "period": "year"}})
    member = t.member()
    _buy(t, member, "99.50")
    nxt = _tier(t, member)["next"]
    assert nxt["missing"] == [
        {"measure": "spend", "threshold": "2000", "current": "99.50", "missing": "1900.50"},
        {"measure": "purchases", "threshold": 5, "current": 1, "missing": 4},
    ]
    assert nxt["message"] == "还差 1,900.50 元消费金额或 4 笔订单，2026-12-31 前可升级为VIP"
    assert _tier(t, member, lang="en")["next"]["message"] == (
        "1,900.50 CNY of spend or 4 purchases more by 2026-12-31 to reach VIP"
    )


def test_grants_lift_at_once_and_a_paid_reference_grants_once(api: Api) -> None:  # noqa: F811
    t = _tenant(api)
    member, other = t.member(), t.member()
    staff = t.post(
        f"/v1/members/{member}/tier/grants",
        {"tier": "gold", "kind": "staff", "days": 30, "reason": "店长推荐"},
    )
    assert staff.status_code == 201, staff.text
    grant = staff.json()
    assert grant["tier"] == "gold"
    assert grant["active"] is True
    assert grant["ends_at"] == "2026-02-13T16:00:00Z"  # through 13 February, Shanghai
    body = _tier(t, member)
    assert body["tier"]["code"] == "gold"
    assert body["tier"]["held_by"] == {
        "how": "grant",
        "grant_id": grant["id"],
        "kind": "staff",
        "ends_at": "2026-02-13T16:00:00Z",
    }
    assert body["qualified_tier"] == "normal"
    assert [g["id"] for g in body["grants"]] == [grant["id"]]

    paid_body = {
        "tier": "platinum",
        "kind": "paid",
        "ends_at": "2027-01-15T00:00:00+08:00",
        "reference": "pay-778",
    }
    first = t.post(f"/v1/members/{member}/tier/grants", paid_body)
    assert first.status_code == 201, first.text
    webhook_again = t.post(f"/v1/members/{member}/tier/grants", paid_body)  # a new key
    assert webhook_again.status_code == 200
    assert len(_history(t, member)) == 2
    assert webhook_again.json() == first.json()
    with api.writes_nothing():
        clash = t.post(f"/v1/members/{other}/tier/grants", paid_body)
    assert_problem(
        clash, 409, "grant-reference-conflict", reference="pay-778", grant_id=first.json()["id"]
    )
    assert _tier(t, member)["tier"]["code"] == "platinum"
    invited = t.post(
        f"/v1/members/{other}/tier/grants", {"tier": "silver", "kind": "invitation", "days": 1}
    )
    assert invited.status_code == 201
    assert _tier(t, other)["tier"]["code"] == "silver"
    assert _history(t, member) == [("gold", "platinum", "granted"), ("normal", "gold", "granted")]

    # revoking the platinum grant drops the member at once to the gold one
    revoke = t.post(
        f"/v1/members/{member}/tier/grants/{first.json()['id']}/revoke", {"reason": "退款"}
    )
    assert revoke.status_code == 200, revoke.text
    assert revoke.json()["active"] is False
    assert _tier(t, member)["tier"]["code"] == "gold"
    again = t.post(f"/v1/members/{member}/tier/grants/{first.json()['id']}/revoke")
    assert again.status_code == 200
    assert again.json()["revoked_at"] == revoke.json()["revoked_at"]
    assert _history(t, member)[:2] == [
        ("platinum", "gold", "grant_revoked"),
        ("gold", "platinum", "granted"),
    ]


def test_bad_grants_are_specific_problems_that_write_nothing(api: Api) -> None:  # noqa: F811
    t = _tenant(api)
    member = t.member()
    t.all_keys()
    cases = [
        (
            {"tier": "diamond", "kind": "staff", "days": 3},
            member,
            (422, "unknown-tier", {"tier": "diamond", "known": "silver, gold, platinum"}),
        ),
        (
            {"tier": "normal", "kind": "staff", "days": 3},
            member,
            (422, "unknown-tier", {"tier": "normal"}),
        ),
        (
            {"tier": "gold", "kind": "staff", "ends_at": "2026-01-15T09:59:00+08:00"},
            member,
            (422, "grant-ends-before-start", {}),
        ),
        ({"tier": "gold", "kind": "staff", "days": 3}, 424242, (404, "not-found", {})),
        (
            {"tier": "gold", "kind": "staff", "days": 3, "ends_at": "2027-01-01T00:00:00Z"},
            member,
            (422, "invalid-input", {}),
        ),
        ({"tier": "gold", "kind": "paid", "days": 3}, member, (422, "invalid-input", {})),
        (
            {"tier": "gold", "kind": "friend", "days": 3},
            member,
            (422, "invalid-input", {"field": "kind"}),
        ),
        (
            {"tier": "gold", "kind": "staff", "days": 0},
            member,
            (422, "invalid-input", {"field": "days"}),
        ),
    ]
    for body, who, (status, code, members) in cases:
        with api.writes_nothing():
            response = t.post(f"/v1/members/{who}/tier/grants", body)
            assert_problem(response, status, code, **members)
    en = t.post(
        f"/v1/members/{member}/tier/grants",
        {"tier": "gold", "kind": "staff", "ends_at": "2026-01-15T01:00:00Z"},
        lang="en",
    ).json()
    assert en["detail"] == (
        "A grant must end after it starts (2026-01-15T02:00:00+00:00); "
        "it would end at 2026-01-15T01:00:00+00:00."
    )
    with api.writes_nothing():
        assert_problem(t.post(f"/v1/members/{member}/tier/grants/999999/revoke"), 404, "not-found")
    grant = t.post(
        f"/v1/members/{member}/tier/grants", {"tier": "gold", "kind": "staff", "days": 1}
    ).json()
    api.clock.advance(days=2)
    with api.writes_nothing():
        ended = t.post(f"/v1/members/{member}/tier/grants/{grant['id']}/revoke")
    assert_problem(ended, 409, "grant-not-active", grant_id=grant["id"])
    api.clock.advance(timedelta(0))
    plain = _tenant(api, None)
    someone = plain.member()
    with api.writes_nothing():
        assert_problem(
            plain.post(
                f"/v1/members/{someone}/tier/grants", {"tier": "gold", "kind": "staff", "days": 1}
            ),
            409,
            "tiers-not-configured",
        )
        assert_problem(plain.get(f"/v1/members/{someone}/tier"), 409, "tiers-not-configured")
    assert_problem(t.get("/v1/members/424242/tier"), 404, "not-found")
    assert_problem(t.get("/v1/members/424242/tier/history"), 404, "not-found")


def test_history_pages(api: Api) -> None:  # noqa: F811
    t = _tenant(api)
    member = t.member()
    for tier in ("silver", "gold", "platinum"):
        response = t.post(
            f"/v1/members/{member}/tier/grants", {"tier": tier, "kind": "staff", "days": 5}
        )
        assert response.status_code == 201
    first = t.get(f"/v1/members/{member}/tier/history", limit=2).json()
    assert [i["to_tier"] for i in first["items"]] == ["platinum", "gold"]
    assert first["items"][0]["actor"].startswith("key:")
    rest = t.get(f"/v1/members/{member}/tier/history", limit=2, cursor=first["next_cursor"]).json()
    assert [i["to_tier"] for i in rest["items"]] == ["silver"]
    assert rest["next_cursor"] is None
    assert_problem(t.get(f"/v1/members/{member}/tier/history", cursor="zzz"), 422, "invalid-input")
