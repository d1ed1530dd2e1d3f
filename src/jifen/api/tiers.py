"""Tiers over HTTP: the programme's tier definition, where a member stands and what is
missing for the next tier, their tier history, and grants (staff, invitation, paid
membership) and their revocation. Reads take any key; grants and revocations admin keys.
Every handler calls one service in `jifen.tiers`."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from jifen.api.deps import ADMIN, ALL, PathId, ReadCall, Unit, Write, read, render
from jifen.api.idempotency import write
from jifen.api.problems import READ, WRITE, language, problems
from jifen.core.errors import MemberClosed, NotFound
from jifen.tiers import progress, service
from jifen.tiers.errors import (
    GrantEndsBeforeStart,
    GrantNotActive,
    GrantReferenceConflict,
    TiersNotConfigured,
    UnknownTier,
)
from jifen.tiers.schemas import GrantIn, GrantOut, HistoryPage, RevokeIn, Standing, TiersOut

router = APIRouter(prefix="/v1", tags=["tiers"])


@router.get(
    "/tiers",
    response_model=TiersOut,
    summary="The programme's tiers: levels, thresholds, window, grace period, benefits",
    responses=problems(*READ),
)
def get_tiers(call: ReadCall) -> JSONResponse:
    return render(read(call, ALL, lambda u: progress.definition(u.program)))


@router.get(
    "/members/{member_id}/tier",
    response_model=Standing,
    summary="A member's tier, measures, what is missing for the next tier and what keeps this one",
    description="The `message` sentences are in the language of `Accept-Language` (zh-CN "
    "by default, or en): `还差 1,240 成长值，2027-03-31 前可升级为金卡会员` / `1,240 growth "
    "value more by 2027-03-31 to reach 金卡会员`. With a calendar window the deadline is the "
    "end of the current period; with a rolling window there is none, and `drops_out_from` "
    "says when the oldest amount counted stops counting.",
    responses=problems(*READ, TiersNotConfigured),
)
def member_tier(member_id: PathId, call: ReadCall, request: Request) -> JSONResponse:
    lang = language(request)
    return render(
        read(
            call,
            ALL,
            lambda u: progress.standing(u.session, u.program, member_id, now=u.now, lang=lang),
        )
    )


@router.get(
    "/members/{member_id}/tier/history",
    response_model=HistoryPage,
    summary="A member's tier history, newest first, with the reason of each change",
    description="Pass `next_cursor` as `cursor` for the next page.",
    responses=problems(*READ),
)
def tier_history(
    member_id: PathId,
    call: ReadCall,
    cursor: Annotated[str | None, Query(max_length=100)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> JSONResponse:
    return render(
        read(
            call,
            ALL,
            lambda u: service.history(
                u.session, u.program_id, member_id, cursor=cursor, limit=limit
            ),
        )
    )


def _created(model: BaseModel, created: bool) -> tuple[BaseModel, int]:
    return model, 201 if created else 200


@router.post(
    "/members/{member_id}/tier/grants",
    status_code=201,
    response_model=GrantOut,
    summary="Give a member a tier until an end date: staff, invitation, paid membership (admin)",
    description="The member's tier becomes at once the better of what their record holds "
    "and their grants in force. `reference` is unique in the programme (a paid "
    "membership's payment id): sending it again for the same member, tier and kind "
    "returns the first grant with 200, so a retried payment webhook grants once.",
    responses={
        **problems(
            *WRITE,
            NotFound,
            MemberClosed,
            TiersNotConfigured,
            UnknownTier,
            GrantEndsBeforeStart,
            GrantReferenceConflict,
        ),
        200: {"model": GrantOut, "description": "This reference was already granted"},
    },
)
def grant_tier(member_id: PathId, data: GrantIn, call: Write) -> JSONResponse:
    def op(u: Unit) -> tuple[BaseModel, int]:
        found, created = service.grant(
            u.session, u.program, u.book, member_id, data, now=u.now, actor=u.actor
        )
        return _created(service.describe_grant(found, u.now), created)

    return write(call, ADMIN, op)


@router.post(
    "/members/{member_id}/tier/grants/{grant_id}/revoke",
    response_model=GrantOut,
    summary="End a grant now (admin); the member falls at once to what is left",
    description="Revoking a revoked grant returns it unchanged.",
    responses=problems(*WRITE, NotFound, MemberClosed, TiersNotConfigured, GrantNotActive),
)
def revoke_grant(
    member_id: PathId, grant_id: PathId, call: Write, data: RevokeIn | None = None
) -> JSONResponse:
    def op(u: Unit) -> BaseModel:
        found, _ = service.revoke(
            u.session,
            u.program,
            u.book,
            member_id,
            grant_id,
            reason=data.reason if data is not None else None,
            now=u.now,
            actor=u.actor,
        )
        return service.describe_grant(found, u.now)

    return write(call, ADMIN, op, status_code=200)
