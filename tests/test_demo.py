"""The demo seed against the ledger, on both stores, at several "nows".

The expected balances are never typed in here: `seed_demo` works them out with its own
model of lots while it writes the history.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from jifen.access.service import Scope, authenticate
from jifen.core.clock import FrozenClock
from jifen.db.uow import Database
from jifen.demo import DEMO_CODE, DemoInfo, seed_demo
from jifen.jobs.ledger import run_job
from jifen.ledger.models import JournalTransaction
from jifen.ledger.queries import current_balance
from jifen.ledger.schemas import Balance
from jifen.members import service as members
from jifen.members.models import Member
from jifen.members.schemas import MemberStatus
from jifen.programs.service import book_for, get_program

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
