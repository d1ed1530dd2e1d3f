"""Counters behind rule caps and budgets: what a capped rule may still give, and using it.

Two kinds of counter (table `rule_counters`, one row per key):
- per member and period (`member:<member>:<rule>:<period>`): read and changed only while
  the caller holds the member's account lock, so two purchases of one member never both
  see the same room;
- budgets (`budget:<rule>:<period>[:<per>]`), shared by all members: the row is created
  if missing (an upsert, so a race makes no duplicate) and locked `FOR UPDATE` before it
  is read, in key order, so concurrent purchases queue on it and can never together
  exceed it. On SQLite the whole write transaction is already exclusive.

The caller takes its locks in one order: the member's account first, then budget rows.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from typing import cast

from sqlalchemy import Integer, Table, bindparam, case, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from jifen.earning.models import RuleCounter
from jifen.rules.facts import period_key
from jifen.rules.schemas import Budget, PeriodCaps

MEMBER_SCOPE = "member"


@dataclass(frozen=True)
class Bound:
    """One counter a rule's points count against, and its limit."""

    key: str
    limit: int
    shared: bool
    """A budget (all members) rather than a member's own cap."""


def bounds(
    rule_id: str,
    *,
    member_id: int,
    day: date,
    caps: PeriodCaps | None,
    budget: Budget | None,
    per_value: str | None = None,
    prefix: str = "",
) -> list[Bound]:
    """The counters a rule's points on local `day` count against. `prefix` keeps event
    rules apart from earning rules of the same id."""
    found = [
        Bound(f"member:{member_id}:{prefix}{rule_id}:{period_key(period, day)}", limit, False)
        for period, limit in (caps.items() if caps else [])
    ]
    if budget is not None:
        key = f"budget:{prefix}{rule_id}:{period_key(budget.period, day)}"
        if budget.per is not None:
            key += f":{per_value or ''}"
        found.append(Bound(key, budget.points, True))
    return found


def room(session: Session, program_id: int, rule_bounds: Iterable[Bound], *, lock: bool) -> int:
    """What the tightest of `rule_bounds` leaves (never below 0). With `lock`, budget rows
    are created if missing and locked first, in key order."""
    bounds_list = list(rule_bounds)
    return left(bounds_list, read(session, program_id, bounds_list, lock=lock))


def left(rule_bounds: Iterable[Bound], used: Mapping[str, int]) -> int:
    """What the tightest of `rule_bounds` leaves, given the counters' `used` (never below 0)."""
    return max(0, min(b.limit - used.get(b.key, 0) for b in rule_bounds))


COUNTERS = cast(Table, RuleCounter.__table__)
"""The Core table: these statements need no ORM bookkeeping."""

_LOCK = (
    select(COUNTERS.c.id)
    .where(
        COUNTERS.c.program_id == bindparam("program_id"),
        COUNTERS.c.key.in_(bindparam("keys", expanding=True)),
    )
    .order_by(COUNTERS.c.key)
    .with_for_update()
)
_USED = select(COUNTERS.c.key, COUNTERS.c.used).where(
    COUNTERS.c.program_id == bindparam("program_id"),
    COUNTERS.c.key.in_(bindparam("keys", expanding=True)),
)
_ONE = (COUNTERS.c.program_id == bindparam("p")) & (COUNTERS.c.key == bindparam("k"))
_ADD = update(COUNTERS).where(_ONE).values(used=COUNTERS.c.used + bindparam("n", type_=Integer))
_TAKE = (
    update(COUNTERS)
    .where(_ONE)
    .values(
        used=case(
            (COUNTERS.c.used > bindparam("n", type_=Integer), COUNTERS.c.used - bindparam("n")),
            else_=0,
        )
    )
)
_ENSURE = {
    module.__name__.rsplit(".", 1)[-1]: module.insert(COUNTERS).on_conflict_do_nothing(
        index_elements=["program_id", "key"]
    )
    for module in (postgresql, sqlite)
}
"""Built once: the statements take the programme, keys and amounts as parameters."""


def read(
    session: Session, program_id: int, rule_bounds: Iterable[Bound], *, lock: bool
) -> dict[str, int]:
    """The counters of `rule_bounds` (key → used; a missing one is 0). With `lock`, budget
    rows are created if missing and locked first, in key order."""
    bounds_list = sorted(rule_bounds, key=lambda b: b.key)
    if lock:
        shared = sorted({b.key for b in bounds_list if b.shared})
        if shared:
            _ensure(session, program_id, shared)
            session.execute(_LOCK, {"program_id": program_id, "keys": shared}).all()
    return _used(session, program_id, sorted({b.key for b in bounds_list}))


def use(session: Session, program_id: int, amounts: Mapping[str, int]) -> None:
    """Add points to counters (key → points), creating them as needed, in key order."""
    amounts = {key: n for key, n in amounts.items() if n}
    if not amounts:
        return
    _ensure(session, program_id, sorted(amounts))
    for key in sorted(amounts):
        session.execute(_ADD, {"p": program_id, "k": key, "n": amounts[key]})


def give_back(session: Session, program_id: int, amounts: Mapping[str, int]) -> None:
    """Return points to counters (a return took them back); never below zero."""
    for key in sorted(k for k, n in amounts.items() if n):
        session.execute(_TAKE, {"p": program_id, "k": key, "n": amounts[key]})


def _used(session: Session, program_id: int, keys: list[str]) -> dict[str, int]:
    if not keys:
        return {}
    rows = session.execute(_USED, {"program_id": program_id, "keys": keys})
    return {key: int(used) for key, used in rows}


def _ensure(session: Session, program_id: int, keys: list[str]) -> None:
    """The counters exist (created at 0 where missing; an existing one is left alone)."""
    statement = _ENSURE[session.get_bind().dialect.name]
    session.execute(statement, [{"program_id": program_id, "key": key, "used": 0} for key in keys])
