"""`jifen jobs`: the scheduled jobs of `jifen.jobs.runner.JOBS`, run by hand."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

import typer
from rich.progress import Progress, SpinnerColumn, TextColumn
from rich.table import Table

from jifen.cli.output import err, out
from jifen.cli.programs import program_named
from jifen.cli.state import state_of
from jifen.jobs.runner import JOBS
from jifen.programs.service import list_programs

app = typer.Typer(help="Scheduled jobs, run by hand.", no_args_is_help=True)


JobName = StrEnum("JobName", {name: name for name in JOBS})  # type: ignore[misc]


def plural(n: int, word: str, words: str | None = None) -> str:
    return f"{n:,} {word}" if n == 1 else f"{n:,} {words or word + 's'}"


@app.command("run")
def jobs_run(
    ctx: typer.Context,
    job: Annotated[
        JobName,
        typer.Argument(help="; ".join(f"{job.name}: {job.summary}" for job in JOBS.values())),
    ],
    program: Annotated[
        str | None, typer.Option("--program", help="Only this programme (default: all).")
    ] = None,
    batch_size: Annotated[int, typer.Option(min=1, max=100_000, help="Accounts per batch.")] = 2000,
) -> None:
    """Run a scheduled job now, in batches, until nothing is due."""
    from jifen.jobs.runner import run_job
    from jifen.ledger.jobs import StepResult

    state = state_of(ctx)
    database = state.database()
    program_id = None
    if program is not None:
        program_id = database.read(lambda s: program_named(s, program).id)
    codes = database.read(lambda s: {p.id: p.code for p in list_programs(s)})
    spec = JOBS[job.value]
    noun = spec.noun
    console = err()
    seen = StepResult()
    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        console=console,
        transient=True,
        disable=not console.is_terminal,
    ) as progress:
        task = progress.add_task(f"{job}: starting", total=None)

        def on_batch(result: StepResult) -> None:
            seen.add(result)
            progress.update(
                task,
                description=f"{job}: {plural(seen.items, noun)}, {seen.points:,} points, "
                f"{plural(seen.accounts, 'account')}",
            )

        report = run_job(
            database,
            job.value,
            now=state.clock.now(),
            program_id=program_id,
            batch_size=batch_size,
            on_batch=on_batch,
        )
    if len(report.by_program) > 1:
        table = Table("programme", f"{noun}s {spec.verb}", "points", "member accounts")
        for pid, done in report.by_program.items():
            table.add_row(
                codes.get(pid, str(pid)),
                f"{done.items:,}",
                f"{done.points:,}",
                f"{done.accounts:,}",
            )
        out().print(table)
    totals = report.totals
    out().print(
        f"{job}: {plural(totals.items, noun)} {spec.verb}, {totals.points:,} points, "
        f"{plural(totals.accounts, 'member account')}, "
        f"{plural(report.batches, 'batch', 'batches')}"
    )
