"""Points-expiry policy: the schema a programme configures, and when a lot expires under it.

What this module guarantees:

- It is pure: no I/O, no clock reads, no global state. Every instant is passed in, and the
  same arguments always give the same answer.
- Every instant it accepts must be timezone-aware (a naive datetime raises `ValueError`);
  every instant it returns is timezone-aware UTC.
- Every expiry falls at a *local midnight* in the programme's time zone, computed with the
  zone's own rules (so across daylight-saving changes, not by a fixed offset). "Expires at
  the end of local day D" means the returned instant is the start of local day D+1; a lot
  is spendable strictly before that instant and expired at it.
- Month arithmetic follows `dateutil.relativedelta`: adding months keeps the day of month,
  clamped to the month's last day (31 Jan + 1 month = 28 Feb, or 29 Feb in a leap year).
- 29 February, as a fixed expiry date or as an enrolment date, becomes 28 February in a
  year that has no 29 February.
- For a policy, a later `earned_at` never gives an earlier expiry, and an expiry is always
  strictly after the `earned_at` it was computed for (and, for inactivity, strictly after
  the last activity).

The policy schema is a discriminated union on `kind`; parse stored configuration with
`EXPIRY_POLICY.validate_python(...)` or `EXPIRY_POLICY.validate_json(...)`. Models are
frozen and refuse unknown fields; numbers must be real integers (no strings, no booleans).
"""

from __future__ import annotations

import calendar
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Literal, TypeAlias
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, StrictInt, TypeAdapter, model_validator

from jifen.core.clock import add_months, start_of_day

__all__ = [
    "EXPIRY_POLICY",
    "AfterInactivity",
    "AfterMonths",
    "ExpiryPolicy",
    "FixedYearlyDate",
    "NeverExpire",
    "OnAnniversary",
    "RoundTo",
    "expires_at",
    "inactivity_deadline",
]

RoundTo: TypeAlias = Literal["none", "month", "quarter", "year"]

_MONTHS_EN = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)


_ROUND_ZH: dict[str, str] = {"none": "", "month": "月末", "quarter": "季度末", "year": "年末"}


def _zh(lang: str) -> bool:
    # Same convention as jifen.core.errors: zh-CN when asked for, English otherwise.
    return lang == "zh-CN"


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


class NeverExpire(BaseModel):
    """Points never expire."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["never"] = "never"

    def describe(self, lang: str = "zh-CN") -> str:
        return "积分永不过期" if _zh(lang) else "Points never expire"


class AfterMonths(BaseModel):
    """Each lot expires `months` after the local day it was earned, optionally rounded up."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["after_months"] = "after_months"
    months: Annotated[StrictInt, Field(ge=1, le=240)]
    round_to: RoundTo = "none"

    def describe(self, lang: str = "zh-CN") -> str:
        if _zh(lang):
            suffix = _ROUND_ZH[self.round_to]
            return f"获得后 {self.months} 个月到期" + (f"，取整到{suffix}" if suffix else "")
        text = f"{_plural(self.months, 'month')} after earning"
        if self.round_to != "none":
            text += f", rounded up to the end of the {self.round_to}"
        return text


class FixedYearlyDate(BaseModel):
    """Lots earned in local calendar year Y expire at the end of (month, day) of Y + years_after."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["fixed_date"] = "fixed_date"
    month: Annotated[StrictInt, Field(ge=1, le=12)]
    day: Annotated[StrictInt, Field(ge=1, le=31)]
    years_after: Annotated[StrictInt, Field(ge=1, le=10)] = 1

    @model_validator(mode="after")
    def _real_date(self) -> FixedYearlyDate:
        # 2024 is a leap year: 29 February is allowed, 31 April is not.
        try:
            date(2024, self.month, self.day)
        except ValueError:
            raise ValueError(f"{self.month}-{self.day} is not a date (month-day)") from None
        return self

    def describe(self, lang: str = "zh-CN") -> str:
        leap = self.month == 2 and self.day == 29
        if _zh(lang):
            year = "次年" if self.years_after == 1 else f"{self.years_after} 年后"
            note = "（非闰年为 2 月 28 日）" if leap else ""
            return f"当年获得的积分于{year} {self.month} 月 {self.day} 日{note}结束时到期"
        year = (
            "the following year"
            if self.years_after == 1
            else f"the year {_plural(self.years_after, 'year')} later"
        )
        note = " (28 February in non-leap years)" if leap else ""
        return (
            "Points earned in a calendar year expire at the end of "
            f"{self.day} {_MONTHS_EN[self.month - 1]}{note} of {year}"
        )


class AfterInactivity(BaseModel):
    """All of a member's points expire `months` after the member's last earn or spend."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["inactivity"] = "inactivity"
    months: Annotated[StrictInt, Field(ge=1, le=240)]

    def describe(self, lang: str = "zh-CN") -> str:
        if _zh(lang):
            return f"连续 {self.months} 个月无活动（获得或使用积分）后，全部积分到期"
        return (
            f"All points expire after {_plural(self.months, 'month')} "
            "without activity (earning or spending)"
        )


