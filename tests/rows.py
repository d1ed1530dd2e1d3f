"""Reading a table's rows as they stand, and checking that rows kept for good stay."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from jifen.db.uow import Database


def table_rows(db: Database, table: str) -> list[tuple[Any, ...]]:
    """Every row of `table`, in id order."""
    return db.read(
        lambda s: [tuple(r) for r in s.execute(text(f"SELECT * FROM {table} ORDER BY id"))]
    )


def assert_kept_for_good(db: Database, tables: tuple[str, ...]) -> None:
    """No row of `tables` can be deleted (all or one) or given another id, on either
    store, nor the table truncated on PostgreSQL; an UPDATE that leaves the id as it is
    passes; and nothing changed."""
    before = {table: table_rows(db, table) for table in tables}
    for table in tables:
        statements = [
            f"DELETE FROM {table}",
            f"DELETE FROM {table} WHERE id = (SELECT max(id) FROM {table})",
            f"UPDATE {table} SET id = id + 1000",
        ]
        if db.dialect == "postgresql":
            statements.append(f"TRUNCATE {table} CASCADE")
        for statement in statements:
            with pytest.raises(DBAPIError, match="kept for good"):
                db.write(lambda s, sql=statement: s.execute(text(sql)))
        db.write(lambda s, t=table: s.execute(text(f"UPDATE {t} SET id = id")))  # no change
    assert {table: table_rows(db, table) for table in tables} == before
