"""Two databases with the same programme: one fed through the HTTP API one request at a
time, the other through the bulk importer, then compared row for row in what a member
and an operator see (balances, lots, purchases with their breakdowns, tiers, counters)."""

from __future__ import annotations

import csv
import random
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import func, select

from jifen.access.service import Scope, create_key
from jifen.api.app import create_app
from jifen.core.clock import FrozenClock
from jifen.core.settings import Settings
from jifen.db.outbox import OutboxEvent
from jifen.db.uow import Database
from jifen.earning.models import Purchase, RuleCounter
from jifen.ledger.models import Account, Lot
from jifen.members.models import Member
from jifen.programs import examples
from jifen.programs.apply import apply
from jifen.programs.config import load_program_file
from jifen.tiers.models import MemberTier, TierChange

CENT = Decimal("0.01")

CAPPED_RULE = """
  - id: app-bonus
    name: App 下单加赠 30 积分
    when: {channel: [app]}
    effect: {bonus: 30}
    caps: {day: 40}
    budget: {points: 600, period: month}
"""

CATEGORIES = ["fresh", "dairy", "grocery", "household", "electronics", "drinks"]
PRICES = ["3.50", "12.80", "28.00", "59.90", "199.00", "688.00", "1299.00"]


def programme_text(*, capped: bool, code: str = "retail-chain") -> str:
    text = examples.text("retail-chain").replace("code: retail-chain", f"code: {code}", 1)
    if capped:
        marker = "  # 满额送积分"
        assert marker in text
        text = text.replace(marker, CAPPED_RULE.strip("\n") + "\n\n" + marker, 1)
    return text


def apply_programme(
    db: Database, clock: FrozenClock, *, capped: bool, code: str = "retail-chain"
) -> int:
    file = load_program_file(programme_text(capped=capped, code=code), f"{code}.yaml")
    return db.write(lambda s: apply(s, file, now=clock.now(), actor="test").program_id)


@dataclass(frozen=True)
class Sample:
    members: list[dict[str, str]]
    orders: list[dict[str, Any]]
    """Orders as the API takes them, in file order."""


