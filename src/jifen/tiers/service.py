"""Tier changes: upgrades on the write that crosses a threshold, grants and revocations.

What this module guarantees:
- **Upgrade at once, in the crossing write's transaction.** `on_activity` is called by the
  earning services (a purchase's award, on record and on claim; a behaviour event or the
  birthday job giving growth value) after they have credited growth value, under the
  member's points-account lock they already hold. It reads the member's measures over the
  entering window and moves the member up to the highest qualifiable tier whose enter
  threshold they meet, several levels at once if so, writing `member_tiers` (created on
  the first upgrade), a `tier_history` row (reason `qualified`, with the measures, the
  threshold and the purchase or event that crossed it) and an outbox `tier.changed`. The
  purchase that crosses earns at the tier the member had before it (its member facts are
  read before its award). Nothing here ever lowers a tier: downgrades are the evaluation
  job's (`jifen.tiers.jobs`), so returns, spending and reversals only lower measures.
- **Grants** lift a member at once to the better of their qualified tier and their active
  grants; a revocation drops them at once to the better of what is left. A grant's
  `reference` (a paid membership's payment id) is unique per programme: the same
  reference sent again returns the first grant.
- Every change of a member's tier, or of the tier their record holds, is one
  `tier_history` row; every change of the tier itself is one outbox `tier.changed`.
- Writers of a member's tier rows hold that member's points-account lock first (the
  ledger's one lock per member), so one member's tier changes one write at a time.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Any, Protocol, cast
from zoneinfo import ZoneInfo

from sqlalchemy import Table, bindparam, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from jifen.core.clock import start_of_day
from jifen.core.cursors import decode_cursor, encode_cursor
from jifen.core.errors import InvalidInput, MemberClosed, NotFound
from jifen.db.bulk import among_bound, insert_new
from jifen.db.outbox import emit_many
from jifen.ledger.models import AccountStatus
from jifen.ledger.posting import Book, lock_account
from jifen.members import service as members
from jifen.programs.models import Program
from jifen.programs.tiers import Measure, Threshold, Tier, TierPolicy
from jifen.tiers.errors import (
    GrantEndsBeforeStart,
    GrantNotActive,
    GrantReferenceConflict,
    TiersNotConfigured,
    UnknownTier,
)
from jifen.tiers.measures import measure
from jifen.tiers.models import BenefitIssue, MemberTier, TierChange, TierGrant
from jifen.tiers.qualify import Measures, entered, near, needed, next_rank, shortfall
from jifen.tiers.schemas import GrantIn, GrantOut, HistoryItem, HistoryPage
from jifen.tiers.standing import policy_of
from jifen.tiers.windows import Span, windows

CURSOR = "t"
NEAR_PREFIX = "near-upgrade:"
"""`tier_benefit_issues.benefit` of a near-upgrade notice: once per tier and period."""


class Reason(StrEnum):
    QUALIFIED = "qualified"
    DOWNGRADED = "downgraded"
    GRANTED = "granted"
    GRANT_ENDED = "grant_ended"
    GRANT_REVOKED = "grant_revoked"
    GRACE_STARTED = "grace_started"
    GRACE_CLEARED = "grace_cleared"


# -- small helpers shared with the job and the reads -------------------------------------


def require_policy(program: Program) -> TierPolicy:
    policy = policy_of(program)
    if policy is None:
        raise TiersNotConfigured()
    return policy


def tz_of(program: Program) -> ZoneInfo:
    return ZoneInfo(program.timezone)


def row_of(session: Session, program_id: int, member_id: int) -> MemberTier | None:
    return session.execute(
        select(MemberTier).where(
            MemberTier.program_id == program_id, MemberTier.member_id == member_id
        )
    ).scalar_one_or_none()


def new_row(
    session: Session,
    policy: TierPolicy,
    program_id: int,
    member_id: int,
    now: datetime,
    *,
    flush: bool = True,
) -> MemberTier:
    """A member's first tier row: the base tier (where everyone starts)."""
    row = MemberTier(
        program_id=program_id,
        member_id=member_id,
        tier=policy.base.code,
        qualified_tier=policy.base.code,
        since=now,
        grace_until=None,
        evaluated_at=None,
        updated_at=now,
    )
    session.add(row)
    if flush:
        session.flush()
    return row


