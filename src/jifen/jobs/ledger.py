"""The scheduled jobs by name: the ledger's (lapse holds, release pending points, expire
lots) and earning's birthday points."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy.orm import Session

from jifen.db.uow import Database
from jifen.earning.jobs import birthday_points
from jifen.ledger.jobs import Step, StepResult, run_batch
from jifen.programs.service import book_for, get_program, list_programs

JOBS: dict[str, Step] = {"lapse": Step.LAPSE, "release": Step.RELEASE, "expire": Step.EXPIRE}
BIRTHDAY = "birthday"


@dataclass
class JobReport:
    job: str
    batches: int = 0
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
    """Run `job` ('lapse', 'release', 'expire' or 'birthday') until nothing is due at `now`."""
    step = None if job == BIRTHDAY else JOBS[job]
    if program_id is None:
        program_ids = db.read(lambda s: [p.id for p in list_programs(s)])
    else:
        db.read(lambda s: get_program(s, program_id))
        program_ids = [program_id]
    report = JobReport(job=job)
    for pid in program_ids:
        done = StepResult()

        def batch(session: Session, pid: int = pid) -> StepResult:
            if step is None:
                return birthday_points(session, get_program(session, pid), now, limit=batch_size)
            return run_batch(
                session, book_for(session, get_program(session, pid)), step, now, batch_size
            )

        while True:
            result = db.write(batch)
            if result.accounts == 0 and result.items == 0:
                break
            report.batches += 1
            done.add(result)
            if on_batch is not None:
                on_batch(result)
        report.by_program[pid] = done
        report.totals.add(done)
    return report
