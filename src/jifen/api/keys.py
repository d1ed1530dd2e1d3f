"""API keys of the caller's programme (admin keys only): create, list, revoke."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from jifen.access.service import create_key, list_keys, revoke_key
from jifen.api.deps import ADMIN, PathId, ReadCall, Write, read, render
from jifen.api.idempotency import write
from jifen.api.problems import AUTH, WRITE, problems
from jifen.api.schemas import KeyCreatedOut, KeyIn, KeyOut
from jifen.core.errors import (
    NotFound,
)

router = APIRouter(prefix="/v1", tags=["keys"])


def _without_secret(body: dict[str, Any]) -> dict[str, Any]:
    return body | {"key": None}


@router.post(
    "/keys",
    status_code=201,
    response_model=KeyCreatedOut,
    summary="Create an API key for this programme",
    description="The response carries the key itself, once: only its hash is stored. A "
    "retry with the same Idempotency-Key replays the response with `key: null`.",
    responses=problems(*WRITE),
)
def new_key(data: KeyIn, call: Write) -> JSONResponse:
    def op(u: Any) -> KeyCreatedOut:
        key, plaintext = create_key(
            u.session, u.program_id, name=data.name, scope=data.scope, now=u.now, created_by=u.actor
        )
        return KeyCreatedOut.of(key, plaintext)

    return write(call, ADMIN, op, redact=_without_secret)


@router.get(
    "/keys",
    response_model=list[KeyOut],
    summary="This programme's API keys (no secrets)",
    responses=problems(*AUTH),
)
def keys(call: ReadCall) -> JSONResponse:
    return render(
        read(
            call,
            ADMIN,
            lambda u: [KeyOut.model_validate(k) for k in list_keys(u.session, u.program_id)],
        )
    )


@router.delete(
    "/keys/{key_id}",
    response_model=KeyOut,
    summary="Revoke an API key (at once, for good)",
    responses=problems(*WRITE, NotFound),
)
def revoke(key_id: PathId, call: Write) -> JSONResponse:
    return write(
        call,
        ADMIN,
        lambda u: KeyOut.model_validate(revoke_key(u.session, u.program_id, key_id, now=u.now)),
        status_code=200,
    )
