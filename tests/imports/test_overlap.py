"""What the import overlaps stays safe to run again: its `COPY`s sent behind
(`jifen.db.bulk.writing_behind`) and the next chunk read by a thread of its own. A queued
`COPY` the server refuses, or Python failing while `COPY`s are queued, leaves the chunk
unwritten and the chunks before it committed; a re-run books every order once, and the
result is a clean run's. A file that cannot be read further stops the import after the
chunks before the bad rows, as read one chunk after another."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.exc import IntegrityError

import jifen.db.bulk as bulk
from jifen.core.clock import FrozenClock
from jifen.db.uow import Database
from jifen.earning import batch
from jifen.imports import purchases as purchase_import
from jifen.imports.files import FileFormat, read_rows
from jifen.imports.orders import REQUIRED, group
from jifen.ledger import bulk as ledger_bulk

from .test_safety import members_in, prepared, purchases_in
from .twins import apply_programme, state


def _chunks_counted(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    calls = {"chunks": 0}
    real_book = purchase_import._book

    def book(*args: Any, **kwargs: Any) -> Any:
        calls["chunks"] += 1
        return real_book(*args, **kwargs)

    monkeypatch.setattr(purchase_import, "_book", book)
    return calls


def _rerun_books_every_order_once(
    db: Database, clock: FrozenClock, program_id: int, tmp_path: Path
) -> None:
    after_crash = state(db, program_id)
    assert len(after_crash["purchases"]) == 60  # two whole chunks, nothing of the third
    again = purchases_in(db, clock, program_id, tmp_path / "purchases.csv", chunk=30)
    assert (again.already, again.imported) == (61, 60)  # 60 before the crash + the repeat
    clean = apply_programme(db, clock, capped=False, code="retail-clean")
    members_in(db, clock, clean, tmp_path / "members.csv")
    purchases_in(db, clock, clean, tmp_path / "purchases.csv", chunk=30)
    assert state(db, program_id) == state(db, clean)


def test_a_queued_copy_the_server_refuses(
    pg_db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The third chunk's `COPY` of purchase lines, queued behind, fails on the server (a
    column that is not there): the import raises, the chunk leaves nothing."""
    clock, program_id = prepared(pg_db, tmp_path)
    calls = _chunks_counted(monkeypatch)
    real_copy = bulk._Behind.copy

    def copy(self: Any, statement: str) -> None:
        if calls["chunks"] == 3 and statement.startswith("COPY purchase_lines "):
            statement = statement.replace("(", "(no_such_column, ", 1)
        real_copy(self, statement)

    monkeypatch.setattr(bulk._Behind, "copy", copy)
    with pytest.raises(Exception, match="no_such_column"):
        purchases_in(pg_db, clock, program_id, tmp_path / "purchases.csv", chunk=30)
    monkeypatch.undo()
    _rerun_books_every_order_once(pg_db, clock, program_id, tmp_path)


