"""What a handler needs: the caller's key, a unit of work, the programme's book.

Authentication is deliberately *not* a FastAPI dependency that queries the database: that
would cost a transaction of its own before the request's real one. The dependencies here
only take the request apart (bearer token, `Idempotency-Key`, raw JSON body) and refuse a
request without a plausible key at once (401, before the body is even validated). The key
is then checked inside the request's one read or write transaction (`read` here,
`jifen.api.idempotency.write` for writes), together with the scope, and every service
call gets the key's programme: there is no way to name another programme's member, hold,
transaction or key, so they answer 404 exactly as if they did not exist.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Header, Path, Request
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel
from sqlalchemy.orm import Session

from jifen.access.service import Principal, Scope, authenticate
from jifen.core.clock import Clock
from jifen.core.errors import Forbidden, InvalidInput, Unauthorized
from jifen.core.settings import Settings
from jifen.db.uow import Database
from jifen.ledger.posting import Book
from jifen.programs.models import Program
from jifen.programs.service import book_for, get_program

T = TypeVar("T")

ALL = frozenset(Scope)
ADMIN = frozenset({Scope.ADMIN})
ADMIN_POS = frozenset({Scope.ADMIN, Scope.POS})
ADMIN_APP = frozenset({Scope.ADMIN, Scope.APP})
ADMIN_POS_APP = frozenset({Scope.ADMIN, Scope.POS, Scope.APP})

MAX_ID = 2**63 - 1
"""Ids are 64-bit: a larger number names nothing (and would overflow the store's integer)."""

PathId = Annotated[int, Path(ge=1, le=MAX_ID, description="a positive 64-bit id")]

bearer = HTTPBearer(
    auto_error=False,
    scheme_name="ApiKey",
    description="A programme's API key: `Authorization: Bearer jf_<prefix>_<secret>`. "
    "Its scope (admin, pos, app, read) decides what it may do.",
)


def token_from(credentials: HTTPAuthorizationCredentials | None) -> str | None:
    return credentials.credentials if credentials is not None else None


async def api_key(
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> str:
    """The bearer token, if it looks like one of our keys (checked for real later)."""
    token = token_from(credentials)
    if token is None or not token.startswith("jf_"):
        raise Unauthorized()
    return token


@dataclass(frozen=True)
class Call:
    """One request's view of the app: store, clock, settings and the caller's token."""

    db: Database
    clock: Clock
    settings: Settings
    token: str
    method: str
    path: str


@dataclass(frozen=True)
class WriteCall(Call):
    idempotency_key: str | None
    body: Any
    """The request body as parsed JSON (None when empty): part of the idempotency hash."""


def _app_call(request: Request, token: str) -> dict[str, Any]:
    return app_call(request.app.state, token, request.method, request.url.path)


def app_call(state: Any, token: str, method: str, path: str) -> dict[str, Any]:
    """The fields of a `Call` from the app's state (`app.state`) and the request's key,
    method and path."""
    return {
        "db": state.db,
        "clock": state.clock,
        "settings": state.settings,
        "token": token,
        "method": method,
        "path": path,
    }


NUL = "\x00"


def nul_in(value: Any, where: str = "") -> str | None:
    """Where in a parsed JSON value a string holds U+0000 (None: nowhere). PostgreSQL's
    text and jsonb cannot store it, so it is refused up front, on either store."""
    if isinstance(value, str):
        return (where or "body") if NUL in value else None
    if isinstance(value, dict):
        for name, item in value.items():
            inner = f"{where}.{name}" if where else str(name)
            found = (inner if NUL in str(name) else None) or nul_in(item, inner)
            if found:
                return found
    if isinstance(value, list):
        for index, item in enumerate(value):
            found = nul_in(item, f"{where}.{index}" if where else str(index))
            if found:
                return found
    return None


def refuse_nul(value: Any, where: str = "") -> None:
    found = nul_in(value, where)
    if found is not None:
        raise InvalidInput(field=found, reason="must not contain the NUL character (U+0000)")


def _refuse_nul_in_request(request: Request) -> None:
    for name, value in [*request.query_params.multi_items(), *request.path_params.items()]:
        refuse_nul(f"{name}{value}", name)


async def read_call(request: Request, token: Annotated[str, Depends(api_key)]) -> Call:
    _refuse_nul_in_request(request)
    return Call(**_app_call(request, token))


async def write_call(
    request: Request,
    token: Annotated[str, Depends(api_key)],
    idempotency_key: Annotated[
        str | None,
        Header(
            alias="Idempotency-Key",
            description="Required on every write (e.g. a UUID). Send the same key when you "
            "retry: the first result comes back (with `Idempotent-Replayed: true`) and the "
            "effect happens once. A key reused for a different request is refused (422).",
        ),
    ] = None,
) -> WriteCall:
    _refuse_nul_in_request(request)
    refuse_nul(idempotency_key, "Idempotency-Key")
    raw = await request.body()
    body: Any
    try:
        body = json.loads(raw) if raw else None
    except ValueError:
        body = raw.decode("utf-8", "replace")  # FastAPI answers it with invalid-input
    else:
        refuse_nul(body)
    return WriteCall(**_app_call(request, token), idempotency_key=idempotency_key, body=body)


ReadCall = Annotated[Call, Depends(read_call)]
Write = Annotated[WriteCall, Depends(write_call)]


class Unit:
    """One transaction with an authenticated caller; the book is loaded only if asked."""

    def __init__(self, session: Session, principal: Principal, now: datetime) -> None:
        self.session = session
        self.principal = principal
        self.now = now

    @property
    def program_id(self) -> int:
        return self.principal.program_id

    @property
    def actor(self) -> str:
        return self.principal.actor

    @cached_property
    def program(self) -> Program:
        return get_program(self.session, self.principal.program_id)

    @cached_property
    def book(self) -> Book:
        return book_for(self.session, self.program)


def authorise(session: Session, token: str, allowed: frozenset[Scope]) -> Principal:
    principal = authenticate(session, token)
    if principal.scope not in allowed:
        needed = ", ".join(scope.value for scope in Scope if scope in allowed)
        raise Forbidden(scope=principal.scope.value, needed=needed)
    return principal


def read(call: Call, allowed: frozenset[Scope], op: Callable[[Unit], T]) -> T:
    """Authenticate and run `op` in one read-only transaction."""

    def unit(session: Session) -> T:
        principal = authorise(session, call.token, allowed)
        return op(Unit(session, principal, call.clock.now()))

    return call.db.read(unit)


def render(model: BaseModel | list[Any], status_code: int = 200) -> JSONResponse:
    """Serialise once, straight to JSON (the route's `response_model` documents it)."""
    if isinstance(model, BaseModel):
        return JSONResponse(model.model_dump(mode="json"), status_code=status_code)
    return JSONResponse([item.model_dump(mode="json") for item in model], status_code=status_code)
