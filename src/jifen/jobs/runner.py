"""The scheduled jobs by name, and running one until nothing is due.

Each job is a function that does one batch for one programme in the caller's
transaction and reports what it did (`StepResult`); `run_job` commits batch after batch
until a batch finds nothing. A job must be idempotent: it only does what is due and not
yet done, so it can run any number of times, crash midway, or run on two workers at once.
A domain adds its job with one `Job` entry in `JOBS`; the API (`POST /v1/jobs/{name}`)
and the CLI (`jifen jobs run NAME`) list whatever is here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy.orm import Session

from jifen.db.uow import Database
from jifen.earning.jobs import birthday_points
from jifen.ledger.jobs import Step, StepResult, run_batch
from jifen.programs.models import Program
from jifen.programs.service import book_for, get_program, list_programs
from jifen.rewards.coupons import expire_due
from jifen.tiers import benefits
from jifen.tiers import jobs as tiers

Batch = Callable[[Session, Program, datetime, int], StepResult]
"""(session, programme, now, batch size) → what one batch did."""


def _ledger(step: Step) -> Batch:
    def batch(session: Session, program: Program, now: datetime, limit: int) -> StepResult:
        return run_batch(session, book_for(session, program), step, now, limit)

    return batch


def _birthday(session: Session, program: Program, now: datetime, limit: int) -> StepResult:
    done = birthday_points(session, program, now, limit=limit)
    done.add(benefits.birthday_gifts(session, program, now, limit=limit))  # the tier's gift too
    return done


def _tiers(session: Session, program: Program, now: datetime, limit: int) -> StepResult:
    return tiers.evaluate(session, program, now, limit=limit)


def _tier_benefits(session: Session, program: Program, now: datetime, limit: int) -> StepResult:
    return benefits.periodic_benefits(session, program, now, limit=limit)


def _coupon_expiry(session: Session, program: Program, now: datetime, limit: int) -> StepResult:
    return expire_due(session, program.id, now, limit=limit)


@dataclass(frozen=True)
class Job:
    name: str
    summary: str
    """What it does, for the API's and the CLI's help."""
    noun: str
    """What `items` counts (singular): lot, hold, birthday award…"""
    verb: str
    """What happened to them: expired, released…"""
    batch: Batch


JOBS: dict[str, Job] = {
    job.name: job
    for job in (
        Job(
            "expire",
            "expire lots past their expiry date",
            "lot",
            "expired",
            _ledger(Step.EXPIRE),
        ),
        Job(
            "release",
            "make pending points available when their return window has closed",
            "lot",
            "released",
            _ledger(Step.RELEASE),
        ),
        Job(
            "lapse",
            "return the points of holds past their deadline",
            "hold",
            "lapsed",
            _ledger(Step.LAPSE),
        ),
        Job(
            "birthday",
            "give birthday points to members whose birthday (or birthday month) it is, once a year",
            "birthday award",
            "given",
            _birthday,
        ),
        Job(
            "tiers",
            "evaluate members' tiers: upgrades the record supports, grace periods, downgrades "
            "after them, grants that ended, near-upgrade reminders",
            "tier change",
            "recorded",
            _tiers,
        ),
        Job(
            "tier-benefits",
            "give each tier's periodic rewards to its members, once per month, quarter or year",
            "benefit",
            "given",
            _tier_benefits,
        ),
        Job(
            "coupon-expiry",
            "mark issued coupons past their expiry expired (they are refused from that "
            "instant either way)",
            "coupon",
            "expired",
            _coupon_expiry,
        ),
    )
}


@dataclass
class JobReport:
    job: str
    batches: int = 0
    """The batches that did something (a batch with nothing to do is not counted)."""
    totals: StepResult = field(default_factory=StepResult)
    by_program: dict[int, StepResult] = field(default_factory=dict)


def run_job(
    db: Database,
    job: str,
    *,
    now: datetime,
    program_id: int | None = None,
    batch_size: int = 2000,
    on_batch: Callable[[StepResult], None] | None = None,
) -> JobReport:
    """Run the job named `job` (a key of `JOBS`) until nothing is due at `now`."""
    batch_of = JOBS[job].batch
    if program_id is None:
        program_ids = db.read(lambda s: [p.id for p in list_programs(s)])
    else:
        db.read(lambda s: get_program(s, program_id))
        program_ids = [program_id]
    report = JobReport(job=job)
    for pid in program_ids:
        done = StepResult()

        def batch(session: Session, pid: int = pid) -> StepResult:
            return batch_of(session, get_program(session, pid), now, batch_size)

        while True:
            result = db.write(batch)
            if result.last():
                break
            if not (result.accounts or result.items):
                continue  # nothing to do in this batch, more to come (`StepResult.more`)
            report.batches += 1
            done.add(result)
            if on_batch is not None:
                on_batch(result)
        report.by_program[pid] = done
        report.totals.add(done)
    return report
