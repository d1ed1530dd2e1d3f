"""The `jifen` CLI, driven in-process against a temporary SQLite database.

Every refusal is checked the same way: exit status, exactly one line on stderr that
starts with `error:`, no traceback anywhere, and the database unchanged.
"""

from __future__ import annotations

import getpass
import re
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import func, select

from clikit import Run, invoke, ok, refused
from jifen.access.models import ApiKey
from jifen.access.service import Scope, authenticate
from jifen.core.clock import FrozenClock, SystemClock
from jifen.db.migrate import alembic_config
from jifen.db.uow import Database
from jifen.demo import DEMO_CODE, DemoInfo, seed_demo
from jifen.ledger import service as ledger
from jifen.ledger.models import JournalTransaction
from jifen.ledger.queries import current_balance
from jifen.members.models import Member
from jifen.programs.models import Program
from jifen.programs.service import book_for, get_program_by_code


def counts(db: Database) -> dict[str, int]:
    def count(model: type) -> Callable[..., int]:
        return lambda s: s.execute(select(func.count()).select_from(model)).scalar_one()

    return {
        model.__name__: db.read(count(model))
        for model in (Program, Member, ApiKey, JournalTransaction)
    }


def make_shop(run: Run, code: str = "shop", *extra: str) -> None:
    ok(run("programs", "create", "--code", code, "--name", "小店", *extra))


# -- happy paths -----------------------------------------------------------------------------


def test_db_upgrade_reports_the_head_revision(url: str) -> None:
    head = ScriptDirectory.from_config(alembic_config(url)).get_current_head()
    first = ok(invoke(url, ["db", "upgrade"]))
    assert f"is at revision {head} (head)" in first
    assert ok(invoke(url, ["db", "upgrade"])) == first  # idempotent


def test_database_url_option_beats_the_environment(tmp_path: Path) -> None:
    chosen = f"sqlite:///{tmp_path / 'chosen.db'}"
    ok(invoke(f"sqlite:///{tmp_path / 'env.db'}", ["--database-url", chosen, "db", "upgrade"]))
    assert (tmp_path / "chosen.db").exists()
    assert not (tmp_path / "env.db").exists()


def test_programs_create_and_list(run: Run, database: Database) -> None:
    out = ok(
        run(
            "programs create --code shop --name 小店 --point-value 100=10 --pending-days 7 "
            "--expiry after_months:24:quarter --allow-transfers"
        )
    )
    assert "created programme shop (id 1)" in out
    assert "100 积分 = 10 CNY" in out
    make_shop(
        run,
        "coffee",
        *["--currency", "USD", "--points-name", "stars", "--point-value", "50=1.5"],
        *["--expiry", "fixed_date:12-31", "--timezone", "America/New_York"],
    )

    program = database.read(lambda s: get_program_by_code(s, "shop"))
    assert program.expiry_policy == {"kind": "after_months", "months": 24, "round_to": "quarter"}
    assert (program.pending_days, program.allow_transfers, program.allow_negative_balance) == (
        7,
        True,
        False,
    )
    listing = ok(run("programs", "list"))
    assert re.search(r"\bshop\b.*小店.*100 积分 = 10 CNY", listing)
    assert re.search(r"\bcoffee\b.*50 stars = 1\.5 USD", listing)


def test_programs_list_when_empty(run: Run) -> None:
    assert "no programmes yet" in ok(run("programs", "list"))


def test_keys_create_prints_the_key_once_and_stores_its_hash(run: Run, database: Database) -> None:
    make_shop(run)
    result = run("keys", "create", "--program", "shop", "--name", "POS 1", "--scope", "pos")
    out = ok(result)
    secret = next(line for line in out.splitlines() if line.startswith("jf_"))
    assert "will not be shown again" in result.stderr
    principal = database.read(lambda s: authenticate(s, secret))
    assert principal.scope == Scope.POS
    key = database.read(lambda s: s.get(ApiKey, principal.key_id))
    assert key is not None
    assert key.created_by == f"cli:{getpass.getuser()}"
    assert secret.split("_", 2)[2] not in key.secret_hash


