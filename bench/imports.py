"""Bulk import: purchases/s through `jifen import purchases`, beside plain COPY of the same
rows into the same tables, in the same run, on PostgreSQL (fsync on); and the same import
on SQLite.

    .venv/bin/python bench/imports.py [--members 20000] [--orders 200000] [--store both]

1. `jifen gen` makes members and orders (the retail chain's shape, seed 1, the last 12
   months), as CSV.
2. A fresh database with the retail chain's programme; the members are imported (timed
   too); then, on PostgreSQL, the database is copied (`CREATE DATABASE … TEMPLATE`), so
   the plain COPY later starts from the same state.
3. `jifen import purchases` (the library call the CLI makes: files read, orders checked
   with the API's schema, priced by the pure evaluator, booked in rounds) — timed from the
   first row read to the last commit. Rows written = the new rows of purchases,
   purchase_lines, journal_transactions, journal_entries, lots, outbox_events,
   tier_history and the other tier tables.
4. The limit: those same rows (`COPY (SELECT …) TO STDOUT`, read beforehand) written with
   `COPY … FROM STDIN` into the same tables of the copy, in one transaction, with the same
   indexes, foreign keys and the journal's balance trigger — timed to the commit.
   Ratio = import rows/s ÷ COPY rows/s (target ≥ 0.5). Beside it, the import's Python CPU
   microseconds per order (what moves least with the load of a shared machine).
SQLite has no COPY: its figure is the import's alone, beside executemany INSERTs of the
same rows into a copy of the file, measured the same way.

Results go to bench/results/imports.json.

`--waits` (PostgreSQL) also prints where the import's main thread waits for the server,
statement by statement: wall minus the main thread's CPU around each execute, each
`COPY`'s end (psycopg's writer thread feeds it; the main thread waits there for the
server to take the last rows and run the foreign keys' checks), the deferred checks
(made immediate just before the commit, to be timed apart) and the commit, summed per
kind over the run. The hooks cost a little Python of their own.
"""

from __future__ import annotations

import argparse
import io
import re
import threading
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import psycopg
from common import (
    ROOT,
    durable_cluster,
    machine,
    plain_url,
    prepare,
    ratio,
    show,
    utc_now,
    write_results,
)

from jifen.core.clock import FrozenClock
from jifen.db.uow import Database
from jifen.imports.files import FileFormat, Rejects, read_rows
from jifen.imports.members import import_members
from jifen.imports.orders import REQUIRED
from jifen.imports.purchases import import_purchases

TABLES = (
    "journal_transactions",
    "journal_entries",
    "lots",
    "purchases",
    "purchase_lines",
    "outbox_events",
    "member_tiers",
    "tier_history",
    "tier_benefit_issues",
    "rule_counters",
)
"""The tables an import of purchases writes rows into (accounts are updated, not
written: their balances change in place)."""


def generate(folder: Path, members: int, orders: int, now: Any) -> None:
    # The last day is yesterday: `--end` is a whole day in the programme's time zone
    # (UTC+8), and today's later hours would be enrolments and orders in the future.
    end = now.date() - timedelta(days=1)
    start = end.replace(year=end.year - 1).isoformat()
    subprocess.run(
        [
            sys.executable,
            "-m",
            "jifen.cli",
            "gen",
            "--members",
            str(members),
            "--purchases",
            str(orders),
            "--seed",
            "1",
            "--start",
            start,
            "--end",
            end.isoformat(),
            "--out",
            str(folder),
        ],
        check=True,
        cwd=ROOT,
    )


