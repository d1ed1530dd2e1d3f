"""An import gives exactly what posting the same members and orders one by one through the
HTTP API gives: balances, lots, purchases with their breakdowns and facts, tiers and their
history, cap and budget counters, and the events for others to read."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from jifen.core.clock import FrozenClock
from jifen.db.uow import Database
from jifen.imports.files import FileFormat, Rejects, read_rows
from jifen.imports.members import import_members
from jifen.imports.orders import REQUIRED
from jifen.imports.purchases import import_purchases
from jifen.imports.returns import import_returns
from jifen.jobs.runner import run_job

from .twins import (
    apply_programme,
    post_through_api,
    return_through_api,
    returns_sample,
    sample,
    state,
    write_members_csv,
    write_purchases_csv,
    write_returns_csv,
)

NOW = datetime(2026, 11, 20, 4, 0, tzinfo=UTC)


def import_files(
    db: Database, clock: FrozenClock, program_id: int, folder: Path, chunk: int
) -> None:
    members_file, purchases_file = folder / "members.csv", folder / "purchases.csv"
    rejects = Rejects(folder / "rejected.csv")
    done = import_members(
        db, program_id, read_rows(members_file, FileFormat.CSV, ()), clock=clock, rejects=rejects
    )
    assert (done.imported, done.rejected) == (done.rows, 0)
    summary = import_purchases(
        db,
        program_id,
        read_rows(purchases_file, FileFormat.CSV, REQUIRED),
        clock=clock,
        actor="import",
        rejects=rejects,
        chunk=chunk,
    )
    rejects.close()
    assert summary.rejected == 0
    assert summary.already == 1  # the order sent twice


@pytest.mark.parametrize("capped", [False, True], ids=["retail-chain", "with-cap-and-budget"])
def test_import_equals_posting_one_by_one(
    twin: tuple[Database, Database], tmp_path: Path, capped: bool
) -> None:
    through_api, imported = twin
    clock = FrozenClock(NOW)
    api_program = apply_programme(through_api, clock, capped=capped)
    import_program = apply_programme(imported, clock, capped=capped)
    data = sample(NOW, members=40, orders=260, seed=7)
    write_members_csv(tmp_path / "members.csv", data.members)
    write_purchases_csv(tmp_path / "purchases.csv", data.orders)

    post_through_api(through_api, clock, api_program, data)
    # small chunks: members' later orders land in later chunks and later rounds
    import_files(imported, clock, import_program, tmp_path, chunk=37)

    expected, got = state(through_api, api_program), state(imported, import_program)
    assert got["purchases"] == expected["purchases"]
    assert got["lots"] == expected["lots"]
    assert got["accounts"] == expected["accounts"]
    assert got["tiers"] == expected["tiers"]
    assert got["history"] == expected["history"]
    assert got["counters"] == expected["counters"]
    assert got == expected
    # the sample is worth comparing: upgrades, tier bonuses, and (with caps) a spent budget
    assert any(tier != "normal" for tier, *_ in expected["tiers"].values())
    breakdowns = [p[9] for p in expected["purchases"].values() if p[9]]
    assert any(item["rule"] == "tier-bonus" for b in breakdowns for item in b)
    assert any(item["rule"] == "member-day" for b in breakdowns for item in b)
    if capped:
        assert any(k.startswith("budget:") and v == 600 for k, v in expected["counters"].items())
        assert any(item["capped_by"] for b in breakdowns for item in b)

    # returns and refunds: posted one by one, or imported
    clock.set(NOW + timedelta(days=2))
    refunds = returns_sample(data.orders, seed=8)
    write_returns_csv(tmp_path / "returns.csv", refunds)
    return_through_api(through_api, clock, api_program, refunds)
    rejects = Rejects(None)
    done = import_returns(
        imported,
        import_program,
        read_rows(tmp_path / "returns.csv", FileFormat.CSV, ()),
        clock=clock,
        actor="import",
        rejects=rejects,
        chunk=7,
    )
    assert (done.imported, done.rejected) == (len(refunds), 0)
    expected, got = state(through_api, api_program), state(imported, import_program)
    assert got["purchases"] == expected["purchases"]
    assert got == expected
    assert any(p[1] == "returned" for p in expected["purchases"].values())

    # and they stay equal as time passes: points are released after the return window
    clock.set(NOW + timedelta(days=9))
    for db in (through_api, imported):
        run_job(db, "release", now=clock.now())
        run_job(db, "tiers", now=clock.now())
    assert state(imported, import_program) == state(through_api, api_program)
