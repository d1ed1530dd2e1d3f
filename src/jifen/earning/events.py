"""Behaviour events (行为积分, PRODUCT.md E4): record one, reward it by its rule.

One event is one transaction's worth of work:
1. the member's points account is locked first, so one member's events are decided one
   at a time: the external id is looked up under the lock (a repeat for the same type and
   member returns the first result; the unique (programme, external id) turns any other
   reuse into a conflict), and the frequency limit counts under it;
2. the rule is the programme's current active event rule of that type;
3. the limit counts this member's rewarded events of the type in the rule's period (local
   day, ISO week Monday–Sunday, month or year in the programme's time zone, or ever)
   that contains `occurred_at`; at the limit the event is stored `limited`, with nothing;
4. a budget row (all members, or per an attribute such as the manager) is locked after
   the account and gives what it has left; an event that gets less than it asked for is
   stored `budget`;
5. the event row is written, the ledger credits its points (available at once: a
   behaviour has no return window) with reference `event:<id>` and its growth value, all
   or nothing.

A budget bounds points only; growth value is given whatever the budget has left.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from jifen.core.clock import start_of_day
from jifen.core.cursors import decode_cursor, encode_cursor
from jifen.core.errors import Conflict, InvalidInput, NotFound
from jifen.earning import caps
from jifen.earning.event_schemas import (
    BIRTHDAY,
    EventIn,
    EventOut,
    EventPage,
    EventStatus,
)
from jifen.earning.models import BehaviourEvent
from jifen.ledger import service as ledger
from jifen.ledger.posting import Book, ensure_writable, lock_account
from jifen.members import service as members
from jifen.programs.models import Program
from jifen.programs.rulesets import VersionedRules, current_rules, rules_at
from jifen.rules.schemas import Budget, EventRule, Period, PositiveLimit
from jifen.tiers import service as tiers

CLOCK_SKEW = timedelta(minutes=5)
"""How far a caller's clock may be ahead of ours (and how late a live event may arrive on
a programme whose claim window is 0 days)."""

BUDGET_PREFIX = "event:"
"""Event budgets' counter keys, apart from earning rules' (`jifen.earning.caps`)."""

RESERVED_PREFIX = "birthday:"
"""External ids of the birthday job's events (`birthday:<member>:<year>`)."""

CURSOR = "e"


@dataclass(frozen=True)
class Recorded:
    event: BehaviourEvent
    repeat: bool
    """The external id was recorded before: `event` is that first result."""


def record_event(
    session: Session,
    program: Program,
    book: Book,
    data: EventIn,
    *,
    now: datetime,
    actor: str,
) -> Recorded:
    """Record a behaviour and give what its rule allows (see the module's docstring)."""
    if data.external_id.startswith(RESERVED_PREFIX):
        raise InvalidInput(
            field="external_id", reason=f"ids starting {RESERVED_PREFIX!r} are the birthday job's"
        )
    member = members.resolve(session, program.id, data.member)
    account = lock_account(session, book, member.id, now)
    existing = _by_external_id(session, program.id, data.external_id)
    if existing is not None:
        if existing.type != data.type or existing.member_id != member.id:
            raise Conflict(
                reason=f"external id {data.external_id!r} already names event {existing.id} "
                f"({existing.type} of member {existing.member_id})",
                event_id=existing.id,
            )
        return Recorded(existing, repeat=True)

    versioned = current_rules(session, program.id)
    rule = _active_rule(versioned, data.type)
    occurred_at = data.occurred_at or now
    _check_time(program, occurred_at, now)
    asked = _asked_points(rule, data.points)
    budget_per = _budget_per(rule.budget, data.attributes)
    ensure_writable(account)

    local_day = occurred_at.astimezone(book.tz).date()
    status, points, growth = EventStatus.AWARDED, asked, rule.growth
    if rule.limit is not None and _rewarded_in_period(
        session, program.id, member.id, rule.type, rule.limit, local_day, book.tz
    ) >= int(rule.limit.count):
        status, points, growth = EventStatus.LIMITED, 0, 0
    budget_keys: dict[str, int] = {}
    if status == EventStatus.AWARDED and rule.budget is not None and asked > 0:
        bounds = caps.bounds(
            rule.type,
            member_id=member.id,
            day=local_day,
            caps=None,
            budget=rule.budget,
            per_value=budget_per,
            prefix=BUDGET_PREFIX,
        )
        points = min(asked, caps.room(session, program.id, bounds, lock=True))
        budget_keys = {bound.key: points for bound in bounds}
        if points < asked:
            status = EventStatus.BUDGET

    event = BehaviourEvent(
        program_id=program.id,
        member_id=member.id,
        type=rule.type,
        external_id=data.external_id,
        occurred_at=occurred_at,
        status=status,
        points=points,
        growth=growth,
        rule_set_version=versioned.version,
        attributes=dict(data.attributes),
        created_at=now,
        actor=actor,
    )
    try:
        with session.begin_nested():
            session.add(event)
            session.flush()
    except IntegrityError as exc:  # another member's event took the id a moment ago
        raise Conflict(
            reason=f"external id {data.external_id!r} was just used by another event"
        ) from exc
    award(session, book, event, rule_name=rule.name, now=now, actor=actor)
    caps.use(session, program.id, budget_keys)
    session.flush()
    return Recorded(event, repeat=False)


