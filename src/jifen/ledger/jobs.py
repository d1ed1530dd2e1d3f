"""Set-based ledger jobs: release pending lots, expire lots, lapse holds.

Each step works on a set of member accounts that the caller has locked, with a handful
of statements per batch however many lots it touches: one journal transaction per
account, entries and allocations inserted in bulk, balances updated in one executemany.
The same steps run lazily for one member before any write to it (`posting.lock_accounts`)
and in batches from the scheduler (`run_batch`), so a member never sees points that
should have expired or been released, whether or not the nightly job has run yet.

Every step is idempotent: it only touches what is due and not yet done, under the
accounts' row locks, so it is safe to re-run and safe with several workers.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, cast

from sqlalchemy import (
    Select,
    Table,
    any_,
    bindparam,
    func,
    insert,
    literal,
    select,
    union_all,
    update,
)
from sqlalchemy.orm import InstrumentedAttribute, Session

from jifen.db.outbox import emit_many
from jifen.db.vouched import planned_for_parameters
from jifen.ledger import sweep
from jifen.ledger.holds import close_hold
from jifen.ledger.models import (
    Account,
    AccountKind,
    Bucket,
    Hold,
    HoldStatus,
    JournalEntry,
    JournalTransaction,
    Lot,
    LotAllocation,
    LotStatus,
    TxnKind,
)
from jifen.ledger.posting import Book

JOB_ACTOR = "job:{}"
ACCOUNTS = cast(Table, Account.__table__)
LOTS = cast(Table, Lot.__table__)


class Step(StrEnum):
    LAPSE = "lapse"
    RELEASE = "release"
    EXPIRE = "expire"


@dataclass
class StepResult:
    accounts: int = 0
    items: int = 0
    points: int = 0
    more: bool = False
    """A batch with nothing to count that is not the run's last (the tier job's batch of
    members with nothing to do): the runner calls again. A batch that counts nothing and
    says no more ends the run."""

    def last(self) -> bool:
        """Whether this batch ends its run: it counted nothing and says no more."""
        return not (self.accounts or self.items or self.more)

    def add(self, other: StepResult) -> None:
        self.accounts += other.accounts
        self.items += other.items
        self.points += other.points


def maintain_accounts(session: Session, book: Book, account_ids: list[int], now: datetime) -> None:
    """Bring locked accounts up to date: lapse due holds, release, expire."""
    for step in Step:
        run_step(session, book, step, account_ids, now)
    refresh_next_due(session, account_ids)


def run_step(
    session: Session, book: Book, step: Step, account_ids: list[int], now: datetime
) -> StepResult:
    if step == Step.LAPSE:
        return _lapse_holds(session, book, account_ids, now)
    if step == Step.RELEASE:
        return _release_lots(session, book, account_ids, now)
    return _expire_lots(session, book, account_ids, now)


SCAN = 8
"""A batch of `limit` accounts looks at the first `SCAN × limit` due items to find them."""


def _due(step: Step, program_id: int, now: datetime) -> Select[int]:
    """The accounts of due items, earliest due first: in the order of the partial index on
    due items, which the ordering makes the planner read (the status is written into the
    SQL so that it can use it). Without the ordering PostgreSQL may read the first due
    items by scanning the lots table from its start, past every lot done by the batches
    before (at 50,000 members, 280,000 lots read to find 16,000 by the twentieth batch):
    work per batch that grew with the batches already done."""
    table, status, due_at = _DUE[step]
    return (
        select(table.account_id)
        .where(
            table.program_id == program_id,
            table.status == literal(str(status), literal_execute=True),
            due_at <= now,
        )
        .order_by(due_at)
    )


_DUE: dict[Step, tuple[type[Hold] | type[Lot], StrEnum, InstrumentedAttribute[datetime | None]]] = {
    Step.LAPSE: (Hold, HoldStatus.ACTIVE, Hold.expires_at),
    Step.RELEASE: (Lot, LotStatus.PENDING, Lot.available_at),
    Step.EXPIRE: (Lot, LotStatus.AVAILABLE, Lot.expires_at),
}
"""Per step: the items it is due for, the status they are due in and when they fall due."""


def run_batch(session: Session, book: Book, step: Step, now: datetime, limit: int) -> StepResult:
    """One batch of a scheduled job: lock up to `limit` accounts with something due and
    process them. An empty result means the job is done for now.

    The candidates are the accounts of the first due items in the due index, not the first
    accounts in account order: what earlier batches did leaves only dead index entries
    behind in the due index, which later scans skip, where an account-ordered scan would
    walk every account done before it again in every batch."""
    if not _on_postgres(session):
        return _run_batch(session, book, step, now, limit, postgres=False)
    with planned_for_parameters(session):
        return _run_batch(session, book, step, now, limit, postgres=True)


def _run_batch(
    session: Session, book: Book, step: Step, now: datetime, limit: int, *, postgres: bool
) -> StepResult:
    items = _due(step, book.program_id, now).limit(SCAN * limit).subquery()
    candidates = (
        select(items.c.account_id).distinct().order_by(items.c.account_id).limit(limit)
    ).scalar_subquery()
    # On PostgreSQL the candidates as one array, so that the accounts are found by key
    # (`IN (subquery)` hashed the whole accounts table in every batch).
    chosen = Account.id == any_(func.array(candidates)) if postgres else Account.id.in_(candidates)
    locked = list(
        session.execute(
            select(Account.id).where(chosen).order_by(Account.id).with_for_update(skip_locked=True)
        ).scalars()
    )
    if not locked:  # nothing due, or every candidate is being worked on by another worker
        return StepResult()
    if step != Step.LAPSE and postgres:
        # One statement does the step and sets the accounts' next_due_at (jifen.ledger.sweep).
        swept = sweep.release if step == Step.RELEASE else sweep.expire
        return StepResult(*swept(session, book, locked, now, JOB_ACTOR.format(step), refresh=True))
    result = run_step(session, book, step, locked, now)
    refresh_next_due(session, locked)
    return result


# -- lapse ---------------------------------------------------------------------------------


def _lapse_holds(session: Session, book: Book, account_ids: list[int], now: datetime) -> StepResult:
    holds = (
        session.execute(
            select(Hold)
            .where(
                Hold.account_id.in_(account_ids),
                Hold.status == HoldStatus.ACTIVE,
                Hold.expires_at <= now,
            )
            .order_by(Hold.id)
            .execution_options(populate_existing=True)
        )
        .scalars()
        .all()
    )
    result = StepResult()
    if not holds:
        return result
    accounts = {
        account.id: account
        for account in session.execute(
            select(Account)
            .where(Account.id.in_({hold.account_id for hold in holds}))
            .execution_options(populate_existing=True)
        ).scalars()
    }
    for hold in holds:
        close_hold(
            session,
            book,
            hold,
            accounts[hold.account_id],
            now=now,
            actor=JOB_ACTOR.format("lapse"),
            status=HoldStatus.LAPSED,
        )
        result.items += 1
        result.points += hold.amount
    session.flush()
    result.accounts = len(accounts)
    return result


# -- release -------------------------------------------------------------------------------


def _release_lots(
    session: Session, book: Book, account_ids: list[int], now: datetime
) -> StepResult:
    if _on_postgres(session):
        return StepResult(
            *sweep.release(session, book, account_ids, now, JOB_ACTOR.format("release"))
        )
    # What is left of each lot is released: a clawback may have taken part of it already.
    lots = session.execute(
        select(Lot.id, Lot.account_id, Lot.member_id, Lot.remaining, Lot.expires_at)
        .where(
            Lot.account_id.in_(account_ids),
            Lot.status == LotStatus.PENDING,
            Lot.available_at <= now,
        )
        .order_by(Lot.account_id, Lot.expires_at.is_(None), Lot.expires_at, Lot.id)
    ).all()
    if not lots:
        return StepResult()
    by_account: dict[int, list[Any]] = defaultdict(list)
    for lot in lots:
        by_account[lot.account_id].append(lot)
    balances = dict(
        session.execute(
            select(Account.id, Account.available).where(Account.id.in_(by_account))
        ).all()
    )
    txn_ids = _insert_transactions(session, book, TxnKind.RELEASE, by_account, now)
    entries: list[dict[str, Any]] = []
    deltas: list[dict[str, Any]] = []
    repayments: list[dict[str, Any]] = []
    for account_id, rows in by_account.items():
        member_id, points, txn_id = (
            rows[0].member_id,
            sum(r.remaining for r in rows),
            txn_ids[account_id],
        )
        entries += [
            _entry(book, txn_id, account_id, member_id, Bucket.PENDING, -points),
            _entry(book, txn_id, account_id, member_id, Bucket.AVAILABLE, points),
        ]
        deltas.append({"b_id": account_id, "b_available": points, "b_pending": -points})
        debt = -balances[account_id]
        for row in rows:  # released points repay a debt first, earliest expiry first
            if debt <= 0:
                break
            take = min(debt, row.remaining)
            debt -= take
            repayments.append(
                {
                    "program_id": book.program_id,
                    "member_id": member_id,
                    "transaction_id": txn_id,
                    "lot_id": row.id,
                    "amount": -take,
                    "expired": False,
                }
            )
    session.execute(
        update(Lot)
        .where(Lot.id.in_([lot.id for lot in lots]))
        .values(status=LotStatus.AVAILABLE)
        .execution_options(synchronize_session=False)
    )
    if repayments:
        session.execute(insert(LotAllocation), repayments)
        session.connection().execute(
            update(LOTS)
            .where(LOTS.c.id == bindparam("b_lot"))
            .values(remaining=LOTS.c.remaining + bindparam("b_amount")),
            [{"b_lot": r["lot_id"], "b_amount": r["amount"]} for r in repayments],
        )
    _apply(session, book, entries, deltas, "points.released", txn_ids, by_account, now)
    return StepResult(len(by_account), len(lots), sum(lot.remaining for lot in lots))


# -- expire --------------------------------------------------------------------------------


def _expire_lots(session: Session, book: Book, account_ids: list[int], now: datetime) -> StepResult:
    if _on_postgres(session):
        return StepResult(
            *sweep.expire(session, book, account_ids, now, JOB_ACTOR.format("expire"))
        )
    lots = session.execute(
        select(Lot.id, Lot.account_id, Lot.member_id, Lot.remaining)
        .where(
            Lot.account_id.in_(account_ids),
            Lot.status == LotStatus.AVAILABLE,
            Lot.expires_at <= now,
        )
        .order_by(Lot.account_id, Lot.id)
    ).all()
    if not lots:
        return StepResult()
    session.execute(
        update(Lot)
        .where(Lot.id.in_([lot.id for lot in lots]))
        .values(status=LotStatus.EXPIRED, remaining=0)
        .execution_options(synchronize_session=False)
    )
    by_account: dict[int, list[Any]] = defaultdict(list)
    for lot in lots:
        if lot.remaining > 0:
            by_account[lot.account_id].append(lot)
    if not by_account:
        return StepResult(0, len(lots), 0)
    txn_ids = _insert_transactions(session, book, TxnKind.EXPIRE, by_account, now)
    entries: list[dict[str, Any]] = []
    deltas: list[dict[str, Any]] = []
    allocations: list[dict[str, Any]] = []
    expired_account = book.accounts[AccountKind.EXPIRED]
    for account_id, rows in by_account.items():
        member_id, points, txn_id = (
            rows[0].member_id,
            sum(r.remaining for r in rows),
            txn_ids[account_id],
        )
        entries += [
            _entry(book, txn_id, account_id, member_id, Bucket.AVAILABLE, -points),
            _entry(book, txn_id, expired_account, None, Bucket.AVAILABLE, points),
        ]
        deltas.append({"b_id": account_id, "b_available": -points, "b_pending": 0})
        allocations += [
            {
                "program_id": book.program_id,
                "member_id": member_id,
                "transaction_id": txn_id,
                "lot_id": row.id,
                "amount": -row.remaining,
                "expired": True,
            }
            for row in rows
        ]
    session.execute(insert(LotAllocation), allocations)
    _apply(session, book, entries, deltas, "points.expired", txn_ids, by_account, now)
    points = sum(lot.remaining for lot in lots)
    return StepResult(len(by_account), len(lots), points)


# -- shared --------------------------------------------------------------------------------


def _on_postgres(session: Session) -> bool:
    """PostgreSQL does the release and expiry steps in SQL (`jifen.ledger.sweep`)."""
    if session.get_bind().dialect.name != "postgresql":
        return False
    session.flush()  # the statements read what the ORM may still hold
    return True


def _entry(
    book: Book, txn_id: int, account_id: int, member_id: int | None, bucket: Bucket, amount: int
) -> dict[str, Any]:
    return {
        "transaction_id": txn_id,
        "program_id": book.program_id,
        "account_id": account_id,
        "member_id": member_id,
        "bucket": str(bucket),
        "amount": amount,
    }


def _insert_transactions(
    session: Session,
    book: Book,
    kind: TxnKind,
    by_account: dict[int, list[Any]],
    now: datetime,
) -> dict[int, int]:
    """One journal transaction per account, inserted in one statement; account → txn id."""
    account_ids = list(by_account)
    rows = [
        {
            "program_id": book.program_id,
            "member_id": by_account[account_id][0].member_id,
            "kind": str(kind),
            "points": sum(r.remaining for r in by_account[account_id]),
            "created_at": now,
            "actor": JOB_ACTOR.format(kind),
        }
        for account_id in account_ids
    ]
    ids = (
        session.execute(
            insert(JournalTransaction).returning(
                JournalTransaction.id, sort_by_parameter_order=True
            ),
            rows,
        )
        .scalars()
        .all()
    )
    return dict(zip(account_ids, ids, strict=True))


def _apply(
    session: Session,
    book: Book,
    entries: list[dict[str, Any]],
    deltas: list[dict[str, Any]],
    event: str,
    txn_ids: dict[int, int],
    by_account: dict[int, list[Any]],
    now: datetime,
) -> None:
    assert sum(entry["amount"] for entry in entries) == 0
    session.execute(insert(JournalEntry), entries)
    session.connection().execute(
        update(ACCOUNTS)
        .where(ACCOUNTS.c.id == bindparam("b_id"))
        .values(
            available=ACCOUNTS.c.available + bindparam("b_available"),
            pending=ACCOUNTS.c.pending + bindparam("b_pending"),
        ),
        deltas,
    )
    emit_many(
        session,
        [
            {
                "program_id": book.program_id,
                "member_id": rows[0].member_id,
                "type": event,
                "payload": {"transaction_id": txn_ids[account_id], "points": delta},
                "occurred_at": now,
            }
            for (account_id, rows), delta in zip(
                by_account.items(),
                (abs(d["b_available"]) for d in deltas),
                strict=True,
            )
        ],
    )


def refresh_next_due(session: Session, account_ids: list[int]) -> None:
    """Set each account's `next_due_at` to the earliest coming expiry, release or lapse."""
    if not account_ids:
        return
    if _on_postgres(session):
        sweep.refresh_next_due(session, account_ids)
        return
    expiries = select(Lot.account_id.label("account_id"), Lot.expires_at.label("due")).where(
        Lot.account_id.in_(account_ids),
        Lot.status == LotStatus.AVAILABLE,
        Lot.remaining > 0,
        Lot.expires_at.is_not(None),
    )
    releases = select(Lot.account_id, Lot.available_at).where(
        Lot.account_id.in_(account_ids), Lot.status == LotStatus.PENDING
    )
    lapses = select(Hold.account_id, Hold.expires_at).where(
        Hold.account_id.in_(account_ids), Hold.status == HoldStatus.ACTIVE
    )
    events = union_all(expiries, releases, lapses).subquery()
    due = dict(
        session.execute(
            select(events.c.account_id, func.min(events.c.due)).group_by(events.c.account_id)
        ).all()
    )
    session.connection().execute(
        update(ACCOUNTS)
        .where(ACCOUNTS.c.id == bindparam("b_id"))
        .values(next_due_at=bindparam("b_due")),
        [{"b_id": account_id, "b_due": due.get(account_id)} for account_id in account_ids],
    )