def test_members_enrol_and_show_by_phone(run: Run, database: Database) -> None:
    make_shop(run)
    out = ok(
        run(
            "members enrol --program shop --phone 138-0013-8000 --name 张三 "
            "--email Zhang@Example.com --birthday 1990-02-03"
        )
    )
    assert "enrolled member 1 in shop (phone 13800138000, email zhang@example.com)" in out
    shown = ok(run("members", "show", "--program", "shop", "--phone", "13800138000"))
    assert "member 1 · 张三 · active" in shown
    assert "1990-02-03" in shown
    assert "zhang@example.com" in shown
    assert re.search(r"available\s+0\b", shown)
    assert "nothing expires within 30 days" in shown
    by_id = ok(run("members", "show", "--program", "shop", "1"))
    assert "member 1 · 张三 · active" in by_id
    member = database.read(lambda s: s.get(Member, 1))
    assert member is not None
    assert member.enrolment_channel == "cli"


@pytest.fixture
def demo(run: Run, database: Database) -> DemoInfo:
    return seed_demo(database, SystemClock())


def test_members_show_balance_and_expiring_soon(run: Run, demo: DemoInfo) -> None:
    for member in demo.members:
        shown = ok(run("members", "show", "--program", DEMO_CODE, "--phone", member.phone))
        expected = member.expected
        assert f"member {member.id} · {member.name} · {member.status}" in shown
        assert re.search(rf"available\s+{expected.available:,}\s", shown), shown
        assert re.search(rf"pending\s+{expected.pending:,}\s", shown)
        assert re.search(rf"held\s+{expected.held:,}\s", shown)
        assert re.search(rf"lifetime earned\s+{expected.lifetime_earned:,}\s", shown)
        for day, points in expected.expiring_soon:
            assert re.search(rf"{day.isoformat()}\s+{points:,}", shown)
        if not expected.expiring_soon:
            assert "nothing expires within 30 days" in shown


def test_ledger_history(run: Run, demo: DemoInfo) -> None:
    li = next(m for m in demo.members if m.name == "李娜")
    out = ok(run("ledger", "history", "--program", DEMO_CODE, str(li.id)))
    lines = [line for line in out.splitlines() if re.match(r"│ \d+ ", line)]
    kinds = [line.split("│")[3].strip() for line in lines]
    # each purchase's points were pending for the 7-day return window and released by the
    # next write to the member after it (a spend); newest first
    assert kinds == [
        "reversal",
        "spend",
        "release",
        "growth",
        "earn",
        "spend",
        "release",
        "growth",
        "earn",
    ]
    assert "会员申请取消，积分退回" in out  # a cancelled redemption's reversal
    assert "+500" in out  # it gives the 500 积分 of five vouchers back
    assert "demo:seed" in out

    only = ok(run("ledger", "history", "--program", DEMO_CODE, str(li.id), "--type", "spend"))
    assert sum(" spend " in line for line in only.splitlines()) == 2
    assert " earn " not in only

    first = ok(run("ledger", "history", "--program", DEMO_CODE, str(li.id), "--limit", "2"))
    cursor = re.search(r"more: add --cursor (\S+)", first)
    assert cursor is not None
    rest = ok(run(f"ledger history --program {DEMO_CODE} {li.id} --cursor {cursor[1]} --limit 50"))
    assert "more:" not in rest
    assert sum(bool(re.match(r"│ \d+ ", line)) for line in rest.splitlines()) == len(kinds) - 2


