"""Typed factory functions for tests: a programme with its book, members, keys."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from threading import Barrier
from typing import Any, TypeVar

from jifen.access.service import Scope, create_key
from jifen.core.clock import Clock
from jifen.db.uow import Database
from jifen.ledger.posting import Book
from jifen.members import service as members
from jifen.members.schemas import MemberCreate
from jifen.programs.models import Program
from jifen.programs.schemas import ProgramCreate
from jifen.programs.service import book_for, create_program, get_program

_serial = iter(range(1, 10**9))

T = TypeVar("T")


def at_once(n: int, fn: Callable[[int], T]) -> list[T]:
    """`fn(0)` … `fn(n - 1)` on n threads released together; their results in order."""
    start = Barrier(n)

    def run(i: int) -> T:
        start.wait()
        return fn(i)

    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(run, range(n)))


def make_program(db: Database, clock: Clock, **settings: Any) -> Book:
    data = {"code": f"prog-{next(_serial)}", "name": "测试计划"} | settings
    create = ProgramCreate.model_validate(data)
    return db.write(lambda s: book_for(s, create_program(s, create, now=clock.now())))


def program_of(db: Database, book: Book) -> Program:
    return db.read(lambda s: get_program(s, book.program_id))


def make_member(db: Database, book: Book, clock: Clock, **fields: Any) -> int:
    if not any(k in fields for k in ("phone", "email", "card_number", "external_id")):
        fields["phone"] = f"138{next(_serial):08d}"
    data = MemberCreate.model_validate(fields)
    return db.write(lambda s: members.enrol(s, book, data, now=clock.now()).id)


def make_key(db: Database, book: Book, clock: Clock, scope: Scope = Scope.ADMIN) -> str:
    return db.write(
        lambda s: create_key(
            s, book.program_id, name=f"{scope} key", scope=scope, now=clock.now(), created_by="test"
        )[1]
    )
