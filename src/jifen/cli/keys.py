"""`jifen keys`: API keys for a programme."""

from __future__ import annotations

from typing import Annotated

import typer
from sqlalchemy.orm import Session

from jifen.access.service import Scope, create_key
from jifen.cli.output import err, out
from jifen.cli.programs import ProgramOption, program_named
from jifen.cli.state import actor, state_of

app = typer.Typer(help="API keys.", no_args_is_help=True)


@app.command("create")
def keys_create(
    ctx: typer.Context,
    program: ProgramOption,
    name: Annotated[str, typer.Option(help="What the key is for, e.g. 'store 12 POS'.")],
    scope: Annotated[Scope, typer.Option(help="What the key may do.")],
) -> None:
    """Create an API key; its secret is shown once and only its hash is stored."""
    state = state_of(ctx)

    def create(session: Session) -> tuple[int, str]:
        found = program_named(session, program)
        key, secret = create_key(
            session, found.id, name=name, scope=scope, now=state.clock.now(), created_by=actor()
        )
        return key.id, secret

    key_id, secret = state.database().write(create)
    out().print(f"created API key {key_id} “{name.strip()}” (scope {scope}) for {program}:")
    out().print(secret)
    err().print("warning: this key will not be shown again; store it now (only a hash is kept).")
