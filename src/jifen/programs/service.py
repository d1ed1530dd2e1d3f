"""Programmes: create, list, read, and the `Book` the ledger works with."""

from __future__ import annotations

from datetime import datetime
from decimal import ROUND_DOWN, Decimal
from weakref import WeakKeyDictionary
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from jifen.core.errors import Conflict, InvalidInput, NotFound
from jifen.ledger.expiry import EXPIRY_POLICY
from jifen.ledger.models import AccountKind
from jifen.ledger.posting import Book
from jifen.ledger.service import open_program_accounts, program_account_ids
from jifen.programs.errors import RulesVersionMismatch
from jifen.programs.models import Channel, Program, RuleSetVersion, Store
from jifen.programs.rulesets import references, save_rules, version_row
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


def create_program(
    session: Session,
    data: ProgramCreate,
    *,
    now: datetime,
    rules: RuleSet | None = None,
    actor: str = "system",
    default_channels: bool = True,
) -> Program:
    """A new programme with its accounts and its first rules version (`rules`, else the
    defaults); with `default_channels`, the five channels of `DEFAULT_CHANNELS`."""
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
        points_payment=(
            data.points_payment.model_dump(mode="json") if data.points_payment else None
        ),
        created_at=now,
    )
    session.add(program)
    session.flush()
    session.info.setdefault(CREATED, set()).add(program.id)
    open_program_accounts(session, program.id, now)
    if default_channels:
        for code, (zh, _en) in DEFAULT_CHANNELS.items():
            session.add(Channel(program_id=program.id, code=code, name=zh, kind=code))
    save_rules(session, program.id, rules or RuleSet(), now=now, actor=actor)
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


def lock_program(session: Session, program_id: int) -> Program:
    """The programme, its row locked until the transaction ends: what serialises changes
    to its settings and rules (on SQLite the write transaction already holds the lock)."""
    program = session.execute(
        select(Program).where(Program.id == program_id).with_for_update()
    ).scalar_one_or_none()
    if program is None:
        raise NotFound(what="programme", key=program_id)
    return program


_ACCOUNT_IDS: WeakKeyDictionary[Engine, dict[tuple[int, datetime], dict[AccountKind, int]]] = (
    WeakKeyDictionary()
)
"""A programme's own account ids, per engine (a database) and programme (id and creation
instant): they are opened with the programme and never change, so each process reads
them once — from a transaction that did not create the programme, where they are
committed (the creating one may yet roll back, and SQLite would give the id again)."""

CREATED = "jifen.programs.created"
"""`session.info` key: ids of the programmes this session created."""


def book_for(session: Session, program: Program) -> Book:
    engine = session.get_bind().engine
    known = _ACCOUNT_IDS.setdefault(engine, {})
    key = (program.id, program.created_at)
    accounts = known.get(key)
    if accounts is None:
        accounts = program_account_ids(session, program.id)
        if program.id not in session.info.get(CREATED, ()):
            known[key] = accounts
    return Book(
        program_id=program.id,
        tz=ZoneInfo(program.timezone),
        expiry=EXPIRY_POLICY.validate_python(program.expiry_policy),
        pending_days=program.pending_days,
        allow_negative=program.allow_negative_balance,
        allow_transfers=program.allow_transfers,
        hold_minutes=program.hold_minutes,
        accounts=dict(accounts),
    )


def points_value(program: Program, points: int) -> Decimal:
    """What `points` are worth in the programme's currency, to the cent, rounded down."""
    value = Decimal(points) * program.point_value_amount / program.point_value_points
    return value.quantize(Decimal("0.01"), rounding=ROUND_DOWN)


def list_stores(session: Session, program_id: int) -> list[Store]:
    query = select(Store).where(Store.program_id == program_id).order_by(Store.code)
    return list(session.execute(query).scalars())


def list_channels(session: Session, program_id: int) -> list[Channel]:
    query = select(Channel).where(Channel.program_id == program_id).order_by(Channel.code)
    return list(session.execute(query).scalars())


def replace_rules(
    session: Session,
    program_id: int,
    rules: RuleSet,
    *,
    now: datetime,
    actor: str,
    expected: frozenset[int] | None = None,
) -> tuple[RuleSetVersion, bool]:
    """Make `rules` the programme's current rules: a new version unless they equal the
    current one. `expected`: the versions the caller's change was based on (`If-Match`);
    any other current version refuses the change. Returns the version now current and
    whether this call made it."""
    lock_program(session, program_id)
    current = version_row(session, program_id)
    if expected is not None and current.version not in expected:
        shown = ", ".join(str(v) for v in sorted(expected))
        raise RulesVersionMismatch(expected=shown, current_version=current.version)
    stores = {store.code for store in list_stores(session, program_id)}
    channels = {channel.code for channel in list_channels(session, program_id)}
    for ref in references(rules):
        if ref.code not in (stores if ref.kind == "store" else channels):
            raise InvalidInput(
                field=".".join(str(part) for part in ref.path),
                reason=f"no {ref.kind} {ref.code!r} in this programme (GET /v1/{ref.kind}s "
                "lists them; the programme file adds them)",
            )
    version, created = save_rules(session, program_id, rules, now=now, actor=actor)
    return version_row(session, program_id, version), created