def test_a_chunk_that_loses_a_race_for_an_order_id_is_done_again(
    db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The second chunk's orders are recorded by someone else after the chunk looked them
    up (here: the look-up finds none the first time): its `COPY` of purchases breaks the
    order ids' unique key, queued behind, and the chunk is done again, finding them."""
    clock, program_id = prepared(db, tmp_path)
    purchases_in(db, clock, program_id, tmp_path / "purchases.csv", chunk=30)
    before = state(db, program_id)
    calls = _chunks_counted(monkeypatch)
    real_recorded = purchase_import.recorded_orders
    missed: list[int] = []

    def recorded_orders(*args: Any) -> Any:
        if calls["chunks"] == 2 and not missed:
            missed.append(calls["chunks"])
            return {}
        return real_recorded(*args)

    monkeypatch.setattr(purchase_import, "recorded_orders", recorded_orders)
    again = purchases_in(db, clock, program_id, tmp_path / "purchases.csv", chunk=30)
    assert missed == [2]
    assert calls["chunks"] == 6  # five chunks, the second twice
    assert (again.already, again.imported, again.rejected) == (121, 0, 0)
    assert state(db, program_id) == before


def test_python_failing_with_copies_queued(
    db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The third chunk's first round dies right after queuing its last `COPY` (its
    events), before anything waits for it: the queued `COPY`s are given up."""
    clock, program_id = prepared(db, tmp_path)
    calls = _chunks_counted(monkeypatch)
    real_copy_rows = batch.copy_rows

    def copy_rows(session: Any, table: Any, rows: Any) -> None:
        real_copy_rows(session, table, rows)
        if calls["chunks"] == 3 and table.name == "outbox_events":
            raise RuntimeError("the machine lost power")

    monkeypatch.setattr(batch, "copy_rows", copy_rows)
    with pytest.raises(RuntimeError):
        purchases_in(db, clock, program_id, tmp_path / "purchases.csv", chunk=30)
    monkeypatch.undo()
    _rerun_books_every_order_once(db, clock, program_id, tmp_path)


def test_a_file_that_cannot_be_read_further(db: Database, tmp_path: Path) -> None:
    """Bytes that are not UTF-8 among the third chunk's rows: the whole chunks read before
    the reading fails (the file is decoded a block at a time) are committed and reported
    by the progress callback, then the reading error is raised — though each chunk was
    read ahead while the one before was booked."""
    clock, program_id = prepared(db, tmp_path)
    path = tmp_path / "purchases.csv"
    lines = path.read_bytes().split(b"\n")
    header, rows = lines[0], lines[1:]
    ids = [row.split(b",", 1)[0] for row in rows if row]
    orders = list(dict.fromkeys(ids))
    at = ids.index(orders[70])  # the first row of the 71st order: in the third chunk
    rows[at] = rows[at].replace(b",", b",\xff", 1)
    path.write_bytes(b"\n".join([header, *rows]))
    readable: list[Any] = []
    with pytest.raises(UnicodeDecodeError):
        readable.extend(group(read_rows(path, FileFormat.CSV, REQUIRED)))
    assert 30 <= len(readable) < 71
    seen: list[int] = []
    with pytest.raises(UnicodeDecodeError):
        purchases_in(
            db,
            clock,
            program_id,
            path,
            chunk=30,
            progress=lambda summary: seen.append(summary.orders),
        )
    chunks = len(readable) // 30  # (the chunk the reading fails in is not booked)
    assert seen == [30 * (i + 1) for i in range(chunks)]
    assert len(state(db, program_id)["purchases"]) == 30 * chunks


def test_an_unbalanced_transaction_is_refused_as_before(
    pg_db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The journal's balance check, run behind for each round's entries while Python goes
    on (`ledger.bulk.check_balanced_behind`) rather than all at the commit, still refuses a
    transaction whose entries do not sum to zero: the chunk leaves nothing (it is an
    integrity error, so the chunk is tried again — here it fails every time)."""
    clock, program_id = prepared(pg_db, tmp_path)
    calls = _chunks_counted(monkeypatch)
    real_copy_tuples = ledger_bulk.copy_tuples

    def copy_tuples(session: Any, table: Any, names: Any, rows: Any) -> None:
        if calls["chunks"] >= 3 and table.name == "journal_entries":
            first = rows[0]
            rows = [(*first[:-1], first[-1] + 1), *rows[1:]]  # one point out of balance
        real_copy_tuples(session, table, names, rows)

    monkeypatch.setattr(ledger_bulk, "copy_tuples", copy_tuples)
    with pytest.raises(IntegrityError, match="does not balance"):
        purchases_in(pg_db, clock, program_id, tmp_path / "purchases.csv", chunk=30)
    monkeypatch.undo()
    assert calls["chunks"] == 2 + purchase_import.ATTEMPTS
    _rerun_books_every_order_once(pg_db, clock, program_id, tmp_path)
