"""Purchases/s under concurrent load through a real `jifen serve`, with the server's CPU and
(optionally) a py-spy profile: the loop used to make earning fast (issue 5, "Make it fast").

A throw-away durable PostgreSQL cluster (fsync and synchronous commit on) or a SQLite
file, the retail chain's example programme applied, `--members` members enrolled, and a
`jifen serve` subprocess (extra arguments with `--server-args`, e.g. "--workers 2").
`--clients` asyncio clients, each on one keep-alive HTTP/1.1 connection, post pre-built
1–6 line baskets (the retail chain's stores and categories, a random member, a unique
order id and Idempotency-Key each) for `--seconds` after a warm-up. Every response is
checked (201 and points >= 0); a refusal is counted and reported, never hidden.

Reported: purchases/s, p50/p99 latency, failures, the CPU seconds per wall second of the
server's process tree and of this client, the server's CPU milliseconds per purchase (the
figure that moves least with the load of a shared machine), on PostgreSQL the backends'
sampled wait events (IO/WalSync: commits waiting for the disk; Lock/…: row locks; CPU:
working; few active backends: PostgreSQL waits for the server), and with `--profile FILE` a py-spy profile of
every server process (speedscope JSON, or an SVG flame graph if FILE ends in .svg).

    .venv/bin/python bench/earn_load.py [--clients 8] [--seconds 20] [--members 2000]
        [--store postgres|sqlite] [--server-args "--workers 2"] [--profile out.svg]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "bench"))

from jifen.db.migrate import upgrade
from jifen.db.uow import Database
from common import analyze_seeded
from pgcluster import PgCluster
from statements import prepare

CATEGORIES = ["fresh", "dairy", "snacks", "drinks", "household", "frozen", "baby"]
STORES = ["sh-001", "sh-002", "bj-001"]
CHANNELS = ["store", "app", "mini_program"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def basket(rng: random.Random, member_id: int) -> dict[str, Any]:
    lines = []
    total = 0
    for _ in range(rng.randint(1, 6)):
        cents = rng.randint(100, 20000)
        quantity = rng.randint(1, 3)
        total += cents * quantity
        lines.append(
            {
                "sku": f"sku-{rng.randint(1, 500)}",
                "category": rng.choice(CATEGORIES),
                "quantity": quantity,
                "unit_price": f"{cents // 100}.{cents % 100:02d}",
            }
        )
    channel = rng.choice(CHANNELS)
    return {
        "member": {"id": member_id},
        "external_id": f"order-{uuid.uuid4()}",
        "occurred_at": (datetime.now(UTC) - timedelta(seconds=1)).isoformat(),
        "channel": channel,
        "store": rng.choice(STORES) if channel == "store" else None,
        "lines": lines,
        "total": f"{total // 100}.{total % 100:02d}",
    }


def request_bytes(port: int, key: str, body: dict[str, Any]) -> bytes:
    payload = json.dumps(body).encode()
    head = (
        f"POST /v1/purchases HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Authorization: Bearer {key}\r\nIdempotency-Key: {uuid.uuid4()}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n"
    )
    return head.encode() + payload


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n"):
        if line[:15].lower() == b"content-length:":
            length = int(line[15:])
    return status, await reader.readexactly(length)


async def run_clients(
    port: int, requests: list[bytes], clients: int, seconds: float, warmup: float
) -> dict[str, Any]:
    latencies: list[float] = []
    failures: dict[str, int] = {}
    position = 0
    measuring = False
    deadline = 0.0

    async def client() -> None:
        nonlocal position
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while True:
                now = time.perf_counter()
                if deadline and now >= deadline:
                    return
                if position >= len(requests):
                    raise SystemExit("ran out of pre-built requests: raise --max-requests")
                data = requests[position]
                position += 1
                t0 = time.perf_counter()
                writer.write(data)
                status, body = await read_response(reader)
                took = time.perf_counter() - t0
                ok = status == 201 and json.loads(body).get("points", -1) >= 0
                if not measuring:
                    continue
                if ok:
                    latencies.append(took)
                else:
                    reason = f"{status} {body[:160].decode('utf-8', 'replace')}"
                    failures[reason] = failures.get(reason, 0) + 1
        finally:
            writer.close()

    tasks = [asyncio.create_task(client()) for _ in range(clients)]
    await asyncio.sleep(warmup)
    measuring = True
    started = time.perf_counter()
    deadline = started + seconds
    await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - started
    latencies.sort()
    done = len(latencies)
    return {
        "purchases": done,
        "purchases_per_s": round(done / elapsed, 1),
        "p50_ms": round(latencies[done // 2] * 1000, 2) if done else None,
        "p99_ms": round(latencies[max(0, int(done * 0.99) - 1)] * 1000, 2) if done else None,
        "failures": failures,
        "elapsed_s": round(elapsed, 2),
    }


def sample_waits(url: str, stop: threading.Event, found: Counter[str]) -> None:
    """What PostgreSQL's backends are doing, every 10 ms (pg_stat_activity)."""
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


