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

Within `writing_behind(session)` (bulk imports) the `COPY`s of `copy_rows` and
`copy_tuples` (and statements given to `execute_behind`) on PostgreSQL are sent by a
thread of their own, in the order given, while Python goes on: every other statement on
the session's connection waits for them first (and raises the error of one that failed),
so each statement sees every row written before it, as one after the other; the block's
end waits for them too.
"""

from __future__ import annotations

import json
import operator
import queue
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from datetime import datetime
from decimal import Decimal
from functools import cache
from json.encoder import (  # type: ignore[attr-defined]
    JSONEncoder,
    c_make_encoder,
    encode_basestring_ascii,
)
from operator import itemgetter
from typing import Any

import psycopg
from psycopg.copy import QueuedLibpqWriter
from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    ColumnElement,
    Date,
    DateTime,
    Dialect,
    Enum,
    Float,
    Integer,
    Numeric,
    SmallInteger,
    String,
    Table,
    and_,
    any_,
    bindparam,
    cast,
    event,
    func,
    select,
    text,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session
from sqlalchemy.sql.schema import Column
from sqlalchemy.sql.visitors import InternalTraversal
from sqlalchemy.types import TypeDecorator, UserDefinedType


def reserve_ids(session: Session, table: Table, n: int) -> list[int]:
    """`n` new ids for `table`'s `id` column."""
    if n <= 0:
        return []
    if session.get_bind().dialect.name == "postgresql":
        return list(
            session.execute(
                text(
                    f"SELECT nextval(s) FROM {_SEQUENCE.format(t='table')}, "  # noqa: S608
                    "generate_series(1, :n)"
                ),
                {"table": table.name, "n": n},
            ).scalars()
        )
    session.flush()
    largest = session.execute(select(func.max(table.c.id))).scalar_one_or_none() or 0
    return list(range(largest + 1, largest + 1 + n))


_SEQUENCE = "CAST(pg_get_serial_sequence(:{t}, 'id') AS regclass) AS s"
"""The table's sequence, looked up once per statement: called in `nextval`'s argument it
was looked up again for every id (40,000 ids: 550 ms instead of 95)."""


def reserve_ids_of(session: Session, wanted: Sequence[tuple[Table, int]]) -> list[list[int]]:
    """`reserve_ids` for several tables (or one table several times): for each (table, n)
    of `wanted`, n new ids of its `id` column — on PostgreSQL with one query for all."""
    if session.get_bind().dialect.name != "postgresql" or len(wanted) < 2:
        return [reserve_ids(session, table, n) for table, n in wanted]
    parts = []
    params: dict[str, Any] = {}
    for i, (table, n) in enumerate(wanted):
        parts.append(  # (only parameter names are formatted in: the values are bound)
            f"ARRAY(SELECT nextval(s) FROM {_SEQUENCE.format(t=f't{i}')}, "  # noqa: S608
            f"generate_series(1, :n{i}))"
        )
        params[f"t{i}"] = table.name
        params[f"n{i}"] = max(n, 0)
    found = session.execute(text(f"SELECT {', '.join(parts)}"), params).one()
    return [list(ids) for ids in found]


QUEUED_FROM = 1000
"""Rows from which `write_rows` hands them to the server from a thread of its own."""


def write_rows(session: Session, table: Table, rows: Sequence[Mapping[str, Any]]) -> None:
    """Insert `rows` (each a mapping of column name → Python value, the same keys in
    every row) into `table` in one statement."""
    if not rows:
        return
    dialect = session.get_bind().dialect
    if dialect.name != "postgresql":
        _insert_many(session, table, rows, dialect)
        return
    names = list(rows[0])
    # JSON values go as their text (what psycopg's Jsonb would send), the rest as they are
    json_at = _json_at(table, tuple(names))
    values_of = _getter(names)
    with _copying(session, table, names, len(rows)) as (_, copy):
        write = copy.write_row
        if not json_at:
            for row in rows:
                write(values_of(row))
            return
        for row in rows:
            values = list(values_of(row))
            for i in json_at:
                if values[i] is not None:
                    values[i] = json.dumps(values[i])
            write(values)


