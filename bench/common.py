"""The benchmarks' shared harness: a durable throw-away PostgreSQL, a jifen database with
the retail chain's programme, members enrolled set-based, a real `jifen serve` process, a
cheap HTTP load generator, pgbench, and the results (a Rich table and a JSON file).

Every benchmark in bench/ reports its figures as ratios against a limit measured in the
same run on the same server (pgbench, a plain UPDATE, a plain aggregate...), so that a
figure means the same on a faster or a busier machine. The JSON written to
bench/results/<name>.json carries the machine (CPUs, memory, load average, PostgreSQL
version and settings, git commit, date) beside the figures.

The load generator is built to cost the server as little CPU as possible (client and
server share the machine's cores): every request is pre-built as bytes before the clock
starts, each simulated client is an asyncio task with one raw keep-alive HTTP/1.1
connection (no HTTP library), and the client's own CPU seconds are reported beside the
server's and PostgreSQL's, so a reader sees what each side took.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import platform
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
if str(ROOT / "tests") not in sys.path:
    sys.path.insert(0, str(ROOT / "tests"))

import psycopg  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402
from sqlalchemy import func, insert, select  # noqa: E402

from jifen.access.service import Scope, create_key  # noqa: E402
from jifen.db.migrate import upgrade  # noqa: E402
from jifen.db.uow import Database  # noqa: E402
from jifen.ledger.models import Account, AccountKind, AccountStatus  # noqa: E402
from jifen.members.models import Member  # noqa: E402
from jifen.members.schemas import MemberStatus  # noqa: E402
from jifen.programs import examples  # noqa: E402
from jifen.programs.apply import apply  # noqa: E402
from jifen.programs.config import load_program_file  # noqa: E402
from pgcluster import PgCluster  # noqa: E402

console = Console(width=None if sys.stdout.isatty() else 160)

PROGRAM = "retail-chain"
"""The example programme every benchmark runs (src/jifen/programs/examples/)."""

PG_SETTINGS = (
    "server_version",
    "fsync",
    "synchronous_commit",
    "full_page_writes",
    "wal_level",
    "shared_buffers",
    "work_mem",
    "max_wal_size",
    "checkpoint_timeout",
    "max_connections",
)


# -- statistics -----------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    """The nearest-rank `q`-th percentile (0 < q <= 100) of already *sorted* values: the
    smallest value that at least q% of the values are less than or equal to."""
    if not values:
        raise ValueError("no values")
    if not 0 < q <= 100:
        raise ValueError(f"percentile {q} is not in (0, 100]")
    rank = math.ceil(q / 100 * len(values))
    return values[max(rank, 1) - 1]


def ratio(figure: float | None, limit: float | None) -> float | None:
    """figure / limit, rounded for a table; None when either is missing or the limit 0."""
    if figure is None or not limit:
        return None
    return round(figure / limit, 3)


# -- the machine ----------------------------------------------------------------------


def _git(*args: str) -> str:
    try:
        return subprocess.run(
            ["git", *args], cwd=ROOT, capture_output=True, text=True, check=True, timeout=30
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def _meminfo_gib() -> float | None:
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024 / 1024, 1)
    return None


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def machine(cluster: PgCluster | None = None) -> dict[str, Any]:
    """What the figures were measured on (and when, from which commit)."""
    found: dict[str, Any] = {
        "cpus": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)),
        "cpu_model": _cpu_model(),
        "memory_gib": _meminfo_gib(),
        "load_average_at_start": load_average(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "git_commit": _git("rev-parse", "HEAD"),
        "git_dirty": bool(_git("status", "--porcelain", "--untracked-files=no")),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    if cluster is not None:
        found["postgresql"] = pg_settings(cluster)
    return found


# -- PostgreSQL -----------------------------------------------------------------------


def durable_cluster() -> PgCluster:
    """A throw-away cluster with fsync, synchronous commit and full-page writes on."""
    return PgCluster(durable=True)


def pg_settings(cluster: PgCluster) -> dict[str, str]:
    with cluster.connect() as conn:
        return {
            name: str(conn.execute("SELECT current_setting(%s)", [name]).fetchone()[0])  # type: ignore[index]
            for name in PG_SETTINGS
        }


def plain_url(url: str) -> str:
    """A SQLAlchemy URL as libpq takes it."""
    return url.replace("postgresql+psycopg://", "postgresql://")


def postmaster_pid(cluster: PgCluster) -> int:
    return int((cluster.data_dir / "postmaster.pid").read_text().split("\n", 1)[0])


# -- CPU of process trees -------------------------------------------------------------

_TICK = os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> list[str] | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def tree_cpu_seconds(root: int) -> float:
    """CPU seconds (user + system) used by process `root` and all its descendants so far,
    including the children they have already reaped (which is where a finished
    PostgreSQL backend's time goes)."""
    parents: dict[int, list[int]] = {}
    stats: dict[int, list[str]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        fields = _stat(int(entry.name))
        if fields is None:
            continue
        stats[int(entry.name)] = fields
        parents.setdefault(int(fields[1]), []).append(int(entry.name))
    total = 0
    todo = [root]
    while todo:
        pid = todo.pop()
        fields = stats.get(pid)
        if fields is None:
            continue
        total += sum(int(x) for x in fields[11:15])  # utime stime cutime cstime
        todo.extend(parents.get(pid, []))
    return total / _TICK


@dataclass
class CpuMeter:
    """CPU seconds of this process, of a server's process tree and of PostgreSQL's
    between two readings."""

    server_pid: int | None = None
    postgres_pid: int | None = None

    def read(self) -> tuple[float, float | None, float | None]:
        return (
            time.process_time(),
            tree_cpu_seconds(self.server_pid) if self.server_pid else None,
            tree_cpu_seconds(self.postgres_pid) if self.postgres_pid else None,
        )


def _cpu_delta(
    before: tuple[float, float | None, float | None],
    after: tuple[float, float | None, float | None],
) -> dict[str, float | None]:
    def minus(a: float | None, b: float | None) -> float | None:
        return None if a is None or b is None else round(a - b, 2)

    return {
        "client_cpu_s": minus(after[0], before[0]),
        "server_cpu_s": minus(after[1], before[1]),
        "postgres_cpu_s": minus(after[2], before[2]),
    }


# -- the jifen database ---------------------------------------------------------------


@dataclass(frozen=True)
class Prepared:
    url: str
    program_id: int
    key: str
    """A plaintext API key of the programme."""


def prepare(url: str, *, now: datetime, scope: Scope = Scope.POS) -> Prepared:
    """Migrate the database, apply the retail chain's programme (through jifen.programs'
    apply service, dated three years back so every rule is in force for anything dated
    since) and make an API key of `scope`."""
    upgrade(url)
    db = Database(url)
    file = load_program_file(examples.text(PROGRAM), f"{PROGRAM}.yaml")
    applied_at = now - timedelta(days=3 * 366)

    def setup(session: Any) -> tuple[int, str]:
        applied = apply(session, file, now=applied_at, actor="bench")
        key = create_key(
            session,
            applied.program_id,
            name=f"bench {scope}",
            scope=scope,
            now=now,
            created_by="bench",
        )[1]
        return applied.program_id, key

    try:
        program_id, key = db.write(setup)
    finally:
        db.dispose()
    return Prepared(url, program_id, key)


def analyze_seeded(db: Database) -> None:
    """Give the seeded tables (members, accounts) the statistics a running programme has
    (autovacuum would gather them within a minute or so): without them the planner takes
    the programme's accounts for a handful and scans them all to lock a few. Only those:
    a table analysed while still empty (purchases, the journal) is taken for empty as it
    grows, which is worse than no statistics at all. No-op on SQLite."""
    if db.engine.dialect.name != "postgresql":
        return
    with db.engine.connect() as connection:
        connection.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql(
            "ANALYZE members, accounts"
        )


def enrol_members(url: str, program_id: int, count: int, *, now: datetime) -> list[int]:
    """Enrol `count` members with their points and growth-value accounts, set-based (a
    few multi-row INSERTs, not one enrolment per member); returns their ids in order.
    Members get phones 139xxxxxxxx, as the ledger's enrolment would store them."""
    db = Database(url)

    def enrol(session: Any) -> list[int]:
        first = session.execute(select(func.coalesce(func.max(Member.id), 0))).scalar_one()
        ids: list[int] = []
        for start in range(0, count, 50_000):  # bounded memory at a million members
            rows = [
                {
                    "program_id": program_id,
                    "phone": f"139{first + i:08d}",
                    "attributes": {},
                    "status": MemberStatus.ACTIVE,
                    "enrolled_at": now,
                    "enrolment_channel": "store",
                    "updated_at": now,
                }
                for i in range(start, min(start + 50_000, count))
            ]
            chunk = list(
                session.execute(
                    insert(Member).returning(Member.id, sort_by_parameter_order=True), rows
                ).scalars()
            )
            session.execute(
                insert(Account),
                [
                    {
                        "program_id": program_id,
                        "member_id": member_id,
                        "kind": kind,
                        "status": AccountStatus.ACTIVE,
                        "available": 0,
                        "pending": 0,
                        "held": 0,
                        "lifetime_earned": 0,
                        "allow_negative": False,
                        "opened_at": now,
                    }
                    for member_id in chunk
                    for kind in (AccountKind.POINTS, AccountKind.GROWTH)
                ],
            )
            ids += chunk
        return ids

    try:
        ids = db.write(enrol)
        analyze_seeded(db)
        return ids
    finally:
        db.dispose()


# -- the server -----------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def jifen_bin() -> str:
    return str(Path(sys.executable).parent / "jifen")


def serve_help() -> str:
    return subprocess.run(
        [jifen_bin(), "serve", "--help"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
        env=os.environ | {"COLUMNS": "200"},
    ).stdout


def server_args(given: str | None) -> list[str]:
    """The extra `jifen serve` arguments: those given (`--server-args`), else `--workers
    <CPUs>` when this jifen's `serve` has a --workers option, else none."""
    if given is not None:
        return shlex.split(given)
    if "--workers" in serve_help():
        return ["--workers", str(os.cpu_count() or 1)]
    return []


class Server:
    """`jifen serve` as a subprocess on a free port of 127.0.0.1; a context manager that
    waits until GET /v1/health answers 200 and stops the server (SIGTERM) on exit."""

    def __init__(self, url: str, args: Sequence[str] = (), env: dict[str, str] | None = None):
        self.url = url
        self.args = list(args)
        self.port = free_port()
        self.env = os.environ | {"JIFEN_DATABASE_URL": url} | (env or {})
        self.process: subprocess.Popen[bytes] | None = None
        self._log_dir = tempfile.mkdtemp(prefix="jifen-bench-serve-")
        self.log = Path(self._log_dir) / "serve.log"

    @property
    def command(self) -> list[str]:
        return [jifen_bin(), "serve", "--host", "127.0.0.1", "--port", str(self.port), *self.args]

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def __enter__(self) -> Server:
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                self.command, env=self.env, stdout=log, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"jifen serve exited at start:\n{self.log_tail()}")
            with contextlib.suppress(OSError):
                if http_get_status("127.0.0.1", self.port, "/v1/health") == 200:
                    return self
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"jifen serve did not answer within 120 s:\n{self.log_tail()}")

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=30)
        shutil.rmtree(self._log_dir, ignore_errors=True)

    def log_tail(self, lines: int = 30) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        return "(no log)"


