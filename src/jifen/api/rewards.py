"""The rewards catalog over HTTP (PRODUCT.md R1): list and read rewards (with a member's
price and whether they may redeem), create or change one, restock, and the charity
totals. Every handler calls one service in `jifen.rewards`."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import JSONResponse

from jifen.api.deps import ADMIN, ALL, MAX_ID, ReadCall, Unit, Write, read, render
from jifen.api.idempotency import write
from jifen.api.problems import READ, WRITE, language, problems
from jifen.core.errors import InvalidInput, NotFound
from jifen.programs.rewards import RewardKind
from jifen.rewards import catalog, reads
from jifen.rewards.errors import StockBelowRedeemed, UnknownReward
from jifen.rewards.models import Reward
from jifen.rewards.schemas import CharityTotals, RewardOut, RewardPut, StockIn

router = APIRouter(prefix="/v1", tags=["rewards"])

CodePath = Annotated[
    str,
    Path(pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$", description="the reward's code"),
]
MemberQuery = Annotated[
    int | None,
    Query(
        ge=1,
        le=MAX_ID,
        description="Show this member's price and whether they may redeem it now (and if "
        "not, the refusal a redemption would get).",
    ),
]


def _described(u: Unit, rewards: list[Reward], member_id: int | None, lang: str) -> list[RewardOut]:
    """The rewards, with the member's offer on each (the member read once)."""
    if member_id is None:
        return [catalog.describe(reward, u.now) for reward in rewards]
    who = reads.shopper(u.session, u.program, u.book, member_id, u.now)
    return [
        catalog.describe(
            reward, u.now, reads.offer(u.session, u.program, u.book, reward, who, u.now, lang=lang)
        )
        for reward in rewards
    ]


@router.get(
    "/rewards",
    response_model=list[RewardOut],
    summary="The rewards catalog (积分商城)",
    description="In the order the rewards were defined. `kind` keeps one kind; "
    "`available=true` only what can be redeemed now (active, inside its window, an event "
    "not yet started, not a benefit-only reward; out-of-stock rewards stay, with `left: 0`). "
    "With `member_id`, each reward says what that member would pay (their tier's price) and "
    "whether they may redeem one now.",
    responses=problems(*READ),
)
def list_rewards(
    call: ReadCall,
    request: Request,
    kind: RewardKind | None = None,
    available: bool = False,
    member_id: MemberQuery = None,
) -> JSONResponse:
    def op(u: Unit) -> list[RewardOut]:
        if member_id is not None:
            from jifen.members import service as members

            members.get(u.session, u.program_id, member_id)
        found = catalog.list_rewards(
            u.session, u.program_id, kind=kind, available_at=u.now if available else None
        )
        return _described(u, found, member_id, language(request))

    return render(read(call, ALL, op))


@router.get(
    "/rewards/{code}",
    response_model=RewardOut,
    summary="One reward, with what is left",
    responses=problems(*READ, UnknownReward),
)
def get_reward(
    code: CodePath, call: ReadCall, request: Request, member_id: MemberQuery = None
) -> JSONResponse:
    lang = language(request)
    return render(
        read(
            call,
            ALL,
            lambda u: _described(
                u, [catalog.get_reward(u.session, u.program_id, code)], member_id, lang
            )[0],
        )
    )


@router.put(
    "/rewards/{code}",
    response_model=RewardOut,
    summary="Create a reward or change it (admin)",
    description="The body is the reward as the programme file writes it; `code` may be left "
    "out (the path names it). What members have redeemed is kept: `stock` is what may ever "
    "be redeemed, so it cannot be set below `redeemed` (409 `stock-below-redeemed`). "
    "Putting the same reward again changes nothing.",
    responses=problems(*WRITE, StockBelowRedeemed),
)
def put_reward(code: CodePath, data: RewardPut, call: Write) -> JSONResponse:
    def op(u: Unit) -> RewardOut:
        if data.code is not None and data.code != code:
            raise InvalidInput(field="code", reason=f"differs from the path's {code!r}")
        reward, _ = catalog.put_reward(u.session, u.program, data.spec(code), now=u.now)
        return catalog.describe(reward, u.now)

    return write(call, ADMIN, op, status_code=200)


@router.post(
    "/rewards/{code}/stock",
    response_model=RewardOut,
    summary="Restock a reward, or write some of its stock off (admin)",
    description="`add` units to `stock` in one atomic update (negative: fewer, never below "
    "what is redeemed). A reward without a stock limit cannot be restocked.",
    responses=problems(*WRITE, NotFound, UnknownReward, StockBelowRedeemed),
)
def restock(code: CodePath, data: StockIn, call: Write) -> JSONResponse:
    def op(u: Unit) -> RewardOut:
        reward = catalog.add_stock(u.session, u.program_id, code, data.add, now=u.now)
        return catalog.describe(reward, u.now)

    return write(call, ADMIN, op, status_code=200)


@router.get(
    "/charity",
    response_model=CharityTotals,
    summary="Donations per cause: how many, points, members",
    description="Live donations only (a cancelled donation is not counted).",
    responses=problems(*READ),
)
def charity(call: ReadCall) -> JSONResponse:
    return render(read(call, ALL, lambda u: reads.charity_totals(u.session, u.program_id)))
