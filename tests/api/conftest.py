"""The `api` fixture: an app and a client per test, on both stores.

The API tests share one database per store (and xdist worker), made like `db`'s from
the migrated template: every test works in programmes of its own (`Api.tenant()`), and
programmes are exactly what the API keeps apart, so the tests cannot see each other's
data. Making a PostgreSQL database per test would cost a third of a second each.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from api.harness import Api, client_with
from conftest import make_database
from jifen.core.clock import FrozenClock
from jifen.db.uow import Database


@pytest.fixture(
    scope="session", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def api_db(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Database]:
    directory = _in_memory_dir() or tmp_path_factory.mktemp("api")
    database = make_database(request.param, request, directory)
    yield database
    database.dispose()
    if directory.parent == SHM:
        shutil.rmtree(directory, ignore_errors=True)


SHM = Path("/dev/shm")


def _in_memory_dir() -> Path | None:
    """A directory in RAM (tmpfs) for the SQLite file, where there is one: the tests
    commit a few thousand times, and on a busy disk that is most of their time."""
    if SHM.is_dir() and os.access(SHM, os.W_OK):
        return Path(tempfile.mkdtemp(prefix="jifen-api-", dir=SHM))
    return None


@pytest.fixture
def api(api_db: Database, clock: FrozenClock) -> Iterator[Api]:
    with client_with(api_db, clock) as client:
        yield Api(api_db, clock, client)
