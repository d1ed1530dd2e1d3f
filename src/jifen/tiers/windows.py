"""What the tier measures count, in time: the windows of a `Window` at an instant.

Pure: an instant, the programme's time zone and the policy's window in, UTC spans out.

- **Rolling** (`months: N`): from the start of the programme-local day N months before
  today, up to now. An amount dated on local day D counts through the local day
  D + N months, and stops counting the day after (`drops_out`).
- **Calendar** (`period: month | quarter | year`): the current local period for entering a
  tier (the deadline is its last day); for keeping one, the current and the previous
  period, each measure the better of the two, so a status earned this year holds through
  the next.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from jifen.core.clock import add_months, start_of_day
from jifen.programs.tiers import Window


@dataclass(frozen=True)
class Span:
    """[start, end) in UTC; `end` None: up to now (and anything dated a little ahead)."""

    start: datetime
    end: datetime | None = None

    def as_dict(self, tz: ZoneInfo) -> dict[str, str | None]:
        return {
            "from": self.start.astimezone(tz).date().isoformat(),
            "to": (self.end.astimezone(tz).date() - timedelta(days=1)).isoformat()
            if self.end is not None
            else None,
        }


@dataclass(frozen=True)
class Windows:
    enter: Span
    """What entering a tier counts (the current period, or the rolling window)."""
    keep: tuple[Span, ...]
    """What keeping a tier counts: the rolling window, or the current and previous period."""
    deadline: date | None
    """Calendar: the last local day of the current period (what is missing must come by
    then); rolling: None, nothing has a deadline."""
    period: str
    """The current period's key, for once-per-period notices: `2027`, `2027-Q1`,
    `2027-03`; for a rolling window, the local month."""


def period_start(day: date, period: str) -> date:
    if period == "month":
        return day.replace(day=1)
    if period == "quarter":
        return date(day.year, 3 * ((day.month - 1) // 3) + 1, 1)
    if period == "year":
        return date(day.year, 1, 1)
    raise ValueError(f"unknown period {period!r}")


def next_period(first: date, period: str) -> date:
    return add_months(first, {"month": 1, "quarter": 3, "year": 12}[period])


def period_key(day: date, period: str) -> str:
    if period == "month":
        return f"{day.year}-{day.month:02d}"
    if period == "quarter":
        return f"{day.year}-Q{(day.month - 1) // 3 + 1}"
    if period == "year":
        return str(day.year)
    raise ValueError(f"unknown period {period!r}")


def windows(window: Window, now: datetime, tz: ZoneInfo) -> Windows:
    today = now.astimezone(tz).date()
    if window.kind == "rolling":
        assert window.months is not None
        span = Span(start_of_day(add_months(today, -window.months), tz))
        return Windows(span, (span,), None, period_key(today, "month"))
    assert window.period is not None
    first = period_start(today, window.period)
    following = next_period(first, window.period)
    previous = add_months(first, -{"month": 1, "quarter": 3, "year": 12}[window.period])
    current = Span(start_of_day(first, tz))
    before = Span(start_of_day(previous, tz), start_of_day(first, tz))
    return Windows(
        current,
        (current, before),
        following - timedelta(days=1),
        period_key(today, window.period),
    )


def drops_out(window: Window, dated: datetime, tz: ZoneInfo) -> date | None:
    """The first local day an amount dated `dated` no longer counts (rolling windows)."""
    if window.kind != "rolling" or window.months is None:
        return None
    return add_months(dated.astimezone(tz).date(), window.months) + timedelta(days=1)
