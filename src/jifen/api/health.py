"""`GET /v1/health`: is the service up and can it reach its database (no key needed)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from jifen import __version__
from jifen.api.problems import DatabaseUnavailable, problems
from jifen.api.schemas import Health
from jifen.db.uow import Database

router = APIRouter(prefix="/v1", tags=["health"])


@router.get("/health", response_model=Health, responses=problems(DatabaseUnavailable))
def health(request: Request) -> Health:
    db: Database = request.app.state.db
    try:
        db.read(lambda session: session.execute(text("SELECT 1")).scalar_one())
    except SQLAlchemyError as exc:
        raise DatabaseUnavailable() from exc
    return Health(status="ok", version=__version__, database=db.dialect)
