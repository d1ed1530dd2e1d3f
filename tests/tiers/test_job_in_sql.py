"""The evaluation job decides and writes in SQL, on PostgreSQL, what the common cases come
to — nothing to do, an upgrade, a grace period started, a near-upgrade notice
(`jifen.tiers.jobs._InSql`) — and leaves only the others to Python. Here the same members,
in two programmes alike, are evaluated both ways — one programme in SQL, the other with
every member decided in Python — and every row the job leaves or writes (`member_tiers`,
`tier_history`, `tier_benefit_issues`, outbox) must be the same, member for member, each
member's rows in the same order: members exactly at, just below and just above each enter
and retain threshold and 90% of the next tier's, in every tier; upgrades that bring a
member near the next tier, told of it already or not; grace periods in course, ending at
the job's instant and cleared; a grant holding a tier, one ended, and one in force above
what a member's record would upgrade them to; a tier code the programme no longer has;
frozen accounts; near-upgrade notices told this period, told last period and not yet; a
member already evaluated at the instant. Over a rolling window on growth value (with a
grace period, and without one: downgrades at once), and over calendar quarters (each
measure the better of two periods) on spend with cents, purchases and growth, with a tier
only grants reach. And the SQL sends Python exactly the members it leaves to Python by
rule, so a decision grown over-careful, which would still leave the right rows but lose
the point of deciding in SQL, fails too."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session

from jifen.core.clock import FrozenClock
from jifen.db.outbox import OutboxEvent
from jifen.db.uow import Database
from jifen.ledger import service as ledger
from jifen.ledger.models import Account
from jifen.ledger.posting import Book
from jifen.members import service as members
from jifen.members.schemas import MemberStatus
from jifen.programs.service import get_program
from jifen.tiers import jobs
from jifen.tiers.jobs import evaluate
from jifen.tiers.models import BenefitIssue, MemberTier, TierChange
from jifen.tiers.service import NEAR_PREFIX, tz_of
from jifen.tiers.standing import policy_of
from jifen.tiers.windows import windows

from .kit import LEVELS, grant, local, member, policy, spend, tiered

pytestmark = pytest.mark.postgres


def at(*args: int) -> datetime:
    return local(*args).astimezone(UTC)


NOW = at(2027, 3, 1, 12)
"""The job's instant."""

Member = dict[str, Any]


def rolling_members() -> list[Member]:
    """Growth value around every threshold of kit.LEVELS (silver 1,000 / 800, gold
    5,000 / 4,000, platinum 20,000 / 15,000; near: 90% of the next enter), in every tier,
    and the cases that are never quiet."""
    found: list[Member] = []
    values = [0, 799, 800, 899, 900, 999, 1000, 3999, 4000, 4499, 4500, 4999, 5000]
    values += [14999, 15000, 17999, 18000, 19999, 20000]
    for tier in ("normal", "silver", "gold", "platinum"):
        found += [{"tier": tier, "growth": value} for value in values]
    grace = NOW + timedelta(days=3)
    found += [
        {"tier": "silver", "growth": 700, "grace": grace},  # in course
        {"tier": "silver", "growth": 700, "grace": NOW},  # ends at the job's instant
        {"tier": "gold", "growth": 3000, "grace": NOW - timedelta(days=1)},
        {"tier": "silver", "growth": 1200, "grace": grace},  # cleared
        {"tier": "gold", "qualified": "silver", "growth": 1200, "grant": ("gold", 60)},
        {"tier": "gold", "qualified": "silver", "growth": 4600, "grant": ("gold", 10)},
        {"tier": "platinum", "qualified": "silver", "growth": 900, "grant": ("platinum", 10)},
        {"tier": "diamond", "growth": 0},  # a code the programme no longer has
        {"tier": "diamond", "growth": 900},
        {"tier": "diamond", "growth": 4600},
        {"tier": "silver", "growth": 4600, "frozen": True},
        {"tier": "normal", "growth": 950, "frozen": True},
        # frozen: never near, so only the thresholds themselves tell them apart
        {"tier": "normal", "growth": 1000, "frozen": True},
        {"tier": "silver", "growth": 5000, "frozen": True},
        {"tier": "silver", "growth": 799, "frozen": True},
        {"tier": "gold", "growth": 20000, "frozen": True},
        {"tier": "gold", "growth": 3999, "frozen": True},
        {"tier": "platinum", "growth": 14999, "frozen": True},
        {"tier": "normal", "growth": 20000, "frozen": True},
        {"tier": "silver", "growth": 4600, "told": "now"},
        {"tier": "silver", "growth": 4600, "told": "before"},
        {"tier": "gold", "growth": 19000, "told": "now"},
        # upgraded, and near the next tier: told now, or told already of that tier
        {"tier": "normal", "growth": 4600, "told": "now", "told_of": "gold"},
        {"tier": "normal", "growth": 4600, "told": "now", "told_of": "platinum"},
        {"tier": "silver", "growth": 18500, "frozen": True},
        # a grant in force above the tier the record reaches: the grant's tier, in Python
        {"tier": "silver", "growth": 5000, "grant": ("platinum", 30), "python": True},
        {"tier": "normal", "growth": 1000, "grant": ("silver", 30), "python": True},
        {"tier": "silver", "growth": 100, "evaluated": True},  # done at this instant
    ]
    return found


