"""db/probes.by_keys on PostgreSQL: exactly the rows `key = ANY(:keys)` finds in the
programme (found, missing, repeated keys, another programme's), each key one probe of the
unique index even where the table has no statistics. (The look-ups built on it,
`db.idempotency.known_keys` and `earning.batch.recorded_orders`, are a group's replays
and orders sent again in tests/api/test_grouped.py and test_grouped_equals.py.)"""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import Column, MetaData, String, Table, UniqueConstraint, insert, select

from jifen.db.base import Id
from jifen.db.bulk import among
from jifen.db.probes import by_keys
from jifen.db.uow import Database

META = MetaData()
CODES = Table(
    "probe_codes",
    META,
    Column("id", Id, primary_key=True),
    Column("program_id", Id, nullable=False),
    Column("code", String(40), nullable=False),
    Column("label", String(40)),
    UniqueConstraint("program_id", "code"),
)
BY_CODE = by_keys(CODES, CODES.c.code, [CODES.c.id, CODES.c.label])


@pytest.fixture
def codes(pg_db: Database) -> Database:
    META.create_all(pg_db.engine)
    rows = [
        {"id": i, "program_id": 1 + i % 2, "code": f"c{i // 2}", "label": f"#{i}"}
        for i in range(2000)
    ]
    pg_db.write(lambda s: s.execute(insert(CODES), rows))
    return pg_db


def test_by_keys_finds_what_any_finds(codes: Database):
    def probed(keys: list[str]) -> list[tuple[Any, ...]]:
        return codes.read(
            lambda s: sorted(tuple(r) for r in s.execute(BY_CODE, {"program_id": 1, "keys": keys}))
        )

    def listed(keys: list[str]) -> list[tuple[Any, ...]]:
        query = select(CODES.c.code, CODES.c.id, CODES.c.label).where(
            CODES.c.program_id == 1, among(CODES.c.code, keys)
        )
        return codes.read(lambda s: sorted(tuple(r) for r in s.execute(query)))

    for keys in (
        ["c1", "c7", "c999"],  # found (program 1 has c0..c999, at even ids)
        ["c1", "nope", "c1000", ""],  # missing, and c1000 is nobody's
        [],
        [f"c{i}" for i in range(0, 1000, 7)],
    ):
        assert probed(keys) == listed(keys)
    assert probed(["c3"]) == [("c3", 6, "#6")]  # program 1's, not program 2's (id 7)


def test_by_keys_probes_the_unique_index_without_statistics(codes: Database):
    keys = [f"c{i}" for i in range(64)]
    sql = str(BY_CODE.compile(dialect=codes.engine.dialect))

    def plan(session: Any) -> str:
        raw = session.connection().exec_driver_sql(
            "EXPLAIN " + sql, {"program_id": 1, "keys": keys, "param_1": 1}
        )
        return "\n".join(row[0] for row in raw)

    found = codes.read(plan)
    assert "Nested Loop" in found, found
    assert "Index Scan using probe_codes_program_id_code_key" in found, found
    assert "Hash" not in found, found
    assert "Bitmap" not in found, found
