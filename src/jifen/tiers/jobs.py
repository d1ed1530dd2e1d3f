"""The tier jobs (PRODUCT.md T2–T4, O1): evaluation, periodic benefits, birthday gifts.

Each function does one batch for one programme in the caller's transaction; the job
runner (`jifen.jobs.runner`) commits batch after batch until one finds nothing. Members'
points accounts are locked with SKIP LOCKED (a member busy with a purchase is left for the
next batch or run), and every write is keyed so that a rerun, a crash midway or two
workers at once never do anything twice.

**Evaluation** (`evaluate`, job `tiers`) — the only place a tier ever goes down. It takes
the members with a `member_tiers` row not yet evaluated at this instant, reads their
measures set-based, and for each:
1. a tier held by a grant that has ended falls to the better of the qualified tier and the
   grants still in force (`grant_ended`; no grace: the end date was known from the start);
2. the tier the record supports (`jifen.tiers.qualify.supported`) above the qualified
   tier: upgrade (`qualified`); equal: a grace period in course is cleared
   (`grace_cleared`); below: a grace period starts (`grace_started`, outbox
   `tier.grace_started`: the "facing a downgrade" reminder) until the end of the
   programme-local day `grace_days` on, and the first evaluation after it downgrades by
   the policy (`one_down`: max(qualified − 1, supported); `supported`: to the supported
   tier), history `downgraded`. Never a downgrade inside the grace period; with
   `grace_days: 0` there is none and the downgrade is immediate;
3. a member within 10% of the next tier's enter threshold gets an outbox
   `tier.near_upgrade`, once per tier and period.
`evaluated_at = now` marks the member done, so a second run at the same instant changes
nothing.

**Periodic benefits** (`periodic_benefits`, job `tier-benefits`) — each tier's `periodic`
rewards, given (`jifen.rewards.redemptions.give`, source `benefit`) to each active member
of the tier once per local month / quarter / year. The unique `tier_benefit_issues` row
(`<tier>:<reward>:<every>`, period `2027-03` / `2027-Q1` / `2027`) is written in the
same savepoint as the gift. A reward withdrawn or out of stock is skipped without a
record, so members get it when it is back within the period; any other refusal of the
gift is recorded (details `refused`) so the job cannot loop on it.

**Birthday gifts** (`birthday_gifts`, run by the `birthday` job) — the tier's
`birthday_gift` (points, available at once, and/or a reward with source `birthday`), on
the local birthday (or any day of the birthday month when the programme's birthday rule
says `window: month`), once per member per year (`tier_benefit_issues` benefit
`birthday`, period the year), for the tier the member is in on that day.
"""

from __future__ import annotations

import calendar
from collections.abc import Sequence
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any, cast
from zoneinfo import ZoneInfo