def active_grants(
    session: Session, program_id: int, member_ids: Sequence[int], now: datetime
) -> dict[int, list[TierGrant]]:
    """Each member's grants in force at `now` (neither revoked nor ended)."""
    found: dict[int, list[TierGrant]] = {member_id: [] for member_id in member_ids}
    if not member_ids:
        return found
    for grant in session.execute(
        select(TierGrant)
        .where(
            TierGrant.program_id == program_id,
            TierGrant.member_id.in_(list(member_ids)),
            TierGrant.revoked_at.is_(None),
            TierGrant.starts_at <= now,
            TierGrant.ends_at > now,
        )
        .order_by(TierGrant.id)
    ).scalars():
        found[grant.member_id].append(grant)
    return found


def best_grant(policy: TierPolicy, grants: Sequence[TierGrant]) -> TierGrant | None:
    """The grant giving the highest tier (of equals, the one lasting longest)."""
    ranked = [g for g in grants if policy.get(g.tier) is not None]
    if not ranked:
        return None
    return max(ranked, key=lambda g: (policy.rank(g.tier), g.ends_at, g.id))


def effective(
    policy: TierPolicy, qualified: int, grants: Sequence[TierGrant]
) -> tuple[int, TierGrant | None]:
    """The member's tier: the better of their qualified tier and their grants, with the
    grant that holds it (None when the record does)."""
    grant = best_grant(policy, grants)
    if grant is not None and policy.rank(grant.tier) > qualified:
        return policy.rank(grant.tier), grant
    return qualified, None


def measures_json(
    measures: Measures, which: Collection[Measure] = tuple(Measure)
) -> dict[str, Any]:
    """The measures read (`which`) as JSON: growth and purchases whole, spend a string."""
    return {
        m.value: str(measures.get(m, Decimal(0)))
        if m == Measure.SPEND
        else int(measures.get(m, Decimal(0)))
        for m in Measure
        if m in which
    }


def threshold_json(threshold: Threshold | None) -> dict[str, Any] | None:
    if threshold is None:
        return None
    return threshold.model_dump(mode="json", exclude_none=True)


def span_json(span: Span, tz: ZoneInfo) -> dict[str, str | None]:
    return span.as_dict(tz)


class Standing(Protocol):
    """A member's tier row as `change` reads and sets it: the ORM row (`MemberTier`) or
    the evaluation job's plain row."""

    member_id: int
    tier: str
    qualified_tier: str
    since: datetime
    updated_at: datetime


def change(
    program_id: int,
    row: Standing,
    *,
    tier: str,
    qualified: str,
    reason: Reason,
    details: dict[str, Any],
    now: datetime,
    actor: str,
    always: bool = False,
) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """Set the member's tier and qualified tier on `row`. Returns the history row's values
    when either changes (or `always`; else None) and the `tier.changed` outbox event when
    the tier does (else None)."""
    before, before_qualified = row.tier, row.qualified_tier
    changed = tier != before
    if not changed and qualified == before_qualified and not always:
        return None, None
    if qualified != before_qualified:
        details = {**details, "qualified": {"from": before_qualified, "to": qualified}}
        row.qualified_tier = qualified
    if changed:
        row.tier = tier
        row.since = now
    row.updated_at = now
    history = {
        "program_id": program_id,
        "member_id": row.member_id,
        "from_tier": before,
        "to_tier": tier,
        "reason": reason.value,
        "details": details,
        "at": now,
        "actor": actor,
    }
    if not changed:
        return history, None
    payload = {"from": before, "to": tier, "reason": reason.value, "qualified_tier": qualified}
    return history, {
        "program_id": program_id,
        "member_id": row.member_id,
        "type": "tier.changed",
        "payload": payload,
        "occurred_at": now,
    }


