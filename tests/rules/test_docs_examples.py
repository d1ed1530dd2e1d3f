"""docs/rules.md cannot drift: every YAML block in it loads as a programme file, every
worked example's basket is evaluated and must give exactly the table under it, and every
mistake listed gives the message the page quotes.

A worked example is a `#### Example N: …` section: its YAML block (or, without one, the
retail programme), "Bought at `YYYY-MM-DD HH:MM`" (local, Asia/Shanghai), optionally "on
channel `x`", "by a `tier` member", "`rule` has N points left" and "`rule` wanted N",
then a table of lines (columns category, quantity, amount, sku, brand; any other column
is a line attribute) and a table of rule | basis | points ending in a total. A blank
basis means the rule is not in the award at all.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from pathlib import Path

import pytest

from jifen.programs.config import load_program_file
from jifen.programs.errors import ProgramFileInvalid
from jifen.rules.evaluator import evaluate
from jifen.rules.facts import Basket, Line, MemberFacts
from jifen.rules.schemas import EarningRule

from .build import SHANGHAI

DOC = Path(__file__).resolve().parents[2] / "docs" / "rules.md"
TEXT = DOC.read_text(encoding="utf-8")
HEADER = "program: {code: docs-example, name: docs}\n"
TIERS = """\
tiers:
  window: {kind: rolling, months: 12}
  levels:
    - {code: normal, name: 普通}
    - {code: silver, name: 银卡, enter: {growth: 2000}}
    - {code: gold, name: 金卡, enter: {growth: 8000}}
    - {code: platinum, name: 铂金, enter: {growth: 20000}}