@contextmanager
def _copying(session: Session, table: Table, names: Sequence[str], n: int) -> Iterator[Any]:
    """A `COPY table (names) FROM STDIN` of `n` rows on the session's connection: its
    cursor and its copy object."""
    connection = session.connection().connection.dbapi_connection
    assert connection is not None
    statement = _copy_statement(table, names)
    # For many rows a thread hands them to the server while Python builds the next ones
    # (psycopg's queued writer): PostgreSQL's inserting overlaps the row building instead
    # of all of it waiting at the end of the COPY. For a few (a group of purchases) the
    # thread would cost more than it saves.
    with (
        connection.cursor() as cursor,  # type: ignore[attr-defined]
        cursor.copy(
            statement, writer=QueuedLibpqWriter(cursor) if n >= QUEUED_FROM else None
        ) as copy,
    ):
        yield cursor, copy


def copy_rows(session: Session, table: Table, rows: Sequence[Mapping[str, Any]]) -> None:
    """`write_rows`, for the batches of the bulk engine: on PostgreSQL, `COPY` of text
    written by `copy_text`'s row writer (one Python function a table and columns). The
    same rows reach the table. Elsewhere, or for a column type it does not know,
    `write_rows`."""
    if not rows:
        return
    names = tuple(rows[0])
    dialect = session.get_bind().dialect
    if dialect.name != "postgresql" or _copy_types(table, names, dialect) is None:
        write_rows(session, table, rows)
        return
    _copy_text(session, table, names, rows, _row_writer(table, names, dialect, True))


def copy_tuples(
    session: Session, table: Table, names: Sequence[str], rows: Sequence[Sequence[Any]]
) -> None:
    """`copy_rows` of rows given as tuples of the values of `names`, in that order (no
    mapping a row to build). SQLite: one executemany `INSERT` of the tuples."""
    if not rows:
        return
    names = tuple(names)
    dialect = session.get_bind().dialect
    if dialect.name != "postgresql":
        _insert_tuples(session, table, names, rows, dialect)
        return
    if _copy_types(table, names, dialect) is None:
        write_rows(session, table, [dict(zip(names, row, strict=True)) for row in rows])
        return
    _copy_text(session, table, names, rows, _row_writer(table, names, dialect, False))


_Writer = Callable[[dict[int, str], dict[int, str]], Callable[[Any], str]]
"""`_row_writer`'s answer: given one `COPY`'s memos, the function writing a row's line."""

COPY_PIECE = 500
"""Rows a piece of `COPY` text holds: handed to psycopg (and its writer thread) as one
string."""


def _copy_text(
    session: Session,
    table: Table,
    names: Sequence[str],
    rows: Sequence[Any],
    writer: _Writer,
) -> None:
    """`COPY table (names)` of `rows`, each turned into its line of text by the writer
    (made afresh for each `COPY`: its memos of instants and JSON by object live as long as
    the rows, so an object's id cannot be another's)."""
    line = writer({}, {})
    behind: _Behind | None = session.info.get(_BEHIND)
    if behind is not None:
        behind.copy(_copy_statement(table, names))
        try:
            for start in range(0, len(rows), COPY_PIECE):
                behind.write("\n".join(map(line, rows[start : start + COPY_PIECE])) + "\n")
        except BaseException as exc:
            behind.fail(exc)  # the COPY is aborted, not ended with the rows so far
            raise
        behind.end()
        return
    with _copying(session, table, names, len(rows)) as (_, copy):
        write = copy.write
        for start in range(0, len(rows), COPY_PIECE):
            write("\n".join(map(line, rows[start : start + COPY_PIECE])) + "\n")


def _copy_statement(table: Table, names: Sequence[str]) -> str:
    return f"COPY {table.name} ({', '.join(names)}) FROM STDIN"


_BEHIND = "jifen.db.bulk.behind"
"""Where `writing_behind` keeps its thread in the session's `info`."""