CALENDAR = policy(
    window={"kind": "calendar", "period": "quarter"},
    grace_days=10,
    downgrade="supported",
    levels=[
        LEVELS[0],
        {
            "code": "silver",
            "name": "银卡会员",
            "enter": {"spend": "1000.00", "purchases": 5},
            "retain": {"spend": "800.00"},
        },
        {
            "code": "gold",
            "name": "金卡会员",
            "enter": {"growth": 5000, "purchases": 8},
            "retain": {"growth": 4000, "purchases": 6},
        },
        {"code": "black", "name": "黑卡会员", "qualifiable": False},
        {
            "code": "platinum",
            "name": "铂金会员",
            "enter": {"growth": 20000},
            "retain": {"growth": 15000},
        },
    ],
)


CALENDAR_NO_GROWTH = policy(
    window={"kind": "calendar", "period": "quarter"},
    grace_days=10,
    downgrade="supported",
    levels=[
        LEVELS[0],
        CALENDAR["levels"][1],
        {
            "code": "gold",
            "name": "金卡会员",
            "enter": {"spend": "5000.00", "purchases": 8},
            "retain": {"spend": "4000.00", "purchases": 6},
        },
        CALENDAR["levels"][3],
        {
            "code": "platinum",
            "name": "铂金会员",
            "enter": {"spend": "20000"},
            "retain": {"spend": "15000"},
        },
    ],
)
"""No threshold names growth value: the statement reads it only for the members it
writes rows of (their history and notices record every measure)."""


def calendar_members() -> list[Member]:
    """Purchases (each its amount in growth value) last quarter and this one, around the
    thresholds of CALENDAR."""
    found: list[Member] = []
    shapes: list[tuple[list[str], list[str]]] = [
        ([], []),
        (["799.99"], []),
        (["800.00"], []),
        ([], ["800.00"]),
        (["400.00"], ["400.00"]),
        ([], ["899.99"]),
        ([], ["900.00"]),
        ([], ["1000.00"]),
        (["1"] * 4, []),
        ([], ["1"] * 4),
        ([], ["1"] * 5),
        (["3999"], ["2000"]),
        (["4000"], []),
        ([], ["4500"]),
        ([], ["1"] * 7),
        ([], ["5000"]),
        (["16000"], ["18000"]),
    ]
    for tier in ("normal", "silver", "gold", "platinum"):
        found += [{"tier": tier, "before": before, "now": now} for before, now in shapes]
    found += [
        {
            "tier": "black",
            "qualified": "gold",
            "before": [],
            "now": ["4500"],
            "grant": ("black", 60),
        },
        {"tier": "black", "before": [], "now": ["100"]},
        {"tier": "silver", "before": [], "now": ["100"], "grace": NOW},
        {"tier": "silver", "before": [], "now": ["950"], "frozen": True},
        {"tier": "normal", "before": [], "now": ["1000.00"], "frozen": True},
        {"tier": "silver", "before": ["799.99"], "now": [], "frozen": True},
        {"tier": "silver", "before": [], "now": ["1"] * 8, "frozen": True},
        {"tier": "gold", "before": ["1"] * 5, "now": [], "frozen": True},
        {"tier": "gold", "before": ["1"] * 6, "now": [], "frozen": True},
    ]
    return found


