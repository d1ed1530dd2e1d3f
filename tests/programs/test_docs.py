"""docs/programme-file.md cannot drift: its example loads, applies and exports unchanged,
its plan is what jifen prints for the change described, and each mistake quoted is what
jifen says."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest

from factories import make_member
from jifen.core.clock import FrozenClock
from jifen.db.uow import Database
from jifen.ledger import service as ledger
from jifen.ledger.posting import Book
from jifen.programs.apply import apply, plan
from jifen.programs.config import export, load_program_file
from jifen.programs.errors import ProgramFileInvalid
from jifen.programs.service import book_for, get_program_by_code

DOC = Path(__file__).resolve().parents[2] / "docs" / "programme-file.md"
TEXT = DOC.read_text(encoding="utf-8")
EXAMPLE = re.search(r"^```yaml\n(.*?)^```", TEXT, re.M | re.S).group(1)  # type: ignore[union-attr]


def section(title: str) -> str:
    return TEXT.split(f"\n## {title}\n", 1)[1].split("\n## ", 1)[0]


def first_block(text: str) -> list[str]:
    return re.search(r"^```\n(.*?)^```", text, re.M | re.S).group(1).splitlines()  # type: ignore[union-attr]


def edit(text: str, *changes: tuple[str, str]) -> str:
    for old, new in changes:
        assert old in text, old
        text = text.replace(old, new, 1)
    return text


def problems(text: str) -> list[str]:
    with pytest.raises(ProgramFileInvalid) as caught:
        load_program_file(text, "programme.yaml")
    return [str(p) for p in caught.value.problems]


def test_the_example_applies_and_exports_unchanged(db: Database, clock: FrozenClock) -> None:
    loaded = load_program_file(EXAMPLE, "programme.yaml")
    applied = db.write(lambda s: apply(s, loaded, now=clock.now(), actor="docs"))
    assert applied.plan.creates
    exported = db.read(lambda s: export(s, get_program_by_code(s, "bean-coffee")))
    again = load_program_file(exported, "exported.yaml")
    assert db.read(lambda s: plan(s, again)).empty
    assert db.read(lambda s: plan(s, loaded)).empty


CHANGE = (
    ("  pending_days: 7 ", "  pending_days: 3 "),
    ("{kind: after_months, months: 12, round_to: month}", "{kind: never}"),
    ("name: 上海徐汇店", "name: 上海徐家汇店"),
    (
        "  - {code: sh-003, name: 上海浦东店, region: 华东}\n",
        "  - {code: bj-001, name: 北京国贸店, region: 华北}\n",
    ),
    ("kind: mini_program}", "kind: mini_program, active: false}"),
    ("10:00}", "11:00}"),
    (
        "event_rules:\n",
        "  - {id: weekend, name: 周末加赠, when: {weekdays: [6, 7]}, effect: {bonus: 10}}\n\n"
        "event_rules:\n",
    ),
    ("  - {type: check_in, name: 每日签到, points: 2, limit: {count: 1, per: day}}\n", ""),
    ("birthday: {points: 200, window: month}", "birthday: {points: 300, window: month}"),
)


def test_the_plan_shown_is_what_jifen_prints(db: Database, clock: FrozenClock) -> None:
    loaded = load_program_file(EXAMPLE, "programme.yaml")
    db.write(lambda s: apply(s, loaded, now=clock.now(), actor="docs"))
    changed = load_program_file(edit(EXAMPLE, *CHANGE), "programme.yaml")
    assert db.read(lambda s: plan(s, changed)).describe() == first_block(
        section("Plan: what would change")
    )


def test_the_mistakes_block_is_what_jifen_prints() -> None:
    text = edit(
        EXAMPLE,
        ("  pending_days: 7 ", "  pending_dayz: 7 "),
        ("kind: mini_program}", "kind: wechat}"),
        ("    effect: {multiplier: 2}\n", "    effect: {multiplier: 2, bonus: 1}\n"),
    )
    shown = first_block(section("Mistakes"))
    assert [f"error: {p}" for p in problems(text)] == shown


MISTAKES: dict[str, Callable[[str], str]] = {
    "a misspelt key": lambda t: edit(t, ("  pending_days: 7 ", "  pending_dayz: 7 ")),
    "a key given twice in one mapping": lambda t: edit(
        t, ("  name: 豆子咖啡\n", "  name: 豆子咖啡\n  name: 豆\n")
    ),
    "a rule id given twice": lambda t: edit(t, ("id: member-day", "id: base")),
    "a rule naming a store the file does not define": lambda t: edit(
        t, ("store: [sh-001, sh-002]", "store: [sh-001, gz-001]")
    ),
    "an unknown channel kind": lambda t: edit(t, ("kind: mini_program}", "kind: wechat}")),
    "a store code as a number in a rule": lambda t: edit(
        t, ("store: [sh-001, sh-002]", "store: [1001]")
    ),
    "an unclosed bracket": lambda t: edit(
        t, ("华东}\n  - {code: sh-002", "华东\n  - {code: sh-002")
    ),
    "`return_policy: debt` without `allow_negative_balance: true`": lambda t: edit(
        t, ("return_policy: withhold", "return_policy: debt")
    ),
}


def table(title: str) -> dict[str, str]:
    """The mistake → message table: the message without its backticks."""
    rows: dict[str, str] = {}
    for line in section(title).splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if line.startswith("| ") and len(cells) == 2 and cells[1].startswith("`"):
            rows[cells[0]] = cells[1].strip("`")
    return rows


@pytest.mark.parametrize("mistake", list(MISTAKES))
def test_each_mistake_quoted_is_what_jifen_says(mistake: str) -> None:
    found = problems(MISTAKES[mistake](EXAMPLE))
    assert len(found) == 1, found
    message = found[0].split(": ", 1)[1]  # without programme.yaml:LINE
    assert message == table("Mistakes")[mistake]


def into_debt(db: Database, book: Book, member: int, clock: FrozenClock) -> None:
    earned = db.write(lambda s: ledger.credit(s, book, member, 100, now=clock.now(), actor="t"))
    db.write(lambda s: ledger.debit(s, book, member, 80, now=clock.now(), actor="t"))
    db.write(lambda s: ledger.reverse(s, book, earned.id, now=clock.now(), actor="t"))


def test_the_refusals_against_the_programme(db: Database, clock: FrozenClock) -> None:
    rows = table("Mistakes")
    debt = edit(
        EXAMPLE,
        ("allow_negative_balance: false", "allow_negative_balance: true"),
        ("pending_days: 7 ", "pending_days: 0 "),
    )
    loaded = load_program_file(debt, "programme.yaml")
    db.write(lambda s: apply(s, loaded, now=clock.now(), actor="docs"))
    book = db.read(lambda s: book_for(s, get_program_by_code(s, "bean-coffee")))
    for _ in range(2):  # two members owe points: an earn they spent is reversed
        into_debt(db, book, make_member(db, book, clock), clock)

    for text, mistake in (
        (
            edit(debt, ("currency: CNY", "currency: USD")),
            "an existing programme's currency changed",
        ),
        (
            debt.replace("allow_negative_balance: true", "allow_negative_balance: false"),
            "debt forbidden while members owe points",
        ),
    ):
        again = load_program_file(text, "programme.yaml")
        with pytest.raises(ProgramFileInvalid) as caught:
            db.read(lambda s: plan(s, again))  # noqa: B023 - called at once
        [problem] = caught.value.problems
        assert str(problem).split(": ", 1)[1] == rows[mistake]
