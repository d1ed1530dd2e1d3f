"""Imports are safe to run again: after a crash halfway a re-run books every order once;
bad rows are refused with a reason a person can act on, and change nothing."""

from __future__ import annotations

import csv
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from jifen.core.clock import FrozenClock
from jifen.db.uow import Database
from jifen.earning import batch
from jifen.imports import purchases as purchase_import
from jifen.imports.files import FileFormat, Rejects, read_rows
from jifen.imports.members import import_members
from jifen.imports.orders import REQUIRED
from jifen.imports.purchases import import_purchases

from .twins import (
    PURCHASE_COLUMNS,
    apply_programme,
    purchase_rows,
    sample,
    state,
    write_members_csv,
    write_purchases_csv,
    write_rows,
)

NOW = datetime(2026, 11, 20, 4, 0, tzinfo=UTC)


def members_in(db: Database, clock: FrozenClock, program_id: int, path: Path) -> None:
    rejects = Rejects(None)
    import_members(
        db, program_id, read_rows(path, FileFormat.CSV, ()), clock=clock, rejects=rejects
    )
    assert rejects.count == 0


def purchases_in(
    db: Database, clock: FrozenClock, program_id: int, path: Path, **options: Any
) -> purchase_import.Summary:
    fmt = FileFormat.PARQUET if path.suffix == ".parquet" else FileFormat.CSV
    rejects = options.pop("rejects", Rejects(None))
    done = import_purchases(
        db,
        program_id,
        read_rows(path, fmt, REQUIRED),
        clock=clock,
        actor="import",
        rejects=rejects,
        **options,
    )
    rejects.close()
    return done


def prepared(db: Database, tmp_path: Path) -> tuple[FrozenClock, int]:
    """The programme, 20 members imported, and 120 of their orders in
    `tmp_path / "purchases.csv"` (not imported): the clock and the programme's id."""
    clock = FrozenClock(NOW)
    program_id = apply_programme(db, clock, capped=False)
    data = sample(NOW, members=20, orders=120, seed=3)
    write_members_csv(tmp_path / "members.csv", data.members)
    write_purchases_csv(tmp_path / "purchases.csv", data.orders)
    members_in(db, clock, program_id, tmp_path / "members.csv")
    return clock, program_id


