"""Rows of a programme found by a unique key, many keys in one statement, each key one
probe of the unique index whatever the planner knows of the table (PostgreSQL).

`key = ANY(:keys)` is planned from the table's statistics. Without any (a table that is
new, or has grown since its last ANALYZE) PostgreSQL takes `program_id = :program_id`
for a handful of rows: it reads every row of the programme through an index on
`program_id` and compares each with every key. A group of 64 purchases (`jifen.api.grouped`)
spent some 0.3 ms of PostgreSQL per purchase on each of its two such look-ups (the order
ids, the `Idempotency-Key`s) over a few thousand rows, and more as the tables grew.
Here the keys are a set-returning function joined laterally to at most one row each
(`LIMIT 1` keeps the planner from turning the join into a hash join over the programme's
rows): one probe of the unique index (program_id, key) per key, with statistics or
without. Other stores look keys up with `jifen.db.bulk.among`, planned well without
statistics (SQLite takes the unique index for an `IN` list)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Column, Select, Table, bindparam, func, select, true
from sqlalchemy.dialects.postgresql import ARRAY


def by_keys(table: Table, key: Column[Any], columns: list[Column[Any]]) -> Select[Any]:
    """`SELECT key, *columns` of the rows of `table` in programme `:program_id` whose `key`
    (unique with `program_id`) is one of `:keys` (a list), for PostgreSQL; built once by
    the caller. A key found nowhere gives no row; each key is wanted once."""
    wanted = (
        func.unnest(bindparam("keys", type_=ARRAY(key.type)))
        .table_valued("key")
        .render_derived(name="wanted")
    )
    found = (
        select(*columns)
        .where(table.c.program_id == bindparam("program_id"), key == wanted.c.key)
        .limit(1)
        .lateral("found")
    )
    return (
        select(wanted.c.key, *[found.c[c.name] for c in columns])
        .select_from(wanted)
        .join(found, true())
    )