def http_get_status(host: str, port: int, path: str) -> int:
    with socket.create_connection((host, port), timeout=5) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
        head = sock.recv(64)
    return int(head[9:12])


# -- the load generator ---------------------------------------------------------------


def http_request(
    method: str, path: str, host: str, headers: dict[str, str], body: bytes = b""
) -> bytes:
    """One HTTP/1.1 request as bytes (keep-alive)."""
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    if body or method in ("POST", "PUT", "PATCH"):
        lines += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


Check = Callable[[int, bytes], str | None]
"""(status, body) → None when the response is what the benchmark expects, else why not."""


@dataclass
class LoadResult:
    clients: int
    duration_s: float
    ok: int = 0
    failed: int = 0
    failures: Counter[str] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)
    """Seconds, sorted, of the requests that succeeded in the measured window."""
    cpu: dict[str, float | None] = field(default_factory=dict)
    exhausted: bool = False
    """The pre-built requests ran out before the window ended (the figure is then short)."""

    @property
    def rate(self) -> float:
        return self.ok / self.duration_s if self.duration_s else 0.0

    def summary(self) -> dict[str, Any]:
        found: dict[str, Any] = {
            "clients": self.clients,
            "duration_s": round(self.duration_s, 2),
            "ok": self.ok,
            "failed": self.failed,
            "per_s": round(self.rate, 1),
            "p50_ms": round(percentile(self.latencies, 50) * 1000, 2) if self.latencies else None,
            "p99_ms": round(percentile(self.latencies, 99) * 1000, 2) if self.latencies else None,
            "max_ms": round(self.latencies[-1] * 1000, 2) if self.latencies else None,
            **self.cpu,
        }
        for side in ("client", "server", "postgres"):
            value = self.cpu.get(f"{side}_cpu_s")
            found[f"{side}_cpu_per_wall_s"] = (
                round(value / self.duration_s, 2) if value is not None else None
            )
        server = self.cpu.get("server_cpu_s")
        found["server_cpu_ms_per_request"] = (
            round(server * 1000 / self.ok, 2) if server is not None and self.ok else None
        )
        if self.failures:
            found["failures"] = dict(self.failures.most_common(10))
        if self.exhausted:
            found["exhausted"] = True
        return found


