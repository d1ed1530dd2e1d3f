"""Rule changes at the same time: each based on the version it read, at most one wins; the
same rules sent many times make one version; concurrent applies of one file make one."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from threading import Barrier

from sqlalchemy import func, select

from factories import make_program
from jifen.core.clock import FrozenClock
from jifen.db.uow import Database
from jifen.programs.apply import apply
from jifen.programs.config import load_program_file
from jifen.programs.errors import RulesVersionMismatch
from jifen.programs.models import RuleSetVersion
from jifen.programs.service import replace_rules
from jifen.rules.schemas import RuleSet

WORKERS = 8


def rules(bonus: int) -> RuleSet:
    return RuleSet.model_validate(
        {"earning_rules": [{"id": "bonus", "name": "bonus", "effect": {"bonus": bonus}}]}
    )


def versions(db: Database, program_id: int) -> list[tuple[int, str]]:
    return [
        (row.version, row.actor)
        for row in db.read(
            lambda s: (
                s.execute(
                    select(RuleSetVersion)
                    .where(RuleSetVersion.program_id == program_id)
                    .order_by(RuleSetVersion.version)
                )
                .scalars()
                .all()
            )
        )
    ]


def test_editors_of_one_version_cannot_overwrite_each_other(
    db: Database, clock: FrozenClock
) -> None:
    book = make_program(db, clock)
    start = Barrier(WORKERS)

    def edit(worker: int) -> str:
        start.wait()
        try:
            db.write(
                lambda s: replace_rules(
                    s,
                    book.program_id,
                    rules(worker + 1),
                    now=clock.now(),
                    actor=f"editor-{worker}",
                    expected=frozenset({1}),
                )
            )
        except RulesVersionMismatch:
            return "refused"
        return "saved"

    with ThreadPoolExecutor(WORKERS) as pool:
        outcomes = list(pool.map(edit, range(WORKERS)))
    assert sorted(outcomes) == ["refused"] * (WORKERS - 1) + ["saved"]
    found = versions(db, book.program_id)
    assert [version for version, _ in found] == [1, 2]
    assert found[1][1] == f"editor-{outcomes.index('saved')}"


def test_the_same_rules_at_once_make_one_version(db: Database, clock: FrozenClock) -> None:
    book = make_program(db, clock)
    start = Barrier(WORKERS)

    def save(_: int) -> bool:
        start.wait()
        return db.write(
            lambda s: replace_rules(s, book.program_id, rules(5), now=clock.now(), actor="x")
        )[1]

    with ThreadPoolExecutor(WORKERS) as pool:
        created = list(pool.map(save, range(WORKERS)))
    assert created.count(True) == 1
    assert [version for version, _ in versions(db, book.program_id)] == [1, 2]


def test_one_file_applied_at_once_by_many(db: Database, clock: FrozenClock) -> None:
    workers = 4
    make_program(db, clock, code="shop")
    text = (
        "program: {code: shop, name: 小店, pending_days: 3}\n"
        "stores: [{code: sh-001, name: 上海店}]\n"
        "earning_rules: [{id: base, name: base, effect: {points_per_amount: 1}}]\n"
    )
    loaded = load_program_file(text)
    start = Barrier(workers)

    def go(_: int) -> bool:
        start.wait()
        return db.write(lambda s: apply(s, loaded, now=clock.now(), actor="x")).plan.empty

    with ThreadPoolExecutor(workers) as pool:
        empty = list(pool.map(go, range(workers)))
    assert empty.count(False) == 1  # the first changed everything; the others found it done
    counted = db.read(
        lambda s: s.execute(select(func.count()).select_from(RuleSetVersion)).scalar_one()
    )
    assert counted == 2
