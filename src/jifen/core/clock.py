"""The injectable clock.

Every time-dependent decision (expiry, pending release, hold deadlines, birthdays) asks a
`Clock` for "now" instead of reading the system time, so tests move time rather than
sleep. All instants are timezone-aware UTC.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Protocol


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
