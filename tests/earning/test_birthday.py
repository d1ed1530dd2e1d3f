"""The birthday job: once per member per year, on the local birthday (or in the birthday
month), 29 February in common years, active members only, batched and safe to rerun."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta
from threading import Barrier
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from factories import make_member, make_program
from jifen.cli import app
from jifen.core.clock import FrozenClock, SystemClock
from jifen.db.uow import Database
from jifen.earning import events
from jifen.earning.jobs import birthday_points
from jifen.earning.models import BehaviourEvent
from jifen.jobs.runner import run_job
from jifen.ledger.models import JournalTransaction
from jifen.ledger.posting import Book
from jifen.ledger.queries import current_balance
from jifen.members import service as members
from jifen.members.schemas import MemberStatus
from jifen.programs.rulesets import save_rules
from jifen.programs.service import get_program
from jifen.rules.schemas import RuleSet


def local(*args: int) -> datetime:
    """A Shanghai wall-clock time as a UTC instant."""
    return datetime(*args, tzinfo=UTC) - timedelta(hours=8)


def birthday_rule(
    db: Database, book: Book, clock: FrozenClock, window: str = "day", **rule: Any
) -> None:
    rules = RuleSet.model_validate(
        {"birthday": {"points": 88, "growth": 8, "window": window, **rule}}
    )
    db.write(lambda s: save_rules(s, book.program_id, rules, now=clock.now(), actor="test"))


def run(db: Database, book: Book, clock: FrozenClock, batch_size: int = 500) -> tuple[int, int]:
    """Run the job for the programme: (members awarded, points)."""
    report = run_job(
        db, "birthday", now=clock.now(), program_id=book.program_id, batch_size=batch_size
    )
    return report.totals.accounts, report.totals.points


def person(db: Database, book: Book, clock: FrozenClock, birthday: date | None) -> int:
    return make_member(db, book, clock, birthday=birthday)


def awarded(db: Database, book: Book) -> dict[int, list[str]]:
    rows = db.read(
        lambda s: s.execute(
            select(BehaviourEvent.member_id, BehaviourEvent.external_id)
            .where(BehaviourEvent.program_id == book.program_id, BehaviourEvent.type == "birthday")
            .order_by(BehaviourEvent.id)
        ).all()
    )
    found: dict[int, list[str]] = {}
    for member_id, external_id in rows:
        found.setdefault(member_id, []).append(external_id)
    return found


def test_on_the_day_in_the_programmes_time_zone(db, clock):
    book = make_program(db, clock)
    birthday_rule(db, book, clock)
    clock.set(local(2026, 3, 10, 0, 30))  # 9 March 16:30 UTC
    today = person(db, book, clock, date(1990, 3, 10))
    utc_today = person(db, book, clock, date(1990, 3, 9))
    tomorrow = person(db, book, clock, date(1985, 3, 11))
    other_month = person(db, book, clock, date(1985, 4, 10))
    nobody = person(db, book, clock, None)
    assert run(db, book, clock) == (1, 88)
    assert awarded(db, book) == {today: [f"birthday:{today}:2026"]}
    balance = current_balance(db, book, today, clock.now())
    assert (balance.available, balance.pending, balance.growth_value) == (88, 0, 8)
    for member in (utc_today, tomorrow, other_month, nobody):
        assert current_balance(db, book, member, clock.now()).available == 0
    event = db.read(
        lambda s: s.execute(
            select(BehaviourEvent).where(BehaviourEvent.member_id == today)
        ).scalar_one()
    )
    assert (event.status, event.points, event.growth, event.actor) == (
        "awarded",
        88,
        8,
        "job:birthday",
    )
    txn = db.read(lambda s: s.get(JournalTransaction, event.points_txn_id))
    assert txn.reference == f"event:{event.id}"


def test_a_rerun_awards_nothing(db, clock):
    book = make_program(db, clock)
    birthday_rule(db, book, clock)
    clock.set(local(2026, 5, 20, 8, 0))
    member = person(db, book, clock, date(2000, 5, 20))
    assert run(db, book, clock) == (1, 88)
    assert run(db, book, clock) == (0, 0)
    clock.advance(hours=15)  # 23:00 the same local day
    assert run(db, book, clock) == (0, 0)
    assert current_balance(db, book, member, clock.now()).available == 88


def test_every_year_again(db, clock):
    book = make_program(db, clock)
    birthday_rule(db, book, clock)
    clock.set(local(2026, 5, 20, 8, 0))
    member = person(db, book, clock, date(2000, 5, 20))
    run(db, book, clock)
    clock.set(local(2027, 5, 20, 8, 0))
    assert run(db, book, clock) == (1, 88)
    assert awarded(db, book) == {member: [f"birthday:{member}:2026", f"birthday:{member}:2027"]}


def test_month_window_any_day_of_the_birthday_month_once(db, clock):
    book = make_program(db, clock)
    birthday_rule(db, book, clock, window="month")
    clock.set(local(2026, 6, 1, 0, 5))  # 31 May in UTC
    early = person(db, book, clock, date(1991, 6, 30))
    late = person(db, book, clock, date(1992, 6, 1))
    may = person(db, book, clock, date(1992, 5, 31))
    assert run(db, book, clock) == (2, 176)
    clock.set(local(2026, 6, 30, 23, 0))
    assert run(db, book, clock) == (0, 0)
    assert set(awarded(db, book)) == {early, late}
    assert current_balance(db, book, may, clock.now()).available == 0


def test_day_window_only_on_the_day(db, clock):
    book = make_program(db, clock)
    birthday_rule(db, book, clock)
    member = person(db, book, clock, date(1991, 6, 30))
    clock.set(local(2026, 6, 1, 12, 0))
    assert run(db, book, clock) == (0, 0)
    clock.set(local(2026, 6, 30, 12, 0))
    assert run(db, book, clock) == (1, 88)
    assert set(awarded(db, book)) == {member}


def test_29_february_on_28_february_in_common_years(db, clock):
    book = make_program(db, clock)
    birthday_rule(db, book, clock)
    leapling = person(db, book, clock, date(2000, 2, 29))
    born_28th = person(db, book, clock, date(2001, 2, 28))
    clock.set(local(2027, 2, 28, 9, 0))  # 2027 is a common year
    assert run(db, book, clock) == (2, 176)
    clock.set(local(2027, 3, 1, 9, 0))
    assert run(db, book, clock) == (0, 0)
    clock.set(local(2028, 2, 28, 9, 0))  # a leap year: the 29th comes
    assert run(db, book, clock) == (1, 88)
    clock.set(local(2028, 2, 29, 9, 0))
    assert run(db, book, clock) == (1, 88)
    assert awarded(db, book) == {
        leapling: [f"birthday:{leapling}:2027", f"birthday:{leapling}:2028"],
        born_28th: [f"birthday:{born_28th}:2027", f"birthday:{born_28th}:2028"],
    }


@pytest.mark.parametrize("status", [MemberStatus.FROZEN, MemberStatus.CLOSED])
def test_only_active_members(db, clock, status):
    book = make_program(db, clock)
    birthday_rule(db, book, clock)
    clock.set(local(2026, 7, 7, 9, 0))
    member = person(db, book, clock, date(1970, 7, 7))
    active = person(db, book, clock, date(1970, 7, 7))
    db.write(lambda s: members.set_status(s, book, member, status, reason="x", now=clock.now()))
    assert run(db, book, clock) == (1, 88)
    assert set(awarded(db, book)) == {active}


def test_without_a_birthday_rule_nothing_happens(db, clock):
    book = make_program(db, clock)
    clock.set(local(2026, 7, 7, 9, 0))
    person(db, book, clock, date(1970, 7, 7))
    assert run(db, book, clock) == (0, 0)


def test_growth_only_rule(db, clock):
    book = make_program(db, clock)
    birthday_rule(db, book, clock, points=0, growth=20)
    clock.set(local(2026, 7, 7, 9, 0))
    member = person(db, book, clock, date(1970, 7, 7))
    assert run(db, book, clock) == (1, 0)
    balance = current_balance(db, book, member, clock.now())
    assert (balance.available, balance.growth_value) == (0, 20)


def test_batches_commit_one_by_one_and_a_crash_loses_only_its_batch(db, clock, monkeypatch):
    book = make_program(db, clock)
    birthday_rule(db, book, clock)
    clock.set(local(2026, 8, 8, 9, 0))
    people = [person(db, book, clock, date(1980 + i, 8, 8)) for i in range(7)]
    calls = {"n": 0}
    real_award = events.award

    def crash_on_the_fourth(*args: Any, **kwargs: Any) -> None:
        calls["n"] += 1
        if calls["n"] == 4:
            raise RuntimeError("worker killed")
        real_award(*args, **kwargs)

    monkeypatch.setattr("jifen.earning.jobs.award", crash_on_the_fourth)
    with pytest.raises(RuntimeError):
        run(db, book, clock, batch_size=3)
    assert sorted(awarded(db, book)) == people[:3]  # the first batch was committed
    monkeypatch.setattr("jifen.earning.jobs.award", real_award)
    report = run_job(db, "birthday", now=clock.now(), program_id=book.program_id, batch_size=3)
    assert (report.batches, report.totals.accounts, report.totals.items) == (2, 4, 4)
    assert sorted(awarded(db, book)) == people
    assert all(len(ids) == 1 for ids in awarded(db, book).values())
    for member in people:
        assert current_balance(db, book, member, clock.now()).available == 88


def test_one_batch_by_hand(db, clock):
    book = make_program(db, clock)
    birthday_rule(db, book, clock)
    clock.set(local(2026, 8, 8, 9, 0))
    for year in (1990, 1991, 1992):
        person(db, book, clock, date(year, 8, 8))

    def batch(session: Any) -> tuple[int, int, int]:
        done = birthday_points(session, get_program(session, book.program_id), clock.now(), limit=2)
        return done.accounts, done.items, done.points

    assert db.write(batch) == (2, 2, 176)
    assert db.write(batch) == (1, 1, 88)
    assert db.write(batch) == (0, 0, 0)


def test_all_programmes_or_one(db, clock):
    first, second = make_program(db, clock), make_program(db, clock)
    for book in (first, second):
        birthday_rule(db, book, clock)
    clock.set(local(2026, 9, 9, 9, 0))
    a = person(db, first, clock, date(1999, 9, 9))
    b = person(db, second, clock, date(1999, 9, 9))
    assert run(db, first, clock) == (1, 88)
    assert set(awarded(db, second)) == set()
    report = run_job(db, "birthday", now=clock.now())
    assert report.by_program[second.program_id].accounts == 1
    assert report.by_program[first.program_id].accounts == 0
    assert set(awarded(db, first)) == {a}
    assert set(awarded(db, second)) == {b}


def test_two_workers_at_once_award_each_member_once(db, clock):
    book = make_program(db, clock)
    birthday_rule(db, book, clock)
    clock.set(local(2026, 10, 10, 9, 0))
    people = [person(db, book, clock, date(1980 + i % 30, 10, 10)) for i in range(40)]
    start = Barrier(4)

    def worker(_: int) -> int:
        start.wait()
        report = run_job(db, "birthday", now=clock.now(), program_id=book.program_id, batch_size=5)
        return report.totals.accounts

    with ThreadPoolExecutor(4) as pool:
        done = list(pool.map(worker, range(4)))
    assert sum(done) <= 40
    run(db, book, clock)  # whatever skipped-locked members are left
    count = db.read(
        lambda s: s.scalar(
            select(func.count())
            .select_from(BehaviourEvent)
            .where(BehaviourEvent.program_id == book.program_id)
        )
    )
    assert count == 40
    assert sorted(awarded(db, book)) == people
    total = sum(current_balance(db, book, m, clock.now()).available for m in people)
    assert total == 40 * 88


def test_the_cli_runs_the_job_by_name(db):
    clock = SystemClock()
    book = make_program(db, clock)
    birthday_rule(db, book, clock)
    today = clock.now().astimezone(ZoneInfo("Asia/Shanghai")).date()
    member = person(db, book, clock, today.replace(year=2000))  # a leap year: 29 Feb too
    code = db.read(lambda s: get_program(s, book.program_id).code)
    env = {"JIFEN_DATABASE_URL": db.url, "JIFEN_LANG": "en", "COLUMNS": "250"}
    args = ["jobs", "run", "birthday", "--program", code]
    first = CliRunner().invoke(app, args, env=env)
    assert first.exit_code == 0, first.output
    assert "birthday: 1 birthday award given, 88 points, 1 member account, 1 batch" in first.stdout
    again = CliRunner().invoke(app, args, env=env)
    assert "birthday: 0 birthday awards given, 0 points" in again.stdout
    assert current_balance(db, book, member, clock.now()).available == 88
