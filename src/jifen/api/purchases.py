"""Purchases over HTTP: record (idempotent by order id), read with the award's breakdown,
return, claim, and simulate. Every handler calls one service in `jifen.earning`."""

from __future__ import annotations

from functools import partial
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from jifen.api.deps import (
    ADMIN_POS,
    ADMIN_POS_APP,
    ALL,
    PathId,
    ReadCall,
    Unit,
    Write,
    WriteCall,
    read,
    render,
)
from jifen.api.grouped import Groups
from jifen.api.idempotency import write
from jifen.api.problems import READ, WRITE, problems
from jifen.core.errors import (
    AlreadyClaimed,
    Conflict,
    HoldExpired,
    HoldNotActive,
    InsufficientPoints,
    InvalidInput,
    MemberClosed,
    MemberFrozen,
    NotFound,
    OrderConflict,
    OutsideClaimWindow,
    ReturnExceedsPurchase,
    UnknownCode,
)
from jifen.earning import purchases, returns
from jifen.earning.schemas import (
    ClaimIn,
    Earned,
    PurchaseIn,
    PurchaseOut,
    ReturnIn,
    ReturnOut,
    SimulateIn,
)
from jifen.rewards.errors import CheckoutHoldMismatch, PointsPaymentRefused

router = APIRouter(prefix="/v1", tags=["purchases"])

PAID_WITH_POINTS = (CheckoutHoldMismatch, PointsPaymentRefused, HoldExpired, HoldNotActive)
"""What `points_payment: {hold_id}` may answer (jifen.rewards.checkout)."""

RECORD = (
    *WRITE,
    NotFound,
    MemberFrozen,
    MemberClosed,
    UnknownCode,
    OrderConflict,
    OutsideClaimWindow,
    *PAID_WITH_POINTS,
)


def _created(model: BaseModel, created: bool) -> tuple[BaseModel, int]:
    return model, 201 if created else 200


@router.post(
    "/purchases",
    status_code=201,
    response_model=PurchaseOut,
    summary="Record a purchase and award its points (admin, pos)",
    description="The order id (`external_id`) is unique in the programme: sending an "
    "order again returns the first result with 200 and awards nothing more. Points are "
    "pending until the programme's return window closes. Without `member` the order is "
    "recorded unclaimed, for a member to claim later. With `points_payment` the checkout "
    "hold placed for this order is captured and the order earns on its cash part only.",
    responses={
        **problems(*RECORD),
        200: {"model": PurchaseOut, "description": "The order was already recorded"},
    },
)
async def record_purchase(data: PurchaseIn, call: Write, request: Request) -> Response:
    groups: Groups | None = getattr(request.app.state, "groups", None)
    if groups is None:
        return await run_in_threadpool(record_alone, call, data)
    return await groups.record(call, data, partial(record_alone, call, data))


def record_alone(call: WriteCall, data: PurchaseIn) -> JSONResponse:
    """Record one purchase in a transaction of its own (the one-by-one path)."""

    def op(u: Unit) -> tuple[BaseModel, int]:
        done = purchases.record(u.session, u.program, u.book, data, now=u.now, actor=u.actor)
        return _created(purchases.describe(u.session, u.book, done.purchase), done.created)

    return write(call, ADMIN_POS, op)


@router.get(
    "/purchases/{purchase_id}",
    response_model=PurchaseOut,
    summary="A purchase, its lines, returns and the breakdown of its award",
    responses=problems(*READ),
)
def get_purchase(purchase_id: PathId, call: ReadCall) -> JSONResponse:
    return render(
        read(
            call,
            ALL,
            lambda u: purchases.describe(
                u.session, u.book, purchases.get(u.session, u.program_id, purchase_id)
            ),
        )
    )


@router.get(
    "/members/{member_id}/purchases",
    response_model=list[PurchaseOut],
    summary="A member's purchases, newest first",
    description="Pass the smallest id of a page as `before` for the next page.",
    responses=problems(*READ),
)
def member_purchases(
    member_id: PathId,
    call: ReadCall,
    before: Annotated[int | None, Query(gt=0, lt=2**63)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> JSONResponse:
    def op(u: Unit) -> list[PurchaseOut]:
        from jifen.members import service as members

        members.get(u.session, u.program_id, member_id)
        found = purchases.list_for_member(
            u.session, u.program_id, member_id, before=before, limit=limit
        )
        return [purchases.describe(u.session, u.book, p) for p in found]

    return render(read(call, ALL, op))


@router.post(
    "/purchases/{purchase_id}/returns",
    status_code=201,
    response_model=ReturnOut,
    summary="Return lines or refund an amount; take back what that part earned (admin, pos)",
    description="Several partial returns are allowed; together they can never return more "
    "than was bought. A return with an `external_id` already recorded for this purchase "
    "returns the first result with 200. What happens to points already spent follows the "
    "programme's `return_policy` (debt, deduct or withhold).",
    responses={
        **problems(*WRITE, NotFound, ReturnExceedsPurchase, InsufficientPoints, Conflict),
        200: {"model": ReturnOut, "description": "This refund was already recorded"},
    },
)
def record_return(purchase_id: PathId, data: ReturnIn, call: Write) -> JSONResponse:
    def op(u: Unit) -> tuple[BaseModel, int]:
        done = returns.record_return(
            u.session, u.program, u.book, purchase_id, data, now=u.now, actor=u.actor
        )
        return _created(returns.describe_return(done.row, done.purchase), done.created)

    return write(call, ADMIN_POS, op)


@router.post(
    "/purchases/claims",
    status_code=201,
    response_model=PurchaseOut,
    summary="Attach an unclaimed order to a member and award it (admin, pos, app)",
    description="Within the programme's `claim_days` of the purchase. Claiming an order "
    "the member already owns returns it with 200.",
    responses={
        **problems(
            *WRITE, NotFound, MemberFrozen, MemberClosed, AlreadyClaimed, OutsideClaimWindow
        ),
        200: {"model": PurchaseOut, "description": "The member had already claimed it"},
    },
)
def claim_purchase(data: ClaimIn, call: Write) -> JSONResponse:
    def op(u: Unit) -> tuple[BaseModel, int]:
        done = purchases.claim(u.session, u.program, u.book, data, now=u.now, actor=u.actor)
        return _created(purchases.describe(u.session, u.book, done.purchase), done.created)

    return write(call, ADMIN_POS_APP, op)


@router.post(
    "/simulate",
    response_model=Earned,
    summary="What a purchase would earn now, with the breakdown; writes nothing",
    description="Evaluates the programme's current rules exactly as a real purchase would "
    "(caps and budgets as they stand), without recording anything. No Idempotency-Key.",
    responses=problems(
        *READ,
        InvalidInput,
        UnknownCode,
        OutsideClaimWindow,
        MemberFrozen,
        MemberClosed,
        *PAID_WITH_POINTS,
    ),
)
def simulate(data: SimulateIn, call: ReadCall) -> JSONResponse:
    return render(
        read(
            call,
            ALL,
            lambda u: purchases.simulate(u.session, u.program, u.book, data, now=u.now),
        )
    )