def move(
    session: Session,
    row: MemberTier,
    *,
    tier: str,
    qualified: str,
    reason: Reason,
    details: dict[str, Any],
    now: datetime,
    actor: str,
    outbox: list[dict[str, Any]],
    always: bool = False,
) -> bool:
    """`change` on the ORM row: the history row added to the session, the `tier.changed`
    event to `outbox`. Returns whether the tier changed."""
    history, changed = change(
        row.program_id,
        row,
        tier=tier,
        qualified=qualified,
        reason=reason,
        details=details,
        now=now,
        actor=actor,
        always=always,
    )
    if history is not None:
        session.add(TierChange(**history))
    if changed is not None:
        outbox.append(changed)
    return changed is not None


def event(row: MemberTier, type: str, now: datetime, payload: dict[str, Any]) -> dict[str, Any]:
    return {
        "program_id": row.program_id,
        "member_id": row.member_id,
        "type": type,
        "payload": payload,
        "occurred_at": now,
    }


@dataclass(frozen=True)
class Near:
    """A member to tell of a near upgrade if they are near one: their tier's rank now,
    their measures, and which of them were read."""

    member_id: int
    current: int
    measures: Measures
    which: Collection[Measure] = tuple(Measure)


def notify_near_many(
    session: Session,
    policy: TierPolicy,
    program_id: int,
    candidates: Sequence[Near],
    period: str,
    now: datetime,
) -> list[dict[str, Any]]:
    """An outbox `tier.near_upgrade` row for each member within 10% of the next tier's
    enter threshold, once per tier and period (`tell_near`)."""
    due: list[tuple[Near, Tier]] = []
    for candidate in candidates:
        target = next_rank(policy, candidate.current)
        if target is None:
            continue
        tier = policy.levels[target]
        if tier.enter is not None and near(tier.enter, candidate.measures):
            due.append((candidate, tier))
    return tell_near(session, policy, program_id, due, period, now)


_ISSUES = cast(Table, BenefitIssue.__table__)


def tell_near(
    session: Session,
    policy: TierPolicy,
    program_id: int,
    due: Sequence[tuple[Near, Tier]],
    period: str,
    now: datetime,
) -> list[dict[str, Any]]:
    """Record a near-upgrade notice (`tier_benefit_issues`, benefit `near:<tier>`) for each
    (member, next tier) of `due` not yet told this period, in one statement, and return
    the outbox `tier.near_upgrade` rows of the notices written. Told already is a clash on
    the notice's unique key: ON CONFLICT DO NOTHING skips it (waiting, on PostgreSQL, for
    a concurrent insert of the same notice to commit or roll back) and RETURNING names
    the notices written (`jifen.db.bulk.insert_new`: the job's hundreds as arrays)."""
    if not due:
        return []
    issues: list[dict[str, Any]] = []
    outbox: list[dict[str, Any]] = []
    for candidate, tier in due:
        assert tier.enter is not None
        missing = {m.value: str(n) for m, n in shortfall(tier.enter, candidate.measures).items()}
        current = policy.levels[candidate.current].code
        issues.append(
            {
                "program_id": program_id,
                "member_id": candidate.member_id,
                "benefit": NEAR_PREFIX + tier.code,
                "period": period,
                "tier": current,
                "details": {
                    "measures": measures_json(candidate.measures, candidate.which),
                    "missing": missing,
                },
                "issued_at": now,
            }
        )
        outbox.append(
            {
                "program_id": program_id,
                "member_id": candidate.member_id,
                "type": "tier.near_upgrade",
                "payload": {
                    "tier": current,
                    "next": tier.code,
                    "missing": missing,
                    "period": period,
                },
                "occurred_at": now,
            }
        )
    written = {
        (m, b)
        for m, b in insert_new(
            session,
            _ISSUES,
            issues,
            ["program_id", "member_id", "benefit", "period"],
            ["member_id", "benefit"],
        )
    }
    return [
        row
        for issue, row in zip(issues, outbox, strict=True)
        if (issue["member_id"], issue["benefit"]) in written
    ]


