"""The demo: its seed against the ledger (both stores, several "nows"), and `jifen demo`
end to end as a real process answering HTTP.

The expected balances are never typed in here: `seed_demo` works them out with its own
model of lots while it writes the history, and `jifen demo` writes them to
`<data dir>/demo-seed.json`, so what the API must answer is what the same run seeded.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import stat
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from jifen.access.service import Scope, authenticate
from jifen.core.clock import FrozenClock
from jifen.db.uow import Database
from jifen.demo import DEMO_CODE, DemoInfo, seed_demo
from jifen.jobs.runner import run_job
from jifen.ledger.models import JournalTransaction
from jifen.ledger.queries import current_balance
from jifen.ledger.schemas import Balance
from jifen.members import service as members
from jifen.members.models import Member
from jifen.members.schemas import MemberStatus
from jifen.programs.models import Program
from jifen.programs.service import book_for, get_program
from jifen.rewards.models import Coupon, Redemption
from jifen.tiers.standing import tier_of

SHANGHAI_NOON = datetime(2026, 1, 15, 4, 0, tzinfo=UTC)


def observed(balance: Balance) -> dict[str, Any]:
    return {
        "available": balance.available,
        "pending": balance.pending,
        "held": balance.held,
        "lifetime_earned": balance.lifetime_earned,
        "growth_value": balance.growth_value,
        "expiring_soon": [(item.date, item.points) for item in balance.expiring_soon],
    }


def expected(info: DemoInfo) -> dict[int, dict[str, Any]]:
    return {
        m.id: {
            "available": m.expected.available,
            "pending": m.expected.pending,
            "held": m.expected.held,
            "lifetime_earned": m.expected.lifetime_earned,
            "growth_value": m.expected.growth_value,
            "expiring_soon": m.expected.expiring_soon,
        }
        for m in info.members
    }


def ledger_view(db: Database, info: DemoInfo, now: datetime) -> dict[int, dict[str, Any]]:
    book = db.read(lambda s: book_for(s, get_program(s, info.program_id)))
    return {m.id: observed(current_balance(db, book, m.id, now)) for m in info.members}


@pytest.mark.parametrize(
    "now",
    [
        SHANGHAI_NOON,
        datetime(2027, 3, 31, 15, 30, tzinfo=UTC),  # 23:30 on 31 March in Shanghai
        datetime(2027, 1, 31, 16, 0, tzinfo=UTC),  # local midnight, 1 February
        datetime(2028, 2, 29, 12, 0, tzinfo=UTC),  # a leap day
        datetime(2026, 12, 31, 15, 59, tzinfo=UTC),  # a minute before the new year, local
    ],
)
def test_seed_matches_the_ledger(db: Database, now: datetime) -> None:
    clock = FrozenClock(now)
    info = seed_demo(db, clock)
    assert info.seeded
    assert ledger_view(db, info, now) == expected(info)


def test_seed_tells_the_stories_it_promises(db: Database) -> None:
    clock = FrozenClock(SHANGHAI_NOON)
    info = seed_demo(db, clock)
    assert [m.phone for m in info.members] == [f"1380013800{i}" for i in range(1, 6)]
    assert info.members[0].id == 1  # README's curl example asks for member 1
    wants = {m.name: m.expected for m in info.members}
    assert wants["张伟"].expiring_soon  # the 30-day list has something to show
    assert wants["张伟"].lifetime_earned > wants["张伟"].available + wants["张伟"].pending
    assert wants["陈静"].pending > 0
    assert wants["王芳"].held > 0
    assert {m.name for m in info.members if m.status == MemberStatus.FROZEN} == {"刘洋"}
    frozen = next(m for m in info.members if m.name == "刘洋")
    assert db.read(lambda s: members.get(s, info.program_id, frozen.id)).status == "frozen"
    kinds = db.read(lambda s: set(s.execute(select(JournalTransaction.kind).distinct()).scalars()))
    assert {"earn", "spend", "reversal", "hold", "transfer", "release", "expire"} <= kinds
    by_name = {m.name: m.id for m in info.members}

    def mall(session: Any) -> dict[str, Any]:
        program = session.get(Program, info.program_id)
        return {
            name: (
                tier_of(session, program, member_id),
                [
                    (r.reward_code, r.quantity, r.points, r.status)
                    for r in session.execute(
                        select(Redemption)
                        .where(Redemption.member_id == member_id)
                        .order_by(Redemption.id)
                    ).scalars()
                ],
            )
            for name, member_id in by_name.items()
        }

    assert db.read(mall) == {
        # 800 + 1,500 元 within 12 months: 银卡 on the second purchase; his vouchers expired
        "张伟": ("silver", [("voucher-10", 3, 300, "issued")]),
        "李娜": (
            "silver",  # 2,000 元 in one purchase crossed 银卡's 2,000 growth value
            [("tote-bag", 1, 1500, "delivered"), ("voucher-10", 5, 500, "cancelled")],
        ),
        "王芳": ("normal", []),
        "刘洋": ("silver", [("knife-set", 1, 3000, "pending")]),
        "陈静": ("normal", [("hope-project", 1, 100, "issued")]),
    }
    zhang_coupons = db.read(
        lambda s: list(
            s.execute(select(Coupon.status).where(Coupon.member_id == by_name["张伟"])).scalars()
        )
    )
    assert zhang_coupons == ["expired"] * 3  # valid 30 days; the expiry job has run
    assert info.api_key is not None
    principal = db.read(lambda s: authenticate(s, info.api_key))
    assert (principal.program_id, principal.scope) == (info.program_id, Scope.ADMIN)

    # time moves on: the hold lapses, the pending points are released, balances follow
    later = FrozenClock(SHANGHAI_NOON + timedelta(days=10))
    for job in ("lapse", "release", "expire"):
        run_job(db, job, now=later.now())
    after = ledger_view(db, info, later.now())
    wang = next(m for m in info.members if m.name == "王芳")
    assert after[wang.id]["held"] == 0
    assert after[wang.id]["available"] == wang.expected.available + wang.expected.held
    assert all(view["pending"] == 0 for view in after.values())


def test_seeding_twice_writes_nothing(db: Database) -> None:
    clock = FrozenClock(SHANGHAI_NOON)
    first = seed_demo(db, clock)

    def count(session: Any) -> tuple[int, int]:
        return (
            session.execute(select(func.count()).select_from(Member)).scalar_one(),
            session.execute(select(func.count()).select_from(JournalTransaction)).scalar_one(),
        )

    before = db.read(count)
    clock.advance(days=1)
    again = seed_demo(db, clock)
    assert (again.seeded, again.api_key, again.members) == (False, None, [])
    assert (again.program_id, again.program_code) == (first.program_id, DEMO_CODE)
    assert db.read(count) == before


# -- `jifen demo`, the real command ------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def jifen_command() -> list[str]:
    script = Path(sys.executable).with_name("jifen")
    return [str(script)] if script.exists() else [sys.executable, "-m", "jifen.cli"]


class Demo:
    """`jifen demo` in a subprocess, its output in files (no pipe to fill up)."""

    def __init__(self, data_dir: Path, port: int, log_dir: Path) -> None:
        self.base = f"http://127.0.0.1:{port}"
        self.stdout_path = log_dir / "stdout.txt"
        self.stderr_path = log_dir / "stderr.txt"
        env = {k: v for k, v in os.environ.items() if not k.startswith("JIFEN_")}
        with self.stdout_path.open("wb") as out, self.stderr_path.open("wb") as err:
            self.process = subprocess.Popen(
                [*jifen_command(), "demo", "--port", str(port), "--data-dir", str(data_dir)],
                stdout=out,
                stderr=err,
                env=env,
            )

    @property
    def stdout(self) -> str:
        return self.stdout_path.read_text(encoding="utf-8")

    @property
    def stderr(self) -> str:
        return self.stderr_path.read_text(encoding="utf-8")

    def wait_healthy(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"jifen demo exited with {self.process.returncode}:\n{self.stderr}")
            try:
                if httpx.get(f"{self.base}/v1/health", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        pytest.fail(f"jifen demo did not answer /v1/health within {timeout} s:\n{self.stderr}")

    def stop(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=20)
        finally:
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait()


def printed_key(stdout: str) -> str:
    line = next(line for line in stdout.splitlines() if line.startswith("API key:"))
    return line.split()[2]


def demo_counts(data_dir: Path) -> tuple[int, ...]:
    with sqlite3.connect(data_dir / "jifen.db") as conn:
        return tuple(
            conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
            for table in ("programs", "members", "api_keys", "accounts")
        )


@pytest.mark.slow
def test_jifen_demo_serves_what_it_seeded(tmp_path: Path) -> None:
    data_dir = tmp_path / "demo"
    port = free_port()

    first = Demo(data_dir, port, tmp_path)
    try:
        first.wait_healthy()
        key = (data_dir / "demo-key.txt").read_text(encoding="utf-8").strip()
        assert stat.S_IMODE((data_dir / "demo-key.txt").stat().st_mode) == 0o600
        assert printed_key(first.stdout) == key
        assert f"URL:     {first.base}" in first.stdout
        assert f"{first.base}/docs" in first.stdout
        seeded = json.loads((data_dir / "demo-seed.json").read_text(encoding="utf-8"))
        assert seeded["program_code"] == DEMO_CODE
        assert len(seeded["members"]) == 5

        headers = {"Authorization": f"Bearer {key}"}
        for member in seeded["members"]:
            response = httpx.get(
                f"{first.base}/v1/members/{member['id']}/balance", headers=headers, timeout=10
            )
            assert response.status_code == 200, response.text
            body = response.json()
            want = member["expected"]
            for name in ("available", "pending", "held", "lifetime_earned", "growth_value"):
                assert body[name] == want[name], (member["name"], name, body)
            assert body["expiring_soon"] == want["expiring_soon"], member["name"]
        unauthorised = httpx.get(f"{first.base}/v1/members/1/balance", timeout=10)
        assert unauthorised.status_code == 401
    finally:
        code = first.stop()
    assert code == 0, first.stderr
    assert "Traceback" not in first.stderr
    counts = demo_counts(data_dir)
    assert counts[:3] == (1, 5, 1)

    second = Demo(data_dir, port, tmp_path)
    try:
        second.wait_healthy()
        assert "already seeded" in second.stdout
        assert printed_key(second.stdout) == key
        response = httpx.get(
            f"{second.base}/v1/members/1/balance",
            headers={"Authorization": f"Bearer {key}"},
            timeout=10,
        )
        assert response.status_code == 200
        assert response.json()["available"] == seeded["members"][0]["expected"]["available"]
    finally:
        code = second.stop()
    assert code == 0, second.stderr
    assert demo_counts(data_dir) == counts  # nothing seeded twice, no second key


@pytest.mark.slow
def test_jifen_demo_refuses_a_busy_port_in_one_line(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {k: v for k, v in os.environ.items() if not k.startswith("JIFEN_")}
        done = subprocess.run(
            [*jifen_command(), "demo", "--port", str(port), "--data-dir", str(tmp_path / "d")],
            capture_output=True,
            text=True,
            env=env | {"JIFEN_LANG": "en"},
            timeout=60,
            check=False,
        )
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(f"error: cannot listen on 127.0.0.1:{port}")
    assert not (tmp_path / "d" / "jifen.db").exists()
