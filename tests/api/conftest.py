"""The `api` fixture: an app and a client per test, on both stores.

The API tests share one database per store (and xdist worker), made like `db`'s from
the migrated template: every test works in programmes of its own (`Api.tenant()`), and
programmes are exactly what the API keeps apart, so the tests cannot see each other's
data. Making a PostgreSQL database per test would cost a third of a second each.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from api.harness import ROOT_TOKEN, Api
from conftest import make_database
from jifen.api.app import create_app
from jifen.core.clock import FrozenClock
from jifen.core.settings import Settings
from jifen.db.uow import Database


@pytest.fixture(
    scope="session", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def api_db(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Database]:
    database = make_database(request.param, request, tmp_path_factory.mktemp("api"))
    yield database
    database.dispose()


@pytest.fixture
def api(api_db: Database, clock: FrozenClock) -> Iterator[Api]:
    app = create_app(api_db, clock, settings=Settings(root_token=ROOT_TOKEN))
    with TestClient(app, raise_server_exceptions=False) as client:
        yield Api(api_db, clock, client)
