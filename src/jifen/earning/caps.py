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

from sqlalchemy import case, select, update
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
            session.execute(
                select(RuleCounter.id)
                .where(RuleCounter.program_id == program_id, RuleCounter.key.in_(shared))
                .order_by(RuleCounter.key)
                .with_for_update()
            ).all()
    return _used(session, program_id, sorted({b.key for b in bounds_list}))


def use(session: Session, program_id: int, amounts: Mapping[str, int]) -> None:
    """Add points to counters (key → points), creating them as needed."""
    amounts = {key: n for key, n in amounts.items() if n}
    if not amounts:
        return
    _ensure(session, program_id, sorted(amounts))
    for key in sorted(amounts):
        session.execute(
            update(RuleCounter)
            .where(RuleCounter.program_id == program_id, RuleCounter.key == key)
            .values(used=RuleCounter.used + amounts[key])
            .execution_options(synchronize_session=False)
        )


def give_back(session: Session, program_id: int, amounts: Mapping[str, int]) -> None:
    """Return points to counters (a return took them back); never below zero."""
    for key in sorted(k for k, n in amounts.items() if n):
        n = amounts[key]
        session.execute(
            update(RuleCounter)
            .where(RuleCounter.program_id == program_id, RuleCounter.key == key)
            .values(used=case((RuleCounter.used > n, RuleCounter.used - n), else_=0))
            .execution_options(synchronize_session=False)
        )


def _used(session: Session, program_id: int, keys: list[str]) -> dict[str, int]:
    if not keys:
        return {}
    rows = session.execute(
        select(RuleCounter.key, RuleCounter.used).where(
            RuleCounter.program_id == program_id, RuleCounter.key.in_(keys)
        )
    )
    return {key: int(used) for key, used in rows}


def _ensure(session: Session, program_id: int, keys: list[str]) -> None:
    rows = [{"program_id": program_id, "key": key, "used": 0} for key in keys]
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    session.execute(
        dialect.insert(RuleCounter)
        .values(rows)
        .on_conflict_do_nothing(index_elements=["program_id", "key"])
    )
