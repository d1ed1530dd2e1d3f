"""Units of work: the boundary that opens a transaction, commits it, and retries it.

Only the boundary (an HTTP request, a CLI command, a job batch) commits; services only
flush. `Database.write(fn)` runs `fn(session)` in one write transaction and runs it again,
a bounded number of times, when the store reports a deadlock, a serialisation failure or
a busy SQLite file, so a conflict between concurrent writers costs a retry, never a lost
or doubled write.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from jifen.core.errors import ConcurrencyExhausted
from jifen.db.engine import READONLY, make_engine

T = TypeVar("T")

RETRYABLE_SQLSTATES = frozenset({"40001", "40P01", "55P03"})


def is_retryable(exc: BaseException) -> bool:
    """A deadlock, serialisation failure, lock timeout, or a busy SQLite database."""
    if not isinstance(exc, DBAPIError):
        return False
    sqlstate = getattr(exc.orig, "sqlstate", None)
    if sqlstate in RETRYABLE_SQLSTATES:
        return True
    text = str(exc.orig).lower()
    return "database is locked" in text or "database is busy" in text


class Database:
    def __init__(self, url: str, *, pool_size: int = 10, max_overflow: int = 20) -> None:
        self.url = url
        self.engine: Engine = make_engine(url, pool_size=pool_size, max_overflow=max_overflow)
        self._writer = sessionmaker(bind=self.engine, expire_on_commit=False)
        reader = self.engine.execution_options(**{READONLY: True})
        if self.engine.dialect.name == "postgresql":
            # At READ COMMITTED every statement reads its own snapshot, in a transaction or
            # not, so a read-only unit gains nothing from one: without it, a read costs no
            # BEGIN and no ROLLBACK round trip.
            reader = reader.execution_options(isolation_level="AUTOCOMMIT")
        self._reader = sessionmaker(bind=reader, expire_on_commit=False)
        self._reading_engine = reader

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @contextmanager
    def session(self) -> Iterator[Session]:
        """One write transaction: commit on success, roll back on any exception."""
        with self._writer() as session, session.begin():
            yield session

    @contextmanager
    def reading(self) -> Iterator[Session]:
        """One read-only unit: a transaction on SQLite (one snapshot, never its write
        lock); on PostgreSQL each statement on its own, at READ COMMITTED as always."""
        with self._reader() as session:
            yield session  # closing the session rolls the read transaction back

    def write(self, fn: Callable[[Session], T], *, attempts: int = 8) -> T:
        """Run `fn` in a write transaction, retrying on deadlocks and serialisation failures."""
        for attempt in range(1, attempts + 1):
            try:
                with self.session() as session:
                    return fn(session)
            except DBAPIError as exc:
                if not is_retryable(exc) or attempt == attempts:
                    if is_retryable(exc):
                        raise ConcurrencyExhausted(attempts=attempts) from exc
                    raise
                time.sleep(random.uniform(0, 0.005 * 2**attempt))  # noqa: S311 - jitter only
        raise AssertionError("unreachable")

    @contextmanager
    def reading_connection(self) -> Iterator[Connection]:
        """`reading` without the ORM: a connection for Core statements, for a read on the
        busiest paths, where a session's own work is most of the cost."""
        with self._reading_engine.connect() as connection:
            yield connection

    def read(self, fn: Callable[[Session], T]) -> T:
        with self.reading() as session:
            return fn(session)

    def dispose(self) -> None:
        self.engine.dispose()
