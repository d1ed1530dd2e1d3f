"""Scheduled jobs (the ledger's, birthday points) on demand, for the caller's programme
(admin keys only).

The jobs run in batches of their own transactions, so idempotency here is by nature:
every job only does what is due and not yet done, and a retry with the same
`Idempotency-Key` replays the first run's counts.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from jifen.access.service import Principal
from jifen.api.deps import ADMIN, Write
from jifen.api.idempotency import run_then_record
from jifen.api.problems import problems
from jifen.api.schemas import JobOut
from jifen.core.errors import (
    Forbidden,
    IdempotencyKeyMissing,
    IdempotencyKeyReused,
    InvalidInput,
    Unauthorized,
)
from jifen.jobs.ledger import run_job

router = APIRouter(prefix="/v1", tags=["jobs"])


class JobName(StrEnum):
    EXPIRE = "expire"
    """expire lots past their date"""
    RELEASE = "release"
    """make pending points available when their return window has closed"""
    LAPSE = "lapse"
    """return the points of holds past their deadline"""
    BIRTHDAY = "birthday"
    """give birthday points to members whose birthday (or birthday month) it is, once a year"""


@router.post(
    "/jobs/{name}",
    response_model=JobOut,
    summary="Run a scheduled job now for this programme (admin)",
    description="`expire`: lots past their expiry date; `release`: pending points whose "
    "return window has closed; `lapse`: holds past their deadline; `birthday`: the birthday "
    "rule's points to members whose birthday it is (accounts: members awarded, items: "
    "birthday events). Each does only what is due at the service's current time and is "
    "safe to repeat.",
    responses=problems(
        Unauthorized, Forbidden, IdempotencyKeyMissing, IdempotencyKeyReused, InvalidInput
    ),
)
def run(name: JobName, call: Write) -> JSONResponse:
    def job(principal: Principal, now: datetime) -> JobOut:
        report = run_job(call.db, name.value, now=now, program_id=principal.program_id)
        totals = report.totals
        return JobOut(
            job=name.value,
            batches=report.batches,
            accounts=totals.accounts,
            items=totals.items,
            points=totals.points,
        )

    return run_then_record(call, ADMIN, job)
