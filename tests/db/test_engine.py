"""The PostgreSQL pool without `pool_pre_ping`: a connection the server closed while it
sat in the pool is dropped at checkout (no round trip), and the next unit of work runs
on a fresh one instead of failing."""

from __future__ import annotations

from typing import cast

import psycopg
import pytest
from psycopg import pq
from sqlalchemy import text
from sqlalchemy.orm import Session

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


def test_a_read_on_postgresql_runs_outside_a_transaction(pg_db: Database) -> None:
    """At READ COMMITTED a transaction gives a read nothing (each statement has its own
    snapshot): reads send no BEGIN and no ROLLBACK. Writes still run in one."""

    def status(s: Session) -> pq.TransactionStatus:
        s.execute(text("SELECT 1"))
        dbapi = s.connection().connection.dbapi_connection
        assert dbapi is not None
        return cast(pq.TransactionStatus, dbapi.info.transaction_status)

    assert pg_db.read(status) == pq.TransactionStatus.IDLE
    assert pg_db.write(status) == pq.TransactionStatus.INTRANS
    assert pg_db.read(status) == pq.TransactionStatus.IDLE  # the pooled connection reset


def test_connections_opened_beyond_pool_size_are_kept(pg_db: Database) -> None:
    db = Database(pg_db.url, pool_size=1, max_overflow=2)
    try:
        held = [db.engine.connect() for _ in range(3)]
        pids = {c.exec_driver_sql("SELECT pg_backend_pid()").scalar_one() for c in held}
        for conn in held:
            conn.close()
        assert db.engine.pool.checkedin() == 3  # type: ignore[attr-defined]
        again = [db.engine.connect() for _ in range(3)]
        assert {c.exec_driver_sql("SELECT pg_backend_pid()").scalar_one() for c in again} == pids
        for conn in again:
            conn.close()
    finally:
        db.dispose()
