"""Single-process ledger throughput: credits/s and spends/s through the service layer.

A first, rough figure for the foundation (the full benchmark suite with pgbench beside
it is issue 5). Each operation is its own transaction (lock, maintenance check, entries,
lots, commit), one client, as a POS call would be.

    .venv/bin/python bench/ledger_throughput.py [--n 2000] [--members 200]

PostgreSQL comes from JIFEN_BENCH_DATABASE_URL or a throw-away cluster (fsync on).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from jifen.core.clock import FrozenClock
from jifen.db.migrate import upgrade
from jifen.db.uow import Database
from jifen.ledger import service as ledger
from jifen.members import service as members
from jifen.members.schemas import MemberCreate
from jifen.programs.schemas import ProgramCreate
from jifen.programs.service import book_for, create_program
from pgcluster import PgCluster


def measure(url: str, n: int, member_count: int) -> dict[str, float]:
    upgrade(url)
    db = Database(url)
    clock = FrozenClock(datetime(2026, 1, 1, tzinfo=UTC))
    data = ProgramCreate(
        code="bench",
        name="bench",
        expiry_policy={"kind": "after_months", "months": 12, "round_to": "month"},
    )
    book = db.write(lambda s: book_for(s, create_program(s, data, now=clock.now())))
    ids = [
        db.write(
            lambda s, i=i: (
                members.enrol(s, book, MemberCreate(phone=f"139{i:08d}"), now=clock.now()).id
            )
        )
        for i in range(member_count)
    ]
    started = time.perf_counter()
    for i in range(n):
        db.write(
            lambda s, i=i: ledger.credit(
                s, book, ids[i % member_count], 100, now=clock.now(), actor="bench"
            )
        )
    credits = n / (time.perf_counter() - started)
    started = time.perf_counter()
    for i in range(n):
        db.write(
            lambda s, i=i: ledger.debit(
                s, book, ids[i % member_count], 30, now=clock.now(), actor="bench"
            )
        )
    spends = n / (time.perf_counter() - started)
    db.dispose()
    return {"credits_per_s": round(credits), "spends_per_s": round(spends)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--members", type=int, default=200)
    args = parser.parse_args()
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        results["sqlite"] = measure(f"sqlite:///{tmp}/bench.db", args.n, args.members)
    with PgCluster(durable=True) as cluster:
        results["postgresql"] = measure(cluster.create_database("bench"), args.n, args.members)
    print(f"{'store':<12}{'credits/s':>12}{'spends/s':>12}")
    for store, figures in results.items():
        print(f"{store:<12}{figures['credits_per_s']:>12}{figures['spends_per_s']:>12}")
    out = Path(__file__).parent / "results" / "ledger_throughput.json"
    out.write_text(json.dumps({"n": args.n, "members": args.members, **results}, indent=2))


if __name__ == "__main__":
    main()
