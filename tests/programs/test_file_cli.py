"""`jifen programs apply` and `jifen programs export`, in-process on a temporary SQLite
database, checked like every other command (tests/test_cli.py): exit status, one line per
refusal on stderr, no traceback, the database unchanged."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select
from typer.testing import Result

from clikit import Run, ok
from jifen.db.models import Base
from jifen.db.uow import Database
from jifen.programs.models import RuleSetVersion
from jifen.programs.service import get_program_by_code
from programs.test_config import CHANGED, SHOP


def rows(db: Database) -> dict[str, int]:
    return db.read(
        lambda s: {
            table.name: s.execute(select(func.count()).select_from(table)).scalar_one()
            for table in Base.metadata.sorted_tables
        }
    )


def refused_with(result: Result, lines: list[str]) -> None:
    """Exit status 1, exactly these lines on stderr (each `error: …`), nothing on stdout."""
    assert result.exit_code == 1, result.output
    assert result.stderr.splitlines() == [f"error: {line}" for line in lines]
    assert result.stdout == ""


@pytest.fixture
def shop(tmp_path: Path) -> Path:
    path = tmp_path / "programme.yaml"
    path.write_text(SHOP, encoding="utf-8")
    return path


def test_dry_run_prints_the_plan_and_writes_nothing(
    run: Run, database: Database, shop: Path
) -> None:
    before = rows(database)
    out = ok(run("programs", "apply", str(shop), "--dry-run"))
    assert out.splitlines() == [
        "programme shop (小店): new programme, will be created",
        "  stores",
        "    + sh-001: name 上海南京路店, region 华东",
        "    + bj-001: name 北京店",
        "  channels",
        "    + pos: name 收银台, kind pos",
        "    + app: name App, kind app",
        "  rules: version 1 (the first)",
        "    earning_rules: + base, + lunch",
        "    growth_rules: + growth",
        "    event_rules: + sign_up",
        "dry run: nothing was changed",
    ]
    assert rows(database) == before


def test_apply_then_again_then_a_change(
    run: Run, database: Database, shop: Path, tmp_path: Path
) -> None:
    first = ok(run("programs", "apply", str(shop)))
    assert first.splitlines()[0] == "programme shop (小店): new programme, will be created"
    assert first.splitlines()[-1] == "applied: programme shop (id 1), rules version 1"
    assert database.read(lambda s: get_program_by_code(s, "shop")).pending_days == 7

    before = rows(database)
    assert ok(run("program", "apply", str(shop))) == "programme shop (小店): no changes\n"
    assert rows(database) == before

    changed = tmp_path / "changed.yaml"
    changed.write_text(CHANGED, encoding="utf-8")
    out = ok(run("programs", "apply", str(changed)))
    assert "    pending_days: 7 → 3" in out.splitlines()
    assert "    - bj-001: deactivated (not in the file)" in out.splitlines()
    assert out.splitlines()[-1] == "applied: programme shop (id 1), rules version 2"
    actors = database.read(
        lambda s: (
            s.execute(select(RuleSetVersion.actor).order_by(RuleSetVersion.id)).scalars().all()
        )
    )
    assert len(actors) == 2
    assert all(actor.startswith("cli:") for actor in actors)


def test_a_file_with_mistakes_is_one_line_each_and_writes_nothing(
    run: Run, database: Database, shop: Path, tmp_path: Path
) -> None:
    ok(run("programs", "apply", str(shop)))
    before = rows(database)
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        SHOP.replace("  pending_days: 7\n", "  pending_dayz: 7\n").replace(
            "effect: {multiplier: 2}", "effect: {multiplier: 2, bonus: 1}"
        ),
        encoding="utf-8",
    )
    for flags in ([], ["--dry-run"]):
        refused_with(
            run("programs", "apply", str(bad), *flags),
            [
                f"{bad}:4: program.pending_dayz: unknown field (did you mean pending_days?)",
                f"{bad}:21: earning_rules[1].effect: give exactly one of points_per_amount, "
                "points_per_quantity, points_per_attribute, multiplier, bonus "
                "(got multiplier, bonus)",
            ],
        )
    assert rows(database) == before


def test_a_refused_change_is_one_line_and_writes_nothing(
    run: Run, database: Database, shop: Path, tmp_path: Path
) -> None:
    ok(run("programs", "apply", str(shop)))
    before = rows(database)
    dollars = tmp_path / "dollars.yaml"
    dollars.write_text(CHANGED.replace("  name: 小店\n", "  name: 小店\n  currency: USD\n"))
    refused_with(
        run("programs", "apply", str(dollars)),
        [
            f"{dollars}:4: program.currency: the programme's currency is CNY and cannot change: "
            "its point value, rules and reports are in it (start a new programme instead)"
        ],
    )
    assert rows(database) == before


def test_a_file_that_cannot_be_read(run: Run, database: Database, tmp_path: Path) -> None:
    before = rows(database)
    missing = tmp_path / "missing.yaml"
    refused_with(run("programs", "apply", str(missing)), [f"No such file or directory: {missing}"])
    latin = tmp_path / "latin.yaml"
    latin.write_bytes("program: {code: caf\xe9}\n".encode("latin-1"))
    refused_with(run("programs", "apply", str(latin)), [f"{latin}: not UTF-8 text (byte 19)"])
    assert rows(database) == before


def test_export_to_stdout_and_to_a_file_applies_as_no_change(
    run: Run, database: Database, shop: Path, tmp_path: Path
) -> None:
    ok(run("programs", "apply", str(shop)))
    printed = ok(run("programs", "export", "shop"))
    assert printed.startswith("# jifen programme file: shop, rules version 1.\n")
    target = tmp_path / "exported.yaml"
    assert ok(run("programs", "export", "shop", "-o", str(target))) == (
        f"exported programme shop to {target}\n"
    )
    assert target.read_text(encoding="utf-8") == printed
    before = rows(database)
    assert ok(run("programs", "apply", str(target))) == "programme shop (小店): no changes\n"
    assert rows(database) == before


def test_export_of_an_unknown_programme(run: Run, database: Database) -> None:
    result = run("programs", "export", "nope")
    assert result.exit_code == 1
    assert result.stderr == "error: no programme with code nope (see `jifen programs list`).\n"
    assert result.stdout == ""


def test_usage_errors(run: Run) -> None:
    for args in (["programs", "apply"], ["programs", "export"]):
        result = run(*args)
        assert result.exit_code == 2
        assert "Missing argument" in result.stderr


def test_the_file_from_standard_input(url: str, run: Run, database: Database) -> None:
    from typer.testing import CliRunner

    from jifen.cli import app

    env = {"JIFEN_LANG": "en", "JIFEN_DATABASE_URL": url, "COLUMNS": "250"}
    result = CliRunner().invoke(app, ["programs", "apply", "-"], input=SHOP, env=env)
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[-1] == "applied: programme shop (id 1), rules version 1"
    bad = CliRunner().invoke(app, ["programs", "apply", "-"], input="program: [\n", env=env)
    assert bad.exit_code == 1
    assert bad.stderr.startswith("error: <stdin>:2: YAML syntax: ")


def test_examples_are_listed_printed_and_applied(run: Run, database: Database, tmp_path: Path):
    assert ok(run("programs example")).split() == [
        "airline",
        "coffee-chain",
        "e-commerce",
        "employee-incentive",
        "restaurant",
        "retail-chain",
    ]
    mine = tmp_path / "mine.yaml"
    ok(run(f"programs example retail-chain -o {mine}"))
    assert "满 200 元送 20 积分" in mine.read_text(encoding="utf-8")
    assert "applied: programme retail-chain" in ok(run(f"programs apply {mine}"))
    assert (
        database.read(lambda s: get_program_by_code(s, "retail-chain").name) == "乐家超市会员积分"
    )
    unknown = run("programs example nope")
    refused_with(
        unknown,
        [
            "no example programme 'nope' (examples: airline, coffee-chain, e-commerce, "
            "employee-incentive, restaurant, retail-chain)"
        ],
    )
