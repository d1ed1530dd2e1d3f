"""docs/generator.md cannot drift: its example rows are what the command it names writes,
and its parameter tables give `Shape`'s defaults."""

from __future__ import annotations

import dataclasses
import re
import shlex
from pathlib import Path

from clikit import invoke, ok
from jifen.generator.shape import Shape

DOC = (Path(__file__).resolve().parents[2] / "docs" / "generator.md").read_text(encoding="utf-8")


def test_the_example_rows_are_what_the_documented_command_writes(tmp_path: Path) -> None:
    command = re.search(r"first rows of\n`(jifen gen [^`]+)`", DOC)
    assert command is not None
    args = shlex.split(command.group(1))[1:]
    ok(invoke(None, [*args, "--out", str(tmp_path)]))
    blocks = re.findall(r"^```\n(.*?)^```", DOC, re.M | re.S)
    for name in ("members", "purchases", "returns"):
        written = (tmp_path / f"{name}.csv").read_text(encoding="utf-8").splitlines()
        shown = next(b for b in blocks if b.startswith(written[0] + "\n")).splitlines()
        assert shown == written[: len(shown)], name


def test_the_parameter_tables_give_the_defaults() -> None:
    rows = dict(re.findall(r"^\| `(\w+)` \| ([0-9.]+) \|$", DOC, re.M))
    defaults = Shape()
    scalars = {
        f.name: getattr(defaults, f.name)
        for f in dataclasses.fields(Shape)
        if isinstance(getattr(defaults, f.name), int | float)
    }
    assert set(rows) == set(scalars)
    for name, value in scalars.items():
        assert type(value)(rows[name]) == value, name
