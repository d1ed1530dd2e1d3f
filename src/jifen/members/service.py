"""Members: enrol, look up by any identifier, update the profile, freeze and close."""

from __future__ import annotations

import calendar
from collections.abc import Collection
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, bindparam, extract, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from jifen.core.errors import Conflict, DuplicateIdentifier, InvalidInput, NotFound
from jifen.ledger import service as ledger
from jifen.ledger.models import Account, AccountKind, AccountStatus
from jifen.ledger.posting import Book
from jifen.members.models import Member, SegmentMember
from jifen.members.schemas import (
    IdentifierField,
    MemberCreate,
    MemberRef,
    MemberStatus,
    MemberUpdate,
    normalise_identifier,
)


def _check_free(
    session: Session, program_id: int, identifiers: dict[str, str], member_id: int | None = None
) -> None:
    if not identifiers:
        return
    clauses = [getattr(Member, field) == value for field, value in identifiers.items()]
    clash = session.execute(
        select(Member).where(Member.program_id == program_id, or_(*clauses)).limit(1)
    ).scalar_one_or_none()
    if clash is not None and clash.id != member_id:
        field = next(f for f, v in identifiers.items() if getattr(clash, f) == v)
        raise DuplicateIdentifier(field=field, value=identifiers[field], member_id=clash.id)


def check_birthday(birthday: date | None, now: datetime) -> None:
    """No birthday after today anywhere on Earth (UTC+14 is a day ahead at most)."""
    if birthday is not None and birthday > (now + timedelta(hours=14)).date():
        raise InvalidInput(field="birthday", reason="cannot be in the future")


def active_members(program_id: int, *columns: Any) -> Select[Any]:
    """`columns` of the programme's active members whose points account is active, joined
    to that account (`Account`): whom the scheduled gifts go to (birthday points, tier
    benefits, tier birthday gifts). The jobs add their conditions, order by `Account.id`
    and lock `of=Account` with SKIP LOCKED."""
    return (
        select(*columns)
        .join(
            Account,
            and_(
                Account.program_id == program_id,
                Account.member_id == Member.id,
                Account.kind == AccountKind.POINTS,
            ),
        )
        .where(
            Member.program_id == program_id,
            Member.status == MemberStatus.ACTIVE,
            Account.status == AccountStatus.ACTIVE,
        )
    )


def born_on(window: str, today: date) -> ColumnElement[bool]:
    """Members whose birthday falls on local `today`: on the day (those born on 29 February
    on 28 February in a common year) or, with `window` "month", any day of their birthday
    month. The birthday jobs' test (birthday points, tier birthday gifts)."""
    month = extract("month", Member.birthday)
    day = extract("day", Member.birthday)
    if window == "month":
        return month == today.month
    on_the_day = and_(month == today.month, day == today.day)
    if (today.month, today.day) == (2, 28) and not calendar.isleap(today.year):
        return or_(on_the_day, and_(month == 2, day == 29))
    return on_the_day


def enrol(session: Session, book: Book, data: MemberCreate, *, now: datetime) -> Member:
    check_birthday(data.birthday, now)
    identifiers = data.given()
    _check_free(session, book.program_id, identifiers)
    enrolled_at = data.enrolled_at or now
    if enrolled_at > now:
        raise InvalidInput(field="enrolled_at", reason="cannot be in the future")
    member = Member(
        program_id=book.program_id,
        **identifiers,
        **data.model_dump(include={"name", "birthday", "gender", "city", "language"}),
        attributes=data.attributes,
        status=MemberStatus.ACTIVE,
        enrolled_at=enrolled_at,
        enrolment_channel=data.enrolment_channel,
        updated_at=now,
    )
    try:
        with session.begin_nested():
            session.add(member)
            session.flush()
    except IntegrityError as exc:  # a concurrent enrolment won the race for an identifier
        raise Conflict(reason="an identifier was just taken by another enrolment") from exc
    ledger.open_member_accounts(
        session, book.program_id, member.id, enrolled_at, allow_negative=book.allow_negative
    )
    session.flush()
    return member


