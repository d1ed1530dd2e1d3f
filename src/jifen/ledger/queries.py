"""Reading the ledger: balance, lots, history. Reads never write, with one exception
made explicit: `current_balance` first brings a member up to date in a short write
transaction when something has fallen due (an expiry, a release, a lapse)."""

from __future__ import annotations

import base64
from collections import defaultdict
from collections.abc import Callable, Iterable
from datetime import date, datetime, timedelta, tzinfo
from typing import Protocol

from sqlalchemy import bindparam, func, select
from sqlalchemy.orm import Session, aliased

from jifen.core.errors import InvalidInput, NotFound
from jifen.db.uow import Database
from jifen.ledger.models import (
    Account,
    AccountKind,
    Hold,
    JournalEntry,
    JournalTransaction,
    Lot,
    LotStatus,
)
from jifen.ledger.posting import Book, lock_account
from jifen.ledger.schemas import Balance, ExpiringPoints, HistoryItem, HistoryPage, LotOut

EXPIRING_SOON_DAYS = 30


_ACCOUNTS = (
    select(Account)
    .where(
        Account.program_id == bindparam("program_id"), Account.member_id == bindparam("member_id")
    )
    .execution_options(populate_existing=True)
)
_EXPIRING = select(Lot.expires_at, Lot.remaining).where(
    Lot.account_id == bindparam("account_id"),
    Lot.status == LotStatus.AVAILABLE,
    Lot.remaining > 0,
    Lot.expires_at > bindparam("now", type_=Lot.expires_at.type),
    Lot.expires_at <= bindparam("until", type_=Lot.expires_at.type),
)
"""The balance's two statements, built once (a balance read is all but these)."""


def _accounts(session: Session, book: Book, member_id: int) -> dict[str, Account]:
    params = {"program_id": book.program_id, "member_id": member_id}
    accounts = {account.kind: account for account in session.execute(_ACCOUNTS, params).scalars()}
    if AccountKind.POINTS not in accounts:
        raise NotFound(what="member", key=member_id)
    return accounts


def balance(session: Session, book: Book, member_id: int, now: datetime) -> Balance | None:
    """The member's balance, or None when something has fallen due and must be applied
    first (see `current_balance`)."""
    accounts = _accounts(session, book, member_id)
    points = accounts[AccountKind.POINTS]
    growth = accounts.get(AccountKind.GROWTH)
    return balance_of(
        member_id,
        points,
        growth.available if growth else 0,
        lambda: _expiring_soon(session, book, points, now),
        now,
    )


class PointsFigures(Protocol):
    """What a balance shows of the member's points account (an `Account`, or a row)."""

    @property
    def available(self) -> int: ...
    @property
    def pending(self) -> int: ...
    @property
    def held(self) -> int: ...
    @property
    def lifetime_earned(self) -> int: ...
    @property
    def next_due_at(self) -> datetime | None: ...


def balance_of(
    member_id: int,
    points: PointsFigures,
    growth_value: int,
    expiring_soon: Callable[[], list[ExpiringPoints]],
    now: datetime,
) -> Balance | None:
    """The balance of a member's points account and growth value at `now`, or None when
    something has fallen due; `expiring_soon` is asked only when points are available."""
    if points.next_due_at is not None and points.next_due_at <= now:
        return None
    return Balance(
        member_id=member_id,
        available=points.available,
        pending=points.pending,
        held=points.held,
        lifetime_earned=points.lifetime_earned,
        growth_value=growth_value,
        expiring_soon=expiring_soon() if points.available > 0 else [],
        as_of=now,
    )


def current_balance(db: Database, book: Book, member_id: int, now: datetime) -> Balance:
    """A read that never shows points that should have expired or been released."""
    result = db.read(lambda s: balance(s, book, member_id, now))
    if result is not None:
        return result

    def refresh(session: Session) -> Balance:
        lock_account(session, book, member_id, now)
        fresh = balance(session, book, member_id, now)
        assert fresh is not None
        return fresh

    return db.write(refresh)


def _expiring_soon(
    session: Session, book: Book, account: Account, now: datetime
) -> list[ExpiringPoints]:
    until = expiring_soon_until(now)
    rows = session.execute(_EXPIRING, {"account_id": account.id, "now": now, "until": until})
    return expiring_by_day(((at, points) for at, points in rows if at is not None), book.tz)


def expiring_soon_until(now: datetime) -> datetime:
    """The end of the balance's "expiring soon" window that starts at `now`."""
    return now + timedelta(days=EXPIRING_SOON_DAYS)


