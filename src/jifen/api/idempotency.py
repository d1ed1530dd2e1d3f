"""Writes over HTTP: one transaction holding the key check, the idempotency claim, the
effect and the stored response.

`write()` runs, inside one `Database.write` unit of work (retried as a whole on deadlocks
and busy stores):

1. authenticate the key and check its scope;
2. refuse a missing `Idempotency-Key` (400 `idempotency-key-missing`);
3. claim (programme, key) with a hash of method, path, JSON body and API key id
   (`jifen.db.idempotency.claim`). A committed claim with the same hash replays the first
   response unchanged, status and body, with `Idempotent-Replayed: true`; a different hash
   is refused (422 `idempotency-key-reused`). A concurrent request with the same key waits
   on the unique index until the first commits, then replays;
4. run the service, render the response, store it with the claim, commit.

A refusal from the service (any `JifenError`) rolls back the whole unit, claim included:
nothing is written and the key stays free, so a retry with the same key runs again (and
succeeds if, say, the member has meanwhile earned enough). Only successes are replayed.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.orm import Session

from jifen.access.service import Principal, Scope
from jifen.api.deps import Unit, WriteCall, authorise
from jifen.core.errors import IdempotencyKeyMissing, IdempotencyKeyReused
from jifen.db.idempotency import IdempotencyRecord, Replay, claim, request_hash, store

REPLAYED = "Idempotent-Replayed"


def fingerprint(call: WriteCall, key_id: int) -> str:
    return request_hash(call.method, call.path, call.body, key_id)


def write(
    call: WriteCall,
    allowed: frozenset[Scope],
    op: Callable[[Unit], BaseModel | tuple[BaseModel, int]],
    *,
    status_code: int = 201,
    redact: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
) -> JSONResponse:
    """Run `op` once per idempotency key; `redact` trims what is stored for replays (a
    new API key's plaintext is shown once and never stored). `op` may return its own
    status with the model (200 where it found the thing already made, say)."""

    def unit(session: Session) -> tuple[int, Any, bool]:
        now = call.clock.now()
        principal = authorise(session, call.token, allowed)
        if not call.idempotency_key:
            raise IdempotencyKeyMissing()
        claimed = claim(
            session,
            program_id=principal.program_id,
            key=call.idempotency_key,
            fingerprint=fingerprint(call, principal.key_id),
            now=now,
        )
        if isinstance(claimed, Replay):
            return claimed.status_code, claimed.response, True
        result = op(Unit(session, principal, now))
        model, status = result if isinstance(result, tuple) else (result, status_code)
        body = model.model_dump(mode="json")
        stored = redact(body) if redact is not None else body
        store(session, claimed, status_code=status, response=stored)
        return status, body, False

    status, body, replayed = call.db.write(unit)
    headers = {REPLAYED: "true"} if replayed else None
    return JSONResponse(body, status_code=status, headers=headers)


def run_then_record(
    call: WriteCall,
    allowed: frozenset[Scope],
    run: Callable[[Principal, datetime], BaseModel],
    *,
    status_code: int = 200,
) -> JSONResponse:
    """For work that runs in many transactions of its own (a job over batches): replay or
    refuse by the key first, then run, then record the key with the result.

    Such work must be idempotent by itself, because two first calls with one key racing
    each other both run it; the second then gets the first one's recorded result.
    """

    def check(session: Session) -> tuple[Principal, Replay | None]:
        principal = authorise(session, call.token, allowed)
        if not call.idempotency_key:
            raise IdempotencyKeyMissing()
        found = session.execute(
            select(IdempotencyRecord).where(
                IdempotencyRecord.program_id == principal.program_id,
                IdempotencyRecord.key == call.idempotency_key,
            )
        ).scalar_one_or_none()
        if found is None:
            return principal, None
        if found.request_hash != fingerprint(call, principal.key_id) or found.status_code is None:
            raise IdempotencyKeyReused(key=call.idempotency_key)
        return principal, Replay(status_code=found.status_code, response=found.response)

    principal, replay = call.db.read(check)
    if replay is None:
        now = call.clock.now()
        body = run(principal, now).model_dump(mode="json")

        def record(session: Session) -> Replay | None:
            claimed = claim(
                session,
                program_id=principal.program_id,
                key=str(call.idempotency_key),
                fingerprint=fingerprint(call, principal.key_id),
                now=now,
            )
            if isinstance(claimed, Replay):
                return claimed
            store(session, claimed, status_code=status_code, response=body)
            return None

        replay = call.db.write(record)
        if replay is None:
            return JSONResponse(body, status_code=status_code)
    return JSONResponse(replay.response, status_code=replay.status_code, headers={REPLAYED: "true"})
