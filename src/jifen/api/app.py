"""The FastAPI application: `create_app(db, clock)`, and `app_from_env()` for workers.

Everything the app needs hangs off `app.state` (`db`, `clock`, `settings`): there are no
globals, so a test builds an app on its own database with a frozen clock, and the demo
and `jifen serve` build theirs on the configured store and the system clock. Under
`jifen serve --workers N` each worker process calls `app_from_env()`, which builds the
app from the settings (`JIFEN_*`) with an engine and connection pool of its own.
"""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from anyio import to_thread
from fastapi import APIRouter, FastAPI, Request
from fastapi.openapi.utils import get_openapi

from jifen import __version__
from jifen.api import (
    checkout,
    coupons,
    events,
    health,
    jobs,
    keys,
    ledger,
    members,
    programs,
    purchases,
    redemptions,
    rewards,
    rules,
    segments,
    tiers,
)
from jifen.api.balances import Reads
from jifen.api.grouped import Groups
from jifen.api.lane import BalanceLane, PurchaseLane
from jifen.api.problems import (
    ProblemType,
    RouteNotFound,
    add_schemas,
    describe,
    install,
    language,
    problem_types,
    problems,
)
from jifen.core.clock import Clock, SystemClock
from jifen.core.settings import Settings
from jifen.db.uow import Database

DESCRIPTION = """\
jifen (积分) is an open-source loyalty-points platform: members, an exact double-entry
points ledger with lots and expiry, holds for checkouts, transfers and reversals.

**Keys.** Every `/v1` route except `/v1/health` takes a programme's API key as
`Authorization: Bearer jf_…`. A key belongs to one programme and has a scope: `admin`
(everything in its programme), `pos` (tills: enrol, earn, spend, holds), `app` (member
apps: enrol, profile, spend, transfers, holds) or `read` (reads only). Another programme's
members, holds and transactions do not exist for it (404).

**Writes.** Every POST, PUT, PATCH and DELETE needs an `Idempotency-Key` header. Retrying with
the same key and body returns the first response (`Idempotent-Replayed: true`) with one
effect; the same key with a different body is refused. A refused request writes nothing.

**Errors** are RFC 9457 problem details (`application/problem+json`); each `type`
(`/problems/<code>`) is stable and described at that address. Messages come in zh-CN
(default) or en, chosen by `Accept-Language`.

**Points** are whole numbers; times are ISO-8601 instants in UTC.
"""

TAGS = [
    {"name": "health", "description": "Liveness and database reachability."},
    {
        "name": "programmes",
        "description": "Programmes (tenants), their settings, stores and channels.",
    },
    {"name": "keys", "description": "API keys of a programme."},
    {"name": "members", "description": "Enrolment, identifiers, profile, status."},
    {"name": "ledger", "description": "Balances, history, lots, earn, spend, holds…"},
    {"name": "purchases", "description": "Purchases, their awards, returns, claims, simulation."},
    {"name": "events", "description": "Behaviour events (sign-up, check-in…) and their points."},
    {"name": "segments", "description": "Named member lists that rules can target."},
    {"name": "jobs", "description": "Scheduled jobs (ledger, birthdays), run on demand."},
    {"name": "rules", "description": "Earning, growth, event and birthday rules, versioned."},
    {
        "name": "tiers",
        "description": "Member tiers: standing and progress, history, grants (staff, "
        "invitation, paid membership).",
    },
    {
        "name": "rewards",
        "description": "The rewards catalog (积分商城): prices, tier prices and restrictions, "
        "windows, limits, stock; charity totals.",
    },
    {
        "name": "redemptions",
        "description": "Redeeming points for rewards, cancelling, shipping goods.",
    },
    {
        "name": "coupons",
        "description": "Coupons: show, check against a basket, use once on an order, cancel.",
    },
    {
        "name": "checkout",
        "description": "Points as payment (积分抵现): quote, hold, void; the purchase captures.",
    },
    {"name": "problems", "description": "What each problem `type` means."},
]

catalogue = APIRouter(tags=["problems"])


@catalogue.get("/problems", response_model=list[ProblemType], summary="Every problem type")
def all_problem_types(request: Request) -> list[ProblemType]:
    lang = language(request)
    return [describe(cls, lang) for cls in problem_types().values()]


@catalogue.get(
    "/problems/{code}",
    response_model=ProblemType,
    summary="What one problem type means",
    responses=problems(RouteNotFound),
)
def problem_type(code: str, request: Request) -> ProblemType:
    found = problem_types().get(code)
    if found is None:
        raise RouteNotFound(path=request.url.path)
    return describe(found, language(request))


def create_app(db: Database, clock: Clock, *, settings: Settings | None = None) -> FastAPI:
    settings = settings if settings is not None else Settings()

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        to_thread.current_default_thread_limiter().total_tokens = settings.threads
        yield

    app = FastAPI(
        lifespan=lifespan,
        title="jifen",
        version=__version__,
        description=DESCRIPTION,
        openapi_tags=TAGS,
        docs_url="/docs",
        redoc_url=None,
        openapi_url="/openapi.json",
    )
    app.state.db = db
    app.state.clock = clock
    app.state.settings = settings
    if settings.group_commit:
        app.state.groups = Groups(db, clock)
        app.add_middleware(PurchaseLane)
    if settings.quick_balance:
        app.state.reads = Reads(db, clock)
        app.add_middleware(BalanceLane)
    install(app)
    # The busiest routes first: a request is matched against the routes in this order
    # (FastAPI tries each router's routes in turn; at a peak that was 8% of the server's
    # CPU per purchase when purchases came sixth).
    for module in (
        health,
        purchases,
        ledger,
        members,
        programs,
        keys,
        events,
        segments,
        jobs,
        rules,
        tiers,
        rewards,
        redemptions,
        coupons,
        checkout,
    ):
        app.include_router(module.router)
    app.include_router(catalogue)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = add_schemas(
                get_openapi(
                    title=app.title,
                    version=app.version,
                    description=app.description,
                    routes=app.routes,
                    tags=app.openapi_tags,
                )
            )
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app


def app_from_env() -> FastAPI:
    """The app on the store the settings name, with the system clock: the factory each
    worker process of `jifen serve --workers N` calls (uvicorn imports it by name)."""
    settings = Settings()
    db = Database(
        settings.resolved_database_url(),
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
    )
    app = create_app(db, SystemClock(), settings=settings)
    settle_collector()
    return app


YOUNG_COLLECTION = 10_000
"""Objects allocated (less those freed) between two young collections of Python's cyclic
garbage collector in a serving process (Python's default is 700)."""


def settle_collector() -> None:
    """Set a serving process's cyclic garbage collector for serving, once its app is built.

    The objects that exist by then (modules, the app, its routes and models, SQLAlchemy's
    mappers: some 200,000) live as long as the process, yet each full collection walked
    them all again, and the young collections, run every 700 allocations, walked the
    thousands of short-lived objects a request makes before most were freed. At the peak
    (128 clients, two workers) that was 13% of a worker's CPU (`gc.callbacks` timing,
    `bench/earn_load.py`). Frozen (`gc.freeze`: moved where no collection looks) and
    collected every `YOUNG_COLLECTION` allocations, it is under 1%; reference cycles are
    still collected, later."""
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_COLLECTION, middle, old)
