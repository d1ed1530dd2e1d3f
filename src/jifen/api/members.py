"""Members: enrol, read, look up by an identifier, update the profile, change status."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse

from jifen.api.deps import (
    ADMIN,
    ADMIN_APP,
    ADMIN_POS_APP,
    ALL,
    PathId,
    ReadCall,
    Write,
    read,
    render,
)
from jifen.api.idempotency import write
from jifen.api.problems import AUTH, WRITE, problems
from jifen.core.errors import (
    Conflict,
    DuplicateIdentifier,
    InvalidInput,
    NotFound,
)
from jifen.members import service as members
from jifen.members.schemas import (
    IdentifierField,
    MemberCreate,
    MemberOut,
    MemberUpdate,
    StatusChange,
)

router = APIRouter(prefix="/v1", tags=["members"])


@router.post(
    "/members",
    status_code=201,
    response_model=MemberOut,
    summary="Enrol a member (admin, pos, app)",
    responses=problems(*WRITE, DuplicateIdentifier, Conflict),
)
def enrol(data: MemberCreate, call: Write) -> JSONResponse:
    return write(
        call,
        ADMIN_POS_APP,
        lambda u: MemberOut.model_validate(members.enrol(u.session, u.book, data, now=u.now)),
    )


@router.get(
    "/members",
    response_model=MemberOut,
    summary="Find a member by exactly one identifier",
    responses=problems(*AUTH, NotFound, InvalidInput),
)
def lookup(
    call: ReadCall,
    phone: Annotated[str | None, Query(max_length=32)] = None,
    email: Annotated[str | None, Query(max_length=254)] = None,
    card_number: Annotated[str | None, Query(max_length=64)] = None,
    external_id: Annotated[str | None, Query(max_length=128)] = None,
) -> JSONResponse:
    given = {
        field: value
        for field, value in (
            (IdentifierField.PHONE, phone),
            (IdentifierField.EMAIL, email),
            (IdentifierField.CARD_NUMBER, card_number),
            (IdentifierField.EXTERNAL_ID, external_id),
        )
        if value is not None
    }
    if len(given) != 1:
        raise InvalidInput(
            field="query", reason="give exactly one of phone, email, card_number, external_id"
        )
    [(field, value)] = given.items()
    return render(
        read(
            call,
            ALL,
            lambda u: MemberOut.model_validate(
                members.lookup(u.session, u.program_id, field, value)
            ),
        )
    )


@router.get(
    "/members/{member_id}",
    response_model=MemberOut,
    summary="A member's profile and status",
    responses=problems(*AUTH, NotFound, InvalidInput),
)
def member(member_id: PathId, call: ReadCall) -> JSONResponse:
    return render(
        read(
            call,
            ALL,
            lambda u: MemberOut.model_validate(members.get(u.session, u.program_id, member_id)),
        )
    )


@router.patch(
    "/members/{member_id}",
    response_model=MemberOut,
    summary="Update a member's profile and identifiers, only the fields sent (admin, app)",
    responses=problems(*WRITE, NotFound, DuplicateIdentifier, Conflict),
)
def update(member_id: PathId, data: MemberUpdate, call: Write) -> JSONResponse:
    return write(
        call,
        ADMIN_APP,
        lambda u: MemberOut.model_validate(
            members.update_profile(u.session, u.program_id, member_id, data, now=u.now)
        ),
        status_code=200,
    )


@router.post(
    "/members/{member_id}/status",
    response_model=MemberOut,
    summary="Freeze, unfreeze (active) or close a member, with a reason (admin)",
    responses=problems(*WRITE, NotFound, Conflict),
)
def change_status(member_id: PathId, data: StatusChange, call: Write) -> JSONResponse:
    return write(
        call,
        ADMIN,
        lambda u: MemberOut.model_validate(
            members.set_status(
                u.session, u.book, member_id, data.status, reason=data.reason, now=u.now
            )
        ),
        status_code=200,
    )
