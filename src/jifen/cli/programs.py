"""`jifen programs`: programmes (tenants), their programme files (apply, export), and the
`--program` option other commands share."""

from __future__ import annotations

import sys
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from rich.table import Table
from sqlalchemy.orm import Session

from jifen.cli.errors import Failure, validation_message
from jifen.cli.messages import say
from jifen.cli.output import err, out
from jifen.cli.state import actor, state_of
from jifen.core.errors import NotFound
from jifen.ledger.expiry import EXPIRY_POLICY
from jifen.programs import examples
from jifen.programs.apply import apply, plan
from jifen.programs.config import export, load_program_file
from jifen.programs.errors import ProgramFileInvalid
from jifen.programs.models import Program
from jifen.programs.schemas import ProgramCreate, describe_program
from jifen.programs.service import create_program, get_program_by_code, list_programs

app = typer.Typer(help="Programmes (tenants).", no_args_is_help=True)

ProgramOption = Annotated[str, typer.Option("--program", help="The programme's code.")]


def program_named(session: Session, code: str) -> Program:
    """The programme a `--program` option names, or a one-line refusal."""
    try:
        return get_program_by_code(session, code)
    except NotFound as exc:
        raise Failure(say("unknown-program", code=code)) from exc


def parse_expiry(spec: str, ctx: typer.Context) -> dict[str, Any]:
    """`never`, `after_months:N[:none|month|quarter|year]`, `fixed_date:MM-DD[:YEARS]`,
    `inactivity:N`, `anniversary[:YEARS]` → an expiry policy (validated)."""
    kind, *parts = spec.strip().split(":")
    policy: dict[str, Any]
    try:
        if kind == "never" and not parts:
            policy = {"kind": "never"}
        elif kind == "after_months" and 1 <= len(parts) <= 2:
            policy = {"kind": kind, "months": int(parts[0])}
            if len(parts) == 2:
                policy["round_to"] = parts[1]
        elif kind == "fixed_date" and 1 <= len(parts) <= 2:
            month, day = parts[0].split("-")
            policy = {"kind": kind, "month": int(month), "day": int(day)}
            if len(parts) == 2:
                policy["years_after"] = int(parts[1])
        elif kind == "inactivity" and len(parts) == 1:
            policy = {"kind": kind, "months": int(parts[0])}
        elif kind == "anniversary" and len(parts) <= 1:
            policy = {"kind": kind} | ({"years": int(parts[0])} if parts else {})
        else:
            raise ValueError("unknown form")
    except ValueError:
        raise typer.BadParameter(
            f"{spec!r} is not one of never, after_months:N[:month|quarter|year], "
            "fixed_date:MM-DD[:YEARS], inactivity:N, anniversary[:YEARS]",
            ctx=ctx,
            param_hint="'--expiry'",
        ) from None
    try:
        EXPIRY_POLICY.validate_python(policy)
    except ValidationError as exc:
        raise typer.BadParameter(
            f"{spec!r}: {validation_message(exc)}", ctx=ctx, param_hint="'--expiry'"
        ) from None
    return policy


def parse_point_value(spec: str, ctx: typer.Context) -> tuple[int, Decimal]:
    """`100=10`: 100 points are worth 10 of the currency."""
    try:
        points, amount = spec.split("=")
        return int(points), Decimal(amount.strip())
    except (ValueError, InvalidOperation):
        raise typer.BadParameter(
            f"{spec!r} is not POINTS=AMOUNT, e.g. 100=10 (100 points are worth 10)",
            ctx=ctx,
            param_hint="'--point-value'",
        ) from None


