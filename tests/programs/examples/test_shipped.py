"""Every example programme shipped in the package loads, applies, applies again without
change, and survives export: the exported file describes the same programme and applying
it changes nothing."""

from __future__ import annotations

from importlib.resources import files

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from jifen.core.clock import FrozenClock
from jifen.db.uow import Database
from jifen.programs import examples
from jifen.programs.apply import apply, plan
from jifen.programs.config import export, load_program_file
from jifen.programs.models import RuleSetVersion
from jifen.programs.rulesets import current_rules
from jifen.programs.service import get_program, list_channels, list_stores

NAMES = [
    "airline",
    "coffee-chain",
    "e-commerce",
    "employee-incentive",
    "restaurant",
    "retail-chain",
]


def test_the_six_examples_are_shipped() -> None:
    assert examples.names() == NAMES
    # the files sit inside the package (package data), one per example
    folder = files("jifen.programs.examples")
    assert sorted(e.name for e in folder.iterdir() if e.name.endswith(".yaml")) == [
        f"{name}.yaml" for name in NAMES
    ]


def test_an_unknown_example_is_refused_by_name() -> None:
    with pytest.raises(KeyError, match="retail-chain"):
        examples.text("supermarket")


@pytest.mark.parametrize("name", NAMES)
def test_each_example_has_its_own_code_and_comments(name: str) -> None:
    text = examples.text(name)
    loaded = load_program_file(text, f"{name}.yaml")
    assert loaded.program.code == name
    assert text.startswith("# ")  # explained for the person who copies it


@pytest.mark.parametrize("name", NAMES)
def test_apply_is_idempotent_and_export_round_trips(
    db: Database, clock: FrozenClock, name: str
) -> None:
    file = load_program_file(examples.text(name), f"{name}.yaml")
    first = db.write(lambda s: apply(s, file, now=clock.now(), actor="test"))
    assert first.plan.creates
    assert first.rules_version == 1

    clock.advance(minutes=1)
    again = db.write(lambda s: apply(s, file, now=clock.now(), actor="test"))
    assert again.plan.empty
    assert again.program_id == first.program_id
    assert again.rules_version == 1

    def exported(s: Session) -> str:
        return export(s, get_program(s, first.program_id))

    text = db.read(exported)
    back = load_program_file(text, f"{name}.exported.yaml")
    assert back.program == file.program
    assert back.rules == file.rules
    assert [(x.code, x.name, x.region) for x in back.stores] == sorted(
        (x.code, x.name, x.region) for x in file.stores
    )
    assert sorted(back.channels, key=lambda c: c.code) == sorted(
        file.channels, key=lambda c: c.code
    )
    assert db.read(lambda s: plan(s, back)).empty
    clock.advance(minutes=1)
    assert db.write(lambda s: apply(s, back, now=clock.now(), actor="test")).plan.empty

    def state(s: Session) -> tuple[int, int, int, int]:
        versions = select(func.count()).where(RuleSetVersion.program_id == first.program_id)
        return (
            s.execute(versions).scalar_one(),
            current_rules(s, first.program_id).version,
            len(list_stores(s, first.program_id)),
            len(list_channels(s, first.program_id)),
        )

    assert db.read(state) == (1, 1, len(file.stores), len(file.channels))
