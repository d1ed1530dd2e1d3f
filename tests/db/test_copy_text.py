"""The `COPY` text the bulk engine writes itself (`jifen.db.bulk.copy_rows` and
`copy_tuples`) puts in the table exactly the rows SQLAlchemy's own `INSERT` (the path of
the API's writes) puts there, and those psycopg's `COPY` (`write_rows`) puts there: NULLs,
text needing escapes (backslash, tab, newline, carriage return, a literal `\\N`, characters
that are not printable), JSON with such text, numbers, instants in any offset, days."""

from __future__ import annotations

import string
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Date,
    Integer,
    MetaData,
    Numeric,
    String,
    Table,
    Text,
    delete,
    insert,
    select,
)

from jifen.db.base import Id, Json, UtcDateTime
from jifen.db.bulk import COPY_PIECE, copy_rows, copy_text_of, copy_tuples, write_rows
from jifen.db.uow import Database

META = MetaData()


def kinds(name: str) -> Table:
    return Table(
        name,
        META,
        Column("id", Id, primary_key=True),
        Column("n", Integer),
        Column("big", BigInteger, nullable=False),
        Column("code", String(200)),
        Column("note", Text),
        Column("yes", Boolean),
        Column("price", Numeric(14, 3)),
        Column("day", Date),
        Column("at", UtcDateTime),
        Column("doc", Json),
    )


BY_INSERT, BY_ROWS, BY_TUPLES, BY_PSYCOPG = (
    kinds(f"copy_text_{how}") for how in ("insert", "rows", "tuples", "psycopg")
)
NAMES = [c.name for c in BY_INSERT.c]

AWKWARD = [
    "",
    "\\",
    "\\N",
    "a\tb",
    "line\nnext",
    "cr\rlf\r\n",
    "back\\slash\\\\t",
    "\"quoted\", and 'single'",
    "会员 中文 ñ é",
    "\x7f del",
    "\u2028 line separator \u0085 next line",
    "\x01\x1f control",
    "emoji 🎉",
]
"""Text that `COPY`'s format must escape or pass through as it is."""

texts = st.one_of(
    st.sampled_from(AWKWARD),
    st.text(st.characters(blacklist_characters="\x00", blacklist_categories=["Cs"]), max_size=30),
    st.text(string.printable, max_size=12),
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | texts,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(texts, inner, max_size=3),
    max_leaves=8,
)
instants = st.builds(
    lambda at, minutes: at.replace(tzinfo=timezone(timedelta(minutes=minutes))),
    st.datetimes(min_value=datetime(1970, 1, 2), max_value=datetime(2200, 1, 1)),
    st.integers(-14 * 60, 14 * 60),
)


@st.composite
def rows(draw: st.DrawFn) -> list[dict[str, Any]]:
    found = []
    shared = draw(json_values)  # one object in several rows (the memo by object)
    now = draw(instants)  # one instant in several rows, too
    for i in range(1, draw(st.integers(1, 6)) + 1):
        found.append(
            {
                "id": i,
                "n": draw(st.none() | st.integers(-(2**31), 2**31 - 1)),
                "big": draw(st.integers(-(2**63), 2**63 - 1)),
                "code": draw(st.none() | texts),
                "note": draw(st.none() | texts),
                "yes": draw(st.none() | st.booleans()),
                "price": draw(
                    st.none()
                    | st.decimals(
                        min_value=Decimal("-99999999999.999"),
                        max_value=Decimal("99999999999.999"),
                        places=3,
                        allow_nan=False,
                        allow_infinity=False,
                    )
                ),
                "day": draw(st.none() | st.dates(min_value=date(1, 1, 1))),
                "at": draw(st.none() | st.just(now) | instants),
                "doc": draw(st.just(shared) | json_values),
            }
        )
    return found


def _read(db: Database, table: Table) -> list[tuple[Any, ...]]:
    return db.read(lambda s: [tuple(r) for r in s.execute(select(table).order_by(table.c.id))])


