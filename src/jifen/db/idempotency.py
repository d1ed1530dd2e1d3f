"""Idempotency keys: (programme, key) → request hash and the first response.

The key row is inserted in the same transaction as the effect, before the effect. A
second request with the same key either finds the committed row (and gets the stored
response back, or a refusal when its body differs) or, while the first is still running,
waits on the unique index until the first commits or rolls back. So a retried or
duplicated call has exactly one effect, on SQLite and on PostgreSQL alike.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any, cast

from sqlalchemy import (
    Integer,
    String,
    Table,
    UniqueConstraint,
    bindparam,
    select,
    text,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Mapped, Session, mapped_column

from jifen.core.errors import IdempotencyKeyReused, InvalidInput
from jifen.db.base import Base, Id, Json, UtcDateTime, checked_key
from jifen.db.bulk import among
from jifen.db.probes import by_keys

MAX_KEY_LENGTH = 200


class IdempotencyRecord(Base):
    __tablename__ = "idempotency_keys"
    __table_args__ = (UniqueConstraint("program_id", "key"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    program_id: Mapped[int] = mapped_column(Id, checked_key("programs.id"))
    key: Mapped[str] = mapped_column(String(MAX_KEY_LENGTH))
    request_hash: Mapped[str] = mapped_column(String(64))
    status_code: Mapped[int | None] = mapped_column(Integer)
    response: Mapped[Any | None] = mapped_column(Json)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)


KEYS = cast(Table, IdempotencyRecord.__table__)


@dataclass(frozen=True)
class Replay:
    """The stored outcome of the first request made with a key."""

    status_code: int
    response: Any


def request_hash(*parts: Any) -> str:
    """A stable hash of a request: method, path and body, canonical JSON."""
    canonical = json.dumps(parts, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def claim(
    session: Session, *, program_id: int, key: str, fingerprint: str, now: datetime
) -> int | Replay:
    """Claim `key` for this request: its record id, or the first request's `Replay`.

    Raises `IdempotencyKeyReused` when the key was used with a different request.
    """
    if not key or len(key) > MAX_KEY_LENGTH:
        raise InvalidInput(field="Idempotency-Key", reason=f"1–{MAX_KEY_LENGTH} characters")
    values = {"program_id": program_id, "key": key, "request_hash": fingerprint, "created_at": now}
    record_id: int | None = session.execute(
        _claim_statement(session.get_bind().dialect.name), values
    ).scalar_one_or_none()
    if record_id is not None:
        return record_id
    existing = session.execute(
        select(IdempotencyRecord).where(
            IdempotencyRecord.program_id == program_id, IdempotencyRecord.key == key
        )
    ).scalar_one()
    if existing.request_hash != fingerprint or existing.status_code is None:
        raise IdempotencyKeyReused(key=key)
    return Replay(status_code=existing.status_code, response=existing.response)


@cache
def _claim_statement(dialect: str) -> Any:
    module = postgresql if dialect == "postgresql" else sqlite
    return (
        module.insert(KEYS)
        .on_conflict_do_nothing(index_elements=["program_id", "key"])
        .returning(KEYS.c.id)
    )


_STORE = (
    update(KEYS)
    .where(KEYS.c.id == bindparam("record_id"))
    .values(status_code=bindparam("new_status"), response=bindparam("new_response"))
)


def store(session: Session, record_id: int, *, status_code: int, response: Any) -> None:
    """Record the response of the request that claimed the key (same transaction)."""
    session.execute(
        _STORE, {"record_id": record_id, "new_status": status_code, "new_response": response}
    )


def known_keys(session: Session, program_id: int, keys: Sequence[str]) -> set[str]:
    """Those of `keys` already claimed in the programme (committed, or claimed by this
    transaction)."""
    if not keys:
        return set()
    if session.get_bind().dialect.name == "postgresql":
        params = {"program_id": program_id, "keys": sorted(set(keys))}
        return set(session.execute(_KNOWN, params).scalars())
    return set(
        session.execute(
            select(KEYS.c.key).where(KEYS.c.program_id == program_id, among(KEYS.c.key, keys))
        ).scalars()
    )


_KNOWN = by_keys(KEYS, KEYS.c.key, [KEYS.c.id])
"""`known_keys` on PostgreSQL: a probe of the unique index per key (`jifen.db.probes`),
built once."""


def record_many(
    session: Session,
    *,
    program_id: int,
    records: Sequence[tuple[str, str, int, str]],
    now: datetime,
) -> set[str]:
    """Claim several keys with their requests' outcomes at once (grouped writes: each
    record is key, request hash, status and the response as JSON), in one statement: the keys
    recorded. A key recorded already, or claimed by a concurrent request that commits
    first (the statement waits for it), is left out, and the caller must then not commit
    what it did for that key's request. Keys are inserted in their order, so two groups
    never wait on each other's keys crosswise."""
    if not records:
        return set()
    records = sorted(records, key=lambda record: record[0])
    if session.get_bind().dialect.name == "postgresql":
        # One statement whatever the number of keys (arrays, not a VALUES row per key,
        # which would be compiled again for every size of group).
        found = session.execute(
            _RECORD_MANY,
            {
                "program_id": program_id,
                "keys": [key for key, _, _, _ in records],
                "hashes": [fingerprint for _, fingerprint, _, _ in records],
                "statuses": [status for _, _, status, _ in records],
                "responses": "[" + ",".join(response for _, _, _, response in records) + "]",
                "now": now,
            },
        )
    else:
        rows = [
            {
                "program_id": program_id,
                "key": key,
                "request_hash": fingerprint,
                "status_code": status,
                "response": json.loads(response),
                "created_at": now,
            }
            for key, fingerprint, status, response in records
        ]
        found = session.execute(
            sqlite.insert(KEYS)
            .values(rows)
            .on_conflict_do_nothing(index_elements=["program_id", "key"])
            .returning(KEYS.c.key)
        )
    return set(found.scalars())


_RECORD_MANY = text(
    "INSERT INTO idempotency_keys "
    "(program_id, key, request_hash, status_code, response, created_at) "
    "SELECT :program_id, r.key, r.hash, r.status, r.body, :now "
    "FROM ROWS FROM (unnest(CAST(:keys AS VARCHAR[])), unnest(CAST(:hashes AS VARCHAR[])), "
    "unnest(CAST(:statuses AS INTEGER[])), jsonb_array_elements(CAST(:responses AS JSONB))) "
    "WITH ORDINALITY AS r(key, hash, status, body, n) ORDER BY r.n "
    "ON CONFLICT (program_id, key) DO NOTHING RETURNING key"
)
"""The responses go as one JSON array (one text parameter): as an array of texts, each
body's every quote was escaped by the driver, a fifth of a group's CPU."""