class _Connection:
    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None

    async def exchange(self, request: bytes) -> tuple[int, bytes]:
        if self.writer is None:
            await self.open()
        assert self.reader is not None
        assert self.writer is not None
        self.writer.write(request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        lower = head.lower()
        at = lower.find(b"\r\ncontent-length:")
        if at >= 0:
            end = lower.index(b"\r\n", at + 2)
            body = await self.reader.readexactly(int(lower[at + 17 : end]))
        elif b"\r\ntransfer-encoding: chunked" in lower:
            body = await self._chunked()
        else:
            body = await self.reader.read()
            self.close()
        if b"\r\nconnection: close" in lower:
            self.close()
        return status, body

    async def _chunked(self) -> bytes:
        assert self.reader is not None
        parts: list[bytes] = []
        while True:
            size = int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16)
            if size == 0:
                await self.reader.readuntil(b"\r\n")
                return b"".join(parts)
            parts.append(await self.reader.readexactly(size))
            await self.reader.readexactly(2)


def run_load(
    port: int,
    requests: Sequence[bytes],
    *,
    clients: int,
    warmup_s: float,
    duration_s: float,
    check: Check,
    cpu: CpuMeter | None = None,
    host: str = "127.0.0.1",
) -> LoadResult:
    """`clients` concurrent keep-alive connections send the pre-built `requests` in order
    (each once) as fast as answers come, for `warmup_s` and then `duration_s` seconds.

    Only requests sent and answered inside the measured window count; every answer is
    checked, in the warm-up too, and a failed request (bad status, a body `check`
    refuses, a broken connection) is counted and reported, never dropped."""
    return asyncio.run(
        _load(host, port, requests, clients, warmup_s, duration_s, check, cpu or CpuMeter())
    )


