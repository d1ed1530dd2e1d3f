"""Segments (named member lists) over HTTP: put a member on one, take them off, list a
segment's members and a member's segments. Writes take an admin key; reads any key."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query
from fastapi.responses import JSONResponse

from jifen.api.deps import ADMIN, ALL, PathId, ReadCall, Write, read, render
from jifen.api.idempotency import write
from jifen.api.problems import READ, WRITE, problems
from jifen.core.errors import NotFound
from jifen.members import segments
from jifen.members.segments import Membership, SegmentPage

router = APIRouter(prefix="/v1", tags=["segments"])

SegmentCode = Annotated[
    str,
    Path(
        min_length=1,
        max_length=64,
        description="the segment's code, as rules name it (`when: {segment: [vip]}`)",
        examples=["vip"],
    ),
]


@router.put(
    "/segments/{code}/members/{member_id}",
    response_model=Membership,
    summary="Put a member on a segment (admin); no change when already on it",
    responses=problems(*WRITE, NotFound),
)
def add(code: SegmentCode, member_id: PathId, call: Write) -> JSONResponse:
    return write(
        call,
        ADMIN,
        lambda u: segments.add(u.session, u.program_id, code, member_id, now=u.now),
        status_code=200,
    )


@router.delete(
    "/segments/{code}/members/{member_id}",
    response_model=Membership,
    summary="Take a member off a segment (admin)",
    responses=problems(*WRITE, NotFound),
)
def remove(code: SegmentCode, member_id: PathId, call: Write) -> JSONResponse:
    return write(
        call,
        ADMIN,
        lambda u: segments.remove(u.session, u.program_id, code, member_id),
        status_code=200,
    )


@router.get(
    "/segments/{code}/members",
    response_model=SegmentPage,
    summary="A segment's members, latest added first, a page at a time",
    description="Pass `next_cursor` back as `cursor` for the next page. A segment nobody "
    "is on has no members (not 404): segments exist by their members.",
    responses=problems(*READ),
)
def members_of(
    code: SegmentCode,
    call: ReadCall,
    cursor: Annotated[str | None, Query(max_length=100)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> JSONResponse:
    return render(
        read(
            call,
            ALL,
            lambda u: segments.members_of(
                u.session, u.program_id, code, cursor=cursor, limit=limit
            ),
        )
    )


@router.get(
    "/members/{member_id}/segments",
    response_model=list[Membership],
    summary="The segments a member is on",
    responses=problems(*READ),
)
def member_segments(member_id: PathId, call: ReadCall) -> JSONResponse:
    return render(
        read(call, ALL, lambda u: segments.segments_of_member(u.session, u.program_id, member_id))
    )