def sample(now: datetime, *, members: int, orders: int, seed: int) -> Sample:
    """Members, and orders over the last 25 days (inside the 30-day claim window) with
    big baskets, so members cross tiers mid-file, the 8th (member day), fresh and dairy,
    thresholds, a few orders without a member, and the same order sent twice."""
    rng = random.Random(seed)
    people = [
        {
            "external_id": f"M{n:05d}",
            "phone": f"1390000{n:04d}",
            "name": f"会员{n}",
            "birthday": f"19{rng.randint(60, 99)}-{rng.randint(1, 12):02d}-"
            f"{rng.randint(1, 28):02d}",
            "enrolled_at": (now - timedelta(days=400 - n)).isoformat(),
        }
        for n in range(1, members + 1)
    ]
    start = now - timedelta(days=25)
    times = sorted(
        start + timedelta(seconds=rng.randint(0, 25 * 86400 - 3600)) for _ in range(orders)
    )
    found: list[dict[str, Any]] = []
    for i, at in enumerate(times):
        lines = []
        for _ in range(rng.choice([1, 1, 2, 3, 5])):
            price = Decimal(rng.choice(PRICES))
            quantity = Decimal(rng.choice(["1", "1", "2", "0.750"]))
            amount = (price * quantity).quantize(CENT, rounding=ROUND_HALF_UP)
            discount = Decimal("5.00") if amount > 50 and rng.random() < 0.2 else Decimal(0)
            lines.append(
                {
                    "sku": f"SKU-{rng.randint(1, 40)}",
                    "category": rng.choice(CATEGORIES),
                    "quantity": str(quantity),
                    "unit_price": str(price),
                    "discount": str(discount),
                }
            )
        total = sum(
            (
                (Decimal(x["quantity"]) * Decimal(x["unit_price"])).quantize(
                    CENT, rounding=ROUND_HALF_UP
                )
                - Decimal(x["discount"])
                for x in lines
            ),
            Decimal(0),
        )
        channel = rng.choice(["store", "store", "app", "mini_program"])
        order: dict[str, Any] = {
            "external_id": f"LJ-{i:05d}",
            "occurred_at": at.isoformat(),
            "channel": channel,
            "lines": lines,
            "total": str(total),
            "payment_method": rng.choice(["wechat", "alipay", "card"]),
        }
        if channel == "store":
            order["store"] = rng.choice(["sh-001", "sh-002", "bj-001"])
        # a few heavy members buy often (several orders a chunk; tier moves end their runs)
        if rng.random() > 0.06:
            who = (
                min(int(rng.paretovariate(1.2)), members)
                if rng.random() < 0.5
                else rng.randint(1, members)
            )
            order["member"] = {"external_id": f"M{who:05d}"}
        found.append(order)
    found.insert(len(found) // 2, dict(found[3]))  # the same order sent again, mid-file
    return Sample(people, found)


def write_members_csv(path: Path, people: list[dict[str, str]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as stream:
        writer = csv.DictWriter(stream, fieldnames=list(people[0]))
        writer.writeheader()
        writer.writerows(people)


PURCHASE_COLUMNS = [
    "order_id",
    "member_external_id",
    "occurred_at",
    "channel",
    "store",
    "payment_method",
    "sku",
    "category",
    "quantity",
    "unit_price",
    "discount",
    "total",
]


def purchase_rows(orders: list[dict[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    for order in orders:
        for line in order["lines"]:
            rows.append(
                {
                    "order_id": order["external_id"],
                    "member_external_id": (order.get("member") or {}).get("external_id", ""),
                    "occurred_at": order["occurred_at"],
                    "channel": order["channel"],
                    "store": order.get("store", ""),
                    "payment_method": order["payment_method"],
                    **{
                        k: line[k]
                        for k in ("sku", "category", "quantity", "unit_price", "discount")
                    },
                    "total": order["total"],
                }
            )
    return rows


def write_purchases_csv(path: Path, orders: list[dict[str, Any]]) -> None:
    write_rows(path, purchase_rows(orders))


def write_rows(path: Path, rows: list[dict[str, Any]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as stream:
        writer = csv.DictWriter(stream, fieldnames=PURCHASE_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)


@contextmanager
def till(
    db: Database, clock: FrozenClock, program_id: int
) -> Iterator[Callable[..., dict[str, Any]]]:
    """A till's way in: `post(path, body, ok=(200, 201))` through the API with an admin
    key and a fresh Idempotency-Key each time, asserting the status; the answer's JSON."""
    key = db.write(
        lambda s: create_key(
            s, program_id, name="till", scope=Scope.ADMIN, now=clock.now(), created_by="test"
        )[1]
    )
    app = create_app(db, clock, settings=Settings(root_token="root"))
    headers = {"Authorization": f"Bearer {key}"}
    with TestClient(app, raise_server_exceptions=True) as client:

        def post(path: str, body: dict[str, Any], ok: tuple[int, ...] = (200, 201)) -> Any:
            response = client.post(
                path, json=body, headers={**headers, "Idempotency-Key": str(uuid.uuid4())}
            )
            assert response.status_code in ok, response.text
            return response.json()

        yield post


def post_through_api(db: Database, clock: FrozenClock, program_id: int, data: Sample) -> None:
    """Enrol and buy one request at a time, as tills and apps do."""
    with till(db, clock, program_id) as post:
        for person in data.members:
            post("/v1/members", person, ok=(201,))
        for order in data.orders:
            post("/v1/purchases", order)


def state(db: Database, program_id: int) -> dict[str, Any]:
    """What a member and an operator see, keyed by stable names (member external ids and
    order ids; row ids may differ between the two databases)."""

    def read(s: Any) -> dict[str, Any]:
        who = dict(
            s.execute(
                select(Member.id, Member.external_id).where(Member.program_id == program_id)
            ).all()
        )
        members = {
            m.external_id: (m.phone, m.name, m.birthday, m.enrolled_at, m.status)
            for m in s.execute(select(Member).where(Member.program_id == program_id)).scalars()
        }
        accounts = {
            (who[a.member_id], a.kind): (
                a.available,
                a.pending,
                a.held,
                a.lifetime_earned,
                a.status,
                a.opened_at,
                a.next_due_at,
                a.last_activity_at,
            )
            for a in s.execute(
                select(Account).where(
                    Account.program_id == program_id, Account.member_id.is_not(None)
                )
            ).scalars()
        }
        lots = sorted(
            (
                who[lot.member_id],
                lot.amount,
                lot.remaining,
                lot.status,
                lot.earned_at,
                lot.available_at,
                lot.expires_at,
            )
            for lot in s.execute(select(Lot).where(Lot.program_id == program_id)).scalars()
        )
        purchases = {
            p.external_id: (
                who.get(p.member_id),
                p.status,
                p.occurred_at,
                p.channel,
                p.store,
                p.payment_method,
                p.total,
                p.points,
                p.growth,
                p.breakdown,
                p.growth_breakdown,
                p.facts,
                p.rule_set_version,
                p.earn_txn_id is not None,
                p.growth_txn_id is not None,
                p.net_total,
                p.points_returned,
                p.growth_returned,
            )
            for p in s.execute(select(Purchase).where(Purchase.program_id == program_id)).scalars()
        }
        tiers = {
            who[t.member_id]: (t.tier, t.qualified_tier, t.since, t.grace_until)
            for t in s.execute(
                select(MemberTier).where(MemberTier.program_id == program_id)
            ).scalars()
        }
        history = sorted(
            (who[h.member_id], h.from_tier, h.to_tier, h.reason, h.at)
            for h in s.execute(
                select(TierChange).where(TierChange.program_id == program_id)
            ).scalars()
        )
        counters = dict(
            s.execute(
                select(RuleCounter.key, RuleCounter.used).where(
                    RuleCounter.program_id == program_id
                )
            ).all()
        )
        counters = {_named(k, who): v for k, v in counters.items() if v}
        events = dict(
            s.execute(
                select(OutboxEvent.type, func.count())
                .where(OutboxEvent.program_id == program_id)
                .group_by(OutboxEvent.type)
            ).all()
        )
        return {
            "members": members,
            "accounts": accounts,
            "lots": lots,
            "purchases": purchases,
            "tiers": tiers,
            "history": history,
            "counters": counters,
            "events": events,
        }

    return db.read(read)


def _named(key: str, who: dict[int, str]) -> str:
    """A counter key with the member's id replaced by their external id."""
    parts = key.split(":")
    if parts[0] == "member":
        parts[1] = who[int(parts[1])]
    return ":".join(parts)


RETURN_COLUMNS = ["order_id", "return_id", "line_no", "quantity", "amount"]


def returns_sample(orders: list[dict[str, Any]], *, seed: int) -> list[dict[str, Any]]:
    """Returns of about one order in eight: a whole line, part of a line, or a price
    refund, some orders twice (two returns), each with its own return id."""
    rng = random.Random(seed)
    found: list[dict[str, Any]] = []
    seen: set[str] = set()
    for order in orders:
        if order["external_id"] in seen or rng.random() > 0.12:
            continue
        seen.add(order["external_id"])
        numbers = list(range(1, len(order["lines"]) + 1))
        rng.shuffle(numbers)
        for n in range(min(rng.choice([1, 1, 2]), len(numbers))):
            line_no = numbers[n]  # a price refund on another line than the return
            line = order["lines"][line_no - 1]
            if n == 0 and Decimal(line["quantity"]) >= 2:
                body = {"line_no": line_no, "quantity": "1"}
            elif n == 0:
                body = {"line_no": line_no, "quantity": line["quantity"]}
            else:
                body = {"line_no": line_no, "amount": "1.00"}
            found.append({"order_id": order["external_id"], "return_id": f"R-{len(found)}", **body})
    return found


def write_returns_csv(path: Path, returns: list[dict[str, Any]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as stream:
        writer = csv.DictWriter(stream, fieldnames=RETURN_COLUMNS)
        writer.writeheader()
        writer.writerows(returns)


def return_through_api(
    db: Database, clock: FrozenClock, program_id: int, returns: list[dict[str, Any]]
) -> None:
    key = db.write(
        lambda s: create_key(
            s, program_id, name="refunds", scope=Scope.ADMIN, now=clock.now(), created_by="test"
        )[1]
    )
    ids = dict(
        db.read(
            lambda s: s.execute(
                select(Purchase.external_id, Purchase.id).where(Purchase.program_id == program_id)
            ).all()
        )
    )
    app = create_app(db, clock, settings=Settings(root_token="root"))
    headers = {"Authorization": f"Bearer {key}"}
    with TestClient(app, raise_server_exceptions=True) as client:
        for ret in returns:
            line = {k: ret[k] for k in ("line_no", "quantity", "amount") if k in ret}
            response = client.post(
                f"/v1/purchases/{ids[ret['order_id']]}/returns",
                json={"external_id": ret["return_id"], "lines": [line]},
                headers={**headers, "Idempotency-Key": str(uuid.uuid4())},
            )
            assert response.status_code in (200, 201), response.text