async def _load(
    host: str,
    port: int,
    requests: Sequence[bytes],
    clients: int,
    warmup_s: float,
    duration_s: float,
    check: Check,
    cpu: CpuMeter,
) -> LoadResult:
    result = LoadResult(clients=clients, duration_s=duration_s)
    connections = [_Connection(host, port) for _ in range(clients)]
    for connection in connections:
        await connection.open()
    clock = time.perf_counter
    start = clock()
    measure_from = start + warmup_s
    measure_to = measure_from + duration_s
    cursor = iter(requests)
    latencies = result.latencies
    warm_failures: Counter[str] = Counter()

    async def client(connection: _Connection) -> None:
        while True:
            t0 = clock()
            if t0 >= measure_to:
                return
            request = next(cursor, None)
            if request is None:
                result.exhausted = True
                return
            try:
                status, body = await connection.exchange(request)
                problem = check(status, body)
            except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError) as exc:
                connection.close()
                status, problem = 0, f"connection: {type(exc).__name__}"
            t1 = clock()
            counted = t0 >= measure_from and t1 <= measure_to
            if problem is not None:
                if counted:
                    result.failed += 1
                    result.failures[problem] += 1
                else:
                    warm_failures[problem] += 1
            elif counted:
                result.ok += 1
                latencies.append(t1 - t0)

    async def meter() -> None:
        await asyncio.sleep(max(measure_from - clock(), 0))
        before = cpu.read()
        await asyncio.sleep(max(measure_to - clock(), 0))
        result.cpu = _cpu_delta(before, cpu.read())

    await asyncio.gather(meter(), *(client(c) for c in connections))
    for connection in connections:
        connection.close()
    for problem, count in warm_failures.items():  # a failure in the warm-up is not hidden
        result.failures[f"(warm-up) {problem}"] += count
    latencies.sort()
    return result


