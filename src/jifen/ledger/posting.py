"""The machinery under every ledger operation: the book, account locks, postings, lots.

A `Posting` is one journal transaction being built: it collects entries by
(account, bucket), lot changes and allocations, and on `finish()` checks that the entries
sum to zero, writes them, and applies them to the cached balances of the member accounts
it touched. Cached balances are therefore only ever changed from entries, under the
account's row lock, in the same transaction as the entries.

Lots: a credit of available points creates a lot; a debit consumes lots earliest-expiry
first (never a pending lot, never one past its expiry) and records an allocation per lot;
a restore gives points back to the very lots they came from, and a lot whose expiry has
passed in the meantime passes them straight on to the programme's expired account.

Debt: where a programme allows it, a reversal or a clawback may take `available` below
zero. While it is negative, no lot has anything left, and every later credit of available
points first repays the debt (recorded as allocations on the credit's own transaction).
Hence the invariant: max(available, 0) == Σ remaining of the account's available lots.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast
from zoneinfo import ZoneInfo

from sqlalchemy import Table, and_, bindparam, case, func, insert, inspect, or_, select, update
from sqlalchemy.orm import Session

from jifen.core.errors import (
    DuplicateReference,
    InvalidInput,
    MemberClosed,
    MemberFrozen,
    NotFound,
    NotReversible,
)
from jifen.db.bulk import among_bound
from jifen.db.dml import insert_returning
from jifen.db.outbox import emit_many
from jifen.db.outbox import event as outbox_event
from jifen.ledger.expiry import AfterInactivity, ExpiryPolicy, expires_at, inactivity_deadline
from jifen.ledger.models import (
    Account,
    AccountKind,
    AccountStatus,
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

MAX_POINTS = 10**12

# Core tables for the bulk inserts: one executemany of uniform rows (the ORM's bulk insert
# splits rows by which values are None and asks for the new ids back).
ENTRIES = cast(Table, JournalEntry.__table__)
ALLOCATIONS = cast(Table, LotAllocation.__table__)
INSERT_ENTRIES = insert(ENTRIES)
INSERT_ALLOCATIONS = insert(ALLOCATIONS)


@dataclass(frozen=True)
class Book:
    """What the ledger needs to know of a programme (built by `jifen.programs`)."""

    program_id: int
    tz: ZoneInfo
    expiry: ExpiryPolicy
    pending_days: int
    allow_negative: bool
    allow_transfers: bool
    hold_minutes: int
    accounts: dict[AccountKind, int]
    """The programme's own accounts, by kind."""

    def release_at(self, earned_at: datetime) -> datetime | None:
        """When points earned at `earned_at` stop being pending: the end of the local day
        `pending_days` after the purchase; None when the programme has no return window."""
        if self.pending_days <= 0:
            return None
        local_day = earned_at.astimezone(self.tz).date() + timedelta(days=self.pending_days + 1)
        return datetime(local_day.year, local_day.month, local_day.day, tzinfo=self.tz).astimezone(
            earned_at.tzinfo
        )

    def lot_expiry(self, account: Account, earned_at: datetime, now: datetime) -> datetime | None:
        return expires_at(
            self.expiry,
            earned_at=earned_at,
            tz=self.tz,
            enrolled_at=account.opened_at,
            last_activity_at=now,
        )


def check_points(points: Any, field: str = "points") -> int:
    """A positive whole number of points, or a clear refusal."""
    if isinstance(points, bool) or not isinstance(points, int):
        raise InvalidInput(field=field, reason="must be a whole number of points")
    if points <= 0:
        raise InvalidInput(field=field, reason="must be greater than zero")
    if points > MAX_POINTS:
        raise InvalidInput(field=field, reason=f"must not exceed {MAX_POINTS}")
    return points


def ensure_writable(account: Account) -> None:
    if account.status == AccountStatus.FROZEN:
        raise MemberFrozen(member_id=account.member_id)
    if account.status == AccountStatus.CLOSED:
        raise MemberClosed(member_id=account.member_id)


