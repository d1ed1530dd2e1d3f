"""The imports' fixtures: twin databases, one to import into and one to post through the
API, to compare."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import make_database
from jifen.db.uow import Database


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def twin(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Database, Database]]:
    other = tmp_path / "other"
    other.mkdir()
    a = make_database(request.param, request, tmp_path)
    b = make_database(request.param, request, other)
    yield a, b
    a.dispose()
    b.dispose()