class Waits:
    """The main thread's waits for PostgreSQL during an import, per kind (`--waits`)."""

    KINDS = (
        ("lock", re.compile(r"FOR UPDATE", re.S)),
        ("ids", re.compile(r"nextval")),
        ("update_rows", re.compile(r"^UPDATE \S+ AS t SET .* FROM unnest", re.S)),
        ("measures", re.compile(r"journal_entries|sum\(", re.S)),
        ("facts", re.compile(r"member_tiers|segment|purchases\.member_id", re.S)),
    )

    def __init__(self) -> None:
        self.main = threading.main_thread().ident
        self.by: dict[str, list[float]] = defaultdict(lambda: [0, 0.0, 0.0])
        self.statements: dict[str, list[float]] = defaultdict(lambda: [0, 0.0, 0.0])

    def add(self, kind: str, wall: float, cpu: float, statement: str | None = None) -> None:
        for table in (self.by[kind],) + ((self.statements[statement],) if statement else ()):
            table[0] += 1
            table[1] += wall
            table[2] += wall - cpu

    @contextmanager
    def timed(self, kind: str, statement: str | None = None) -> Iterator[None]:
        if threading.get_ident() != self.main:
            yield
            return
        wall, cpu = time.perf_counter(), time.thread_time()
        try:
            yield
        finally:
            self.add(kind, time.perf_counter() - wall, time.thread_time() - cpu, statement)

    @staticmethod
    def caller() -> str:
        """The jifen function whose statement waits (outside the bulk and db layers)."""
        frame = sys._getframe(2)
        while frame is not None:
            name = frame.f_code.co_filename
            if "/jifen/" in name and "/jifen/db/" not in name:
                return f"{frame.f_code.co_name} ({name.rsplit('/', 1)[1]})"
            frame = frame.f_back  # type: ignore[assignment]
        return "?"

    def kind_of(self, statement: str) -> str:
        for kind, pattern in self.KINDS:
            if pattern.search(statement):
                return kind
        return "other: " + " ".join(statement.split())[:70]

    @contextmanager
    def hooked(self, db: Database) -> Iterator[None]:
        from sqlalchemy import event

        import jifen.db.bulk as bulk

        started: dict[int, tuple[float, float, float, float]] = {}
        joined = [0.0, 0.0]  # the joins' wall and CPU so far (statements wait for them first)

        def before(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
            started[id(cursor)] = (time.perf_counter(), time.thread_time(), *joined)

        def after(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
            wall, cpu, join_wall, join_cpu = started.pop(id(cursor))
            if threading.get_ident() == self.main:
                kind = self.kind_of(statement)
                self.add(
                    kind,
                    time.perf_counter() - wall - (joined[0] - join_wall),
                    time.thread_time() - cpu - (joined[1] - join_cpu),
                    " ".join(statement.split())[:110],
                )

        behind = getattr(bulk, "_Behind", None)  # (the code before it had none)
        join = behind.join if behind is not None else None

        def timed_join(queue: Any) -> None:
            wall, cpu = time.perf_counter(), time.thread_time()
            try:
                join(queue)  # type: ignore[misc]
            finally:
                wall, cpu = time.perf_counter() - wall, time.thread_time() - cpu
                joined[0] += wall
                joined[1] += cpu
                if threading.get_ident() == self.main:
                    self.add(f"join: the COPYs queued behind, before {self.caller()}", wall, cpu)

        copying = bulk._copying

        @contextmanager
        def timed_copying(session: Any, table: Any, names: Any, n: int) -> Iterator[Any]:
            with self.timed(f"COPY {table.name} (whole)"):
                manager = copying(session, table, names, n)
                found = manager.__enter__()
                try:
                    yield found
                except BaseException as exc:
                    if not manager.__exit__(type(exc), exc, exc.__traceback__):
                        raise
                else:
                    with self.timed(f"COPY {table.name}: its end"):
                        manager.__exit__(None, None, None)

        commit = psycopg.Connection.commit

        def timed_commit(conn: Any) -> None:
            with self.timed("deferred checks (SET CONSTRAINTS ALL IMMEDIATE)"):
                conn.execute("SET CONSTRAINTS ALL IMMEDIATE")
            with self.timed("commit"):
                commit(conn)

        event.listen(db.engine, "before_cursor_execute", before)
        event.listen(db.engine, "after_cursor_execute", after)
        bulk._copying = timed_copying  # type: ignore[assignment]
        if behind is not None:
            behind.join = timed_join
        psycopg.Connection.commit = timed_commit  # type: ignore[method-assign]
        try:
            yield
        finally:
            bulk._copying = copying  # type: ignore[assignment]
            if behind is not None:
                behind.join = join
            psycopg.Connection.commit = commit  # type: ignore[method-assign]
            event.remove(db.engine, "before_cursor_execute", before)
            event.remove(db.engine, "after_cursor_execute", after)

    def show(self, seconds: float, cpu: float, main_cpu: float) -> None:
        waited = sum(w for k, (_, _, w) in self.by.items() if "(whole)" not in k)
        print(
            f"import {seconds:.2f} s wall, process CPU {cpu:.2f} s, main thread CPU "
            f"{main_cpu:.2f} s, main thread waiting on PostgreSQL {waited:.2f} s"
        )
        print(f"{'kind':<60} {'calls':>6} {'wall s':>8} {'waited s':>9}")
        for kind, (n, wall, wait) in sorted(self.by.items(), key=lambda kv: -kv[1][2]):
            print(f"{kind:<60} {n:>6} {wall:>8.2f} {wait:>9.2f}")
        print("statements:")
        for text, (n, wall, wait) in sorted(self.statements.items(), key=lambda kv: -kv[1][2])[:25]:
            print(f"{n:>6} {wall:>7.2f} {wait:>7.2f}  {text}")


WAITS: Waits | None = None


def counts(connect: Any) -> dict[str, int]:
    with connect() as conn:
        return {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in TABLES}


def timed_import(db: Database, program_id: int, folder: Path, now: Any) -> tuple[float, float, Any]:
    """Seconds, the Python process's CPU seconds (what moves least with the machine's
    load), and the import's summary."""
    rejects = Rejects(folder / "purchases.rejected.csv")
    hooks = WAITS.hooked(db) if WAITS is not None and db.dialect == "postgresql" else None
    if hooks is not None:
        hooks.__enter__()
    started = time.perf_counter()
    cpu = time.process_time()
    main_cpu = time.thread_time()
    summary = import_purchases(
        db,
        program_id,
        read_rows(folder / "purchases.csv", FileFormat.CSV, REQUIRED),
        clock=FrozenClock(now),
        actor="bench",
        rejects=rejects,
    )
    took = time.perf_counter() - started
    cpu = time.process_time() - cpu
    if hooks is not None:
        hooks.__exit__(None, None, None)
        assert WAITS is not None
        WAITS.show(took, cpu, time.thread_time() - main_cpu)
    rejects.close()
    return took, cpu, summary


def members_in(db: Database, program_id: int, folder: Path, now: Any) -> float:
    started = time.perf_counter()
    done = import_members(
        db,
        program_id,
        read_rows(folder / "members.csv", FileFormat.CSV, ()),
        clock=FrozenClock(now),
        rejects=Rejects(None),
    )
    assert done.rejected == 0, done
    return time.perf_counter() - started


def postgres(folder: Path, now: Any) -> dict[str, Any]:
    with durable_cluster() as cluster:
        url = cluster.create_database("jifen")
        prepared = prepare(url, now=now)
        db = Database(url)
        member_seconds = members_in(db, prepared.program_id, folder, now)
        db.dispose()
        with cluster.connect() as admin:
            admin.execute("CHECKPOINT")
            admin.execute("CREATE DATABASE plain TEMPLATE jifen")
        plain = url.rsplit("/", 1)[0] + "/plain"

        def connect_jifen() -> psycopg.Connection[Any]:
            return psycopg.connect(plain_url(url))

        before = counts(connect_jifen)
        db = Database(url)
        seconds, cpu, summary = timed_import(db, prepared.program_id, folder, now)
        db.dispose()
        after = counts(connect_jifen)
        written = {t: after[t] - before[t] for t in TABLES}
        # the same rows, read out, then written with plain COPY into the copy
        dumps: dict[str, bytes] = {}
        with connect_jifen() as conn:
            for table in TABLES:
                if not written[table]:
                    continue
                buffer = io.BytesIO()
                query = f"COPY (SELECT * FROM {table} ORDER BY id OFFSET {before[table]}) TO STDOUT"
                with conn.cursor().copy(query) as copy:  # type: ignore[arg-type]
                    for data in copy:
                        buffer.write(data)
                dumps[table] = buffer.getvalue()
        with psycopg.connect(plain_url(plain)) as conn:
            started = time.perf_counter()
            with conn.transaction():
                for table in TABLES:  # in this order the foreign keys are satisfied
                    if table in dumps:
                        with conn.cursor().copy(f"COPY {table} FROM STDIN") as copy:  # type: ignore[arg-type]
                            copy.write(dumps[table])
            copy_seconds = time.perf_counter() - started
        rows = sum(written.values())
        return {
            "store": "postgresql",
            "machine": machine(cluster),
            "members": {"rows": summary_rows(folder / "members.csv"), "seconds": member_seconds},
            **figures(summary, seconds, cpu, rows, written, copy_seconds, "COPY"),
        }


def sqlite(folder: Path, now: Any) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="jifen-bench-sqlite-"))
    try:
        path = work / "jifen.db"
        prepared = prepare(f"sqlite:///{path}", now=now)
        db = Database(prepared.url)
        member_seconds = members_in(db, prepared.program_id, folder, now)
        db.dispose()
        shutil.copyfile(path, work / "plain.db")

        def connect() -> sqlite3.Connection:
            return sqlite3.connect(path)

        before = counts(connect)
        db = Database(prepared.url)
        seconds, cpu, summary = timed_import(db, prepared.program_id, folder, now)
        db.dispose()
        after = counts(connect)
        written = {t: after[t] - before[t] for t in TABLES}
        source = sqlite3.connect(path)
        dumps = {
            t: source.execute(
                f"SELECT * FROM {t} ORDER BY id LIMIT -1 OFFSET {before[t]}"
            ).fetchall()
            for t in TABLES
            if written[t]
        }
        source.close()
        target = sqlite3.connect(work / "plain.db", isolation_level=None)
        target.execute("PRAGMA journal_mode=WAL")
        target.execute("PRAGMA synchronous=NORMAL")
        target.execute("PRAGMA foreign_keys=ON")
        started = time.perf_counter()
        target.execute("BEGIN IMMEDIATE")
        for table, rows in dumps.items():
            marks = ",".join("?" * len(rows[0]))
            target.executemany(f"INSERT INTO {table} VALUES ({marks})", rows)
        target.execute("COMMIT")
        insert_seconds = time.perf_counter() - started
        target.close()
        return {
            "store": "sqlite",
            "members": {"rows": summary_rows(folder / "members.csv"), "seconds": member_seconds},
            **figures(
                summary, seconds, cpu, sum(written.values()), written, insert_seconds, "INSERT"
            ),
        }
    finally:
        shutil.rmtree(work, ignore_errors=True)


