"""Earn through the HTTP API beside pgbench: purchases/s and p50/p99 at 1, 8, 32 and 128
concurrent clients on PostgreSQL, each level beside pgbench tpcb-like TPS at the same
client count on the same server in the same run; and the same on SQLite beside a
tpcb-like transaction on SQLite with jifen's own settings.

    .venv/bin/python bench/earn.py [--clients 1,8,32,128] [--duration 20] [--warmup 5]
        [--members 20000] [--pgbench-scale 50] [--server-args "--workers 2"]
        [--sqlite-clients 1,8] [--store postgres|sqlite|both] [--profile 32]

A real `jifen serve` process (the retail chain's programme: base rate, double points on
fresh food and dairy, member day, the tier multiplier, the 满额送 thresholds, growth
value) takes POST /v1/purchases from N clients, each an asyncio task with its own
keep-alive connection, sending requests built before the clock starts: a basket of 1–6
lines (fresh, dairy, snacks... in three stores and two online channels) for a random
member of a pool of --members, a unique order id and Idempotency-Key each. Every answer
is checked (201 or 200, and `points` >= 0); a failure is counted and shown.

The headline is earn TPS / pgbench TPS at the client count where earn peaks, with the
p99 there (targets: >= 0.5, first milestone 0.25; p99 <= 25 ms). The client's, the
server's and PostgreSQL's CPU seconds per wall second are in the table and the JSON:
client and server share the machine's cores. Results: bench/results/earn.json.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sqlite3
import sys
import tempfile
import threading
import time
import uuid
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.common import (  # noqa: E402
    CpuMeter,
    LoadResult,
    PgBench,
    Prepared,
    Profile,
    Server,
    durable_cluster,
    enrol_members,
    http_request,
    json_field_check,
    machine,
    percentile,
    postmaster_pid,
    prepare,
    ratio,
    run_load,
    server_args,
    show,
    utc_now,
    write_results,
)

STORES = ("sh-001", "sh-002", "bj-001")
CHANNELS = ("store",) * 7 + ("app",) * 2 + ("mini_program",)
CATEGORIES = (
    ("fresh", 25),
    ("dairy", 15),
    ("snacks", 12),
    ("drinks", 12),
    ("household", 12),
    ("bakery", 10),
    ("personal_care", 8),
    ("frozen", 4),
    ("tobacco", 2),
)
BRANDS = ("乐家", "acme", "nongfu", "yili", "mengniu", "house")
LINE_COUNTS = ((1, 30), (2, 25), (3, 18), (4, 12), (5, 9), (6, 6))
CHECK = json_field_check((201, 200), "points")


def _money(cents: int) -> str:
    return f"{cents // 100}.{cents % 100:02d}"


def basket(rng: random.Random, member_id: int, order_id: str, at: datetime) -> dict[str, Any]:
    """A realistic till basket of 1–6 lines: popular SKUs more often, prices from 1.50 to
    150 元, a few discounted lines; the total is exactly what the lines add up to."""
    channel = rng.choice(CHANNELS)
    categories = [c for c, _ in CATEGORIES]
    weights = [w for _, w in CATEGORIES]
    lines = []
    total = 0
    count = rng.choices([n for n, _ in LINE_COUNTS], [w for _, w in LINE_COUNTS])[0]
    for _ in range(count):
        category = rng.choices(categories, weights)[0]
        unit = int(math.exp(rng.uniform(math.log(150), math.log(15_000))))
        quantity = rng.choices((1, 2, 3), (70, 20, 10))[0]
        amount = unit * quantity
        discount = amount * rng.randint(5, 20) // 100 if rng.random() < 0.15 else 0
        line: dict[str, Any] = {
            "sku": f"{category}-{min(int(rng.paretovariate(1.1)), 400):03d}",
            "category": category,
            "brand": rng.choice(BRANDS),
            "quantity": quantity,
            "unit_price": _money(unit),
        }
        if discount:
            line["discount"] = _money(discount)
        lines.append(line)
        total += amount - discount
    body: dict[str, Any] = {
        "member": {"id": member_id},
        "external_id": order_id,
        "occurred_at": at.isoformat(),
        "channel": channel,
        "lines": lines,
        "total": _money(total),
    }
    if channel == "store":
        body["store"] = rng.choice(STORES)
        body["payment_method"] = rng.choice(("cash", "wechat", "alipay", "card"))
    return body


def build_requests(
    rng: random.Random, prepared: Prepared, port: int, members: list[int], count: int, tag: str
) -> list[bytes]:
    host = f"127.0.0.1:{port}"
    now = utc_now() - timedelta(seconds=1)
    auth = f"Bearer {prepared.key}"
    requests = []
    for i in range(count):
        body = basket(rng, rng.choice(members), f"bench-{tag}-{i}", now)
        key = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        headers = {"Authorization": auth, "Idempotency-Key": key}
        payload = json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()
        requests.append(http_request("POST", "/v1/purchases", host, headers, payload))
    return requests


def earn_levels(
    prepared: Prepared,
    members: list[int],
    args: argparse.Namespace,
    levels: list[int],
    extra: list[str],
    *,
    postgres_pid: int | None,
    between: Any = None,
) -> tuple[list[LoadResult], dict[str, Any]]:
    """Each level of clients against one server; `between(clients)` runs after each."""
    rng = random.Random(args.seed)
    results = []
    profile: dict[str, Any] = {}
    expected = float(args.max_rate)
    with Server(prepared.url, extra) as server:
        meter = CpuMeter(server_pid=server.pid, postgres_pid=postgres_pid)
        for clients in levels:
            count = math.ceil(expected * (args.warmup + args.duration))
            requests = build_requests(rng, prepared, server.port, members, count, f"{clients}")
            spy = Profile(server.pid) if args.profile == clients else None
            if spy is not None:
                spy.__enter__()
            result = run_load(
                server.port,
                requests,
                clients=clients,
                warmup_s=args.warmup,
                duration_s=args.duration,
                check=CHECK,
                cpu=meter,
            )
            if spy is not None:
                spy.__exit__(None, None, None)
                if spy.summary is not None:
                    profile = {"clients": clients, **spy.summary}
            results.append(result)
            expected = max(expected, result.rate * 3)
            console_line(prepared.url, result)
            if between is not None:
                between(clients)
    return results, profile


def console_line(url: str, result: LoadResult) -> None:
    store = "sqlite" if url.startswith("sqlite") else "postgres"
    s = result.summary()
    print(
        f"  earn {store} c={result.clients}: {s['per_s']}/s p50 {s['p50_ms']} ms "
        f"p99 {s['p99_ms']} ms failed {s['failed']}",
        flush=True,
    )


# -- SQLite's own limit ---------------------------------------------------------------


def sqlite_tpcb(path: Path, clients: int, duration_s: float) -> dict[str, Any]:
    """pgbench's tpcb-like transaction on SQLite through Python's sqlite3, with jifen's
    settings (WAL, synchronous=NORMAL, BEGIN IMMEDIATE): the rate at which this machine
    commits small write transactions to one SQLite file from `clients` threads."""
    accounts = 100_000
    setup = sqlite3.connect(path, isolation_level=None)
    setup.execute("PRAGMA journal_mode=WAL")
    setup.executescript(
        """
        CREATE TABLE IF NOT EXISTS branches (bid INTEGER PRIMARY KEY, bbalance INTEGER);
        CREATE TABLE IF NOT EXISTS tellers (tid INTEGER PRIMARY KEY, bid INTEGER,
                                            tbalance INTEGER);
        CREATE TABLE IF NOT EXISTS accounts (aid INTEGER PRIMARY KEY, bid INTEGER,
                                             abalance INTEGER, filler CHAR(84));
        CREATE TABLE IF NOT EXISTS history (tid INTEGER, bid INTEGER, aid INTEGER,
                                            delta INTEGER, mtime TIMESTAMP, filler CHAR(22));
        """
    )
    if setup.execute("SELECT count(*) FROM accounts").fetchone()[0] == 0:
        setup.execute("BEGIN")
        setup.execute("INSERT INTO branches VALUES (1, 0)")
        setup.executemany("INSERT INTO tellers VALUES (?, 1, 0)", [(t,) for t in range(1, 11)])
        setup.executemany(
            "INSERT INTO accounts VALUES (?, 1, 0, '')", [(a,) for a in range(1, accounts + 1)]
        )
        setup.execute("COMMIT")
    setup.close()
    latencies: list[float] = []
    lock = threading.Lock()
    stop_at = time.perf_counter() + duration_s
    barrier = threading.Barrier(clients)

    def client(seed: int) -> None:
        rng = random.Random(seed)
        conn = sqlite3.connect(path, isolation_level=None, timeout=30, check_same_thread=False)
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA busy_timeout=30000")
        mine = []
        barrier.wait()
        while (t0 := time.perf_counter()) < stop_at:
            aid, tid, delta = rng.randint(1, accounts), rng.randint(1, 10), rng.randint(-5000, 5000)
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("UPDATE accounts SET abalance = abalance + ? WHERE aid = ?", (delta, aid))
            conn.execute("SELECT abalance FROM accounts WHERE aid = ?", (aid,)).fetchone()
            conn.execute("UPDATE tellers SET tbalance = tbalance + ? WHERE tid = ?", (delta, tid))
            conn.execute("UPDATE branches SET bbalance = bbalance + ? WHERE bid = 1", (delta,))
            conn.execute(
                "INSERT INTO history VALUES (?, 1, ?, ?, CURRENT_TIMESTAMP, '')", (tid, aid, delta)
            )
            conn.execute("COMMIT")
            mine.append(time.perf_counter() - t0)
        conn.close()
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    latencies.sort()
    return {
        "clients": clients,
        "duration_s": round(elapsed, 2),
        "mode": "tpcb-like on SQLite (Python sqlite3, WAL, synchronous=NORMAL)",
        "tps": round(len(latencies) / elapsed, 1),
        "p50_ms": round(percentile(latencies, 50) * 1000, 2) if latencies else None,
        "p99_ms": round(percentile(latencies, 99) * 1000, 2) if latencies else None,
    }


# -- the run --------------------------------------------------------------------------


def run_postgres(args: argparse.Namespace, extra: list[str]) -> dict[str, Any]:
    with durable_cluster() as cluster:
        found: dict[str, Any] = {"machine": machine(cluster)}
        now = utc_now()
        print(f"postgres: preparing jifen ({args.members:,} members) and pgbench", flush=True)
        prepared = prepare(cluster.create_database("jifen"), now=now)
        members = enrol_members(prepared.url, prepared.program_id, args.members, now=now)
        pgbench = PgBench(cluster, scale=args.pgbench_scale).init()
        pg_pid = postmaster_pid(cluster)
        limits: dict[int, dict[str, Any]] = {}

        def beside(clients: int) -> None:
            limits[clients] = pgbench.run(clients, args.duration, cpu=CpuMeter(postgres_pid=pg_pid))
            print(f"  pgbench c={clients}: {limits[clients]['tps']} TPS", flush=True)

        results, profile = earn_levels(
            prepared, members, args, args.clients, extra, postgres_pid=pg_pid, between=beside
        )
        levels = []
        for result in results:
            level = result.summary()
            level["pgbench"] = limits[result.clients]
            level["ratio_to_pgbench"] = ratio(result.rate, limits[result.clients]["tps"])
            levels.append(level)
        peak = max(levels, key=lambda level: level["per_s"])
        found["pgbench_scale"] = args.pgbench_scale
        found["pgbench_init_s"] = pgbench.init_s
        found["levels"] = levels
        found["headline"] = {
            "clients": peak["clients"],
            "purchases_per_s": peak["per_s"],
            "pgbench_tps": peak["pgbench"]["tps"],
            "ratio": peak["ratio_to_pgbench"],
            "p99_ms": peak["p99_ms"],
            "target_ratio": 0.5,
            "first_milestone_ratio": 0.25,
            "target_p99_ms": 25,
            "meets_ratio": (peak["ratio_to_pgbench"] or 0) >= 0.5,
            "meets_p99": peak["p99_ms"] is not None and peak["p99_ms"] <= 25,
        }
        if profile:
            found["server_profile"] = profile
        return found


def run_sqlite(args: argparse.Namespace, extra: list[str]) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="jifen-bench-sqlite-") as tmp:
        now = utc_now()
        print(f"sqlite: preparing jifen ({args.members:,} members)", flush=True)
        prepared = prepare(f"sqlite:///{tmp}/jifen.db", now=now)
        members = enrol_members(prepared.url, prepared.program_id, args.members, now=now)
        limits: dict[int, dict[str, Any]] = {}

        def beside(clients: int) -> None:
            limits[clients] = sqlite_tpcb(Path(tmp) / "tpcb.db", clients, args.duration)
            print(f"  sqlite tpcb-like c={clients}: {limits[clients]['tps']} TPS", flush=True)

        results, _ = earn_levels(
            prepared, members, args, args.sqlite_clients, extra, postgres_pid=None, between=beside
        )
        levels = []
        for result in results:
            level = result.summary()
            level["sqlite_tpcb"] = limits[result.clients]
            level["ratio_to_sqlite_tpcb"] = ratio(result.rate, limits[result.clients]["tps"])
            levels.append(level)
        return {"levels": levels}


def clients_list(text: str) -> list[int]:
    values = [int(part) for part in text.split(",") if part.strip()]
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError("a comma-separated list of client counts >= 1")
    return values


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clients", type=clients_list, default=[1, 8, 32, 128])
    parser.add_argument("--sqlite-clients", type=clients_list, default=[1, 8])
    parser.add_argument("--duration", type=int, default=20, help="seconds measured per level")
    parser.add_argument("--warmup", type=float, default=5, help="seconds before each level")
    parser.add_argument("--members", type=int, default=20_000)
    parser.add_argument("--pgbench-scale", type=int, default=50)
    parser.add_argument("--store", choices=["postgres", "sqlite", "both"], default="both")
    parser.add_argument(
        "--server-args",
        help="extra `jifen serve` arguments (default: --workers <CPUs> if serve has it)",
    )
    parser.add_argument(
        "--max-rate",
        type=float,
        default=1500,
        help="requests/s to pre-build for at least (more after a faster level)",
    )
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--profile", type=int, help="py-spy the server at this client count")
    args = parser.parse_args()
    extra = server_args(args.server_args)
    payload: dict[str, Any] = {
        "benchmark": "earn",
        "settings": {
            "clients": args.clients,
            "sqlite_clients": args.sqlite_clients,
            "duration_s": args.duration,
            "warmup_s": args.warmup,
            "members": args.members,
            "server_args": extra,
            "seed": args.seed,
        },
    }
    if args.store in ("postgres", "both"):
        postgres = run_postgres(args, extra)
        payload["machine"] = postgres.pop("machine")
        payload["postgres"] = postgres
    if args.store in ("sqlite", "both"):
        payload["sqlite"] = run_sqlite(args, extra)
    report(payload)
    write_results("earn", payload)


def report(payload: dict[str, Any]) -> None:
    columns = [
        "store / clients",
        "purchases/s",
        "p50 ms",
        "p99 ms",
        "failed",
        "limit TPS",
        "limit p99 ms",
        "ratio",
        "client cpu/s",
        "server cpu/s",
        "pg cpu/s",
    ]
    rows = []
    for store, limit_key, ratio_key in (
        ("postgres", "pgbench", "ratio_to_pgbench"),
        ("sqlite", "sqlite_tpcb", "ratio_to_sqlite_tpcb"),
    ):
        for level in payload.get(store, {}).get("levels", []):
            rows.append(
                [
                    f"{store} {level['clients']}",
                    level["per_s"],
                    level["p50_ms"],
                    level["p99_ms"],
                    level["failed"],
                    level[limit_key]["tps"],
                    level[limit_key]["p99_ms"],
                    level[ratio_key],
                    level["client_cpu_per_wall_s"],
                    level["server_cpu_per_wall_s"],
                    level["postgres_cpu_per_wall_s"],
                ]
            )
    show(
        "earn: POST /v1/purchases beside pgbench tpcb-like (PostgreSQL) and a tpcb-like "
        "transaction on SQLite",
        columns,
        rows,
    )
    headline = payload.get("postgres", {}).get("headline")
    if headline:
        print(
            f"headline: at {headline['clients']} clients earn {headline['purchases_per_s']}/s = "
            f"{headline['ratio']} × pgbench ({headline['pgbench_tps']} TPS), "
            f"p99 {headline['p99_ms']} ms (targets: ratio >= 0.5, p99 <= 25 ms)"
        )
    for store in ("postgres", "sqlite"):
        for level in payload.get(store, {}).get("levels", []):
            if level.get("failures"):
                print(f"{store} {level['clients']} clients: failures {level['failures']}")
            if level.get("exhausted"):
                print(f"{store} {level['clients']} clients: pre-built requests ran out")


if __name__ == "__main__":
    main()
