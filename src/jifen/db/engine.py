"""Engines for the two stores.

SQLite runs in WAL mode with foreign keys on. pysqlite's own transaction handling is
switched off so that a write unit of work begins with `BEGIN IMMEDIATE`: it takes the
database's write lock up front, which is SQLite's equivalent of locking the member's
account row, and makes concurrent writers queue instead of failing at commit. Read-only
units begin with a plain (deferred) `BEGIN` and never block writers.

PostgreSQL runs at READ COMMITTED; writers serialise per member through
`SELECT … FOR UPDATE` on the member's account row (see `jifen.ledger`). A pooled
connection the server has closed is found at checkout without a round trip
(`_refuse_dead`).
"""

from __future__ import annotations

import select
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DisconnectionError

READONLY = "jifen_readonly"


def make_engine(
    url: str, *, pool_size: int = 10, max_overflow: int = 20, echo: bool = False
) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(url, echo=echo)
    if parsed.get_backend_name() == "postgresql" and parsed.drivername == "postgresql":
        url = parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
    engine = create_engine(
        url,
        # Connections are opened as needed, up to pool_size + max_overflow, and kept: an
        # overflow connection closed at the end of each request made every request beyond
        # pool_size pay for a new one (a PostgreSQL backend started, authenticated and
        # ended) whenever more requests than pool_size ran at once.
        pool_size=pool_size + max_overflow,
        max_overflow=0,
        echo=echo,
        isolation_level="READ COMMITTED",
    )
    event.listen(engine, "checkout", _refuse_dead)
    return engine


def _refuse_dead(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
    """A pooled PostgreSQL connection that the server has closed (a restart, an idle or
    administrator's termination) is dropped at checkout without a round trip: the server
    says nothing on an idle connection unless it is going away, so anything to read on its
    socket (the closing message, or the end of the stream) means it is dead. Raising
    `DisconnectionError` makes the pool discard it and check out another (SQLAlchemy's
    "Dealing with Disconnects": a custom pessimistic check). `pool_pre_ping` did this
    with a `SELECT 1` round trip on every checkout."""
    if dbapi_connection.closed or dbapi_connection.broken:
        raise DisconnectionError("connection closed")
    readable, _, _ = select.select([dbapi_connection.fileno()], [], [], 0)
    if readable:
        raise DisconnectionError("the server closed the connection while it was idle")


def _sqlite_engine(url: str, *, echo: bool) -> Engine:
    parsed = make_url(url)
    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, echo=echo, connect_args={"check_same_thread": False, "timeout": 30})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we emit BEGIN ourselves
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        readonly = conn.get_execution_options().get(READONLY, False)
        conn.exec_driver_sql("BEGIN" if readonly else "BEGIN IMMEDIATE")

    return engine