def build(
    db: Database, clock: FrozenClock, document: dict[str, Any], people: list[Member]
) -> tuple[Book, list[int], list[int]]:
    """A programme with `people`: their growth or purchases, then their tier rows set as
    given; returns the programme, the members and the grants in the order made."""
    book = tiered(db, clock, document)
    grants: list[int] = []
    clock.set(at(2026, 9, 1))
    ids = [member(db, book, clock) for _ in people]
    for m, person in zip(ids, people, strict=True):
        if person.get("growth"):
            clock.set(at(2027, 2, 10))
            db.write(
                lambda s, m=m, n=person["growth"]: ledger.credit_growth(
                    s, book, m, n, now=clock.now(), actor="t"
                )
            )
        for when, amounts in (
            (at(2026, 11, 15), person.get("before", [])),
            (at(2027, 2, 10), person.get("now", [])),
        ):
            for amount in amounts:
                clock.set(when)
                spend(db, book, clock, m, amount)
        if "grant" in person:
            code, days = person["grant"]
            clock.set(at(2027, 2, 15))
            made = grant(db, book, clock, m, code, days=days)
            grants.append(made.id)
    clock.set(NOW)
    program_policy = db.read(lambda s: policy_of(get_program(s, book.program_id)))
    assert program_policy is not None
    program = db.read(lambda s: get_program(s, book.program_id))
    period = windows(program_policy.window, NOW, tz_of(program)).period

    def settle(s: Any) -> None:
        for m, person in zip(ids, people, strict=True):
            state = {
                "tier": person["tier"],
                "qualified_tier": person.get("qualified", person["tier"]),
                "since": at(2026, 12, 1),
                "grace_until": person.get("grace"),
                "evaluated_at": NOW if person.get("evaluated") else at(2027, 2, 28),
                "updated_at": at(2026, 12, 1),
            }
            where = (MemberTier.program_id == book.program_id, MemberTier.member_id == m)
            if s.execute(select(MemberTier.id).where(*where)).first() is None:
                s.execute(
                    insert(MemberTier).values(program_id=book.program_id, member_id=m, **state)
                )
            else:
                s.execute(update(MemberTier).where(*where).values(**state))
            told = person.get("told")
            if told is not None:
                target = person.get("told_of", "gold" if person["tier"] == "silver" else "platinum")
                s.execute(
                    insert(BenefitIssue).values(
                        program_id=book.program_id,
                        member_id=m,
                        benefit=NEAR_PREFIX + target,
                        period=period if told == "now" else "2027-01",
                        tier=person["tier"],
                        details=None,
                        issued_at=at(2027, 1, 5),
                    )
                )

    db.write(settle)
    for m, person in zip(ids, people, strict=True):
        if person.get("frozen"):
            db.write(
                lambda s, m=m: members.set_status(
                    s, book, m, MemberStatus.FROZEN, reason="t", now=clock.now()
                )
            )
    return book, ids, grants


def evaluate_all(db: Database, book: Book, *, in_sql: bool) -> int:
    batches = 0
    while True:
        done = db.write(
            lambda s: evaluate(s, get_program(s, book.program_id), NOW, limit=7, in_sql=in_sql)
        )
        if done.last():
            return batches
        batches += 1


def outcome(
    db: Database, book: Book, ids: list[int], grants: list[int], since: dict[str, int]
) -> dict[str, Any]:
    """What the job left, with members and grants named by their place in the order made
    (so two programmes alike compare equal), each table's rows by member and, a member's
    own, in the order written: within a batch the statement writes the common cases'
    rows before Python writes the others', so two members' rows may come in another
    order than Python alone writes them; one member's never do."""
    person = {m: i for i, m in enumerate(ids)}
    granted = {g: i for i, g in enumerate(grants)}

    def plain(row: Any) -> dict[str, Any]:
        found = {k: v for k, v in row.items() if k not in ("id", "program_id")}
        found["member_id"] = person[found["member_id"]]
        details = found.get("details")
        if isinstance(details, dict) and isinstance(details.get("grant"), dict):
            found["details"] = details | {
                "grant": details["grant"] | {"id": granted[details["grant"]["id"]]}
            }
        return found

    def read(s: Any) -> dict[str, Any]:
        found: dict[str, Any] = {}
        for name, table, order in (
            ("member_tiers", MemberTier.__table__, MemberTier.__table__.c.member_id),
            ("tier_history", TierChange.__table__, TierChange.__table__.c.id),
            ("issues", BenefitIssue.__table__, BenefitIssue.__table__.c.id),
            ("outbox", OutboxEvent.__table__, OutboxEvent.__table__.c.id),
        ):
            rows = s.execute(
                select(table)
                .where(table.c.program_id == book.program_id, table.c.id > since.get(name, 0))
                .order_by(order)
            ).mappings()
            found[name] = sorted((plain(row) for row in rows), key=lambda r: r["member_id"])
        return found

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