# -- upgrades on activity ---------------------------------------------------------------


_ROWS = select(MemberTier).where(
    MemberTier.program_id == bindparam("program_id"),
    among_bound(MemberTier.member_id, "member_ids"),
)
"""Members' tier rows (built once)."""


def on_activity(
    session: Session,
    program: Program,
    member_id: int,
    *,
    now: datetime,
    actor: str,
    cause: dict[str, Any],
    rows: Mapping[int, MemberTier] | None = None,
    outbox: list[dict[str, Any]] | None = None,
) -> str | None:
    """After a write that may raise the member's measures (under the member's points-account
    lock, which the caller holds): move them up to the highest tier they now enter.
    Returns the new tier's code when the tier changed. See the module's docstring.
    `rows` and `outbox`: as in `on_activity_many`."""
    return on_activity_many(
        session, program, {member_id: cause}, now=now, actor=actor, rows=rows, outbox=outbox
    ).get(member_id)


def on_activity_many(
    session: Session,
    program: Program,
    causes: Mapping[int, dict[str, Any]],
    *,
    now: datetime,
    actor: str,
    rows: Mapping[int, MemberTier] | None = None,
    outbox: list[dict[str, Any]] | None = None,
) -> dict[int, str]:
    """`on_activity` for a batch of members (member id → the write that may have raised
    their measures), each under the account lock the caller holds, with one query per
    measure for the batch. Returns the new tier of each member whose tier changed.
    `rows`: the members' tier rows (by member id, a member without one left out) when the
    caller has read them under that lock already; read here when None. `outbox`: where
    to leave the events, for the caller to write with its own (else written here)."""
    policy = policy_of(program)
    if policy is None or len(policy.levels) < 2 or not causes:
        return {}
    if rows is None:
        rows = {
            row.member_id: row
            for row in session.execute(
                _ROWS, {"program_id": program.id, "member_ids": list(causes)}
            ).scalars()
        }
    qualified = {m: policy.rank(rows[m].qualified_tier) if m in rows else 0 for m in causes}
    which = {m: needed(policy, range(qualified[m] + 1, len(policy.levels))) for m in causes}
    asked = [m for m in causes if which[m]]
    if not asked:
        return {}
    tz = tz_of(program)
    win = windows(policy.window, now, tz)
    measured = measure(session, program.id, asked, win.enter, set().union(*which.values()))
    events: list[dict[str, Any]] = []
    changed: dict[int, str] = {}
    candidates: list[Near] = []
    for member_id in asked:
        measures = measured[member_id]
        reached = entered(policy, qualified[member_id], measures)
        row = rows.get(member_id)
        current = policy.rank(row.tier) if row is not None else 0
        if reached > qualified[member_id]:
            if row is None:
                row = new_row(session, policy, program.id, member_id, now, flush=False)
            tier = policy.levels[reached]
            # Never lower here: a tier held by a grant that ended awaits the evaluation job.
            current = max(current, reached)
            details = {
                "measures": measures_json(measures, which[member_id]),
                "threshold": threshold_json(tier.enter),
                "window": span_json(win.enter, tz),
                "cause": causes[member_id],
            }
            row.grace_until = None  # the record now holds more than the tier it was losing
            if move(
                session,
                row,
                tier=policy.levels[current].code,
                qualified=tier.code,
                reason=Reason.QUALIFIED,
                details=details,
                now=now,
                actor=actor,
                outbox=events,
            ):
                changed[member_id] = row.tier
        candidates.append(Near(member_id, current, measures, which[member_id]))
    session.flush()
    events.extend(notify_near_many(session, policy, program.id, candidates, win.period, now))
    if outbox is not None:
        outbox.extend(events)
    else:
        emit_many(session, events)
    return changed


