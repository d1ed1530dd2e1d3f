"""The tier evaluation job (PRODUCT.md T2–T4, O1); the tiers' benefit jobs are in
`jifen.tiers.benefits`.

`evaluate` does one batch for one programme in the caller's transaction; the job
runner (`jifen.jobs.runner`) commits batch after batch until one finds nothing. Members'
points accounts are locked with SKIP LOCKED (a member busy with a purchase is left for the
next batch or run), and every write is keyed so that a rerun, a crash midway or two
workers at once never do anything twice.

**Evaluation** (`evaluate`, job `tiers`) — the only place a tier ever goes down. It goes
through the members with a `member_tiers` row not yet evaluated at this instant, reads
their measures set-based, and for each:
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

**Only members with something to do are locked and written.** A member has nothing to do
(`_InSql.NONE`, "quiet") when they hold their qualified tier, no grace period is in
course, the record supports exactly that tier, and no near-upgrade notice is due. On
PostgreSQL the first batch of a run (per programme, instant and worker thread, kept in
`_Run`) reads, in one statement without locks or writes (`_candidates`), every due
member's measures the way a plain aggregate does and decides them with the same SQL as
the batches; it keeps the points-account ids of the others, the candidates. The batches
take the candidates `limit` at a time, lock their accounts and decide each again on
fresh measures under the lock (`_settle_in_sql`), so what is written is what the
evaluation of that member alone would write then; a candidate busy (SKIP LOCKED) is asked
for again once the others are taken. Elsewhere (SQLite, `in_sql=False`) the batches go
through every due member in account order (keyset) and write nothing for the quiet ones.

`evaluated_at` is the instant of the last evaluation that had something to do for the
member (and wrote the row): set on every member with something to do, changed or not (a
grace period or a grant holding them, a notice), never on a quiet one. Why skipping the
quiet members is safe: a member the scan found quiet is as if whatever committed after the
scan's snapshot came after the evaluation — a purchase upgrades on its own path
(`jifen.tiers.service.on_activity_many`, which also tells of a near upgrade), and a
downgrade or a grace period is only ever written here, under the lock, on fresh measures;
a return that leaves a member short is the next run's. So:
- a second run at the same instant changes nothing: the members written at it are not
  due, and the quiet ones come out quiet again (on PostgreSQL the scan finds none);
- a crash midway leaves the rest to a rerun, which scans again (a process's runs are in
  memory only) and writes each change once: a member written is not due any more; a batch
  whose transaction rolls back gives its members back to the run (`_guard`);
- two workers at once each scan and take what the other has not locked, and the batch's
  statement asks again that each member is still due in a snapshot taken after the lock:
  each change is written once.
A run keeps the candidates' ids only (a list of ints per programme and worker).
"""

from __future__ import annotations

import json
import math
import re
import threading
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, cast
from zoneinfo import ZoneInfo

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Connection,
    Integer,
    Numeric,
    Table,
    Text,
    and_,
    any_,
    bindparam,
    case,
    event,
    exists,
    false,
    func,
    insert,
    literal,
    literal_column,
    null,
    or_,
    select,
    true,
    union_all,
    update,
)
from sqlalchemy import cast as sql_cast
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Session

from jifen.core.clock import start_of_day
from jifen.db.bulk import among, among_bound, update_rows, write_rows
from jifen.db.outbox import EVENTS
from jifen.db.vouched import planned_for_parameters, vouching
from jifen.ledger.jobs import StepResult
from jifen.ledger.models import Account, AccountKind, AccountStatus
from jifen.programs.models import Program
from jifen.programs.tiers import (
    DowngradePolicy,
    Measure,
    Threshold,
    Tier,
    TierPolicy,
)
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
from jifen.tiers.windows import Span, Windows, windows