_LOCK = (
    select(Account)
    .where(
        Account.program_id == bindparam("program_id"),
        among_bound(Account.member_id, "member_ids"),
        Account.kind == bindparam("kind"),
    )
    .order_by(Account.id)
    .with_for_update()
    .execution_options(populate_existing=True)
)
"""The lock every ledger write starts with (built once)."""


def lock_accounts(
    session: Session, book: Book, member_ids: list[int], now: datetime, kind: AccountKind
) -> dict[int, Account]:
    """Lock the members' accounts of `kind` in id order (no deadlocks), after bringing each
    up to date: due holds lapse, due pending lots are released, due lots expire."""
    from jifen.ledger import jobs  # jobs builds on this module

    # The rows are read whole with their lock (one round trip) and refreshed in the
    # identity map; only when something is due are they read again after maintenance,
    # which changes them with set-based statements.
    accounts = (
        session.execute(
            _LOCK, {"program_id": book.program_id, "member_ids": member_ids, "kind": kind}
        )
        .scalars()
        .all()
    )
    found = {account.member_id for account in accounts}
    for member_id in member_ids:
        if member_id not in found:
            raise NotFound(what="member", key=member_id)
    due = [a.id for a in accounts if a.next_due_at is not None and a.next_due_at <= now]
    if due and kind == AccountKind.POINTS:
        jobs.maintain_accounts(session, book, due, now)
        accounts = (
            session.execute(
                select(Account)
                .where(Account.id.in_([account.id for account in accounts]))
                .execution_options(populate_existing=True)
            )
            .scalars()
            .all()
        )
    return {account.member_id: account for account in accounts if account.member_id is not None}


def lock_account(
    session: Session,
    book: Book,
    member_id: int,
    now: datetime,
    kind: AccountKind = AccountKind.POINTS,
) -> Account:
    return lock_accounts(session, book, [member_id], now, kind)[member_id]


_LOCK_MEMBER = (
    select(Account)
    .where(
        Account.program_id == bindparam("program_id"),
        Account.member_id == bindparam("member_id"),
        Account.kind.in_([AccountKind.POINTS, AccountKind.GROWTH]),
    )
    # The points account is locked first, as every writer that takes both locks them
    # (points, then growth), so no two of them can deadlock.
    .order_by(case((Account.kind == AccountKind.POINTS, 0), else_=1))
    .with_for_update()
    .execution_options(populate_existing=True)
)
"""Both accounts of a member with one lock statement (built once)."""


@dataclass(frozen=True)
class MemberAccounts:
    """A member's two accounts, locked by this transaction (`lock_member`)."""

    points: Account
    growth: Account | None
    """None only for a member without a growth account."""


def lock_member(session: Session, book: Book, member_id: int, now: datetime) -> MemberAccounts:
    """Lock the member's points and growth accounts in one statement (points first), after
    bringing the points account up to date as `lock_accounts` does: what a purchase's
    award then writes to both needs no lock statement of its own (`locked`)."""
    from jifen.ledger import jobs  # jobs builds on this module

    params = {"program_id": book.program_id, "member_id": member_id}
    found = {a.kind: a for a in session.execute(_LOCK_MEMBER, params).scalars().all()}
    points = found.get(AccountKind.POINTS)
    if points is None:
        raise NotFound(what="member", key=member_id)
    if points.next_due_at is not None and points.next_due_at <= now:
        jobs.maintain_accounts(session, book, [points.id], now)
        found = {
            a.kind: a
            for a in session.execute(
                select(Account)
                .where(Account.id.in_([a.id for a in found.values()]))
                .execution_options(populate_existing=True)
            ).scalars()
        }
    return MemberAccounts(found[AccountKind.POINTS], found.get(AccountKind.GROWTH))


def locked(
    session: Session,
    book: Book,
    member_id: int,
    now: datetime,
    kind: AccountKind,
    account: Account | None,
) -> Account:
    """The member's account of `kind`: `account` when the caller has already locked it in
    this transaction (`lock_member`) and nothing of it has fallen due since, else locked
    now (`lock_account`). Every change to a locked account goes through its one object in
    the session (maintenance reads it back), so the object is what a new lock would read."""
    if (
        account is None
        or account.member_id != member_id
        or account.kind != kind
        or account.program_id != book.program_id
        or not inspect(account).persistent
        or (account.next_due_at is not None and account.next_due_at <= now)
    ):
        return lock_account(session, book, member_id, now, kind)
    return account


