"""Bulk import of purchases (PRODUCT.md O3): the API's rules, booked in set-based batches.

An import gives exactly what posting the same orders one by one to `POST /v1/purchases`
gives, in file order (tests/imports check balances, lots and breakdowns against the API):
- each order is checked as a request is (`PurchaseIn`, the member, the channel and store
  codes, a time not in the future), and an order id already recorded is skipped when it
  is the same order (same member and total) — so a re-run after a crash imports nothing
  twice — and refused as a conflict when it is not;
- the same pure evaluator prices each order with the member's facts as they stand before
  it (tier, segments, first purchase, birthday) and what its capped rules' counters
  leave; points are pending for the return window, growth value is credited, and the
  member moves up a tier in the same transaction when the order crosses a threshold.

How it is fast: a chunk of orders is one transaction, priced and booked in rounds by
`jifen.earning.batch` (the engine grouped API writes use too).

One thing differs on purpose: the claim window (`claim_days`) is not applied. It limits
how late a member may attach a receipt at a till; an import of history is staff's.
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import islice

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from jifen.core.clock import Clock
from jifen.core.errors import JifenError
from jifen.db.bulk import writing_behind
from jifen.db.uow import Database
from jifen.earning.batch import (
    Item,
    Plan,
    Recorded,
    active_codes,
    book_orders,
    check_order,
    named_member,
    named_members,
    recorded_orders,
    same_order,
)
from jifen.earning.purchases import basket_of
from jifen.imports.files import Rejects, Row
from jifen.imports.orders import Order, group, parse_many
from jifen.ledger.posting import Book
from jifen.programs.service import book_for, get_program
from jifen.rules.facts import Basket

ATTEMPTS = 3
"""A chunk that loses a race for an order id (a till sent it meanwhile) is done again."""


@dataclass
class Summary:
    rows: int = 0
    orders: int = 0
    imported: int = 0
    already: int = 0
    """Orders recorded before (an earlier run, or the API): skipped."""
    rejected: int = 0
    unclaimed: int = 0
    points: int = 0
    growth: int = 0
    upgrades: int = 0


@dataclass
class _Chunk:
    """What one chunk's transaction did (built again from scratch on a retry)."""

    imported: int = 0
    already: int = 0
    unclaimed: int = 0
    points: int = 0
    growth: int = 0
    upgrades: int = 0
    rejected: list[tuple[Order, str]] = field(default_factory=list)


def import_purchases(
    db: Database,
    program_id: int,
    rows: Iterable[Row],
    *,
    clock: Clock,
    actor: str,
    rejects: Rejects,
    chunk: int = 5000,
    lang: str = "en",
    progress: Callable[[Summary], None] | None = None,
) -> Summary:
    """Import the orders in `rows` (see `jifen.imports.orders` for the columns), `chunk`
    orders to a transaction."""
    summary = Summary()
    groups = group(rows)

    def read() -> list[Order]:
        return parse_many(list(islice(groups, chunk)))

    # The next chunk is read from the file and typed by a thread of its own while this
    # one is booked: it runs while the booking waits for PostgreSQL (which releases the
    # GIL). One chunk at a time, in the file's order; an error reading it is raised when
    # the chunk is due, after the ones before it are committed, as read one after another.
    with ThreadPoolExecutor(1, thread_name_prefix="jifen-import-read") as reader:
        with _collector_paused():
            ahead = reader.submit(read)
        while True:
            with _collector_paused():
                batch = ahead.result()
                if not batch:
                    return summary
                ahead = reader.submit(read)
                _run(db, program_id, batch, clock, actor, rejects, lang, summary)
            if progress:
                progress(summary)


def _run(
    db: Database,
    program_id: int,
    orders: list[Order],
    clock: Clock,
    actor: str,
    rejects: Rejects,
    lang: str,
    summary: Summary,
) -> None:
    for attempt in range(1, ATTEMPTS + 1):
        try:
            done = db.write(lambda s: _book(s, program_id, orders, clock.now(), actor, lang))
            break
        except IntegrityError:
            if attempt == ATTEMPTS:
                raise
    summary.rows += sum(len(o.rows) for o in orders)
    summary.orders += len(orders)
    summary.imported += done.imported
    summary.already += done.already
    summary.unclaimed += done.unclaimed
    summary.points += done.points
    summary.growth += done.growth
    summary.upgrades += done.upgrades
    summary.rejected += len(done.rejected)
    for order, reason in done.rejected:
        rejects.add(order.rows, reason)


def _basket(book: Book, order: Order) -> Basket | None:
    """The order's basket from the lines read from its text (`jifen.earning.batch._basket`
    of the `PurchaseIn`, without making each line again); None: the booking makes it."""
    if order.basket_lines is None or order.data is None:
        return None
    data = order.data
    return basket_of(
        book,
        data.occurred_at.astimezone(UTC),
        data.channel,
        data.store,
        data.payment_method,
        list(order.basket_lines),
    )


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Python's cyclic garbage collector paused while a chunk is read and booked: the
    chunk makes about a million small objects (orders, rows, baskets, awards) that live
    until its commit, and the collector would walk them over and over — a fifth of the
    import's CPU (20,000 orders on PostgreSQL: 13.9 s -> 11.0 s). It runs again between
    chunks, so memory stays bounded by the chunk."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


# ---------------------------------------------------------------- one chunk


def _book(
    session: Session, program_id: int, orders: list[Order], now: datetime, actor: str, lang: str
) -> _Chunk:
    program = get_program(session, program_id)
    book = book_for(session, program)
    done = _Chunk()
    items: list[Item] = []
    for order in orders:
        if order.data is None:
            done.rejected.append((order, order.error or "?"))
    valid = [o for o in orders if o.data is not None]
    members = named_members(session, program.id, [o.data for o in valid if o.data is not None])
    recorded = recorded_orders(session, program.id, [o.data.external_id for o in valid if o.data])
    channels, stores = active_codes(session, program.id)
    for order in valid:
        data = order.data
        assert data is not None
        try:
            member = named_member(members, data)
            first = recorded.get(data.external_id)
            if first is not None:
                same_order(first, data, member)
                done.already += 1
                continue
            check_order(data, now, channels, stores)
        except JifenError as exc:
            done.rejected.append((order, exc.message(lang)))
            continue
        # A later row with the same order id is that order sent again.
        recorded[data.external_id] = Recorded(
            "(earlier in this file)", member.id if member else None, data.total, False
        )
        items.append(Item(data, member, tag=order, basket=_basket(book, order)))
    plan = Plan.of(session, program, now)
    # The rounds' `COPY`s go to the server from a thread while Python goes on (with the
    # next table's rows, the next round's pricing); each statement waits for them first.
    with writing_behind(session):
        booked = book_orders(session, program, book, plan, items, now, actor)
    done.imported = len(booked.written)
    done.unclaimed = booked.unclaimed
    done.points = booked.points
    done.growth = booked.growth
    done.upgrades = booked.upgrades
    done.rejected.extend((item.tag, error.message(lang)) for item, error in booked.refused)
    return done