ACTOR = "job:tiers"


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
    evaluated with something to do (`accounts`: the quiet ones are not counted; a batch of
    quiet members alone reports `more`, so that the run goes on) and the history rows
    written (`items`).

    Set-based: the batch's tier rows, measures (every window in one query per measure
    kind), grants and near-upgrade notices are read in a few statements; each member is
    decided in Python from them; then the rows that changed are written in one statement
    per table (`update_rows`, `write_rows`), and the members with something to do but
    nothing to record (a grace period or a grant holding them, a notice) get
    `evaluated_at` in one UPDATE.

    On PostgreSQL the run's first batch finds the candidates (`_candidates`), and only the
    rare cases reach Python: one statement measures the batch, decides in SQL what the
    common ones come to (`_InSql`: nothing to do, an upgrade, a grace period started, a
    near-upgrade notice), writes it — `evaluated_at`, the changed tier rows, their history
    rows and outbox events, the notices — and returns the others (a tier held above the
    qualified one, a grace period in course, a downgrade without grace, an upgrade under
    a grant in force), which are decided as above.
    Within a batch the statement's rows come before Python's, so two members' history or
    outbox rows may come in another order than Python alone writes them; a member's own
    never do. `in_sql`: False decides everyone in Python there too (the tests hold both
    ways equal)."""
    policy = policy_of(program)
    if policy is None:
        return StepResult()
    postgres = session.get_bind().dialect.name == "postgresql"
    in_sql = postgres if in_sql is None else in_sql and postgres
    columns = _BRIEF if in_sql else _FULL
    ladder = _ladder(policy)
    tz = tz_of(program)
    win = windows(policy.window, now, tz)
    spans = list(dict.fromkeys((win.enter, *win.keep)))
    scan: Callable[[], list[int]] | None = None
    if in_sql:

        def scan() -> list[int]:
            return _candidates(session, program.id, policy, ladder, win, spans, now)

    _run_at(session, program.id, now, in_sql, scan, policy)
    due = _lock_due(session, program.id, now, limit, columns)
    if not due:
        return StepResult()
    done = _evaluate_batch(session, program.id, policy, ladder, tz, win, spans, now, in_sql, due)
    # none if all were quiet, or evaluated by another worker since they were read: the
    # run is not over (the next batch takes the next ones), and this transaction ends here
    # (on SQLite the one writer's lock is not held across the quiet members of a whole
    # programme)
    done.more = not (done.accounts or done.items)
    return done


def _evaluate_batch(
    session: Session,
    program_id: int,
    policy: TierPolicy,
    ladder: _Ladder,
    tz: ZoneInfo,
    win: Windows,
    spans: list[Span],
    now: datetime,
    in_sql: bool,
    due: list[Any],
) -> StepResult:
    """`evaluate` of the members `due` (`_lock_due`'s rows) once locked."""
    if in_sql:
        found, by_span, written, evaluated = _settle_in_sql(
            session,
            program_id,
            policy,
            ladder,
            win,
            spans,
            [row[0] for row in due],
            [row[1] for row in due],
            now,
            tz,
        )
    else:
        found, written, evaluated = due, 0, len(due)
        by_span = measure_spans(session, program_id, [row[1] for row in due], spans)
    rows = {row[1]: _Standing(*row[: len(_Standing.COLUMNS)]) for row in found}
    ids = list(rows)
    active = {row[1] for row in found if row[len(_Standing.COLUMNS)] == AccountStatus.ACTIVE}
    measured = dict(zip(spans, by_span, strict=True))
    enter = measured[win.enter]
    if len(win.keep) == 1:
        keep: dict[int, Measures] = dict(measured[win.keep[0]])
    else:
        keep = {m: better(*(measured[span][m] for span in win.keep)) for m in ids}
    grants = _active_grants(session, program_id, ids, now) if ids else {}
    window = span_json(win.enter, tz)
    history: list[dict[str, Any]] = []
    outbox: list[dict[str, Any]] = []
    near: list[Near] = []
    quiet: set[int] = set()
    for member_id in ids:
        row = rows[member_id]
        busy = _evaluate_one(
            session,
            program_id,
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
        if not busy:
            quiet.add(member_id)
        if member_id in active:
            near.append(Near(member_id, ladder.rank(row.tier), enter[member_id]))
    told = _tell_near(session, policy, ladder, program_id, near, win.period, now)
    quiet.difference_update(event["member_id"] for event in told)
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
    # the members with something to do and nothing changed (a grace period or a grant
    # holding, a notice): marked evaluated; the quiet ones are not written at all
    untouched = [
        row.id for row in rows.values() if not row.changed() and row.member_id not in quiet
    ]
    if untouched:
        session.connection().execute(
            update(_TIERS).where(among(_TIERS.c.id, untouched)).values(evaluated_at=now)
        )
    write_rows(session, _HISTORY, history)
    outbox.extend(told)
    write_rows(session, EVENTS, outbox)
    return StepResult(accounts=evaluated - len(quiet), items=written + len(history))


class _Run:
    """A run of the evaluation at one instant for one programme, as one worker (a thread
    of this process) goes through it: the members it has yet to take, and those a batch
    found busy.

    `todo`: on PostgreSQL (the decision in SQL), the points-account ids of the members
    the run's first batch found with something to do (`_candidates`), in account order,
    and `next` the place of the next to take; None: every member with a tier row not yet
    evaluated at the instant, in account order past `after` (keyset; the evaluation in
    Python, or a run begun without the scan). `busy`: accounts a batch asked for and did
    not lock (busy with a purchase, or taken by another worker), asked for again once
    `todo` is done."""

    __slots__ = ("after", "brief", "busy", "next", "now", "policy", "todo", "txn")

    def __init__(self, now: datetime, brief: bool, todo: list[int] | None) -> None:
        self.now = now
        self.brief = brief
        self.todo = todo
        self.next = 0
        self.after = 0
        self.busy: list[int] = []
        self.policy: TierPolicy | None = None
        self.txn: object | None = None
        """The transaction whose batches moved the run last (`_guard`)."""

    def ahead(self, connection: Connection, program_id: int, n: int, now: datetime) -> list[int]:
        """The next (up to) `n` accounts to take, and move past them."""
        if self.todo is not None:
            ids = self.todo[self.next : self.next + n]
            self.next += len(ids)
            return ids
        ids = list(
            connection.execute(
                select(_ACCOUNTS.c.id)
                .select_from(_TIERS)
                .join(_ACCOUNTS, _points_account(program_id))
                .where(_TIERS.c.program_id == program_id, _due(now), _ACCOUNTS.c.id > self.after)
                .order_by(_ACCOUNTS.c.id)
                .limit(n)
            ).scalars()
        )
        if ids:
            self.after = ids[-1]
        return ids

    def state(self) -> tuple[int, int, list[int]]:
        return self.next, self.after, list(self.busy)

    def restore(self, state: tuple[int, int, list[int]]) -> None:
        self.next, self.after, busy = state
        self.busy = list(busy)


_LOCAL = threading.local()


def _runs() -> dict[tuple[str, int], _Run]:
    """This thread's runs, by database and programme: each worker goes through a run on
    its own (two workers at once each take what the other has not locked, and the
    statement that writes asks again that each member is still due)."""
    found: dict[tuple[str, int], _Run] | None = getattr(_LOCAL, "runs", None)
    if found is None:
        found = _LOCAL.runs = {}
    return found


def _run_key(session: Session, program_id: int) -> tuple[str, int]:
    return str(session.get_bind().engine.url), program_id


def _run_at(
    session: Session,
    program_id: int,
    now: datetime,
    brief: bool,
    scan: Callable[[], list[int]] | None = None,
    policy: TierPolicy | None = None,
) -> _Run:
    """This thread's run of the programme at `now` (`brief`: decided in SQL; `policy`,
    if given, the programme's policy), begun if there is none (with the candidates `scan`
    finds; without it, every member due)."""
    runs = _runs()
    key = _run_key(session, program_id)
    run = runs.get(key)
    if (
        run is None
        or run.now != now
        or run.brief != brief
        or (policy is not None and run.policy is not policy)
    ):
        run = _Run(now, brief, scan() if scan is not None else None)
        run.policy = policy
        runs[key] = run
    _guard(session, run)
    return run


def _guard(session: Session, run: _Run) -> None:
    """If the transaction rolls back (a deadlock `Database.write` retries, a failure), the
    run goes back to where it stood when the transaction first moved it, so the members
    its batches took are taken again, not skipped for the rest of the run."""
    transaction = session.get_transaction()
    if transaction is None or run.txn is transaction:
        return
    run.txn = transaction
    saved = run.state()
    committed: list[bool] = []

    def on_commit(session: Session) -> None:
        if session.get_transaction() is transaction and not session.in_nested_transaction():
            committed.append(True)

    def on_end(session: Session, ended: Any) -> None:
        if ended is transaction and run.txn is transaction:
            run.txn = None
            if not committed:
                run.restore(saved)

    event.listen(session, "after_commit", on_commit)
    event.listen(session, "after_transaction_end", on_end)


def _due(now: Any) -> ColumnElement[bool]:
    """A tier row not evaluated at `now` yet."""
    return or_(_TIERS.c.evaluated_at.is_(None), _TIERS.c.evaluated_at < now)


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
    and points accounts (the last the account id), in account order; none when the run
    is over (and then this thread's run is forgotten: the next batch at the same instant
    begins a new run).

    The members are the run's (`_Run`): on PostgreSQL the candidates the run's first
    batch found, else every member due, taken in account order, `limit` at a time; those
    of them that are busy (SKIP LOCKED) are asked for again once the rest are taken, and
    the run ends on a batch that locks none, leaving members still busy to the next run.
    Each is locked only if still due (`evaluated_at` earlier than `now`).

    Every writer of a tier row holds the member's points-account lock (a purchase, a
    grant, this job), so the accounts' locks are what keeps the batch's members to this
    transaction. With `_FULL` (the evaluation in Python, which reads the tier rows here)
    the tier rows are locked too: a purchase that upgraded a member and committed while
    this ran is then read as it left the row, not as this statement's snapshot had it.
    With `_BRIEF` (the batch decided in SQL) they are not (locking 2,000 tier rows cost a
    third of the statement's CPU and half its WAL): `_settle_in_sql` reads the rows in a
    snapshot taken after the locks, and asks again that each is due, for a member another
    worker evaluated and committed between this statement's snapshot and its lock (the
    lock then finds the account free, and the row read here was the old one)."""
    run = _run_at(session, program_id, now, columns is _BRIEF)
    connection = session.connection()
    locked = [_ACCOUNTS] if columns is _BRIEF else [_ACCOUNTS, _TIERS]

    def lock(account_ids: list[int], n: int) -> list[Any]:
        return list(
            connection.execute(
                select(*columns)
                .join(_ACCOUNTS, _points_account(program_id))
                .where(
                    _TIERS.c.program_id == program_id,
                    among(_ACCOUNTS.c.id, account_ids),
                    _due(now),
                )
                .order_by(_ACCOUNTS.c.id)
                .limit(n)
                .with_for_update(of=locked, skip_locked=True)
            ).all()
        )

    found: list[Any] = []
    while len(found) < limit:
        ids = run.ahead(connection, program_id, limit - len(found), now)
        if not ids:
            break
        got = lock(ids, len(ids))
        if len(got) < len(ids):
            taken = {row[-1] for row in got}
            run.busy += [i for i in ids if i not in taken]
        found += got
    if len(found) < limit and run.busy:
        again = lock(run.busy, limit - len(found))
        taken = {row[-1] for row in again}
        run.busy = [i for i in run.busy if i not in taken]
        found += again
        found.sort(key=lambda row: row[-1])
    if not found:
        _runs().pop(_run_key(session, program_id), None)
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
"""What `_lock_due` reads when the batch is decided in SQL (`_settle_in_sql` reads the rest)."""


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


def _settle_in_sql(
    session: Session,
    program_id: int,
    policy: TierPolicy,
    ladder: _Ladder,
    win: Windows,
    spans: list[Span],
    member_ids: list[int],
    account_ids: list[int],
    now: datetime,
    tz: ZoneInfo,
) -> tuple[list[Any], list[dict[int, dict[Measure, Decimal]]], int, int]:
    """PostgreSQL: in one statement, measure the locked members `member_ids` (their
    points accounts `account_ids`, by which their rows are found; the
    measures the thresholds name, `span_totals`), decide in SQL what the common cases come
    to (`_InSql`) and write it — `evaluated_at = now` on every row it settles with
    something to do (`_InSql.busy`: a member found quiet under the lock, say upgraded by
    a purchase since `_candidates` read it, is left as it is); for an upgrade or a grace
    period started the tier row, the history row and the outbox event (`tier.changed`,
    `tier.grace_started`); the near-upgrade notices and their outbox events — and
    return the others (`_InSql.PYTHON`): their tier rows and account status as `_FULL`
    reads them (in the order of `member_ids`), their measures in each of `spans` as
    `measure_spans` gives them, the number of history rows the statement wrote, and the
    number of members with something to do (settled here or returned; not the quiet
    ones, nor those another worker evaluated after `_lock_due` read them: it locks their
    accounts, not their tier rows, and the statement reads the rows again).

    A statement of its own after `_lock_due`, not part of it: its snapshot is taken once
    the batch is locked, so it counts whatever a purchase committed before the lock was
    taken (in the locking statement's own snapshot, a purchase that committed while it
    waited would be missing from the measures while its upgrade is in the row)."""
    decision = _decision(program_id, policy, ladder, win, spans)
    width = len(_Standing.COLUMNS) + 1
    connection = session.connection()
    today = now.astimezone(tz).date()
    grace_until = start_of_day(today + timedelta(days=policy.grace_days + 1), tz)
    params = {
        "member_ids": member_ids,
        "account_ids": account_ids,
        "now": now,
        "grace_until": grace_until,
        "grace_text": grace_until.isoformat(),
        "window": span_json(win.enter, tz),
    }
    # Planned for this batch's ids: psycopg prepares a statement run five times, and
    # PostgreSQL's generic plan for this one guesses a handful of rows for `= ANY(:ids)`,
    # nests loops over the batch's aggregate and casts the ids' text at every row (a
    # batch took 30 times as long). So it goes unprepared (`planned_for_parameters`), not
    # under `plan_cache_mode = force_custom_plan`: that would also plan the foreign keys'
    # checks of the rows it writes again for every row (PostgreSQL CPU 5.8 s instead of
    # 3.5 s for the bench's 50,000 members).
    # Every row the statement writes names the batch's programme (read in this
    # transaction) and a member whose points account the batch has locked (programmes and
    # members are kept for good): it vouches for its keys (tier_history,
    # tier_benefit_issues, outbox_events; `jifen.db.vouched`).
    with planned_for_parameters(session), vouching(session):
        found = list(connection.execute(decision.statement, params))
    # (one row at least: the counts)
    settled, written = (int(found[0][-2]), int(found[0][-1])) if found else (0, 0)
    busy = [row for row in found if row[0] is not None]
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
        sums = row[width:-2]  # each span's growth, then spend, then purchases
        k = 0
        if Measure.GROWTH in decision.measured:
            for i, answer in enumerate(by_span):
                answer[row[1]][Measure.GROWTH] = growth_of(sums[i])
            k = n
        if Measure.SPEND in decision.measured:
            for i, answer in enumerate(by_span):
                answer[row[1]][Measure.SPEND] = spend_of(sums[k + i])
                answer[row[1]][Measure.PURCHASES] = purchases_of(sums[k + n + i])
    return busy, by_span, written, settled + len(busy)


def _candidates(
    session: Session,
    program_id: int,
    policy: TierPolicy,
    ladder: _Ladder,
    win: Windows,
    spans: list[Span],
    now: datetime,
) -> list[int]:
    """PostgreSQL, the first batch of a run: the points-account ids, in order, of the
    programme's members due at `now` that the decision (`_InSql`) finds with something to
    do (`_InSql.busy`). One statement, no lock, nothing written: every member with a tier
    row measured as the benchmark's plain aggregate does (the window's entries and
    purchases hash-aggregated by member), and decided with the same expressions as
    `_settle_in_sql`, which decides each candidate again under the lock. The others (two
    in three, the night of the benchmark) are not locked, written or read again this run
    (the module's docstring says why that is safe)."""
    decision = _decision(program_id, policy, ladder, win, spans)
    with planned_for_parameters(session):
        return list(session.connection().execute(decision.scan, {"now": now}).scalars().all())


def _text(word: str) -> ColumnElement[str]:
    """A constant of the code (a JSON key, an event type) as an SQL string literal."""
    if not re.fullmatch(r"[a-z_.:]+", word):
        raise ValueError(f"not a plain word: {word!r}")
    return literal_column(f"'{word}'", Text())


def _bound_text(value: str) -> ColumnElement[str]:
    """A value of the programme's (a tier code) as a parameter typed text."""
    return sql_cast(literal(value), Text())


def _bound_json(value: Any) -> ColumnElement[Any]:
    return sql_cast(literal(json.dumps(value)), JSONB())


def _object(*pairs: tuple[str, Any]) -> ColumnElement[Any]:
    """`jsonb_build_object` of (key, SQL value) pairs."""
    return func.jsonb_build_object(*(x for key, value in pairs for x in (_text(key), value)))


class _Decision:
    """`_settle_in_sql`'s statement for a programme, policy and windows (parameters
    `member_ids`, `account_ids`, `now`, `grace_until`, `grace_text` and `window`), the
    measures it reads
    for everyone (the others are read for the members it writes rows of), and `scan`,
    `_candidates`' statement (parameter `now`): the same decision over every member of
    the programme due at `now`, read-only."""

    def __init__(
        self,
        program_id: int,
        policy: TierPolicy,
        ladder: _Ladder,
        win: Windows,
        spans: list[Span],
    ) -> None:
        self.key = (program_id, policy, tuple(spans), win.period)
        now = bindparam("now", type_=_TIERS.c.evaluated_at.type)
        n = len(spans)

        def sums(source: Any, prefix: str = "") -> dict[Measure, list[ColumnElement[Any]]]:
            """Each measure's total per span over `source`'s columns (`prefix`: of the
            ones read for the writers)."""
            found: dict[Measure, list[ColumnElement[Any]]] = {}
            for m, letter in (
                (Measure.GROWTH, "g"),
                (Measure.SPEND, "s"),
                (Measure.PURCHASES, "c"),
            ):
                if f"{prefix}{letter}0" in source.c:
                    found[m] = [source.c[f"{prefix}{letter}{i}"] for i in range(n)]
            return found

        def measures(
            totals: dict[Measure, list[ColumnElement[Any]]],
        ) -> tuple[dict[Measure, ColumnElement[Any]], dict[Measure, ColumnElement[Any]]]:
            """The entering and keeping measures, as `measure_spans` and `better` give them
            (growth and purchases whole, spend in cents)."""

            def at(i: int) -> dict[Measure, ColumnElement[Any]]:
                found: dict[Measure, ColumnElement[Any]] = {}
                for m, columns in totals.items():
                    total = func.coalesce(columns[i], 0)
                    found[m] = (
                        func.round(total, 2)
                        if m == Measure.SPEND
                        else sql_cast(total, BigInteger())
                    )
                return found

            enter = at(spans.index(win.enter))
            keeps = [at(spans.index(span)) for span in win.keep]
            keep = keeps[0]
            if len(keeps) > 1:  # each measure the better of the periods (`better`)
                keep = {m: func.greatest(*(k[m] for k in keeps)) for m in enter}
            return enter, keep

        def decide(batch: bool) -> tuple[Any, list[ColumnElement[Any]]]:
            """The CTE `decided`: the tier rows due (`batch`: of the members `member_ids`;
            else all the programme's), their measures (`raw`, also returned), the rank
            of the qualified tier (`q`), the tier the record supports (`reach`), what
            each comes to (`act`) and the next tier to tell them of (`near_to`)."""
            growth, bought = span_totals(
                program_id,
                "member_ids"
                if batch
                else select(_TIERS.c.member_id).where(_TIERS.c.program_id == program_id),
                spans,
                ladder.named,
            )
            accounts = (
                # by their key, not a hash of all the accounts, nor (as PostgreSQL chose
                # for a batch of members spread over the programme) a walk of the whole
                # index on member ids, filtering each
                _points_account(program_id, among_bound(_ACCOUNTS.c.id, "account_ids"))
                if batch
                else _points_account(program_id)
            )
            due = (
                select(
                    *(_TIERS.c[name] for name in _Standing.COLUMNS),
                    _ACCOUNTS.c.status,
                    _ACCOUNTS.c.id.label("account_id"),
                )
                .join(_ACCOUNTS, accounts)
                .where(
                    _TIERS.c.program_id == program_id,
                    *((among_bound(_TIERS.c.member_id, "member_ids"),) if batch else ()),
                    # still due in this snapshot: not evaluated by another worker that
                    # committed after `_lock_due` read the row (it does not lock tier rows)
                    _due(now),
                )
                .subquery("due")
            )
            joined: Any = due
            raw: list[ColumnElement[Any]] = []
            if growth is not None:
                g = growth.subquery("g")
                joined = joined.outerjoin(g, g.c.member_id == due.c.member_id)
                raw += [g.c[f"g{i}"] for i in range(n)]
            if bought is not None:
                b = bought.subquery("b")
                joined = joined.outerjoin(b, b.c.member_id == due.c.member_id)
                raw += [b.c[f"s{i}"] for i in range(n)] + [b.c[f"c{i}"] for i in range(n)]
            # 1. the tier rows, their measures, the rank of the qualified tier and the tier
            # the record supports
            ranked_from: Any = select(*due.c, *raw).select_from(joined).subquery("measured")
            if batch:
                enter, keep = measures(sums(ranked_from))
                ask = _InSql(policy, ladder, program_id, win.period, ranked_from, enter, keep)
                qualified = ask.rank(ranked_from.c.qualified_tier)
                ranked = select(
                    *ranked_from.c, qualified.label("q"), ask.supported(qualified).label("reach")
                ).cte("ranked")
            else:
                # The scan: each member's rank, then reach, computed once and kept
                # (MATERIALIZED). Inlined, each use of them below is the whole CASE again
                # — a dozen a row, each with the rank's CASE several times over: about a
                # third of the scan's time at 50,000 members.
                ask = _InSql(policy, ladder, program_id, win.period, ranked_from, {}, {})
                ranked_q = (
                    select(*ranked_from.c, ask.rank(ranked_from.c.qualified_tier).label("q"))
                    .cte("ranked_q")
                    .prefix_with("MATERIALIZED")
                )
                enter, keep = measures(sums(ranked_q))
                ask = _InSql(policy, ladder, program_id, win.period, ranked_q, enter, keep)
                ranked = (
                    select(*ranked_q.c, ask.supported(ranked_q.c.q).label("reach"))
                    .cte("ranked")
                    .prefix_with("MATERIALIZED")
                )
            # 2. what each member comes to: nothing, an upgrade or a grace period written
            # here, or Python's; and the next tier to tell them of
            enter, keep = measures(sums(ranked))
            ask = _InSql(policy, ladder, program_id, win.period, ranked, enter, keep)
            decided = select(
                *ranked.c,
                ask.act(ranked.c.q, ranked.c.reach, now).label("act"),
                ask.near(
                    case((ranked.c.reach > ranked.c.q, ranked.c.reach), else_=ranked.c.q)
                ).label("near_to"),
            ).cte("decided")
            return decided, raw

        decided, _ = decide(batch=False)
        self.scan = (
            select(decided.c.account_id).where(_InSql.busy(decided)).order_by(decided.c.account_id)
        )
        decided, raw = decide(batch=True)
        self.measured = frozenset(
            ({Measure.GROWTH} if Measure.GROWTH in ladder.named else set())
            | (
                {Measure.SPEND, Measure.PURCHASES}
                if {Measure.SPEND, Measure.PURCHASES} & ladder.named
                else set()
            )
        )
        names = [c.name for c in raw]
        writes = or_(
            decided.c.act.in_([_InSql.UP, _InSql.GRACE]),
            and_(decided.c.act == _InSql.NONE, decided.c.near_to.is_not(None)),
        )
        # 3. the members rows are written for, with the measures no threshold names (the
        # history and the notices record them all), read for them alone
        rest = [m for m in Measure if m not in self.measured]
        extra: list[ColumnElement[Any]] = []
        source: Any = decided
        more_growth, more_bought = (
            span_totals(program_id, decided.c.member_id, spans, rest) if rest else (None, None)
        )
        if more_growth is not None:
            lateral = more_growth.lateral("more_g")
            source = source.outerjoin(lateral, true())
            extra += [lateral.c[f"g{i}"].label(f"x_g{i}") for i in range(n)]
        if more_bought is not None:
            lateral = more_bought.lateral("more_b")
            source = source.outerjoin(lateral, true())
            extra += [lateral.c[f"s{i}"].label(f"x_s{i}") for i in range(n)]
            extra += [lateral.c[f"c{i}"].label(f"x_c{i}") for i in range(n)]
        movers = select(*decided.c, *extra).select_from(source).where(writes).cte("movers")
        totals = sums(movers) | sums(movers, "x_")
        enter, keep = measures(totals)
        read = _object(
            ("growth", enter[Measure.GROWTH]),
            ("spend", sql_cast(enter[Measure.SPEND], Text())),
            ("purchases", enter[Measure.PURCHASES]),
        )
        record: list[tuple[str, Any]] = [
            ("measures", read),
            ("window", sql_cast(bindparam("window", type_=JSONB()), JSONB())),
        ]
        if len(win.keep) > 1:
            record.append(
                (
                    "keep_measures",
                    _object(
                        ("growth", keep[Measure.GROWTH]),
                        ("spend", sql_cast(keep[Measure.SPEND], Text())),
                        ("purchases", keep[Measure.PURCHASES]),
                    ),
                )
            )
        ask = _InSql(policy, ladder, program_id, win.period, movers, enter, keep)
        up = movers.c.act == _InSql.UP
        reach_code = ask.code(movers.c.reach)
        grace_text = sql_cast(bindparam("grace_text", type_=Text()), Text())
        # tier rows: everyone settled here with something to do (`_InSql.busy`) gets
        # evaluated_at, upgrades and grace periods their change
        # (`jifen.tiers.service.change`); the quiet ones are not written
        changing = decided.c.act.in_([_InSql.UP, _InSql.GRACE])
        written_here = and_(decided.c.act != _InSql.PYTHON, _InSql.busy(decided))
        settled = (
            update(_TIERS)
            .where(
                _TIERS.c.id == decided.c.id,
                written_here,
                # the batch's rows found by their key's index from an array made once,
                # not the whole table scanned to join it to `decided` (whose size the
                # planner cannot know)
                _TIERS.c.id
                == any_(func.array(select(decided.c.id).where(written_here).scalar_subquery())),
            )
            .values(
                evaluated_at=now,
                tier=case(
                    (decided.c.act == _InSql.UP, ask.code(decided.c.reach)), else_=_TIERS.c.tier
                ),
                qualified_tier=case(
                    (decided.c.act == _InSql.UP, ask.code(decided.c.reach)),
                    else_=_TIERS.c.qualified_tier,
                ),
                since=case((decided.c.act == _InSql.UP, now), else_=_TIERS.c.since),
                grace_until=case(
                    (
                        decided.c.act == _InSql.GRACE,
                        bindparam("grace_until", type_=_TIERS.c.grace_until.type),
                    ),
                    else_=_TIERS.c.grace_until,
                ),
                updated_at=case((changing, now), else_=_TIERS.c.updated_at),
            )
            .returning(_TIERS.c.id)
            .cte("settled")
        )
        # history: `qualified` (with the qualified tier's move) or `grace_started`
        details = case(
            (
                up,
                _object(
                    *record,
                    ("threshold", ask.threshold(movers.c.reach, enter=True)),
                    (
                        "qualified",
                        _object(("from", movers.c.qualified_tier), ("to", reach_code)),
                    ),
                ),
            ),
            else_=_object(
                *record,
                ("tier", movers.c.tier),
                ("qualified_tier", movers.c.qualified_tier),
                ("supported", reach_code),
                ("grace_until", grace_text),
                ("threshold", ask.threshold(movers.c.q, enter=False)),
            ),
        )
        history = (
            insert(_HISTORY)
            .from_select(
                [
                    "program_id",
                    "member_id",
                    "from_tier",
                    "to_tier",
                    "reason",
                    "details",
                    "at",
                    "actor",
                ],
                select(
                    literal(program_id, BigInteger()),
                    movers.c.member_id,
                    movers.c.tier,
                    case((up, reach_code), else_=movers.c.tier),
                    case(
                        (up, _text(Reason.QUALIFIED.value)),
                        else_=_text(Reason.GRACE_STARTED.value),
                    ),
                    details,
                    now,
                    _text(ACTOR),
                )
                .where(movers.c.act.in_([_InSql.UP, _InSql.GRACE]))
                .order_by(movers.c.account_id),
            )
            .returning(_HISTORY.c.id)
            .cte("history")
        )
        # near-upgrade notices (`jifen.tiers.service.tell_near`), once per tier and period
        now_code = ask.code(case((up, movers.c.reach), else_=movers.c.q))
        missing = ask.missing(movers.c.near_to)
        told = (
            postgresql.insert(_NOTICES)
            .from_select(
                ["program_id", "member_id", "benefit", "period", "tier", "details", "issued_at"],
                select(
                    literal(program_id, BigInteger()),
                    movers.c.member_id,
                    ask.code(movers.c.near_to, prefix=NEAR_PREFIX),
                    _bound_text(win.period),
                    now_code,
                    _object(("measures", read), ("missing", missing)),
                    now,
                )
                .where(movers.c.near_to.is_not(None))
                .order_by(movers.c.account_id),
            )
            .on_conflict_do_nothing(index_elements=["program_id", "member_id", "benefit", "period"])
            .returning(_NOTICES.c.member_id)
            .cte("told")
        )
        # outbox: each member's change in member order, then the notices written (as the
        # Python path writes them)
        changes = select(
            literal(0).label("k"),
            movers.c.account_id,
            movers.c.member_id,
            case((up, _text("tier.changed")), else_=_text("tier.grace_started")).label("type"),
            case(
                (
                    up,
                    _object(
                        ("from", movers.c.tier),
                        ("to", reach_code),
                        ("reason", _text(Reason.QUALIFIED.value)),
                        ("qualified_tier", reach_code),
                    ),
                ),
                else_=_object(
                    ("tier", movers.c.tier),
                    ("qualified_tier", movers.c.qualified_tier),
                    ("supported", reach_code),
                    ("grace_until", grace_text),
                ),
            ).label("payload"),
        ).where(movers.c.act.in_([_InSql.UP, _InSql.GRACE]))
        notices = select(
            literal(1).label("k"),
            movers.c.account_id,
            movers.c.member_id,
            _text("tier.near_upgrade").label("type"),
            _object(
                ("tier", now_code),
                ("next", ask.code(movers.c.near_to)),
                ("missing", missing),
                ("period", _bound_text(win.period)),
            ).label("payload"),
        ).select_from(movers.join(told, told.c.member_id == movers.c.member_id))
        both = union_all(changes, notices).subquery("events")
        events = (
            insert(EVENTS)
            .from_select(
                ["program_id", "member_id", "type", "payload", "occurred_at"],
                select(
                    literal(program_id, BigInteger()),
                    both.c.member_id,
                    both.c.type,
                    both.c.payload,
                    now,
                ).order_by(both.c.k, both.c.account_id),
            )
            .cte("events")
        )
        # what comes back: Python's members, and (on every row, and on one row when there
        # are none of those) the members settled (written) and the history rows written
        # here
        count = select(
            select(func.count()).select_from(settled).scalar_subquery().label("settled"),
            select(func.count()).select_from(history).scalar_subquery().label("written"),
        ).subquery("written")
        self.statement = (
            select(
                *(decided.c[name] for name in (*_Standing.COLUMNS, "status", *names)),
                count.c.settled,
                count.c.written,
            )
            .select_from(count.outerjoin(decided, decided.c.act == _InSql.PYTHON))
            .add_cte(settled)
            .add_cte(events)
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


_GRANTS = cast(Table, TierGrant.__table__)


class _InSql:
    """The ladder's questions (`_Ladder.supported`, `near`; `_evaluate_one`'s cases) asked
    in SQL over a batch's tier rows (`due`: their columns, with the account's `status`)
    and measures (`enter`, `keep`: each measure as an SQL expression).

    `act` sorts the members: `NONE` (the record supports exactly the tier they are in:
    nothing to change), `UP` (an upgrade the statement writes), `GRACE` (a grace period
    the statement starts), `PYTHON` (everything else, decided by `_evaluate_one`: a tier
    above the qualified one — a grant holding it, or one ended —, a grace period in
    course, a downgrade without grace, an upgrade of a member holding a grant in force).
    The statement only ever writes what Python would (tests/tiers/test_job_in_sql.py
    holds the two equal, row for row)."""

    PYTHON = "python"
    NONE = "none"
    UP = "up"
    GRACE = "grace"

    @classmethod
    def busy(cls, decided: Any) -> ColumnElement[bool]:
        """The members of `decided` with something to do: not `NONE`, or a near-upgrade
        notice to tell (`near_to`). The others are left as they are, `evaluated_at`
        too."""
        return or_(decided.c.act != cls.NONE, decided.c.near_to.is_not(None))

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

    def rank(self, code: ColumnElement[Any]) -> ColumnElement[int]:
        """`_Ladder.rank`: a code no longer defined is the base tier."""
        return case(
            {c: literal(r) for c, r in self.ladder.ranks.items()}, value=code, else_=literal(0)
        )

    def code(self, rank: ColumnElement[Any], prefix: str = "") -> ColumnElement[str]:
        """The code of the level at `rank` (`prefix` before it)."""
        return case(
            {r: _bound_text(prefix + tier.code) for r, tier in enumerate(self.policy.levels)},
            value=rank,
        )

    def threshold(self, rank: ColumnElement[Any], *, enter: bool) -> ColumnElement[Any]:
        """`threshold_json` of the enter (or keep) threshold of the level at `rank`."""
        return case(
            {
                r: _bound_json(threshold_json(tier.enter if enter else tier.keep))
                for r, tier in enumerate(self.policy.levels)
            },
            value=rank,
            else_=_bound_json(None),
        )

    def supported(self, qualified: ColumnElement[Any]) -> ColumnElement[int]:
        """`_Ladder.supported` for a member qualified at rank `qualified`."""
        ladder = self.ladder
        whens = [
            (
                or_(
                    and_(qualified >= rank, self.meets(ladder.keep[rank], self.keep)),
                    and_(qualified < rank, self.meets(ladder.enter[rank], self.enter)),
                ),
                literal(rank),
            )
            for rank in range(len(ladder.enter) - 1, 0, -1)
            if ladder.qualifiable[rank]
        ]
        return case(*whens, else_=literal(0)) if whens else literal(0)

    def act(
        self, qualified: ColumnElement[Any], reach: ColumnElement[Any], now: Any
    ) -> ColumnElement[str]:
        """What `_evaluate_one` comes to for the member (see the class's docstring)."""
        due = self.due
        granted = exists().where(
            _GRANTS.c.program_id == self.program_id,
            _GRANTS.c.member_id == due.c.member_id,
            _GRANTS.c.revoked_at.is_(None),
            _GRANTS.c.starts_at <= now,
            _GRANTS.c.ends_at > now,
        )
        below = self.GRACE if self.policy.grace_days > 0 else self.PYTHON
        return case(
            (
                or_(due.c.tier != due.c.qualified_tier, due.c.grace_until.is_not(None)),
                _text(self.PYTHON),
            ),
            (reach == qualified, _text(self.NONE)),
            (reach > qualified, case((granted, _text(self.PYTHON)), else_=_text(self.UP))),
            else_=_text(below),
        )

    def near(self, current: ColumnElement[Any]) -> ColumnElement[Any]:
        """`_Ladder.near` for a member in the tier at rank `current`, to be told (an active
        account, not told yet this period: `tell_near`'s unique key): the next tier's
        rank, else NULL."""
        whens: dict[int, ColumnElement[Any]] = {}
        for rank in range(len(self.ladder.enter)):
            target = self.ladder.next[rank]
            if target is None:
                continue
            pairs = self.ladder.enter[target]
            almost = self.ladder.almost[target]
            if pairs is None or not almost:
                continue
            told = exists().where(
                _NOTICES.c.program_id == self.program_id,
                _NOTICES.c.member_id == self.due.c.member_id,
                _NOTICES.c.benefit == NEAR_PREFIX + self.policy.levels[target].code,
                _NOTICES.c.period == self.period,
            )
            whens[rank] = case(
                (
                    and_(
                        self.due.c.status == AccountStatus.ACTIVE,
                        ~self.meets(pairs, self.enter),
                        or_(*(self.enter[m] >= _at_least(m, need) for m, need in almost)),
                        ~told,
                    ),
                    literal(target),
                ),
            )
        if not whens:
            return sql_cast(null(), Integer())
        return case(whens, value=current)

    def missing(self, target: ColumnElement[Any]) -> ColumnElement[Any]:
        """`tell_near`'s `missing` for the next tier at rank `target`: each measure of its
        enter threshold, what it lacks (as text)."""
        whens: dict[int, ColumnElement[Any]] = {}
        for rank in range(len(self.ladder.enter)):
            pairs = self.ladder.enter[rank]
            if pairs:
                whens[rank] = _object(
                    *(
                        (m.value, sql_cast(literal(need, Numeric()) - self.enter[m], Text()))
                        for m, need in pairs
                    )
                )
        return case(whens, value=target) if whens else sql_cast(null(), JSONB())

    @staticmethod
    def meets(
        pairs: Pairs | None, measures: dict[Measure, ColumnElement[Any]]
    ) -> ColumnElement[bool]:
        """`_meets` in SQL."""
        if not pairs:
            return false()
        return or_(*(measures[m] >= _at_least(m, need) for m, need in pairs))


def _at_least(measure: Measure, need: Decimal) -> ColumnElement[Any]:
    """`need` as the bound a measure is compared with (`measure >= bound`): for growth and
    purchases, whole numbers, the least whole number at or above it (the same answer,
    compared as bigints, not each total cast to numeric); spend as numeric."""
    if measure == Measure.SPEND:
        return literal(need, Numeric())
    return literal(math.ceil(need), BigInteger())


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
) -> bool:
    """Evaluate one member (steps 1 and 2 of the module's docstring): changes `row` and
    adds the history and outbox rows to write. False when there is nothing to do: the
    member holds the qualified tier, no grace period in course, and the record supports
    exactly it (`_InSql.NONE`)."""
    plain = row.tier == row.qualified_tier and row.grace_until is None
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
        return not plain  # the common case: the record holds the tier, nothing to record
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
    return True


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
