"""Migration 0009: on PostgreSQL `member_tiers` is kept half full (the evaluation job's
updates are HOT), `tier_benefit_issues`' keys to programmes and members are checked per
statement, and the insert checks of `tier_history` and `tier_benefit_issues` skip a
statement that vouches for its keys — the evaluation job's one statement per batch, and
nothing after it. Both stores refuse the same orphan rows."""

from __future__ import annotations

from typing import Any

import pytest
from alembic import command
from sqlalchemy import inspect, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from jifen.core.clock import FrozenClock
from jifen.db.migrate import alembic_config, upgrade
from jifen.db.uow import Database
from jifen.ledger import service as ledger
from jifen.ledger.posting import Book
from jifen.programs.service import get_program
from jifen.tiers.jobs import evaluate
from rows import table_rows
from schema import unmigrated

from .kit import member, spend, tiered

KEYS_REFUSED = "violates its keys|FOREIGN KEY constraint failed"
"""PostgreSQL's per-statement check or SQLite's foreign keys."""

MISSING = 10**9
"""An id no programme or member has."""

TABLES = ("member_tiers", "tier_history", "tier_benefit_issues", "outbox_events")


def _orphan_notice(program_id: int, member_id: int) -> Any:
    return text(
        "INSERT INTO tier_benefit_issues (program_id, member_id, benefit, period, tier, "
        f"issued_at) VALUES ({program_id}, {member_id}, 'near-upgrade:gold', '2099-01', "
        "'silver', CURRENT_TIMESTAMP)"
    )


def _orphan_history(program_id: int, member_id: int) -> Any:
    return text(
        "INSERT INTO tier_history (program_id, member_id, from_tier, to_tier, reason, at, "
        f"actor) VALUES ({program_id}, {member_id}, 'silver', 'gold', 'qualified', "
        "CURRENT_TIMESTAMP, 't')"
    )


def _vouched(session: Session, on: bool) -> None:
    session.execute(
        text("SELECT set_config('jifen.keys_vouched', :on, true)"), {"on": "on" if on else "off"}
    )


def _upgraded_by_the_job(db: Database, clock: FrozenClock) -> tuple[Book, int]:
    """A silver member whose growth (credited without a tier check) the job finds worth
    gold: the job's statement writes a tier row, a history row, an outbox event and a
    near-upgrade notice (4,600 of platinum's 20,000 is not near; so a second member
    4,600 into silver's retain is told of gold)."""
    book = tiered(db, clock)
    m = member(db, book, clock)
    spend(db, book, clock, m, "1000")
    db.write(lambda s: ledger.credit_growth(s, book, m, 4500, now=clock.now(), actor="t"))
    near = member(db, book, clock)
    spend(db, book, clock, near, "1000")
    db.write(lambda s: ledger.credit_growth(s, book, near, 3600, now=clock.now(), actor="t"))
    clock.advance(minutes=1)
    return book, m


def _catalogue(db: Database) -> dict[str, Any]:
    """What 0009 changes, as the database has it: `tier_benefit_issues`' foreign keys,
    and on PostgreSQL the insert triggers' definitions and `member_tiers`' options."""
    with db.engine.connect() as connection:
        found: dict[str, Any] = {
            "keys": sorted(
                (fk["constrained_columns"][0], fk["referred_table"])
                for fk in inspect(connection).get_foreign_keys("tier_benefit_issues")
            )
        }
        if db.dialect != "postgresql":
            return found
        found["triggers"] = dict(
            connection.execute(
                text(
                    "SELECT c.relname, pg_get_triggerdef(t.oid) FROM pg_trigger AS t "
                    "JOIN pg_class AS c ON c.oid = t.tgrelid "
                    "WHERE t.tgname = c.relname || '_keys_on_insert' "
                    "AND c.relname IN ('tier_history', 'tier_benefit_issues')"
                )
            ).all()
        )
        found["options"] = connection.execute(
            text("SELECT reloptions FROM pg_class WHERE relname = 'member_tiers'")
        ).scalar_one()
    return found


def test_migration_0009_goes_down_and_up_again(db: Database, clock: FrozenClock) -> None:
    """Down to 0008: on PostgreSQL the notices' foreign keys are back, the history's check
    skips nothing, `member_tiers` has no fill factor; up again: the keys checked per
    statement (still refusing an orphan, on both stores), the history's and the notices'
    checks skipping a vouched statement only, a fill factor of 50. The models still
    match the migrations, and the rows are kept."""
    book, m = _upgraded_by_the_job(db, clock)
    db.write(lambda s: evaluate(s, get_program(s, book.program_id), clock.now()))
    kept = {table: table_rows(db, table) for table in TABLES}
    assert kept["tier_history"]
    assert kept["tier_benefit_issues"]
    url = db.engine.url.render_as_string(hide_password=False)
    db.engine.dispose()
    keys = [("member_id", "members"), ("program_id", "programs")]

    command.downgrade(alembic_config(url), "0008")
    down = _catalogue(db)
    assert down["keys"] == keys
    if db.dialect == "postgresql":
        assert not any("keys_vouched" in d for d in down["triggers"].values())
        assert set(down["triggers"]) == {"tier_history"}  # the notices have foreign keys
        assert down["options"] is None

    upgrade(url)
    db.engine.dispose()
    assert unmigrated(db) == []
    assert {table: table_rows(db, table) for table in TABLES} == kept
    up = _catalogue(db)
    if db.dialect == "postgresql":
        assert up["keys"] == []
        assert set(up["triggers"]) == {"tier_history", "tier_benefit_issues"}
        assert all("jifen.keys_vouched" in d for d in up["triggers"].values())
        assert up["options"] == ["fillfactor=50"]
    else:
        assert up["keys"] == keys
    for orphan in (
        _orphan_notice(MISSING, m),
        _orphan_notice(book.program_id, MISSING),
        _orphan_history(book.program_id, MISSING),
    ):
        with pytest.raises(IntegrityError, match=KEYS_REFUSED):
            db.write(lambda s, o=orphan: s.execute(o))
    if db.dialect == "postgresql":  # a vouched statement is not checked (rolled back)
        with db.engine.connect() as connection:
            session = Session(bind=connection)
            _vouched(session, True)
            session.execute(_orphan_notice(book.program_id, MISSING))
            session.execute(_orphan_history(book.program_id, MISSING))
            connection.rollback()
    assert {table: table_rows(db, table) for table in TABLES} == kept


@pytest.mark.postgres
def test_the_job_vouches_for_its_own_statement_only(pg_db: Database, clock: FrozenClock) -> None:
    """The job's statement writes rows of all three checked tables, and the setting is
    off again after it: a write that follows in the same transaction is checked."""
    db = pg_db
    book, _ = _upgraded_by_the_job(db, clock)
    before = {table: table_rows(db, table) for table in TABLES}

    def job_then_orphan(s: Session) -> None:
        result = evaluate(s, get_program(s, book.program_id), clock.now())
        assert result.items == 1  # the upgrade's history row, written by the statement
        assert s.execute(text("SELECT current_setting('jifen.keys_vouched')")).scalar() == "off"
        s.execute(_orphan_history(book.program_id, MISSING))

    with pytest.raises(IntegrityError, match=KEYS_REFUSED):
        db.write(job_then_orphan)
    assert {table: table_rows(db, table) for table in TABLES} == before
    db.write(lambda s: evaluate(s, get_program(s, book.program_id), clock.now()))
    after = {table: table_rows(db, table) for table in TABLES}
    assert len(after["tier_history"]) == len(before["tier_history"]) + 1
    assert len(after["tier_benefit_issues"]) == len(before["tier_benefit_issues"]) + 1
