"""Making a group of purchases for certain (jifen.api.grouped), for the tests that compare
a group with one-by-one recording (tests/api/test_grouped.py, test_grouped_equals.py).

A group is made for certain by holding the leader: the first request (booked as a group
of one) waits until the others have queued behind it; they then make one group.
`one_by_one` sends requests the one-by-one way itself (group commit off), the path every
group is compared with."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx

from api.harness import Api, Tenant
from jifen.access.service import Scope
from jifen.api.grouped import Groups


class HeldGroups(Groups):
    """Groups whose first group (the first request, alone) waits until `behind` more
    requests queue before it is booked."""

    def __init__(self, *args: Any, behind: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.behind = behind
        self.first = True
        self.sizes: list[int] = []
        self.booked: list[int] = []
        """How many requests of each group the group answered (the rest: one by one)."""

    def _book(self, group: list[Any]) -> dict[Any, Any]:
        if self.first:
            self.first = False
            while len(self._queue) < self.behind:
                threading.Event().wait(0.005)
        self.sizes.append(len(group))
        bodies = super()._book(group)
        self.booked.append(len(bodies))
        return bodies


class CountedGroups(Groups):
    """Groups that note each group's size and how many of its requests it answered."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.sizes: list[int] = []
        self.booked: list[int] = []

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
    """The requests sent one after the other the one-by-one way (group commit off: the
    route and the lane record each alone, `record_alone`)."""
    state = t.api.client.app.state  # type: ignore[attr-defined]
    before = state.groups
    state.groups = None
    try:
        return [send(t, request) for request in requests]
    finally:
        state.groups = before


def lone(t: Tenant, requests: list[Request]) -> tuple[list[httpx.Response], CountedGroups]:
    """The requests sent one after the other with group commit on: each is a group of one
    (or, not taken by it, goes the one-by-one way)."""
    state = t.api.client.app.state  # type: ignore[attr-defined]
    before = state.groups
    groups = state.groups = CountedGroups(t.api.db, t.api.clock)
    try:
        return [send(t, request) for request in requests], groups
    finally:
        state.groups = before
