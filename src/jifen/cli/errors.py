"""Failures as the user sees them: one line on stderr and an exit status, never a traceback.

`translate` turns whatever a command raised into a `Failure`; the root command
(`jifen.cli.root.JifenGroup`) calls it and prints the line.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer
from pydantic import ValidationError
from sqlalchemy.exc import DBAPIError

from jifen.cli.messages import language, say
from jifen.core.errors import JifenError

if TYPE_CHECKING:
    from jifen.cli.state import State


class Failure(typer.TyperException):
    """A refused command: one line on stderr, exit status 1."""

    exit_code = 1


class UsageFailure(typer.TyperException):
    """A command line that makes no sense: one line on stderr, exit status 2."""

    exit_code = 2

    def __init__(self, message: str, ctx: typer.Context) -> None:
        super().__init__(message)
        self.ctx = ctx


def one_line(text: str) -> str:
    return " ".join(part.strip() for part in str(text).splitlines() if part.strip())


def db_reason(exc: DBAPIError) -> str:
    """What the database driver said, on one line."""
    return one_line(str(exc.orig) if exc.orig is not None else str(exc)) or type(exc).__name__


def validation_message(exc: ValidationError) -> str:
    """The first problem pydantic found, as `field: what is wrong`."""
    error = exc.errors()[0]
    where = ".".join(str(part) for part in error["loc"])
    text = str(error["msg"]).removeprefix("Value error, ")
    return one_line(f"{where}: {text}" if where else text)


def translate(exc: Exception, state: State | None) -> Failure:
    if isinstance(exc, JifenError):
        return Failure(one_line(exc.message(language())))
    if isinstance(exc, ValidationError):  # also invalid JIFEN_* settings: no URL to show then
        return Failure(validation_message(exc))
    if isinstance(exc, DBAPIError):
        url = state.shown_url if state is not None else "?"
        return Failure(say("db-error", url=url, reason=db_reason(exc)))
    if isinstance(exc, OSError):
        return Failure(one_line(f"{exc.strerror or exc}: {exc.filename or ''}".rstrip(": ")))
    return Failure(say("internal", kind=type(exc).__name__, reason=one_line(str(exc))))
