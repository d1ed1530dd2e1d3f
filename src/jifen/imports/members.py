"""Bulk import of members (PRODUCT.md O3): enrolment as `POST /v1/members` does it, a
chunk of rows to a transaction, each table written once per chunk.

Columns: `external_id`, `phone`, `email`, `card_number` (at least one), `name`,
`birthday` (YYYY-MM-DD), `gender`, `city`, `language`, `enrolment_channel`, `enrolled_at`
(ISO 8601 with an offset; default: now), and `attr_<name>` for profile attributes.

A row whose identifiers all name one member already enrolled is that member imported
before (skipped: a re-run imports nothing twice). A row with an identifier that belongs to
another member, or to an earlier row of the file, is refused with the member it clashes
with, as enrolment refuses it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from jifen.core.clock import Clock
from jifen.core.errors import DuplicateIdentifier, InvalidInput, JifenError
from jifen.db.bulk import reserve_ids, write_rows
from jifen.db.uow import Database
from jifen.imports.files import Rejects, Row
from jifen.imports.orders import validation_reason
from jifen.ledger.models import MEMBER_KINDS, Account, AccountKind, AccountStatus
from jifen.members.models import IDENTIFIER_FIELDS, Member
from jifen.members.schemas import MemberCreate, MemberStatus
from jifen.members.service import check_birthday
from jifen.programs.service import book_for, get_program

ATTR = "attr_"
COLUMNS = (
    "external_id",
    "phone",
    "email",
    "card_number",
    "name",
    "birthday",
    "gender",
    "city",
    "language",
    "enrolment_channel",
    "enrolled_at",
)


@dataclass
class Summary:
    rows: int = 0
    imported: int = 0
    already: int = 0
    rejected: int = 0


@dataclass
class _Chunk:
    imported: int = 0
    already: int = 0
    rejected: list[tuple[Row, str]] = field(default_factory=list)


def import_members(
    db: Database,
    program_id: int,
    rows: Iterable[Row],
    *,
    clock: Clock,
    rejects: Rejects,
    chunk: int = 5000,
    lang: str = "en",
    progress: Callable[[Summary], None] | None = None,
) -> Summary:
    summary = Summary()
    batch: list[tuple[Row, MemberCreate | str]] = []

    def run() -> None:
        done = db.write(lambda s: _enrol(s, program_id, batch, clock.now(), lang))
        summary.rows += len(batch)
        summary.imported += done.imported
        summary.already += done.already
        summary.rejected += len(done.rejected)
        for row, reason in done.rejected:
            rejects.add([row], reason)
        if progress:
            progress(summary)

    for row in rows:
        batch.append((row, _parse(row)))
        if len(batch) >= chunk:
            run()
            batch = []
    if batch:
        run()
    return summary


def _parse(row: Row) -> MemberCreate | str:
    values = {k: v for k, v in row.values.items() if k in COLUMNS and v is not None}
    attributes = {
        k.removeprefix(ATTR): v
        for k, v in row.values.items()
        if k.startswith(ATTR) and v is not None
    }
    if attributes:
        values["attributes"] = attributes
    try:
        return MemberCreate.model_validate(values)
    except ValidationError as exc:
        return validation_reason(exc)


def _enrol(
    session: Session,
    program_id: int,
    batch: list[tuple[Row, MemberCreate | str]],
    now: datetime,
    lang: str,
) -> _Chunk:
    book = book_for(session, get_program(session, program_id))
    done = _Chunk()
    parsed = [(row, data) for row, data in batch if not isinstance(data, str)]
    for row, data in batch:
        if isinstance(data, str):
            done.rejected.append((row, data))
    taken = _taken(session, program_id, [data for _, data in parsed])
    new: list[tuple[MemberCreate, datetime]] = []
    for row, data in parsed:
        try:
            check_birthday(data.birthday, now)
            enrolled_at = data.enrolled_at or now
            if enrolled_at > now:
                raise InvalidInput(field="enrolled_at", reason="cannot be in the future")
            given = data.given()
            owners = {taken.get((f, v)) for f, v in given.items()}
            if len(owners) == 1 and None not in owners:
                owner = owners.pop()
                if owner != "(earlier in this file)":
                    done.already += 1  # every identifier names this one member: imported
                    continue
            for f, v in given.items():
                owner = taken.get((f, v))
                if owner is not None:
                    raise DuplicateIdentifier(field=f, value=v, member_id=owner)
        except JifenError as exc:
            done.rejected.append((row, exc.message(lang)))
            continue
        for f, v in given.items():
            taken[(f, v)] = "(earlier in this file)"
        new.append((data, enrolled_at))
    ids = reserve_ids(session, Member.__table__, len(new))  # type: ignore[arg-type]
    members: list[dict[str, Any]] = []
    accounts: list[dict[str, Any]] = []
    for member_id, (data, enrolled_at) in zip(ids, new, strict=True):
        given = data.given()
        members.append(
            {
                "id": member_id,
                "program_id": program_id,
                **{f: given.get(f) for f in IDENTIFIER_FIELDS},
                **data.model_dump(include={"name", "birthday", "gender", "city", "language"}),
                "attributes": data.attributes,
                "status": MemberStatus.ACTIVE.value,
                "status_reason": None,
                "enrolled_at": enrolled_at,
                "enrolment_channel": data.enrolment_channel,
                "updated_at": now,
            }
        )
        for kind in MEMBER_KINDS:
            accounts.append(
                {
                    "program_id": program_id,
                    "member_id": member_id,
                    "kind": str(kind),
                    "status": str(AccountStatus.ACTIVE),
                    "available": 0,
                    "pending": 0,
                    "held": 0,
                    "lifetime_earned": 0,
                    "allow_negative": book.allow_negative and kind == AccountKind.POINTS,
                    "opened_at": enrolled_at,
                    "last_activity_at": None,
                    "next_due_at": None,
                }
            )
    write_rows(session, Member.__table__, members)  # type: ignore[arg-type]
    write_rows(session, Account.__table__, accounts)  # type: ignore[arg-type]
    done.imported = len(new)
    return done


def _taken(
    session: Session, program_id: int, rows: list[MemberCreate]
) -> dict[tuple[str, str], int | str]:
    """(identifier field, value) → the member it belongs to, for the rows' identifiers."""
    wanted: dict[str, set[str]] = defaultdict(set)
    for data in rows:
        for f, v in data.given().items():
            wanted[f].add(v)
    found: dict[tuple[str, str], int | str] = {}
    for f, values in wanted.items():
        column = getattr(Member, f)
        for member_id, value in session.execute(
            select(Member.id, column).where(Member.program_id == program_id, column.in_(values))
        ):
            found[(f, value)] = member_id
    return found
