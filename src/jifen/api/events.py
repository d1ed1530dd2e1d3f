"""Behaviour events over HTTP: record one (points by the programme's event rules), read
one, list a member's."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse

from jifen.api.deps import ADMIN_POS_APP, ALL, PathId, ReadCall, Unit, Write, read, render
from jifen.api.idempotency import write
from jifen.api.problems import READ, WRITE, problems
from jifen.core.errors import (
    Conflict,
    DuplicateReference,
    MemberClosed,
    MemberFrozen,
    NotFound,
)
from jifen.earning import events
from jifen.earning.event_schemas import EventIn, EventOut, EventPage, EventType
from jifen.programs.service import get_program

router = APIRouter(prefix="/v1", tags=["events"])


def _record(u: Unit, data: EventIn) -> EventOut:
    program = get_program(u.session, u.program_id)
    recorded = events.record_event(u.session, program, u.book, data, now=u.now, actor=u.actor)
    return events.describe(u.session, recorded.event, repeat=recorded.repeat)


@router.post(
    "/events",
    status_code=201,
    response_model=EventOut,
    summary="Record a member's behaviour and give its points (admin, pos, app)",
    description="The programme's active event rule of the `type` decides the points and "
    "growth value, how often a member may get them (`limited`: recorded, nothing given) and "
    "the budget (`budget`: got what was left). Sending an `external_id` again for the same "
    "type and member returns the first result (`repeat: true`), never a second award; for "
    "another type or member it is a conflict.",
    responses=problems(*WRITE, NotFound, MemberFrozen, MemberClosed, Conflict, DuplicateReference),
)
def record(data: EventIn, call: Write) -> JSONResponse:
    return write(call, ADMIN_POS_APP, lambda u: _record(u, data))


@router.get(
    "/events/{event_id}",
    response_model=EventOut,
    summary="One recorded event",
    responses=problems(*READ),
)
def event(event_id: PathId, call: ReadCall) -> JSONResponse:
    return render(
        read(
            call,
            ALL,
            lambda u: events.describe(
                u.session, events.get_event(u.session, u.program_id, event_id)
            ),
        )
    )


@router.get(
    "/members/{member_id}/events",
    response_model=EventPage,
    summary="The member's events, newest first, a page at a time",
    description="Filter by `type` (repeatable). Pass `next_cursor` back as `cursor` for the "
    "next page.",
    responses=problems(*READ),
)
def member_events(
    member_id: PathId,
    call: ReadCall,
    types: Annotated[list[EventType] | None, Query(alias="type")] = None,
    cursor: Annotated[str | None, Query(max_length=100)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> JSONResponse:
    return render(
        read(
            call,
            ALL,
            lambda u: events.member_events(
                u.session, u.program_id, member_id, types=types, cursor=cursor, limit=limit
            ),
        )
    )