def json_field_check(statuses: tuple[int, ...], field_name: str) -> Check:
    """A response is good when its status is one of `statuses` and its JSON body has the
    integer `field_name` >= 0."""

    def check(status: int, body: bytes) -> str | None:
        if status not in statuses:
            return f"{status} {body[:160].decode(errors='replace')}"
        try:
            value = json.loads(body)[field_name]
        except (ValueError, KeyError, TypeError):
            return f"{status} body without {field_name}"
        if not isinstance(value, int) or value < 0:
            return f"{status} {field_name}={value!r}"
        return None

    return check


# -- pgbench --------------------------------------------------------------------------


def pgbench_bin(cluster: PgCluster) -> str:
    found = cluster.bindir / "pgbench"
    if found.exists():
        return str(found)
    on_path = shutil.which("pgbench")
    if on_path is None:
        raise RuntimeError("pgbench not found (install postgresql-contrib or postgresql)")
    return on_path


class PgBench:
    """pgbench on a database of its own in `cluster` (same server as jifen's)."""

    def __init__(self, cluster: PgCluster, *, scale: int, database: str = "pgbench") -> None:
        self.cluster = cluster
        self.scale = scale
        self.database = database
        self.init_s: float | None = None

    def _base(self) -> list[str]:
        return [
            pgbench_bin(self.cluster),
            "-h",
            self.cluster.host,
            "-p",
            str(self.cluster.port),
            "-U",
            "postgres",
        ]

    def init(self) -> PgBench:
        self.cluster.create_database(self.database)
        started = time.perf_counter()
        subprocess.run(
            [*self._base(), "-i", "-q", "-s", str(self.scale), self.database],
            check=True,
            capture_output=True,
            timeout=3600,
        )
        self.init_s = round(time.perf_counter() - started, 1)
        return self

    def run(
        self, clients: int, duration_s: int, *, select_only: bool = False, cpu: CpuMeter | None
    ) -> dict[str, Any]:
        """`pgbench -c clients -j min(2, clients) -T duration` (tpcb-like, or -S); TPS, mean
        latency and p50/p99 from pgbench's per-transaction log."""
        with tempfile.TemporaryDirectory(prefix="jifen-pgbench-") as tmp:
            before = (cpu or CpuMeter()).read()
            command = [
                *self._base(),
                "-c",
                str(clients),
                "-j",
                str(min(2, clients)),
                "-T",
                str(duration_s),
                "-l",
                "--log-prefix",
                f"{tmp}/log",
            ]
            if select_only:
                command.append("-S")
            done = subprocess.run(
                [*command, self.database],
                capture_output=True,
                text=True,
                check=False,
                timeout=duration_s + 600,
            )
            after = (cpu or CpuMeter()).read()
            if done.returncode != 0:
                raise RuntimeError(f"pgbench failed: {done.stderr.strip()[-2000:]}")
            latencies = []
            for log in Path(tmp).glob("log*"):
                for line in log.read_text().splitlines():
                    parts = line.split()
                    if len(parts) >= 3:
                        latencies.append(int(parts[2]) / 1e6)  # microseconds
        latencies.sort()
        tps = re.search(r"tps = ([\d.]+) \(without initial connection time\)", done.stdout)
        failed = re.search(r"number of failed transactions: (\d+)", done.stdout)
        delta = _cpu_delta(before, after)
        return {
            "clients": clients,
            "duration_s": duration_s,
            "mode": "select-only" if select_only else "tpcb-like",
            "tps": round(float(tps.group(1)), 1) if tps else None,
            "failed": int(failed.group(1)) if failed else 0,
            "p50_ms": round(percentile(latencies, 50) * 1000, 2) if latencies else None,
            "p99_ms": round(percentile(latencies, 99) * 1000, 2) if latencies else None,
            "postgres_cpu_per_wall_s": round((delta["postgres_cpu_s"] or 0) / duration_s, 2)
            if delta["postgres_cpu_s"] is not None
            else None,
        }