@contextmanager
def writing_behind(session: Session) -> Iterator[None]:
    """Within the block, on PostgreSQL, the session's `COPY`s (`copy_rows`, `copy_tuples`)
    are sent by a thread of their own while Python goes on; every other statement on the
    session's connection first waits for those queued before it (and raises the error of
    one that failed, as SQLAlchemy raises a statement's: a unique key broken is an
    `IntegrityError`), and so does the block's end. A failure inside the block aborts the
    `COPY` in progress and drops the queued ones: the caller's transaction is to be rolled
    back, as after any failed statement. Elsewhere (SQLite) the block changes nothing.

    The error of a queued `COPY` is raised by the next statement, whatever it is: keep the
    block around code that lets database errors through (the import's booking), not around
    code that catches one to go on (a savepoint turning a unique key into a domain error
    would take a failed `COPY` for its own clash)."""
    if session.get_bind().dialect.name != "postgresql" or _BEHIND in session.info:
        yield
        return
    connection = session.connection()
    dbapi_connection = connection.connection.dbapi_connection
    assert dbapi_connection is not None
    behind = _Behind(dbapi_connection)

    def before(*_: Any) -> None:
        behind.join()

    event.listen(connection, "before_cursor_execute", before)
    event.listen(connection, "commit", before)
    session.info[_BEHIND] = behind
    failed = True
    try:
        yield
        try:
            behind.join()
        except psycopg.Error as exc:  # as a statement after it raises it: SQLAlchemy's error
            raise DBAPIError.instance(None, None, exc, psycopg.Error) from exc
        failed = False
    finally:
        session.info.pop(_BEHIND, None)
        event.remove(connection, "before_cursor_execute", before)
        event.remove(connection, "commit", before)
        behind.stop(abort=failed)


def execute_behind(session: Session, statement: str) -> bool:
    """Queue `statement` (SQL without parameters, whose result nobody reads) behind the
    session's `COPY`s when `writing_behind` is on; whether it was. Its error is raised as a
    `COPY`'s."""
    behind: _Behind | None = session.info.get(_BEHIND)
    if behind is None:
        return False
    behind.execute(statement)
    return True


class CopyAborted(Exception):
    """A queued `COPY` given up: the block failed before its rows were all given."""


class _Behind:
    """`writing_behind`'s thread: runs the `COPY`s queued by the main thread on the
    connection, one after the other, feeding each the text the main thread gives it. The
    first error is kept (the `COPY` in progress aborted, the ones after it dropped) and
    raised by every `join`."""

    def __init__(self, connection: Any) -> None:
        self._connection = connection
        self._queue: queue.SimpleQueue[tuple[str, Any]] = queue.SimpleQueue()
        self._error: BaseException | None = None
        self._queued = False
        """Whether anything was queued since the last `join`."""
        self._thread = threading.Thread(target=self._run, name="jifen-copy-behind", daemon=True)
        self._thread.start()

    # -- the main thread

    def copy(self, statement: str) -> None:
        self._queued = True
        self._queue.put(("copy", statement))

    def write(self, text: str) -> None:
        self._queue.put(("write", text))

    def end(self) -> None:
        self._queue.put(("end", None))

    def execute(self, statement: str) -> None:
        self._queued = True
        self._queue.put(("execute", statement))

    def fail(self, error: BaseException) -> None:
        """Abort the `COPY` being given (its rows were not all made)."""
        self._queue.put(("fail", error))

    def join(self) -> None:
        """Wait until every `COPY` queued so far is done; raise the first error."""
        if self._queued:
            done = threading.Event()
            self._queue.put(("join", done))
            done.wait()
            self._queued = False
        if self._error is not None:
            raise self._error

    def stop(self, *, abort: bool) -> None:
        if abort:
            self._queue.put(("fail", CopyAborted("the bulk write was given up")))
        self._queue.put(("stop", None))
        self._thread.join()

    # -- its thread

    def _run(self) -> None:
        copying: Any = None
        """The `cursor.copy` context of the `COPY` in progress."""
        copy: Any = None
        while True:
            kind, value = self._queue.get()
            if kind == "join":
                value.set()
                continue
            if kind == "stop":
                return
            try:
                if kind == "fail":
                    if self._error is None:
                        self._error = value
                    if copying is not None:
                        ending, copying, copy = copying, None, None
                        ending.__exit__(type(value), value, value.__traceback__)
                elif self._error is not None:
                    continue  # (a failure drops the rest)
                elif kind == "execute":
                    self._connection.execute(value)
                elif kind == "copy":
                    copying = self._connection.cursor().copy(value)
                    copy = copying.__enter__()
                elif kind == "write":
                    copy.write(value)
                elif kind == "end":
                    ending, copying, copy = copying, None, None
                    ending.__exit__(None, None, None)
            except BaseException as exc:  # (handed to the main thread)
                if self._error is None:
                    self._error = exc
                if copying is not None:
                    ending, copying, copy = copying, None, None
                    with suppress(BaseException):  # (the first error is kept)
                        ending.__exit__(type(exc), exc, exc.__traceback__)


