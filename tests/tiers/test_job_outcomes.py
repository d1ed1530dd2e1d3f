"""The evaluation job over a varied set of members, in small batches, on both stores: every
`member_tiers`, `tier_history`, `tier_benefit_issues` and outbox row it writes is
compared, column by column, with the rows the job wrote before it was made set-based
(the ORM, one member at a time) — upgrades, a grace period started and one cleared,
downgrades by each policy, a grant ended, a grant still holding, a near upgrade, a frozen
account, members with nothing to do."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import select

from jifen.core.clock import FrozenClock
from jifen.db.outbox import OutboxEvent
from jifen.db.uow import Database
from jifen.jobs.runner import run_job
from jifen.ledger import service as ledger
from jifen.ledger.posting import Book
from jifen.members import service as members
from jifen.members.schemas import MemberStatus
from jifen.tiers.models import BenefitIssue, MemberTier, TierChange

from .kit import grant, local, member, policy, spend, tiered


def at(*args: int) -> datetime:
    return local(*args).astimezone(UTC)


def growth(db: Database, book: Book, clock: FrozenClock, m: int, n: int) -> None:
    db.write(lambda s: ledger.credit_growth(s, book, m, n, now=clock.now(), actor="t"))


def freeze(db: Database, book: Book, clock: FrozenClock, m: int) -> None:
    db.write(
        lambda s: members.set_status(s, book, m, MemberStatus.FROZEN, reason="t", now=clock.now())
    )


def written(db: Database, programs: list[int], since: dict[str, int]) -> dict[str, Any]:
    """The job's rows (all columns but ids; member_tiers all of them, in id order; the
    others by programme and member, each member's own in id order: within a batch on
    PostgreSQL the statement writes the changes' outbox rows before the notices', so two
    members' rows may come in another order than one member at a time wrote them, as
    the batches fall)."""

    def rows(s: Any, table: Any, after: int, by_member: bool = True) -> list[dict[str, Any]]:
        found = s.execute(
            select(table)
            .where(table.c.program_id.in_(programs), table.c.id > after)
            .order_by(table.c.id)
        ).mappings()
        plain = [{k: v for k, v in r.items() if k != "id"} for r in found]
        if by_member:
            plain.sort(key=lambda r: (r["program_id"], r["member_id"]))
        return plain

    def read(s: Any) -> dict[str, Any]:
        return {
            "member_tiers": rows(s, MemberTier.__table__, 0, by_member=False),
            "tier_history": rows(s, TierChange.__table__, since["tier_history"]),
            "issues": rows(s, BenefitIssue.__table__, since["issues"]),
            "outbox": rows(s, OutboxEvent.__table__, since["outbox"]),
        }

    return db.read(read)


def last_ids(db: Database) -> dict[str, int]:
    def read(s: Any) -> dict[str, int]:
        return {
            name: s.execute(select(table.c.id).order_by(table.c.id.desc()).limit(1)).scalar() or 0
            for name, table in (
                ("tier_history", TierChange.__table__),
                ("issues", BenefitIssue.__table__),
                ("outbox", OutboxEvent.__table__),
            )
        }

    return db.read(read)


def scenario(db: Database, clock: FrozenClock) -> tuple[list[int], dict[str, int], datetime]:
    """Two programmes (one_down with 30 days' grace; supported with none) and their
    members; returns the programmes, the last ids before the job and the job's instant."""
    one_down = tiered(db, clock)
    straight = tiered(db, clock, policy(downgrade="supported", grace_days=0))
    a = {
        name: member(db, one_down, clock)
        for name in (
            "upgrade",
            "grace_start",
            "grace_clear",
            "downgrade",
            "grant_end",
            "grant_holds",
            "near",
            "frozen_near",
            "nothing",
            "two_up",
        )
    }
    b = {name: member(db, straight, clock) for name in ("supported", "nothing")}
    # a year ago
    clock.set(at(2026, 1, 20, 9))
    spend(db, one_down, clock, a["grace_clear"], "5000")  # gold, leaves the window
    spend(db, one_down, clock, a["downgrade"], "20000")  # platinum
    spend(db, straight, clock, b["supported"], "20000")  # platinum
    clock.set(at(2026, 2, 15, 9))
    spend(db, one_down, clock, a["grace_start"], "5000")  # gold, in the window until 15 Feb
    # grace periods start a month before the job
    clock.set(at(2027, 1, 25, 9))
    spend(db, one_down, clock, a["downgrade"], "900")  # silver's retain, not gold's
    spend(db, straight, clock, b["supported"], "900")
    clock.set(at(2027, 1, 26, 9))
    run_job(db, "tiers", now=clock.now(), program_id=one_down.program_id, batch_size=3)
    # the month before the job
    clock.set(at(2027, 2, 10, 9))
    spend(db, one_down, clock, a["grace_clear"], "4000")  # gold's retain again
    spend(db, one_down, clock, a["upgrade"], "1000")  # silver at once
    growth(db, one_down, clock, a["upgrade"], 4200)  # gold's 5,000 without a crossing write
    spend(db, one_down, clock, a["two_up"], "1000")
    growth(db, one_down, clock, a["two_up"], 19500)  # platinum: two levels up
    spend(db, one_down, clock, a["grant_end"], "1500")  # silver
    grant(db, one_down, clock, a["grant_end"], "gold", days=10)  # ends 2027-02-21
    spend(db, one_down, clock, a["grant_holds"], "1200")
    grant(db, one_down, clock, a["grant_holds"], "platinum", days=60)
    spend(db, one_down, clock, a["near"], "1000")
    growth(db, one_down, clock, a["near"], 3600)  # 4,600: within 10% of gold's 5,000
    spend(db, one_down, clock, a["frozen_near"], "4700")  # silver, near gold
    freeze(db, one_down, clock, a["frozen_near"])
    spend(db, one_down, clock, a["nothing"], "2000")  # silver, holds it
    spend(db, straight, clock, b["nothing"], "6000")  # gold, holds it
    clock.set(at(2027, 3, 1, 12))
    assert list(a.values()) == list(range(1, 11))  # as EXPECTED names them
    assert list(b.values()) == [11, 12]
    return [one_down.program_id, straight.program_id], last_ids(db), clock.now()


def utc(*args: int) -> datetime:
    year, month, day, hour, minute = args
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def test_the_job_writes_what_it_wrote_member_by_member(db: Database, clock: FrozenClock):
    programs, since, now = scenario(db, clock)
    for program_id in programs:
        run_job(db, "tiers", now=now, program_id=program_id, batch_size=3)
    assert written(db, programs, since) == EXPECTED
    again = [run_job(db, "tiers", now=now, program_id=p, batch_size=3) for p in programs]
    assert [r.batches for r in again] == [0, 0]  # the same instant: nothing left to do
    assert written(db, programs, since) == EXPECTED


def test_a_batch_that_fails_midway_is_taken_again_when_the_run_goes_on(
    db: Database, clock: FrozenClock, monkeypatch: pytest.MonkeyPatch
):
    """A batch whose transaction rolls back (the worker fails after deciding it) leaves its
    members to the run: run again at the same instant in the same process, the run takes
    them again (the run's place goes back to where it stood), and the rows are those of
    a run that never failed — nothing missed, nothing twice."""
    from jifen.tiers import jobs

    programs, since, now = scenario(db, clock)
    real = jobs._evaluate_batch
    batches: list[Any] = []

    def failing(*args: Any, **kwargs: Any) -> Any:
        done = real(*args, **kwargs)
        batches.append(done)
        if len(batches) == 2:
            raise RuntimeError("the worker fails before the commit")
        return done

    monkeypatch.setattr(jobs, "_evaluate_batch", failing)
    with pytest.raises(RuntimeError):
        run_job(db, "tiers", now=now, program_id=programs[0], batch_size=3)
    assert batches[1].accounts == 3  # (a batch with something to write failed)
    for program_id in programs:
        run_job(db, "tiers", now=now, program_id=program_id, batch_size=3)
    assert written(db, programs, since) == EXPECTED


# What the job wrote over `scenario` when it evaluated one member at a time through the ORM
# (commit 7640544), members 1-10 in the first programme, 11-12 in the second: 1 upgraded
# to gold without a crossing write, 2 starts a grace period, 3 clears one, 4 is downgraded
# one level after its grace, 5's grant has ended, 6 is held by a grant, 7 is told of a
# near upgrade, 8 (frozen) is not, 9 and 12 have nothing to do, 10 goes two levels up, 11
# is downgraded straight to what its record supports (no grace). Since the job writes
# nothing for a member with nothing to do, 8, 9 and 12 keep their `evaluated_at` (never
# evaluated: NULL); the ORM job marked them too.
EXPECTED = {
    "member_tiers": [
        {
            "program_id": 1,
            "member_id": 3,
            "tier": "gold",
            "qualified_tier": "gold",
            "since": utc(2026, 1, 20, 1, 0),
            "grace_until": None,
            "evaluated_at": utc(2027, 3, 1, 4, 0),
            "updated_at": utc(2027, 3, 1, 4, 0),
        },
        {
            "program_id": 1,
            "member_id": 4,
            "tier": "gold",
            "qualified_tier": "gold",
            "since": utc(2027, 3, 1, 4, 0),
            "grace_until": None,
            "evaluated_at": utc(2027, 3, 1, 4, 0),
            "updated_at": utc(2027, 3, 1, 4, 0),
        },
        {
            "program_id": 2,
            "member_id": 11,
            "tier": "silver",
            "qualified_tier": "silver",
            "since": utc(2027, 3, 1, 4, 0),
            "grace_until": None,
            "evaluated_at": utc(2027, 3, 1, 4, 0),
            "updated_at": utc(2027, 3, 1, 4, 0),
        },
        {
            "program_id": 1,
            "member_id": 2,
            "tier": "gold",
            "qualified_tier": "gold",
            "since": utc(2026, 2, 15, 1, 0),
            "grace_until": utc(2027, 3, 31, 16, 0),
            "evaluated_at": utc(2027, 3, 1, 4, 0),
            "updated_at": utc(2027, 3, 1, 4, 0),
        },
        {
            "program_id": 1,
            "member_id": 1,
            "tier": "gold",
            "qualified_tier": "gold",
            "since": utc(2027, 3, 1, 4, 0),
            "grace_until": None,
            "evaluated_at": utc(2027, 3, 1, 4, 0),
            "updated_at": utc(2027, 3, 1, 4, 0),
        },
        {
            "program_id": 1,
            "member_id": 10,
            "tier": "platinum",
            "qualified_tier": "platinum",
            "since": utc(2027, 3, 1, 4, 0),
            "grace_until": None,
            "evaluated_at": utc(2027, 3, 1, 4, 0),
            "updated_at": utc(2027, 3, 1, 4, 0),
        },
        {
            "program_id": 1,
            "member_id": 5,
            "tier": "silver",
            "qualified_tier": "silver",
            "since": utc(2027, 3, 1, 4, 0),
            "grace_until": None,
            "evaluated_at": utc(2027, 3, 1, 4, 0),
            "updated_at": utc(2027, 3, 1, 4, 0),
        },
        {
            "program_id": 1,
            "member_id": 6,
            "tier": "platinum",
            "qualified_tier": "silver",
            "since": utc(2027, 2, 10, 1, 0),
            "grace_until": None,
            "evaluated_at": utc(2027, 3, 1, 4, 0),
            "updated_at": utc(2027, 2, 10, 1, 0),
        },
        {
            "program_id": 1,
            "member_id": 7,
            "tier": "silver",
            "qualified_tier": "silver",
            "since": utc(2027, 2, 10, 1, 0),
            "grace_until": None,
            "evaluated_at": utc(2027, 3, 1, 4, 0),
            "updated_at": utc(2027, 2, 10, 1, 0),
        },
        {
            "program_id": 1,
            "member_id": 8,
            "tier": "silver",
            "qualified_tier": "silver",
            "since": utc(2027, 2, 10, 1, 0),
            "grace_until": None,
            "evaluated_at": None,  # nothing to do: not written
            "updated_at": utc(2027, 2, 10, 1, 0),
        },
        {
            "program_id": 1,
            "member_id": 9,
            "tier": "silver",
            "qualified_tier": "silver",
            "since": utc(2027, 2, 10, 1, 0),
            "grace_until": None,
            "evaluated_at": None,  # nothing to do: not written
            "updated_at": utc(2027, 2, 10, 1, 0),
        },
        {
            "program_id": 2,
            "member_id": 12,
            "tier": "gold",
            "qualified_tier": "gold",
            "since": utc(2027, 2, 10, 1, 0),
            "grace_until": None,
            "evaluated_at": None,  # nothing to do: not written
            "updated_at": utc(2027, 2, 10, 1, 0),
        },
    ],
    "tier_history": [
        {
            "program_id": 1,
            "member_id": 1,
            "from_tier": "silver",
            "to_tier": "gold",
            "reason": "qualified",
            "details": {
                "measures": {"growth": 5200, "spend": "1000.00", "purchases": 1},
                "window": {"from": "2026-03-01", "to": None},
                "threshold": {"growth": 5000},
                "qualified": {"from": "silver", "to": "gold"},
            },
            "at": utc(2027, 3, 1, 4, 0),
            "actor": "job:tiers",
        },
        {
            "program_id": 1,
            "member_id": 2,
            "from_tier": "gold",
            "to_tier": "gold",
            "reason": "grace_started",
            "details": {
                "measures": {"growth": 0, "spend": "0.00", "purchases": 0},
                "window": {"from": "2026-03-01", "to": None},
                "tier": "gold",
                "qualified_tier": "gold",
                "supported": "normal",
                "grace_until": "2027-03-31T16:00:00+00:00",
                "threshold": {"growth": 4000},
            },
            "at": utc(2027, 3, 1, 4, 0),
            "actor": "job:tiers",
        },
        {
            "program_id": 1,
            "member_id": 3,
            "from_tier": "gold",
            "to_tier": "gold",
            "reason": "grace_cleared",
            "details": {
                "measures": {"growth": 4000, "spend": "4000.00", "purchases": 1},
                "window": {"from": "2026-03-01", "to": None},
                "threshold": {"growth": 4000},
            },
            "at": utc(2027, 3, 1, 4, 0),
            "actor": "job:tiers",
        },
        {
            "program_id": 1,
            "member_id": 4,
            "from_tier": "platinum",
            "to_tier": "gold",
            "reason": "downgraded",
            "details": {
                "measures": {"growth": 900, "spend": "900.00", "purchases": 1},
                "window": {"from": "2026-03-01", "to": None},
                "threshold": {"growth": 15000},
                "supported": "silver",
                "policy": "one_down",
                "grace_until": "2027-02-25T16:00:00+00:00",
                "qualified": {"from": "platinum", "to": "gold"},
            },
            "at": utc(2027, 3, 1, 4, 0),
            "actor": "job:tiers",
        },
        {
            "program_id": 1,
            "member_id": 5,
            "from_tier": "gold",
            "to_tier": "silver",
            "reason": "grant_ended",
            "details": {
                "grant": {"id": 1, "kind": "staff", "ends_at": "2027-02-19T16:00:00+00:00"}
            },
            "at": utc(2027, 3, 1, 4, 0),
            "actor": "job:tiers",
        },
        {
            "program_id": 1,
            "member_id": 10,
            "from_tier": "silver",
            "to_tier": "platinum",
            "reason": "qualified",
            "details": {
                "measures": {"growth": 20500, "spend": "1000.00", "purchases": 1},
                "window": {"from": "2026-03-01", "to": None},
                "threshold": {"growth": 20000},
                "qualified": {"from": "silver", "to": "platinum"},
            },
            "at": utc(2027, 3, 1, 4, 0),
            "actor": "job:tiers",
        },
        {
            "program_id": 2,
            "member_id": 11,
            "from_tier": "platinum",
            "to_tier": "silver",
            "reason": "downgraded",
            "details": {
                "measures": {"growth": 900, "spend": "900.00", "purchases": 1},
                "window": {"from": "2026-03-01", "to": None},
                "threshold": {"growth": 15000},
                "supported": "silver",
                "policy": "supported",
                "grace_until": None,
                "qualified": {"from": "platinum", "to": "silver"},
            },
            "at": utc(2027, 3, 1, 4, 0),
            "actor": "job:tiers",
        },
    ],
    "issues": [
        {
            "program_id": 1,
            "member_id": 7,
            "benefit": "near-upgrade:gold",
            "period": "2027-03",
            "tier": "silver",
            "details": {
                "measures": {"growth": 4600, "spend": "1000.00", "purchases": 1},
                "missing": {"growth": "400"},
            },
            "issued_at": utc(2027, 3, 1, 4, 0),
        }
    ],
    "outbox": [
        {
            "program_id": 1,
            "member_id": 1,
            "type": "tier.changed",
            "payload": {
                "from": "silver",
                "to": "gold",
                "reason": "qualified",
                "qualified_tier": "gold",
            },
            "occurred_at": utc(2027, 3, 1, 4, 0),
            "published_at": None,
        },
        {
            "program_id": 1,
            "member_id": 2,
            "type": "tier.grace_started",
            "payload": {
                "tier": "gold",
                "qualified_tier": "gold",
                "supported": "normal",
                "grace_until": "2027-03-31T16:00:00+00:00",
            },
            "occurred_at": utc(2027, 3, 1, 4, 0),
            "published_at": None,
        },
        {
            "program_id": 1,
            "member_id": 3,
            "type": "tier.grace_cleared",
            "payload": {"tier": "gold"},
            "occurred_at": utc(2027, 3, 1, 4, 0),
            "published_at": None,
        },
        {
            "program_id": 1,
            "member_id": 4,
            "type": "tier.changed",
            "payload": {
                "from": "platinum",
                "to": "gold",
                "reason": "downgraded",
                "qualified_tier": "gold",
            },
            "occurred_at": utc(2027, 3, 1, 4, 0),
            "published_at": None,
        },
        {
            "program_id": 1,
            "member_id": 5,
            "type": "tier.changed",
            "payload": {
                "from": "gold",
                "to": "silver",
                "reason": "grant_ended",
                "qualified_tier": "silver",
            },
            "occurred_at": utc(2027, 3, 1, 4, 0),
            "published_at": None,
        },
        {
            "program_id": 1,
            "member_id": 7,
            "type": "tier.near_upgrade",
            "payload": {
                "tier": "silver",
                "next": "gold",
                "missing": {"growth": "400"},
                "period": "2027-03",
            },
            "occurred_at": utc(2027, 3, 1, 4, 0),
            "published_at": None,
        },
        {
            "program_id": 1,
            "member_id": 10,
            "type": "tier.changed",
            "payload": {
                "from": "silver",
                "to": "platinum",
                "reason": "qualified",
                "qualified_tier": "platinum",
            },
            "occurred_at": utc(2027, 3, 1, 4, 0),
            "published_at": None,
        },
        {
            "program_id": 2,
            "member_id": 11,
            "type": "tier.changed",
            "payload": {
                "from": "platinum",
                "to": "silver",
                "reason": "downgraded",
                "qualified_tier": "silver",
            },
            "occurred_at": utc(2027, 3, 1, 4, 0),
            "published_at": None,
        },
    ],
}


def test_the_jobs_ladder_answers_as_qualify_does():
    from itertools import product

    from jifen.programs.tiers import Measure, TierPolicy
    from jifen.tiers import qualify
    from jifen.tiers.jobs import _ladder

    from .kit import LEVELS, POLICY

    mixed = [
        {"code": "base", "name": "b"},
        {"code": "a", "name": "a", "enter": {"spend": "500.00", "purchases": 5}},
        {"code": "vip", "name": "v", "qualifiable": False},
        {
            "code": "b",
            "name": "b",
            "enter": {"growth": 3000, "purchases": 20},
            "retain": {"spend": "1000.00"},
        },
    ]
    for document in (POLICY, POLICY | {"levels": mixed}, POLICY | {"levels": LEVELS[:2]}):
        policy = TierPolicy.model_validate(document)
        ladder = _ladder(policy)
        values = [
            {
                Measure.GROWTH: Decimal(g),
                Measure.SPEND: Decimal(s),
                Measure.PURCHASES: Decimal(n),
            }
            for g, s, n in product(
                (0, 700, 800, 999, 1000, 2700, 2999, 3000, 4500, 5000, 18000, 20000),
                ("0.00", "449.99", "450.00", "500.00", "999.99", "1000.00"),
                (0, 4, 5, 18, 20),
            )
        ]
        for current in range(len(policy.levels)):
            for enter, keep in zip(values, reversed(values), strict=True):
                assert ladder.supported(current, enter, keep) == qualify.supported(
                    policy, current, enter, keep
                )
                target = qualify.next_rank(policy, current)
                near = (
                    target
                    if target is not None and qualify.near(policy.levels[target].enter, enter)
                    else None
                )
                assert ladder.near(current, enter) == near
            assert ladder.rank(policy.levels[current].code) == policy.rank(
                policy.levels[current].code
            )
        assert ladder.rank("gone") == policy.rank("gone") == 0