def test_a_rerun_after_a_crash_books_every_order_once(
    db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock, program_id = prepared(db, tmp_path)

    # the third chunk's transaction dies halfway through (after its first round's writes)
    real = batch._book_round
    calls = {"chunks": 0}
    real_book = purchase_import._book

    def book(*args: Any, **kwargs: Any) -> Any:
        calls["chunks"] += 1
        return real_book(*args, **kwargs)

    def first_round(*args: Any, **kwargs: Any) -> Any:
        left = real(*args, **kwargs)
        if calls["chunks"] == 3:
            raise RuntimeError("the machine lost power")
        return left

    monkeypatch.setattr(purchase_import, "_book", book)
    monkeypatch.setattr(batch, "_book_round", first_round)
    with pytest.raises(RuntimeError):
        purchases_in(db, clock, program_id, tmp_path / "purchases.csv", chunk=30)
    monkeypatch.undo()
    after_crash = state(db, program_id)
    assert len(after_crash["purchases"]) == 60  # two whole chunks, nothing of the third

    again = purchases_in(db, clock, program_id, tmp_path / "purchases.csv", chunk=30)
    assert (again.already, again.imported) == (61, 60)  # 60 before the crash + the repeat
    once_more = purchases_in(db, clock, program_id, tmp_path / "purchases.csv", chunk=30)
    assert (once_more.already, once_more.imported, once_more.rejected) == (121, 0, 0)

    # the same as importing the file in one clean run into a fresh programme
    clean = apply_programme(db, clock, capped=False, code="retail-clean")
    members_in(db, clock, clean, tmp_path / "members.csv")
    purchases_in(db, clock, clean, tmp_path / "purchases.csv", chunk=30)
    assert state(db, program_id) == state(db, clean)


def test_bad_rows_are_refused_with_their_reasons_and_change_nothing(
    db: Database, tmp_path: Path
) -> None:
    clock = FrozenClock(NOW)
    program_id = apply_programme(db, clock, capped=False)
    data = sample(NOW, members=5, orders=6, seed=11)
    write_members_csv(tmp_path / "members.csv", data.members)
    members_in(db, clock, program_id, tmp_path / "members.csv")
    good = purchase_rows([o for o in data.orders[:3] if o.get("member")])
    base = dict(good[0], quantity="1", unit_price="10.00", discount="0", total="10.00")

    def bad(order_id: str, **changes: str) -> dict[str, Any]:
        return dict(base, order_id=order_id, **changes)

    rows = [
        *good,
        bad("BAD-1", member_external_id="M99999"),
        bad("BAD-2", channel="fax"),
        bad("BAD-3", store="nowhere"),
        bad("BAD-4", occurred_at="2027-01-01T00:00:00+08:00"),
        bad("BAD-5", total="1.00"),
        bad("BAD-6", unit_price="-3"),
        bad("BAD-7", occurred_at="2026-11-19 10:00"),
        bad("BAD-8", quantity="two"),
        bad(good[0]["order_id"], total="99999.00"),  # a recorded order id with another total
    ]
    # an order whose two rows disagree on its time
    rows += [bad("BAD-9"), bad("BAD-9", occurred_at="2026-11-18T10:00:00+08:00")]
    write_rows(tmp_path / "orders.csv", rows)
    before = state(db, program_id)
    rejects = Rejects(tmp_path / "orders.rejected.csv")
    done = purchases_in(db, clock, program_id, tmp_path / "orders.csv", rejects=rejects)
    good_orders = len({r["order_id"] for r in good})
    assert (done.imported, done.rejected) == (good_orders, 10)

    with (tmp_path / "orders.rejected.csv").open(encoding="utf-8") as stream:
        refused = list(csv.DictReader(stream))
    reasons = {r["order_id"]: r["reason"] for r in refused}
    assert reasons["BAD-1"] == "No member external_id=M99999 in this programme."
    assert reasons["BAD-2"] == (
        "channel: this programme has no (active) 'fax'. Known: app, mini_program, store"
    )
    assert reasons["BAD-3"].startswith("store: this programme has no (active) 'nowhere'")
    assert reasons["BAD-4"] == "occurred_at: is in the future"
    assert reasons["BAD-5"].startswith("total: total 1.00 does not equal the lines' amounts")
    assert reasons["BAD-6"].startswith("lines.0.unit_price: Input should be greater than")
    assert reasons["BAD-7"].startswith("occurred_at: Input should have timezone info")
    assert reasons["BAD-8"].startswith("lines.0.quantity:")
    assert (
        "another total" in reasons[good[0]["order_id"]] or "total" in reasons[good[0]["order_id"]]
    )
    assert reasons["BAD-9"].startswith("occurred_at: differs between the rows of order BAD-9")
    # each refused row keeps its row number in the file (the header is row 1)
    assert [int(r["row"]) for r in refused if r["order_id"] == "BAD-9"] == [
        len(rows),
        len(rows) + 1,
    ]
    after = state(db, program_id)
    assert {k: v for k, v in after["purchases"].items() if k.startswith("BAD")} == {}
    assert after["accounts"] != before["accounts"]  # the good orders were booked


def test_parquet_and_csv_import_alike(db: Database, tmp_path: Path) -> None:
    clock = FrozenClock(NOW)
    data = sample(NOW, members=10, orders=40, seed=5)
    write_members_csv(tmp_path / "members.csv", data.members)
    write_purchases_csv(tmp_path / "purchases.csv", data.orders)
    rows = purchase_rows(data.orders)
    table = pa.table({c: [r[c] or None for r in rows] for c in PURCHASE_COLUMNS})
    pq.write_table(table, tmp_path / "purchases.parquet")
    from_csv = apply_programme(db, clock, capped=False)
    from_parquet = apply_programme(db, clock, capped=False, code="retail-parquet")
    for program_id, name in ((from_csv, "purchases.csv"), (from_parquet, "purchases.parquet")):
        members_in(db, clock, program_id, tmp_path / "members.csv")
        done = purchases_in(db, clock, program_id, tmp_path / name)
        assert (done.imported, done.rejected) == (40, 0)
    assert state(db, from_csv) == state(db, from_parquet)


def test_members_import_refuses_clashes_and_skips_who_is_there(
    db: Database, tmp_path: Path
) -> None:
    clock = FrozenClock(NOW)
    program_id = apply_programme(db, clock, capped=False)
    people = [
        {"external_id": "M1", "phone": "13900000001", "name": "甲", "birthday": "1990-01-02"},
        {"external_id": "M2", "phone": "13900000002", "name": "乙", "birthday": ""},
    ]
    write_members_csv(tmp_path / "first.csv", people)
    members_in(db, clock, program_id, tmp_path / "first.csv")
    again = [
        *people,
        {"external_id": "M3", "phone": "13900000001", "name": "丙", "birthday": ""},  # M1's phone
        {"external_id": "M4", "phone": "not a phone", "name": "丁", "birthday": ""},
        {"external_id": "M5", "phone": "13900000005", "name": "戊", "birthday": "2999-01-01"},
        {"external_id": "M6", "phone": "13900000006", "name": "己", "birthday": ""},
        {"external_id": "M6", "phone": "13900000007", "name": "庚", "birthday": ""},  # M6 again
    ]
    write_members_csv(tmp_path / "again.csv", again)
    rejects = Rejects(tmp_path / "again.rejected.csv")
    done = import_members(
        db,
        program_id,
        read_rows(tmp_path / "again.csv", FileFormat.CSV, ()),
        clock=clock,
        rejects=rejects,
    )
    rejects.close()
    assert (done.already, done.imported, done.rejected) == (2, 1, 4)
    with (tmp_path / "again.rejected.csv").open(encoding="utf-8") as stream:
        reasons = {r["external_id"] + "/" + r["phone"]: r["reason"] for r in csv.DictReader(stream)}
    assert reasons["M3/13900000001"].startswith("phone 13900000001 already belongs to member")
    assert reasons["M4/not a phone"].startswith("phone: a phone number is 5–20 digits")
    assert reasons["M5/13900000005"] == "birthday: cannot be in the future"
    assert reasons["M6/13900000007"].startswith("external_id M6 already belongs to member")
    assert set(state(db, program_id)["members"]) == {"M1", "M2", "M6"}
