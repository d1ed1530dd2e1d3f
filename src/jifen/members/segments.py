"""Segments as named member lists: put a member on a list, take them off, read the lists.

Rules match members by segment (`when: {segment: [vip]}`); until rule-based segments
(PRODUCT.md P2) exist, a segment is simply the members staff put on it. A list exists
while it has members: there is nothing to create first. Adding a member who is already on
the list changes nothing (an upsert on the unique (programme, segment, member)), so
retries and concurrent adds are harmless.
"""

from __future__ import annotations

import re
from datetime import datetime

from pydantic import BaseModel
from sqlalchemy import delete, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from jifen.core.cursors import decode_cursor, encode_cursor
from jifen.core.errors import InvalidInput, NotFound
from jifen.members import service as members
from jifen.members.models import SegmentMember

SEGMENT_CODE = re.compile(r"^[^\x00-\x1f\x7f\s](?:[^\x00-\x1f\x7f]{0,62}[^\x00-\x1f\x7f\s])?$")
CURSOR = "s"


class Membership(BaseModel):
    """A member's place on a segment."""

    segment: str
    member_id: int
    added_at: datetime


class SegmentPage(BaseModel):
    items: list[Membership]
    next_cursor: str | None


def check_code(code: str) -> str:
    if not SEGMENT_CODE.match(code):
        raise InvalidInput(
            field="code",
            reason="a segment code is 1–64 characters, no control characters, "
            "no space at either end",
        )
    return code


def add(
    session: Session, program_id: int, code: str, member_id: int, *, now: datetime
) -> Membership:
    """Put the member on the segment (no change when already on it)."""
    check_code(code)
    members.get(session, program_id, member_id)
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    session.execute(
        dialect.insert(SegmentMember)
        .values(program_id=program_id, segment=code, member_id=member_id, added_at=now)
        .on_conflict_do_nothing(index_elements=["program_id", "segment", "member_id"])
    )
    found = _find(session, program_id, code, member_id)
    assert found is not None
    return _out(found)


def remove(session: Session, program_id: int, code: str, member_id: int) -> Membership:
    """Take the member off the segment; 404 when they are not on it."""
    check_code(code)
    members.get(session, program_id, member_id)
    found = _find(session, program_id, code, member_id)
    if found is None:
        raise NotFound(what=f"member in segment {code}", key=member_id)
    removed = _out(found)
    session.execute(delete(SegmentMember).where(SegmentMember.id == found.id))
    return removed


def members_of(
    session: Session,
    program_id: int,
    code: str,
    *,
    cursor: str | None = None,
    limit: int = 50,
) -> SegmentPage:
    """The segment's members, latest added first, `limit` at a time (an unknown segment
    has none)."""
    check_code(code)
    if not 1 <= limit <= 500:
        raise InvalidInput(field="limit", reason="between 1 and 500")
    query = (
        select(SegmentMember)
        .where(SegmentMember.program_id == program_id, SegmentMember.segment == code)
        .order_by(SegmentMember.id.desc())
        .limit(limit + 1)
    )
    if cursor:
        query = query.where(SegmentMember.id < decode_cursor(CURSOR, cursor))
    rows = list(session.execute(query).scalars())
    page, more = rows[:limit], len(rows) > limit
    return SegmentPage(
        items=[_out(row) for row in page],
        next_cursor=encode_cursor(CURSOR, page[-1].id) if more else None,
    )


def segments_of_member(session: Session, program_id: int, member_id: int) -> list[Membership]:
    """Every segment the member is on, by code."""
    members.get(session, program_id, member_id)
    rows = session.execute(
        select(SegmentMember)
        .where(SegmentMember.program_id == program_id, SegmentMember.member_id == member_id)
        .order_by(SegmentMember.segment)
    ).scalars()
    return [_out(row) for row in rows]


def _find(session: Session, program_id: int, code: str, member_id: int) -> SegmentMember | None:
    return session.execute(
        select(SegmentMember).where(
            SegmentMember.program_id == program_id,
            SegmentMember.segment == code,
            SegmentMember.member_id == member_id,
        )
    ).scalar_one_or_none()


def _out(row: SegmentMember) -> Membership:
    return Membership(segment=row.segment, member_id=row.member_id, added_at=row.added_at)
