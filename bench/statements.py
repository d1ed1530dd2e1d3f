"""SQL statements per POST /v1/purchases, by kind: where an earning request's round trips go;
and the Python work per purchase, counted.

The app runs in-process (FastAPI's test client, the system clock) on a throw-away
PostgreSQL cluster or a SQLite file, with the retail chain's example programme applied
(src/jifen/programs/examples/retail-chain.yaml: base rate, double fresh, member day, the
tier multiplier, best-of thresholds, growth value, four tiers). Every statement the
engine sends is counted through SQLAlchemy's `before_cursor_execute` event and put in a
kind (`SELECT accounts`, `INSERT lots`, `SAVEPOINT` …); the transaction's own round trips
(BEGIN, COMMIT, the pool's pre-ping) are counted from the engine's and the pool's events.

Then as many purchases again go through the route's function itself (the idempotent unit
of work, the service, the answer; no HTTP) under cProfile, which counts the Python
function calls per purchase: a measure of the server's CPU work that, unlike a timer,
does not change with the load of a shared machine. The CPU time of that phase is shown
too, for what it is worth on a busy machine.

    .venv/bin/python bench/statements.py [--n 200] [--members 50] [--store postgres|sqlite]

Prints the kinds with statements per purchase, the total, and the calls per purchase.
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import event

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from jifen.access.service import Scope, create_key
from jifen.api.app import create_app
from jifen.core.clock import SystemClock
from jifen.db.migrate import upgrade
from jifen.db.uow import Database
from jifen.members import service as members
from jifen.members.schemas import MemberCreate
from jifen.programs.apply import apply
from jifen.programs.config import load_program_file
from jifen.programs.service import book_for
from pgcluster import PgCluster

EXAMPLE = ROOT / "src" / "jifen" / "programs" / "examples" / "retail-chain.yaml"
CATEGORIES = ["fresh", "dairy", "snacks", "drinks", "household"]
STORES = ["sh-001", "sh-002", "bj-001"]

_TABLE = re.compile(
    r'^\s*(?:(SELECT)\b.*?\bFROM\s+"?(\w+)|(INSERT)\s+INTO\s+"?(\w+)|(UPDATE)\s+"?(\w+)'
    r'|(DELETE)\s+FROM\s+"?(\w+)|(\w+))',
    re.IGNORECASE | re.DOTALL,
)


def kind_of(statement: str) -> str:
    """`SELECT accounts`, `INSERT lots`, `SAVEPOINT` … (the first table a statement names)."""
    found = _TABLE.match(statement)
    if found is None:
        return statement.split(None, 1)[0].upper()
    parts = [part for part in found.groups() if part]
    return " ".join([parts[0].upper(), *parts[1:2]])


class Counting:
    """Counts what an engine sends while `on` is set."""

    def __init__(self, db: Database) -> None:
        self.kinds: Counter[str] = Counter()
        self.on = False
        event.listen(db.engine, "before_cursor_execute", self._statement)
        event.listen(db.engine, "begin", self._begin)
        event.listen(db.engine, "commit", self._commit)
        event.listen(db.engine, "rollback", self._rollback)
        if db.engine.pool._pre_ping:  # the pre-ping is a round trip too
            event.listen(db.engine.pool, "checkout", self._checkout)

    def _statement(self, _conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if self.on:
            self.kinds[kind_of(statement)] += 1

    def _begin(self, _conn: Any) -> None:
        if self.on:
            self.kinds["(BEGIN)"] += 1

    def _commit(self, _conn: Any) -> None:
        if self.on:
            self.kinds["(COMMIT)"] += 1

    def _rollback(self, _conn: Any) -> None:
        if self.on:
            self.kinds["(ROLLBACK)"] += 1

    def _checkout(self, *_: Any) -> None:
        if self.on:
            self.kinds["(pre-ping)"] += 1

    @contextmanager
    def counting(self) -> Iterator[None]:
        self.on = True
        try:
            yield
        finally:
            self.on = False


def prepare(db: Database, member_count: int) -> tuple[str, list[int]]:
    now = SystemClock().now()
    file = load_program_file(EXAMPLE.read_text(encoding="utf-8"), str(EXAMPLE))

    def setup(session):  # type: ignore[no-untyped-def]
        applied = apply(session, file, now=now, actor="bench")
        from jifen.programs.service import get_program

        program = get_program(session, applied.program_id)
        book = book_for(session, program)
        key = create_key(
            session, program.id, name="till", scope=Scope.POS, now=now, created_by="bench"
        )[1]
        ids = [
            members.enrol(session, book, MemberCreate(phone=f"139{i:08d}"), now=now).id
            for i in range(member_count)
        ]
        return key, ids

    return db.write(setup)  # type: ignore[no-any-return]


def order(i: int, member_id: int) -> dict[str, object]:
    lines = []
    total = 0
    for j in range(1 + i % 6):
        cents = 100 + (i * 7919 + j * 104729) % 20000
        total += cents * (1 + j % 3)
        lines.append(
            {
                "sku": f"sku-{(i + j) % 500}",
                "category": CATEGORIES[(i + j) % len(CATEGORIES)],
                "quantity": 1 + j % 3,
                "unit_price": f"{cents // 100}.{cents % 100:02d}",
            }
        )
    return {
        "member": {"id": member_id},
        "external_id": f"order-{uuid.uuid4()}",
        "occurred_at": (datetime.now(UTC) - timedelta(seconds=1)).isoformat(),
        "channel": "store",
        "store": STORES[i % len(STORES)],
        "lines": lines,
        "total": f"{total // 100}.{total % 100:02d}",
    }


def calls_per_purchase(
    db: Database, key: str, ids: list[int], n: int, dump: str | None = None
) -> tuple[float, float]:
    """Python function calls and CPU milliseconds per purchase through the route function
    (the profile written to `dump`, for `python -m pstats`, if given)."""
    import cProfile
    import json
    import pstats
    import time

    from jifen.api.deps import WriteCall
    from jifen.api.purchases import record_purchase
    from jifen.core.settings import Settings
    from jifen.earning.schemas import PurchaseIn

    settings = Settings()
    calls = []
    for i in range(n):
        body = json.loads(json.dumps(order(10**6 + i, ids[i % len(ids)])))
        call = WriteCall(
            db=db,
            clock=SystemClock(),
            settings=settings,
            token=key,
            method="POST",
            path="/v1/purchases",
            idempotency_key=str(uuid.uuid4()),
            body=body,
        )
        calls.append((PurchaseIn.model_validate(body), call))
    profile = cProfile.Profile()
    started = time.process_time()
    profile.enable()
    for data, call in calls:
        if record_purchase(data, call).status_code != 201:
            raise SystemExit("purchase refused")
    profile.disable()
    cpu = time.process_time() - started
    if dump is not None:
        profile.dump_stats(dump)
    total = pstats.Stats(profile).total_calls  # type: ignore[attr-defined]
    return total / n, 1000 * cpu / n


def measure(
    url: str, n: int, member_count: int, dump: str | None = None
) -> tuple[Counter[str], int, float, float]:
    upgrade(url)
    db = Database(url)
    try:
        key, ids = prepare(db, member_count)
        counter = Counting(db)
        app = create_app(db, SystemClock())
        headers = {"Authorization": f"Bearer {key}"}
        with TestClient(app) as client:

            def post(i: int) -> None:
                response = client.post(
                    "/v1/purchases",
                    json=order(i, ids[i % len(ids)]),
                    headers=headers | {"Idempotency-Key": str(uuid.uuid4())},
                )
                if response.status_code != 201:
                    raise SystemExit(f"purchase refused: {response.status_code} {response.text}")

            for i in range(len(ids)):  # warm up: every member's first purchase, caches
                post(i)
            with counter.counting():
                for i in range(n):
                    post(len(ids) + i)
        calls, cpu_ms = calls_per_purchase(db, key, ids, n, dump)
        return counter.kinds, n, calls, cpu_ms
    finally:
        db.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--members", type=int, default=50)
    parser.add_argument("--store", choices=["postgres", "sqlite"], default="postgres")
    parser.add_argument("--pstats", help="write the cProfile profile of the calls phase here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        if args.store == "sqlite":
            found = measure(f"sqlite:///{tmp}/statements.db", args.n, args.members, args.pstats)
        else:
            with PgCluster() as cluster:
                found = measure(
                    cluster.create_database("statements"), args.n, args.members, args.pstats
                )
    kinds, n, calls, cpu_ms = found
    print(f"{'statements per purchase':<32} {'count':>7}")
    for kind, count in sorted(kinds.items(), key=lambda item: (-item[1], item[0])):
        print(f"{kind:<32} {count / n:>7.2f}")
    print(f"{'total':<32} {sum(kinds.values()) / n:>7.2f}")
    print(f"{'Python calls per purchase':<32} {calls:>7.0f}")
    print(f"{'CPU ms per purchase (profiled)':<32} {cpu_ms:>7.1f}")


if __name__ == "__main__":
    main()
