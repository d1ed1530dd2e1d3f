"""The ledger over HTTP: balance, history, lots, earn, spend, adjustments, transfers,
reversals, transactions and holds. Every handler hands the key's programme (its book) to
`jifen.ledger`, so another programme's member, hold or transaction is simply not found."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Annotated, TypeVar, cast

from fastapi import APIRouter, Body, Query
from fastapi.responses import JSONResponse
from sqlalchemy import select

from jifen.api.deps import (
    ADMIN,
    ADMIN_APP,
    ADMIN_POS,
    ADMIN_POS_APP,
    ALL,
    Call,
    PathId,
    ReadCall,
    Unit,
    Write,
    read,
    render,
)
from jifen.api.idempotency import write
from jifen.api.problems import READ, WRITE, problems
from jifen.api.schemas import (
    MAX_HOLD_MINUTES,
    AdjustmentIn,
    CaptureIn,
    EarnIn,
    HoldActionOut,
    HoldIn,
    Instant,
    PostingOut,
    ReversalIn,
    SpendIn,
    TransferIn,
    TransferOut,
)
from jifen.core.errors import (
    CaptureExceedsHold,
    DuplicateReference,
    HoldExpired,
    HoldNotActive,
    InsufficientPoints,
    InvalidInput,
    MemberClosed,
    MemberFrozen,
    NotFound,
    NotReversible,
    TransfersDisabled,
)
from jifen.ledger import queries
from jifen.ledger import service as ledger
from jifen.ledger.models import Account, AccountKind, JournalTransaction, LotStatus, TxnKind
from jifen.ledger.posting import Book, lock_account
from jifen.ledger.schemas import Balance, HistoryPage, HoldOut, LotOut, TransactionOut

router = APIRouter(prefix="/v1", tags=["ledger"])

T = TypeVar("T")

MEMBER_WRITE = (*WRITE, NotFound, MemberFrozen, MemberClosed, DuplicateReference)


def balance_after(u: Unit, member_id: int) -> Balance:
    """The member's balance inside the write that just changed it (the write locked and
    maintained the account, so nothing is due; the fallback only guards that)."""
    found = queries.balance(u.session, u.book, member_id, u.now)
    if found is None:
        lock_account(u.session, u.book, member_id, u.now)
        found = queries.balance(u.session, u.book, member_id, u.now)
        assert found is not None
    return found


def posted(u: Unit, txn: JournalTransaction) -> PostingOut:
    assert txn.member_id is not None
    return PostingOut(
        transaction=TransactionOut.model_validate(txn), balance=balance_after(u, txn.member_id)
    )


# -- reads -------------------------------------------------------------------------------


def _due(u: Unit, member_id: int) -> bool:
    """Has something fallen due for the member (an expiry, a release, a hold's deadline)
    that no job or write has applied yet?"""
    next_due = u.session.execute(
        select(Account.next_due_at).where(
            Account.program_id == u.program_id,
            Account.member_id == member_id,
            Account.kind == AccountKind.POINTS,
        )
    ).scalar_one_or_none()
    return next_due is not None and next_due <= u.now


def read_up_to_date(call: Call, member_of: Callable[[Unit], int], op: Callable[[Unit], T]) -> T:
    """Run the read `op` on a member's ledger as it is now: when something has fallen due
    for the member (`member_of` names them), bring them up to date first, in a short write
    of its own, exactly as a balance read does. So lots, history and holds never show what
    should have expired, been released or lapsed, whether or not the jobs have run."""

    def first(u: Unit) -> tuple[Book, datetime, int | None, T | None]:
        member_id = member_of(u)
        if _due(u, member_id):
            return u.book, u.now, member_id, None
        return u.book, u.now, None, op(u)

    book, now, due_member, found = read(call, ALL, first)
    if due_member is None:
        return cast(T, found)
    queries.current_balance(call.db, book, due_member, now)
    return read(call, ALL, op)


@router.get(
    "/members/{member_id}/balance",
    response_model=Balance,
    summary="Available, pending, held, lifetime earned, growth value, expiring soon",
    responses=problems(*READ),
)
def balance(member_id: PathId, call: ReadCall) -> JSONResponse:
    book, found, now = read(
        call, ALL, lambda u: (u.book, queries.balance(u.session, u.book, member_id, u.now), u.now)
    )
    if found is None:  # something fell due (expiry, release, lapse): apply it first
        found = queries.current_balance(call.db, book, member_id, now)
    return render(found)


@router.get(
    "/members/{member_id}/history",
    response_model=HistoryPage,
    summary="The member's journal, newest first, a page at a time",
    description="Filter by `type` (repeatable) and by `since` (inclusive) / `until` "
    "(exclusive), ISO-8601 instants with a zone. Pass `next_cursor` back as `cursor` for "
    "the next page.",
    responses=problems(*READ),
)
def history(
    member_id: PathId,
    call: ReadCall,
    kinds: Annotated[list[TxnKind] | None, Query(alias="type")] = None,
    since: Instant | None = None,
    until: Instant | None = None,
    cursor: Annotated[str | None, Query(max_length=100)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> JSONResponse:
    return render(
        read_up_to_date(
            call,
            lambda u: member_id,
            lambda u: queries.history(
                u.session,
                u.book,
                member_id,
                kinds=[str(kind) for kind in kinds] if kinds else None,
                since=since,
                until=until,
                cursor=cursor,
                limit=limit,
            ),
        )
    )


@router.get(
    "/members/{member_id}/lots",
    response_model=list[LotOut],
    summary="The member's lots (batches of points), soonest expiry first",
    responses=problems(*READ),
)
def lots(
    member_id: PathId,
    call: ReadCall,
    status: Annotated[list[LotStatus] | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> JSONResponse:
    return render(
        read_up_to_date(
            call,
            lambda u: member_id,
            lambda u: queries.lots(u.session, u.book, member_id, statuses=status, limit=limit),
        )
    )


@router.get(
    "/transactions/{transaction_id}",
    response_model=TransactionOut,
    summary="One journal transaction",
    responses=problems(*READ),
)
def transaction(transaction_id: PathId, call: ReadCall) -> JSONResponse:
    def op(u: Unit) -> TransactionOut:
        txn = u.session.execute(
            select(JournalTransaction).where(
                JournalTransaction.id == transaction_id,
                JournalTransaction.program_id == u.program_id,
            )
        ).scalar_one_or_none()
        if txn is None:
            raise NotFound(what="transaction", key=transaction_id)
        return TransactionOut.model_validate(txn)

    return render(read(call, ALL, op))


@router.get(
    "/holds/{hold_id}",
    response_model=HoldOut,
    summary="One hold",
    responses=problems(*READ),
)
def hold(hold_id: PathId, call: ReadCall) -> JSONResponse:
    return render(
        read_up_to_date(
            call,
            lambda u: queries.get_hold(u.session, u.book, hold_id).member_id,
            lambda u: HoldOut.model_validate(queries.get_hold(u.session, u.book, hold_id)),
        )
    )


# -- writes ------------------------------------------------------------------------------


@router.post(
    "/members/{member_id}/earn",
    status_code=201,
    response_model=PostingOut,
    summary="Credit points (admin, pos)",
    responses=problems(*MEMBER_WRITE),
)
def earn(member_id: PathId, data: EarnIn, call: Write) -> JSONResponse:
    def op(u: Unit) -> PostingOut:
        pending = data.pending if data.pending is not None else u.book.pending_days > 0
        txn = ledger.credit(
            u.session,
            u.book,
            member_id,
            data.points,
            now=u.now,
            actor=u.actor,
            pending=pending,
            reference=data.reference,
            reason=data.reason,
        )
        return posted(u, txn)

    return write(call, ADMIN_POS, op)


@router.post(
    "/members/{member_id}/spend",
    status_code=201,
    response_model=PostingOut,
    summary="Spend points, earliest-expiring first (admin, pos, app)",
    responses=problems(*MEMBER_WRITE, InsufficientPoints),
)
def spend(member_id: PathId, data: SpendIn, call: Write) -> JSONResponse:
    def op(u: Unit) -> PostingOut:
        txn = ledger.debit(
            u.session,
            u.book,
            member_id,
            data.points,
            now=u.now,
            actor=u.actor,
            reference=data.reference,
            reason=data.reason,
        )
        return posted(u, txn)

    return write(call, ADMIN_POS_APP, op)


@router.post(
    "/members/{member_id}/adjustments",
    status_code=201,
    response_model=PostingOut,
    summary="Manual correction with a reason (admin): positive credits, negative debits",
    responses=problems(*MEMBER_WRITE, InsufficientPoints),
)
def adjust(member_id: PathId, data: AdjustmentIn, call: Write) -> JSONResponse:
    def op(u: Unit) -> PostingOut:
        txn = ledger.adjust(
            u.session,
            u.book,
            member_id,
            data.points,
            reason=data.reason,
            now=u.now,
            actor=u.actor,
            reference=data.reference,
        )
        return posted(u, txn)

    return write(call, ADMIN, op)


@router.post(
    "/transfers",
    status_code=201,
    response_model=TransferOut,
    summary="Gift points to another member, where the programme allows it (admin, app)",
    responses=problems(*MEMBER_WRITE, InsufficientPoints, TransfersDisabled),
)
def transfer(data: TransferIn, call: Write) -> JSONResponse:
    def op(u: Unit) -> TransferOut:
        txn = ledger.transfer(
            u.session,
            u.book,
            data.from_member_id,
            data.to_member_id,
            data.points,
            now=u.now,
            actor=u.actor,
            reference=data.reference,
            reason=data.reason,
        )
        return TransferOut(
            transaction=TransactionOut.model_validate(txn),
            from_balance=balance_after(u, data.from_member_id),
            to_balance=balance_after(u, data.to_member_id),
        )

    return write(call, ADMIN_APP, op)


@router.post(
    "/transactions/{transaction_id}/reversal",
    status_code=201,
    response_model=PostingOut,
    summary="Undo a transaction with a new one, restoring the lots it took (admin)",
    responses=problems(*MEMBER_WRITE, NotReversible, InsufficientPoints),
)
def reversal(transaction_id: PathId, data: ReversalIn, call: Write) -> JSONResponse:
    def op(u: Unit) -> PostingOut:
        txn = ledger.reverse(
            u.session,
            u.book,
            transaction_id,
            now=u.now,
            actor=u.actor,
            reason=data.reason,
            allow_debt=data.allow_debt,
            reference=data.reference,
        )
        return posted(u, txn)

    return write(call, ADMIN, op)


@router.post(
    "/holds",
    status_code=201,
    response_model=HoldOut,
    summary="Set points aside for a checkout (admin, pos, app)",
    description="The hold lapses by itself at `expires_at` (default: the programme's "
    "hold_minutes from now) unless captured or voided first.",
    responses=problems(*MEMBER_WRITE, InsufficientPoints),
)
def new_hold(data: HoldIn, call: Write) -> JSONResponse:
    def op(u: Unit) -> HoldOut:
        expires_at = data.expires_at
        if data.expires_in_minutes is not None:
            expires_at = u.now + timedelta(minutes=data.expires_in_minutes)
        elif expires_at is not None and expires_at > u.now + timedelta(minutes=MAX_HOLD_MINUTES):
            raise InvalidInput(field="expires_at", reason="at most 30 days from now")
        created = ledger.authorise_hold(
            u.session,
            u.book,
            data.member_id,
            data.points,
            now=u.now,
            actor=u.actor,
            expires_at=expires_at,
            reference=data.reference,
        )
        return HoldOut.model_validate(created)

    return write(call, ADMIN_POS_APP, op)


def _hold_action(u: Unit, hold_id: int, txn: JournalTransaction) -> HoldActionOut:
    closed = queries.get_hold(u.session, u.book, hold_id)
    return HoldActionOut(
        hold=HoldOut.model_validate(closed),
        transaction=TransactionOut.model_validate(txn),
        balance=balance_after(u, closed.member_id),
    )


@router.post(
    "/holds/{hold_id}/capture",
    response_model=HoldActionOut,
    summary="Spend all or part of a hold; the rest goes back (admin, pos, app)",
    responses=problems(*MEMBER_WRITE, HoldExpired, HoldNotActive, CaptureExceedsHold),
)
def capture(
    hold_id: PathId, call: Write, data: Annotated[CaptureIn | None, Body()] = None
) -> JSONResponse:
    given = data or CaptureIn()

    def op(u: Unit) -> HoldActionOut:
        txn = ledger.capture_hold(
            u.session,
            u.book,
            hold_id,
            now=u.now,
            actor=u.actor,
            points=given.points,
            reference=given.reference,
        )
        return _hold_action(u, hold_id, txn)

    return write(call, ADMIN_POS_APP, op, status_code=200)


@router.post(
    "/holds/{hold_id}/void",
    response_model=HoldActionOut,
    summary="Release a hold: all its points go back (admin, pos, app)",
    responses=problems(*MEMBER_WRITE, HoldExpired, HoldNotActive),
)
def void(hold_id: PathId, call: Write) -> JSONResponse:
    def op(u: Unit) -> HoldActionOut:
        txn = ledger.void_hold(u.session, u.book, hold_id, now=u.now, actor=u.actor)
        return _hold_action(u, hold_id, txn)

    return write(call, ADMIN_POS_APP, op, status_code=200)