def _write_all(db: Database, batch: list[dict[str, Any]]) -> None:
    def write(session: Any) -> None:
        for table in (BY_INSERT, BY_ROWS, BY_TUPLES, BY_PSYCOPG):
            session.execute(delete(table))
        session.execute(insert(BY_INSERT), batch)  # SQLAlchemy's executemany, as the ORM
        copy_rows(session, BY_ROWS, batch)
        copy_tuples(session, BY_TUPLES, NAMES, [tuple(r[n] for n in NAMES) for r in batch])
        write_rows(session, BY_PSYCOPG, batch)

    db.write(write)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(batch=rows())
def test_copy_text_writes_what_insert_writes(db: Database, batch: list[dict[str, Any]]) -> None:
    META.create_all(db.engine)
    _write_all(db, batch)
    expected = _read(db, BY_INSERT)
    assert len(expected) == len(batch)
    assert _read(db, BY_ROWS) == expected
    assert _read(db, BY_TUPLES) == expected
    assert _read(db, BY_PSYCOPG) == expected


def test_every_awkward_text_in_every_column_of_text(db: Database) -> None:
    """Each awkward text as a code, a note, a JSON key and value, in more rows than one
    piece of `COPY` text holds."""
    META.create_all(db.engine)
    at = datetime(2026, 11, 20, 4, 0, 5, 123456, tzinfo=UTC)
    batch = [
        {
            "id": i,
            "n": i,
            "big": 2**40 + i,
            "code": AWKWARD[i % len(AWKWARD)],
            "note": "".join(AWKWARD[: i % len(AWKWARD)]),
            "yes": i % 3 == 0,
            "price": Decimal(i).scaleb(-3),
            "day": date(2026, 1 + i % 12, 1 + i % 28),
            "at": at if i % 2 else at.astimezone(timezone(timedelta(hours=8))),
            "doc": {AWKWARD[i % len(AWKWARD)]: [AWKWARD[(i + 1) % len(AWKWARD)], i, None]},
        }
        for i in range(1, COPY_PIECE + 30)
    ]
    _write_all(db, batch)
    expected = _read(db, BY_INSERT)
    assert [r[3] for r in expected[: len(AWKWARD)]] == [
        AWKWARD[i % len(AWKWARD)] for i in range(1, len(AWKWARD) + 1)
    ]
    assert _read(db, BY_ROWS) == expected
    assert _read(db, BY_TUPLES) == expected
    assert _read(db, BY_PSYCOPG) == expected


def test_the_text_itself() -> None:
    """What the lines look like: NULL as `\\N`, escapes, an instant with its offset, JSON
    as `json.dumps` writes it (its backslashes doubled)."""
    at = datetime(2026, 11, 20, 4, 0, 5, tzinfo=UTC)
    text = copy_text_of(
        BY_INSERT,
        NAMES,
        [
            (1, None, 5, "a\tb\\N\n", "\r", True, Decimal("1.500"), date(2026, 1, 2), at, None),
            (2, 3, -5, None, "", False, None, None, None, {"k": "é\n\\"}),
        ],
    )
    assert text == (
        "1\t\\N\t5\ta\\tb\\\\N\\n\t\\r\tt\t1.500\t2026-01-02\t2026-11-20T04:00:05+00:00\t\\N\n"
        '2\t3\t-5\t\\N\t\tf\t\\N\t\\N\t\\N\t{"k": "\\\\u00e9\\\\n\\\\\\\\"}\n'
    )


@pytest.mark.parametrize("mapping", [True, False])
def test_a_column_given_none_is_null_even_where_it_may_not_be(db: Database, mapping: bool) -> None:
    """None is NULL in every column, so a NOT NULL column refuses it (it is never the text
    'None')."""
    META.create_all(db.engine)
    row = dict.fromkeys(NAMES)
    row["id"] = 1

    def write(session: Any) -> None:
        if mapping:
            copy_rows(session, BY_ROWS, [row])
        else:
            copy_tuples(session, BY_TUPLES, NAMES, [tuple(row.values())])

    with pytest.raises(Exception, match=r"(?i)null"):
        db.write(write)