def test_jobs_run_expire(run: Run, database: Database) -> None:
    make_shop(run, "shop", "--expiry", "after_months:1")
    ok(run("members", "enrol", "--program", "shop", "--phone", "13800138000"))
    past = FrozenClock(SystemClock().now() - timedelta(days=90))
    book = database.read(lambda s: book_for(s, get_program_by_code(s, "shop")))
    database.write(lambda s: ledger.credit(s, book, 1, 100, now=past.now(), actor="test"))
    past.advance(days=1)
    database.write(lambda s: ledger.credit(s, book, 1, 40, now=past.now(), actor="test"))

    out = ok(run("jobs", "run", "expire", "--program", "shop"))
    assert "expire: 2 lots expired, 140 points, 1 member account, 1 batch" in out
    assert current_balance(database, book, 1, SystemClock().now()).available == 0
    again = ok(run("jobs", "run", "expire"))
    assert "expire: 0 lots expired, 0 points, 0 member accounts, 0 batches" in again
    assert "0 lots released" in ok(run("jobs", "run", "release", "--batch-size", "10"))
    assert "0 holds lapsed" in ok(run("jobs", "run", "lapse"))


def test_jobs_run_reports_each_programme(run: Run, database: Database) -> None:
    make_shop(run, "one")
    make_shop(run, "two")
    out = ok(run("jobs", "run", "release"))
    assert re.search(r"│ one\s+│ 0 ", out)
    assert re.search(r"│ two\s+│ 0 ", out)


def test_the_module_runs_as_a_program() -> None:
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-m", "jifen.cli", "--help"], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert "programs" in done.stdout


# -- refusals: one line, non-zero, nothing written -----------------------------------------


def test_duplicate_programme_code(run: Run, database: Database) -> None:
    make_shop(run)
    before = counts(database)
    refused(run("programs", "create", "--code", "shop", "--name", "again"), 1, "'shop'")
    assert counts(database) == before


@pytest.mark.parametrize(
    "args",
    [
        ["keys", "create", "--program", "nope", "--name", "k", "--scope", "read"],
        ["members", "enrol", "--program", "nope", "--phone", "13800138000"],
        ["members", "show", "--program", "nope", "1"],
        ["ledger", "history", "--program", "nope", "1"],
        ["jobs", "run", "expire", "--program", "nope"],
    ],
)
def test_unknown_programme(run: Run, database: Database, args: list[str]) -> None:
    make_shop(run)
    before = counts(database)
    refused(run(*args), 1, "no programme with code nope", "jifen programs list")
    assert counts(database) == before


def test_unknown_programme_in_chinese(run: Run) -> None:
    line = refused(run("members", "show", "--program", "nope", "1", lang="zh-CN"), 1)
    assert line == "error: 没有代码为 nope 的计划（用 `jifen programs list` 查看）。"


@pytest.mark.parametrize(
    ("flags", "fragment"),
    [
        (["--phone", "call-me"], "phone: a phone number is 5–20 digits"),
        (["--email", "not-an-email"], "email:"),
        ([], "give at least one of phone, email, card_number, external_id"),
        (["--card-number", "  "], "card_number: must not be blank"),
    ],
)
def test_invalid_member_input(
    run: Run, database: Database, flags: list[str], fragment: str
) -> None:
    make_shop(run)
    before = counts(database)
    refused(run("members", "enrol", "--program", "shop", *flags), 1, fragment)
    assert counts(database) == before


def test_duplicate_phone(run: Run, database: Database) -> None:
    make_shop(run)
    ok(run("members", "enrol", "--program", "shop", "--phone", "13800138000"))
    before = counts(database)
    again = run("members enrol --program shop --phone 13800138000")
    refused(again, 1, "phone 13800138000 already belongs to member 1")
    assert counts(database) == before


@pytest.mark.parametrize(
    ("spec", "fragment"),
    [
        ("sometimes", "'sometimes' is not one of never, after_months:N"),
        ("after_months:0", "greater than or equal to 1"),
        ("after_months:12:decade", "round_to"),
        ("fixed_date:02-30", "2-30 is not a date"),
        ("inactivity:x", "is not one of"),
    ],
)
def test_invalid_expiry_spec(run: Run, database: Database, spec: str, fragment: str) -> None:
    before = counts(database)
    line = refused(
        run("programs", "create", "--code", "shop", "--name", "x", "--expiry", spec), 2, fragment
    )
    assert "'--expiry'" in line
    assert counts(database) == before