def award(
    session: Session,
    book: Book,
    event: BehaviourEvent,
    *,
    rule_name: str,
    now: datetime,
    actor: str,
) -> None:
    """Credit a written event's points and growth value (available at once)."""
    details: dict[str, Any] = {
        "event_id": event.id,
        "type": event.type,
        "external_id": event.external_id,
    }
    earned_at = min(event.occurred_at, now)
    if event.points > 0:
        txn = ledger.credit(
            session,
            book,
            event.member_id,
            event.points,
            now=now,
            actor=actor,
            earned_at=earned_at,
            reference=f"event:{event.id}",
            reason=rule_name,
            details=details,
        )
        event.points_txn_id = txn.id
    if event.growth > 0:
        txn = ledger.credit_growth(
            session,
            book,
            event.member_id,
            event.growth,
            now=now,
            actor=actor,
            reference=f"growth:event:{event.id}",
            reason=rule_name,
            details=details,
        )
        event.growth_txn_id = txn.id
        # growth value may carry the member into a higher tier, in this transaction
        tiers.on_activity(
            session,
            session.get_one(Program, book.program_id),
            event.member_id,
            now=now,
            actor=actor,
            cause={"event_id": event.id, "type": event.type},
        )


# -- checks ------------------------------------------------------------------------------


def _by_external_id(session: Session, program_id: int, external_id: str) -> BehaviourEvent | None:
    return session.execute(
        select(BehaviourEvent).where(
            BehaviourEvent.program_id == program_id, BehaviourEvent.external_id == external_id
        )
    ).scalar_one_or_none()


def _active_rule(versioned: VersionedRules, event_type: str) -> EventRule:
    active = {rule.type: rule for rule in versioned.rules.event_rules if rule.active}
    if event_type == BIRTHDAY:
        raise InvalidInput(
            field="type", reason="birthday points are given by the birthday job, not by events"
        )
    rule = active.get(event_type)
    if rule is None:
        known = ", ".join(sorted(t for t in active if t != BIRTHDAY)) or "none"
        raise InvalidInput(
            field="type",
            reason=f"this programme has no active event rule for {event_type!r}; "
            f"known types: {known}",
            known=known,
        )
    return rule


def _check_time(program: Program, occurred_at: datetime, now: datetime) -> None:
    if occurred_at > now + CLOCK_SKEW:
        raise InvalidInput(field="occurred_at", reason="is in the future")
    if occurred_at < now - timedelta(days=program.claim_days) - CLOCK_SKEW:
        raise InvalidInput(
            field="occurred_at",
            reason=f"is older than the programme's claim window of {program.claim_days} days",
        )


def _asked_points(rule: EventRule, points: int | None) -> int:
    if rule.max_points is None:
        if points is not None:
            raise InvalidInput(
                field="points",
                reason=f"the {rule.type} rule gives {rule.points} points; leave points out",
            )
        return rule.points
    if points is None:
        if rule.points == 0 and rule.growth == 0:
            raise InvalidInput(
                field="points", reason=f"the {rule.type} rule needs points: 1 to {rule.max_points}"
            )
        return rule.points
    if not 1 <= points <= rule.max_points:
        raise InvalidInput(field="points", reason=f"must be between 1 and {rule.max_points}")
    return points


def _budget_per(budget: Budget | None, attributes: dict[str, str]) -> str | None:
    if budget is None or budget.per is None:
        return None
    value = attributes.get(budget.per, "")
    if not value.strip():
        raise InvalidInput(
            field=f"attributes.{budget.per}",
            reason=f"this event's budget is kept per {budget.per}: give it",
        )
    return value


# -- periods -----------------------------------------------------------------------------