def refuse_used_reference(session: Session, book: Book, reference: str) -> None:
    """An external reference (order id, …) names one transaction per programme."""
    existing = session.execute(
        select(JournalTransaction.id).where(
            JournalTransaction.program_id == book.program_id,
            JournalTransaction.reference == reference,
        )
    ).scalar_one_or_none()
    if existing is not None:
        raise DuplicateReference(reference=reference, transaction_id=existing)


NEW_LOTS = "jifen.ledger.new_lots"
"""`session.info` key: transaction id → the lots this session's postings created for it."""


def lot_created(session: Session, transaction_id: int) -> Lot | None:
    """The one lot a posting of this session created for the transaction (None: it made
    none or several, or they were rolled back), as a query for it would read it: a lot's
    dates never change, and the session holds every other change to it."""
    lots: list[Lot] = session.info.get(NEW_LOTS, {}).get(transaction_id, [])
    if len(lots) != 1 or not inspect(lots[0]).persistent:
        return None
    return lots[0]


class Posting:
    """One journal transaction under construction."""

    def __init__(
        self,
        session: Session,
        book: Book,
        kind: str,
        *,
        now: datetime,
        actor: str,
        member_id: int | None,
        points: int,
        reference: str | None = None,
        reason: str | None = None,
        details: dict[str, Any] | None = None,
        reverses_id: int | None = None,
        hold_id: int | None = None,
        clawback_of_id: int | None = None,
    ) -> None:
        self.session = session
        self.book = book
        self.now = now
        self.accounts: dict[int, Account] = {}
        self.entries: dict[tuple[int, str], int] = defaultdict(int)
        self.allocations: list[dict[str, Any]] = []
        self._refunds: dict[int, dict[int, int]] = {}
        """Cancelled lot id → lot id → points this posting passed on to that lot."""
        values = {
            "program_id": book.program_id,
            "member_id": member_id,
            "kind": kind,
            "points": points,
            "created_at": now,
            "reference": reference,
            "reverses_id": reverses_id,
            "hold_id": hold_id,
            "clawback_of_id": clawback_of_id,
            "reason": reason,
            "actor": actor,
            "details": details,
        }
        # One INSERT … RETURNING; an external reference already used inserts nothing
        # (the unique constraint, waited on while a concurrent insert is in flight).
        unique = ("program_id", "reference") if reference is not None else None
        txn = insert_returning(session, JournalTransaction, values, unique=unique)
        if txn is None:
            assert reference is not None
            refuse_used_reference(session, book, reference)
            raise DuplicateReference(reference=reference, transaction_id="?")
        self.txn = txn

    @property
    def id(self) -> int:
        return self.txn.id

    # -- entries ---------------------------------------------------------------------
    def move(self, account: Account | int, bucket: Bucket, amount: int) -> None:
        """Add `amount` (signed) to an account's bucket in this transaction."""
        if isinstance(account, Account):
            self.accounts[account.id] = account
            account_id = account.id
        else:
            account_id = account
        self.entries[(account_id, bucket)] += amount

    def program(self, kind: AccountKind) -> int:
        return self.book.accounts[kind]

    # -- lots ------------------------------------------------------------------------
    def allocate(self, lot: Lot, amount: int, *, expired: bool = False) -> None:
        """Record a change of `lot.remaining` (signed) made by this transaction."""
        if amount == 0:
            return
        lot.remaining += amount
        self.allocations.append(
            {
                "program_id": lot.program_id,
                "member_id": lot.member_id,
                "transaction_id": self.id,
                "lot_id": lot.id,
                "amount": amount,
                "expired": expired,
            }
        )

    def new_lot(
        self,
        account: Account,
        amount: int,
        *,
        pending_until: datetime | None = None,
        earned_at: datetime | None = None,
        expires: datetime | bool | None = True,
    ) -> Lot:
        """Create a lot. `expires=True` computes the expiry from the programme's policy."""
        earned = earned_at or self.now
        expiry: datetime | None
        if isinstance(expires, datetime):
            expiry = expires
        elif expires:
            expiry = self.book.lot_expiry(account, earned, self.now)
        else:
            expiry = None
        lot = insert_returning(
            self.session,
            Lot,
            {
                "program_id": self.book.program_id,
                "member_id": account.member_id,
                "account_id": account.id,
                "transaction_id": self.id,
                "amount": amount,
                "remaining": amount,
                "status": LotStatus.PENDING if pending_until else LotStatus.AVAILABLE,
                "earned_at": earned,
                "available_at": pending_until,
                "expires_at": expiry,
            },
        )
        assert lot is not None
        self.session.info.setdefault(NEW_LOTS, {}).setdefault(self.id, []).append(lot)
        due = pending_until or expiry
        if due is not None and (account.next_due_at is None or due < account.next_due_at):
            account.next_due_at = due
        return lot

    def consume(self, account: Account, amount: int) -> int:
        """Take up to `amount` from the account's spendable lots, earliest expiry first.

        Returns what it took (less than `amount` only when the lots run out)."""
        if amount <= 0:
            return 0
        self.session.flush()
        lots = self.session.execute(
            select(Lot)
            .where(
                Lot.account_id == account.id,
                Lot.status == LotStatus.AVAILABLE,
                Lot.remaining > 0,
                or_(Lot.expires_at.is_(None), Lot.expires_at > self.now),
            )
            .order_by(Lot.expires_at.is_(None), Lot.expires_at, Lot.id)
            .execution_options(populate_existing=True)
        ).scalars()
        taken = 0
        for lot in lots:
            take = min(lot.remaining, amount - taken)
            self.allocate(lot, -take)
            taken += take
            if taken == amount:
                break
        return taken

    def restore(self, account: Account, lot: Lot, amount: int, from_bucket: Bucket | None) -> None:
        """Give `amount` back to `lot`, taking it from the member's `from_bucket` (None: the
        caller books the other side). A lot past its expiry passes the points straight on
        to the programme's expired account; a cancelled lot passes them on to the lots its
        cancellation charged (see `_forward_from_cancelled`)."""
        if from_bucket is not None:
            self.move(account, from_bucket, -amount)
        self.allocate(lot, amount)
        if lot.status == LotStatus.CANCELLED:
            self.allocate(lot, -amount, expired=True)
            self._forward_from_cancelled(account, lot, amount)
        elif lot.expires_at is not None and lot.expires_at <= self.now:
            # The lot's status is left to the expire step: while holds lapse during
            # maintenance the lot may still have points of its own that it must expire.
            self.allocate(lot, -amount, expired=True)
            self.move(self.program(AccountKind.EXPIRED), Bucket.AVAILABLE, amount)
        else:
            self.move(account, Bucket.AVAILABLE, amount)
            if lot.expires_at is not None and (
                account.next_due_at is None or lot.expires_at < account.next_due_at
            ):
                account.next_due_at = lot.expires_at

    def _forward_from_cancelled(self, account: Account, lot: Lot, amount: int) -> None:
        """Points coming back to a lot whose credit was reversed or clawed back in full.

        The reversal (or the clawbacks) that cancelled the lot charged the member for what
        had already gone out of it: from their other lots, and as debt (or let go) for what
        those could not cover. The points coming back refund that charge: they go back to
        the lots the cancelling transactions took (latest taken first, never more than they
        took, net of earlier refunds), and the rest comes back as a new lot, which the
        caller's `settle_debt` uses to repay any debt.
        """
        session = self.session
        session.flush()
        credit = lot.transaction_id
        cancelling = list(
            session.execute(
                select(JournalTransaction.id).where(
                    or_(
                        and_(
                            JournalTransaction.kind == TxnKind.REVERSAL,
                            JournalTransaction.reverses_id == credit,
                        ),
                        and_(
                            JournalTransaction.kind == TxnKind.CLAWBACK,
                            JournalTransaction.clawback_of_id == credit,
                        ),
                    )
                )
            ).scalars()
        )
        # Lots the cancelling transactions took from, and how much (its own lots excluded).
        taken: dict[int, int] = defaultdict(int)
        for lot_id, took in session.execute(
            select(LotAllocation.lot_id, LotAllocation.amount)
            .join(Lot, Lot.id == LotAllocation.lot_id)
            .where(
                LotAllocation.transaction_id.in_(cancelling),
                LotAllocation.amount < 0,
                LotAllocation.expired.is_(False),
                Lot.account_id == account.id,
                Lot.transaction_id != lot.transaction_id,
            )
            .order_by(LotAllocation.id)
        ):
            taken[lot_id] -= took
        if taken:
            # Earlier refunds: positive allocations on those lots by the transactions that
            # passed points through this lot (in the database, and in this posting).
            passers = set(
                session.execute(
                    select(LotAllocation.transaction_id).where(
                        LotAllocation.lot_id == lot.id,
                        LotAllocation.amount < 0,
                        LotAllocation.expired.is_(True),
                    )
                ).scalars()
            )
            refunded: dict[int, int] = defaultdict(int)
            if passers:
                for lot_id, back in session.execute(
                    select(LotAllocation.lot_id, LotAllocation.amount).where(
                        LotAllocation.transaction_id.in_(passers),
                        LotAllocation.lot_id.in_(list(taken)),
                        LotAllocation.amount > 0,
                        # what every positive allocation is; said, so that the index
                        # on transactions' allocations (not expired) finds them
                        LotAllocation.expired.is_(False),
                    )
                ):
                    refunded[lot_id] += back
            refunded_here = self._refunds.setdefault(lot.id, defaultdict(int))
            others = {
                other.id: other
                for other in session.execute(
                    select(Lot)
                    .where(Lot.id.in_(list(taken)))
                    .execution_options(populate_existing=True)
                ).scalars()
            }
            for lot_id in reversed(list(taken)):
                if amount == 0:
                    break
                due = taken[lot_id] - refunded[lot_id] - refunded_here[lot_id]
                back = min(due, amount)
                if back > 0:
                    refunded_here[lot_id] += back
                    self.restore(account, others[lot_id], back, None)
                    amount -= back
        if amount:
            self.new_lot(account, amount)
            self.move(account, Bucket.AVAILABLE, amount)

    def settle_debt(self, account: Account, available_before: int, credited: int) -> None:
        """A credit to an account in debt first repays the debt from the credited lots."""
        if available_before < 0 and credited > 0:
            self.consume(account, min(credited, -available_before))

    def touch(self, account: Account) -> None:
        """Earning or spending is activity: under an inactivity policy it pushes every lot."""
        account.last_activity_at = self.now
        policy = self.book.expiry
        if isinstance(policy, AfterInactivity):
            deadline = inactivity_deadline(policy, last_activity_at=self.now, tz=self.book.tz)
            self.session.flush()
            self.session.execute(
                update(Lot)
                .where(
                    Lot.account_id == account.id,
                    Lot.status.in_([LotStatus.PENDING, LotStatus.AVAILABLE]),
                    or_(Lot.expires_at.is_(None), Lot.expires_at < deadline),
                )
                .values(expires_at=deadline)
                .execution_options(synchronize_session=False)
            )

    # -- closing ---------------------------------------------------------------------
    def finish(
        self,
        event: str | None = None,
        *,
        member_id: int | None = None,
        payload: dict[str, Any] | None = None,
        outbox: list[dict[str, Any]] | None = None,
    ) -> JournalTransaction:
        """Write the entries and allocations, and `event` (to `outbox`, for the caller to
        write with others in one statement, when given)."""
        entries: list[dict[str, Any]] = [
            {
                "transaction_id": self.id,
                "program_id": self.book.program_id,
                "account_id": account_id,
                "member_id": self.accounts[account_id].member_id
                if account_id in self.accounts
                else None,
                "bucket": str(bucket),
                "amount": amount,
            }
            for (account_id, bucket), amount in sorted(self.entries.items())
            if amount != 0
        ]
        total = sum(entry["amount"] for entry in entries)
        if total != 0:
            raise AssertionError(f"journal transaction {self.id} does not balance: {total}")
        issued = self.entries.get((self.book.accounts[AccountKind.ISSUED], Bucket.AVAILABLE), 0)
        for (account_id, bucket), amount in self.entries.items():
            account = self.accounts.get(account_id)
            if account is not None and amount != 0:
                setattr(account, bucket, getattr(account, bucket) + amount)
        if issued:
            # Points issued to (or, reversed, taken back from) the transaction's member,
            # even when none of them reach its buckets (a reversal of expired points).
            for account in self.accounts.values():
                if account.kind == AccountKind.POINTS and account.member_id == self.txn.member_id:
                    account.lifetime_earned -= issued
                    break
        self.session.flush()
        if entries:
            self.session.execute(INSERT_ENTRIES, entries)
        if self.allocations:
            self.session.execute(INSERT_ALLOCATIONS, self.allocations)
        if event is not None:
            row = outbox_event(
                program_id=self.book.program_id,
                member_id=member_id if member_id is not None else self.txn.member_id,
                type=event,
                at=self.now,
                payload={"transaction_id": self.id, "kind": self.txn.kind, **(payload or {})},
            )
            if outbox is not None:
                outbox.append(row)
            else:
                emit_many(self.session, [row])
        return self.txn


