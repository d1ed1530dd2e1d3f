"""The PostgreSQL pool without `pool_pre_ping`: a connection the server closed while it
sat in the pool is dropped at checkout (no round trip), and the next unit of work runs
on a fresh one instead of failing."""

from __future__ import annotations

import psycopg
import pytest
from sqlalchemy import text

from jifen.db.uow import Database

pytestmark = pytest.mark.postgres


def _backend(db: Database) -> int:
    return int(db.read(lambda s: s.execute(text("SELECT pg_backend_pid()")).scalar_one()))


def _terminate(db: Database, pid: int) -> None:
    url = db.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(url, autocommit=True) as admin:
        assert admin.execute("SELECT pg_terminate_backend(%s, 60000)", (pid,)).fetchone() == (True,)


def test_a_connection_the_server_closed_is_replaced_at_checkout(pg_db: Database) -> None:
    first = _backend(pg_db)
    assert _backend(pg_db) == first  # pooled: the same connection again
    _terminate(pg_db, first)  # waits until the backend has exited
    second = _backend(pg_db)
    assert second != first
    assert pg_db.write(lambda s: s.execute(text("SELECT 1")).scalar_one()) == 1


def test_no_statement_is_sent_to_check_a_pooled_connection(pg_db: Database) -> None:
    _backend(pg_db)
    sent: list[str] = []

    def seen(_conn: object, _cursor: object, statement: str, *_: object) -> None:
        sent.append(statement)

    from sqlalchemy import event

    event.listen(pg_db.engine, "before_cursor_execute", seen)
    try:
        _backend(pg_db)
    finally:
        event.remove(pg_db.engine, "before_cursor_execute", seen)
    assert sent == ["SELECT pg_backend_pid()"]
