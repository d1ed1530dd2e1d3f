"""Typed helpers for the earning tests: rules as a programme file writes them, orders at a
local time in Asia/Shanghai, and the services called the way the HTTP layer calls them
(one unit of work each)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from jifen.core.clock import FrozenClock
from jifen.db.models import Base
from jifen.db.uow import Database
from jifen.earning import purchases, returns
from jifen.earning.models import RuleCounter
from jifen.earning.schemas import ClaimIn, Earned, PurchaseIn, PurchaseOut, ReturnIn, ReturnOut
from jifen.ledger.posting import Book
from jifen.ledger.queries import balance as read_balance
from jifen.members.models import SegmentMember
from jifen.programs.models import Store
from jifen.programs.rulesets import save_rules
from jifen.programs.service import get_program
from jifen.rules.schemas import RuleSet

SHANGHAI = ZoneInfo("Asia/Shanghai")
CENT = Decimal("0.01")
T = TypeVar("T")

PER_YUAN = {"id": "base", "name": "1 元 = 1 积分", "effect": {"points_per_amount": 1}}


def local(year: int, month: int, day: int, hour: int = 12, minute: int = 0) -> datetime:
    """A wall-clock time in Asia/Shanghai (the programme's default zone)."""
    return datetime(year, month, day, hour, minute, tzinfo=SHANGHAI)


def rule(rule_id: str, effect: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {"id": rule_id, "name": rule_id, "effect": effect, **fields}


def set_rules(
    db: Database,
    book: Book,
    clock: FrozenClock,
    *earning: dict[str, Any],
    growth: list[dict[str, Any]] | None = None,
) -> int:
    """Make `earning` (and `growth`, else the default growth rule) the current rules."""
    document: dict[str, Any] = {"earning_rules": list(earning)}
    if growth is not None:
        document["growth_rules"] = growth
    rules = RuleSet.model_validate(document)
    version, _ = db.write(
        lambda s: save_rules(s, book.program_id, rules, now=clock.now(), actor="test")
    )
    return version


def add_store(db: Database, book: Book, code: str, *, active: bool = True) -> None:
    db.write(
        lambda s: s.add(Store(program_id=book.program_id, code=code, name=code, active=active))
    )


def add_to_segment(db: Database, book: Book, clock: FrozenClock, member: int, segment: str) -> None:
    db.write(
        lambda s: s.add(
            SegmentMember(
                program_id=book.program_id, segment=segment, member_id=member, added_at=clock.now()
            )
        )
    )


def item(sku: str, unit_price: Any, quantity: Any = 1, **fields: Any) -> dict[str, Any]:
    return {"sku": sku, "unit_price": str(unit_price), "quantity": str(quantity), **fields}


def net(lines: list[dict[str, Any]]) -> Decimal:
    total = Decimal(0)
    for line in lines:
        gross = (Decimal(line["quantity"]) * Decimal(line["unit_price"])).quantize(
            CENT, rounding=ROUND_HALF_UP
        )
        total += gross - Decimal(str(line.get("discount", 0)))
    return total


def order(
    external_id: str,
    *lines: dict[str, Any],
    member: int | dict[str, Any] | None = None,
    at: datetime | None = None,
    channel: str = "pos",
    **fields: Any,
) -> dict[str, Any]:
    """A purchase body (JSON-ready) whose total adds up; `at` defaults to the test clock's
    start (10:00 on 15 January 2026 in Shanghai)."""
    body: dict[str, Any] = {
        "external_id": external_id,
        "occurred_at": (at or local(2026, 1, 15, 10)).isoformat(),
        "channel": channel,
        "lines": list(lines),
        "total": str(net(list(lines))),
        **fields,
    }
    if member is not None:
        body["member"] = {"id": member} if isinstance(member, int) else member
    return body


def _unit(db: Database, book: Book, fn: Callable[[Session, Any], T]) -> T:
    return db.write(lambda s: fn(s, get_program(s, book.program_id)))


def record(
    db: Database, book: Book, clock: FrozenClock, body: dict[str, Any]
) -> tuple[PurchaseOut, bool]:
    """POST /v1/purchases as a service call: the purchase as shown, and whether it was new."""
    data = PurchaseIn.model_validate(body)

    def run(s: Session, program: Any) -> tuple[PurchaseOut, bool]:
        done = purchases.record(s, program, book, data, now=clock.now(), actor="test")
        return purchases.describe(s, book, done.purchase), done.created

    return _unit(db, book, run)


def buy(db: Database, book: Book, clock: FrozenClock, body: dict[str, Any]) -> PurchaseOut:
    shown, created = record(db, book, clock, body)
    assert created
    return shown


def give_back(
    db: Database, book: Book, clock: FrozenClock, purchase_id: int, **body: Any
) -> tuple[ReturnOut, bool]:
    """POST /v1/purchases/{id}/returns as a service call."""
    data = ReturnIn.model_validate(body)

    def run(s: Session, program: Any) -> tuple[ReturnOut, bool]:
        done = returns.record_return(
            s, program, book, purchase_id, data, now=clock.now(), actor="test"
        )
        return returns.describe_return(done.row, done.purchase), done.created

    return _unit(db, book, run)


def claim(
    db: Database, book: Book, clock: FrozenClock, external_id: str, member: int
) -> tuple[PurchaseOut, bool]:
    data = ClaimIn.model_validate({"external_id": external_id, "member": {"id": member}})

    def run(s: Session, program: Any) -> tuple[PurchaseOut, bool]:
        done = purchases.claim(s, program, book, data, now=clock.now(), actor="test")
        return purchases.describe(s, book, done.purchase), done.created

    return _unit(db, book, run)


def simulate(db: Database, book: Book, clock: FrozenClock, body: dict[str, Any]) -> Earned:
    data = PurchaseIn.model_validate(body)
    return db.read(
        lambda s: purchases.simulate(
            s, get_program(s, book.program_id), book, data, now=clock.now()
        )
    )


def shown(db: Database, book: Book, purchase_id: int) -> PurchaseOut:
    return db.read(
        lambda s: purchases.describe(s, book, purchases.get(s, book.program_id, purchase_id))
    )


def points(db: Database, book: Book, member: int, clock: FrozenClock) -> tuple[int, int, int]:
    """(available, pending, growth value) as stored, without bringing anything due up to
    date (so that a test sees what the release job did, not what a read did)."""
    found = db.read(lambda s: read_balance(s, book, member, clock.now()))
    assert found is not None, "something fell due: run the job or move the clock back"
    return found.available, found.pending, found.growth_value


def counters(db: Database, book: Book) -> dict[str, int]:
    """Every rule counter of the programme that is in use: key → points used."""
    rows = db.read(
        lambda s: s.execute(
            select(RuleCounter.key, RuleCounter.used).where(
                RuleCounter.program_id == book.program_id
            )
        ).all()
    )
    return {key: int(used) for key, used in rows if used}


def dump(db: Database) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table (each test has a database of its own)."""

    def read(s: Session) -> dict[str, list[tuple[Any, ...]]]:
        return {
            table.name: [tuple(row) for row in s.execute(select(table).order_by(*table.c))]
            for table in Base.metadata.sorted_tables
        }

    return db.read(read)


def row_counts(db: Database) -> dict[str, int]:
    return db.read(
        lambda s: {
            table.name: int(s.execute(select(func.count()).select_from(table)).scalar_one())
            for table in Base.metadata.sorted_tables
        }
    )