@pytest.mark.parametrize(
    ("document", "people", "notices"),
    [
        (policy(), rolling_members(), True),
        (policy(grace_days=0, downgrade="supported"), rolling_members(), True),
        (CALENDAR, calendar_members(), False),
        (CALENDAR_NO_GROWTH, calendar_members(), False),
    ],
    ids=[
        "rolling-growth",
        "rolling-growth-no-grace",
        "calendar-spend-purchases",
        "calendar-no-growth",
    ],
)
def test_the_sql_decision_leaves_the_rows_python_does(
    pg_db: Database,
    clock: FrozenClock,
    document: dict[str, Any],
    people: list[Member],
    notices: bool,
):
    in_sql, ids_sql, grants_sql = build(pg_db, clock, document, people)
    in_python, ids_python, grants_python = build(pg_db, clock, document, people)
    since = last_ids(pg_db)
    sent = sent_to_python(pg_db, in_sql, ids_sql)
    candidates = scanned(pg_db, in_sql, ids_sql)
    assert evaluate_all(pg_db, in_sql, in_sql=True) > 0
    assert evaluate_all(pg_db, in_python, in_sql=False) > 0
    by_sql = outcome(pg_db, in_sql, ids_sql, grants_sql, since)
    by_python = outcome(pg_db, in_python, ids_python, grants_python, since)
    assert by_sql == by_python
    # the members had something of everything to do (so that the equality says something)
    reasons = {row["reason"] for row in by_sql["tier_history"]}
    started = "downgraded" if document.get("grace_days") == 0 else "grace_started"
    assert {"qualified", started} <= reasons
    assert bool(by_sql["issues"]) == notices  # (calendar: the purchases told them already)
    if document is CALENDAR_NO_GROWTH:  # growth read for the movers alone, and recorded
        assert any(row["details"]["measures"]["growth"] for row in by_sql["tier_history"])
    assert len(by_sql["member_tiers"]) == len(people)

    # and no more reach Python than need to: those the SQL leaves to Python by rule (a
    # tier above the qualified one, a grace period in course, a downgrade without grace,
    # an upgrade under a grant in force)
    downgraded = {
        row["member_id"] for row in by_python["tier_history"] if row["reason"] == "downgraded"
    }
    ruled = {
        i
        for i, person in enumerate(people)
        if person.get("qualified", person["tier"]) != person["tier"]
        or person.get("grace")
        or person.get("python")
    }
    done = {i for i, person in enumerate(people) if person.get("evaluated")}
    assert sent == (ruled | downgraded) - done

    # `evaluated_at` is the instant on the rows of the members the evaluation had
    # something to do for — a row written (history, notice), or Python's by rule (a grace
    # period or a grant holding them, written or not) — and as it was on the others
    wrote = {row["member_id"] for name in ("tier_history", "issues") for row in by_python[name]}
    marked = {row["member_id"] for row in by_python["member_tiers"] if row["evaluated_at"] == NOW}
    assert marked == wrote | ruled | done
    assert {
        row["evaluated_at"] for row in by_python["member_tiers"] if row["member_id"] not in marked
    } == {at(2027, 2, 28)}
    assert len(marked) < len(people)  # (quiet members, left as they were)
    # and the scan of the run's first batch found exactly those (before any batch wrote):
    # the members the evaluation of everyone in Python found something to do for, so a
    # member the scan missed would be one the equality above fails on
    assert candidates == marked - done
    if document.get("grace_days") == 0:
        assert downgraded - ruled  # (the record short, no grace: Python's)


def evaluated_at_now(s: Session, book: Book) -> tuple[Any, Any, Any, list[Any]]:
    """The programme, its tier policy, its windows at NOW and their spans, as `evaluate`
    works them out."""
    program = get_program(s, book.program_id)
    found = policy_of(program)
    assert found is not None
    win = windows(found.window, NOW, tz_of(program))
    return program, found, win, list(dict.fromkeys((win.enter, *win.keep)))


def scanned(db: Database, book: Book, ids: list[int]) -> set[int]:
    """The members (by their place in `ids`) the scan of a run's first batch finds with
    something to do (`jobs._candidates`), read in a transaction rolled back."""
    person = {m: i for i, m in enumerate(ids)}
    with Session(db.engine) as s:
        program, found, win, spans = evaluated_at_now(s, book)
        accounts = jobs._candidates(s, program.id, found, jobs._ladder(found), win, spans, NOW)
        assert accounts == sorted(accounts)
        members = dict(
            s.execute(select(Account.id, Account.member_id).where(Account.id.in_(accounts))).all()
        )
        s.rollback()
    return {person[members[a]] for a in accounts}