_BY_ID = select(Member).where(
    Member.id == bindparam("member_id"), Member.program_id == bindparam("program_id")
)
_SEGMENTS = select(SegmentMember.segment).where(
    SegmentMember.program_id == bindparam("program_id"),
    SegmentMember.member_id == bindparam("member_id"),
)
"""Statements of every earning request, built once."""


def get(session: Session, program_id: int, member_id: int) -> Member:
    member = session.execute(
        _BY_ID, {"member_id": member_id, "program_id": program_id}
    ).scalar_one_or_none()
    if member is None:
        raise NotFound(what="member", key=member_id)
    return member


def lookup(session: Session, program_id: int, field: IdentifierField, value: str) -> Member:
    try:
        normalised = normalise_identifier(field, value)
    except ValueError as exc:
        raise InvalidInput(field=str(field), reason=str(exc)) from exc
    member = session.execute(
        select(Member).where(Member.program_id == program_id, getattr(Member, field) == normalised)
    ).scalar_one_or_none()
    if member is None:
        raise NotFound(what="member", key=f"{field}={normalised}")
    return member


def update_profile(
    session: Session, program_id: int, member_id: int, data: MemberUpdate, *, now: datetime
) -> Member:
    member = get(session, program_id, member_id)
    changes = data.model_dump(exclude_unset=True)
    check_birthday(changes.get("birthday"), now)
    identifiers = {f: v for f, v in changes.items() if f in IdentifierField.__members__.values()}
    _check_free(session, program_id, {k: v for k, v in identifiers.items() if v}, member.id)
    remaining = {f: getattr(member, f) for f in IdentifierField} | identifiers
    if not any(remaining.values()):
        raise InvalidInput(field="identifiers", reason="a member keeps at least one identifier")
    for field, value in changes.items():
        setattr(member, field, value)
    member.updated_at = now
    try:
        with session.begin_nested():
            session.flush()
    except IntegrityError as exc:
        raise Conflict(reason="an identifier was just taken by another member") from exc
    return member


def set_status(
    session: Session,
    book: Book,
    member_id: int,
    status: MemberStatus,
    *,
    reason: str,
    now: datetime,
) -> Member:
    """Freeze, unfreeze or close a member. A closed member stays closed."""
    member = get(session, book.program_id, member_id)
    if member.status == MemberStatus.CLOSED and status != MemberStatus.CLOSED:
        raise Conflict(reason=f"member {member_id} is closed and cannot be reopened")
    ledger.set_account_status(session, book, member_id, status, now)
    member.status = status
    member.status_reason = reason
    member.updated_at = now
    session.flush()
    return member


def resolve(session: Session, program_id: int, ref: MemberRef) -> Member:
    """The member a `MemberRef` names (NotFound when none)."""
    if ref.id is not None:
        return get(session, program_id, ref.id)
    for field in IdentifierField:
        value = getattr(ref, field.value)
        if value is not None:
            return lookup(session, program_id, field, value)
    raise InvalidInput(field="member", reason="no identifier given")


def segments_of(session: Session, program_id: int, member_id: int) -> frozenset[str]:
    rows = session.execute(_SEGMENTS, {"program_id": program_id, "member_id": member_id}).scalars()
    return frozenset(rows)


def segments_by_member(
    session: Session, program_id: int, member_ids: Collection[int]
) -> dict[int, frozenset[str]]:
    """Each member's segments (`segments_of` for a batch, in one query)."""
    found: dict[int, set[str]] = {member_id: set() for member_id in member_ids}
    if found:
        for member_id, segment in session.execute(
            select(SegmentMember.member_id, SegmentMember.segment).where(
                SegmentMember.program_id == program_id,
                SegmentMember.member_id.in_(list(found)),
            )
        ):
            found[member_id].add(segment)
    return {member_id: frozenset(segments) for member_id, segments in found.items()}