from sqlalchemy import (
    ColumnElement,
    Numeric,
    Table,
    and_,
    bindparam,
    case,
    exists,
    extract,
    false,
    func,
    literal,
    or_,
    select,
    true,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from jifen.core.clock import start_of_day
from jifen.core.errors import JifenError
from jifen.db.bulk import among, among_bound, update_rows, write_rows
from jifen.db.outbox import EVENTS, emit_many
from jifen.ledger import service as ledger
from jifen.ledger.jobs import StepResult
from jifen.ledger.models import Account, AccountKind, AccountStatus
from jifen.members.models import Member
from jifen.members.schemas import MemberStatus
from jifen.programs.models import Program
from jifen.programs.rulesets import current_rules
from jifen.programs.service import book_for
from jifen.programs.tiers import (
    DowngradePolicy,
    Measure,
    PeriodicBenefit,
    Threshold,
    Tier,
    TierPolicy,
)
from jifen.rewards.errors import OutOfStock
from jifen.rewards.models import Reward
from jifen.rewards.redemptions import give
from jifen.tiers.measures import growth_of, measure_spans, purchases_of, span_totals, spend_of
from jifen.tiers.models import BenefitIssue, MemberTier, TierChange, TierGrant
from jifen.tiers.qualify import NEAR, Measures, better, next_rank, zero
from jifen.tiers.service import (
    NEAR_PREFIX,
    Near,
    Reason,
    best_grant,
    change,
    measures_json,
    span_json,
    tell_near,
    threshold_json,
    tz_of,
)
from jifen.tiers.standing import policy_of
from jifen.tiers.windows import Span, Windows, period_key, windows

ACTOR = "job:tiers"
BENEFITS_ACTOR = "job:tier-benefits"
BIRTHDAY_ACTOR = "job:birthday"
BIRTHDAY_BENEFIT = "birthday"


# -- evaluation ---------------------------------------------------------------------------


def evaluate(
    session: Session,
    program: Program,
    now: datetime,
    *,
    limit: int = 500,
    in_sql: bool | None = None,
) -> StepResult:
    """Evaluate one batch of members (see the module's docstring). Returns the members
    evaluated (`accounts`) and the history rows written (`items`).

    Set-based: the batch's tier rows, measures (every window in one query per measure
    kind), grants and near-upgrade notices are read in a few statements; each member is
    decided in Python from them; then the rows that changed are written in one statement
    per table (`update_rows`, `write_rows`), and the members with nothing to record get
    `evaluated_at` in one UPDATE.

    On PostgreSQL the members with nothing to do never reach Python: one statement
    measures the batch, decides in SQL which members the record holds where they are
    with nothing to record or tell (`_Quiet`), sets their `evaluated_at` and returns the
    others, which are decided as above. `in_sql`: False decides everyone in Python there
    too (the tests hold both ways equal)."""
    policy = policy_of(program)
    if policy is None:
        return StepResult()
    postgres = session.get_bind().dialect.name == "postgresql"
    in_sql = postgres if in_sql is None else in_sql and postgres
    columns = _BRIEF if in_sql else _FULL
    due = _lock_due(session, program.id, now, limit, columns)
    if not due:
        return StepResult()
    ladder = _ladder(policy)
    tz = tz_of(program)
    win = windows(policy.window, now, tz)
    spans = list(dict.fromkeys((win.enter, *win.keep)))
    if in_sql:
        found, by_span = _settle_quiet(
            session, program.id, policy, ladder, win, spans, [row[0] for row in due], now
        )
    else:
        found = due
        by_span = measure_spans(session, program.id, [row[1] for row in due], spans)
    rows = {row[1]: _Standing(*row[: len(_Standing.COLUMNS)]) for row in found}
    ids = list(rows)
    active = {row[1] for row in found if row[len(_Standing.COLUMNS)] == AccountStatus.ACTIVE}
    measured = dict(zip(spans, by_span, strict=True))
    enter = measured[win.enter]
    if len(win.keep) == 1:
        keep: dict[int, Measures] = dict(measured[win.keep[0]])
    else:
        keep = {m: better(*(measured[span][m] for span in win.keep)) for m in ids}
    grants = _active_grants(session, program.id, ids, now) if ids else {}
    window = span_json(win.enter, tz)
    history: list[dict[str, Any]] = []
    outbox: list[dict[str, Any]] = []
    near: list[Near] = []
    for member_id in ids:
        row = rows[member_id]
        _evaluate_one(
            session,
            program.id,
            policy,
            ladder,
            tz,
            row,
            window,
            len(win.keep) > 1,
            enter[member_id],
            keep[member_id],
            grants.get(member_id, ()),
            now,
            history,
            outbox,
        )
        if member_id in active:
            near.append(Near(member_id, ladder.rank(row.tier), enter[member_id]))
    changed = [row for row in rows.values() if row.changed()]
    update_rows(
        session,
        _TIERS,
        ["id"],
        [
            {
                "id": row.id,
                "tier": row.tier,
                "qualified_tier": row.qualified_tier,
                "since": row.since,
                "grace_until": row.grace_until,
                "updated_at": row.updated_at,
                "evaluated_at": now,
            }
            for row in changed
        ],
    )
    untouched = [row.id for row in rows.values() if not row.changed()]
    if untouched:
        session.connection().execute(
            update(_TIERS).where(among(_TIERS.c.id, untouched)).values(evaluated_at=now)
        )
    write_rows(session, _HISTORY, history)
    outbox.extend(_tell_near(session, policy, ladder, program.id, near, win.period, now))
    write_rows(session, EVENTS, outbox)
    return StepResult(accounts=len(due), items=len(history))


_RESUME: dict[int, tuple[datetime, int]] = {}
"""Per programme, the evaluation instant and the last points-account id a batch of this
process took at it (see `_lock_due`)."""


def _points_account(program_id: int, *more: Any) -> Any:
    """A tier row's join to its member's points account (and `more` conditions)."""
    return and_(
        _ACCOUNTS.c.program_id == program_id,
        _ACCOUNTS.c.member_id == _TIERS.c.member_id,
        _ACCOUNTS.c.kind == AccountKind.POINTS,
        *more,
    )


def _lock_due(
    session: Session, program_id: int, now: datetime, limit: int, columns: Sequence[Any]
) -> list[Any]:
    """Lock and read the next members to evaluate at `now`: `columns` of their tier rows
    and points accounts (the last the account id), in account order.

    The tier rows are locked with the accounts: a purchase that upgraded a member and
    committed while this ran (it holds the account's lock while it writes the row) is read
    as it left the row, not as this statement's snapshot had it.

    Without an index on `evaluated_at`, finding the first members not yet evaluated means
    stepping over every account evaluated before them, so each batch of a run would cost
    more than the last. The batch looks first past the last account the previous batch of
    this process took at the same instant, and from the start only for what that leaves
    short of `limit` (members skipped because they were busy, or left by another worker):
    the same members in the end, each once; a run ends on a batch that found none."""
    resume = _RESUME.get(program_id)
    after = resume[1] if resume is not None and resume[0] == now else None
    connection = session.connection()

    def due(n: int, above: int | None, upto: int | None) -> list[Any]:
        query = (
            select(*columns)
            .join(_ACCOUNTS, _points_account(program_id))
            .where(
                _TIERS.c.program_id == program_id,
                or_(_TIERS.c.evaluated_at.is_(None), _TIERS.c.evaluated_at < now),
            )
            .order_by(_ACCOUNTS.c.id)
            .limit(n)
            .with_for_update(of=[_ACCOUNTS, _TIERS], skip_locked=True)
        )
        if above is not None:
            query = query.where(_ACCOUNTS.c.id > above)
        if upto is not None:
            query = query.where(_ACCOUNTS.c.id <= upto)
        return list(connection.execute(query).all())

    found = due(limit, after, None)
    if after is not None and len(found) < limit:
        found += due(limit - len(found), None, after)
    if found:
        _RESUME[program_id] = (now, max(row[-1] for row in found))
    else:
        _RESUME.pop(program_id, None)
    return found


_TIERS = cast(Table, MemberTier.__table__)
_ACCOUNTS = cast(Table, Account.__table__)
_HISTORY = cast(Table, TierChange.__table__)
_NOTICES = cast(Table, BenefitIssue.__table__)


class _Standing:
    """A member's tier row as the job reads and changes it (in place of the ORM row: no
    identity map, no unit of work; the job writes what changed itself)."""

    __slots__ = (
        "grace_until",
        "id",
        "member_id",
        "qualified_tier",
        "read",
        "since",
        "tier",
        "updated_at",
    )
    COLUMNS = ("id", "member_id", "tier", "qualified_tier", "since", "grace_until", "updated_at")
    """What the job reads of `member_tiers`: the constructor's arguments, in order."""

    def __init__(
        self,
        id: int,
        member_id: int,
        tier: str,
        qualified_tier: str,
        since: datetime,
        grace_until: datetime | None,
        updated_at: datetime,
    ) -> None:
        self.id = id
        self.member_id = member_id
        self.tier = tier
        self.qualified_tier = qualified_tier
        self.since = since
        self.grace_until = grace_until
        self.updated_at = updated_at
        self.read = self._state()

    def _state(self) -> tuple[Any, ...]:
        return (self.tier, self.qualified_tier, self.since, self.grace_until, self.updated_at)

    def changed(self) -> bool:
        return self._state() != self.read


_FULL = (*(_TIERS.c[name] for name in _Standing.COLUMNS), _ACCOUNTS.c.status, _ACCOUNTS.c.id)
"""What `_lock_due` reads for the evaluation in Python: the tier row, the account's status
and id."""
_BRIEF = (_TIERS.c.member_id, _ACCOUNTS.c.id)
"""What `_lock_due` reads when the batch is decided in SQL (`_settle_quiet` reads the rest)."""


Pairs = tuple[tuple[Measure, Decimal], ...]


class _Ladder:
    """The policy's levels as the job asks them of every member: ranks by code, and each
    threshold as (measure, need) pairs built once (`Threshold.measures()` builds a dict
    at each call). Answers as `jifen.tiers.qualify` does (tests/tiers hold them equal)."""

    def __init__(self, policy: TierPolicy) -> None:
        levels = policy.levels
        self.ranks: dict[str, int] = {}
        for rank, tier in enumerate(levels):
            self.ranks.setdefault(tier.code, rank)
        self.enter = [_pairs(tier.enter) for tier in levels]
        self.keep = [_pairs(tier.keep) for tier in levels]
        self.qualifiable = [tier.qualifiable for tier in levels]
        self.next: list[int | None] = [next_rank(policy, rank) for rank in range(len(levels))]
        self.named: set[Measure] = {
            m
            for rank in range(1, len(levels))
            if self.qualifiable[rank]
            for pairs in (self.enter[rank], self.keep[rank])
            for m, _ in pairs or ()
        }
        """The measures the thresholds a record can reach name: all the decision reads."""
        self.almost = [
            tuple((m, need * NEAR) for m, need in pairs if need > 0) if pairs else ()
            for pairs in self.enter
        ]

    def rank(self, code: str) -> int:
        return self.ranks.get(code, 0)

    def supported(self, current: int, enter: Measures, keep: Measures) -> int:
        """`jifen.tiers.qualify.supported`."""
        for rank in range(len(self.enter) - 1, 0, -1):
            if not self.qualifiable[rank]:
                continue
            if rank <= current:
                if _meets(self.keep[rank], keep):
                    return rank
            elif _meets(self.enter[rank], enter):
                return rank
        return 0

    def near(self, current: int, measures: Measures) -> int | None:
        """The next tier's rank when `measures` are near its enter threshold
        (`jifen.tiers.qualify.next_rank` and `near`), else None."""
        target = self.next[current]
        if target is None:
            return None
        pairs = self.enter[target]
        if pairs is None or _meets(pairs, measures):
            return None
        for m, need in self.almost[target]:
            if measures.get(m, ZERO) >= need:
                return target
        return None


ZERO = Decimal(0)


def _pairs(threshold: Threshold | None) -> Pairs | None:
    return None if threshold is None else tuple(threshold.measures().items())


def _meets(pairs: Pairs | None, measures: Measures) -> bool:
    if pairs is None:
        return False
    for m, need in pairs:  # noqa: SIM110 (a loop, not any(): no generator per member)
        if measures.get(m, ZERO) >= need:
            return True
    return False


_LADDERS: dict[int, tuple[TierPolicy, _Ladder]] = {}


def _ladder(policy: TierPolicy) -> _Ladder:
    """The policy's ladder, built once per parsed policy (`policy_of` keeps those)."""
    cached = _LADDERS.get(id(policy))
    if cached is not None and cached[0] is policy:
        return cached[1]
    ladder = _Ladder(policy)
    _LADDERS[id(policy)] = (policy, ladder)
    return ladder


def _settle_quiet(
    session: Session,
    program_id: int,
    policy: TierPolicy,
    ladder: _Ladder,
    win: Windows,
    spans: list[Span],
    member_ids: list[int],
    now: datetime,
) -> tuple[list[Any], list[dict[int, dict[Measure, Decimal]]]]:
    """PostgreSQL: in one statement, measure the locked members `member_ids` (the
    measures the thresholds name, `span_totals`), set `evaluated_at = now` on the rows of
    those with nothing to do (`_Quiet`) and return the others: their tier rows and account
    status as `_FULL` reads them (in the order of `member_ids`), and their measures in
    each of `spans` as `measure_spans` gives them.

    A statement of its own after `_lock_due`, not part of it: its snapshot is taken once
    the batch is locked, so it counts whatever a purchase committed before the lock was
    taken (in the locking statement's own snapshot, a purchase that committed while it
    waited would be missing from the measures while its upgrade is in the row)."""
    decision = _decision(program_id, policy, ladder, win, spans)
    width = len(_Standing.COLUMNS) + 1
    connection = session.connection()
    # Planned for this batch's ids: psycopg prepares a statement run five times, and
    # PostgreSQL's generic plan for this one guesses a handful of rows for `= ANY(:ids)`,
    # nests loops over the batch's aggregate and casts the ids' text at every row (a
    # batch took 30 times as long). For this statement alone (the setting is put back
    # after it): planning the batch's other statements every time costs more than their
    # generic plans do.
    (mode,) = connection.exec_driver_sql(
        "SELECT current_setting('plan_cache_mode'), "
        "set_config('plan_cache_mode', 'force_custom_plan', true)"
    ).one()[:1]
    busy = list(connection.execute(decision.statement, {"member_ids": member_ids, "now": now}))
    connection.execute(select(func.set_config("plan_cache_mode", mode, True)))
    order = {member_id: i for i, member_id in enumerate(member_ids)}
    busy.sort(key=lambda row: order[row[1]])
    busy_ids = [row[1] for row in busy]
    rest = [m for m in Measure if m not in decision.measured]
    by_span = measure_spans(session, program_id, busy_ids, spans, rest) if rest else None
    if by_span is None:
        nothing = zero()
        by_span = [{m: dict(nothing) for m in busy_ids} for _ in spans]
    n = len(spans)
    for row in busy:
        sums = row[width:]  # each span's growth, then spend, then purchases
        k = 0
        if Measure.GROWTH in decision.measured:
            for i, answer in enumerate(by_span):
                answer[row[1]][Measure.GROWTH] = growth_of(sums[i])
            k = n
        if Measure.SPEND in decision.measured:
            for i, answer in enumerate(by_span):
                answer[row[1]][Measure.SPEND] = spend_of(sums[k + i])
                answer[row[1]][Measure.PURCHASES] = purchases_of(sums[k + n + i])
    return busy, by_span


class _Decision:
    """`_settle_quiet`'s statement for a programme, policy and windows (parameters
    `member_ids` and `now`), and the measures it reads."""

    def __init__(
        self,
        program_id: int,
        policy: TierPolicy,
        ladder: _Ladder,
        win: Windows,
        spans: list[Span],
    ) -> None:
        self.key = (program_id, policy, tuple(spans), win.period)
        growth, bought = span_totals(program_id, "member_ids", spans, ladder.named)
        due = (
            select(*(_TIERS.c[name] for name in _Standing.COLUMNS), _ACCOUNTS.c.status)
            .join(
                _ACCOUNTS,
                # by the index, not a hash of all the accounts
                _points_account(program_id, among_bound(_ACCOUNTS.c.member_id, "member_ids")),
            )
            .where(
                _TIERS.c.program_id == program_id,
                among_bound(_TIERS.c.member_id, "member_ids"),
            )
            .subquery("due")
        )
        joined: Any = due
        raw: list[ColumnElement[Any]] = []
        totals: dict[Measure, list[ColumnElement[Any]]] = {}
        if growth is not None:
            g = growth.subquery("g")
            joined = joined.outerjoin(g, g.c.member_id == due.c.member_id)
            totals[Measure.GROWTH] = [g.c[f"g{i}"] for i in range(len(spans))]
            raw += totals[Measure.GROWTH]
        if bought is not None:
            b = bought.subquery("b")
            joined = joined.outerjoin(b, b.c.member_id == due.c.member_id)
            totals[Measure.SPEND] = [b.c[f"s{i}"] for i in range(len(spans))]
            totals[Measure.PURCHASES] = [b.c[f"c{i}"] for i in range(len(spans))]
            raw += totals[Measure.SPEND] + totals[Measure.PURCHASES]
        self.measured = frozenset(totals)

        def at(span: Span) -> dict[Measure, ColumnElement[Any]]:
            i = spans.index(span)
            return {m: func.coalesce(columns[i], 0) for m, columns in totals.items()}

        enter = at(win.enter)
        keeps = [at(span) for span in win.keep]
        keep: dict[Measure, ColumnElement[Any]] = keeps[0]
        if len(keeps) > 1:  # each measure the better of the periods (`better`)
            keep = {m: func.greatest(*(k[m] for k in keeps)) for m in enter}
        quiet = _Quiet(policy, ladder, program_id, win.period, due, enter, keep).everyone()
        decided = (
            select(*due.c, *(c.label(f"t{i}") for i, c in enumerate(raw)), quiet.label("quiet"))
            .select_from(joined)
            .cte("decided")
        )
        settled = (
            update(_TIERS)
            .where(_TIERS.c.id == decided.c.id, decided.c.quiet)
            .values(evaluated_at=bindparam("now", type_=_TIERS.c.evaluated_at.type))
            .returning(_TIERS.c.id)
            .cte("settled")
        )
        width = len(_Standing.COLUMNS) + 1
        self.statement = (
            select(*list(decided.c)[: width + len(raw)]).where(~decided.c.quiet).add_cte(settled)
        )


_DECISIONS: dict[int, _Decision] = {}
"""Per programme, the last `_Decision` built: a run's batches share it (building it took
a tenth of a batch's Python)."""


def _decision(
    program_id: int, policy: TierPolicy, ladder: _Ladder, win: Windows, spans: list[Span]
) -> _Decision:
    found = _DECISIONS.get(program_id)
    key = (program_id, policy, tuple(spans), win.period)
    if found is None or found.key != key:
        found = _Decision(program_id, policy, ladder, win, spans)
        _DECISIONS[program_id] = found
    return found


class _Quiet:
    """The members the evaluation would leave as they are, as a SQL condition over the
    batch's tier rows (`due`) and measures (`enter`, `keep`: each measure the thresholds
    name, as a SQL expression): the ladder's questions (`_Ladder.supported`, `near`) asked
    in SQL. A member is quiet when their tier is their qualified tier (no grant above
    it, so no grant to end), no grace period is in course, the record supports exactly the
    qualified tier (`supported` == qualified: no upgrade, no grace to start) and they are
    not to be told of a near upgrade (not near the next tier, told already this period,
    or their account not active). Everyone else is decided in Python (`_evaluate_one`),
    so this only ever needs to say "nothing to do" where Python would say the same
    (tests/tiers/test_job_in_sql.py holds the two equal)."""

    def __init__(
        self,
        policy: TierPolicy,
        ladder: _Ladder,
        program_id: int,
        period: str,
        due: Any,
        enter: dict[Measure, ColumnElement[Any]],
        keep: dict[Measure, ColumnElement[Any]],
    ) -> None:
        self.policy = policy
        self.ladder = ladder
        self.program_id = program_id
        self.period = period
        self.due = due
        self.enter = enter
        self.keep = keep

    def everyone(self) -> ColumnElement[bool]:
        due = self.due
        return and_(
            due.c.tier == due.c.qualified_tier,
            due.c.grace_until.is_(None),
            case(
                *(
                    (due.c.qualified_tier == code, self.at(rank))
                    for code, rank in self.ladder.ranks.items()
                ),
                else_=self.at(0),  # a code no longer defined: the base tier, as `_Ladder.rank`
            ),
        )

    def at(self, qualified: int) -> ColumnElement[bool]:
        """Quiet, for a member whose tier and qualified tier are at rank `qualified`."""
        ladder = self.ladder
        held = [
            ~self.meets(ladder.enter[rank], self.enter)
            for rank in range(qualified + 1, len(ladder.enter))
            if ladder.qualifiable[rank]
        ]
        if qualified > 0:
            if not ladder.qualifiable[qualified]:
                return false()
            held.append(self.meets(ladder.keep[qualified], self.keep))
        return and_(true(), *held, ~self.near(qualified))

    def near(self, current: int) -> ColumnElement[bool]:
        """To be told of a near upgrade (`_Ladder.near`, an active account, not told yet
        this period: `tell_near`'s unique key)."""
        target = self.ladder.next[current]
        if target is None:
            return false()
        pairs = self.ladder.enter[target]
        almost = self.ladder.almost[target]
        if pairs is None or not almost:
            return false()
        told = exists().where(
            _NOTICES.c.program_id == self.program_id,
            _NOTICES.c.member_id == self.due.c.member_id,
            _NOTICES.c.benefit == NEAR_PREFIX + self.policy.levels[target].code,
            _NOTICES.c.period == self.period,
        )
        return and_(
            self.due.c.status == AccountStatus.ACTIVE,
            ~self.meets(pairs, self.enter),
            or_(*(self.enter[m] >= literal(need, Numeric()) for m, need in almost)),
            ~told,
        )

    @staticmethod
    def meets(
        pairs: Pairs | None, measures: dict[Measure, ColumnElement[Any]]
    ) -> ColumnElement[bool]:
        """`_meets` in SQL."""
        if not pairs:
            return false()
        return or_(*(measures[m] >= literal(need, Numeric()) for m, need in pairs))


def _active_grants(
    session: Session, program_id: int, member_ids: list[int], now: datetime
) -> dict[int, list[TierGrant]]:
    """`jifen.tiers.service.active_grants` for a batch (members without grants absent)."""
    found: dict[int, list[TierGrant]] = {}
    for grant in session.execute(
        select(TierGrant)
        .where(
            TierGrant.program_id == program_id,
            among(TierGrant.member_id, member_ids),
            TierGrant.revoked_at.is_(None),
            TierGrant.starts_at <= now,
            TierGrant.ends_at > now,
        )
        .order_by(TierGrant.id)
    ).scalars():
        found.setdefault(grant.member_id, []).append(grant)
    return found


def _move(
    program_id: int,
    row: _Standing,
    *,
    tier: str,
    qualified: str,
    reason: Reason,
    details: dict[str, Any],
    now: datetime,
    history: list[dict[str, Any]],
    outbox: list[dict[str, Any]],
    always: bool = False,
) -> None:
    """`jifen.tiers.service.change` on the job's row: the history row and the outbox
    `tier.changed` are added to `history` and `outbox`."""
    record, changed = change(
        program_id,
        row,
        tier=tier,
        qualified=qualified,
        reason=reason,
        details=details,
        now=now,
        actor=ACTOR,
        always=always,
    )
    if record is not None:
        history.append(record)
    if changed is not None:
        outbox.append(changed)


def _event(
    program_id: int, row: _Standing, type: str, now: datetime, payload: dict[str, Any]
) -> dict[str, Any]:
    return {
        "program_id": program_id,
        "member_id": row.member_id,
        "type": type,
        "payload": payload,
        "occurred_at": now,
    }


def _evaluate_one(
    session: Session,
    program_id: int,
    policy: TierPolicy,
    ladder: _Ladder,
    tz: ZoneInfo,
    row: _Standing,
    window: dict[str, str | None],
    two_windows: bool,
    enter: Measures,
    keep: Measures,
    grants: Sequence[TierGrant],
    now: datetime,
    history: list[dict[str, Any]],
    outbox: list[dict[str, Any]],
) -> None:
    """Evaluate one member (steps 1 and 2 of the module's docstring): changes `row` and
    adds the history and outbox rows to write."""
    qualified = ladder.rank(row.qualified_tier)
    current = ladder.rank(row.tier)
    grant = best_grant(policy, grants) if grants else None
    granted = ladder.rank(grant.tier) if grant is not None else 0
    if current > qualified and current > granted:
        ended = _ended_grant(session, program_id, row.member_id, row.tier, now)
        _move(
            program_id,
            row,
            tier=policy.levels[max(qualified, granted)].code,
            qualified=row.qualified_tier,
            reason=Reason.GRANT_ENDED,
            details={"grant": ended},
            now=now,
            history=history,
            outbox=outbox,
        )
    reach = ladder.supported(qualified, enter, keep)
    if reach == qualified and row.grace_until is None:
        return  # the common case: the record holds the tier, nothing to record
    record = {"measures": measures_json(enter), "window": window}
    if two_windows:
        record["keep_measures"] = measures_json(keep)
    to = qualified
    reason: Reason | None = None
    details: dict[str, Any] = {}
    if reach > qualified:
        to, reason = reach, Reason.QUALIFIED
        details = {**record, "threshold": threshold_json(policy.levels[reach].enter)}
        row.grace_until = None
    elif reach == qualified:
        row.grace_until = None
        _move(
            program_id,
            row,
            tier=row.tier,
            qualified=row.qualified_tier,
            reason=Reason.GRACE_CLEARED,
            details={**record, "threshold": threshold_json(policy.levels[qualified].keep)},
            now=now,
            history=history,
            outbox=outbox,
            always=True,
        )
        outbox.append(_event(program_id, row, "tier.grace_cleared", now, {"tier": row.tier}))
    elif row.grace_until is None and policy.grace_days > 0:
        today = now.astimezone(tz).date()
        row.grace_until = start_of_day(today + timedelta(days=policy.grace_days + 1), tz)
        facing = {
            "tier": row.tier,
            "qualified_tier": row.qualified_tier,
            "supported": policy.levels[reach].code,
            "grace_until": row.grace_until.isoformat(),
        }
        _move(
            program_id,
            row,
            tier=row.tier,
            qualified=row.qualified_tier,
            reason=Reason.GRACE_STARTED,
            details={
                **record,
                **facing,
                "threshold": threshold_json(policy.levels[qualified].keep),
            },
            now=now,
            history=history,
            outbox=outbox,
            always=True,
        )
        outbox.append(_event(program_id, row, "tier.grace_started", now, facing))
    elif row.grace_until is None or now >= row.grace_until:
        to = max(qualified - 1, reach) if policy.downgrade == DowngradePolicy.ONE_DOWN else reach
        reason = Reason.DOWNGRADED
        details = {
            **record,
            "threshold": threshold_json(policy.levels[qualified].keep),
            "supported": policy.levels[reach].code,
            "policy": policy.downgrade.value,
            "grace_until": row.grace_until.isoformat() if row.grace_until else None,
        }
        row.grace_until = None
    if reason is not None and to != qualified:
        _move(
            program_id,
            row,
            tier=policy.levels[max(to, granted)].code,
            qualified=policy.levels[to].code,
            reason=reason,
            details=details,
            now=now,
            history=history,
            outbox=outbox,
        )


def _ended_grant(
    session: Session, program_id: int, member_id: int, tier: str, now: datetime
) -> dict[str, Any] | None:
    """The grant that held the member's tier and has ended (for the history row)."""
    found = session.execute(
        select(TierGrant)
        .where(
            TierGrant.program_id == program_id,
            TierGrant.member_id == member_id,
            TierGrant.tier == tier,
            TierGrant.ends_at <= now,
        )
        .order_by(TierGrant.ends_at.desc(), TierGrant.id.desc())
        .limit(1)
    ).scalar_one_or_none()
    if found is None:
        return None
    return {"id": found.id, "kind": found.kind, "ends_at": found.ends_at.isoformat()}


def _tell_near(
    session: Session,
    policy: TierPolicy,
    ladder: _Ladder,
    program_id: int,
    candidates: Sequence[Near],
    period: str,
    now: datetime,
) -> list[dict[str, Any]]:
    """`jifen.tiers.service.notify_near_many` for the job's batch, the next tier found
    through the ladder."""
    due: list[tuple[Near, Tier]] = []
    for candidate in candidates:
        target = ladder.near(candidate.current, candidate.measures)
        if target is not None:
            due.append((candidate, policy.levels[target]))
    return tell_near(session, policy, program_id, due, period, now)


# -- periodic benefits --------------------------------------------------------------------


def benefit_key(tier: Tier, benefit: PeriodicBenefit) -> str:
    return f"{tier.code}:{benefit.reward}:{benefit.every}"


def periodic_benefits(
    session: Session, program: Program, now: datetime, *, limit: int = 500
) -> StepResult:
    """Give one batch of due periodic benefits (see the module's docstring). Returns the
    members given to or refused (`accounts`) and the rewards given (`items`)."""
    policy = policy_of(program)
    if policy is None:
        return StepResult()
    book = book_for(session, program)
    today = now.astimezone(tz_of(program)).date()
    result = StepResult()
    for rank, tier in enumerate(policy.levels):
        for benefit in tier.benefits.periodic:
            left = limit - result.accounts
            if left <= 0:
                return result
            if not _givable(session, program.id, benefit):
                continue
            key = benefit_key(tier, benefit)
            period = period_key(today, benefit.every)
            due = session.execute(
                _members_of(program.id, policy, rank)
                .where(~_issued(program.id, key, period))
                .order_by(Account.id)
                .limit(left)
                .with_for_update(of=Account, skip_locked=True)
            ).scalars()
            for member_id in list(due):
                try:
                    with session.begin_nested():
                        issue = _issue(program.id, member_id, key, period, tier.code, now)
                        session.add(issue)
                        session.flush()
                        redemption = give(
                            session,
                            program,
                            book,
                            member_id,
                            benefit.reward,
                            source="benefit",
                            quantity=benefit.count,
                            now=now,
                            actor=BENEFITS_ACTOR,
                            details={"benefit": key, "period": period},
                        )
                        issue.details = {"redemption_id": redemption.id}
                        session.flush()
                except IntegrityError:  # given a moment ago by another worker
                    continue
                except OutOfStock:  # gone since the look: the rest wait for a restock
                    break
                except JifenError as refused:
                    _refused(session, program.id, member_id, key, period, tier.code, now, refused)
                    result.accounts += 1
                    continue
                result.accounts += 1
                result.items += benefit.count
    return result


def _givable(session: Session, program_id: int, benefit: PeriodicBenefit) -> bool:
    """The reward is on offer with stock enough for one member's share (so that a job
    run while it is withdrawn or sold out records nothing and gives it when it is back)."""
    reward = session.execute(
        select(Reward).where(Reward.program_id == program_id, Reward.code == benefit.reward)
    ).scalar_one_or_none()
    if reward is None or not reward.active:
        return False
    return reward.stock is None or reward.stock - reward.redeemed >= benefit.count


def _members_of(program_id: int, policy: TierPolicy, rank: int) -> Any:
    """Active members whose tier is the level at `rank` (members without a tier row, or
    whose row names a tier no longer defined, are in the base tier)."""
    codes = [tier.code for tier in policy.levels]
    query = (
        select(Member.id)
        .join(
            Account,
            and_(
                Account.program_id == program_id,
                Account.member_id == Member.id,
                Account.kind == AccountKind.POINTS,
            ),
        )
        .outerjoin(
            MemberTier,
            and_(MemberTier.program_id == program_id, MemberTier.member_id == Member.id),
        )
        .where(
            Member.program_id == program_id,
            Member.status == MemberStatus.ACTIVE,
            Account.status == AccountStatus.ACTIVE,
        )
    )
    if rank == 0:
        return query.where(or_(MemberTier.id.is_(None), MemberTier.tier.not_in(codes[1:])))
    return query.where(MemberTier.tier == codes[rank])


def _issued(program_id: int, benefit: str, period: str) -> ColumnElement[bool]:
    return exists().where(
        BenefitIssue.program_id == program_id,
        BenefitIssue.member_id == Member.id,
        BenefitIssue.benefit == benefit,
        BenefitIssue.period == period,
    )


def _issue(
    program_id: int, member_id: int, benefit: str, period: str, tier: str, now: datetime
) -> BenefitIssue:
    return BenefitIssue(
        program_id=program_id,
        member_id=member_id,
        benefit=benefit,
        period=period,
        tier=tier,
        details=None,
        issued_at=now,
    )


def _refused(
    session: Session,
    program_id: int,
    member_id: int,
    benefit: str,
    period: str,
    tier: str,
    now: datetime,
    refused: JifenError,
) -> None:
    """Record a gift the rewards refused, so the period's benefit is settled (and the job
    does not try it again and again)."""
    issue = _issue(program_id, member_id, benefit, period, tier, now)
    issue.details = {"refused": refused.code, "reason": refused.message("en")}
    try:
        with session.begin_nested():
            session.add(issue)
            session.flush()
    except IntegrityError:
        return
    emit_many(
        session,
        [
            {
                "program_id": program_id,
                "member_id": member_id,
                "type": "tier.benefit_refused",
                "payload": {"benefit": benefit, "period": period, "refused": refused.code},
                "occurred_at": now,
            }
        ],
    )


# -- birthday gifts ---------------------------------------------------------------------


def birthday_gifts(
    session: Session, program: Program, now: datetime, *, limit: int = 500
) -> StepResult:
    """Give one batch of due tier birthday gifts (see the module's docstring). Returns the
    members given to (`accounts`), gifts recorded (`items`) and points given."""
    policy = policy_of(program)
    if policy is None:
        return StepResult()
    gifts = {
        tier.code: tier.benefits.birthday_gift
        for tier in policy.levels
        if tier.benefits.birthday_gift is not None
    }
    if not gifts:
        return StepResult()
    rule = current_rules(session, program.id).rules.birthday
    window = rule.window if rule is not None else "day"
    today = now.astimezone(tz_of(program)).date()
    period = str(today.year)
    tier_code = func.coalesce(MemberTier.tier, policy.base.code)
    due = session.execute(
        select(Member.id, tier_code)
        .join(
            Account,
            and_(
                Account.program_id == program.id,
                Account.member_id == Member.id,
                Account.kind == AccountKind.POINTS,
            ),
        )
        .outerjoin(
            MemberTier,
            and_(MemberTier.program_id == program.id, MemberTier.member_id == Member.id),
        )
        .where(
            Member.program_id == program.id,
            Member.status == MemberStatus.ACTIVE,
            Account.status == AccountStatus.ACTIVE,
            Member.birthday.is_not(None),
            born_on(window, today),
            tier_code.in_(list(gifts)),
            ~_issued(program.id, BIRTHDAY_BENEFIT, period),
        )
        .order_by(Account.id)
        .limit(limit)
        .with_for_update(of=Account, skip_locked=True)
    ).all()
    if not due:
        return StepResult()
    book = book_for(session, program)
    result = StepResult()
    for member_id, code in due:
        gift = gifts[code]
        assert gift is not None
        try:
            with session.begin_nested():
                issue = _issue(program.id, member_id, BIRTHDAY_BENEFIT, period, code, now)
                session.add(issue)
                session.flush()
                given: dict[str, Any] = {}
                if gift.points:
                    given["transaction_id"] = ledger.credit(
                        session,
                        book,
                        member_id,
                        gift.points,
                        now=now,
                        actor=BIRTHDAY_ACTOR,
                        reference=f"tier-birthday:{member_id}:{period}",
                        reason="birthday gift",
                        details={"tier": code, "year": period},
                    ).id
                if gift.reward is not None:
                    given["redemption_id"] = give(
                        session,
                        program,
                        book,
                        member_id,
                        gift.reward,
                        source="birthday",
                        now=now,
                        actor=BIRTHDAY_ACTOR,
                        details={"benefit": BIRTHDAY_BENEFIT, "tier": code, "year": period},
                    ).id
                issue.details = given
                session.flush()
        except IntegrityError:  # given a moment ago by another worker
            continue
        except JifenError as refused:
            _refused(session, program.id, member_id, BIRTHDAY_BENEFIT, period, code, now, refused)
            result.accounts += 1
            result.items += 1
            continue
        result.accounts += 1
        result.items += 1
        result.points += gift.points
    return result


def born_on(window: str, today: date) -> ColumnElement[bool]:
    """Members whose birthday falls on local `today` (any day of the month with window
    month; 29 February on 28 February in common years), as the birthday job decides."""
    month = extract("month", Member.birthday)
    day = extract("day", Member.birthday)
    if window == "month":
        return month == today.month
    on_the_day = and_(month == today.month, day == today.day)
    if (today.month, today.day) == (2, 28) and not calendar.isleap(today.year):
        return or_(on_the_day, and_(month == 2, day == 29))
    return on_the_day
