"""What each scope may do, route by route, as one table.

admin: everything in its programme; pos (tills): enrol, find, earn, spend, holds;
app (member apps): enrol, profile, spend, transfers, holds; read: reads only. A refused
scope gets 403 `forbidden` naming the scopes needed, and nothing is written.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from api.harness import Api, Tenant, assert_problem
from jifen.access.service import Scope
from jifen.programs.rulesets import save_rules
from jifen.programs.service import get_program
from jifen.programs.tiers import TierPolicy
from jifen.rules.schemas import RuleSet

ADMIN, POS, APP, READ = Scope.ADMIN, Scope.POS, Scope.APP, Scope.READ
EVERYONE = frozenset(Scope)
_phones = itertools.count(13700000000)


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    """With placeholders, each filled with a fresh object for every call: {m} a member with
    1000 points, {o} another member, {txn} an earn transaction, {hold} an active hold,
    {key} an API key's id, {v} the current rules version."""
    allowed: frozenset[Scope]
    ok: int
    body: Any = None


ORDER = {
    "member": {"id": "{m}"},
    "external_id": "{order}",
    "occurred_at": "{now}",
    "channel": "store",
    "lines": [{"sku": "tea", "unit_price": "30"}],
    "total": "30",
}

BASKET = {"lines": [{"sku": "rice", "category": "food", "unit_price": "60"}]}
"""A basket a fixed coupon applies to and points may pay half of."""