# -- grants -----------------------------------------------------------------------------


def _lock_member(session: Session, book: Book, member_id: int, now: datetime) -> None:
    account = lock_account(session, book, member_id, now)
    if account.status == AccountStatus.CLOSED:
        raise MemberClosed(member_id=member_id)


def grant(
    session: Session,
    program: Program,
    book: Book,
    member_id: int,
    data: GrantIn,
    *,
    now: datetime,
    actor: str,
) -> tuple[TierGrant, bool]:
    """Give a member a tier until an end date; (the grant, whether it is new). The same
    `reference` for the same member, tier and kind returns the first grant."""
    policy = require_policy(program)
    _lock_member(session, book, member_id, now)
    grantable = [tier.code for tier in policy.levels[1:]]
    if data.tier not in grantable:
        raise UnknownTier(tier=data.tier, known=", ".join(grantable) or "—")
    tz = tz_of(program)
    if data.ends_at is not None:
        ends_at = data.ends_at.astimezone(UTC)
    else:
        assert data.days is not None
        ends_at = start_of_day(now.astimezone(tz).date() + timedelta(days=data.days), tz)
    if ends_at <= now:
        raise GrantEndsBeforeStart(starts_at=now.isoformat(), ends_at=ends_at.isoformat())
    if data.reference is not None:
        existing = _by_reference(session, program.id, data.reference)
        if existing is not None:
            return _same_grant(existing, member_id, data), False
    row = TierGrant(
        program_id=program.id,
        member_id=member_id,
        tier=data.tier,
        kind=data.kind,
        starts_at=now,
        ends_at=ends_at,
        reason=data.reason,
        reference=data.reference,
        revoked_at=None,
        created_at=now,
        actor=actor,
    )
    try:
        with session.begin_nested():
            session.add(row)
            session.flush()
    except IntegrityError:  # the same reference, granted a moment ago to another member
        assert data.reference is not None
        existing = _by_reference(session, program.id, data.reference)
        assert existing is not None
        return _same_grant(existing, member_id, data), False
    standing = row_of(session, program.id, member_id) or new_row(
        session, policy, program.id, member_id, now
    )
    grants = active_grants(session, program.id, [member_id], now)[member_id]
    rank, _ = effective(policy, policy.rank(standing.qualified_tier), grants)
    rank = max(rank, policy.rank(standing.tier))  # a grant never lowers anyone
    outbox: list[dict[str, Any]] = []
    move(
        session,
        standing,
        tier=policy.levels[rank].code,
        qualified=standing.qualified_tier,
        reason=Reason.GRANTED,
        details={"grant": _grant_json(row)},
        now=now,
        actor=actor,
        outbox=outbox,
        always=True,
    )
    outbox.append(event(standing, "tier.granted", now, {"grant": _grant_json(row)}))
    emit_many(session, outbox)
    return row, True


def revoke(
    session: Session,
    program: Program,
    book: Book,
    member_id: int,
    grant_id: int,
    *,
    reason: str | None,
    now: datetime,
    actor: str,
) -> tuple[TierGrant, bool]:
    """End a grant now; the member falls at once to the better of their qualified tier and
    their other grants. Revoking a revoked grant returns it unchanged."""
    policy = require_policy(program)
    _lock_member(session, book, member_id, now)
    found = session.execute(
        select(TierGrant).where(
            TierGrant.id == grant_id,
            TierGrant.program_id == program.id,
            TierGrant.member_id == member_id,
        )
    ).scalar_one_or_none()
    if found is None:
        raise NotFound(what="grant", key=grant_id)
    if found.revoked_at is not None:
        return found, False
    if found.ends_at <= now:
        raise GrantNotActive(grant_id=grant_id, ended_at=found.ends_at.isoformat())
    found.revoked_at = now
    session.flush()
    standing = row_of(session, program.id, member_id) or new_row(
        session, policy, program.id, member_id, now
    )
    grants = active_grants(session, program.id, [member_id], now)[member_id]
    rank, _ = effective(policy, policy.rank(standing.qualified_tier), grants)
    outbox: list[dict[str, Any]] = []
    move(
        session,
        standing,
        tier=policy.levels[rank].code,
        qualified=standing.qualified_tier,
        reason=Reason.GRANT_REVOKED,
        details={"grant": _grant_json(found), "why": reason},
        now=now,
        actor=actor,
        outbox=outbox,
        always=True,
    )
    emit_many(session, outbox)
    return found, True


