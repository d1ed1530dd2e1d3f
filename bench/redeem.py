"""Redemptions/s through the HTTP API on PostgreSQL: 16 concurrent clients, one hot reward.

A real `jifen serve` process (uvicorn, one process) on a throw-away PostgreSQL cluster
(fsync and synchronous commit on) and 16 client threads, each with its own keep-alive
HTTP connection, post `POST /v1/redemptions` for a coupon reward with plenty of stock
(a flash sale: everybody redeems the same 10 元 voucher), each for a member of its own
(1,600 members with points), each request its own transaction and Idempotency-Key.
Every redemption locks its member's account, debits the points, issues a coupon and takes
one unit of the ONE reward row with an atomic UPDATE, so every transaction in flight
queues on that row from its UPDATE to its commit.

What limited the figure is measured in the same run:
- the server process's CPU (user + system seconds per wall second, from /proc): near 1.0
  means the single Python process (the GIL) is the limit;
- PostgreSQL's backends' wait events, sampled every 10 ms from pg_stat_activity
  (`Lock/transactionid` or `Lock/tuple`: waiting for the hot row; `IO/WalSync`: commit);
- the same load on 16 rewards (one per client) instead of one, as a control: if it is
  no faster, the hot row is not what limits;
- with --profile, a py-spy profile of the server during the hot run, sampling only the
  thread that holds the GIL: where the server's CPU goes (in the JSON).

    .venv/bin/python bench/redeem.py [--n 3000] [--clients 16] [--profile]

Results go to bench/results/redeem.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))

from bench.common import free_port, summarise_profile, tree_cpu_seconds
from jifen.access.service import Scope, create_key
from jifen.core.clock import SystemClock
from jifen.db.migrate import upgrade
from jifen.db.uow import Database
from jifen.ledger import service as ledger
from jifen.members import service as members
from jifen.members.schemas import MemberCreate
from jifen.programs.rewards import RewardSpec
from jifen.programs.schemas import ProgramCreate
from jifen.programs.service import book_for, create_program
from jifen.rewards.catalog import put_reward
from pgcluster import PgCluster

MEMBERS_PER_CLIENT = 100
VOUCHER = {"kind": "fixed", "amount": "10", "min_spend": "50", "valid_days": 30}


def prepare(url: str, clients: int, rewards: int, n: int) -> tuple[str, list[int], list[str]]:
    upgrade(url)
    db = Database(url)
    now = SystemClock().now()
    count = clients * MEMBERS_PER_CLIENT
    per_member = 100 * (n // count + 2)
    codes = ["voucher-10"] if rewards == 1 else [f"voucher-{i}" for i in range(rewards)]

    def setup(session):  # type: ignore[no-untyped-def]
        program = create_program(session, ProgramCreate(code="bench", name="bench"), now=now)
        for code in codes:
            spec = RewardSpec(
                code=code, name="10 元券", kind="coupon", points=100, stock=10**9, coupon=VOUCHER
            )
            put_reward(session, program, spec, now=now)
        book = book_for(session, program)
        key = create_key(
            session, program.id, name="app", scope=Scope.APP, now=now, created_by="bench"
        )[1]
        ids = []
        for i in range(count):
            member = members.enrol(session, book, MemberCreate(phone=f"139{i:08d}"), now=now)
            ledger.credit(session, book, member.id, per_member, now=now, actor="bench")
            ids.append(member.id)
        return key, ids

    key, ids = db.write(setup)
    db.dispose()
    return key, ids, codes


def sample_waits(url: str, stop: threading.Event, found: Counter[str]) -> None:
    plain = url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(plain, autocommit=True) as conn:
        while not stop.is_set():
            rows = conn.execute(
                "SELECT coalesce(wait_event_type || '/' || wait_event, 'CPU (running)') "
                "FROM pg_stat_activity WHERE backend_type = 'client backend' "
                "AND state = 'active' AND pid <> pg_backend_pid()"
            ).fetchall()
            for (event,) in rows:
                found[event] += 1
            found["(samples)"] += 1
            time.sleep(0.01)


def run(url: str, n: int, clients: int, rewards: int, profile: Path | None) -> dict[str, Any]:
    key, ids, codes = prepare(url, clients, rewards, n)
    port = free_port()
    env = os.environ | {"JIFEN_DATABASE_URL": url, "JIFEN_DB_POOL_SIZE": str(clients + 4)}
    server = subprocess.Popen(
        [str(Path(sys.executable).parent / "jifen"), "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    spy = None
    try:
        base = f"http://127.0.0.1:{port}"
        headers = {"Authorization": f"Bearer {key}"}
        with httpx.Client(base_url=base, headers=headers) as probe:
            for _ in range(300):
                try:
                    if probe.get("/v1/health").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                time.sleep(0.1)
        latencies: list[float] = []
        refused: Counter[str] = Counter()
        lock = threading.Lock()
        start = threading.Barrier(clients + 1)

        def client(index: int, count: int, warm: bool) -> None:
            mine = ids[index * MEMBERS_PER_CLIENT : (index + 1) * MEMBERS_PER_CLIENT]
            reward = codes[index % len(codes)]
            with httpx.Client(base_url=base, headers=headers, timeout=60) as http:
                if not warm:
                    start.wait()
                for i in range(count):
                    body = {"member": {"id": mine[i % len(mine)]}, "reward": reward}
                    t0 = time.perf_counter()
                    response = http.post(
                        "/v1/redemptions", json=body, headers={"Idempotency-Key": str(uuid.uuid4())}
                    )
                    took = time.perf_counter() - t0
                    with lock:
                        if response.status_code == 201:
                            if not warm:
                                latencies.append(took)
                        else:
                            refused[f"{response.status_code} {response.text[:120]}"] += 1

        warmers = [threading.Thread(target=client, args=(i, 5, True)) for i in range(clients)]
        for thread in warmers:
            thread.start()
        for thread in warmers:
            thread.join()
        spy_bin = Path(sys.executable).parent / "py-spy"
        if profile is not None and (spy_bin.exists() or shutil.which("py-spy")):
            spy = subprocess.Popen(
                [
                    str(spy_bin) if spy_bin.exists() else "py-spy",
                    "record",
                    "--pid",
                    str(server.pid),
                    "--format",
                    "raw",
                    "--output",
                    str(profile),
                    "--rate",
                    "200",
                    "--nonblocking",
                    "--gil",
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            time.sleep(1)
        per_client = n // clients
        threads = [
            threading.Thread(target=client, args=(i, per_client, False)) for i in range(clients)
        ]
        for thread in threads:
            thread.start()
        waits: Counter[str] = Counter()
        stop = threading.Event()
        sampler = threading.Thread(target=sample_waits, args=(url, stop, waits))
        sampler.start()
        cpu_before = tree_cpu_seconds(server.pid)
        start.wait()
        started = time.perf_counter()
        for thread in threads:
            thread.join()
        elapsed = time.perf_counter() - started
        cpu = tree_cpu_seconds(server.pid) - cpu_before
        stop.set()
        sampler.join()
        if spy is not None:
            spy.send_signal(2)
            spy.wait(timeout=60)
    finally:
        server.terminate()
        server.wait(timeout=30)
    if refused:
        raise SystemExit(f"refused redemptions: {dict(refused)}")
    latencies.sort()
    done = len(latencies)
    samples = waits.pop("(samples)", 1)
    return {
        "rewards": rewards,
        "clients": clients,
        "redemptions": done,
        "redemptions_per_s": round(done / elapsed, 1),
        "p50_ms": round(statistics.median(latencies) * 1000, 2),
        "p99_ms": round(latencies[max(int(done * 0.99) - 1, 0)] * 1000, 2),
        "server_cpu_per_wall_s": round(cpu / elapsed, 2),
        "pg_active_backends_avg": round(sum(waits.values()) / samples, 2),
        "pg_wait_events_avg": {
            event: round(count / samples, 2) for event, count in waits.most_common(8)
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=3000)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--profile", action="store_true", help="py-spy the server (hot run)")
    args = parser.parse_args()
    results: dict[str, Any] = {}
    raw = ROOT / "bench" / "results" / "redeem-profile.raw"
    with PgCluster(durable=True) as cluster:
        results["one_hot_reward"] = run(
            cluster.create_database("hot"), args.n, args.clients, 1, raw if args.profile else None
        )
        results["one_reward_per_client"] = run(
            cluster.create_database("spread"), args.n, args.clients, args.clients, None
        )
    print(f"{'case':<24} {'redemptions/s':>14} {'p50 ms':>8} {'p99 ms':>8} {'server cpu':>11}")
    for case, r in results.items():
        print(
            f"{case:<24} {r['redemptions_per_s']:>14} {r['p50_ms']:>8} {r['p99_ms']:>8} "
            f"{r['server_cpu_per_wall_s']:>11}"
        )
        print(f"{'':<24} pg waits (avg backends): {r['pg_wait_events_avg']}")
    if args.profile and raw.exists():
        results["profile_of_the_hot_run"] = summarise_profile(raw)
        raw.unlink()
        print("server CPU (py-spy --gil): share of samples each function is on the stack")
        for line in results["profile_of_the_hot_run"]["inclusive"][:25]:
            print(f"  {line}")
    out = ROOT / "bench" / "results" / "redeem.json"
    out.write_text(
        json.dumps(
            {"measured_at": datetime.now(UTC).isoformat(), "cpus": os.cpu_count(), **results},
            indent=2,
        )
        + "\n"
    )
    print(f"written to {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
