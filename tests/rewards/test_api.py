"""The catalog and redemptions over HTTP, on both stores: every route's happy path, each
refusal as its problem detail that writes nothing, idempotency (also two requests with one
key at once), who may cancel."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from threading import Barrier
from typing import Any

from api.conftest import api, api_db  # noqa: F401 - the API tests' fixtures
from api.harness import Api, Tenant, assert_problem
from jifen.access.service import Scope
from jifen.programs.service import get_program
from jifen.programs.tiers import TierPolicy
from rewards.mall import ADDRESS, COUPON, TIERS

GOODS = {"name": "保温杯", "kind": "goods", "points": 300, "stock": 5}
SERVICE = {"name": "优先服务", "kind": "service", "points": 100}


def _tenant(api: Api) -> Tenant:  # noqa: F811
    t = api.tenant()

    def set_tiers(session: Any) -> None:
        program = get_program(session, t.book.program_id)
        program.tiers = TierPolicy.model_validate(TIERS).model_dump(mode="json")

    api.db.write(set_tiers)
    return t


def _put(t: Tenant, code: str, /, **fields: Any) -> dict[str, Any]:
    response = t.send("PUT", f"/v1/rewards/{code}", fields)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _redeem(t: Tenant, member: int, reward: str, **fields: Any) -> dict[str, Any]:
    response = t.post("/v1/redemptions", {"member": {"id": member}, "reward": reward, **fields})
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def test_put_a_reward_then_read_it(api: Api) -> None:  # noqa: F811
    t = _tenant(api)
    created = _put(t, "mug", **GOODS, coupon=None)
    assert created["code"] == "mug"
    assert (created["stock"], created["redeemed"], created["left"]) == (5, 0, 5)
    assert created["available_now"] is True
    assert created["created_at"] == created["updated_at"] == "2026-01-15T02:00:00Z"
    api.clock.advance(minutes=5)
    again = _put(t, "mug", code="mug", **GOODS)
    assert again == created  # nothing changed, so not even updated_at
    changed = _put(t, "mug", **(GOODS | {"points": 250}))
    assert (changed["points"], changed["updated_at"]) == (250, "2026-01-15T02:05:00Z")
    read = t.get("/v1/rewards/mug", scope=Scope.READ)
    assert read.status_code == 200
    assert read.json() == changed
    with api.writes_nothing():
        clash = t.send("PUT", "/v1/rewards/mug", {"code": "cup", **GOODS})
        assert_problem(clash, 422, "invalid-input", field="code")
        bad = t.send("PUT", "/v1/rewards/Not A Code", GOODS)
        assert_problem(bad, 422, "invalid-input")
        shape = t.send("PUT", "/v1/rewards/x", {"name": "x", "kind": "coupon", "points": 1})
        assert_problem(shape, 422, "invalid-input")
        unknown = t.get("/v1/rewards/nope", lang="en")
        body = assert_problem(unknown, 404, "unknown-reward", reward="nope")
        assert body["detail"] == "The catalog has no reward 'nope'."


def test_the_catalog_with_a_members_offer(api: Api) -> None:  # noqa: F811
    t = _tenant(api)
    _put(t, "lounge", **SERVICE, prices={"gold": 60}, tiers=["gold"])
    _put(t, "svc", **SERVICE, limit_per_member=1)
    _put(t, "mug", **GOODS)
    _put(t, "off", **SERVICE, active=False)
    member = t.member()
    t.earn(member, 150)
    assert [r["code"] for r in t.get("/v1/rewards").json()] == ["lounge", "svc", "mug", "off"]
    assert [r["code"] for r in t.get("/v1/rewards", kind="goods").json()] == ["mug"]
    listed = t.get("/v1/rewards", available="true", member_id=member, lang="en").json()
    offers = {r["code"]: r["member"] for r in listed}
    assert list(offers) == ["lounge", "svc", "mug"]
    assert offers["svc"] == {
        "member_id": member,
        "tier": "normal",
        "points": 100,
        "cash": None,
        "may_redeem": True,
        "refusal": None,
    }
    assert offers["lounge"]["points"] == 100
    assert offers["lounge"]["refusal"]["code"] == "tier-not-allowed"
    assert offers["mug"]["refusal"] == {
        "type": "/problems/insufficient-points",
        "code": "insufficient-points",
        "detail": "Insufficient points: 300 needed, 150 available.",
    }
    zh = t.get("/v1/rewards/mug", member_id=member).json()["member"]["refusal"]["detail"]
    assert zh == "可用积分不足：需要 300，可用 150。"
    _redeem(t, member, "svc")
    after = t.get("/v1/rewards/svc", member_id=member).json()
    assert after["member"]["refusal"]["code"] == "limit-reached"
    assert (after["redeemed"], after["left"]) == (1, None)
    assert_problem(t.get("/v1/rewards", member_id=999_999_999), 404, "not-found")


def test_restock(api: Api) -> None:  # noqa: F811
    t = _tenant(api)
    _put(t, "mug", **GOODS)
    member = t.member()
    t.earn(member, 1000)
    _redeem(t, member, "mug", quantity=3, shipping=ADDRESS)
    done = t.post("/v1/rewards/mug/stock", {"add": 10})
    assert done.status_code == 200, done.text
    assert (done.json()["stock"], done.json()["left"]) == (15, 12)
    with api.writes_nothing():
        refused = t.post("/v1/rewards/mug/stock", {"add": -13})
        assert_problem(refused, 409, "stock-below-redeemed", redeemed=3, stock=2)
        assert_problem(t.post("/v1/rewards/nope/stock", {"add": 1}), 404, "unknown-reward")
        assert_problem(t.post("/v1/rewards/mug/stock", {"add": 0}), 422, "invalid-input")


def test_redeem_goods_and_follow_them_to_the_door(api: Api) -> None:  # noqa: F811
    t = _tenant(api)
    _put(t, "mug", **GOODS)
    member = t.member()
    t.earn(member, 1000)
    made = _redeem(t, member, "mug", quantity=2, shipping=ADDRESS)
    assert made["status"] == "pending"
    assert (made["points"], made["quantity"], made["reward_name"]) == (600, 2, "保温杯")
    assert made["shipping"] == ADDRESS | {"postcode": None}
    assert t.available(member) == 400
    rid = made["id"]
    assert t.get(f"/v1/redemptions/{rid}", scope=Scope.READ).json() == made
    with api.writes_nothing():
        early = t.post(f"/v1/redemptions/{rid}/deliver", lang="en")
        body = assert_problem(early, 409, "redemption-state", state="pending", action="deliver")
        assert body["detail"] == f"Redemption {rid} is pending: it cannot be marked delivered."
    shipped = t.post(f"/v1/redemptions/{rid}/ship", {"carrier": "顺丰", "tracking": "SF1"})
    assert shipped.status_code == 200, shipped.text
    assert shipped.json()["status"] == "shipped"
    assert shipped.json()["fulfilment"]["tracking"] == "SF1"
    with api.writes_nothing():
        cancel = t.post(f"/v1/redemptions/{rid}/cancel", {"reason": "late"})
        assert_problem(cancel, 409, "redemption-state", state="shipped", action="cancel")
    delivered = t.post(f"/v1/redemptions/{rid}/deliver")
    assert delivered.json()["status"] == "delivered"
    assert delivered.json()["fulfilment"]["delivered_at"] == "2026-01-15T02:00:00Z"


def test_a_coupon_redemption_shows_its_codes_and_cancelling_voids_them(api: Api) -> None:  # noqa: F811
    t = _tenant(api)
    _put(t, "v10", name="10 元券", kind="coupon", points=100, coupon=COUPON)
    member = t.member()
    t.earn(member, 500)
    made = _redeem(t, member, "v10", quantity=2)
    assert made["status"] == "issued"
    assert [c["status"] for c in made["coupons"]] == ["issued", "issued"]
    assert all(len(c["code"]) == 17 for c in made["coupons"])
    cancelled = t.post(f"/v1/redemptions/{made['id']}/cancel", {"reason": "误兑"})
    assert cancelled.status_code == 200, cancelled.text
    body = cancelled.json()
    assert body["status"] == "cancelled"
    assert [c["status"] for c in body["coupons"]] == ["cancelled", "cancelled"]
    assert body["fulfilment"]["cancel_reason"] == "误兑"
    assert body["cancel_transaction_id"] is not None
    assert t.available(member) == 500
    again = t.post(f"/v1/redemptions/{made['id']}/cancel", {"reason": "again"})
    assert again.json() == body


def test_who_may_cancel(api: Api) -> None:  # noqa: F811
    t = _tenant(api)
    t.all_keys()
    _put(t, "svc", **SERVICE)
    _put(t, "mug", **GOODS)
    member = t.member()
    t.earn(member, 1000)
    service = _redeem(
        t,
        member,
        "svc",
    )["id"]
    parcel = _redeem(t, member, "mug", shipping=ADDRESS)["id"]
    with api.writes_nothing():
        refused = t.post(f"/v1/redemptions/{service}/cancel", {"reason": "x"}, scope=Scope.APP)
        assert_problem(refused, 403, "forbidden", scope="app", needed="admin")
        pos = t.post(f"/v1/redemptions/{parcel}/cancel", {"reason": "x"}, scope=Scope.POS)
        assert_problem(pos, 403, "forbidden")
    mine = t.post(
        f"/v1/redemptions/{parcel}/cancel", {"reason": "changed my mind"}, scope=Scope.APP
    )
    assert mine.status_code == 200, mine.text
    assert t.available(member) == 900


def test_every_refusal_is_a_problem_that_writes_nothing(api: Api) -> None:  # noqa: F811
    t = _tenant(api)
    _put(t, "mug", **(GOODS | {"stock": 1}))
    _put(t, "gold-only", **SERVICE, tiers=["gold", "platinum"])
    _put(t, "once", **SERVICE, limit_per_member=1)
    _put(t, "daily", **SERVICE, limit_per_day=1)
    _put(t, "later", **SERVICE, available_from="2026-02-01T00:00:00+08:00")
    _put(t, "dear", **(SERVICE | {"points": 5000}))
    _put(t, "kettle", **(GOODS | {"cash": "19.90"}))
    rich, frozen = t.member(), t.member()
    t.earn(rich, 2000)
    t.earn(frozen, 2000)
    _redeem(t, rich, "mug", shipping=ADDRESS)
    _redeem(t, rich, "once")
    _redeem(t, rich, "daily")
    t.set_status(frozen, "frozen")

    def redeem(reward: str, member: Any = rich, **fields: Any) -> Any:
        body = {"member": {"id": member}, "reward": reward, **fields}
        return t.post("/v1/redemptions", body, lang="en")

    cases = [
        (("nope",), {}, 404, "unknown-reward", {"reward": "nope"}),
        (("mug",), {"shipping": ADDRESS}, 409, "out-of-stock", {"left": 0, "quantity": 1}),
        (("gold-only",), {}, 403, "tier-not-allowed", {"tier": "普通会员 (normal)"}),
        (("once",), {}, 409, "limit-reached", {"period": "ever", "limit": 1, "used": 1}),
        (("daily",), {}, 409, "limit-reached", {"period": "day", "limit": 1, "used": 1}),
        (("later",), {}, 409, "reward-unavailable", {"reason": "not-yet"}),
        (("dear",), {}, 409, "insufficient-points", {"needed": 5000, "available": 1500}),
        (("mug",), {}, 422, "invalid-input", {"field": "shipping"}),
        (("kettle",), {"shipping": ADDRESS}, 422, "invalid-input", {"field": "payment_reference"}),
        (("once",), {"quantity": 0}, 422, "invalid-input", {"field": "quantity"}),
        (("once",), {"quantity": "two"}, 422, "invalid-input", {"field": "quantity"}),
        (("once", frozen), {}, 409, "member-frozen", {"member_id": frozen}),
        (("once", 999_999_999), {}, 404, "not-found", {}),
        (("once", "x"), {}, 422, "invalid-input", {"field": "member.id"}),
    ]
    with api.writes_nothing():
        answers = [redeem(*args, **fields) for args, fields, *_ in cases]
        missing_member = t.post("/v1/redemptions", {"reward": "once"})
    for answer, (_, _, status, code, members) in zip(answers, cases, strict=True):
        assert_problem(answer, status, code, **members)
    assert_problem(missing_member, 422, "invalid-input", field="member")
    assert "out of stock: 1 asked, 0 left" in answers[1].json()["detail"]
    assert answers[3].json()["detail"] == (
        "Reward 'once' is limited to 1 per member in all; 1 already redeemed."
    )
    assert t.available(rich) == 1500


def test_one_idempotency_key_sent_twice_at_once_makes_one_redemption(api: Api) -> None:  # noqa: F811
    t = _tenant(api)
    _put(t, "mug", **GOODS)
    member = t.member()
    t.earn(member, 1000)
    body = {"member": {"id": member}, "reward": "mug", "shipping": ADDRESS}
    start = Barrier(2)

    def send(_: int) -> Any:
        start.wait()
        return t.post("/v1/redemptions", body, idem="app-order-77")

    with ThreadPoolExecutor(2) as pool:
        first, second = pool.map(send, range(2))
    assert (first.status_code, second.status_code) == (201, 201)
    assert first.json() == second.json()
    assert sorted(r.headers.get("Idempotent-Replayed", "no") for r in (first, second)) == [
        "no",
        "true",
    ]
    assert t.available(member) == 700
    assert len(t.get(f"/v1/members/{member}/redemptions").json()) == 1
    assert t.get("/v1/rewards/mug").json()["redeemed"] == 1
    later = t.post("/v1/redemptions", body, idem="app-order-77")
    assert later.json() == first.json()
    assert t.available(member) == 700


def test_a_members_redemptions_newest_first_in_pages(api: Api) -> None:  # noqa: F811
    t = _tenant(api)
    _put(t, "svc", **SERVICE)
    member, other = t.member(), t.member()
    t.earn(member, 1000)
    t.earn(other, 1000)
    ids = [_redeem(t, member, "svc")["id"] for _ in range(3)]
    _redeem(t, other, "svc")
    page = t.get(f"/v1/members/{member}/redemptions", limit=2).json()
    assert [r["id"] for r in page] == [ids[2], ids[1]]
    rest = t.get(f"/v1/members/{member}/redemptions", limit=2, before=ids[1]).json()
    assert [r["id"] for r in rest] == [ids[0]]
    assert_problem(t.get("/v1/members/999999999/redemptions"), 404, "not-found")
    assert_problem(t.get("/v1/redemptions/999999999"), 404, "not-found")


def test_charity_totals(api: Api) -> None:  # noqa: F811
    t = _tenant(api)
    _put(t, "hope", name="希望工程", kind="charity", points=100, cause="hope-project")
    a, b = t.member(), t.member()
    t.earn(a, 1000)
    t.earn(b, 1000)
    _redeem(t, a, "hope", quantity=2)
    _redeem(t, b, "hope")
    totals = t.get("/v1/charity", scope=Scope.READ)
    assert totals.status_code == 200, totals.text
    assert totals.json() == {
        "causes": [
            {"cause": "hope-project", "donations": 2, "units": 3, "points": 300, "members": 2}
        ]
    }