def lots_by_id(session: Session, lot_ids: list[int]) -> dict[int, Lot]:
    if not lot_ids:
        return {}
    return {
        lot.id: lot
        for lot in session.execute(
            select(Lot).where(Lot.id.in_(lot_ids)).execution_options(populate_existing=True)
        ).scalars()
    }


def open_hold_allocations(session: Session, hold: Hold) -> list[tuple[Lot, int]]:
    """The lots a hold took, with how much it still holds of each, in the order taken.

    Only the hold's own transaction takes points for it; the later ones (capture, void,
    lapse) only give points back, and a debit of theirs is a debt repaid from the points
    they gave back, not something the hold holds."""
    rows = session.execute(
        select(LotAllocation.lot_id, LotAllocation.amount)
        .join(JournalTransaction, JournalTransaction.id == LotAllocation.transaction_id)
        .where(
            JournalTransaction.hold_id == hold.id,
            LotAllocation.expired.is_(False),
            or_(JournalTransaction.kind == TxnKind.HOLD, LotAllocation.amount > 0),
        )
        .order_by(LotAllocation.id)
    ).all()
    net: dict[int, int] = {}
    for lot_id, amount in rows:
        net[lot_id] = net.get(lot_id, 0) - amount
    lots = {
        lot.id: lot
        for lot in session.execute(
            select(Lot).where(Lot.id.in_(net)).execution_options(populate_existing=True)
        ).scalars()
    }
    return [(lots[lot_id], amount) for lot_id, amount in net.items() if amount > 0]


def hold_is_open(hold: Hold) -> bool:
    return hold.status == HoldStatus.ACTIVE


def refuse_reversed(session: Session, original: JournalTransaction) -> None:
    """A reversed transaction can be neither reversed again nor clawed back."""
    reversal = session.execute(
        select(JournalTransaction.id).where(
            JournalTransaction.kind == TxnKind.REVERSAL,
            JournalTransaction.reverses_id == original.id,
        )
    ).scalar_one_or_none()
    if reversal is not None:
        raise NotReversible(
            transaction_id=original.id, reason=f"already reversed by transaction {reversal}"
        )


def clawed_back(session: Session, original: JournalTransaction) -> int:
    """Points of `original` its clawbacks have claimed so far (taken or let go)."""
    return int(
        session.execute(
            select(func.coalesce(func.sum(JournalTransaction.points), 0)).where(
                JournalTransaction.kind == TxnKind.CLAWBACK,
                JournalTransaction.clawback_of_id == original.id,
            )
        ).scalar_one()
    )
