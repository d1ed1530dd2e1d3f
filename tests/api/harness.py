"""An HTTP harness: the app on the test's own database and frozen clock, a programme with
keys of each scope, and what the ledger says read through the services, not the API."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from factories import make_key, make_member, make_program
from jifen.access.service import Scope
from jifen.api.app import create_app
from jifen.core.clock import FrozenClock
from jifen.core.settings import Settings
from jifen.db.models import Base
from jifen.db.uow import Database
from jifen.ledger.posting import Book
from jifen.ledger.queries import current_balance
from jifen.ledger.schemas import Balance
from jifen.programs.models import Program

ROOT_TOKEN = "root-secret-token"


@contextmanager
def client_with(db: Database, clock: FrozenClock, **settings: Any) -> Iterator[TestClient]:
    """A client of the app on `db` and `clock` with these settings (and the root token)."""
    app = create_app(db, clock, settings=Settings(root_token=ROOT_TOKEN, **settings))
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


@dataclass
class Tenant:
    """A programme with an admin key, and the client to call the API with."""

    api: Api
    book: Book
    admin: str
    keys: dict[Scope, str] = field(default_factory=dict)

    def key(self, scope: Scope) -> str:
        if scope == Scope.ADMIN:
            return self.admin
        if scope not in self.keys:
            self.keys[scope] = make_key(self.api.db, self.book, self.api.clock, scope)
        return self.keys[scope]

    def all_keys(self) -> dict[Scope, str]:
        """A key of every scope (made now, so that a later block writes no key rows)."""
        return {scope: self.key(scope) for scope in Scope}

    def member(self, **fields: Any) -> int:
        return make_member(self.api.db, self.book, self.api.clock, **fields)

    def _headers(
        self, scope: Scope, key: str | None, idem: str | bool | None, lang: str | None
    ) -> dict[str, str]:
        headers = {"Authorization": f"Bearer {key or self.key(scope)}"}
        if idem is True:
            headers["Idempotency-Key"] = str(uuid.uuid4())
        elif isinstance(idem, str):
            headers["Idempotency-Key"] = idem
        if lang:
            headers["Accept-Language"] = lang
        return headers

    def get(
        self,
        path: str,
        *,
        scope: Scope = Scope.ADMIN,
        key: str | None = None,
        lang: str | None = None,
        **params: Any,
    ) -> httpx.Response:
        response: httpx.Response = self.api.client.get(
            path, params=params, headers=self._headers(scope, key, False, lang)
        )
        return response

    def send(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        scope: Scope = Scope.ADMIN,
        key: str | None = None,
        idem: str | bool | None = True,
        lang: str | None = None,
    ) -> httpx.Response:
        response: httpx.Response = self.api.client.request(
            method, path, json=body, headers=self._headers(scope, key, idem, lang)
        )
        return response

    def post(self, path: str, body: Any = None, **kw: Any) -> httpx.Response:
        return self.send("POST", path, body, **kw)

    # what the database says, read through the services, not the API
    def available(self, member_id: int) -> int:
        return self.balance(member_id).available

    def balance(self, member_id: int) -> Balance:
        return current_balance(self.api.db, self.book, member_id, self.api.clock.now())

    def earn(self, member_id: int, points: int, **body: Any) -> httpx.Response:
        response = self.post(f"/v1/members/{member_id}/earn", {"points": points, **body})
        assert response.status_code == 201, response.text
        return response

    def history_len(self, member_id: int) -> int:
        response = self.get(f"/v1/members/{member_id}/history", limit=500)
        assert response.status_code == 200, response.text
        return len(response.json()["items"])

    def spend(self, member_id: int, points: int, **body: Any) -> httpx.Response:
        response = self.post(f"/v1/members/{member_id}/spend", {"points": points, **body})
        assert response.status_code == 201, response.text
        return response

    def hold(self, member_id: int, points: int, **body: Any) -> dict[str, Any]:
        response = self.post("/v1/holds", {"member_id": member_id, "points": points, **body})
        assert response.status_code == 201, response.text
        hold: dict[str, Any] = response.json()
        return hold

    def set_status(self, member_id: int, status: str, reason: str = "test") -> None:
        response = self.post(
            f"/v1/members/{member_id}/status", {"status": status, "reason": reason}
        )
        assert response.status_code == 200, response.text

    def lots(self, member_id: int) -> list[dict[str, Any]]:
        response = self.get(f"/v1/members/{member_id}/lots")
        assert response.status_code == 200, response.text
        lots: list[dict[str, Any]] = response.json()
        return lots


@dataclass
class Api:
    db: Database
    clock: FrozenClock
    client: TestClient
    first_program: int = 0
    """Programmes from this id on were made by this test (the database is shared)."""

    def __post_init__(self) -> None:
        last = self.db.read(lambda s: s.execute(select(func.max(Program.id))).scalar())
        self.first_program = (last or 0) + 1

    def tenant(self, **settings: Any) -> Tenant:
        book = make_program(self.db, self.clock, **settings)
        return Tenant(self, book, make_key(self.db, book, self.clock, Scope.ADMIN))

    def snapshot(self) -> dict[str, Any]:
        """What "nothing was written" compares: every row of this test's programmes, in id
        order, and every table's row count and highest id (so that a row written into any
        other programme shows too)."""

        def dump(session: Any) -> dict[str, Any]:
            found: dict[str, Any] = {}
            for table in Base.metadata.sorted_tables:
                owner = table.c.id if table.name == "programs" else table.c.program_id
                mine = select(table).where(owner >= self.first_program).order_by(table.c.id)
                found[table.name] = (
                    tuple(session.execute(select(func.count(), func.max(table.c.id))).one()),
                    [tuple(row) for row in session.execute(mine)],
                )
            return found

        return self.db.read(dump)

    @contextmanager
    def writes_nothing(self) -> Iterator[None]:
        """Assert that the block leaves every table exactly as it found it."""
        before = self.snapshot()
        yield
        after = self.snapshot()
        changed = [name for name in before if before[name] != after[name]]
        assert not changed, f"tables written: {changed}"


def assert_problem(
    response: httpx.Response, status: int, code: str, **members: Any
) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["type"] == f"/problems/{code}"
    assert body["status"] == status
    assert body["instance"] == response.request.url.path
    assert body["title"]
    assert body["detail"]
    for name, value in members.items():
        assert body[name] == value, (name, body)
    return body
