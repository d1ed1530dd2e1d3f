"""The member table. Identifiers are unique within a programme (NULLs never clash)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import Date, ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from jifen.db.base import Base, Id, Json, UtcDateTime, checked_key

IDENTIFIER_FIELDS = ("phone", "email", "card_number", "external_id")


class Member(Base):
    __tablename__ = "members"
    __table_args__ = (
        UniqueConstraint("program_id", "phone"),
        UniqueConstraint("program_id", "email"),
        UniqueConstraint("program_id", "card_number"),
        UniqueConstraint("program_id", "external_id"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    program_id: Mapped[int] = mapped_column(Id, checked_key("programs.id"), index=True)
    phone: Mapped[str | None] = mapped_column(String(32))
    email: Mapped[str | None] = mapped_column(String(254))
    card_number: Mapped[str | None] = mapped_column(String(64))
    external_id: Mapped[str | None] = mapped_column(String(128))
    name: Mapped[str | None] = mapped_column(String(200))
    birthday: Mapped[date | None] = mapped_column(Date)
    gender: Mapped[str | None] = mapped_column(String(16))
    city: Mapped[str | None] = mapped_column(String(100))
    language: Mapped[str | None] = mapped_column(String(10))
    attributes: Mapped[dict[str, Any]] = mapped_column(Json, default=dict)
    status: Mapped[str] = mapped_column(String(10))
    status_reason: Mapped[str | None] = mapped_column(String(500))
    enrolled_at: Mapped[datetime] = mapped_column(UtcDateTime)
    enrolment_channel: Mapped[str | None] = mapped_column(String(32))
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)


class SegmentMember(Base):
    """A member's place on a named member list (a segment, until PRODUCT.md P brings rules)."""

    __tablename__ = "segment_members"
    __table_args__ = (UniqueConstraint("program_id", "segment", "member_id"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    program_id: Mapped[int] = mapped_column(Id, ForeignKey("programs.id"))
    segment: Mapped[str] = mapped_column(String(64))
    member_id: Mapped[int] = mapped_column(Id, ForeignKey("members.id"), index=True)
    added_at: Mapped[datetime] = mapped_column(UtcDateTime)
