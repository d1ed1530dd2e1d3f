"""Tiers under concurrent writers, on PostgreSQL (separate connections, row locks): purchases
that together cross a threshold upgrade once; one paid reference sent at once grants once;
two workers running the evaluation or the benefits job at once do everything once."""

from __future__ import annotations

from typing import Any

import pytest

from factories import at_once
from jifen.core.clock import FrozenClock
from jifen.db.uow import Database
from jifen.jobs.runner import run_job

from .kit import (
    LEVELS,
    given,
    grant,
    grants,
    history,
    issues,
    local,
    member,
    policy,
    put_reward,
    spend,
    standing,
    tier_events,
    tiered,
)


def test_two_purchases_that_together_cross_the_threshold_upgrade_once(pg_db: Database, clock):
    book = tiered(pg_db, clock)
    m = member(pg_db, book, clock)
    at_once(2, lambda i: spend(pg_db, book, clock, m, "600"))
    assert standing(pg_db, book, m) == ("silver", "silver", None)
    assert history(pg_db, book, m) == [("normal", "silver", "qualified")]
    assert [t for t, _ in tier_events(pg_db, book, m)] == ["tier.changed"]


def test_sixteen_purchases_at_once_cross_two_thresholds_once_each(pg_db: Database, clock):
    book = tiered(pg_db, clock)
    m = member(pg_db, book, clock)
    at_once(16, lambda i: spend(pg_db, book, clock, m, "400"))  # 6,400 in all
    assert standing(pg_db, book, m) == ("gold", "gold", None)
    # one at a time under the member's lock: 1,200 crosses silver's 1,000, 5,200 gold's 5,000
    assert history(pg_db, book, m) == [
        ("normal", "silver", "qualified"),
        ("silver", "gold", "qualified"),
    ]


def test_one_payment_reference_sent_at_once_grants_once(pg_db: Database, clock):
    book = tiered(pg_db, clock)
    m = member(pg_db, book, clock)
    made = at_once(
        8, lambda i: grant(pg_db, book, clock, m, "gold", kind="paid", reference="pay-1")
    )
    assert len({g.id for g in made}) == 1
    assert len(grants(pg_db, book)) == 1
    assert history(pg_db, book, m) == [("normal", "gold", "granted")]


def test_two_workers_evaluating_at_once_do_each_member_once(pg_db: Database, clock):
    book = tiered(pg_db, clock, policy(grace_days=0))
    members = [member(pg_db, book, clock) for _ in range(30)]
    for m in members:
        spend(pg_db, book, clock, m, "1000")
    later = FrozenClock(local(2027, 3, 1, 12))
    reports = at_once(
        2,
        lambda i: run_job(
            pg_db, "tiers", now=later.now(), program_id=book.program_id, batch_size=4
        ),
    )
    assert sum(r.totals.accounts for r in reports) == 30
    for m in members:
        assert history(pg_db, book, m) == [
            ("normal", "silver", "qualified"),
            ("silver", "normal", "downgraded"),
        ]


def test_two_workers_giving_benefits_at_once_give_each_once(pg_db: Database, clock):
    levels = [
        LEVELS[0] | {"benefits": {"periodic": [{"reward": "free-delivery", "every": "month"}]}}
    ]
    book = tiered(pg_db, clock, policy(levels=levels))
    put_reward(pg_db, book, clock, "free-delivery", stock=25)
    members = [member(pg_db, book, clock) for _ in range(30)]
    at_once(
        2,
        lambda i: run_job(
            pg_db, "tier-benefits", now=clock.now(), program_id=book.program_id, batch_size=4
        ),
    )
    handed = given(pg_db, book)
    assert len(handed) == 25  # the stock, never more
    assert len({m for m, *_ in handed}) == 25
    assert len(issues(pg_db, book)) == 25
    assert {m for m, *_ in handed} <= set(members)