def copy_text_of(table: Table, names: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """The text `copy_tuples` sends PostgreSQL for `rows` (tuples of the values of
    `names`): for tests."""
    writer = _row_writer(table, tuple(names), _POSTGRESQL, False)
    line = writer({}, {})
    return "".join(line(row) + "\n" for row in rows)


_POSTGRESQL = postgresql.dialect()  # type: ignore[no-untyped-call]

_NULL = "\\N"


def _escaped(text: str) -> str:
    """A value of a text column as `COPY`'s text format writes it: backslash, tab, newline
    and carriage return escaped (what PostgreSQL reads back as those characters)."""
    return text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


_VALUE_TEXT = {
    # the value as psycopg's text dumper of the column's type writes it
    "int8": "str({v})",
    "int4": "str({v})",
    "int2": "str({v})",
    "numeric": "str({v})",  # (a Decimal: its digits, exponent, NaN or Infinity as psycopg's)
    "float8": "repr(float({v}))",
    "bool": '("t" if {v} else "f")',
    "date": "{v}.isoformat()",
    "timestamp": "{v}.isoformat()",
    # an instant met before in the same COPY (`now`, a day's release) is written once
    "timestamptz": "(I[i] if (i := id({v})) in I else _instant(I, i, {v}))",
    # in the common case no escape is needed: the text as it is
    "text": '({v} if {v}.isprintable() and "\\\\" not in {v} else _escaped({v}))',
    "json": "(J[j] if (j := id({v})) in J else _json(J, j, {v}))",
    "jsonb": "(J[j] if (j := id({v})) in J else _json(J, j, {v}))",
}
"""For each PostgreSQL type of `_copy_types`, how `_row_writer` writes a value `{v}` of it
as `COPY` text (None is `\\N`, in every column)."""


def _instant(memo: dict[int, str], key: int, value: datetime) -> str:
    found = memo[key] = value.isoformat()
    return found


def _json(memo: dict[int, str], key: int, value: Any) -> str:
    text = _json_text(value)
    if "\\" in text:  # (ASCII JSON: no tab, newline or carriage return but as escapes)
        text = text.replace("\\", "\\\\")
    found = memo[key] = text
    return found


@cache
def _row_writer(table: Table, names: tuple[str, ...], dialect: Dialect, mapping: bool) -> _Writer:
    """For `COPY table (names)`: a function that, given the memos of one `COPY` (instants
    and JSON values written, by object id), returns the function writing a row (a mapping
    when `mapping`, else a tuple in the order of `names`) as its line of `COPY` text,
    without its newline — each value as psycopg's dumper for the column's type writes it
    (`_VALUE_TEXT`), None as `\\N`, text escaped. The row function is made from source
    once per table and columns (tables are module-level: the cache holds a handful): one
    call a row and no loop over the values, where psycopg adapts value by value (about
    half of a bulk batch's `COPY` time in Python)."""
    kinds = _copy_types(table, names, dialect)
    assert kinds is not None
    values = [f"v{i}" for i in range(len(names))]
    cells = []
    for value, kind in zip(values, kinds, strict=True):
        cells.append(f"(_NULL if {value} is None else {_VALUE_TEXT[kind].format(v=value)})")
    unpack = "get(row)" if mapping else "row"  # (`_getter`: a tuple, even of one value)
    source = (
        "def writer(I, J):\n"
        "    def line(row):\n"
        f"        {', '.join(values)}, = {unpack}\n"
        f"        return '\\t'.join(({', '.join(cells)},))\n"
        "    return line\n"
    )
    scope: dict[str, Any] = {
        "get": _getter(list(names)),
        "_NULL": _NULL,
        "_escaped": _escaped,
        "_instant": _instant,
        "_json": _json,
    }
    exec(source, scope)  # noqa: S102 (the source is ours: names are numbered, not the table's)
    writer: _Writer = scope["writer"]
    return writer


_ENCODER = (
    c_make_encoder(
        None, JSONEncoder().default, encode_basestring_ascii, None, ": ", ", ", False, False, True
    )
    if c_make_encoder is not None
    else None
)
"""`json.dumps`'s own C encoder with its default settings (the same text), made once."""


def _json_text(value: Any) -> str:
    if _ENCODER is None:  # pragma: no cover (a Python without the json module's C part)
        return json.dumps(value)
    return "".join(_ENCODER(value, 0))


@cache
def _copy_types(table: Table, names: tuple[str, ...], dialect: Dialect) -> list[str] | None:
    """The PostgreSQL type of each of `names` whose text format psycopg writes `COPY`'s
    values in; None when a column's type is none of these (tables are module-level: the
    cache holds a handful)."""
    found = []
    for name in names:
        kind = table.c[name].type.dialect_impl(dialect)
        if isinstance(kind, TypeDecorator):
            kind = kind.impl_instance
        if isinstance(kind, DateTime):
            found.append("timestamptz" if kind.timezone else "timestamp")
            continue
        for sql_type, pg_name in _PG_TYPES:
            if isinstance(kind, sql_type):
                found.append(pg_name)
                break
        else:
            return None
    return found


_PG_TYPES: tuple[tuple[type[Any], str], ...] = (
    (postgresql.JSONB, "jsonb"),
    (JSON, "json"),
    (Boolean, "bool"),
    (BigInteger, "int8"),
    (SmallInteger, "int2"),
    (Integer, "int4"),
    (Float, "float8"),
    (Numeric, "numeric"),
    (Date, "date"),
    (String, "text"),
)


def _getter(names: list[str]) -> Callable[[Mapping[str, Any]], tuple[Any, ...]]:
    """A row's values in the order of `names`, as a tuple (itemgetter: no loop in Python)."""
    if len(names) == 1:
        name = names[0]
        return lambda row: (row[name],)
    return itemgetter(*names)


def _insert_many(
    session: Session, table: Table, rows: Sequence[Mapping[str, Any]], dialect: Dialect
) -> None:
    """One executemany INSERT of plain tuples, each value turned into what the driver
    takes by its column type's own bind processor (as SQLAlchemy's `insert()` would, at a
    fraction of its cost per row: no parameter dicts are built and compiled per row)."""
    names = list(rows[0])
    values_of = _getter(names)
    _insert_tuples(session, table, tuple(names), [values_of(row) for row in rows], dialect)


def _insert_tuples(
    session: Session,
    table: Table,
    names: tuple[str, ...],
    rows: Sequence[Sequence[Any]],
    dialect: Dialect,
) -> None:
    """`_insert_many` of rows given as tuples in the order of `names`."""
    processors = [table.c[name].type._cached_bind_processor(dialect) for name in names]
    # Names are the table's own: `table.c[name]` above refuses any other.
    columns = ", ".join(names)
    marks = ", ".join("?" * len(names))
    statement = f"INSERT INTO {table.name} ({columns}) VALUES ({marks})"  # noqa: S608
    if not any(processors):
        params = [tuple(row) for row in rows]
    else:
        pairs = list(enumerate(processors))
        params = []
        for values in rows:
            params.append(tuple(fn(values[i]) if fn else values[i] for i, fn in pairs))
    session.connection().exec_driver_sql(statement, params)


@cache
def _json_at(table: Table, names: tuple[str, ...]) -> list[int]:
    """Where in `names` the JSON columns of `table` are (tables are module-level: the
    cache holds a handful)."""
    return [i for i, name in enumerate(names) if _is_json(table.c[name])]


def _is_json(column: Column[Any]) -> bool:
    kind = column.type
    variant = getattr(kind, "_variant_mapping", {}).get("postgresql", kind)
    return isinstance(kind, JSON) or isinstance(variant, JSON)


class _ArrayText(UserDefinedType[str]):
    """The text of a PostgreSQL array bound with no type of its own: rendered bare (no
    `::VARCHAR`) and sent by psycopg as `unknown`, so the `CAST(… AS BIGINT[])` around it
    types the parameter itself and PostgreSQL reads the array once. Bound as a VARCHAR
    instead, the cast is a text-to-array conversion PostgreSQL cannot fold (array_in is
    not immutable): wherever the condition is a filter rather than an index condition (a
    sequential scan, or a column after the index's first) the whole array text was parsed
    again for every row — 7.5 s instead of 11 ms for 1,000 ids over 100,000 rows, and two
    fifths of a bulk import's statement time (9.2 of 23 s, pg_stat_statements)."""

    cache_ok = True

    def get_col_spec(self, **kw: Any) -> str:
        return "TEXT"


class _IdArray(TypeDecorator[Sequence[int]]):
    """Integers bound as the text of one PostgreSQL array (`{1,2,3}`), cast to BIGINT[] in
    the statement: psycopg adapts a list of ints element by element, about ten times
    slower (5 ms for 2,000 ids)."""

    impl = _ArrayText
    cache_ok = True

    def process_bind_param(self, value: Sequence[int] | None, dialect: Any) -> str | None:
        if value is None:
            return None
        return "{" + ",".join(map(str, map(int, value))) + "}"


class _Among(ColumnElement[bool]):
    """`column = ANY(:ids)` on PostgreSQL, `column IN (…)` elsewhere (see `among`).

    Both forms are built (each with its own bound parameter) and are the element's cache
    key, so a statement using it is compiled once per dialect and reused for any ids."""

    __visit_name__ = "jifen_among"
    inherit_cache = True
    _traverse_internals = [
        ("array", InternalTraversal.dp_clauseelement),
        ("listed", InternalTraversal.dp_clauseelement),
    ]
    type = Boolean()
    _is_implicitly_boolean = True

    def __init__(self, column: ColumnElement[Any], ids: Sequence[Any]) -> None:
        values = list(ids)
        if isinstance(column.type, Integer):
            array: Any = cast(bindparam(None, values, type_=_IdArray()), ARRAY(BigInteger))
        else:
            array = bindparam(None, values, type_=ARRAY(column.type))
        self.array = column == any_(array)
        self.listed = column.in_(bindparam(None, values, expanding=True, type_=column.type))


@compiles(_Among)
def _compile_listed(element: _Among, compiler: Any, **kw: Any) -> str:
    return str(compiler.process(element.listed, **kw))


@compiles(_Among, "postgresql")
def _compile_array(element: _Among, compiler: Any, **kw: Any) -> str:
    return str(compiler.process(element.array, **kw))


def among(column: ColumnElement[Any] | Any, ids: Sequence[Any]) -> ColumnElement[bool]:
    """`column` is one of `ids`: on PostgreSQL one array parameter (`= ANY(:ids)`: one
    statement text and one plan whatever the number of ids, and no per-id parameter to
    bind), elsewhere an `IN` list. An empty `ids` matches nothing."""
    return _Among(column, ids)


def update_rows(
    session: Session,
    table: Table,
    key_columns: Sequence[str],
    rows: Sequence[Mapping[str, Any]],
) -> int:
    """Update `rows` of `table` in one statement: each row a mapping of column name →
    new value, the same keys in every row; `key_columns` (among the keys) say which row
    of the table each one updates, the other keys are set. Keys must be unique among
    `rows`. Returns the number of table rows updated.

    PostgreSQL: `UPDATE … FROM unnest(:a, :b, …)`, one array parameter per column (the
    same statement text for any number of rows), the table's rows found by the keys'
    index; SQLite: one executemany `UPDATE`."""
    if not rows:
        return 0
    names = list(rows[0])
    keys = list(key_columns)
    sets = [name for name in names if name not in keys]
    if not keys or not sets or any(key not in names for key in keys):
        raise ValueError(f"update_rows: keys {keys} must be among the row's columns {names}")
    dialect = session.get_bind().dialect
    if dialect.name != "postgresql":
        statement = (
            update(table)
            .where(and_(*(table.c[key] == bindparam("k_" + key) for key in keys)))
            .values({name: bindparam("v_" + name) for name in sets})
        )
        params = [
            {("k_" if name in keys else "v_") + name: row[name] for name in names} for row in rows
        ]
        result = session.execute(statement, params)
        return int(getattr(result, "rowcount", 0) or 0)
    unnested, literals = _unnest_update(table, tuple(names), tuple(keys), dialect)
    arrays: dict[str, Any] = {}
    for i, name in enumerate(names):
        values = [row[name] for row in rows]
        literal = literals[i]
        arrays[f"c{i}"] = values if literal is None else literal(values)
    result = session.execute(unnested, arrays)
    return int(getattr(result, "rowcount", 0) or 0)


@cache
def _unnest_update(
    table: Table, names: tuple[str, ...], keys: tuple[str, ...], dialect: Dialect
) -> tuple[Any, list[Callable[[list[Any]], str] | None]]:
    """`update_rows`' statement on PostgreSQL, and for each column the function that writes
    its values as the text of one array (`_array_literal`; None: bound as a list). Built
    once per table and columns (a handful: tables are module-level)."""
    quote = dialect.identifier_preparer.quote
    arrays = []
    bound = []
    literals = []
    for i, name in enumerate(names):
        kind = table.c[name].type  # a column of the table: the names below are its own
        sql_type = kind.dialect_impl(dialect)
        if isinstance(sql_type, TypeDecorator):
            sql_type = sql_type.impl_instance
        arrays.append(f"CAST(:c{i} AS {sql_type.compile(dialect=dialect)}[])")
        literal = _array_literal(kind, dialect)
        literals.append(literal)
        bound.append(bindparam(f"c{i}", type_=_ArrayText() if literal else ARRAY(kind)))
    columns = [quote(name) for name in names]
    sets = [name for name in names if name not in keys]
    statement = text(
        f"UPDATE {quote(table.name)} AS t SET "  # noqa: S608 (identifiers, not values)
        + ", ".join(f"{quote(name)} = v.{quote(name)}" for name in sets)
        + f" FROM unnest({', '.join(arrays)}) AS v ({', '.join(columns)}) WHERE "
        + " AND ".join(f"t.{quote(key)} = v.{quote(key)}" for key in keys)
        # The keys again as a condition on the table alone: the planner then finds the rows
        # by the key's index instead of hashing the whole table to join it to the arrays
        # (whose length it cannot know).
        + "".join(f" AND t.{quote(key)} = ANY({arrays[names.index(key)]})" for key in keys)
    ).bindparams(*bound)
    return statement, literals


def _array_literal(kind: Any, dialect: Dialect) -> Callable[[list[Any]], str] | None:
    """For a column of integers, instants, fixed-point numbers or text, the function that
    writes a list of its values as the text of a PostgreSQL array (`{1,NULL,3}`), which
    the statement casts to the column's array type; None for any other type. psycopg
    adapts a list element by element — a regular expression per element to decide its
    quoting, SQLAlchemy's bind processor per element before that — about ten times the
    cost (3 ms of Python for a group's 64 accounts). Each value goes through the column
    type's own bind processor first (an instant: refused if naive, turned to UTC), so the
    array holds what the list would have."""
    impl = kind.dialect_impl(dialect)
    processor = kind._cached_bind_processor(dialect)
    if isinstance(impl, TypeDecorator):
        impl = impl.impl_instance
    if isinstance(impl, Boolean | postgresql.ARRAY | JSON):
        return None
    text_of: Callable[[Any], str]
    if isinstance(impl, Integer):
        text_of = _int_text
    elif isinstance(impl, DateTime) and impl.timezone:
        text_of = _instant_text
    elif isinstance(impl, Numeric) and not isinstance(impl, Float):
        text_of = _decimal_text
    elif isinstance(impl, String) and not isinstance(impl, Enum):
        text_of = _quoted_text
    else:
        return None

    def literal(values: list[Any]) -> str:
        if processor is not None:
            values = [processor(value) for value in values]
        return "{" + ",".join("NULL" if v is None else text_of(v) for v in values) + "}"

    return literal


def _int_text(value: Any) -> str:
    return str(operator.index(value))


def _instant_text(value: datetime) -> str:
    if value.tzinfo is None:  # (what psycopg refuses for a timestamptz, too)
        raise ValueError(f"naive datetime {value!r} for a column with a time zone")
    return value.isoformat()


def _decimal_text(value: Decimal | int | float) -> str:
    if not isinstance(value, Decimal | int | float) or isinstance(value, bool):
        raise TypeError(f"{value!r} for a fixed-point column: give a Decimal or a number")
    return str(value)


def _quoted_text(value: str) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{value!r} for a text column: give a str")
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


ARRAYS_FROM = 16
"""`insert_new` binds one array per column on PostgreSQL from this many rows on (fewer: a
multi-row VALUES, whose per-value binding costs less than building the arrays)."""


def insert_new(
    session: Session,
    table: Table,
    rows: Sequence[Mapping[str, Any]],
    keys: Sequence[str],
    returning: Sequence[str],
) -> list[Any]:
    """Insert those of `rows` (each a mapping of column name → Python value, the same keys
    in every row) whose `keys` (a unique constraint of `table`) are not in the table yet,
    in one statement — `INSERT … ON CONFLICT (keys) DO NOTHING`, which on PostgreSQL
    waits for a concurrent insert of the same key to commit or roll back — and return the
    `returning` columns of the rows written.

    PostgreSQL, from `ARRAYS_FROM` rows: `INSERT … SELECT FROM unnest(:a, :b, …)`, one
    array parameter per column (a JSON column as one JSON array):
    SQLAlchemy's multi-row VALUES binds every value through its type and psycopg parses
    a statement as long as the rows (about 0.1 ms of Python a row); otherwise the
    store's `INSERT … ON CONFLICT DO NOTHING RETURNING`, executemany."""
    if not rows:
        return []
    dialect = session.get_bind().dialect
    if dialect.name != "postgresql" or len(rows) < ARRAYS_FROM:
        insert = postgresql.insert(table) if dialect.name == "postgresql" else sqlite.insert(table)
        statement = insert.on_conflict_do_nothing(index_elements=list(keys)).returning(
            *(table.c[name] for name in returning)
        )
        return list(session.connection().execute(statement, list(rows)))
    names = list(rows[0])
    quote = dialect.identifier_preparer.quote
    sources: list[str] = []
    picked: list[str] = []
    bound: list[Any] = []
    params: dict[str, Any] = {}
    for i, name in enumerate(names):
        column = table.c[name]  # a column of the table: the names below are its own
        values = [row[name] for row in rows]
        if _is_json(column):
            # One JSON array for the column, not an array of JSON texts (the driver would
            # escape every quote of every text); a Python None is SQL NULL, as in write_rows.
            sources.append(f"jsonb_array_elements(CAST(:c{i} AS JSONB))")
            picked.append(f"NULLIF(v.c{i}, 'null'::jsonb)")
            bound.append(bindparam(f"c{i}", type_=String()))
            params[f"c{i}"] = json.dumps(values)
            continue
        sql_type = column.type.dialect_impl(dialect)
        if isinstance(sql_type, TypeDecorator):
            sql_type = sql_type.impl_instance
        sources.append(f"unnest(CAST(:c{i} AS {sql_type.compile(dialect=dialect)}[]))")
        picked.append(f"v.c{i}")
        bound.append(bindparam(f"c{i}", type_=ARRAY(column.type)))
        params[f"c{i}"] = values
    aliases = ", ".join(f"c{i}" for i in range(len(names)))
    arrays_statement = text(
        f"INSERT INTO {quote(table.name)} ({', '.join(quote(n) for n in names)}) "  # noqa: S608
        f"SELECT {', '.join(picked)} FROM ROWS FROM ({', '.join(sources)}) AS v ({aliases}) "
        f"ON CONFLICT ({', '.join(quote(k) for k in keys)}) DO NOTHING "
        f"RETURNING {', '.join(quote(table.c[r].name) for r in returning)}"
    ).bindparams(*bound)
    return list(session.connection().execute(arrays_statement, params))


def among_bound(column: ColumnElement[Any] | Any, name: str) -> ColumnElement[bool]:
    """`among` with the ids given when the statement runs, as the parameter `name` (a
    sequence): for a statement built once and run for batch after batch. On PostgreSQL
    one array parameter (`= ANY(:name)`), elsewhere an expanding `IN`."""
    return _AmongBound(column, name)


class _AmongBound(_Among):
    """`among_bound`: both forms bound to the parameter `name`, compiled as `_Among`."""

    inherit_cache = True

    def __init__(self, column: ColumnElement[Any], name: str) -> None:
        if isinstance(column.type, Integer):
            array: Any = cast(bindparam(name, type_=_IdArray()), ARRAY(BigInteger))
        else:
            array = bindparam(name, type_=ARRAY(column.type))
        self.array = column == any_(array)
        self.listed = column.in_(bindparam(name, expanding=True, type_=column.type))
