"""Credits for many members at once (bulk imports): the same journal rows, lots, balances
and outbox events that `service.credit` and `service.credit_growth` write one member at
a time, written set-based — each table once per batch (`jifen.db.bulk`).

The batch is a list of credits, in the order they are made, to members whose points
accounts the caller has locked with `posting.lock_accounts` (which also brought them up
to date). A member may have several: each sees the balances the ones before it left, as
if they were booked one after the other, and the account's row is written once. A member
in debt whose credit would be available at once repays the debt from it; that takes lots
apart, so such a credit goes through `service.credit`, one at a time, in the same
transaction (and a member in debt may then have only that credit in the batch). The
result is the same either way.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, cast

from sqlalchemy import Table, or_, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from jifen.db.bulk import copy_rows, copy_tuples, execute_behind, reserve_ids_of, update_rows
from jifen.db.outbox import OutboxEvent
from jifen.ledger.expiry import (
    AfterInactivity,
    AfterMonths,
    FixedYearlyDate,
    NeverExpire,
    inactivity_deadline,
)
from jifen.ledger.models import (
    Account,
    AccountKind,
    Bucket,
    JournalEntry,
    JournalTransaction,
    Lot,
    LotStatus,
    TxnKind,
)
from jifen.ledger.posting import Book, check_points, ensure_writable, lock_accounts

_BY_DAY = (AfterMonths, FixedYearlyDate, NeverExpire)
"""The expiry policies whose date depends on nothing but the local day a lot is earned."""


class LotDates:
    """`Book.release_at` and `Book.lot_expiry` for many credits, each worked out once per
    local day earned where nothing else moves it: the return window always, the expiry
    under the policies of `_BY_DAY` (after months, a fixed date, never); under the others
    (inactivity, anniversary) it is asked of the book each time. A batch's orders fall on
    a few hundred days, and the date arithmetic (relativedelta's month steps) was about a
    twentieth of an import's CPU, done twice an order (`runs.due_at_once`, `credit_many`).
    One lives as long as a batch: the book does not change under it."""

    def __init__(self, book: Book) -> None:
        self.book = book
        self._by_day = isinstance(book.expiry, _BY_DAY)
        self._release: dict[tuple[date, Any], datetime | None] = {}
        self._expiry: dict[date, datetime | None] = {}

    def release_at(self, earned_at: datetime) -> datetime | None:
        book = self.book
        if book.pending_days <= 0 or earned_at.tzinfo is None:
            return book.release_at(earned_at)
        # (the same local day and zone of `earned_at`: the same release)
        key = (earned_at.astimezone(book.tz).date(), earned_at.tzinfo)
        try:
            return self._release[key]
        except KeyError:
            found = self._release[key] = book.release_at(earned_at)
            return found

    def lot_expiry(self, account: Account, earned_at: datetime, now: datetime) -> datetime | None:
        book = self.book
        opened = account.opened_at
        if not self._by_day or earned_at.tzinfo is None or (opened and opened.tzinfo is None):
            return book.lot_expiry(account, earned_at, now)  # (naive times: its own refusal)
        day = earned_at.astimezone(book.tz).date()
        try:
            return self._expiry[day]
        except KeyError:
            found = self._expiry[day] = book.lot_expiry(account, earned_at, now)
            return found


@dataclass(frozen=True)
class Credit:
    """Points (pending for the return window when `pending`) and growth value for one
    member; either may be 0."""

    member_id: int
    points: int
    growth: int
    earned_at: datetime
    pending: bool
    reference: str
    growth_reference: str
    details: dict[str, Any]


@dataclass(frozen=True)
class Credited:
    txn_id: int | None
    growth_txn_id: int | None
    release: datetime | None = None
    """When the points' lot becomes available (None: at once, or no points)."""


def credit_many(
    session: Session,
    book: Book,
    accounts: dict[int, Account],
    credits: Sequence[Credit],
    *,
    now: datetime,
    actor: str,
    dates: LotDates | None = None,
    outbox: list[dict[str, Any]] | None = None,
    ids: tuple[list[int], list[int]] | None = None,
) -> list[Credited]:
    """Book `credits` in order (`accounts` are their members' points accounts, locked).
    Returns each credit's transactions, in order. `dates`: the batch's, when it has one.
    `outbox`: where to leave the credits' events (rows as `db.outbox.event` makes them),
    for the caller to write with its own (else written here). `ids`: transaction and lot
    ids the caller reserved with its own (`ids_wanted` says how many; else reserved here),
    used unless a credit repays a debt (booked by `service.credit`, which takes its own):
    then all are reserved here again."""
    from jifen.ledger import service  # service builds on this module's siblings

    dates = dates if dates is not None else LotDates(book)

    repeated = Counter(c.member_id for c in credits)
    if any(n > 1 and accounts[m].available < 0 for m, n in repeated.items()):
        raise ValueError("credit_many takes one credit for a member in debt")
    for credit in credits:
        if credit.points:
            check_points(credit.points)
        if credit.growth:
            check_points(credit.growth, "growth")
        ensure_writable(accounts[credit.member_id])
    growing = sorted({c.member_id for c in credits if c.growth})
    growth_accounts = (
        lock_accounts(session, book, growing, now, AccountKind.GROWTH) if growing else {}
    )
    for account in growth_accounts.values():
        ensure_writable(account)

    one_by_one: dict[int, int] = {}
    """Credits that repay a debt: index → their transaction, booked by `service.credit`."""
    batch: list[tuple[int, Credit, datetime | None]] = []
    for i, credit in enumerate(credits):
        if not credit.points:
            continue
        release = dates.release_at(credit.earned_at) if credit.pending else None
        if release is not None and release <= now:
            release = None
        if release is None and accounts[credit.member_id].available < 0:
            one_by_one[i] = service.credit(
                session,
                book,
                credit.member_id,
                credit.points,
                now=now,
                actor=actor,
                pending=credit.pending,
                earned_at=credit.earned_at,
                reference=credit.reference,
                details=credit.details,
            ).id
        else:
            batch.append((i, credit, release))

    growth_list = [(i, c) for i, c in enumerate(credits) if c.growth]
    if ids is None or one_by_one:
        # (after a credit booked one at a time: on SQLite ids reserved before it may be
        # the ones it took; on PostgreSQL those given are merely left unused)
        wanted = ids_wanted(sum(1 for c in credits if c.points), len(growth_list))
        txn_ids, lot_ids = reserve_ids_of(session, wanted)
    else:
        txn_ids, lot_ids = ids
        if len(txn_ids) < len(batch) + len(growth_list) or len(lot_ids) < len(batch):
            raise ValueError("credit_many: fewer ids given than ids_wanted says")
    issued = book.accounts[AccountKind.ISSUED]
    growth_issued = book.accounts[AccountKind.GROWTH_ISSUED]
    program_id = book.program_id
    # The rows as tuples in the order of their tables' columns (`_TXN`, `_ENTRY`, `_LOT`),
    # straight into `COPY` (`db.bulk.copy_tuples`): no mapping a row.
    transactions: list[tuple[Any, ...]] = []
    entries: list[tuple[Any, ...]] = []
    lots: list[tuple[Any, ...]] = []
    events: list[dict[str, Any]] = []
    found: dict[int, Credited] = {}
    earn, growth_kind = str(TxnKind.EARN), str(TxnKind.GROWTH)
    available, pending = str(Bucket.AVAILABLE), str(Bucket.PENDING)
    lot_available, lot_pending = str(LotStatus.AVAILABLE), str(LotStatus.PENDING)

    def txn(txn_id: int, kind: str, credit: Credit, points: int, reference: str) -> None:
        member_id = credit.member_id
        transactions.append(
            (
                txn_id,
                program_id,
                member_id,
                kind,
                points,
                now,
                reference,
                None,
                None,
                None,
                None,
                actor,
                credit.details,
            )
        )
        events.append(
            {
                "program_id": program_id,
                "member_id": member_id,
                "type": "points.credited" if kind == earn else "growth.credited",
                "payload": {"transaction_id": txn_id, "kind": kind, "points": points},
                "occurred_at": now,
            }
        )

    def pair(
        txn_id: int, account_id: int, member_id: int | None, bucket: str, n: int, against: int
    ) -> None:
        """The transaction's two entries, in the order of their accounts' ids: `n` to the
        member's account, `-n` to the issuing account `against`."""
        mine = (txn_id, program_id, account_id, member_id, bucket, n)
        theirs = (txn_id, program_id, against, None, available, -n)
        if against < account_id:
            entries.append(theirs)
            entries.append(mine)
        else:
            entries.append(mine)
            entries.append(theirs)

    deadline = (
        inactivity_deadline(book.expiry, last_activity_at=now, tz=book.tz)
        if isinstance(book.expiry, AfterInactivity)
        else None
    )
    balances: dict[int, dict[str, Any]] = {}
    """Account id → its balances as the credits so far leave them."""
    growth_balances: dict[int, dict[str, Any]] = {}
    for (i, credit, release), txn_id, lot_id in zip(batch, txn_ids, lot_ids, strict=False):
        account = accounts[credit.member_id]
        points = credit.points
        txn(txn_id, earn, credit, points, credit.reference)
        pair(
            txn_id,
            account.id,
            account.member_id,
            pending if release is not None else available,
            points,
            issued,
        )
        expiry = dates.lot_expiry(account, credit.earned_at, now)
        lots.append(
            (
                lot_id,
                program_id,
                credit.member_id,
                account.id,
                txn_id,
                points,
                points,
                lot_pending if release is not None else lot_available,
                credit.earned_at,
                release,
                expiry,
            )
        )
        balance = balances.get(account.id)
        if balance is None:
            balance = balances[account.id] = {
                "account": account,
                "available": account.available,
                "pending": account.pending,
                "lifetime_earned": account.lifetime_earned,
                "next_due_at": account.next_due_at,
                "last_activity_at": now,
            }
        if release is None:
            balance["available"] += points
        else:
            balance["pending"] += points
        balance["lifetime_earned"] += points
        due = release or expiry
        next_due = balance["next_due_at"]
        if due is not None and (next_due is None or due < next_due):
            balance["next_due_at"] = due
        found[i] = Credited(txn_id, None, release)
    for i, txn_id in one_by_one.items():
        found[i] = Credited(txn_id, None)

    growth_ids = txn_ids[len(batch) : len(batch) + len(growth_list)]
    for (i, credit), txn_id in zip(growth_list, growth_ids, strict=True):
        growth_account = growth_accounts[credit.member_id]
        txn(txn_id, growth_kind, credit, credit.growth, credit.growth_reference)
        pair(txn_id, growth_account.id, credit.member_id, available, credit.growth, growth_issued)
        growth_balance = growth_balances.setdefault(
            growth_account.id, {"account": growth_account, "available": growth_account.available}
        )
        growth_balance["available"] += credit.growth
        earn_of = found.get(i, Credited(None, None))
        found[i] = Credited(earn_of.txn_id, txn_id, earn_of.release)

    touched = list(balances)
    _set_balances(session, list(balances.values()))
    _set_balances(session, list(growth_balances.values()))
    copy_tuples(session, _table(JournalTransaction), _TXN, transactions)
    copy_tuples(session, _table(JournalEntry), _ENTRY, entries)
    copy_tuples(session, _table(Lot), _LOT, lots)
    if outbox is not None:
        outbox.extend(events)
    else:
        copy_rows(session, OutboxEvent.__table__, events)  # type: ignore[arg-type]
    if deadline is not None and touched:
        # Earning is activity: under an inactivity policy it pushes every lot of the member.
        session.execute(
            update(Lot)
            .where(
                Lot.account_id.in_(touched),
                Lot.status.in_([LotStatus.PENDING, LotStatus.AVAILABLE]),
                or_(Lot.expires_at.is_(None), Lot.expires_at < deadline),
            )
            .values(expires_at=deadline)
            .execution_options(synchronize_session=False)
        )
    return [found.get(i, Credited(None, None)) for i in range(len(credits))]


_TXN = (
    "id",
    "program_id",
    "member_id",
    "kind",
    "points",
    "created_at",
    "reference",
    "reverses_id",
    "hold_id",
    "clawback_of_id",
    "reason",
    "actor",
    "details",
)
"""The columns of a credit's journal transaction, in the order `credit_many` gives them."""
_ENTRY = ("transaction_id", "program_id", "account_id", "member_id", "bucket", "amount")
_LOT = (
    "id",
    "program_id",
    "member_id",
    "account_id",
    "transaction_id",
    "amount",
    "remaining",
    "status",
    "earned_at",
    "available_at",
    "expires_at",
)


_BALANCED = "journal_entries_balanced"
"""PostgreSQL's deferred constraint trigger checking that each journal transaction's entries
sum to zero (migrations 0001 and 0005)."""


def check_balanced_behind(session: Session) -> None:
    """With the session's `COPY`s sent behind (`db.bulk.writing_behind`), queue the
    journal's deferred balance check of the entries written so far (made immediate, which
    runs it at once for them, then deferred again for the next): PostgreSQL checks them
    while Python goes on, instead of all at the commit, where nothing else can. Call it
    where every transaction written so far is whole. Otherwise nothing: the check runs at
    the commit, as always."""
    if execute_behind(session, f"SET CONSTRAINTS {_BALANCED} IMMEDIATE"):
        execute_behind(session, f"SET CONSTRAINTS {_BALANCED} DEFERRED")


def _table(model: Any) -> Table:
    return cast(Table, model.__table__)


def ids_wanted(points: int, growth: int) -> list[tuple[Table, int]]:
    """The journal transaction ids and lot ids `credit_many` books at most with, for
    `points` credits of points and `growth` of growth value (a transaction and a lot per
    credit's points, a transaction per credit's growth): for `db.bulk.reserve_ids_of`."""
    return [
        (cast(Table, JournalTransaction.__table__), points + growth),
        (cast(Table, Lot.__table__), points),
    ]


def _set_balances(session: Session, changes: list[dict[str, Any]]) -> None:
    """Write the accounts' new cached balances with one UPDATE (`db.bulk.update_rows`),
    and give the loaded accounts the same values (as committed: the ORM has nothing left
    to flush)."""
    if not changes:
        return
    columns = [c for c in changes[0] if c != "account"]
    session.flush()
    update_rows(
        session,
        Account.__table__,  # type: ignore[arg-type]
        ["id"],
        [{"id": ch["account"].id, **{c: ch[c] for c in columns}} for ch in changes],
    )
    for ch in changes:
        for c in columns:
            set_committed_value(ch["account"], c, ch[c])