MATRIX = [
    Route("GET", "/v1/program", EVERYONE, 200),
    Route("GET", "/v1/keys", frozenset({ADMIN}), 200),
    Route("POST", "/v1/keys", frozenset({ADMIN}), 201, {"name": "till 9", "scope": "pos"}),
    Route("DELETE", "/v1/keys/{key}", frozenset({ADMIN}), 200),
    Route("POST", "/v1/members", frozenset({ADMIN, POS, APP}), 201, {"phone": "{phone}"}),
    Route("GET", "/v1/members?phone={phone_of_m}", EVERYONE, 200),
    Route("GET", "/v1/members/{m}", EVERYONE, 200),
    Route("PATCH", "/v1/members/{m}", frozenset({ADMIN, APP}), 200, {"name": "新名字"}),
    Route(
        "POST",
        "/v1/members/{m}/status",
        frozenset({ADMIN}),
        200,
        {"status": "frozen", "reason": "x"},
    ),
    Route("GET", "/v1/members/{m}/balance", EVERYONE, 200),
    Route("GET", "/v1/members/{m}/history", EVERYONE, 200),
    Route("GET", "/v1/members/{m}/lots", EVERYONE, 200),
    Route("GET", "/v1/transactions/{txn}", EVERYONE, 200),
    Route("GET", "/v1/holds/{hold}", EVERYONE, 200),
    Route("POST", "/v1/members/{m}/earn", frozenset({ADMIN, POS}), 201, {"points": 10}),
    Route("POST", "/v1/members/{m}/spend", frozenset({ADMIN, POS, APP}), 201, {"points": 10}),
    Route(
        "POST",
        "/v1/members/{m}/adjustments",
        frozenset({ADMIN}),
        201,
        {"points": -10, "reason": "goodwill"},
    ),
    Route(
        "POST",
        "/v1/transfers",
        frozenset({ADMIN, APP}),
        201,
        {"from_member_id": "{m}", "to_member_id": "{o}", "points": 10},
    ),
    Route(
        "POST",
        "/v1/transactions/{txn}/reversal",
        frozenset({ADMIN}),
        201,
        {"reason": "refund"},
    ),
    Route(
        "POST", "/v1/holds", frozenset({ADMIN, POS, APP}), 201, {"member_id": "{m}", "points": 10}
    ),
    Route("POST", "/v1/holds/{hold}/capture", frozenset({ADMIN, POS, APP}), 200, {"points": 5}),
    Route("POST", "/v1/holds/{hold}/void", frozenset({ADMIN, POS, APP}), 200),
    Route("POST", "/v1/purchases", frozenset({ADMIN, POS}), 201, ORDER),
    Route("GET", "/v1/purchases/{purchase}", EVERYONE, 200),
    Route("GET", "/v1/members/{m}/purchases", EVERYONE, 200),
    Route(
        "POST", "/v1/purchases/{purchase}/returns", frozenset({ADMIN, POS}), 201, {"amount": "1"}
    ),
    Route(
        "POST",
        "/v1/purchases/claims",
        frozenset({ADMIN, POS, APP}),
        201,
        {"external_id": "{unclaimed}", "member": {"id": "{m}"}},
    ),
    Route("POST", "/v1/simulate", EVERYONE, 200, ORDER),
    Route("POST", "/v1/jobs/expire", frozenset({ADMIN}), 200),
    Route("POST", "/v1/jobs/release", frozenset({ADMIN}), 200),
    Route("POST", "/v1/jobs/lapse", frozenset({ADMIN}), 200),
    Route("GET", "/v1/rules", EVERYONE, 200),
    Route("GET", "/v1/rules/versions/{v}", EVERYONE, 200),
    Route("PUT", "/v1/rules", frozenset({ADMIN}), 200, {"earning_rules": []}),
    Route("GET", "/v1/stores", EVERYONE, 200),
    Route("GET", "/v1/channels", EVERYONE, 200),
    Route("POST", "/v1/jobs/birthday", frozenset({ADMIN}), 200),
    Route(
        "POST",
        "/v1/events",
        frozenset({ADMIN, POS, APP}),
        201,
        {"type": "{etype}", "member": {"id": "{m}"}, "external_id": "{ext}"},
    ),
    Route("GET", "/v1/events/{event}", EVERYONE, 200),
    Route("GET", "/v1/members/{m}/events", EVERYONE, 200),
    Route("PUT", "/v1/segments/{seg}/members/{m}", frozenset({ADMIN}), 200),
    Route("DELETE", "/v1/segments/{seg}/members/{on_seg}", frozenset({ADMIN}), 200),
    Route("GET", "/v1/segments/{seg}/members", EVERYONE, 200),
    Route("GET", "/v1/members/{m}/segments", EVERYONE, 200),
    Route("GET", "/v1/rewards", EVERYONE, 200),
    Route("GET", "/v1/rewards/{reward}", EVERYONE, 200),
    Route(
        "PUT",
        "/v1/rewards/{new_reward}",
        frozenset({ADMIN}),
        200,
        {"name": "优先服务", "kind": "service", "points": 100},
    ),
    Route("POST", "/v1/rewards/{goods}/stock", frozenset({ADMIN}), 200, {"add": 5}),
    Route("GET", "/v1/charity", EVERYONE, 200),
    Route(
        "POST",
        "/v1/redemptions",
        frozenset({ADMIN, POS, APP}),
        201,
        {"member": {"id": "{m}"}, "reward": "{reward}"},
    ),
    Route("GET", "/v1/redemptions/{redemption}", EVERYONE, 200),
    Route("GET", "/v1/members/{m}/redemptions", EVERYONE, 200),
    Route("POST", "/v1/redemptions/{parcel}/cancel", frozenset({ADMIN, APP}), 200, {"reason": "x"}),
    Route(
        "POST",
        "/v1/redemptions/{parcel}/ship",
        frozenset({ADMIN}),
        200,
        {"carrier": "SF", "tracking": "SF1"},
    ),
    Route("POST", "/v1/redemptions/{shipped}/deliver", frozenset({ADMIN}), 200),
    Route("GET", "/v1/tiers", EVERYONE, 200),
    Route("GET", "/v1/members/{tm}/tier", EVERYONE, 200),
    Route("GET", "/v1/members/{tm}/tier/history", EVERYONE, 200),
    Route(
        "POST",
        "/v1/members/{tm}/tier/grants",
        frozenset({ADMIN}),
        201,
        {"tier": "gold", "kind": "staff", "days": 30},
    ),
    Route("POST", "/v1/members/{tm}/tier/grants/{grant}/revoke", frozenset({ADMIN}), 200),
    Route("POST", "/v1/jobs/tiers", frozenset({ADMIN}), 200),
    Route("POST", "/v1/jobs/tier-benefits", frozenset({ADMIN}), 200),
    Route("GET", "/v1/coupons/{coupon}", EVERYONE, 200),
    Route("GET", "/v1/members/{m}/coupons?status=issued", EVERYONE, 200),
    Route("POST", "/v1/coupons/{coupon}/validate", frozenset({ADMIN, POS, APP}), 200, BASKET),
    Route(
        "POST",
        "/v1/coupons/{coupon}/use",
        frozenset({ADMIN, POS, APP}),
        200,
        {"order": "{order}", **BASKET},
    ),
    Route("POST", "/v1/coupons/{coupon}/cancel", frozenset({ADMIN}), 200, {"reason": "x"}),
    Route("POST", "/v1/jobs/coupon-expiry", frozenset({ADMIN}), 200),
    Route("POST", "/v1/checkout/quote", EVERYONE, 200, {"member": {"id": "{pm}"}, **BASKET}),
    Route(
        "POST",
        "/v1/checkout/hold",
        frozenset({ADMIN, POS, APP}),
        201,
        {"member": {"id": "{pm}"}, "order": "{order}", "points": 100, **BASKET},
    ),
    Route("GET", "/v1/checkout/holds/{chold}", EVERYONE, 200),
    Route("POST", "/v1/checkout/holds/{chold}/void", frozenset({ADMIN, POS, APP}), 200),
]


