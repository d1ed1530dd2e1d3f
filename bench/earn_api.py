"""Purchases/s through the HTTP API, one client, on SQLite and on PostgreSQL.

A real `jifen serve` process (uvicorn) and a real HTTP client with keep-alive post
purchases of 1–6 lines to a programme with the retail chain's rules (base rate, category
multiplier, member day, threshold bonuses as best-of, a capped rule with a budget), each
request its own transaction with its own idempotency key, as a till would. The figure
is the single-client rate: the full concurrency benchmark beside pgbench is issue 5.

    .venv/bin/python bench/earn_api.py [--n 1000] [--members 200] [--store sqlite|postgres|both]

PostgreSQL is a throw-away cluster (fsync on); results go to bench/results/earn_api.json.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))

from bench.common import free_port
from jifen.access.service import Scope, create_key
from jifen.core.clock import SystemClock
from jifen.db.migrate import upgrade
from jifen.db.uow import Database
from jifen.members import service as members
from jifen.members.schemas import MemberCreate
from jifen.programs.rulesets import save_rules
from jifen.programs.schemas import ProgramCreate
from jifen.programs.service import book_for, create_program
from jifen.rules.schemas import RuleSet
from pgcluster import PgCluster

RULES = {
    "earning_rules": [
        {"id": "base", "name": "1 元 = 1 积分", "effect": {"points_per_amount": 1}},
        {
            "id": "fresh-double",
            "name": "生鲜双倍",
            "when": {"category": ["fresh"]},
            "effect": {"multiplier": 2},
            "scope": "line",
        },
        {
            "id": "member-day",
            "name": "会员日",
            "when": {"days_of_month": [8]},
            "effect": {"multiplier": 2},
        },
        {
            "id": "spend-200",
            "name": "满200送20",
            "when": {"min_amount": 200},
            "effect": {"bonus": 20},
            "stacking": "best_of",
            "group": "threshold",
        },
        {
            "id": "spend-500",
            "name": "满500送80",
            "when": {"min_amount": 500},
            "effect": {"bonus": 80},
            "stacking": "best_of",
            "group": "threshold",
        },
        {
            "id": "brand-week",
            "name": "品牌周",
            "when": {"brand": ["acme"]},
            "effect": {"bonus": 5},
            "scope": "line",
            "caps": {"day": 50},
            "budget": {"points": 10_000_000},
        },
    ]
}
CATEGORIES = ["fresh", "dairy", "snacks", "drinks", "household"]


def prepare(url: str, member_count: int) -> tuple[str, list[int]]:
    upgrade(url)
    db = Database(url)
    now = SystemClock().now()
    program = ProgramCreate(code="bench", name="bench", pending_days=7)

    def setup(session):  # type: ignore[no-untyped-def]
        created = create_program(session, program, now=now)
        save_rules(session, created.id, RuleSet.model_validate(RULES), now=now, actor="bench")
        book = book_for(session, created)
        key = create_key(
            session, created.id, name="till", scope=Scope.POS, now=now, created_by="bench"
        )[1]
        ids = [
            members.enrol(session, book, MemberCreate(phone=f"139{i:08d}"), now=now).id
            for i in range(member_count)
        ]
        return key, ids

    key, ids = db.write(setup)
    db.dispose()
    return key, ids


def order(rng: random.Random, i: int, member_id: int) -> dict[str, object]:
    lines = []
    for _ in range(rng.randint(1, 6)):
        price = Decimal(rng.randint(100, 20000)) / 100
        lines.append(
            {
                "sku": f"sku-{rng.randint(1, 500)}",
                "category": rng.choice(CATEGORIES),
                "brand": rng.choice(["acme", "other", "house"]),
                "quantity": rng.randint(1, 3),
                "unit_price": str(price),
            }
        )
    total = sum(Decimal(str(line["unit_price"])) * int(line["quantity"]) for line in lines)  # type: ignore[call-overload]
    return {
        "member": {"id": member_id},
        "external_id": f"order-{i}",
        "occurred_at": (datetime.now(UTC) - timedelta(seconds=1)).isoformat(),
        "channel": "store",
        "lines": lines,
        "total": str(total),
    }


def measure(url: str, n: int, member_count: int) -> dict[str, float]:
    key, ids = prepare(url, member_count)
    port = free_port()
    env = os.environ | {"JIFEN_DATABASE_URL": url}
    server = subprocess.Popen(
        [str(Path(sys.executable).parent / "jifen"), "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {key}"}) as client:
            for _ in range(200):
                try:
                    if client.get("/v1/health").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                time.sleep(0.1)
            rng = random.Random(7)
            bodies = [order(rng, i, ids[i % len(ids)]) for i in range(n)]
            for body in bodies[:20]:  # warm up: caches, connections
                body = dict(body, external_id=f"warm-{body['external_id']}")
                client.post(
                    "/v1/purchases", json=body, headers={"Idempotency-Key": str(uuid.uuid4())}
                )
            latencies = []
            points = 0
            started = time.perf_counter()
            for body in bodies:
                t0 = time.perf_counter()
                response = client.post(
                    "/v1/purchases", json=body, headers={"Idempotency-Key": str(uuid.uuid4())}
                )
                latencies.append(time.perf_counter() - t0)
                if response.status_code != 201:
                    raise SystemExit(f"purchase refused: {response.status_code} {response.text}")
                points += response.json()["points"]
            elapsed = time.perf_counter() - started
    finally:
        server.terminate()
        server.wait(timeout=30)
    latencies.sort()
    return {
        "purchases": n,
        "purchases_per_s": round(n / elapsed, 1),
        "p50_ms": round(statistics.median(latencies) * 1000, 2),
        "p99_ms": round(latencies[int(len(latencies) * 0.99) - 1] * 1000, 2),
        "points_awarded": points,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--members", type=int, default=200)
    parser.add_argument("--store", choices=["sqlite", "postgres", "both"], default="both")
    args = parser.parse_args()
    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        if args.store in ("sqlite", "both"):
            results["sqlite"] = measure(f"sqlite:///{tmp}/bench.db", args.n, args.members)
        if args.store in ("postgres", "both"):
            with PgCluster(durable=True) as cluster:
                results["postgres"] = measure(
                    cluster.create_database("bench"), args.n, args.members
                )
    print(f"{'store':<10} {'purchases/s':>12} {'p50 ms':>8} {'p99 ms':>8}")
    for store, r in results.items():
        print(f"{store:<10} {r['purchases_per_s']:>12} {r['p50_ms']:>8} {r['p99_ms']:>8}")
    out = ROOT / "bench" / "results" / "earn_api.json"
    out.write_text(
        json.dumps(
            {"measured_at": datetime.now(UTC).isoformat(), "single_client": results}, indent=2
        )
        + "\n"
    )
    print(f"written to {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
