"""The transactional outbox: domain events written in the same transaction as the change.

Notifications, webhooks, journeys and analytics read from here after the commit; nothing
is ever sent for a change that rolled back.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

from sqlalchemy import Index, String, Table, insert
from sqlalchemy.orm import Mapped, Session, mapped_column

from jifen.db.base import Base, Id, Json, UtcDateTime, checked_key


class OutboxEvent(Base):
    __tablename__ = "outbox_events"
    __table_args__ = (Index(None, "published_at", "id"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    program_id: Mapped[int] = mapped_column(Id, checked_key("programs.id"))
    member_id: Mapped[int | None] = mapped_column(Id)
    type: Mapped[str] = mapped_column(String(60))
    payload: Mapped[dict[str, Any]] = mapped_column(Json)
    occurred_at: Mapped[datetime] = mapped_column(UtcDateTime)
    published_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


EVENTS = cast(Table, OutboxEvent.__table__)
"""The Core table: an insert needs no ORM bookkeeping and no id back."""

INSERT = insert(EVENTS)
"""Built once: executed with each event's values (compiled once, too)."""


def event(
    *,
    program_id: int,
    type: str,
    at: datetime,
    member_id: int | None = None,
    payload: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """An event's row, for `emit_many` (a caller that writes several events at once)."""
    return {
        "program_id": program_id,
        "member_id": member_id,
        "type": type,
        "payload": payload or {},
        "occurred_at": at,
    }


def emit(
    session: Session,
    *,
    program_id: int,
    type: str,
    at: datetime,
    member_id: int | None = None,
    payload: dict[str, Any] | None = None,
) -> None:
    session.execute(
        INSERT,
        event(program_id=program_id, member_id=member_id, type=type, payload=payload, at=at),
    )


def emit_many(session: Session, rows: list[dict[str, Any]]) -> None:
    """Several events in one statement, in the order given (rows as `event` makes them:
    program_id, member_id, type, payload, occurred_at)."""
    if rows:
        session.execute(INSERT, rows)