class Fresh:
    """Makes each placeholder's object on first use (through the services or the admin key)."""

    def __init__(self, t: Tenant) -> None:
        self.t = t
        self.made: dict[str, Any] = {}

    def _member(self) -> int:
        member = self.t.member(phone=str(next(_phones)))
        self.t.earn(member, 1000)
        return member

    def _unclaimed(self) -> str:
        order = {key: value for key, value in self.fill(ORDER).items() if key != "member"}
        self.t.post("/v1/purchases", order)
        return str(order["external_id"])

    def _event_rule(self) -> str:
        rules = RuleSet.model_validate(
            {"event_rules": [{"type": "check_in", "name": "签到", "points": 1}]}
        )
        api = self.t.api
        api.db.write(
            lambda s: save_rules(s, self.t.book.program_id, rules, now=api.clock.now(), actor="t")
        )
        return "check_in"

    def _reward(self, code: str, **fields: Any) -> str:
        body = {"name": code, "kind": "service", "points": 100} | fields
        response = self.t.send("PUT", f"/v1/rewards/{code}", body)
        assert response.status_code == 200, response.text
        return code

    def _parcel(self) -> int:
        """A goods redemption waiting to be shipped."""
        body = {
            "member": {"id": self.get("m")},
            "reward": self.get("goods"),
            "shipping": {"name": "李娜", "phone": "13800000001", "city": "上海", "address": "1号"},
        }
        response = self.t.post("/v1/redemptions", body)
        assert response.status_code == 201, response.text
        return int(response.json()["id"])

    def _shipped(self) -> int:
        parcel = self.get("parcel")
        body = {"carrier": "SF", "tracking": "SF0"}
        assert self.t.post(f"/v1/redemptions/{parcel}/ship", body).status_code == 200
        return int(parcel)

    def _coupon(self) -> str:
        """A coupon of member {m}, redeemed as a member would."""
        coupon = {"kind": "fixed", "amount": "10", "valid_days": 30}
        reward = self._reward(f"cpn-{next(_phones)}", kind="coupon", coupon=coupon)
        body = {"member": {"id": self.get("m")}, "reward": reward}
        response = self.t.post("/v1/redemptions", body)
        assert response.status_code == 201, response.text
        return str(response.json()["coupons"][0]["code"])

    def _paying_member(self) -> int:
        """Member {m}, in a programme that takes points as payment (set first)."""

        def allow(session: Any) -> None:
            get_program(session, self.t.book.program_id).points_payment = {
                "max_share": "0.5",
                "min_points": 100,
                "step": 100,
            }

        self.t.api.db.write(allow)
        return int(self.get("m"))

    def _checkout_hold(self) -> int:
        body = {"member": {"id": self.get("pm")}, "order": self.get("order"), "points": 100}
        response = self.t.post("/v1/checkout/hold", body | BASKET)
        assert response.status_code == 201, response.text
        return int(response.json()["id"])

    def _tiered_member(self) -> int:
        """A member of a programme with tiers (the programme's tiers set first)."""
        document = TierPolicy.model_validate(
            {
                "window": {"kind": "rolling", "months": 12},
                "levels": [
                    {"code": "normal", "name": "普通会员"},
                    {"code": "gold", "name": "金卡会员", "enter": {"growth": 5000}},
                ],
            }
        ).model_dump(mode="json")

        def set_tiers(session: Any) -> None:
            get_program(session, self.t.book.program_id).tiers = document

        self.t.api.db.write(set_tiers)
        return int(self.get("m"))

    def get(self, name: str) -> Any:
        makers: dict[str, Callable[[], Any]] = {
            "m": self._member,
            "o": self.t.member,
            "phone": lambda: str(next(_phones)),
            "phone_of_m": lambda: self.t.get(f"/v1/members/{self.get('m')}").json()["phone"],
            "txn": lambda: self.t.earn(self.get("m"), 10).json()["transaction"]["id"],
            "hold": lambda: self.t.hold(self.get("m"), 20)["id"],
            "key": lambda: self.t.post("/v1/keys", {"name": "spare", "scope": "read"}).json()["id"],
            "order": lambda: f"order-{next(_phones)}",
            "now": lambda: self.t.api.clock.now().isoformat(),
            "purchase": lambda: self.t.post("/v1/purchases", self.fill(ORDER)).json()["id"],
            "unclaimed": self._unclaimed,
            "v": lambda: self.t.get("/v1/rules").json()["version"],
            "etype": self._event_rule,
            "ext": lambda: f"ev-{next(_phones)}",
            "event": lambda: self.t.post(
                "/v1/events",
                {"type": self.get("etype"), "member": {"id": self.get("m")}, "external_id": "e"},
            ).json()["id"],
            "reward": lambda: self._reward(f"svc-{next(_phones)}"),
            "new_reward": lambda: f"new-{next(_phones)}",
            "goods": lambda: self._reward(f"mug-{next(_phones)}", kind="goods", stock=50),
            "redemption": lambda: self.t.post(
                "/v1/redemptions", {"member": {"id": self.get("m")}, "reward": self.get("reward")}
            ).json()["id"],
            "parcel": self._parcel,
            "shipped": self._shipped,
            "tm": self._tiered_member,
            "coupon": self._coupon,
            "pm": self._paying_member,
            "chold": self._checkout_hold,
            "grant": lambda: self.t.post(
                f"/v1/members/{self.get('tm')}/tier/grants",
                {"tier": "gold", "kind": "staff", "days": 3},
            ).json()["id"],
            "seg": lambda: "vip",
            "on_seg": lambda: self.t.send(
                "PUT", f"/v1/segments/{self.get('seg')}/members/{self.get('m')}"
            ).json()["member_id"],
        }
        if name not in self.made:
            self.made[name] = makers[name]()
        return self.made[name]

    def fill(self, value: Any) -> Any:
        """The value with every placeholder made and filled in ("{m}" alone: an int)."""
        if isinstance(value, dict):
            return {k: self.fill(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.fill(v) for v in value]
        if not isinstance(value, str):
            return value
        whole = re.fullmatch(r"\{(\w+)\}", value)
        if whole and whole[1] in ("m", "o", "pm"):
            return int(self.get(whole[1]))
        return re.sub(r"\{(\w+)\}", lambda match: str(self.get(match[1])), value)


@pytest.mark.parametrize("route", MATRIX, ids=lambda r: f"{r.method} {r.path}")
def test_scope_matrix(api: Api, route: Route) -> None:
    t = api.tenant(allow_transfers=True)
    t.all_keys()
    shared = Fresh(t)  # a read needs no fresh objects for each scope
    for scope in Scope:
        fresh = shared if route.method == "GET" else Fresh(t)
        path, body = fresh.fill(route.path), fresh.fill(route.body)
        if scope in route.allowed:
            response = t.send(route.method, path, body, scope=scope)
            assert response.status_code == route.ok, (scope, response.text)
            continue
        with api.writes_nothing():
            response = t.send(route.method, path, body, scope=scope)
            problem = assert_problem(response, 403, "forbidden", scope=scope.value)
        needed = [s.value for s in Scope if s in route.allowed]
        assert problem["needed"] == ", ".join(needed), problem


def test_the_matrix_covers_every_route(api: Api) -> None:
    names = {
        "{m}": "{member_id}",
        "{txn}": "{transaction_id}",
        "{hold}": "{hold_id}",
        "{key}": "{key_id}",
        "{purchase}": "{purchase_id}",
        "{v}": "{version}",
        "{event}": "{event_id}",
        "{seg}": "{code}",
        "{on_seg}": "{member_id}",
        "{reward}": "{code}",
        "{new_reward}": "{code}",
        "{goods}": "{code}",
        "{redemption}": "{redemption_id}",
        "{parcel}": "{redemption_id}",
        "{shipped}": "{redemption_id}",
        "{tm}": "{member_id}",
        "{grant}": "{grant_id}",
        "{coupon}": "{code}",
        "{chold}": "{hold_id}",
    }
    in_matrix = set()
    for route in MATRIX:
        path = route.path.split("?")[0]
        for short, long in names.items():
            path = path.replace(short, long)
        in_matrix.add((route.method, re.sub(r"^/v1/jobs/[\w-]+$", "/v1/jobs/{name}", path)))
    paths = api.client.get("/openapi.json").json()["paths"]
    in_app = {
        (method.upper(), path)
        for path, operations in paths.items()
        if path.startswith("/v1/")
        for method in operations
    }
    without_key = {("GET", "/v1/health"), ("GET", "/v1/programs"), ("POST", "/v1/programs")}
    assert in_app - without_key == in_matrix


def test_forbidden_names_the_scope_in_both_languages(api: Api) -> None:
    t = api.tenant()
    member = t.member()
    response = t.post(
        f"/v1/members/{member}/adjustments", {"points": 5, "reason": "x"}, scope=POS, lang="en"
    )
    problem = assert_problem(response, 403, "forbidden", scope="pos", needed="admin")
    assert "pos" in problem["detail"]
    assert "admin" in problem["detail"]
    zh = assert_problem(
        t.post(f"/v1/members/{member}/earn", {"points": 5}, scope=READ),
        403,
        "forbidden",
        scope="read",
        needed="admin, pos",
    )
    assert "权限" in zh["detail"]


def test_a_refused_scope_does_not_burn_the_idempotency_key(api: Api) -> None:
    t = api.tenant()
    member = t.member()
    refused = t.post(f"/v1/members/{member}/earn", {"points": 5}, scope=APP, idem="till-1")
    assert_problem(refused, 403, "forbidden")
    done = t.post(f"/v1/members/{member}/earn", {"points": 5}, scope=POS, idem="till-1")
    assert done.status_code == 201
    assert t.available(member) == 5


def test_health_needs_no_key(api: Api) -> None:
    response = api.client.get("/v1/health")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["database"] == api.db.dialect
