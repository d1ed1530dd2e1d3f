"""Statements both stores write alike, where the ORM's unit of work would cost round trips.

`insert_returning(session, Model, values, unique=...)` inserts one row and hands back the
persistent ORM object (in the session's identity map, every column loaded) from the
INSERT's own RETURNING, in one round trip: no flush, no savepoint. With `unique` (the
columns of a unique constraint) a clash inserts nothing and returns None: `ON CONFLICT
DO NOTHING`, which on PostgreSQL waits for a concurrent insert of the same key to commit
or roll back, exactly as the unique index would, and never aborts the transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from jifen.db.base import Base

M = TypeVar("M", bound=Base)


def dialect_insert(session: Session, target: Any) -> Any:
    """`INSERT` with the store's `ON CONFLICT` support (PostgreSQL's or SQLite's)."""
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    return dialect.insert(target)


def insert_returning(
    session: Session,
    model: type[M],
    values: dict[str, Any],
    *,
    unique: Sequence[str] | None = None,
) -> M | None:
    statement = dialect_insert(session, model).values(**values)
    if unique is not None:
        statement = statement.on_conflict_do_nothing(index_elements=list(unique))
    found: M | None = session.execute(statement.returning(model)).scalar_one_or_none()
    return found
