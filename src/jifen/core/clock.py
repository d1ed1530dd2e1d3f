"""The injectable clock.

Every time-dependent decision (expiry, pending release, hold deadlines, birthdays) asks a
`Clock` for "now" instead of reading the system time, so tests move time rather than
sleep. All instants are timezone-aware UTC.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Protocol
from zoneinfo import ZoneInfo

from dateutil.relativedelta import relativedelta


class Clock(Protocol):
    def now(self) -> datetime:
        """The current instant, timezone-aware, in UTC."""
        ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class FrozenClock:
    """A clock that only moves when told to (tests, simulations, data generation)."""

    def __init__(self, at: datetime) -> None:
        self._now = ensure_utc(at)

    def now(self) -> datetime:
        return self._now

    def set(self, at: datetime) -> None:
        self._now = ensure_utc(at)

    def advance(self, delta: timedelta | None = None, /, **kwargs: float) -> datetime:
        self._now += delta if delta is not None else timedelta(**kwargs)
        return self._now


def ensure_utc(at: datetime) -> datetime:
    """Return `at` in UTC; refuse naive datetimes, whose meaning is a guess."""
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError(f"naive datetime {at.isoformat()} has no time zone")
    return at.astimezone(UTC)


def as_utc(at: datetime) -> datetime:
    """Attach UTC to a naive datetime read back from a store that drops the zone (SQLite)."""
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


def start_of_day(day: date, tz: ZoneInfo) -> datetime:
    """The first instant of local day `day` in zone `tz`, in UTC: where programme-local days
    (member days, daily limits, coupon validity, grace periods, expiry dates) begin and end.

    With fold=0 a midnight that a DST change skips resolves to the instant of the change
    (the day's first instant), and a repeated midnight to its first occurrence.
    """
    return datetime.combine(day, time(0), tzinfo=tz).astimezone(UTC)


def add_months(day: date, months: int) -> date:
    """`day` moved by whole months, the day of the month clamped to the month's length
    (31 March + 1 month = 30 April)."""
    moved: date = day + relativedelta(months=months)
    return moved
