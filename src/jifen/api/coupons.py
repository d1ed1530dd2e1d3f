"""Coupons over HTTP (PRODUCT.md R3): show one, list a member's, check one against a
basket, use it on an order (once), cancel it. Every handler calls one service of
`jifen.rewards.coupons`; a malformed code is refused (422) before any lookup."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query
from fastapi.responses import JSONResponse

from jifen.api.deps import ADMIN, ADMIN_POS_APP, ALL, PathId, ReadCall, Unit, Write, read, render
from jifen.api.idempotency import write
from jifen.api.problems import AUTH, READ, WRITE, problems
from jifen.core.errors import InvalidInput, NotFound
from jifen.rewards import coupons
from jifen.rewards.coupon_schemas import (
    BasketIn,
    CancelIn,
    CouponCheck,
    CouponOut,
    CouponState,
    CouponUse,
    UseIn,
)
from jifen.rewards.errors import (
    CouponCodeInvalid,
    CouponNotApplicable,
    CouponNotUsable,
    UnknownCoupon,
)

router = APIRouter(prefix="/v1", tags=["coupons"])

Code = Annotated[
    str,
    Path(
        max_length=200,
        description="the coupon's code, in any case, with or without the dashes "
        "(K7QM4-XH2RT-9PZC8)",
    ),
]
FIND = (CouponCodeInvalid, UnknownCoupon)
"""What naming a coupon by its code may answer."""


@router.get(
    "/coupons/{code}",
    response_model=CouponOut,
    summary="A coupon: its status, terms, and the order it was used on",
    responses=problems(*READ, *FIND),
)
def get_coupon(code: Code, call: ReadCall) -> JSONResponse:
    return render(
        read(
            call,
            ALL,
            lambda u: coupons.describe(
                u.session, coupons.find(u.session, u.program_id, code), u.now
            ),
        )
    )


@router.get(
    "/members/{member_id}/coupons",
    response_model=list[CouponOut],
    summary="A member's coupons, newest first",
    description="`status=issued` lists the coupons usable now; `expired` includes those past "
    "their time that the coupon-expiry job has not marked yet. Pass the smallest id of a "
    "page as `before` for the next page.",
    responses=problems(*READ),
)
def member_coupons(
    member_id: PathId,
    call: ReadCall,
    status: CouponState | None = None,
    before: Annotated[int | None, Query(gt=0, lt=2**63)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> JSONResponse:
    return render(
        read(
            call,
            ALL,
            lambda u: coupons.list_for_member(
                u.session,
                u.program_id,
                member_id,
                now=u.now,
                status=status,
                before=before,
                limit=limit,
            ),
        )
    )


@router.post(
    "/coupons/{code}/validate",
    response_model=CouponCheck,
    summary="Could this coupon be used on this basket, and what would it take off? "
    "(admin, pos, app; writes nothing)",
    description="Refused exactly as `/use` would refuse it: `coupon-code-invalid` for a "
    "typo (before any lookup), `unknown-coupon`, `coupon-not-usable` (used, expired, "
    "cancelled), `coupon-not-applicable` (minimum spend not met by the eligible lines, no "
    "line of its categories, another member's coupon, free delivery without a fee). "
    "No Idempotency-Key: nothing is written.",
    responses=problems(*AUTH, InvalidInput, NotFound, *FIND, CouponNotUsable, CouponNotApplicable),
)
def validate(code: Code, data: BasketIn, call: ReadCall) -> JSONResponse:
    return render(
        read(
            call,
            ADMIN_POS_APP,
            lambda u: coupons.check(u.session, u.program_id, code, data, now=u.now),
        )
    )


@router.post(
    "/coupons/{code}/use",
    response_model=CouponUse,
    summary="Use the coupon on an order, once (admin, pos, app)",
    description="Marks the coupon used on `order` (the id the purchase is recorded with) "
    "and records the discount. Sending the same order again returns that first result "
    "(`repeated: true`), whatever the Idempotency-Key; another order is refused with "
    "`coupon-not-usable` naming the order it went to. Of two tills using one coupon at "
    "once, exactly one succeeds.",
    responses=problems(*WRITE, NotFound, *FIND, CouponNotUsable, CouponNotApplicable),
)
def use(code: Code, data: UseIn, call: Write) -> JSONResponse:
    def op(u: Unit) -> CouponUse:
        return coupons.use(u.session, u.program_id, code, data, now=u.now, actor=u.actor)

    return write(call, ADMIN_POS_APP, op, status_code=200)


@router.post(
    "/coupons/{code}/cancel",
    response_model=CouponOut,
    summary="Cancel an issued coupon (admin)",
    description="For a coupon issued in error or abused. Cancelling it again returns it as "
    "it is; a used or expired coupon cannot be cancelled. The points the member paid for "
    "it are not returned here: cancel the redemption (`/v1/redemptions/{id}/cancel`) for "
    "that, which cancels its coupons too.",
    responses=problems(*WRITE, *FIND, CouponNotUsable),
)
def cancel(code: Code, data: CancelIn, call: Write) -> JSONResponse:
    def op(u: Unit) -> CouponOut:
        return coupons.cancel(
            u.session, u.program_id, code, reason=data.reason, now=u.now, actor=u.actor
        )

    return write(call, ADMIN, op, status_code=200)