class OnAnniversary(BaseModel):
    """Lots expire on an enrolment anniversary, `years` after their membership year began."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["anniversary"] = "anniversary"
    years: Annotated[StrictInt, Field(ge=1, le=10)] = 1

    def describe(self, lang: str = "zh-CN") -> str:
        if _zh(lang):
            if self.years == 1:
                return "积分于获得时所在会员年度结束时（入会周年日）到期"
            return f"积分于获得时所在会员年度开始后的第 {self.years} 个入会周年日到期"
        if self.years == 1:
            return (
                "Points expire at the end of the membership year in which they were earned "
                "(on the enrolment anniversary)"
            )
        return (
            f"Points expire on the {_ordinal(self.years)} enrolment anniversary after the "
            "start of the membership year in which they were earned"
        )


ExpiryPolicy: TypeAlias = Annotated[
    NeverExpire | AfterMonths | FixedYearlyDate | AfterInactivity | OnAnniversary,
    Field(discriminator="kind"),
]

EXPIRY_POLICY: TypeAdapter[ExpiryPolicy] = TypeAdapter(ExpiryPolicy)


# --- local calendar helpers -------------------------------------------------------------


def _aware(at: datetime, name: str) -> datetime:
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError(f"{name} is a naive datetime ({at.isoformat()}); give a time zone")
    return at.astimezone(UTC)


def _local_date(at: datetime, tz: ZoneInfo) -> date:
    return at.astimezone(tz).date()


def _end_of_local_day(d: date, tz: ZoneInfo) -> datetime:
    return start_of_day(d + timedelta(days=1), tz)


def _clamped(year: int, month: int, day: int) -> date:
    return date(year, month, min(day, calendar.monthrange(year, month)[1]))


def _rounded_up(d: date, round_to: RoundTo) -> date:
    if round_to == "none":
        return d
    if round_to == "month":
        last_month = d.month
    elif round_to == "quarter":
        last_month = (d.month + 2) // 3 * 3
    else:
        last_month = 12
    return date(d.year, last_month, calendar.monthrange(d.year, last_month)[1])


def _anniversary(enrolled: date, k: int) -> date:
    return _clamped(enrolled.year + k, enrolled.month, enrolled.day)


# --- public functions -------------------------------------------------------------------


def inactivity_deadline(
    policy: AfterInactivity, *, last_activity_at: datetime, tz: ZoneInfo
) -> datetime:
    """When all of a member's points expire if there is no activity after `last_activity_at`.

    The end of the local day that is `policy.months` after the local date of the last
    activity (relativedelta month arithmetic), i.e. local midnight at the start of the next
    day, in UTC. Every earn or spend moves the deadline for every lot of the member.
    """
    last = _aware(last_activity_at, "last_activity_at")
    return _end_of_local_day(add_months(_local_date(last, tz), policy.months), tz)


def expires_at(
    policy: ExpiryPolicy,
    *,
    earned_at: datetime,
    tz: ZoneInfo,
    enrolled_at: datetime | None = None,
    last_activity_at: datetime | None = None,
) -> datetime | None:
    """The instant (UTC) at which a lot earned at `earned_at` expires; None if never.

    `tz` is the programme's time zone; every date below is a local date in it.

    - never: None.
    - after_months: the local date of `earned_at` plus `months`; rounded up to the last day
      of its month, calendar quarter or year when `round_to` says so; expires at the end of
      that day.
    - fixed_date: earned in local year Y, expires at the end of (month, day) in year
      Y + years_after (29 Feb is 28 Feb in a common year).
    - inactivity: as `inactivity_deadline` from max(earned_at, last_activity_at); the
      caller passes the member's latest activity and recomputes every lot when it changes.
    - anniversary: needs `enrolled_at` (ValueError otherwise). Anniversary k is the local
      enrolment date moved k years on (29 Feb -> 28 Feb in common years). The lot belongs
      to membership year k, the one with anniversary k <= earned date < anniversary k+1
      (k = 0 if earned before the enrolment date), and expires at local midnight at the
      *start* of anniversary k+years: it is valid through the day before that anniversary,
      so with years=1 it lasts to the end of the membership year in which it was earned,
      and points earned on an anniversary belong to the membership year that begins then.

    `enrolled_at` and `last_activity_at` are ignored by the policies that do not use them,
    but must be timezone-aware when given.
    """
    earned = _aware(earned_at, "earned_at")
    enrolled = None if enrolled_at is None else _aware(enrolled_at, "enrolled_at")
    last = None if last_activity_at is None else _aware(last_activity_at, "last_activity_at")
    earned_date = _local_date(earned, tz)

    match policy:
        case NeverExpire():
            return None
        case AfterMonths(months=months, round_to=round_to):
            due = _rounded_up(add_months(earned_date, months), round_to)
            return _end_of_local_day(due, tz)
        case FixedYearlyDate(month=month, day=day, years_after=years_after):
            due = _clamped(earned_date.year + years_after, month, day)
            return _end_of_local_day(due, tz)
        case AfterInactivity():
            latest = earned if last is None else max(earned, last)
            return inactivity_deadline(policy, last_activity_at=latest, tz=tz)
        case OnAnniversary(years=years):
            if enrolled is None:
                raise ValueError("an anniversary expiry policy needs enrolled_at")
            enrolled_date = _local_date(enrolled, tz)
            k = max(earned_date.year - enrolled_date.year, 0)
            if k > 0 and _anniversary(enrolled_date, k) > earned_date:
                k -= 1
            return start_of_day(_anniversary(enrolled_date, k + years), tz)
    raise TypeError(f"not an expiry policy: {policy!r}")  # pragma: no cover