def tree_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process and its live children (uvicorn workers)."""
    total = 0.0
    tick = os.sysconf("SC_CLK_TCK")
    pids = [pid]
    children = Path(f"/proc/{pid}/task/{pid}/children")
    if children.exists():
        pids += [int(p) for p in children.read_text().split()]
    for one in pids:
        try:
            fields = Path(f"/proc/{one}/stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue
        total += (int(fields[11]) + int(fields[12])) / tick
    return total


def wait_ready(port: int, server: subprocess.Popen[bytes]) -> None:
    for _ in range(600):
        if server.poll() is not None:
            raise SystemExit(f"jifen serve exited with {server.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
                sock.sendall(b"GET /v1/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                if sock.recv(12).endswith(b"200"):
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise SystemExit("jifen serve did not answer /v1/health")


def measure(url: str, args: argparse.Namespace) -> dict[str, Any]:
    upgrade(url)
    db = Database(url)
    try:
        key, ids = prepare(db, args.members)
        analyze_seeded(db)
    finally:
        db.dispose()
    port = free_port()
    rng = random.Random(7)
    count = args.max_requests
    requests = [request_bytes(port, key, basket(rng, rng.choice(ids))) for _ in range(count)]
    env = os.environ | {
        "JIFEN_DATABASE_URL": url,
        "JIFEN_DB_POOL_SIZE": str(args.clients + 4),
    }
    command = [str(Path(sys.executable).parent / "jifen"), "serve", "--port", str(port)]
    server = subprocess.Popen(
        [*command, *shlex.split(args.server_args)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=None if args.verbose else subprocess.DEVNULL,
    )
    spy = None
    try:
        wait_ready(port, server)
        time.sleep(0.5)
        if args.profile:
            spy_bin = Path(sys.executable).parent / "py-spy"
            found = str(spy_bin) if spy_bin.exists() else shutil.which("py-spy")
            if found is None:
                raise SystemExit("--profile needs py-spy (.venv/bin/pip install py-spy)")
            fmt = "flamegraph" if args.profile.endswith(".svg") else "speedscope"
            spy = subprocess.Popen(
                [
                    found,
                    "record",
                    "--pid",
                    str(server.pid),
                    "--subprocesses",
                    "--rate",
                    "250",
                    "--gil",
                ]
                + ["--format", fmt, "--output", args.profile, "--nonblocking"]
                + (["--idle"] if args.idle else [])
                + ["--duration", str(int(args.seconds + args.warmup))],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        waits: Counter[str] = Counter()
        stop = threading.Event()
        sampler = None
        if url.startswith("postgresql"):
            sampler = threading.Thread(target=sample_waits, args=(url, stop, waits), daemon=True)
            sampler.start()
        cpu0, client0, wall0 = tree_cpu_seconds(server.pid), time.process_time(), time.time()
        result = asyncio.run(run_clients(port, requests, args.clients, args.seconds, args.warmup))
        wall = time.time() - wall0
        stop.set()
        if sampler is not None:
            sampler.join()
            samples = waits.pop("(samples)", 0) or 1
            result["pg_active_backends"] = round(sum(waits.values()) / samples, 2)
            result["pg_waits_per_sample"] = {
                event: round(n / samples, 3) for event, n in waits.most_common(8)
            }
        server_cpu = tree_cpu_seconds(server.pid) - cpu0
        result["server_cpu_per_s"] = round(server_cpu / wall, 2)
        served = result["purchases"] * wall / result["elapsed_s"] if result["purchases"] else 0
        result["server_cpu_ms_per_purchase"] = (
            round(1000 * server_cpu / served, 1) if served else None
        )
        result["client_cpu_per_s"] = round((time.process_time() - client0) / wall, 2)
        result["clients"] = args.clients
        result["server_args"] = args.server_args
    finally:
        if spy is not None:
            spy.wait(timeout=120)
        server.terminate()
        server.wait(timeout=30)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--warmup", type=float, default=3)
    parser.add_argument("--members", type=int, default=2000)
    parser.add_argument("--max-requests", type=int, default=60_000)
    parser.add_argument("--store", choices=["postgres", "sqlite"], default="postgres")
    parser.add_argument("--server-args", default="")
    parser.add_argument("--profile", help="py-spy output (.svg: flame graph; else speedscope)")
    parser.add_argument("--idle", action="store_true", help="profile idle threads too")
    parser.add_argument("--verbose", action="store_true", help="show the server's stderr")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        if args.store == "sqlite":
            result = measure(f"sqlite:///{tmp}/earn.db", args)
        else:
            with PgCluster(durable=True) as cluster:
                result = measure(cluster.create_database("earn"), args)
    print(json.dumps(result, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
