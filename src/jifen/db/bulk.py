"""Set-based writes for bulk work (imports): ids handed out in advance, rows written in one
statement per table — `COPY` on PostgreSQL, one executemany `INSERT` on SQLite.

Ids are reserved before the rows are built, so rows that point at each other (a purchase
and its lines, a transaction and its entries and lot) are linked in Python and each table
is written once per batch:
- PostgreSQL: `nextval` of the table's sequence, as many times as asked, in one query
  (concurrent writers get other values; the ids need not be consecutive);
- SQLite: the next free rowids after the largest. A write transaction there holds the
  database's write lock from its `BEGIN IMMEDIATE` (`jifen.db.engine`), so nobody else can
  take them before the rows are written.
Reserve and write a table's rows in the same transaction, before the ORM inserts into it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import JSON, Table, func, insert, select, text
from sqlalchemy.orm import Session
from sqlalchemy.sql.schema import Column


def reserve_ids(session: Session, table: Table, n: int) -> list[int]:
    """`n` new ids for `table`'s `id` column."""
    if n <= 0:
        return []
    if session.get_bind().dialect.name == "postgresql":
        return list(
            session.execute(
                text(
                    "SELECT nextval(pg_get_serial_sequence(:table, 'id')) "
                    "FROM generate_series(1, :n)"
                ),
                {"table": table.name, "n": n},
            ).scalars()
        )
    session.flush()
    largest = session.execute(select(func.max(table.c.id))).scalar_one_or_none() or 0
    return list(range(largest + 1, largest + 1 + n))


def write_rows(session: Session, table: Table, rows: Sequence[Mapping[str, Any]]) -> None:
    """Insert `rows` (each a mapping of column name → Python value, the same keys in
    every row) into `table` in one statement."""
    if not rows:
        return
    if session.get_bind().dialect.name != "postgresql":
        session.execute(insert(table), list(rows))
        return
    names = list(rows[0])
    columns = [table.c[name] for name in names]
    adapt = [_adapter(column) for column in columns]
    connection = session.connection().connection.dbapi_connection
    assert connection is not None
    statement = f"COPY {table.name} ({', '.join(names)}) FROM STDIN"
    with connection.cursor() as cursor, cursor.copy(statement) as copy:  # type: ignore[attr-defined]
        for row in rows:
            copy.write_row(
                [fn(row[name]) if fn else row[name] for name, fn in zip(names, adapt, strict=True)]
            )


def _adapter(column: Column[Any]) -> Any:
    """How a value of `column` is handed to COPY (None: as it is)."""
    kind = column.type
    variant = getattr(kind, "_variant_mapping", {}).get("postgresql", kind)
    if isinstance(kind, JSON) or isinstance(variant, JSON):
        from psycopg.types.json import Jsonb

        return lambda value: None if value is None else Jsonb(value)
    return None
