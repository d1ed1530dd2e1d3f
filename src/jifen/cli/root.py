"""The `jifen` command itself: its `--database-url`, its command groups, and the one place
where a failure becomes a line on stderr and an exit status."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from jifen.cli import (
    coupons,
    db,
    generate,
    imports,
    jobs,
    keys,
    ledger,
    members,
    programs,
    rewards,
    serve,
    tiers,
)
from jifen.cli.errors import one_line, translate
from jifen.cli.state import State


class JifenGroup(TyperGroup):
    """The root command: turns every failure into one line on stderr."""

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except (typer.TyperException, typer.Exit, typer.Abort):
            raise
        except Exception as exc:
            if os.environ.get("JIFEN_DEBUG"):
                raise
            state = ctx.obj if isinstance(ctx.obj, State) else None
            raise translate(exc, state) from exc

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        windows_expand_args: bool = True,
        **extra: Any,
    ) -> Any:
        try:
            result = super().main(
                args,
                prog_name,
                complete_var,
                standalone_mode=False,
                windows_expand_args=windows_expand_args,
                **extra,
            )
        except typer.TyperException as exc:
            code = exc.exit_code
            message = one_line(exc.format_message())
            context = getattr(exc, "ctx", None)
            if message and code == 2 and context is not None:
                message = f"{message.rstrip('.')}. Try '{context.command_path} --help'."
            if message:  # empty: a group called without a command has printed its help
                typer.echo(f"error: {message}", err=True)
        except typer.Abort:
            typer.echo("error: aborted", err=True)
            code = 1
        else:
            code = result if isinstance(result, int) else 0
            if not standalone_mode:
                return result
        if not standalone_mode:
            return code
        sys.exit(code)


app = typer.Typer(
    cls=JifenGroup,
    name="jifen",
    help="jifen (积分): a loyalty-points platform. Database from --database-url, "
    "JIFEN_DATABASE_URL, or SQLite under JIFEN_DATA_DIR (default ./.jifen).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.command()(serve.serve)
app.command()(serve.demo)
app.command("gen")(generate.gen)
app.add_typer(db.app, name="db")
app.add_typer(programs.app, name="programs")
app.add_typer(programs.app, name="program", hidden=True)  # `jifen program apply` reads well too
app.add_typer(keys.app, name="keys")
app.add_typer(members.app, name="members")
app.add_typer(ledger.app, name="ledger")
app.add_typer(jobs.app, name="jobs")
app.add_typer(rewards.app, name="rewards")
app.add_typer(rewards.redemptions_app, name="redemptions")
app.add_typer(tiers.app, name="tiers")
app.add_typer(coupons.app, name="coupons")
app.add_typer(coupons.checkout_app, name="checkout")
app.add_typer(imports.app, name="import")


@app.callback()
def root(
    ctx: typer.Context,
    database_url: Annotated[
        str | None,
        typer.Option(
            "--database-url",
            help="SQLAlchemy URL, e.g. postgresql://user@host/jifen or sqlite:///path.db "
            "(default: JIFEN_DATABASE_URL, else SQLite in JIFEN_DATA_DIR).",
            show_default=False,
        ),
    ] = None,
) -> None:
    state = State(database_url=database_url)
    ctx.obj = state
    ctx.call_on_close(state.close)


def main() -> None:
    app()
