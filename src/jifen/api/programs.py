"""Programmes: a key reads its own (`GET /v1/program`); listing and creating programmes is
installation-level and takes the root token (`JIFEN_ROOT_TOKEN`), not a programme's key.
Without a root token those two routes are off and point to the CLI."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Request
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials
from sqlalchemy.orm import Session

from jifen.access.service import Scope, authenticate, create_key
from jifen.api.deps import ALL, ReadCall, bearer, read, refuse_nul, render, token_from
from jifen.api.problems import RootApiDisabled, RootTokenRequired, problems
from jifen.api.schemas import KeyCreatedOut, ProgramCreatedOut
from jifen.core.errors import (
    Conflict,
    Forbidden,
    IdempotencyKeyMissing,
    InvalidInput,
    Unauthorized,
)
from jifen.core.settings import Settings
from jifen.db.uow import Database
from jifen.programs.schemas import ProgramCreate, ProgramOut, describe_program
from jifen.programs.service import create_program, get_program, list_programs

router = APIRouter(prefix="/v1", tags=["programmes"])

Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
ROOT_PROBLEMS = (Unauthorized, RootApiDisabled, RootTokenRequired)


def require_root(request: Request, credentials: HTTPAuthorizationCredentials | None) -> None:
    settings: Settings = request.app.state.settings
    if not settings.root_token:
        raise RootApiDisabled()
    token = token_from(credentials)
    if token is None:
        raise Unauthorized()
    if hmac.compare_digest(token.encode(), settings.root_token.encode()):
        return
    if token.startswith("jf_"):
        # a programme's key, if it is a valid one (else 401): known, but not allowed here
        db: Database = request.app.state.db
        db.read(lambda session: authenticate(session, token))
        raise RootTokenRequired()
    raise Unauthorized()


def root_only(request: Request, credentials: Credentials) -> None:
    """A dependency, so that the token is checked before the body is validated."""
    require_root(request, credentials)


Root = Annotated[None, Depends(root_only)]


@router.get(
    "/program",
    response_model=ProgramOut,
    summary="The calling key's programme",
    responses=problems(Unauthorized, Forbidden),
)
def own_program(call: ReadCall) -> JSONResponse:
    return render(read(call, ALL, lambda u: describe_program(get_program(u.session, u.program_id))))


@router.get(
    "/programs",
    response_model=list[ProgramOut],
    summary="All programmes of the installation (root token)",
    responses=problems(*ROOT_PROBLEMS),
)
def all_programs(request: Request, _: Root) -> JSONResponse:
    db: Database = request.app.state.db
    return render(db.read(lambda s: [describe_program(p) for p in list_programs(s)]))


@router.post(
    "/programs",
    status_code=201,
    response_model=ProgramCreatedOut,
    summary="Create a programme and its first admin key (root token)",
    description="Needs an `Idempotency-Key` like every write. The programme's unique "
    "`code` is what makes a retry safe: a second request for the same code is refused "
    "with 409 `conflict` and creates nothing.",
    responses=problems(*ROOT_PROBLEMS, IdempotencyKeyMissing, Conflict, InvalidInput),
)
def new_program(
    data: ProgramCreate,
    request: Request,
    _: Root,
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key")] = None,
) -> JSONResponse:
    if not idempotency_key:
        raise IdempotencyKeyMissing()
    refuse_nul(data.model_dump(mode="json"))
    db: Database = request.app.state.db
    now = request.app.state.clock.now()

    def create(session: Session) -> ProgramCreatedOut:
        program = create_program(session, data, now=now)
        key, plaintext = create_key(
            session, program.id, name="admin", scope=Scope.ADMIN, now=now, created_by="root"
        )
        return ProgramCreatedOut(
            program=describe_program(program),
            admin_key=KeyCreatedOut.of(key, plaintext),
        )

    return render(db.write(create), status_code=201)
