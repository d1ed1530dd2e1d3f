"""`jifen serve --workers N`: several worker processes on one port, on both stores, keep
every promise one process keeps — an order recorded once whichever worker gets it, one
effect per Idempotency-Key when its retries race on different workers — and stop cleanly
on SIGTERM. An in-memory SQLite database (one per process) is refused in one line."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from clikit import invoke, refused
from earning.shop import PER_YUAN, set_rules
from factories import make_key, make_member, make_program
from jifen.access.service import Scope
from jifen.core.clock import FrozenClock, SystemClock
from jifen.db.uow import Database
from jifen.earning.models import Purchase
from jifen.ledger.queries import current_balance
from test_demo import free_port, jifen_command

WORKERS = 2
CLIENTS = 8


class Server:
    """`jifen serve --workers N` in a subprocess, its output in files."""

    def __init__(self, url: str, port: int, log_dir: Path) -> None:
        self.base = f"http://127.0.0.1:{port}"
        self.stderr_path = log_dir / "serve-stderr.txt"
        env = {k: v for k, v in os.environ.items() if not k.startswith("JIFEN_")}
        env["JIFEN_DATABASE_URL"] = url
        command = [*jifen_command(), "serve", "--port", str(port), "--workers", str(WORKERS)]
        with self.stderr_path.open("wb") as err:
            self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=err, env=env)

    @property
    def stderr(self) -> str:
        return self.stderr_path.read_text(encoding="utf-8")

    def wait_healthy(self, timeout: float = 120) -> None:
        import time

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"jifen serve exited with {self.process.returncode}:\n{self.stderr}")
            try:
                if httpx.get(f"{self.base}/v1/health", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        pytest.fail(f"jifen serve did not answer /v1/health within {timeout} s:\n{self.stderr}")

    def stop(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=60)
        finally:
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait()


def _order(member_id: int, external_id: str, total: str = "100.00") -> dict[str, Any]:
    return {
        "member": {"id": member_id},
        "external_id": external_id,
        "occurred_at": (datetime.now(UTC) - timedelta(seconds=1)).isoformat(),
        "channel": "store",
        "lines": [{"sku": "6901", "quantity": 1, "unit_price": total}],
        "total": total,
    }


def _at_once(calls: list[tuple[dict[str, Any], str]], base: str, key: str) -> list[httpx.Response]:
    """Each call on a connection of its own, all released together."""
    start = threading.Barrier(len(calls))
    answers: list[httpx.Response | None] = [None] * len(calls)

    def post(index: int) -> None:
        body, idempotency_key = calls[index]
        headers = {"Authorization": f"Bearer {key}", "Idempotency-Key": idempotency_key}
        with httpx.Client(base_url=base, timeout=60) as client:
            start.wait()
            answers[index] = client.post("/v1/purchases", json=body, headers=headers)

    threads = [threading.Thread(target=post, args=(i,)) for i in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(answer is not None for answer in answers)
    return [answer for answer in answers if answer is not None]


@pytest.mark.slow
def test_workers_record_each_order_once_and_stop_cleanly(db: Database, tmp_path: Path) -> None:
    clock = SystemClock()
    book = make_program(db, clock)
    set_rules(db, book, FrozenClock(clock.now()), PER_YUAN)
    key = make_key(db, book, clock, Scope.POS)
    members = [make_member(db, book, clock) for _ in range(CLIENTS)]
    db.dispose()  # the workers are the only writers from here on

    server = Server(db.url, free_port(), tmp_path)
    try:
        server.wait_healthy()
        # distinct orders, two rounds of one per client at once
        for round_ in range(2):
            calls = [
                (_order(member, f"o-{round_}-{member}"), str(uuid.uuid4())) for member in members
            ]
            answers = _at_once(calls, server.base, key)
            assert [a.status_code for a in answers] == [201] * CLIENTS, answers[0].text
            assert all(a.json()["points"] == 100 for a in answers)
        # one request retried on every connection with its one key: one effect
        same_key = str(uuid.uuid4())
        answers = _at_once([(_order(members[0], "retried"), same_key)] * CLIENTS, server.base, key)
        assert {a.status_code for a in answers} == {201}
        assert len({a.json()["id"] for a in answers}) == 1
        replayed = Counter(a.headers.get("Idempotent-Replayed") for a in answers)
        assert replayed == {None: 1, "true": CLIENTS - 1}
        # one order sent with a new key on every connection: recorded once, the first
        # result for the others
        calls = [(_order(members[1], "resent"), str(uuid.uuid4())) for _ in range(CLIENTS)]
        answers = _at_once(calls, server.base, key)
        assert sorted(a.status_code for a in answers) == [200] * (CLIENTS - 1) + [201]
        assert len({a.json()["id"] for a in answers}) == 1
    finally:
        code = server.stop()
    assert code == 0, server.stderr
    assert "jifen: stopped" in server.stderr

    recorded = db.read(lambda s: s.execute(select(func.count()).select_from(Purchase)).scalar())
    assert recorded == 2 * CLIENTS + 2
    earned = {m: current_balance(db, book, m, clock.now()).lifetime_earned for m in members}
    assert earned[members[0]] == 300  # two orders and the retried one
    assert earned[members[1]] == 300  # two orders and the resent one
    assert all(earned[m] == 200 for m in members[2:])


def test_workers_refuse_an_in_memory_sqlite_database() -> None:
    result = invoke("sqlite://", ["serve", "--workers", "2"])
    refused(result, 1, "in-memory SQLite", "--workers")


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def _sockets_on(port: int, state: str) -> set[int]:
    """Inodes of the TCP sockets whose local port is `port`, in `state` (/proc/net/tcp:
    01 established, 0A listening)."""
    inodes = set()
    for table in (Path("/proc/net/tcp"), Path("/proc/net/tcp6")):
        if not table.exists():
            continue
        for line in table.read_text().splitlines()[1:]:
            fields = line.split()
            if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == state:
                inodes.add(int(fields[9]))
    return inodes


def _owned(pid: int) -> set[int]:
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(int(target[8:-1]))
    return inodes


@pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="needs Linux's /proc")
def test_workers_share_the_connections_opened_at_once(db: Database, tmp_path: Path) -> None:
    """16 keep-alive connections opened together reach both workers (one listening socket
    per worker: with uvicorn's one shared socket the first worker awake took them all)."""
    import http.client
    import time

    port = free_port()
    server = Server(db.url, port, tmp_path)
    connections: list[http.client.HTTPConnection] = []
    try:
        server.wait_healthy()
        deadline = time.monotonic() + 120
        while len(_sockets_on(port, "0A")) < WORKERS:  # every worker listening
            assert time.monotonic() < deadline, server.stderr
            time.sleep(0.2)
        connections = [http.client.HTTPConnection("127.0.0.1", port, timeout=30) for _ in range(16)]
        for connection in connections:
            connection.connect()
        for connection in connections:
            connection.request("GET", "/v1/health")
            response = connection.getresponse()
            assert response.status == 200
            response.read()
        established = _sockets_on(port, "01")
        workers = _children(server.process.pid)
        held = {pid: len(_owned(pid) & established) for pid in workers}
        assert sum(held.values()) == 16, held
        assert len([pid for pid, n in held.items() if n > 0]) == WORKERS, held
    finally:
        for connection in connections:
            connection.close()
        code = server.stop()
    assert code == 0, server.stderr
