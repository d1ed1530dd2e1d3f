"""Programmes: create, list, read, and the `Book` the ledger works with."""

from __future__ import annotations

from datetime import datetime
from decimal import ROUND_DOWN, Decimal
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from jifen.core.errors import Conflict, NotFound
from jifen.ledger.expiry import EXPIRY_POLICY
from jifen.ledger.posting import Book
from jifen.ledger.service import open_program_accounts, program_account_ids
from jifen.programs.models import Channel, Program
from jifen.programs.rulesets import save_rules
from jifen.programs.schemas import ProgramCreate
from jifen.rules.schemas import RuleSet

DEFAULT_CHANNELS = {
    "store": ("门店", "Store"),
    "pos": ("收银台", "POS"),
    "web": ("网站", "Web"),
    "app": ("App", "App"),
    "mini_program": ("小程序", "Mini-program"),
}
"""A new programme's channels (programme data: the programme file can change them)."""


def create_program(session: Session, data: ProgramCreate, *, now: datetime) -> Program:
    if session.execute(select(Program.id).where(Program.code == data.code)).first():
        raise Conflict(reason=f"a programme with code {data.code!r} already exists")
    program = Program(
        code=data.code,
        name=data.name,
        currency=data.currency,
        timezone=data.timezone,
        points_name=data.points_name,
        point_value_points=data.point_value_points,
        point_value_amount=data.point_value_amount,
        pending_days=data.pending_days,
        expiry_policy=data.expiry_policy.model_dump(mode="json"),
        allow_transfers=data.allow_transfers,
        allow_negative_balance=data.allow_negative_balance,
        hold_minutes=data.hold_minutes,
        language=data.language,
        return_policy=data.return_policy,
        claim_days=data.claim_days,
        created_at=now,
    )
    session.add(program)
    session.flush()
    open_program_accounts(session, program.id, now)
    for code, (zh, _en) in DEFAULT_CHANNELS.items():
        session.add(Channel(program_id=program.id, code=code, name=zh, kind=code))
    save_rules(session, program.id, RuleSet(), now=now, actor="system")
    session.flush()
    return program


def list_programs(session: Session) -> list[Program]:
    return list(session.execute(select(Program).order_by(Program.id)).scalars())


def get_program(session: Session, program_id: int) -> Program:
    program = session.get(Program, program_id)
    if program is None:
        raise NotFound(what="programme", key=program_id)
    return program


def get_program_by_code(session: Session, code: str) -> Program:
    program = session.execute(select(Program).where(Program.code == code)).scalar_one_or_none()
    if program is None:
        raise NotFound(what="programme", key=code)
    return program


def book_for(session: Session, program: Program) -> Book:
    return Book(
        program_id=program.id,
        tz=ZoneInfo(program.timezone),
        expiry=EXPIRY_POLICY.validate_python(program.expiry_policy),
        pending_days=program.pending_days,
        allow_negative=program.allow_negative_balance,
        allow_transfers=program.allow_transfers,
        hold_minutes=program.hold_minutes,
        accounts=program_account_ids(session, program.id),
    )


def points_value(program: Program, points: int) -> Decimal:
    """What `points` are worth in the programme's currency, to the cent, rounded down."""
    value = Decimal(points) * program.point_value_amount / program.point_value_points
    return value.quantize(Decimal("0.01"), rounding=ROUND_DOWN)