def sent_to_python(db: Database, book: Book, ids: list[int]) -> set[int]:
    """The members (by their place in `ids`) the SQL decision returns to Python, in a
    transaction rolled back."""
    person = {m: i for i, m in enumerate(ids)}
    with Session(db.engine) as s:
        program, found, win, spans = evaluated_at_now(s, book)
        due = jobs._lock_due(s, program.id, NOW, 10_000, jobs._BRIEF)
        busy, _, _, _ = jobs._settle_in_sql(
            s,
            program.id,
            found,
            jobs._ladder(found),
            win,
            spans,
            [row[0] for row in due],
            [row[1] for row in due],
            NOW,
            tz_of(program),
        )
        s.rollback()
        jobs._runs().pop(jobs._run_key(s, program.id), None)
    return {person[row[1]] for row in busy}


RACE: list[Member] = [
    {"tier": "silver", "growth": 5200},  # an upgrade due; the purchase makes it first
    {"tier": "gold", "growth": 3000},  # a grace period due; the purchase keeps gold
    {"tier": "silver", "growth": 2000},  # nothing to do; the purchase upgrades it
    {"tier": "silver", "growth": 4600},  # a near notice due; the purchase tells it
    {"tier": "silver", "growth": 5200},  # an upgrade, no purchase
    {"tier": "gold", "growth": 3000},  # a grace period, no purchase
    {"tier": "silver", "growth": 1200},  # nothing to do, no purchase
]
RACE_PURCHASES = {0: "100", 1: "1500", 2: "3500", 3: "100"}


def test_a_purchase_between_the_scan_and_the_batch_leaves_what_one_by_one_does(
    pg_db: Database, clock: FrozenClock, monkeypatch: pytest.MonkeyPatch
):
    """The run's first batch scans the members without locks; a purchase that commits
    after the scan and before the batch locks the member is then counted by the batch's
    own measures, under the lock: the member ends exactly as the evaluation of everyone
    one by one in Python leaves them when the purchase came first (rows compared whole;
    the purchase path's own rows named by their order ids, which differ, left out)."""
    raced, ids_raced, grants_raced = build(pg_db, clock, policy(), RACE)
    alone, ids_alone, grants_alone = build(pg_db, clock, policy(), RACE)
    since = last_ids(pg_db)
    for i, amount in RACE_PURCHASES.items():
        spend(pg_db, alone, clock, ids_alone[i], amount)
    evaluate_all(pg_db, alone, in_sql=False)

    real = jobs._candidates
    scans: list[list[int]] = []

    def candidates(*args: Any) -> list[int]:
        found = real(*args)
        scans.append(found)
        for i, amount in RACE_PURCHASES.items():  # committed on connections of their own
            spend(pg_db, raced, clock, ids_raced[i], amount)
        return found

    monkeypatch.setattr(jobs, "_candidates", candidates)
    evaluate_all(pg_db, raced, in_sql=True)
    assert len(scans) == 1
    accounts = pg_db.read(
        lambda s: dict(
            s.execute(
                select(Account.member_id, Account.id).where(
                    Account.program_id == raced.program_id, Account.kind == "points"
                )
            ).all()
        )
    )
    assert scans[0] == [accounts[ids_raced[i]] for i in (0, 1, 3, 4, 5)]  # the race is real

    def plain(found: dict[str, Any]) -> dict[str, Any]:
        for row in found["tier_history"]:
            row["details"] = {k: v for k, v in row["details"].items() if k != "cause"}
        found["outbox"] = [row for row in found["outbox"] if row["type"].startswith("tier.")]
        return found

    by_race = plain(outcome(pg_db, raced, ids_raced, grants_raced, since))
    by_one = plain(outcome(pg_db, alone, ids_alone, grants_alone, since))
    assert by_race == by_one
    # the purchases upgraded 0 and 2 and told 3; the job wrote for 4 and 5 alone
    assert [(r["member_id"], r["reason"], r["actor"]) for r in by_race["tier_history"]] == [
        (0, "qualified", "test"),
        (2, "qualified", "test"),
        (4, "qualified", "job:tiers"),
        (5, "grace_started", "job:tiers"),
    ]
    assert [r["member_id"] for r in by_race["issues"]] == [3]
    evaluated = {r["member_id"]: r["evaluated_at"] for r in by_race["member_tiers"]}
    assert evaluated == {i: NOW if i in (4, 5) else at(2027, 2, 28) for i in range(len(RACE))}
