"""`jifen db`: the database schema."""

from __future__ import annotations

import typer

from jifen.cli.output import out
from jifen.cli.state import schema_revision, state_of
from jifen.db.migrate import upgrade

app = typer.Typer(help="The database schema.", no_args_is_help=True)


@app.command("upgrade")
def db_upgrade(ctx: typer.Context) -> None:
    """Create or migrate the schema to the latest revision (Alembic)."""
    state = state_of(ctx)
    database = state.database(create=True)
    with state.reaching():
        upgrade(database.url)
    revision = schema_revision(database)
    out().print(f"database {state.shown_url} is at revision {revision} (head)")
