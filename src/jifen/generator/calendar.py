"""Days, seasons and local time for the generator.

`day_factors` gives each day its relative amount of shopping (month, weekday, holidays:
the Spring Festival, 618, National Day, 双十一, 双十二). `Timeline` turns local wall
times of the programme's zone into UTC instants and UTC instants into ISO 8601 text with
the zone's offset at that instant, vectorised, for any IANA zone (DST included).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from jifen.generator.shape import SPRING_FESTIVAL, Shape

Ints = npt.NDArray[np.int64]
Floats = npt.NDArray[np.float64]
DAY = 86_400
HOUR = 3_600
_EPOCH = date(1970, 1, 1)


def holiday_factors(day: date, shape: Shape) -> float:
    """The product of the holiday factors that apply on `day`."""
    factors = dict(shape.holidays)
    found = 1.0
    new_year = SPRING_FESTIVAL.get(day.year)
    next_new_year = SPRING_FESTIVAL.get(day.year + 1)
    for festival in (new_year, next_new_year):
        if festival is None:
            continue
        before = (festival - day).days
        if 1 <= before <= 14:  # 年货: shopping for the New Year
            found *= factors.get("spring-festival-eve", 1.0)
        elif 0 <= -before <= 6:  # the holiday week: many shops shut, people travel
            found *= factors.get("spring-festival", 1.0)
    month_day = (day.month, day.day)
    if day.month == 6 and day.day < 18:
        found *= factors.get("618-run-up", 1.0)
    elif month_day == (6, 18):
        found *= factors.get("618", 1.0)
    elif day.month == 10 and day.day <= 7:
        found *= factors.get("national-day", 1.0)
    elif day.month == 11 and day.day < 11:
        found *= factors.get("11.11-run-up", 1.0)
    elif month_day == (11, 11):
        found *= factors.get("11.11", 1.0)
    elif month_day == (12, 12):
        found *= factors.get("12.12", 1.0)
    return found


def day_factors(first: date, days: int, shape: Shape) -> Floats:
    """Relative shopping on each of `days` days from `first`: month × weekday × holidays."""
    found = np.empty(days, dtype=np.float64)
    for i in range(days):
        day = first + timedelta(days=i)
        found[i] = (
            shape.month_weights[day.month - 1]
            * shape.weekday_weights[day.weekday()]
            * holiday_factors(day, shape)
        )
    return found


class Timeline:
    """Local days `first` … `last` (inclusive) in zone `tz`.

    Instants are int64 seconds since the Unix epoch (UTC); a local wall time is a day
    index (0 = `first`) and a second of that day."""

    def __init__(self, first: date, last: date, tz: ZoneInfo) -> None:
        self.first = first
        self.days = (last - first).days + 1
        self.tz = tz
        self.wall0 = (first - _EPOCH).days * DAY
        # the zone's offset at each local hour (wall → UTC) …
        self._wall_offsets = np.empty((self.days, 24), dtype=np.int64)
        for i in range(self.days):
            day = first + timedelta(days=i)
            for hour in range(24):
                offset = datetime(day.year, day.month, day.day, hour, tzinfo=tz).utcoffset()
                assert offset is not None
                self._wall_offsets[i, hour] = int(offset.total_seconds())
        # … and at each UTC hour (UTC → wall), a day either side for the zones' offsets
        self.utc0 = self.wall0 - DAY
        hours = (self.days + 2) * 24
        self._utc_offsets = np.empty(hours, dtype=np.int64)
        for hour in range(hours):
            at = datetime.fromtimestamp(self.utc0 + hour * HOUR, UTC)
            offset = at.astimezone(tz).utcoffset()
            assert offset is not None
            self._utc_offsets[hour] = int(offset.total_seconds())
        kinds = np.unique(self._utc_offsets)
        self._offset_kinds = kinds
        self._offset_text = pa.array([_offset_text(int(s)) for s in kinds], pa.string())
        self._day_text = pa.array(
            [(first + timedelta(days=i)).isoformat() + "T" for i in range(-1, self.days + 1)],
            pa.string(),
        )
        self._clock_text = pa.array(
            [f"{s // HOUR:02d}:{s // 60 % 60:02d}:{s % 60:02d}" for s in range(DAY)], pa.string()
        )

    def start(self) -> int:
        """The first instant of the first day (UTC seconds)."""
        return int(self.utc(np.zeros(1, np.int64), np.zeros(1, np.int64))[0])

    def end(self) -> int:
        """The last second of the last day (UTC seconds)."""
        last = np.full(1, self.days - 1, np.int64)
        return int(self.utc(last, np.full(1, DAY - 1, np.int64))[0])

    def utc(self, day: Ints, second: Ints) -> Ints:
        """The instants of local wall times (a time a DST change skips resolves like
        zoneinfo's fold=0: with the offset before the change)."""
        offsets = self._wall_offsets[day, second // HOUR]
        result: Ints = self.wall0 + day * DAY + second - offsets
        return result

    def offsets(self, utc: Ints) -> Ints:
        """The zone's UTC offset (seconds) at each instant."""
        hours = np.clip((utc - self.utc0) // HOUR, 0, len(self._utc_offsets) - 1)
        found: Ints = self._utc_offsets[hours]
        return found

    def local_day(self, utc: Ints) -> Ints:
        """The local day index of each instant."""
        found: Ints = (utc + self.offsets(utc) - self.wall0) // DAY
        return found

    def iso(self, utc: Ints) -> pa.Array:
        """Each instant as local ISO 8601 text with its offset: 2025-11-11T20:15:33+08:00."""
        offsets = self.offsets(utc)
        wall = utc + offsets - self.wall0
        days = np.clip(wall // DAY + 1, 0, len(self._day_text) - 1)
        seconds = wall % DAY
        kinds = np.searchsorted(self._offset_kinds, offsets)
        return pc.binary_join_element_wise(
            self._day_text.take(pa.array(days)),
            self._clock_text.take(pa.array(seconds)),
            self._offset_text.take(pa.array(kinds)),
            "",
        )


def _offset_text(seconds: int) -> str:
    sign = "-" if seconds < 0 else "+"
    minutes = abs(seconds) // 60
    return f"{sign}{minutes // 60:02d}:{minutes % 60:02d}"