# -- profiles -------------------------------------------------------------------------


def py_spy_bin() -> str | None:
    beside = Path(sys.executable).parent / "py-spy"
    return str(beside) if beside.exists() else shutil.which("py-spy")


class Profile:
    """py-spy sampling process `pid` (and its subprocesses) while the block runs; then
    `summary` holds the share of samples each function is on the stack. Without py-spy
    installed (`.venv/bin/pip install py-spy`) it does nothing and says so."""

    def __init__(self, pid: int, *, gil_only: bool = True, rate: int = 100) -> None:
        self.pid = pid
        self.gil_only = gil_only
        self.rate = rate
        self.summary: dict[str, list[str]] | None = None
        self._spy: subprocess.Popen[bytes] | None = None
        self._dir = tempfile.mkdtemp(prefix="jifen-bench-spy-")
        self._raw = Path(self._dir) / "profile.raw"

    def __enter__(self) -> Profile:
        spy = py_spy_bin()
        if spy is None:
            console.print("py-spy not installed: no profile (.venv/bin/pip install py-spy)")
            return self
        command = [spy, "record", "--pid", str(self.pid), "--format", "raw"]
        command += ["--output", str(self._raw), "--rate", str(self.rate), "--nonblocking"]
        command += ["--subprocesses"] + (["--gil"] if self.gil_only else [])
        self._spy = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(1)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._spy is not None:
            self._spy.send_signal(signal.SIGINT)
            self._spy.wait(timeout=120)
            if self._raw.exists():
                self.summary = summarise_profile(self._raw)
        shutil.rmtree(self._dir, ignore_errors=True)


def summarise_profile(raw: Path, top: int = 25) -> dict[str, list[str]]:
    """From py-spy's raw output (collapsed stacks): the share of samples in which each
    function is on the stack (inclusive) and on top (self), heaviest first."""
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        frames = stack.split(";")
        samples = int(count)
        total += samples
        own[frames[-1]] += samples
        for frame in set(frames):
            inclusive[frame] += samples
    if not total:
        return {"inclusive": [], "self": []}
    return {
        "inclusive": [f"{100 * c / total:.1f}% {f}" for f, c in inclusive.most_common(top)],
        "self": [f"{100 * c / total:.1f}% {f}" for f, c in own.most_common(top)],
    }


# -- output ---------------------------------------------------------------------------


def show(title: str, columns: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    table = Table(title=title, title_justify="left")
    for column in columns:
        table.add_column(column, justify="left" if column == columns[0] else "right")
    for row in rows:
        table.add_row(*("–" if cell is None else _cell(cell) for cell in row))
    console.print(table)


def _cell(value: object) -> str:
    if isinstance(value, float):
        if abs(value) < 1:
            return f"{value:.3f}"
        return f"{value:.2f}" if abs(value) < 10 else f"{value:,.1f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def write_results(name: str, payload: dict[str, Any]) -> Path:
    """Write bench/results/<name>.json (with the load average at the end of the run)."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    payload.setdefault("machine", machine())
    payload["machine"]["load_average_at_end"] = load_average()
    out = RESULTS / f"{name}.json"
    out.write_text(json.dumps(payload, indent=2, ensure_ascii=False, default=str) + "\n")
    console.print(f"written to {out.relative_to(ROOT)}")
    return out


def utc_now() -> datetime:
    return datetime.now(UTC)


@contextlib.contextmanager
def timed() -> Iterator[list[float]]:
    """`with timed() as took: ...` then `took[0]` is the seconds the block took."""
    took: list[float] = []
    started = time.perf_counter()
    try:
        yield took
    finally:
        took.append(time.perf_counter() - started)


def connect(url: str) -> psycopg.Connection[tuple[Any, ...]]:
    return psycopg.connect(plain_url(url))