def summary_rows(path: Path) -> int:
    with path.open("rb") as stream:
        return sum(1 for _ in stream) - 1


def figures(
    summary: Any,
    seconds: float,
    cpu: float,
    rows: int,
    written: dict[str, int],
    plain_seconds: float,
    how: str,
) -> dict[str, Any]:
    return {
        "orders": summary.orders,
        "imported": summary.imported,
        "rejected": summary.rejected,
        "lines": summary.rows,
        "seconds": round(seconds, 2),
        "python_cpu_seconds": round(cpu, 2),
        "python_cpu_us_per_order": round(cpu / max(summary.imported, 1) * 1e6),
        "orders_per_s": round(summary.imported / seconds, 1),
        "rows_written": rows,
        "rows_written_by_table": written,
        "rows_per_s": round(rows / seconds, 1),
        "plain": {
            "how": how,
            "seconds": round(plain_seconds, 3),
            "rows_per_s": round(rows / plain_seconds, 1),
        },
        "ratio": ratio(rows / seconds, rows / plain_seconds),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--members", type=int, default=20_000)
    parser.add_argument("--orders", type=int, default=200_000)
    parser.add_argument("--store", choices=["postgres", "sqlite", "both"], default="both")
    parser.add_argument("--data", type=Path, help="reuse files made by jifen gen here")
    parser.add_argument(
        "--waits", action="store_true", help="print where the import waits for PostgreSQL"
    )
    args = parser.parse_args()
    if args.waits:
        global WAITS
        WAITS = Waits()
    now = utc_now().replace(microsecond=0)
    folder = args.data or Path(tempfile.mkdtemp(prefix="jifen-bench-import-"))
    if not (folder / "purchases.csv").exists():
        generate(folder, args.members, args.orders, now)
    results = []
    if args.store in ("postgres", "both"):
        results.append(postgres(folder, now))
    if args.store in ("sqlite", "both"):
        results.append(sqlite(folder, now))
    show(
        "bulk import of purchases (retail chain, jifen gen shape)",
        [
            "store",
            "orders",
            "lines",
            "orders/s",
            "Python µs/order",
            "rows written",
            "rows/s",
            "plain rows/s",
            "ratio",
        ],
        [
            (
                r["store"],
                r["imported"],
                r["lines"],
                r["orders_per_s"],
                r["python_cpu_us_per_order"],
                r["rows_written"],
                r["rows_per_s"],
                f"{r['plain']['rows_per_s']:,.0f} ({r['plain']['how']})",
                r["ratio"],
            )
            for r in results
        ],
    )
    write_results("imports", {"benchmark": "imports", "runs": results})


if __name__ == "__main__":
    main()
