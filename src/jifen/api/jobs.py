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
from jifen.jobs.runner import JOBS, run_job

router = APIRouter(prefix="/v1", tags=["jobs"])


JobName = StrEnum(  # type: ignore[misc]
    "JobName", {name: name for name in JOBS}
)
"""The jobs of `jifen.jobs.runner.JOBS`."""

JOBS_HELP = "; ".join(f"`{job.name}`: {job.summary}" for job in JOBS.values())


@router.post(
    "/jobs/{name}",
    response_model=JobOut,
    summary="Run a scheduled job now for this programme (admin)",
    description=f"{JOBS_HELP}. Each does only what is due at the service's current time "
    "and is safe to repeat (accounts: member accounts touched, items: what the job counts).",
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
