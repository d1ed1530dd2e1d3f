"""Balance reads at a peak, a group at a time, for the quick way in (`jifen.api.lane`).

`GET /v1/members/{id}/balance` is what every app screen and till asks first. Through the
route it costs three statements (the key and its programme, the accounts, the lots
expiring soon) through the ORM in a thread of the pool: about 4.7 ms of CPU a read at 32
clients, nearly all of it in the session, its objects and the thread hand-off. Here the
reads that arrive together are answered together (`Reads`): one thread hand-off and, on
PostgreSQL, one Core statement for the whole group, which reads each read's key, its
programme's time zone, the member's accounts and the lots expiring soon; each answer is
built with the route's own pieces (`jifen.ledger.queries.expiring_by_day`, the `Balance`
model).

Only the plain case is answered here: a key that admits the caller, a member of the key's
programme with nothing fallen due. Anything else (None) is the route's to answer: it
gives the 401 or 404, or brings the member up to date first.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from anyio import to_thread
from sqlalchemy import (
    BigInteger,
    FromClause,
    Row,
    Select,
    String,
    and_,
    bindparam,
    func,
    literal_column,
    select,
)
from sqlalchemy.dialects.postgresql import ARRAY

from jifen.access.models import ApiKey
from jifen.access.service import key_admits, token_parts
from jifen.core.clock import Clock
from jifen.db.uow import Database
from jifen.ledger.models import Account, AccountKind, Lot, LotStatus
from jifen.ledger.queries import balance_of, expiring_by_day, expiring_soon_until
from jifen.ledger.schemas import Balance
from jifen.programs.models import Program

_keys, _programs, _accounts, _lots = (
    ApiKey.__table__,
    Program.__table__,
    Account.__table__,
    Lot.__table__,
)

_asked = (
    func.unnest(
        bindparam("prefixes", type_=ARRAY(String)), bindparam("members", type_=ARRAY(BigInteger))
    )
    .table_valued("prefix", "member_id", with_ordinality="n")
    .render_derived(name="asked", with_types=False)
)
"""PostgreSQL: the group's reads as rows (key prefix, member id, n = 1, 2, …)."""


def _statement(keys: FromClause, member_id: Any, *first: Any) -> Select[Any]:
    """The reads' statement: one row per account of each member (points, growth), the
    points account's once per lot expiring soon; none for a read whose key or member is
    unknown. `keys` gives each read's key row, `member_id` names its member, `first` is
    what goes before the columns (the read's number)."""
    return select(
        *first,
        _keys.c.secret_hash,
        _keys.c.revoked_at,
        _programs.c.timezone,
        _accounts.c.kind,
        _accounts.c.available,
        _accounts.c.pending,
        _accounts.c.held,
        _accounts.c.lifetime_earned,
        _accounts.c.next_due_at,
        _lots.c.expires_at,
        _lots.c.remaining,
    ).select_from(
        keys.join(_programs, _programs.c.id == _keys.c.program_id)
        .join(
            _accounts,
            and_(
                _accounts.c.program_id == _keys.c.program_id,
                _accounts.c.member_id == member_id,
            ),
        )
        .outerjoin(
            _lots,
            and_(
                _accounts.c.kind == literal_column(f"'{AccountKind.POINTS.value}'"),
                _lots.c.account_id == _accounts.c.id,
                _lots.c.status == literal_column(f"'{LotStatus.AVAILABLE.value}'"),
                _lots.c.remaining > literal_column("0"),
                _lots.c.expires_at > bindparam("now", type_=_lots.c.expires_at.type),
                _lots.c.expires_at <= bindparam("until", type_=_lots.c.expires_at.type),
            ),
        )
    )


_ONE = _statement(_keys, bindparam("member_id")).where(_keys.c.prefix == bindparam("prefix"))
_MANY = _statement(
    _asked.join(_keys, _keys.c.prefix == _asked.c.prefix), _asked.c.member_id, _asked.c.n
)


Read = tuple[str, int]
"""A read: the caller's bearer token and the member id."""

LARGEST = 64
"""The most reads one statement answers."""

IN_FLIGHT = 4
"""The most groups of one process whose statements run at once. One at a time would make
every read wait for the group before it (a thread hand-off and a round trip, each waiting
for a core on a busy machine); a few at once keep the cores busy while groups stay large
at a peak."""