def period_bounds(per: Period | str, day: date, tz: ZoneInfo) -> tuple[datetime, datetime] | None:
    """The local period `per` containing `day` as UTC instants [start, end); None for ever."""
    if per == "ever":
        return None
    if per == Period.DAY:
        start, end = day, day + timedelta(days=1)
    elif per == Period.WEEK:  # ISO: Monday to Sunday
        start = day - timedelta(days=day.weekday())
        end = start + timedelta(days=7)
    elif per == Period.MONTH:
        start = day.replace(day=1)
        end = (start + timedelta(days=32)).replace(day=1)
    elif per == Period.YEAR:
        start, end = date(day.year, 1, 1), date(day.year + 1, 1, 1)
    else:
        raise ValueError(f"unknown period {per!r}")
    return start_of_day(start, tz), start_of_day(end, tz)


def _rewarded_in_period(
    session: Session,
    program_id: int,
    member_id: int,
    event_type: str,
    limit: PositiveLimit,
    day: date,
    tz: ZoneInfo,
) -> int:
    """This member's events of the type that gave something, in the limit's period."""
    query = select(func.count()).where(
        BehaviourEvent.program_id == program_id,
        BehaviourEvent.member_id == member_id,
        BehaviourEvent.type == event_type,
        BehaviourEvent.status != EventStatus.LIMITED,
        or_(BehaviourEvent.points > 0, BehaviourEvent.growth > 0),
    )
    bounds = period_bounds(limit.per, day, tz)
    if bounds is not None:
        query = query.where(
            BehaviourEvent.occurred_at >= bounds[0], BehaviourEvent.occurred_at < bounds[1]
        )
    return int(session.execute(query).scalar_one())


# -- reads -------------------------------------------------------------------------------


def get_event(session: Session, program_id: int, event_id: int) -> BehaviourEvent:
    event = session.execute(
        select(BehaviourEvent).where(
            BehaviourEvent.id == event_id, BehaviourEvent.program_id == program_id
        )
    ).scalar_one_or_none()
    if event is None:
        raise NotFound(what="event", key=event_id)
    return event


def member_events(
    session: Session,
    program_id: int,
    member_id: int,
    *,
    types: list[str] | None = None,
    cursor: str | None = None,
    limit: int = 50,
) -> EventPage:
    """A member's events, newest first, `limit` at a time."""
    if not 1 <= limit <= 500:
        raise InvalidInput(field="limit", reason="between 1 and 500")
    members.get(session, program_id, member_id)
    query = (
        select(BehaviourEvent)
        .where(BehaviourEvent.program_id == program_id, BehaviourEvent.member_id == member_id)
        .order_by(BehaviourEvent.id.desc())
        .limit(limit + 1)
    )
    if types:
        query = query.where(BehaviourEvent.type.in_(types))
    if cursor:
        query = query.where(BehaviourEvent.id < decode_cursor(CURSOR, cursor))
    rows = list(session.execute(query).scalars())
    page, more = rows[:limit], len(rows) > limit
    return EventPage(
        items=[describe(session, event) for event in page],
        next_cursor=encode_cursor(CURSOR, page[-1].id) if more else None,
    )


def describe(session: Session, event: BehaviourEvent, *, repeat: bool = False) -> EventOut:
    """The event as the API shows it, with why it got less than its rule gives (read from
    the rule-set version it was recorded under)."""
    return EventOut(
        id=event.id,
        type=event.type,
        member_id=event.member_id,
        external_id=event.external_id,
        occurred_at=event.occurred_at,
        status=event.status,
        points=event.points,
        growth=event.growth,
        reason=_reason(session, event),
        rule_set_version=event.rule_set_version,
        points_transaction_id=event.points_txn_id,
        growth_transaction_id=event.growth_txn_id,
        attributes=event.attributes or {},
        created_at=event.created_at,
        actor=event.actor,
        repeat=repeat,
    )


def _reason(session: Session, event: BehaviourEvent) -> str | None:
    if event.status == EventStatus.AWARDED:
        return None
    rule = None
    if event.rule_set_version is not None:
        versioned = rules_at(session, event.program_id, event.rule_set_version)
        rule = next((r for r in versioned.rules.event_rules if r.type == event.type), None)
    if event.status == EventStatus.LIMITED:
        if rule is None or rule.limit is None:
            return "over the rule's frequency limit"
        limit = rule.limit
        if limit.per == "ever":
            often = "once ever" if limit.count == 1 else f"{limit.count} times ever"
        else:
            often = f"{limit.count} per {limit.per}"
        return f"over the limit of {often} for {event.type}: nothing given"
    if rule is None or rule.budget is None:
        return "the rule's budget was spent"
    budget = rule.budget
    scope = "in total" if budget.period == "total" else f"per {budget.period}"
    if budget.per is not None:
        scope += f" per {budget.per}"
    return (
        f"the {event.type} budget ({budget.points} points {scope}) had only "
        f"{event.points} points left"
    )