def test_a_member_busy_during_a_batch_is_evaluated_by_a_later_batch_of_the_run(
    pg_db: Database, clock
):
    """Batches look past the last account the previous batch took first; a member skipped
    while busy (its account locked) before that point is found when they come up short."""
    from sqlalchemy import text

    from jifen.programs.service import get_program
    from jifen.tiers.jobs import evaluate

    book = tiered(pg_db, clock, policy(grace_days=0))
    members = [member(pg_db, book, clock) for _ in range(5)]
    for m in members:
        spend(pg_db, book, clock, m, "1000")
    later = FrozenClock(local(2027, 3, 1, 12))
    busy = pg_db.engine.connect()
    try:
        busy.execute(
            text("SELECT id FROM accounts WHERE member_id = :m AND kind = 'points' FOR UPDATE"),
            {"m": members[0]},
        )
        first = pg_db.write(
            lambda s: evaluate(s, get_program(s, book.program_id), later.now(), limit=2)
        )
        assert first.accounts == 2  # members 2 and 3: member 1 is busy
    finally:
        busy.rollback()
        busy.close()
    report = run_job(pg_db, "tiers", now=later.now(), program_id=book.program_id, batch_size=2)
    assert report.totals.accounts == 3  # 4 and 5, then 1
    for m in members:
        assert history(pg_db, book, m) == [
            ("normal", "silver", "qualified"),
            ("silver", "normal", "downgraded"),
        ]
    assert run_job(pg_db, "tiers", now=later.now(), program_id=book.program_id).batches == 0


@pytest.mark.parametrize("alone", [False, True])
def test_a_member_another_worker_evaluated_after_the_lock_read_it_is_left_alone(
    pg_db: Database, clock, monkeypatch, alone: bool
):
    """On PostgreSQL the batch locks the members' accounts, not their tier rows, so a
    worker can find a member due in its locking statement's snapshot whom another worker
    evaluated and committed just after (the account is free by the time the lock is
    taken). The statement that decides reads the rows again and leaves that member alone:
    no second history row, the row as the first worker left it, and the member not
    counted. The race is played here by handing the batch, besides the members really
    due, one evaluated a moment ago; `alone`: a batch of that member alone (it reports
    nothing done and `more`, and the next batch takes the next members)."""
    from sqlalchemy import select

    from jifen.programs.service import get_program
    from jifen.tiers import jobs
    from jifen.tiers.models import MemberTier

    book = tiered(pg_db, clock, policy(grace_days=0))
    done, due = (member(pg_db, book, clock) for _ in range(2))
    for m in (done, due):
        spend(pg_db, book, clock, m, "1000")
    later = FrozenClock(local(2027, 3, 1, 12))
    first = pg_db.write(
        lambda s: jobs.evaluate(s, get_program(s, book.program_id), later.now(), limit=1)
    )
    assert first.accounts == 1
    assert standing(pg_db, book, done) == ("normal", "normal", None)
    assert standing(pg_db, book, due) == ("silver", "silver", None)

    def rows() -> dict[int, tuple[Any, ...]]:
        return pg_db.read(
            lambda s: {
                r.member_id: tuple(r)
                for r in s.execute(select(MemberTier.__table__).order_by(MemberTier.id))
            }
        )

    left = rows()[done]
    real = jobs._lock_due
    stale: list[Any] = []

    def lock_due(session: Any, program_id: int, now: Any, limit: int, columns: Any) -> Any:
        if not stale:  # the first batch: the member done is read as it was before
            account = session.execute(
                select(jobs._ACCOUNTS.c.id).where(
                    jobs._ACCOUNTS.c.member_id == done, jobs._ACCOUNTS.c.kind == "points"
                )
            ).scalar_one()
            stale.append((done, account))
            return (
                [stale[0]] if alone else [stale[0], *real(session, program_id, now, limit, columns)]
            )
        return real(session, program_id, now, limit, columns)

    monkeypatch.setattr(jobs, "_lock_due", lock_due)
    second = pg_db.write(
        lambda s: jobs.evaluate(s, get_program(s, book.program_id), later.now(), limit=5)
    )
    assert stale
    if alone:  # nothing done, the run not over: the next batch takes the next members
        assert (second.accounts, second.items, second.more) == (0, 0, True)
        second = pg_db.write(
            lambda s: jobs.evaluate(s, get_program(s, book.program_id), later.now(), limit=5)
        )
    assert second.accounts == 1  # the member due, not the one done
    assert second.items == 1
    assert rows()[done] == left
    assert history(pg_db, book, done) == [
        ("normal", "silver", "qualified"),
        ("silver", "normal", "downgraded"),
    ]
    assert history(pg_db, book, due) == [
        ("normal", "silver", "qualified"),
        ("silver", "normal", "downgraded"),
    ]
