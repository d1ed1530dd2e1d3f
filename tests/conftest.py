"""Shared fixtures: the two stores, a movable clock.

`db` runs a test once on SQLite and once on PostgreSQL. Each test gets a database of its
own, copied from a template that the Alembic migrations built once per session (a file
copy on SQLite, CREATE DATABASE … TEMPLATE on PostgreSQL), so tests may commit, run
concurrently and crash midway without touching each other.

PostgreSQL comes from `JIFEN_TEST_DATABASE_URL` when set, otherwise from a throw-away
cluster started with initdb/pg_ctl (tests/pgcluster.py). Without PostgreSQL binaries the
PostgreSQL half is skipped, except under CI=true, where that is a failure.
"""

from __future__ import annotations

import itertools
import os
import shlex
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest
from sqlalchemy.engine import make_url
from typer.testing import Result

from clikit import Run, invoke
from jifen.core.clock import FrozenClock
from jifen.db.migrate import upgrade
from jifen.db.uow import Database
from pgcluster import PgCluster, database_url_for, find_pg_bindir

IN_CI = os.environ.get("CI", "").lower() == "true"
TEMPLATE = "jifen_template"
START = datetime(2026, 1, 15, 2, 0, tzinfo=UTC)  # 10:00 in Shanghai
_counter = itertools.count()


class PgServer:
    """Creates databases on a PostgreSQL server, copying a migrated template."""

    def __init__(self, url: str, cluster: PgCluster | None = None) -> None:
        self.url = url
        self.cluster = cluster

    def _admin(self) -> psycopg.Connection[tuple[object, ...]]:
        plain = make_url(self.url).set(drivername="postgresql").render_as_string(False)
        return psycopg.connect(plain, autocommit=True)

    def create(self, name: str, template: str | None = None) -> str:
        with self._admin() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            suffix = f' TEMPLATE "{template}"' if template else ""
            conn.execute(f'CREATE DATABASE "{name}"{suffix}')
        return database_url_for(self.url, name)

    def drop(self, name: str) -> None:
        with self._admin() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _worker() -> str:
    return os.environ.get("PYTEST_XDIST_WORKER", "main")


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    given = os.environ.get("JIFEN_TEST_DATABASE_URL")
    if given:
        server = PgServer(given)
    else:
        if find_pg_bindir() is None:
            if IN_CI:
                pytest.fail("CI=true but no PostgreSQL binaries (initdb) were found")
            pytest.skip(
                "PostgreSQL tests need initdb/pg_ctl (apt-get install postgresql) "
                "or JIFEN_TEST_DATABASE_URL"
            )
        cluster = PgCluster().start()
        server = PgServer(cluster.url, cluster)
    template = f"{TEMPLATE}_{_worker()}"
    upgrade(server.create(template))
    server.template = template  # type: ignore[attr-defined]
    yield server
    if server.cluster is not None:
        server.cluster.stop()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "template.db"
    upgrade(f"sqlite:///{path}")
    return path


def make_database(store: str, request: pytest.FixtureRequest, tmp_path: Path) -> Database:
    if store == "sqlite":
        template: Path = request.getfixturevalue("sqlite_template")
        path = tmp_path / "jifen.db"
        shutil.copyfile(template, path)
        return Database(f"sqlite:///{path}")
    server: PgServer = request.getfixturevalue("pg_server")
    name = f"t_{_worker()}_{next(_counter)}"
    url = server.create(name, template=server.template)  # type: ignore[attr-defined]
    request.addfinalizer(lambda: server.drop(name))
    return Database(url, pool_size=20, max_overflow=20)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    database = make_database(request.param, request, tmp_path)
    yield database
    database.dispose()


@pytest.fixture
def pg_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    """PostgreSQL only (concurrency tests)."""
    database = make_database("postgres", request, tmp_path)
    yield database
    database.dispose()


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(START)


# -- the CLI tests (tests/clikit.py) ----------------------------------------------------------


@pytest.fixture
def url(tmp_path: Path) -> str:
    """A SQLite file of the test's own, for the CLI."""
    return f"sqlite:///{tmp_path / 'cli.db'}"


@pytest.fixture
def run(url: str) -> Run:
    """Run the CLI against `url`, migrated first."""

    def call(*args: str, lang: str = "en") -> Result:
        return invoke(url, shlex.split(args[0]) if len(args) == 1 else list(args), lang)

    assert call("db", "upgrade").exit_code == 0
    return call


@pytest.fixture
def database(url: str, run: Run) -> Iterator[Database]:
    """The CLI's database, to look at what a command wrote."""
    found = Database(url)
    yield found
    found.dispose()