"""
"""The snippets are the rules of a programme with the retail example's four tiers (a rule
may name only tiers its programme defines)."""
YAML_BLOCK = re.compile(r"^```yaml\n(.*?)^```", re.M | re.S)


def as_programme(block: str) -> str:
    if block.startswith("program:"):
        return block
    return HEADER + block + ("" if re.search(r"^tiers:", block, re.M) else TIERS)


def load(block: str) -> list[EarningRule]:
    return load_program_file(as_programme(block), "rules.md").earning_rules


def tables(text: str) -> list[list[list[str]]]:
    """Markdown tables as rows of cells, the header row first (the |---| row dropped)."""
    found: list[list[list[str]]] = []
    current: list[list[str]] = []
    for line in [*text.splitlines(), ""]:
        if line.startswith("|"):
            cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
            if not all(set(cell) <= {"-"} for cell in cells):
                current.append(cells)
        elif current:
            found.append(current)
            current = []
    return found


def sections(level: str) -> dict[str, str]:
    """Headings of `level` and their text, up to the next heading of any level."""
    parts = re.split(rf"^{level} ", TEXT, flags=re.M)[1:]
    return {
        part.split("\n", 1)[0]: re.split(r"^#+ ", part, maxsplit=1, flags=re.M)[0] for part in parts
    }


def test_every_yaml_block_loads() -> None:
    blocks = YAML_BLOCK.findall(TEXT)
    assert len(blocks) >= 10
    for block in blocks:
        load_program_file(as_programme(block), "rules.md")


RETAIL = load(YAML_BLOCK.findall(sections("###")["The retail chain"])[0])
EXAMPLES = {title: text for title, text in sections("####").items() if title.startswith("Example")}


@dataclass(frozen=True)
class Expected:
    basis: Decimal | None
    points: int


def parse_lines(table: list[list[str]]) -> tuple[Line, ...]:
    header, *rows = table
    lines = []
    for n, row in enumerate(rows, 1):
        cells = dict(zip(header, row, strict=True))
        cells.pop("line", None)
        lines.append(
            Line(
                sku=cells.pop("sku", "") or f"sku-{n}",
                quantity=Decimal(cells.pop("quantity", "") or 1),
                amount=Decimal(cells.pop("amount")),
                category=cells.pop("category", "") or None,
                brand=cells.pop("brand", "") or None,
                attributes={name: value for name, value in cells.items() if value},
            )
        )
    return tuple(lines)


def parse_result(table: list[list[str]]) -> tuple[dict[str, Expected], int]:
    header, *rows, total = table
    assert header == ["rule", "basis", "points"]
    assert total[0] == "total"
    expected = {
        rule.strip("`"): Expected(Decimal(basis) if basis else None, int(points))
        for rule, basis, points in rows
    }
    return expected, int(total[2])


@pytest.mark.parametrize("title", sorted(EXAMPLES, key=lambda t: int(t.split()[1].rstrip(":"))))
def test_worked_example(title: str) -> None:
    text = EXAMPLES[title]
    blocks = YAML_BLOCK.findall(text)
    rules = load(blocks[0]) if blocks else RETAIL
    at = re.search(r"Bought at `(\d{4}-\d\d-\d\d \d\d:\d\d)`", text)
    assert at is not None, "say when: Bought at `YYYY-MM-DD HH:MM`"
    channel = re.search(r"on channel `([a-z_]+)`", text)
    tier = re.search(r"by a `([a-z_]+)` member", text)
    left = {rule: int(n) for rule, n in re.findall(r"`([a-z0-9_-]+)` has (\d+) points? left", text)}
    line_table, result_table = tables(text)
    basket = Basket(
        at=datetime.fromisoformat(at.group(1)).replace(tzinfo=SHANGHAI),
        channel=channel.group(1) if channel else "store",
        lines=parse_lines(line_table),
    )
    member = MemberFacts(tier=tier.group(1) if tier else None)
    award = evaluate(rules, basket, member, allowances=left)
    expected, total = parse_result(result_table)
    items = {item.rule: item for item in award.items}
    assert set(items) <= set(expected), "every rule in the award has a row"
    for rule, row in expected.items():
        item = items.get(rule)
        if row.basis is None:
            assert item is None, f"{rule}: a blank basis says the rule is not in the award"
            assert row.points == 0
        else:
            assert item is not None, f"{rule} is not in the award"
            assert (item.basis, item.points) == (row.basis, row.points), rule
    assert award.points == total
    for rule, wanted in re.findall(r"`([a-z0-9_-]+)` wanted (\d+)", text):
        assert items[rule].wanted == int(wanted), rule


def test_example_5_is_the_utc_instant_the_page_names() -> None:
    instant = datetime.fromisoformat("2026-03-08T16:01:00+00:00")
    assert instant.astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M") == "2026-03-09 00:01"
    assert "`2026-03-08T16:01:00Z`" in EXAMPLES["Example 5: one minute after the member day"]


SPECIAL_MISTAKES = {
    "a base rate and a bonus in one `best_of` group": (
        "  - {id: base, name: a, effect: {points_per_amount: 1}, stacking: best_of, group: spend}\n"
        "  - {id: bonus, name: b, effect: {bonus: 20}, stacking: best_of, group: spend}\n"
    ),
    "the same `id` twice": (
        "  - {id: base, name: a, effect: {points_per_amount: 1}}\n"
        "  - {id: base, name: b, effect: {bonus: 20}}\n"
    ),
}


def test_every_mistake_gives_the_message_quoted() -> None:
    (table,) = tables(TEXT[TEXT.index("## Mistakes and what jifen says") :])
    header, *rows = table
    assert header == ["you wrote", "jifen says"]
    assert len(rows) >= 14
    for wrote, says in rows:
        if wrote in SPECIAL_MISTAKES:
            rules = SPECIAL_MISTAKES[wrote]
        else:
            code = wrote.strip("`")
            given = code if code.startswith("effect:") else "effect: {bonus: 1}, " + code
            rules = f"  - {{id: r, name: r, {given}}}\n"
        with pytest.raises(ProgramFileInvalid) as caught:
            load_program_file(HEADER + "earning_rules:\n" + rules, "programme.yaml")
        pattern = ".*?".join(re.escape(part) for part in says.split("…"))
        assert re.search(pattern, str(caught.value)), (wrote, str(caught.value))