def expiring_by_day(rows: Iterable[tuple[datetime, int]], tz: tzinfo) -> list[ExpiringPoints]:
    """Lots' (expires_at, remaining) as the points expiring at the end of each programme-
    local day, soonest first."""
    by_day: dict[date, int] = defaultdict(int)
    for expires_at, remaining in rows:
        # a lot expiring at local midnight is valid through the day before
        by_day[(expires_at.astimezone(tz) - timedelta(microseconds=1)).date()] += remaining
    return [ExpiringPoints(date=day, points=points) for day, points in sorted(by_day.items())]


def lots(
    session: Session,
    book: Book,
    member_id: int,
    *,
    statuses: list[LotStatus] | None = None,
    limit: int = 200,
) -> list[LotOut]:
    """The member's lots, soonest expiry first (never-expiring last)."""
    account = _accounts(session, book, member_id)[AccountKind.POINTS]
    query = select(Lot).where(Lot.account_id == account.id)
    if statuses:
        query = query.where(Lot.status.in_(statuses))
    query = query.order_by(Lot.expires_at.is_(None), Lot.expires_at, Lot.id).limit(limit)
    return [LotOut.model_validate(lot) for lot in session.execute(query).scalars()]


def encode_cursor(transaction_id: int) -> str:
    return base64.urlsafe_b64encode(f"t{transaction_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        if not raw.startswith("t"):
            raise ValueError(raw)
        transaction_id = int(raw[1:])
        if not 0 < transaction_id < 2**63:  # ids are 64-bit; a bigger one overflows the store
            raise ValueError(raw)
        return transaction_id
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidInput(field="cursor", reason="not a cursor this API gave out") from exc


def history(
    session: Session,
    book: Book,
    member_id: int,
    *,
    kinds: list[str] | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    cursor: str | None = None,
    limit: int = 50,
) -> HistoryPage:
    """The member's journal, newest first, `limit` at a time."""
    if not 1 <= limit <= 500:
        raise InvalidInput(field="limit", reason="between 1 and 500")
    accounts = _accounts(session, book, member_id)
    reversal = aliased(JournalTransaction)
    query = (
        select(JournalTransaction, reversal.id)
        .outerjoin(reversal, reversal.reverses_id == JournalTransaction.id)
        .where(
            JournalTransaction.id.in_(
                select(JournalEntry.transaction_id).where(
                    JournalEntry.member_id == member_id,
                    JournalEntry.program_id == book.program_id,
                )
            )
        )
        .order_by(JournalTransaction.id.desc())
        .limit(limit + 1)
    )
    if kinds:
        query = query.where(JournalTransaction.kind.in_(kinds))
    if since is not None:
        query = query.where(JournalTransaction.created_at >= since)
    if until is not None:
        query = query.where(JournalTransaction.created_at < until)
    if cursor:
        query = query.where(JournalTransaction.id < decode_cursor(cursor))
    rows = session.execute(query).all()
    page, more = rows[:limit], len(rows) > limit
    points_account = accounts[AccountKind.POINTS].id
    growth_account = accounts[AccountKind.GROWTH].id
    moves: dict[int, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    if page:
        for txn_id, account_id, bucket, amount in session.execute(
            select(
                JournalEntry.transaction_id,
                JournalEntry.account_id,
                JournalEntry.bucket,
                func.sum(JournalEntry.amount),
            )
            .where(
                JournalEntry.transaction_id.in_([t.id for t, _ in page]),
                JournalEntry.account_id.in_([points_account, growth_account]),
            )
            .group_by(JournalEntry.transaction_id, JournalEntry.account_id, JournalEntry.bucket)
        ):
            key = "growth" if account_id == growth_account else bucket
            moves[txn_id][key] = int(amount)
    items = []
    for txn, reversed_by in page:
        move = moves[txn.id]
        items.append(
            HistoryItem(
                id=txn.id,
                kind=txn.kind,
                points=move.get("available", 0) + move.get("pending", 0) + move.get("held", 0),
                growth_value=move.get("growth", 0),
                available=move.get("available", 0),
                pending=move.get("pending", 0),
                held=move.get("held", 0),
                created_at=txn.created_at,
                reference=txn.reference,
                reason=txn.reason,
                actor=txn.actor,
                reverses_id=txn.reverses_id,
                reversed_by_id=reversed_by,
                hold_id=txn.hold_id,
                details=txn.details,
            )
        )
    return HistoryPage(items=items, next_cursor=encode_cursor(page[-1][0].id) if more else None)


def get_hold(session: Session, book: Book, hold_id: int) -> Hold:
    hold = session.execute(
        select(Hold).where(Hold.id == hold_id, Hold.program_id == book.program_id)
    ).scalar_one_or_none()
    if hold is None:
        raise NotFound(what="hold", key=hold_id)
    return hold
