"""db/bulk's set-based helpers on both stores: `among` picks exactly the rows whose key is
listed (any number of ids, none, a string column, the same statement reused with other
ids) and `update_rows` changes exactly the listed rows, every column as given (None,
JSON, instants, money), by a single or a composite key, leaving the others as they were."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import Column, MetaData, Numeric, String, Table, event, insert, select, text
from sqlalchemy.orm import Session

from jifen.db.base import Id, Json, UtcDateTime
from jifen.db.bulk import (
    ARRAYS_FROM,
    among,
    among_bound,
    insert_new,
    reserve_ids_of,
    update_rows,
)
from jifen.db.uow import Database

META = MetaData()
THINGS = Table(
    "bulk_things",
    META,
    Column("id", Id, primary_key=True),
    Column("shop", Id, nullable=False),
    Column("code", String(20), nullable=False),
    Column("label", String(40)),
    Column("price", Numeric(12, 2)),
    Column("at", UtcDateTime),
    Column("doc", Json),
)
T0 = datetime(2027, 3, 1, 4, 0, tzinfo=UTC)


def thing(i: int) -> dict[str, Any]:
    return {
        "id": i,
        "shop": i % 3,
        "code": f"c{i}",
        "label": f"thing {i}",
        "price": Decimal(i) + Decimal("0.25"),
        "at": T0.replace(minute=i % 60),
        "doc": {"n": i, "tags": ["a", str(i)]},
    }


@pytest.fixture
def things(db: Database) -> Database:
    META.create_all(db.engine)
    db.write(lambda s: s.execute(insert(THINGS), [thing(i) for i in range(1, 41)]))
    return db


def table(db: Database) -> list[dict[str, Any]]:
    return db.read(
        lambda s: [dict(r) for r in s.execute(select(THINGS).order_by(THINGS.c.id)).mappings()]
    )


def test_among_picks_exactly_the_listed_rows(things: Database):
    def ids(column: Any, values: list[Any]) -> list[int]:
        return things.read(
            lambda s: list(
                s.execute(
                    select(THINGS.c.id).where(among(column, values)).order_by(THINGS.c.id)
                ).scalars()
            )
        )

    assert ids(THINGS.c.id, [3, 1, 40, 99]) == [1, 3, 40]
    assert ids(THINGS.c.id, list(range(0, 2000, 7))) == list(range(7, 41, 7))
    assert ids(THINGS.c.id, []) == []
    assert ids(THINGS.c.code, ["c2", "c12", "nope"]) == [2, 12]
    assert ids(THINGS.c.id, [5]) == [5]  # the statement compiled above, with other ids
    both = things.read(
        lambda s: list(
            s.execute(
                select(THINGS.c.id)
                .where(among(THINGS.c.id, [1, 2, 3, 4]), among(THINGS.c.shop, [1]))
                .order_by(THINGS.c.id)
            ).scalars()
        )
    )
    assert both == [1, 4]


def test_listed_ids_are_read_once_where_they_filter_rows(pg_db: Database):
    """PostgreSQL: the ids `among`, `among_bound` and `update_rows` bind are one value of
    the statement, not a text read again for every row a sequential scan (or an index's
    later column) filters: bound as a VARCHAR, the cast to BIGINT[] cannot be folded
    (7.5 s instead of 11 ms for 1,000 ids over 100,000 rows). Each statement as sent is
    explained with the index scans turned off, so its ids must filter rows."""
    META.create_all(pg_db.engine)
    pg_db.write(lambda s: s.execute(insert(THINGS), [thing(i) for i in range(1, 41)]))
    ids = list(range(0, 2000, 3))

    def plan(run: Callable[[Session], Any]) -> str:
        sent: list[tuple[str, Any]] = []

        def keep(conn: Any, cursor: Any, sql: str, params: Any, context: Any, many: bool) -> None:
            sent.append((sql, params))

        def explained(s: Session) -> str:
            s.execute(text("SET LOCAL enable_indexscan = off"))
            s.execute(text("SET LOCAL enable_bitmapscan = off"))
            event.listen(pg_db.engine, "before_cursor_execute", keep)
            try:
                run(s)
            finally:
                event.remove(pg_db.engine, "before_cursor_execute", keep)
            sql, params = sent[-1]
            found = s.connection().exec_driver_sql(f"EXPLAIN VERBOSE {sql}", params)
            return "\n".join(row[0] for row in found)

        return pg_db.write(explained)

    shown = [
        plan(lambda s: s.execute(select(THINGS.c.id).where(among(THINGS.c.id, ids)))),
        plan(
            lambda s: s.execute(
                select(THINGS.c.id).where(among_bound(THINGS.c.shop, "ids")), {"ids": ids}
            )
        ),
        plan(lambda s: update_rows(s, THINGS, ["id"], [{"id": i, "label": "x"} for i in ids])),
    ]
    for explained in shown:
        assert "Seq Scan" in explained, explained
        for unfolded in ("::character varying)::", "::text)::", "::cstring)::"):
            assert unfolded not in explained, explained  # a cast done again for every row
        assert "}'::bigint[]" in explained, explained  # one constant array


def test_update_rows_changes_the_listed_rows_and_nothing_else(things: Database):
    before = table(things)
    rows = [
        {
            "id": 7,
            "label": None,
            "price": Decimal("0.01"),
            "at": T0.replace(year=2030),
            "doc": {"x": [1, {"y": None}], "s": "银卡"},
        },
        {"id": 2, "label": "two", "price": None, "at": None, "doc": None},
        {"id": 40, "label": 'it\'s "quoted"', "price": Decimal("12.30"), "at": T0, "doc": []},
    ]
    assert things.write(lambda s: update_rows(s, THINGS, ["id"], rows)) == 3
    after = table(things)
    want = [dict(r) for r in before]
    for row in rows:
        want[row["id"] - 1].update(row)
    assert after == want


TEXTS = [
    "a,b",
    "{x}",
    '"',
    "\\",
    'back\\slash "and" quote',
    "NULL",
    "null",
    "",
    " padded ",
    "行\n2",
]


def test_update_rows_writes_every_value_as_given(things: Database):
    """On PostgreSQL most columns' values go as the text of one array (`_array_literal`):
    text that array syntax would take apart (commas, braces, quotes, backslashes, the word
    NULL, blanks), instants in other zones, money at another scale, large ids all arrive as
    they were given."""
    before = table(things)
    east = timezone(timedelta(hours=8))
    rows = [
        {
            "id": i + 1,
            "shop": 2**40 + i,
            "label": label,
            "price": [Decimal("0.1"), Decimal("1E+3"), Decimal("-7.25"), None][i % 4],
            "at": [datetime(2027, 1, 1, 7, 30, 0, 123456, tzinfo=east), None, T0][i % 3],
        }
        for i, label in enumerate(TEXTS)
    ]
    assert things.write(lambda s: update_rows(s, THINGS, ["id"], rows)) == len(rows)
    want = [dict(r) for r in before]
    for row in rows:
        want[row["id"] - 1].update(row)
        if row["price"] is not None:
            want[row["id"] - 1]["price"] = row["price"].quantize(Decimal("0.01"))
        if row["at"] is not None:
            want[row["id"] - 1]["at"] = row["at"].astimezone(UTC)
    assert table(things) == want


def test_update_rows_refuses_a_naive_instant(things: Database):
    before = table(things)
    rows = [{"id": 1, "at": datetime(2027, 1, 1)}]
    with pytest.raises(Exception, match="naive"):
        things.write(lambda s: update_rows(s, THINGS, ["id"], rows))
    assert table(things) == before


def test_update_rows_by_a_composite_key(things: Database):
    before = table(things)
    rows = [{"shop": 1, "code": "c4", "label": "four"}, {"shop": 2, "code": "c4", "label": "x"}]
    # (2, c4) is no row: one row updated
    assert things.write(lambda s: update_rows(s, THINGS, ["shop", "code"], rows)) == 1
    want = [dict(r) for r in before]
    want[3]["label"] = "four"
    assert table(things) == want


def test_update_rows_with_no_rows_or_no_key_does_nothing(things: Database):
    before = table(things)
    assert things.write(lambda s: update_rows(s, THINGS, ["id"], [])) == 0
    with pytest.raises(ValueError, match="must be among"):
        things.write(lambda s: update_rows(s, THINGS, ["id"], [{"id": 1}]))
    with pytest.raises(ValueError, match="must be among"):
        things.write(lambda s: update_rows(s, THINGS, ["nope"], [{"id": 1, "label": "a"}]))
    assert table(things) == before


def test_reserve_ids_of_several_tables_at_once(things: Database):
    """`reserve_ids_of`: as many new ids as asked for each entry, none taken yet, none
    handed out twice (the same table asked twice included), in the order asked."""
    other = Table("bulk_others", META, Column("id", Id, primary_key=True), extend_existing=True)
    META.create_all(things.engine)

    def reserve(s: Any) -> list[list[int]]:
        found = reserve_ids_of(s, [(THINGS, 3), (other, 2), (THINGS, 0), (THINGS, 4)])
        again = reserve_ids_of(s, [(THINGS, 2)])
        return [*found, *again]

    things_a, others, none, things_b, things_c = things.write(reserve)
    assert [len(ids) for ids in (things_a, others, none, things_b, things_c)] == [3, 2, 0, 4, 2]
    mine = things_a + things_b + things_c
    if things.engine.dialect.name == "postgresql":  # the sequence's next values
        assert len(set(mine)) == len(mine)
        assert things_a == sorted(things_a)
        assert things_b == sorted(things_b)
    else:  # the next free rowids, each time (nothing was written in between)
        assert min(mine) > 40  # the rows there: 1..40


@pytest.mark.parametrize("new", [3, ARRAYS_FROM + 5], ids=["values", "arrays"])
def test_insert_new_writes_the_new_rows_and_returns_them(things: Database, new: int):
    before = table(things)
    fresh = [
        thing(i) | {"label": None, "doc": {"s": "银卡", "i": [i, None]}}
        for i in range(100, 100 + new)
    ]
    fresh[0] |= {"price": None, "at": None, "doc": None}
    clash = [thing(i) | {"label": "not written"} for i in (1, 17, 40)]  # ids already there
    rows = [clash[0], *fresh[:2], clash[1], *fresh[2:], clash[2]]
    written = things.write(lambda s: insert_new(s, THINGS, rows, ["id"], ["id", "code"]))
    assert sorted(tuple(r) for r in written) == [(r["id"], r["code"]) for r in fresh]
    assert table(things) == before + fresh
    again = things.write(lambda s: insert_new(s, THINGS, rows, ["id"], ["id"]))
    assert again == []
    assert table(things) == before + fresh
    assert things.write(lambda s: insert_new(s, THINGS, [], ["id"], ["id"])) == []
