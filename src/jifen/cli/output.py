"""Where commands print: Rich consoles for stdout and stderr, and local times."""

from __future__ import annotations

import os
import sys
from datetime import datetime
from zoneinfo import ZoneInfo

from rich.console import Console

from jifen.core.clock import as_utc


def _console(stderr: bool) -> Console:
    # Piped output is not cut at 80 columns (COLUMNS still wins when set).
    stream = sys.stderr if stderr else sys.stdout
    wide = not stream.isatty() and "COLUMNS" not in os.environ
    return Console(
        stderr=stderr,
        markup=False,
        emoji=False,
        highlight=False,
        soft_wrap=True,
        width=200 if wide else None,
    )


def out() -> Console:
    return _console(stderr=False)


def err() -> Console:
    return _console(stderr=True)


def local(at: datetime | None, tz: ZoneInfo) -> str:
    """`at` as the programme's wall-clock time, to the minute; a dash for none."""
    return "—" if at is None else as_utc(at).astimezone(tz).strftime("%Y-%m-%d %H:%M")
