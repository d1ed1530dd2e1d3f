"""What one run of `jifen` works with: its settings, its database and its clock.

The database is opened on first use and checked first: a missing file, a schema that is
not there, behind or ahead, or a URL that does not parse is refused in one line before
any command touches it.
"""

from __future__ import annotations

import getpass
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import typer
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, OperationalError

from jifen.cli.errors import Failure, db_reason, one_line
from jifen.cli.messages import say
from jifen.core.clock import Clock, SystemClock
from jifen.core.settings import Settings
from jifen.db.migrate import alembic_config
from jifen.db.uow import Database


@dataclass
class State:
    database_url: str | None
    clock: Clock = field(default_factory=SystemClock)
    _settings: Settings | None = None
    _db: Database | None = None

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            given = self.database_url
            self._settings = Settings(database_url=given) if given else Settings()
        return self._settings

    def use_demo_store(self, data_dir: Path) -> None:
        """The demo is always SQLite under its data directory, whatever --database-url or
        JIFEN_DATABASE_URL say."""
        self.database_url = f"sqlite:///{(data_dir / 'jifen.db').resolve()}"
        self._settings = Settings(data_dir=data_dir, database_url=self.database_url)
        self.close()

    @property
    def url(self) -> str:
        return self.settings.resolved_database_url()

    @property
    def shown_url(self) -> str:
        """The URL with its password hidden, fit to print."""
        try:
            return make_url(self.url).render_as_string(hide_password=True)
        except Exception:  # the URL does not parse: show it as given
            return self.url

    def database(self, *, create: bool = False) -> Database:
        """The database; unless `create`, refuse one that is missing or not migrated."""
        if self._db is not None:
            return self._db
        url = self.url
        try:
            parsed = make_url(url)
            sqlite_path = sqlite_file(url) if parsed.get_backend_name() == "sqlite" else None
            if sqlite_path is not None and not create and not sqlite_path.exists():
                raise Failure(say("no-database", url=self.shown_url))
            database = Database(
                url,
                pool_size=self.settings.db_pool_size,
                max_overflow=self.settings.db_max_overflow,
            )
        except (
            ArgumentError,
            NoSuchModuleError,
            ValueError,
            ImportError,  # a dialect whose driver is not installed
        ) as exc:
            raise Failure(say("bad-url", url=self.shown_url, reason=one_line(str(exc)))) from exc
        if not create:
            self._check_schema(database)
        self._db = database
        return database

    def _check_schema(self, database: Database) -> None:
        from alembic.script import ScriptDirectory

        with self.reaching():
            current = schema_revision(database)
        script = ScriptDirectory.from_config(alembic_config(database.url))
        head = script.get_current_head()
        if current == head:
            return
        if current is None:
            raise Failure(say("no-schema", url=self.shown_url))
        known = {revision.revision for revision in script.walk_revisions()}
        if current in known:
            raise Failure(say("behind", url=self.shown_url, current=current, head=head))
        raise Failure(say("ahead", url=self.shown_url, current=current))

    @contextmanager
    def reaching(self) -> Iterator[None]:
        """First contact with the database: a failure here means it cannot be reached."""
        try:
            yield
        except OperationalError as exc:
            raise Failure(say("unreachable", url=self.shown_url, reason=db_reason(exc))) from exc

    def close(self) -> None:
        if self._db is not None:
            self._db.dispose()
            self._db = None


def sqlite_file(url: str) -> Path | None:
    """The file behind a SQLite URL; None for an in-memory or `file:` URI database."""
    database = make_url(url).database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return Path(database)


def schema_revision(database: Database) -> str | None:
    """The Alembic revision the database is at; None when it has no schema yet."""
    from alembic.runtime.migration import MigrationContext

    return database.read(
        lambda s: MigrationContext.configure(s.connection()).get_current_revision()
    )


def actor() -> str:
    """Who is at the keyboard (`cli:<login name>`), recorded as the actor of a change."""
    try:
        user = getpass.getuser()
    except Exception:  # no login name (a container without passwd entry)
        user = "unknown"
    return f"cli:{user}"


def state_of(ctx: typer.Context) -> State:
    state = ctx.find_root().obj
    assert isinstance(state, State)
    return state
