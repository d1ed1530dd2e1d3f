"""Balance reads through the HTTP API beside pgbench select-only: GET
/v1/members/{id}/balance reads/s and p50/p99 at 32 concurrent clients on PostgreSQL, and
`pgbench -S` (one primary-key SELECT per transaction) at the same client count on the
same server in the same run.

    .venv/bin/python bench/reads.py [--clients 32] [--duration 20] [--warmup 5]
        [--members 20000] [--pgbench-scale 50] [--server-args "--workers 2"] [--profile]

The members (seeded set-based, bench/seed.py) have three lots each, expiring 1–700 days
from now (so some answer with points expiring within 30 days) and growth value; nothing
is due, so every read is a read (a member with something due is brought up to date by a
short write first, which is the earn benchmark's business). Each request reads a random
member of the pool; every answer is checked (200 and `available` >= 0).

Target: p99 <= 5 ms at 32 clients. Results: bench/results/reads.json.
"""

from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.common import (  # noqa: E402
    CpuMeter,
    PgBench,
    Profile,
    Server,
    connect,
    durable_cluster,
    http_request,
    json_field_check,
    machine,
    postmaster_pid,
    prepare,
    ratio,
    run_load,
    server_args,
    show,
    utc_now,
    write_results,
)
from bench.earn import clients_list  # noqa: E402
from bench.seed import Shape, check_ledger, seed_ledger  # noqa: E402
from jifen.access.service import Scope  # noqa: E402

CHECK = json_field_check((200,), "available")
TARGET_P99_MS = 5


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clients", type=clients_list, default=[32])
    parser.add_argument("--duration", type=int, default=20)
    parser.add_argument("--warmup", type=float, default=5)
    parser.add_argument("--members", type=int, default=20_000)
    parser.add_argument("--pgbench-scale", type=int, default=50)
    parser.add_argument("--server-args")
    parser.add_argument("--max-rate", type=float, default=4000)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--profile", action="store_true", help="py-spy the server")
    args = parser.parse_args()
    extra = server_args(args.server_args)
    now = utc_now()
    rng = random.Random(args.seed)
    with durable_cluster() as cluster:
        payload: dict[str, Any] = {
            "benchmark": "reads",
            "machine": machine(cluster),
            "settings": {
                "clients": args.clients,
                "duration_s": args.duration,
                "warmup_s": args.warmup,
                "members": args.members,
                "server_args": extra,
                "pgbench_scale": args.pgbench_scale,
            },
        }
        print(f"preparing jifen ({args.members:,} members) and pgbench", flush=True)
        prepared = prepare(cluster.create_database("jifen"), now=now, scope=Scope.APP)
        conn = connect(prepared.url)
        seed_ledger(conn, prepared.program_id, Shape(members=args.members, live=3), now)
        conn.autocommit = True
        conn.execute("VACUUM ANALYZE")
        conn.autocommit = False
        checks = check_ledger(conn, prepared.program_id)
        members = [
            int(row[0])
            for row in conn.execute(
                "SELECT id FROM members WHERE program_id = %s ORDER BY id", [prepared.program_id]
            ).fetchall()
        ]
        conn.close()
        payload["seed_checks"] = checks
        pgbench = PgBench(cluster, scale=args.pgbench_scale).init()
        pg_pid = postmaster_pid(cluster)
        levels = []
        with Server(prepared.url, extra) as server:
            meter = CpuMeter(server_pid=server.pid, postgres_pid=pg_pid)
            host = f"127.0.0.1:{server.port}"
            headers = {"Authorization": f"Bearer {prepared.key}"}
            for clients in args.clients:
                count = int(args.max_rate * (args.warmup + args.duration))
                requests = [
                    http_request("GET", f"/v1/members/{rng.choice(members)}/balance", host, headers)
                    for _ in range(count)
                ]
                spy = Profile(server.pid) if args.profile else None
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
                level = result.summary()
                print(f"  reads c={clients}: {level['per_s']}/s p99 {level['p99_ms']} ms")
                limit = pgbench.run(
                    clients,
                    args.duration,
                    select_only=True,
                    cpu=CpuMeter(postgres_pid=pg_pid),
                )
                print(f"  pgbench -S c={clients}: {limit['tps']} TPS", flush=True)
                level["pgbench_select_only"] = limit
                level["ratio_to_pgbench"] = ratio(result.rate, limit["tps"])
                level["meets_p99"] = (
                    level["p99_ms"] is not None and level["p99_ms"] <= TARGET_P99_MS
                )
                if spy is not None and spy.summary is not None:
                    level["server_profile"] = spy.summary
                levels.append(level)
        payload["pgbench_init_s"] = pgbench.init_s
        payload["levels"] = levels
    show(
        "balance reads: GET /v1/members/{id}/balance beside pgbench select-only (PostgreSQL)",
        [
            "clients",
            "reads/s",
            "p50 ms",
            "p99 ms",
            "failed",
            "pgbench -S TPS",
            "pgbench p99 ms",
            "ratio",
            f"p99 ≤ {TARGET_P99_MS} ms",
            "client cpu/s",
            "server cpu/s",
            "pg cpu/s",
        ],
        [
            [
                level["clients"],
                level["per_s"],
                level["p50_ms"],
                level["p99_ms"],
                level["failed"],
                level["pgbench_select_only"]["tps"],
                level["pgbench_select_only"]["p99_ms"],
                level["ratio_to_pgbench"],
                "yes" if level["meets_p99"] else "no",
                level["client_cpu_per_wall_s"],
                level["server_cpu_per_wall_s"],
                level["postgres_cpu_per_wall_s"],
            ]
            for level in levels
        ],
    )
    for level in levels:
        if level.get("failures"):
            print(f"{level['clients']} clients: failures {level['failures']}")
    write_results("reads", payload)


if __name__ == "__main__":
    main()
