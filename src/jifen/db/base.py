"""Declarative base, naming convention and the column types every model shares.

`UtcDateTime` stores instants in UTC on both stores and always hands back aware
datetimes; `Id` is a 64-bit integer key that is also SQLite's rowid.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.types import TypeDecorator

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

Id = BigInteger().with_variant(Integer(), "sqlite")
"""Primary and foreign keys: BIGINT on PostgreSQL, INTEGER (the rowid) on SQLite."""

Json = JSON().with_variant(JSONB(), "postgresql")

CHECKED_PER_STATEMENT = "checked_per_statement_on_postgresql"
"""The `info` key of a foreign key that PostgreSQL checks by a statement-level trigger (one
query for all the rows a statement writes) instead of row by row: the models declare the
key for both stores, SQLite has it, PostgreSQL's catalogue does not (migrations 0006, 0007).
On a column's `ForeignKey` it is set by `checked_key`."""


def checked_key(target: str) -> ForeignKey:
    """A column's foreign key to `target` ("table.column") that PostgreSQL checks per
    statement (`CHECKED_PER_STATEMENT`), like the keys to programmes and members of the
    tables every purchase, import and nightly job writes (migration 0007)."""
    return ForeignKey(target, info={CHECKED_PER_STATEMENT: True})


def _checked_per_statement(constraint: Any) -> bool:
    """A foreign key constraint marked as a whole, or made of one column's marked key."""
    return bool(
        constraint.info.get(CHECKED_PER_STATEMENT, False)
        or any(key.info.get(CHECKED_PER_STATEMENT, False) for key in constraint.elements)
    )


def include_in_comparison(dialect: str) -> Callable[..., bool]:
    """Alembic's `include_object` for comparing the models with a database of `dialect`:
    everything, but the keys PostgreSQL checks per statement (`CHECKED_PER_STATEMENT`)."""

    def include(obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
        return not (
            dialect == "postgresql"
            and type_ == "foreign_key_constraint"
            and not reflected
            and _checked_per_statement(obj)
        )

    return include


class UtcDateTime(TypeDecorator[datetime]):
    """An instant: `timestamptz` on PostgreSQL, UTC text on SQLite, aware UTC in Python."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r} cannot be stored: give it a time zone")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def partial_index(name: str | None, *columns: str, where: str, unique: bool = False) -> Index:
    """An index of the rows matching `where` (SQL), on both stores."""
    return Index(
        name,
        *columns,
        unique=unique,
        sqlite_where=text(where),
        postgresql_where=text(where),
    )
