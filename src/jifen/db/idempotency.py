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
    ForeignKey,
    Integer,
    String,
    Table,
    UniqueConstraint,
    bindparam,
    delete,
    select,
    text,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Mapped, Session, mapped_column

from jifen.core.errors import IdempotencyKeyReused, InvalidInput
from jifen.db.base import Base, Id, Json, UtcDateTime

MAX_KEY_LENGTH = 200


class IdempotencyRecord(Base):
    __tablename__ = "idempotency_keys"
    __table_args__ = (UniqueConstraint("program_id", "key"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    program_id: Mapped[int] = mapped_column(Id, ForeignKey("programs.id"))
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


def claim_many(
    session: Session, *, program_id: int, claims: Sequence[tuple[str, str]], now: datetime
) -> dict[str, int]:
    """Claim several keys at once, each with its request's hash (grouped writes): the keys
    claimed → their record ids, in one statement. A key recorded already, or claimed by a
    concurrent request that commits first, is left out; its request then goes through
    `claim`, which replays or refuses it. Keys are inserted in their order, so two groups
    never wait on each other's keys crosswise."""
    if not claims:
        return {}
    claims = sorted(claims)
    if session.get_bind().dialect.name == "postgresql":
        # One statement whatever the number of keys (arrays, not a VALUES row per key,
        # which would be compiled again for every size of group).
        found = session.execute(
            _CLAIM_MANY,
            {
                "program_id": program_id,
                "keys": [key for key, _ in claims],
                "hashes": [fingerprint for _, fingerprint in claims],
                "now": now,
            },
        )
    else:
        rows = [
            {"program_id": program_id, "key": key, "request_hash": fingerprint, "created_at": now}
            for key, fingerprint in claims
        ]
        found = session.execute(
            sqlite.insert(KEYS)
            .values(rows)
            .on_conflict_do_nothing(index_elements=["program_id", "key"])
            .returning(KEYS.c.key, KEYS.c.id)
        )
    return dict(found.all())  # a Result has keys(): not dict(result)


_CLAIM_MANY = text(
    "INSERT INTO idempotency_keys (program_id, key, request_hash, created_at) "
    "SELECT :program_id, claim.key, claim.hash, :now "
    "FROM unnest(CAST(:keys AS VARCHAR[]), CAST(:hashes AS VARCHAR[])) "
    "WITH ORDINALITY AS claim(key, hash, n) ORDER BY claim.n "
    "ON CONFLICT (program_id, key) DO NOTHING RETURNING key, id"
)


def store_many(session: Session, stored: Sequence[tuple[int, int, Any]]) -> None:
    """Record the responses (record id, status, body) of the requests that claimed keys
    with `claim_many` (same transaction): on PostgreSQL one statement (arrays, the bodies
    as their JSON text), elsewhere an executemany."""
    if not stored:
        return
    if session.get_bind().dialect.name == "postgresql":
        session.execute(
            _STORE_MANY,
            {
                "ids": [record_id for record_id, _, _ in stored],
                "statuses": [status for _, status, _ in stored],
                "responses": [json.dumps(response) for _, _, response in stored],
            },
        )
        return
    session.execute(
        _STORE,
        [
            {"record_id": record_id, "new_status": status, "new_response": response}
            for record_id, status, response in stored
        ],
    )


_STORE_MANY = text(
    "UPDATE idempotency_keys AS k SET status_code = v.status, response = CAST(v.body AS JSONB) "
    "FROM unnest(CAST(:ids AS BIGINT[]), CAST(:statuses AS INTEGER[]), "
    "CAST(:responses AS TEXT[])) AS v (id, status, body) "
    # the ids again on the table alone: found by the primary key, whatever the statistics
    "WHERE k.id = v.id AND k.id = ANY(CAST(:ids AS BIGINT[]))"
)


def release(session: Session, record_ids: Sequence[int]) -> None:
    """Give back keys claimed in this transaction whose requests will not be answered by
    it (they go the one-by-one way)."""
    if record_ids:
        session.execute(delete(KEYS).where(KEYS.c.id.in_(record_ids)))