@pytest.mark.parametrize(
    ("flags", "code", "fragment"),
    [
        (["--point-value", "ten"], 2, "'--point-value'"),
        (["--point-value", "100=0"], 1, "point_value_amount: Input should be greater than 0"),
        (["--timezone", "Mars/Olympus"], 1, "unknown time zone 'Mars/Olympus'"),
        (["--code", "Bad Code"], 1, "code: 2–63 lower-case letters"),
    ],
)
def test_invalid_programme_settings(
    run: Run, database: Database, flags: list[str], code: int, fragment: str
) -> None:
    before = counts(database)
    refused(run("programs", "create", "--code", "shop", "--name", "x", *flags), code, fragment)
    assert counts(database) == before


@pytest.mark.parametrize(
    "args",
    [
        ["members", "show", "--program", "shop", "999"],
        ["members", "show", "--program", "shop", "--card-number", "C-404"],
        ["ledger", "history", "--program", "shop", "999"],
    ],
)
def test_unknown_member(run: Run, database: Database, args: list[str]) -> None:
    make_shop(run)
    before = counts(database)
    refused(run(*args), 1, "No member")
    assert counts(database) == before


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["members", "show", "--program", "shop"], "give exactly one of MEMBER_ID, --phone"),
        (["members", "show", "--program", "shop", "1", "--phone", "1380013"], "exactly one"),
        (["members", "enrol", "--program", "shop", "--birthday", "3/2/1990"], "'--birthday'"),
        (["ledger", "history", "--program", "shop", "1", "--type", "gift"], "'--type'"),
        (["ledger", "history", "--program", "shop", "1", "--limit", "0"], "'--limit'"),
        (["keys", "create", "--program", "shop", "--name", "k", "--scope", "root"], "'--scope'"),
        (["programs", "create", "--code", "shop"], "Missing option '--name'"),
        (["programs", "list", "--colour"], "No such option: --colour"),
        (["jobs", "run", "tidy"], "'tidy'"),
    ],
)
def test_usage_errors(run: Run, database: Database, args: list[str], fragment: str) -> None:
    make_shop(run)
    before = counts(database)
    line = refused(run(*args), 2, fragment)
    assert line.endswith("--help'.")
    assert counts(database) == before


def test_members_show_before_db_upgrade(tmp_path: Path) -> None:
    path = tmp_path / "fresh.db"
    result = invoke(f"sqlite:///{path}", ["members", "show", "--program", "shop", "1"])
    refused(result, 1, "run `jifen db upgrade` first")
    assert not path.exists()  # a read creates nothing


def test_empty_database_without_schema(tmp_path: Path) -> None:
    path = tmp_path / "empty.db"
    path.touch()
    result = invoke(f"sqlite:///{path}", ["programs", "list"])
    refused(result, 1, "has no jifen schema yet", "run `jifen db upgrade` first")


@pytest.mark.parametrize(
    ("bad_url", "fragment"),
    [
        ("not a url", "invalid database URL not a url"),
        ("nosuchdb://host/x", "invalid database URL nosuchdb://host/x"),
        (
            "postgresql://jifen:secret@127.0.0.1:1/jifen",
            "cannot reach the database at postgresql://jifen:***@127.0.0.1:1/jifen:",
        ),
    ],
)
@pytest.mark.parametrize("command", [["programs", "list"], ["db", "upgrade"]])
def test_bad_database_url(bad_url: str, fragment: str, command: list[str]) -> None:
    line = refused(invoke(None, ["--database-url", bad_url, *command]), 1, fragment)
    assert "secret" not in line


def test_invalid_setting_in_the_environment(url: str, run: Run) -> None:
    result = invoke(url, ["programs", "list"], JIFEN_DB_POOL_SIZE="many")
    refused(result, 1, "db_pool_size: Input should be a valid integer")


def test_no_command_shows_help() -> None:
    result = invoke(None, [])
    assert result.exit_code == 2
    assert "programs" in result.stdout
    assert "error" not in result.output
