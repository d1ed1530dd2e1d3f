"""Points as payment over HTTP (积分抵现, PRODUCT.md R4): quote, hold, void, and read a
checkout hold. The purchase (`POST /v1/purchases` with `points_payment: {hold_id}`)
captures the hold; every handler here calls one service of `jifen.rewards.checkout`."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from jifen.api.deps import ADMIN_POS_APP, ALL, Call, PathId, ReadCall, Unit, Write, read, render
from jifen.api.idempotency import write
from jifen.api.ledger import read_up_to_date
from jifen.api.problems import AUTH, READ, WRITE, problems
from jifen.core.errors import (
    ConcurrencyExhausted,
    DuplicateReference,
    HoldNotActive,
    InsufficientPoints,
    InvalidInput,
    MemberClosed,
    MemberFrozen,
    NotFound,
)
from jifen.ledger.posting import Book
from jifen.ledger.queries import current_balance
from jifen.members import service as members
from jifen.rewards import checkout
from jifen.rewards.checkout_schemas import CheckoutHoldOut, HoldIn, Quote, QuoteIn
from jifen.rewards.errors import (
    OrderAlreadyHeld,
    OrderAlreadyRecorded,
    PointsPaymentDisabled,
    PointsPaymentRefused,
)

router = APIRouter(prefix="/v1", tags=["checkout"])

ATTEMPTS = 3
"""A quote reads the balance as it is now; when something falls due for the member (a
hold's deadline, an expiry) it is applied first and the quote read again."""


@router.post(
    "/checkout/quote",
    response_model=Quote,
    summary="How many points this member may use on this basket, and what they pay "
    "(writes nothing)",
    description="Eligible amount: the lines not in the programme's excluded categories. The "
    "most points: the eligible amount × `max_share` in points, rounded down to `step`, and "
    "no more than the member's available points rounded down to `step`; 0 below "
    "`min_points` (`limited_by` says what decided). No Idempotency-Key: nothing is written.",
    responses=problems(*AUTH, InvalidInput, NotFound, PointsPaymentDisabled),
)
def quote(data: QuoteIn, call: ReadCall) -> JSONResponse:
    return render(_quote(call, data))


def _quote(call: Call, data: QuoteIn) -> Quote:
    def op(u: Unit) -> tuple[Book, datetime, int, Quote | None]:
        member = members.resolve(u.session, u.program_id, data.member)
        found = checkout.quote(u.session, u.program, u.book, data, now=u.now)
        return u.book, u.now, member.id, found

    for _ in range(ATTEMPTS):
        book, now, member_id, found = read(call, ALL, op)
        if found is not None:
            return found
        current_balance(call.db, book, member_id, now)  # apply what fell due, then again
    raise ConcurrencyExhausted(attempts=ATTEMPTS)


def _created(model: BaseModel, created: bool) -> tuple[BaseModel, int]:
    return model, 201 if created else 200


@router.post(
    "/checkout/hold",
    status_code=201,
    response_model=CheckoutHoldOut,
    summary="Set points aside to pay part of an order (admin, pos, app)",
    description="Checked against the quote's rules (`points-payment-refused`: below the "
    "minimum, not a multiple of the step, above the maximum for this basket) and the "
    "member's available points. The hold lapses at `expires_at` (the programme's "
    "`hold_minutes`) unless the purchase captures it (`points_payment: {hold_id}`) or it "
    "is voided. Holding the same points for the same order and member again returns the "
    "active hold with 200; a different amount is refused until it is voided.",
    responses={
        **problems(
            *WRITE,
            NotFound,
            MemberFrozen,
            MemberClosed,
            InsufficientPoints,
            PointsPaymentDisabled,
            PointsPaymentRefused,
            OrderAlreadyHeld,
            OrderAlreadyRecorded,
            DuplicateReference,
        ),
        200: {"model": CheckoutHoldOut, "description": "The order's active hold, as it is"},
    },
)
def hold(data: HoldIn, call: Write) -> JSONResponse:
    def op(u: Unit) -> tuple[BaseModel, int]:
        return _created(
            *checkout.hold(u.session, u.program, u.book, data, now=u.now, actor=u.actor)
        )

    return write(call, ADMIN_POS_APP, op)


@router.get(
    "/checkout/holds/{hold_id}",
    response_model=CheckoutHoldOut,
    summary="A checkout hold: its order, points, value, status and deadline",
    responses=problems(*READ),
)
def get_hold(hold_id: PathId, call: ReadCall) -> JSONResponse:
    return render(
        read_up_to_date(
            call,
            lambda u: checkout.get_hold(u.session, u.program_id, hold_id).member_id,
            lambda u: checkout.describe_hold(checkout.get_hold(u.session, u.program_id, hold_id)),
        )
    )


@router.post(
    "/checkout/holds/{hold_id}/void",
    response_model=CheckoutHoldOut,
    summary="Give a checkout hold's points back now (admin, pos, app)",
    description="For an order cancelled or paid otherwise. A hold already voided or lapsed "
    "is returned as it is (its points are back either way); a captured one cannot be "
    "voided (`hold-not-active`): return the purchase's lines instead.",
    responses=problems(*WRITE, NotFound, HoldNotActive),
)
def void(hold_id: PathId, call: Write) -> JSONResponse:
    def op(u: Unit) -> CheckoutHoldOut:
        return checkout.void(u.session, u.program, u.book, hold_id, now=u.now, actor=u.actor)

    return write(call, ADMIN_POS_APP, op, status_code=200)
