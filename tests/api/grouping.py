"""Making a group of purchases for certain (jifen.api.grouped), for the tests that compare
a group with one-by-one recording (tests/api/test_grouped.py, test_grouped_equals.py).

A group is made for certain by holding the leader: the first request's one-by-one write
waits until the others have queued behind it; they then make one group."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
from fastapi.responses import JSONResponse, Response

from api.harness import Api, Tenant
from jifen.access.service import Scope
from jifen.api.deps import WriteCall
from jifen.api.grouped import Groups
from jifen.earning.schemas import PurchaseIn


class HeldGroups(Groups):
    """Groups whose first one-by-one write waits until `behind` more requests queue."""

    def __init__(self, *args: Any, behind: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.behind = behind
        self.first = True
        self.sizes: list[int] = []
        self.booked: list[int] = []
        """How many requests of each group the group answered (the rest: one by one)."""

    async def record(
        self, call: WriteCall, data: PurchaseIn, alone: Callable[[], JSONResponse]
    ) -> Response:
        if self.first:
            self.first = False
            real = alone

            def alone() -> JSONResponse:
                while len(self._queue) < self.behind:
                    threading.Event().wait(0.005)
                return real()

        return await super().record(call, data, alone)

    def _book(self, group: list[Any]) -> dict[Any, Any]:
        self.sizes.append(len(group))
        bodies = super()._book(group)
        self.booked.append(len(bodies))
        return bodies


def hold(api: Api, behind: int) -> HeldGroups:
    """Give the test's app groups whose first write waits for `behind` more requests."""
    groups = HeldGroups(api.db, api.clock, behind=behind)
    api.client.app.state.groups = groups  # type: ignore[attr-defined]
    return groups


Request = tuple[dict[str, Any], Scope, str]
"""A purchase body, the key's scope, the Idempotency-Key."""


def send(t: Tenant, request: Request) -> httpx.Response:
    body, scope, key = request
    return t.post("/v1/purchases", body, scope=scope, idem=f"{key}-{t.book.program_id}")


def together(t: Tenant, requests: list[Request]) -> list[httpx.Response]:
    """The first request alone, then the rest at once, in order (each waits until the one
    before it has queued)."""
    first = threading.Thread(target=lambda: answers.__setitem__(0, send(t, requests[0])))
    answers: dict[int, httpx.Response] = {}
    groups = t.api.client.app.state.groups  # type: ignore[attr-defined]
    first.start()
    while not groups._leading:
        threading.Event().wait(0.005)

    def send_one(i: int) -> None:
        answers[i] = send(t, requests[i])

    queued = 0
    with ThreadPoolExecutor(len(requests)) as pool:
        for i in range(1, len(requests)):
            pool.submit(send_one, i)
            if answered_early(requests[i]):
                continue
            queued += 1
            while len(groups._queue) < queued:
                threading.Event().wait(0.002)
    first.join()
    return [answers[i] for i in range(len(requests))]


def answered_early(request: Request) -> bool:
    """A request that never joins the queue (no member) is answered at once."""
    return "member" not in request[0]


def one_by_one(t: Tenant, requests: list[Request]) -> list[httpx.Response]:
    return [send(t, request) for request in requests]
