"""The evaluation job: the only place a tier goes down — never inside the grace period, by
the policy after it (one level, or straight to what the record supports), a record that
recovers clears the grace; calendar windows (entering counts this year, keeping the
better of last year and this); grants that end; near-upgrade reminders once per tier
and period; a second run at the same instant changes nothing; batches."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select

from jifen.db.outbox import OutboxEvent
from jifen.ledger import service as ledger
from jifen.ledger.posting import Book
from jifen.tiers import service
from jifen.tiers.models import MemberTier, TierChange
from jifen.tiers.schemas import GrantIn

from .kit import (
    history,
    history_details,
    issues,
    local,
    member,
    policy,
    run,
    spend,
    standing,
    tier,
    tier_events,
    tiered,
)


def at(*args: int) -> datetime:
    """A Shanghai wall-clock time as a UTC instant."""
    return local(*args).astimezone(UTC)


def growth(db: Any, book: Book, clock: Any, m: int, n: int) -> None:
    """Growth value credited without any tier check (as an import or a ledger call would)."""
    db.write(lambda s: ledger.credit_growth(s, book, m, n, now=clock.now(), actor="t"))


def tier_tables(db: Any) -> Any:
    def read(s: Any) -> Any:
        return (
            [tuple(r) for r in s.execute(select(MemberTier.__table__).order_by(MemberTier.id))],
            [tuple(r) for r in s.execute(select(TierChange.__table__).order_by(TierChange.id))],
            [tuple(r) for r in s.execute(select(OutboxEvent.__table__).order_by(OutboxEvent.id))],
        )

    return db.read(read)


def test_downgrade_only_after_the_grace_period_one_level_down(db, clock):
    book = tiered(db, clock)
    m = member(db, book, clock)
    spend(db, book, clock, m, "5000")
    assert tier(db, book, m) == "gold"
    # a year later the growth has left the window; activity alone never demotes
    clock.set(at(2027, 1, 20, 9))
    spend(db, book, clock, m, "100")
    assert tier(db, book, m) == "gold"

    report = run(db, book, clock)
    assert (report.totals.accounts, report.totals.items) == (1, 1)
    grace_end = at(2027, 2, 20, 0)  # the end of the local day 30 days on (19 February)
    assert standing(db, book, m) == ("gold", "gold", grace_end)
    assert history(db, book, m)[-1] == ("gold", "gold", "grace_started")
    assert tier_events(db, book, m)[-1] == (
        "tier.grace_started",
        {
            "tier": "gold",
            "qualified_tier": "gold",
            "supported": "normal",
            "grace_until": grace_end.isoformat(),
        },
    )
    before = tier_tables(db)
    again = run(db, book, clock)  # the same instant: nothing to do
    assert (again.totals.accounts, again.totals.items) == (0, 0)
    assert tier_tables(db) == before

    clock.set(at(2027, 2, 19, 23, 59))  # the last minute of the grace period
    assert run(db, book, clock).totals.items == 0
    assert standing(db, book, m) == ("gold", "gold", grace_end)

    clock.set(grace_end)
    assert run(db, book, clock).totals.items == 1
    assert standing(db, book, m) == ("silver", "silver", None)
    assert history(db, book, m)[-1] == ("gold", "silver", "downgraded")
    details = history_details(db, book, m)[-1]
    assert details["supported"] == "normal"
    assert details["policy"] == "one_down"
    assert details["threshold"] == {"growth": 4000}
    assert details["measures"] == {"growth": 100, "spend": "100.00", "purchases": 1}
    assert tier_events(db, book, m)[-1] == (
        "tier.changed",
        {"from": "gold", "to": "silver", "reason": "downgraded", "qualified_tier": "silver"},
    )
    # silver is not held either: a new grace period, then silver falls too
    clock.advance(hours=1)
    run(db, book, clock)
    assert standing(db, book, m) == ("silver", "silver", at(2027, 3, 23, 0))
    clock.set(at(2027, 3, 23, 0))
    run(db, book, clock)
    assert standing(db, book, m) == ("normal", "normal", None)


def test_supported_policy_goes_straight_to_the_tier_the_record_holds(db, clock):
    book = tiered(db, clock, policy(downgrade="supported", grace_days=10))
    m = member(db, book, clock)
    spend(db, book, clock, m, "20000")
    assert tier(db, book, m) == "platinum"
    clock.set(at(2027, 1, 20, 12))
    spend(db, book, clock, m, "900")  # silver's retain threshold (800), not gold's
    run(db, book, clock)
    assert standing(db, book, m) == ("platinum", "platinum", at(2027, 1, 31, 0))
    clock.set(at(2027, 1, 31, 0))
    run(db, book, clock)
    assert standing(db, book, m) == ("silver", "silver", None)
    assert history(db, book, m)[-2:] == [
        ("platinum", "platinum", "grace_started"),
        ("platinum", "silver", "downgraded"),
    ]
    # silver is held by 900 ≥ 800: no new grace
    clock.advance(days=1)
    run(db, book, clock)
    assert standing(db, book, m) == ("silver", "silver", None)


def test_no_grace_days_means_a_downgrade_at_the_first_evaluation(db, clock):
    book = tiered(db, clock, policy(grace_days=0))
    m = member(db, book, clock)
    spend(db, book, clock, m, "1000")
    clock.set(at(2027, 2, 1, 12))
    run(db, book, clock)
    assert standing(db, book, m) == ("normal", "normal", None)
    assert history(db, book, m) == [
        ("normal", "silver", "qualified"),
        ("silver", "normal", "downgraded"),
    ]


def test_a_record_that_recovers_inside_the_grace_clears_it(db, clock):
    book = tiered(db, clock)
    m = member(db, book, clock)
    spend(db, book, clock, m, "5000")
    clock.set(at(2027, 1, 20, 9))
    run(db, book, clock)
    assert standing(db, book, m) == ("gold", "gold", at(2027, 2, 20, 0))
    clock.set(at(2027, 2, 1, 9))
    spend(db, book, clock, m, "4000")  # gold's retain threshold
    assert standing(db, book, m) == ("gold", "gold", at(2027, 2, 20, 0))  # until evaluated
    run(db, book, clock)
    assert standing(db, book, m) == ("gold", "gold", None)
    assert history(db, book, m)[-1] == ("gold", "gold", "grace_cleared")
    assert tier_events(db, book, m)[-1] == ("tier.grace_cleared", {"tier": "gold"})
    clock.set(at(2027, 3, 1, 9))
    run(db, book, clock)
    assert standing(db, book, m) == ("gold", "gold", None)


def test_growth_that_came_without_a_crossing_write_upgrades_at_evaluation(db, clock):
    book = tiered(db, clock)
    m = member(db, book, clock)
    spend(db, book, clock, m, "1000")
    growth(db, book, clock, m, 4500)
    assert tier(db, book, m) == "silver"
    clock.advance(minutes=1)
    run(db, book, clock)
    assert standing(db, book, m) == ("gold", "gold", None)
    assert history(db, book, m)[-1] == ("silver", "gold", "qualified")
    assert history_details(db, book, m)[-1]["threshold"] == {"growth": 5000}


def test_near_upgrade_reminders_once_per_tier_and_month(db, clock):
    book = tiered(db, clock)
    m = member(db, book, clock)
    spend(db, book, clock, m, "1000")
    growth(db, book, clock, m, 3499)  # 4,499: not yet within 10% of gold's 5,000
    clock.advance(minutes=1)
    run(db, book, clock)
    assert [t for t, _ in tier_events(db, book, m)] == ["tier.changed"]
    growth(db, book, clock, m, 1)
    clock.advance(minutes=1)
    run(db, book, clock)
    clock.advance(days=1)
    run(db, book, clock)
    near = [p for t, p in tier_events(db, book, m) if t == "tier.near_upgrade"]
    assert near == [
        {"tier": "silver", "next": "gold", "missing": {"growth": "500"}, "period": "2026-01"}
    ]
    assert issues(db, book) == [(m, "near-upgrade:gold", "2026-01", "silver")]
    clock.set(at(2026, 2, 3, 9))
    run(db, book, clock)
    near = [p["period"] for t, p in tier_events(db, book, m) if t == "tier.near_upgrade"]
    assert near == ["2026-01", "2026-02"]


def test_calendar_years_enter_on_this_year_and_keep_on_the_better_of_two(db, clock):
    book = tiered(db, clock, policy(window={"kind": "calendar", "period": "year"}))
    m = member(db, book, clock)
    clock.set(at(2026, 6, 1, 12))
    spend(db, book, clock, m, "3000")
    clock.set(at(2027, 2, 1, 12))
    spend(db, book, clock, m, "2500")
    assert tier(db, book, m) == "silver"  # 2,500 this year: 2026's 3,000 does not count
    spend(db, book, clock, m, "2500")
    assert tier(db, book, m) == "gold"  # 5,000 in 2027
    assert history_details(db, book, m)[-1]["window"] == {"from": "2027-01-01", "to": None}

    clock.set(at(2028, 1, 10, 12))  # 2028: 0; kept by 2027's 5,000
    run(db, book, clock)
    assert standing(db, book, m) == ("gold", "gold", None)
    spend(db, book, clock, m, "900")
    clock.set(at(2029, 1, 10, 12))  # better of 2028 (900) and 2029 (0): silver's 800
    run(db, book, clock)
    assert standing(db, book, m) == ("gold", "gold", at(2029, 2, 10, 0))
    clock.set(at(2029, 2, 10, 0))
    run(db, book, clock)
    assert standing(db, book, m) == ("silver", "silver", None)
    clock.advance(days=1)
    run(db, book, clock)
    assert standing(db, book, m) == ("silver", "silver", None)  # 2028 still holds silver


def test_a_grant_ends_at_the_first_evaluation_after_its_end_without_grace(db, clock):
    book = tiered(db, clock)
    m = member(db, book, clock)
    spend(db, book, clock, m, "1500")
    grant = GrantIn.model_validate({"tier": "gold", "kind": "staff", "days": 10})

    def give(s: Any) -> Any:
        from jifen.programs.service import get_program

        return service.grant(
            s, get_program(s, book.program_id), book, m, grant, now=clock.now(), actor="staff"
        )

    made, _ = db.write(give)
    assert made.ends_at == at(2026, 1, 25, 0)
    assert standing(db, book, m) == ("gold", "silver", None)
    clock.set(at(2026, 1, 24, 23, 59))
    run(db, book, clock)
    assert tier(db, book, m) == "gold"
    clock.set(at(2026, 1, 25, 0))
    run(db, book, clock)
    assert standing(db, book, m) == ("silver", "silver", None)
    assert history(db, book, m) == [
        ("normal", "silver", "qualified"),
        ("silver", "gold", "granted"),
        ("gold", "silver", "grant_ended"),
    ]
    assert history_details(db, book, m)[-1]["grant"]["id"] == made.id


def test_the_job_works_in_batches_and_skips_nobody(db, clock):
    book = tiered(db, clock, policy(grace_days=0))
    members = [member(db, book, clock) for _ in range(17)]
    for m in members:
        spend(db, book, clock, m, "1000")
    clock.set(at(2027, 3, 1, 12))
    report = run(db, book, clock)
    assert report.batches == 3  # of 7
    assert (report.totals.accounts, report.totals.items) == (17, 17)
    assert {tier(db, book, m) for m in members} == {"normal"}
    assert run(db, book, clock).batches == 0


def test_quiet_members_are_gone_through_a_batch_a_transaction(db, clock):
    """Members with nothing to do are not written, and a batch of them alone ends its
    transaction (SQLite's one writer is not held across a programme of quiet members):
    it reports nothing done and more to come, and the run goes on."""
    from jifen.programs.service import get_program
    from jifen.tiers.jobs import evaluate

    book = tiered(db, clock, policy(grace_days=0))
    quiet = [member(db, book, clock) for _ in range(10)]
    for m in quiet:
        spend(db, book, clock, m, "1000")  # silver at the purchase, still supported below
    clock.set(at(2026, 6, 1, 12))
    batches: list[tuple[int, int, bool]] = []

    def batch(s: Any) -> Any:
        done = evaluate(s, get_program(s, book.program_id), clock.now(), limit=4)
        batches.append((done.accounts, done.items, done.more))
        return done

    while not db.write(batch).last():
        pass
    if db.engine.dialect.name == "sqlite":  # 4, 4 and 2 quiet members, then the end
        assert batches == [(0, 0, True)] * 3 + [(0, 0, False)]
    else:  # the run's scan found nobody with something to do
        assert batches == [(0, 0, False)]
    assert {standing(db, book, m) for m in quiet} == {("silver", "silver", None)}
    evaluated = db.read(lambda s: set(s.execute(select(MemberTier.evaluated_at)).scalars()))
    assert evaluated == {None}  # never written
    assert run(db, book, clock).batches == 0


def test_a_programme_without_tiers_has_nothing_to_evaluate(db, clock):
    book = tiered(db, clock)
    from .kit import set_tiers

    set_tiers(db, book, None)
    report = run(db, book, clock)
    assert (report.batches, report.totals.accounts) == (0, 0)
