"""`jifen.db.bulk.writing_behind`: the `COPY`s of `copy_rows` and `copy_tuples` sent by a
thread of their own while Python goes on. The same rows reach the tables; a statement
after them sees them; a `COPY` the server refuses, or one whose rows Python failed to
make, leaves nothing of the transaction and raises; the thread ends with the block."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import (
    Column,
    ForeignKey,
    Integer,
    MetaData,
    Numeric,
    String,
    Table,
    func,
    insert,
    select,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from jifen.db.base import Id, Json, UtcDateTime
from jifen.db.bulk import COPY_PIECE, copy_rows, copy_tuples, execute_behind, writing_behind
from jifen.db.uow import Database

META = MetaData()
PARENTS = Table(
    "behind_parents",
    META,
    Column("id", Id, primary_key=True),
    Column("code", String(40), unique=True),
    Column("price", Numeric(14, 2)),
    Column("at", UtcDateTime),
    Column("doc", Json),
)
CHILDREN = Table(
    "behind_children",
    META,
    Column("id", Id, primary_key=True),
    Column("parent_id", Id, ForeignKey("behind_parents.id"), nullable=False),
    Column("n", Integer),
)
AT = datetime(2026, 11, 20, 4, 0, 5, 123456, tzinfo=UTC)


def parents(first: int, n: int) -> list[dict[str, Any]]:
    return [
        {
            "id": i,
            "code": f"p\t{i}\\" if i % 7 == 0 else f"p{i}",
            "price": Decimal(i).scaleb(-2),
            "at": AT if i % 2 else AT.astimezone(timezone(timedelta(hours=8))),
            "doc": {"i": i, "note": "é\n"} if i % 3 else None,
        }
        for i in range(first, first + n)
    ]


def children(parent_ids: range) -> list[tuple[Any, ...]]:
    return [(pid * 10 + k, pid, k) for pid in parent_ids for k in range(2)]


def read(db: Database, table: Table) -> list[tuple[Any, ...]]:
    return db.read(lambda s: [tuple(r) for r in s.execute(select(table).order_by(table.c.id))])


def clear(db: Database) -> None:
    META.drop_all(db.engine)
    META.create_all(db.engine)


def behind_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "jifen-copy-behind"]


def test_the_same_rows_as_written_in_line_and_each_statement_sees_those_before(
    db: Database,
) -> None:
    """Two batches of parents and children (more rows than a piece of `COPY` text), in
    line and then behind, into fresh tables: the same rows; a count between the `COPY`s
    inside the block sees every row queued before it."""
    n = COPY_PIECE + 30
    found = []
    for behind in (False, True):
        clear(db)
        seen: list[int] = []

        def write(session: Session, behind: bool = behind, seen: list[int] = seen) -> None:
            def batches() -> None:
                copy_rows(session, PARENTS, parents(1, n))
                copy_tuples(session, CHILDREN, ("id", "parent_id", "n"), children(range(1, n + 1)))
                seen.append(
                    session.execute(select(func.count()).select_from(CHILDREN)).scalar_one()
                )
                copy_rows(session, PARENTS, parents(n + 1, 3))
                copy_tuples(
                    session, CHILDREN, ("id", "parent_id", "n"), children(range(n + 1, n + 4))
                )

            if behind:
                with writing_behind(session):
                    batches()
            else:
                batches()

        db.write(write)
        assert seen == [2 * n]
        found.append((read(db, PARENTS), read(db, CHILDREN)))
    assert found[0] == found[1]
    assert len(found[1][0]) == n + 3
    assert len(found[1][1]) == 2 * (n + 3)
    assert found[1][0][6][1] == "p\t7\\"
    assert not behind_threads()


def test_a_copy_the_server_refuses_raises_and_leaves_nothing(db: Database) -> None:
    """A queued `COPY` breaking a unique key: the next statement raises the error (as the
    `COPY` would have, in line), the transaction leaves nothing, and the database takes
    the next one."""
    clear(db)
    db.write(lambda s: s.execute(insert(PARENTS), parents(1, 1)))
    after: list[str] = []

    def write(session: Session) -> None:
        with writing_behind(session):
            copy_rows(session, PARENTS, parents(2, 5))
            copy_rows(session, PARENTS, [{**parents(1, 1)[0], "id": 99}])  # code "p1" again
            copy_tuples(session, CHILDREN, ("id", "parent_id", "n"), children(range(2, 4)))
            after.append("queued")
            session.execute(select(func.count()).select_from(PARENTS))
            after.append("read")  # pragma: no cover (the read raises)

    with pytest.raises(IntegrityError, match=r"(?i)unique"):
        db.write(write)
    # (on SQLite the second write raises at once: there is nothing behind)
    assert after == (["queued"] if db.dialect == "postgresql" else [])
    assert [r[0] for r in read(db, PARENTS)] == [1]
    assert read(db, CHILDREN) == []
    assert not behind_threads()
    db.write(lambda s: copy_rows(s, PARENTS, parents(2, 2)))
    assert [r[0] for r in read(db, PARENTS)] == [1, 2, 3]


def test_a_failure_at_the_block_end_raises_too(db: Database) -> None:
    """The last `COPY` refused (nothing after it in the block): the block's end raises it,
    as the statement after it would have (SQLAlchemy's `IntegrityError`)."""
    clear(db)

    def write(session: Session) -> None:
        with writing_behind(session):
            copy_rows(session, PARENTS, parents(1, 3))
            copy_tuples(session, CHILDREN, ("id", "parent_id", "n"), [(1, 77, 0)])  # no parent 77

    with pytest.raises(IntegrityError, match=r"(?i)foreign key"):
        db.write(write)
    assert read(db, PARENTS) == []
    assert read(db, CHILDREN) == []


def test_rows_python_fails_to_make_abort_their_copy(db: Database) -> None:
    """A row whose value cannot be written, after a whole piece of rows was given: the
    `COPY` is aborted, not ended with the rows so far, and nothing is written."""
    clear(db)
    batch = parents(1, COPY_PIECE + 10)
    batch[-1] = {**batch[-1], "at": "not an instant"}

    def write(session: Session) -> None:
        with writing_behind(session):
            copy_rows(session, PARENTS, parents(5000, 2))
            copy_rows(session, PARENTS, batch)

    with pytest.raises(AttributeError):
        db.write(write)
    assert read(db, PARENTS) == []
    assert not behind_threads()
    db.write(lambda s: copy_rows(s, PARENTS, parents(1, 2)))
    assert len(read(db, PARENTS)) == 2


def test_a_failure_in_the_block_gives_up_the_queued_copies(db: Database) -> None:
    """Python fails in the block after queuing `COPY`s: the transaction leaves nothing."""
    clear(db)

    def write(session: Session) -> None:
        with writing_behind(session):
            copy_rows(session, PARENTS, parents(1, COPY_PIECE * 3))
            raise RuntimeError("the machine lost power")

    with pytest.raises(RuntimeError):
        db.write(write)
    assert read(db, PARENTS) == []
    assert not behind_threads()


def test_statements_queued_behind_run_in_their_place(db: Database) -> None:
    """`execute_behind` queues a statement after the `COPY`s before it (PostgreSQL): it sees
    their rows, and its error is raised by the next statement; elsewhere it queues nothing."""
    clear(db)

    def write(session: Session) -> list[bool]:
        with writing_behind(session):
            copy_rows(session, PARENTS, parents(1, 3))
            queued = [execute_behind(session, "DELETE FROM behind_parents WHERE id = 2")]
            copy_rows(session, PARENTS, parents(2, 1))  # id 2 again: after the delete
        return queued

    if db.dialect != "postgresql":
        assert db.read(lambda s: execute_behind(s, "SELECT 1")) is False
        return
    assert db.write(write) == [True]
    assert [r[0] for r in read(db, PARENTS)] == [1, 2, 3]

    def failing(session: Session) -> None:
        with writing_behind(session):
            execute_behind(session, "SET CONSTRAINTS no_such_constraint IMMEDIATE")
            session.execute(select(func.count()).select_from(PARENTS))

    with pytest.raises(Exception, match="no_such_constraint"):
        db.write(failing)
    assert not behind_threads()