@app.command("create")
def programs_create(
    ctx: typer.Context,
    code: Annotated[str, typer.Option(help="Short unique name: a-z, 0-9, '-'.")],
    name: Annotated[str, typer.Option(help="Display name.")],
    currency: Annotated[str, typer.Option(help="ISO 4217 code.")] = "CNY",
    timezone: Annotated[str, typer.Option(help="IANA time zone.")] = "Asia/Shanghai",
    points_name: Annotated[str, typer.Option(help="What the points are called.")] = "积分",
    point_value: Annotated[
        str, typer.Option(help="POINTS=AMOUNT: what points are worth in money.")
    ] = "100=10",
    pending_days: Annotated[int, typer.Option(help="Return window: days points stay pending.")] = 0,
    expiry: Annotated[
        str,
        typer.Option(
            help="never | after_months:N[:month|quarter|year] | fixed_date:MM-DD[:YEARS] | "
            "inactivity:N | anniversary[:YEARS]"
        ),
    ] = "never",
    allow_transfers: Annotated[
        bool, typer.Option("--allow-transfers", help="Members may gift points.")
    ] = False,
    allow_negative_balance: Annotated[
        bool,
        typer.Option("--allow-negative-balance", help="Reversals may leave a member in debt."),
    ] = False,
) -> None:
    """Create a programme."""
    value_points, value_amount = parse_point_value(point_value, ctx)
    policy = parse_expiry(expiry, ctx)
    data = ProgramCreate.model_validate(
        {
            "code": code,
            "name": name,
            "currency": currency,
            "timezone": timezone,
            "points_name": points_name,
            "point_value_points": value_points,
            "point_value_amount": value_amount,
            "pending_days": pending_days,
            "expiry_policy": policy,
            "allow_transfers": allow_transfers,
            "allow_negative_balance": allow_negative_balance,
        }
    )
    state = state_of(ctx)
    created = state.database().write(
        lambda s: describe_program(create_program(s, data, now=state.clock.now()))
    )
    out().print(
        f"created programme {created.code} (id {created.id}) “{created.name}”: "
        f"{created.point_value_description}; {created.expiry_description}"
    )


@app.command("list")
def programs_list(ctx: typer.Context) -> None:
    """List the programmes on this installation."""
    rows = state_of(ctx).database().read(lambda s: [describe_program(p) for p in list_programs(s)])
    if not rows:
        out().print("no programmes yet: create one with `jifen programs create`")
        return
    table = Table("id", "code", "name", "point value", "pending days", "expiry", "transfers")
    for p in rows:
        table.add_row(
            str(p.id),
            p.code,
            p.name,
            p.point_value_description,
            str(p.pending_days),
            p.expiry_description,
            "yes" if p.allow_transfers else "no",
        )
    out().print(table)


@app.command("apply")
def programs_apply(
    ctx: typer.Context,
    file: Annotated[
        Path, typer.Argument(help="The programme file (YAML or JSON); - reads standard input.")
    ],
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show what would change; change nothing.")
    ] = False,
) -> None:
    """Make a programme what its file says (creating it if its code is new): prints the
    changes, then applies them all at once. A file with mistakes changes nothing: each
    mistake is one line, with its line number and field."""
    source = "<stdin>" if str(file) == "-" else str(file)
    state = state_of(ctx)
    try:
        loaded = load_program_file(_read(file), source)
        database = state.database()
        if dry_run:
            planned, applied = database.read(lambda s: plan(s, loaded)), None
        else:
            applied = database.write(
                lambda s: apply(s, loaded, now=state.clock.now(), actor=actor())
            )
            planned = applied.plan
    except ProgramFileInvalid as exc:
        for problem in exc.problems:
            err().print(f"error: {problem}")
        raise typer.Exit(1) from None
    console = out()
    for line in planned.describe():
        console.print(line)
    if planned.empty:
        return
    if applied is None:
        console.print("dry run: nothing was changed")
    else:
        console.print(
            f"applied: programme {planned.code} (id {applied.program_id}), "
            f"rules version {applied.rules_version}"
        )


@app.command("export")
def programs_export(
    ctx: typer.Context,
    code: Annotated[str, typer.Argument(help="The programme's code.")],
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Write to this file instead of standard output."),
    ] = None,
) -> None:
    """Write a programme as a programme file (applying it again changes nothing)."""
    text = state_of(ctx).database().read(lambda s: export(s, program_named(s, code)))
    if output is None:
        sys.stdout.write(text)
        return
    output.write_text(text, encoding="utf-8")
    out().print(f"exported programme {code} to {output}")


@app.command("example")
def programs_example(
    name: Annotated[
        str | None,
        typer.Argument(help="An example's name; leave out to list them."),
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Write to this file instead of standard output."),
    ] = None,
) -> None:
    """The example programmes shipped with jifen: list them, or print one as a programme
    file to start your own from (`jifen programs example retail-chain -o mine.yaml`)."""
    if name is None:
        for known in examples.names():
            out().print(known)
        return
    try:
        text = examples.text(name)
    except KeyError:
        raise Failure(
            f"no example programme {name!r} (examples: {', '.join(examples.names())})"
        ) from None
    if output is None:
        sys.stdout.write(text)
        return
    output.write_text(text, encoding="utf-8")
    out().print(f"wrote example {name} to {output}")


def _read(file: Path) -> str:
    try:
        raw = sys.stdin.buffer.read() if str(file) == "-" else file.read_bytes()
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise Failure(f"{file}: not UTF-8 text (byte {exc.start})") from None
