"""Running `jifen` in-process for the CLI tests: `invoke`, and what a result must look like
(`ok`: exit 0, its stdout; `refused`: one `error: …` line on stderr, nothing on stdout).
The fixtures `url`, `run` and `database` (tests/conftest.py) give each test a migrated
SQLite file of its own."""

from __future__ import annotations

from collections.abc import Callable

from typer.testing import CliRunner, Result

from jifen.cli import app

Run = Callable[..., Result]
"""`run("a", "b")`, or `run("a b")` split like a shell would; `lang=` picks the language."""


def invoke(url: str | None, args: list[str], lang: str = "en", **settings: str | None) -> Result:
    """Run `jifen` in-process; `settings` are further environment variables. A traceback or
    an exception other than the exit is a bug, whatever the test expects."""
    env = {"JIFEN_LANG": lang, "COLUMNS": "250", "JIFEN_DEBUG": None, **settings}
    env["JIFEN_DATABASE_URL"] = url
    result = CliRunner().invoke(app, args, env=env)
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result


def ok(result: Result) -> str:
    assert result.exit_code == 0, result.output
    return result.stdout


def refused(result: Result, code: int, *fragments: str) -> str:
    """One line on stderr, `error: …`, the given exit code, nothing on stdout."""
    assert result.exit_code == code, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: "), lines[0]
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    assert result.stdout == ""
    return lines[0]