log = logging.getLogger(__name__)


class Reads:
    """The balance reads of one server process (`app.state.reads`), answered a group at a
    time: the reads that arrive while the groups in flight run wait on the event loop and
    go together in the next, in one thread of the pool and one statement. So at a peak a
    read costs a fraction of a thread hand-off and of a round trip, and alone it costs
    what it would anyway."""

    def __init__(self, db: Database, clock: Clock) -> None:
        self._db = db
        self._clock = clock
        self._queue: list[tuple[Read, asyncio.Future[Balance | None]]] = []
        self._leading = 0
        self._leaders: set[asyncio.Task[None]] = set()
        """The leading tasks, kept: the loop holds only a weak reference to a task."""

    async def balance(self, token: str, member_id: int) -> Balance | None:
        """The member's balance as the route gives it, or None: the route's to answer."""
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[Balance | None] = loop.create_future()
        self._queue.append(((token, member_id), answer))
        if self._leading < IN_FLIGHT:
            self._leading += 1
            leader = loop.create_task(self._lead())
            self._leaders.add(leader)
            leader.add_done_callback(self._leaders.discard)
        return await answer

    async def _lead(self) -> None:
        """Take what is queued, a group at a time, until nothing is."""
        try:
            while self._queue:
                group = self._queue[:LARGEST]
                del self._queue[: len(group)]
                reads = [read for read, _ in group]
                try:
                    answers = await to_thread.run_sync(
                        quick_balances, self._db, reads, self._clock.now()
                    )
                except Exception:  # each goes to the route, which reports what went wrong
                    log.warning("a group of %d balance reads failed", len(group), exc_info=True)
                    answers = [None] * len(group)
                for (_, answer), found in zip(group, answers, strict=True):
                    if not answer.done():  # (its client may have gone)
                        answer.set_result(found)
        finally:
            self._leading -= 1  # at once (not in a callback): a read queued next starts one
            for _, answer in self._queue:  # (empty unless the loop is stopping: to the route)
                if not answer.done():
                    answer.set_result(None)
            self._queue.clear()


def quick_balances(db: Database, reads: Sequence[Read], now: datetime) -> list[Balance | None]:
    """Each read's balance as the route gives it, or None where the route must answer (an
    unknown or revoked key, a member the key's programme does not have, something fallen
    due): on PostgreSQL all in one statement, on SQLite one statement a read."""
    asked: list[tuple[int, str, str, int]] = []  # (the read's index, prefix, secret, member)
    for index, (token, member_id) in enumerate(reads):
        parts = token_parts(token)
        if parts is not None:
            asked.append((index, *parts, member_id))
    window = {"now": now, "until": expiring_soon_until(now)}
    rows: list[list[Row[Any]]] = [[] for _ in asked]
    with db.reading_connection() as connection:
        if db.dialect == "postgresql":
            prefixes = [prefix for _, prefix, _, _ in asked]
            members = [member_id for _, _, _, member_id in asked]
            params = {"prefixes": prefixes, "members": members, **window}
            for row in connection.execute(_MANY, params):
                rows[row.n - 1].append(row)
        else:
            for n, (_, prefix, _, member_id) in enumerate(asked):
                params = {"prefix": prefix, "member_id": member_id, **window}
                rows[n] = list(connection.execute(_ONE, params))
    answers: list[Balance | None] = [None] * len(reads)
    for (index, _, secret, member_id), found in zip(asked, rows, strict=True):
        answers[index] = _balance(found, secret, member_id, now)
    return answers


def _balance(rows: list[Row[Any]], secret: str, member_id: int, now: datetime) -> Balance | None:
    if not rows or not key_admits(rows[0].secret_hash, rows[0].revoked_at, secret):
        return None
    points = growth = None
    expiring: list[tuple[datetime, int]] = []
    for row in rows:
        if row.kind == AccountKind.POINTS:
            points = row
            if row.expires_at is not None:
                expiring.append((row.expires_at, row.remaining))
        elif row.kind == AccountKind.GROWTH:
            growth = row
    if points is None:
        return None
    tz = ZoneInfo(rows[0].timezone)
    return balance_of(
        member_id,
        points,
        growth.available if growth is not None else 0,
        lambda: expiring_by_day(expiring, tz),
        now,
    )
