"""Group commit for `POST /v1/purchases`: the purchases a server process receives at the
same moment are recorded together, in one transaction.

At a peak (a double-points day) every till sends purchases at once. Recorded one by one,
each costs its own transaction: a dozen statements, a commit waiting for the disk, and
the ORM's work in Python. Grouped, a request joins a queue; one of the waiting request
threads, the leader, takes what is queued (up to `LARGEST`), checks it and books it with
the engine bulk imports use (`jifen.earning.batch`: every table written once, each member
locked once), records every request's `Idempotency-Key` with its response in one
statement, and commits once; then each request answers with its own response. While a group is being
booked, the next requests queue up for the next group, so the busier the server, the
bigger the groups. A lone request (nothing else queued) is a group of one: the group's
engine books one purchase with fewer statements and less Python than the one-by-one way
(the ORM's; a till alone in a quiet store used to wait for that).

The answer never changes with the grouping. A group takes a request only when its answer
is a new purchase (201): a request whose key, scope, `Idempotency-Key`, member, codes,
time or order id would get another answer (a replay, a refusal, the order already
recorded) — and one paying with points or naming no member — leaves the group before
anything is written and goes the one-by-one way (`jifen.api.idempotency.write`), which
gives exactly its usual answer. So does a member found frozen or closed once locked. The
orders of a group are booked as if recorded one after the other in the order they
arrived; each request is answered only after the commit, and if the group's transaction
fails as a whole (a race for an order id with another process, say, or a request with one
of the group's keys that claimed it first), nothing of it was written and every request
in it goes the one-by-one way.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from anyio import to_thread
from fastapi.responses import JSONResponse, Response
from sqlalchemy.orm import Session

from jifen.access.service import Principal
from jifen.api.deps import ADMIN_POS, WriteCall, authorise
from jifen.api.idempotency import fingerprint
from jifen.core.clock import Clock
from jifen.core.errors import JifenError
from jifen.db.idempotency import MAX_KEY_LENGTH, known_keys, record_many
from jifen.db.uow import Database
from jifen.earning import batch
from jifen.earning.purchases import check_window, written_json
from jifen.earning.schemas import PurchaseIn
from jifen.programs.service import book_for, get_program

LARGEST = 64
"""The most requests one group takes."""

LOOK_AGAIN = 3
"""How many turns of the event loop a leader that finds one request waiting lets pass
before booking it as a group of one: under load, as a group is answered its clients send
their next purchases at once, and the first to arrive would otherwise make a group of its
own (a transaction's fixed cost for one purchase) while the rest queue behind it."""

log = logging.getLogger(__name__)


@dataclass(eq=False)
class _Request:
    call: WriteCall
    data: PurchaseIn
    alone: Callable[[], JSONResponse]
    answer: asyncio.Future[Response | None]
    """The response once the group committed; None: answer it one by one."""


class Groups:
    """The queue of one server process (`app.state.groups`). Requests wait on the event
    loop, not in threads: a group's booking, and each one-by-one write, runs in a thread
    of the pool."""

    def __init__(self, db: Database, clock: Clock, *, largest: int = LARGEST) -> None:
        self._db = db
        self._clock = clock
        self._largest = largest
        self._queue: list[_Request] = []
        self._leading = False
        self._leader: asyncio.Task[None] | None = None
        """The leading task, kept: the loop holds only a weak reference to a task, and one
        collected while it waits would leave its group unanswered."""

    async def record(
        self, call: WriteCall, data: PurchaseIn, alone: Callable[[], JSONResponse]
    ) -> Response:
        """The response to the purchase `data`: recorded in a group, or by `alone` (the
        one-by-one path, run in a thread) when no group takes it."""
        if data.member is None or data.points_payment is not None:
            return await to_thread.run_sync(alone)
        request = _Request(call, data, alone, asyncio.get_running_loop().create_future())
        self._queue.append(request)
        if not self._leading:
            self._leading = True
            self._leader = asyncio.get_running_loop().create_task(self._lead())
        answer = await request.answer
        if answer is None:
            return await to_thread.run_sync(alone)
        return answer

    async def _lead(self) -> None:
        """Take what is queued, a group at a time, until nothing is."""
        try:
            while self._queue:
                for _ in range(LOOK_AGAIN):
                    if len(self._queue) > 1:
                        break
                    await asyncio.sleep(0)  # requests already read may be about to queue
                group = self._queue[: self._largest]
                del self._queue[: len(group)]
                bodies = await to_thread.run_sync(self._book, group)
                for request in group:
                    body = bodies.get(request)
                    _answer(request, None if body is None else _created(body))
        finally:
            self._leading = False
            for request in self._queue:  # the loop is stopping: answered one by one
                _answer(request, None)
            self._queue.clear()

    def _book(self, group: list[_Request]) -> dict[_Request, str]:
        """Book the group (in a thread): the 201 bodies of the requests it answered. Never
        raises (a request the group could not answer goes the one-by-one way, which
        reports what went wrong)."""
        try:
            return self._db.write(lambda session: _unit(session, group, self._clock.now()))
        except Raced:
            log.info("a group of %d purchases raced another request's key", len(group))
            return {}
        except Exception:  # every request is answered one by one; nothing was written
            log.exception("a group of %d purchases fell back to one by one", len(group))
            return {}


def _created(body: str) -> Response:
    """A group's 201: its body as the route's `JSONResponse` would render it (compact JSON,
    UTF-8, the model's field order), from the JSON the group encoded once for the
    response and the stored copy alike."""
    return Response(body, 201, media_type="application/json")


def _answer(request: _Request, response: Response | None) -> None:
    if not request.answer.done():  # (its client may have gone: the task was cancelled)
        request.answer.set_result(response)


def _unit(session: Session, group: list[_Request], now: datetime) -> dict[_Request, str]:
    """One transaction: the requests of the group it answers → their 201 bodies (JSON)."""
    principals: dict[str, Principal | None] = {}
    by_program: dict[int, list[tuple[_Request, Principal]]] = defaultdict(list)
    for request in group:
        token, key = request.call.token, request.call.idempotency_key
        if token not in principals:
            try:
                principals[token] = authorise(session, token, ADMIN_POS)
            except JifenError:
                principals[token] = None
        principal = principals[token]
        if principal is not None and key and len(key) <= MAX_KEY_LENGTH:
            by_program[principal.program_id].append((request, principal))
    bodies: dict[_Request, str] = {}
    for program_id, requests in by_program.items():
        bodies.update(_program_unit(session, program_id, requests, now))
    return bodies


def _program_unit(
    session: Session,
    program_id: int,
    requests: list[tuple[_Request, Principal]],
    now: datetime,
) -> dict[_Request, str]:
    program = get_program(session, program_id)
    datas = [request.data for request, _ in requests]
    members = batch.named_members(session, program_id, datas)
    recorded = batch.recorded_orders(session, program_id, [d.external_id for d in datas])
    channels, stores = batch.active_codes(session, program_id)
    # The keys already claimed are looked up so that one of them does not cost a group its
    # transaction (`Raced`). A request alone skips the look-up: its replay names an order
    # recorded already, and a key reused for another order is refused by `record_many`'s
    # count, which gives up only this request's transaction.
    group_keys = [str(r.call.idempotency_key) for r, _ in requests]
    known = known_keys(session, program_id, group_keys) if len(requests) > 1 else set()
    keys: set[str] = set()
    taken: list[tuple[_Request, Principal, Any]] = []
    for request, principal in requests:
        data, key = request.data, str(request.call.idempotency_key)
        if data.external_id in recorded or key in keys or key in known:
            continue  # answered by the first one (a replay, or the order as recorded)
        try:
            member = batch.named_member(members, data)
            batch.check_order(data, now, channels, stores)
            check_window(program, data.occurred_at, now)
        except JifenError:
            continue  # refused: the one-by-one path gives the refusal
        recorded[data.external_id] = batch.Recorded("(in this group)", None, data.total, False)
        keys.add(key)
        taken.append((request, principal, member))
    if not taken:  # (a lone replay or refusal: nothing to book, nothing to record)
        return {}
    book = book_for(session, program)
    plan = batch.Plan.of(session, program, now)
    by_actor: dict[str, list[batch.Item]] = defaultdict(list)
    for request, principal, member in taken:
        by_actor[principal.actor].append(batch.Item(request.data, member, (request, principal)))
    written: list[batch.Item] = []
    for actor, items in by_actor.items():
        written.extend(batch.book_orders(session, program, book, plan, items, now, actor).written)
    bodies = {
        item.tag[0]: written_json(*item.written) for item in written if item.written is not None
    }
    records = [
        (str(r.call.idempotency_key), fingerprint(r.call, p.key_id), 201, bodies[r])
        for r, p in (item.tag for item in written)
    ]
    if len(record_many(session, program_id=program_id, records=records, now=now)) < len(records):
        raise Raced()  # a key was claimed meanwhile: its request cannot be answered here
    return bodies


class Raced(Exception):
    """A concurrent request claimed one of the group's keys first: the group's
    transaction is given up and every request of it goes the one-by-one way."""
