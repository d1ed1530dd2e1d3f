"""Redemptions over HTTP (PRODUCT.md R2, R5): redeem, read, cancel, ship, deliver, and a
member's redemptions. Every handler calls one service in `jifen.rewards.redemptions`.

Who may do what: tills (pos) and member apps (app) redeem; staff (admin) cancel anything
cancellable and run fulfilment; a member's app may cancel goods that have not shipped yet
(changing one's mind before the parcel leaves), nothing else.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse

from jifen.access.service import Scope
from jifen.api.deps import (
    ADMIN,
    ADMIN_APP,
    ADMIN_POS_APP,
    ALL,
    PathId,
    ReadCall,
    Unit,
    Write,
    read,
    render,
)
from jifen.api.idempotency import write
from jifen.api.problems import READ, WRITE, problems
from jifen.core.errors import InsufficientPoints, MemberClosed, MemberFrozen, NotFound
from jifen.rewards import fulfilment, reads, redemptions
from jifen.rewards.errors import (
    CancelRefused,
    LimitReached,
    OutOfStock,
    RedemptionState,
    RewardUnavailable,
    TierNotAllowed,
    UnknownReward,
)
from jifen.rewards.schemas import CancelIn, RedemptionIn, RedemptionOut, ShipIn

router = APIRouter(prefix="/v1", tags=["redemptions"])


@router.post(
    "/redemptions",
    status_code=201,
    response_model=RedemptionOut,
    summary="Redeem points for a reward (admin, pos, app)",
    description="In one transaction: the member's tier price × `quantity` is debited "
    "(earliest-expiring points first), the stock taken and the reward issued (coupons get "
    "their codes; goods wait as `pending` for shipping). Goods need `shipping`; a points + "
    "cash reward needs the `payment_reference` of the money. Retrying with the same "
    "Idempotency-Key returns the first redemption; every refusal changes nothing.",
    responses=problems(
        *WRITE,
        NotFound,
        UnknownReward,
        RewardUnavailable,
        OutOfStock,
        TierNotAllowed,
        LimitReached,
        InsufficientPoints,
        MemberFrozen,
        MemberClosed,
    ),
)
def redeem(data: RedemptionIn, call: Write) -> JSONResponse:
    def op(u: Unit) -> RedemptionOut:
        done = redemptions.redeem(u.session, u.program, u.book, data, now=u.now, actor=u.actor)
        return reads.describe(u.session, done)

    return write(call, ADMIN_POS_APP, op)


@router.get(
    "/redemptions/{redemption_id}",
    response_model=RedemptionOut,
    summary="One redemption: its reward, coupons, shipping and status",
    responses=problems(*READ),
)
def get_redemption(redemption_id: PathId, call: ReadCall) -> JSONResponse:
    return render(
        read(
            call,
            ALL,
            lambda u: reads.describe(u.session, reads.get(u.session, u.program_id, redemption_id)),
        )
    )


@router.get(
    "/members/{member_id}/redemptions",
    response_model=list[RedemptionOut],
    summary="A member's redemptions and gifts, newest first",
    description="Pass the smallest id of a page as `before` for the next page.",
    responses=problems(*READ),
)
def member_redemptions(
    member_id: PathId,
    call: ReadCall,
    before: Annotated[int | None, Query(gt=0, lt=2**63)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> JSONResponse:
    def op(u: Unit) -> list[RedemptionOut]:
        found = reads.list_for_member(
            u.session, u.program_id, member_id, before=before, limit=limit
        )
        return reads.describe_many(u.session, found)

    return render(read(call, ALL, op))


@router.post(
    "/redemptions/{redemption_id}/cancel",
    response_model=RedemptionOut,
    summary="Cancel a redemption: points back to their lots, stock back (admin; app: goods "
    "not yet shipped)",
    description="The points return to the very lots they were taken from, each with its "
    "original expiry (points of a lot that has expired meanwhile come back expired); the "
    "units return to the stock; the redemption's coupons are cancelled. Refused for goods "
    "already shipped (409 `redemption-state`), a redemption one of whose coupons was used "
    "or an experience that has started (409 `cancel-refused`). A member's app may cancel "
    "only goods still pending. Cancelling a cancelled redemption returns it unchanged.",
    responses=problems(*WRITE, NotFound, RedemptionState, CancelRefused),
)
def cancel(redemption_id: PathId, data: CancelIn, call: Write) -> JSONResponse:
    def op(u: Unit) -> RedemptionOut:
        done = fulfilment.cancel(
            u.session,
            u.program,
            u.book,
            redemption_id,
            reason=data.reason,
            now=u.now,
            actor=u.actor,
            pending_goods_only=u.principal.scope == Scope.APP,
        )
        return reads.describe(u.session, done)

    return write(call, ADMIN_APP, op, status_code=200)


@router.post(
    "/redemptions/{redemption_id}/ship",
    response_model=RedemptionOut,
    summary="Goods pending → shipped, with carrier and tracking number (admin)",
    responses=problems(*WRITE, NotFound, RedemptionState),
)
def ship(redemption_id: PathId, data: ShipIn, call: Write) -> JSONResponse:
    def op(u: Unit) -> RedemptionOut:
        done = fulfilment.ship(
            u.session,
            u.program_id,
            redemption_id,
            carrier=data.carrier,
            tracking=data.tracking,
            now=u.now,
            actor=u.actor,
        )
        return reads.describe(u.session, done)

    return write(call, ADMIN, op, status_code=200)


@router.post(
    "/redemptions/{redemption_id}/deliver",
    response_model=RedemptionOut,
    summary="Goods shipped → delivered (admin)",
    responses=problems(*WRITE, NotFound, RedemptionState),
)
def deliver(redemption_id: PathId, call: Write) -> JSONResponse:
    def op(u: Unit) -> RedemptionOut:
        done = fulfilment.deliver(u.session, u.program_id, redemption_id, now=u.now, actor=u.actor)
        return reads.describe(u.session, done)

    return write(call, ADMIN, op, status_code=200)