def _by_reference(session: Session, program_id: int, reference: str) -> TierGrant | None:
    return session.execute(
        select(TierGrant).where(
            TierGrant.program_id == program_id, TierGrant.reference == reference
        )
    ).scalar_one_or_none()


def _same_grant(existing: TierGrant, member_id: int, data: GrantIn) -> TierGrant:
    if (existing.member_id, existing.tier, existing.kind) != (member_id, data.tier, data.kind):
        raise GrantReferenceConflict(
            reference=existing.reference,
            grant_id=existing.id,
            member_id=existing.member_id,
            tier=existing.tier,
            kind=existing.kind,
        )
    return existing


def _grant_json(grant: TierGrant) -> dict[str, Any]:
    return {
        "id": grant.id,
        "tier": grant.tier,
        "kind": grant.kind,
        "ends_at": grant.ends_at.isoformat(),
        "reference": grant.reference,
        "reason": grant.reason,
    }


def describe_grant(grant: TierGrant, now: datetime) -> GrantOut:
    return GrantOut(
        id=grant.id,
        member_id=grant.member_id,
        tier=grant.tier,
        kind=grant.kind,
        starts_at=grant.starts_at,
        ends_at=grant.ends_at,
        reason=grant.reason,
        reference=grant.reference,
        revoked_at=grant.revoked_at,
        active=grant.revoked_at is None and grant.starts_at <= now < grant.ends_at,
        created_at=grant.created_at,
        actor=grant.actor,
    )


# -- reading ----------------------------------------------------------------------------


def history(
    session: Session,
    program_id: int,
    member_id: int,
    *,
    cursor: str | None = None,
    limit: int = 50,
) -> HistoryPage:
    """A member's tier history, newest first."""
    if not 1 <= limit <= 500:
        raise InvalidInput(field="limit", reason="between 1 and 500")
    members.get(session, program_id, member_id)
    query = (
        select(TierChange)
        .where(TierChange.program_id == program_id, TierChange.member_id == member_id)
        .order_by(TierChange.id.desc())
        .limit(limit + 1)
    )
    if cursor:
        query = query.where(TierChange.id < decode_cursor(CURSOR, cursor))
    rows = list(session.execute(query).scalars())
    page, more = rows[:limit], len(rows) > limit
    return HistoryPage(
        items=[
            HistoryItem(
                id=row.id,
                from_tier=row.from_tier,
                to_tier=row.to_tier,
                reason=row.reason,
                details=row.details,
                at=row.at,
                actor=row.actor,
            )
            for row in page
        ],
        next_cursor=encode_cursor(CURSOR, page[-1].id) if more else None,
    )


def grants_of(
    session: Session, program_id: int, member_id: int, now: datetime, *, active_only: bool
) -> list[GrantOut]:
    query = select(TierGrant).where(
        TierGrant.program_id == program_id, TierGrant.member_id == member_id
    )
    if active_only:
        query = query.where(
            TierGrant.revoked_at.is_(None), TierGrant.starts_at <= now, TierGrant.ends_at > now
        )
    return [
        describe_grant(grant, now)
        for grant in session.execute(query.order_by(TierGrant.id.desc())).scalars()
    ]
