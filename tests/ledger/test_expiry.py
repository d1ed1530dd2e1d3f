"""Points-expiry policy: exact expiry instants, computed by hand.

Unless a test says otherwise the programme's zone is Asia/Shanghai (UTC+8, no DST), so
local midnight at the start of day D is D-1 16:00 UTC. Every expected value is written as
a UTC literal.
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from jifen.ledger.expiry import (
    EXPIRY_POLICY,
    AfterInactivity,
    AfterMonths,
    ExpiryPolicy,
    FixedYearlyDate,
    NeverExpire,
    OnAnniversary,
    expires_at,
    inactivity_deadline,
)

SH = ZoneInfo("Asia/Shanghai")
NY = ZoneInfo("America/New_York")


def u(y: int, mo: int, d: int, h: int = 0, mi: int = 0) -> datetime:
    """A UTC instant."""
    return datetime(y, mo, d, h, mi, tzinfo=UTC)


# --- never ------------------------------------------------------------------------------


def test_never_expires() -> None:
    assert expires_at(NeverExpire(), earned_at=u(2026, 1, 15, 10), tz=SH) is None


# --- after_months -----------------------------------------------------------------------


def test_after_months_end_of_due_day() -> None:
    # Earned 2026-01-15 18:00 local; due 2027-01-15; end of it = 2027-01-16 00:00 +08:00.
    policy = AfterMonths(months=12)
    assert expires_at(policy, earned_at=u(2026, 1, 15, 10), tz=SH) == u(2027, 1, 15, 16)


def test_result_is_utc() -> None:
    result = expires_at(AfterMonths(months=12), earned_at=u(2026, 1, 15, 10), tz=SH)
    assert result is not None
    assert result.tzinfo is UTC


@pytest.mark.parametrize(
    ("earned_at", "expected"),
    [
        # local 2026-01-31 12:00 -> 31 Jan + 1 month = 28 Feb 2026 -> 2026-03-01 00:00 local
        (u(2026, 1, 31, 4), u(2026, 2, 28, 16)),
        # local 2026-01-31 04:00 although the UTC date is still 30 Jan
        (u(2026, 1, 30, 20), u(2026, 2, 28, 16)),
        # leap year: 31 Jan 2028 + 1 month = 29 Feb 2028 -> 2028-03-01 00:00 local
        (u(2028, 1, 31, 4), u(2028, 2, 29, 16)),
        # 31 Mar + 1 month = 30 Apr -> 2026-05-01 00:00 local
        (u(2026, 3, 31, 4), u(2026, 4, 30, 16)),
    ],
)
def test_after_months_month_end(earned_at: datetime, expected: datetime) -> None:
    assert expires_at(AfterMonths(months=1), earned_at=earned_at, tz=SH) == expected


@pytest.mark.parametrize(
    ("earned_at", "expected"),
    [
        # 2026-03-31 23:59 local: day 31 March -> due 30 April -> 2026-05-01 00:00 local
        (u(2026, 3, 31, 15, 59), u(2026, 4, 30, 16)),
        # 2026-04-01 00:00 local: already 1 April -> due 1 May -> 2026-05-02 00:00 local
        (u(2026, 3, 31, 16, 0), u(2026, 5, 1, 16)),
        # 2026-04-01 01:30 local (UTC still says 31 March) -> counts as 1 April
        (u(2026, 3, 31, 17, 30), u(2026, 5, 1, 16)),
    ],
)
def test_after_months_uses_the_local_date(earned_at: datetime, expected: datetime) -> None:
    assert expires_at(AfterMonths(months=1), earned_at=earned_at, tz=SH) == expected


def test_local_midnight_decides_the_quarter() -> None:
    policy = AfterMonths(months=12, round_to="quarter")
    # local 2026-03-31 23:59 -> due 2027-03-31, end of Q1 -> 2027-04-01 00:00 local
    assert expires_at(policy, earned_at=u(2026, 3, 31, 15, 59), tz=SH) == u(2027, 3, 31, 16)
    # local 2026-04-01 01:30 -> due 2027-04-01, end of Q2 -> 2027-07-01 00:00 local
    assert expires_at(policy, earned_at=u(2026, 3, 31, 17, 30), tz=SH) == u(2027, 6, 30, 16)


@pytest.mark.parametrize(
    ("round_to", "expected"),
    [
        ("none", u(2026, 5, 10, 16)),  # end of 2026-05-10
        ("month", u(2026, 5, 31, 16)),  # end of 2026-05-31
        ("quarter", u(2026, 6, 30, 16)),  # end of 2026-06-30
        ("year", u(2026, 12, 31, 16)),  # end of 2026-12-31
    ],
)
def test_round_to(round_to: Any, expected: datetime) -> None:
    # earned local 2026-02-10 10:00; + 3 months = 2026-05-10
    policy = AfterMonths(months=3, round_to=round_to)
    assert expires_at(policy, earned_at=u(2026, 2, 10, 2), tz=SH) == expected


@pytest.mark.parametrize(
    ("earned_at", "expected"),
    [
        # due 2026-01-05 (Q1) -> end of 2026-03-31
        (u(2025, 12, 5, 2), u(2026, 3, 31, 16)),
        # due 2026-04-01 (Q2) -> end of 2026-06-30
        (u(2026, 3, 1, 2), u(2026, 6, 30, 16)),
        # due 2026-08-15 (Q3) -> end of 2026-09-30
        (u(2026, 7, 15, 2), u(2026, 9, 30, 16)),
        # due 2026-12-01 (Q4) -> end of 2026-12-31
        (u(2026, 11, 1, 2), u(2026, 12, 31, 16)),
    ],
)
def test_round_to_quarter_each_quarter(earned_at: datetime, expected: datetime) -> None:
    policy = AfterMonths(months=1, round_to="quarter")
    assert expires_at(policy, earned_at=earned_at, tz=SH) == expected


def test_due_date_already_on_a_period_end_is_not_pushed() -> None:
    # local 2025-12-31; + 6 months = 2026-06-30 (31 June clamps to 30), the last day of Q2:
    # it stays in Q2 rather than moving to the end of Q3.
    policy = AfterMonths(months=6, round_to="quarter")
    assert expires_at(policy, earned_at=u(2025, 12, 31, 2), tz=SH) == u(2026, 6, 30, 16)
    # local 2026-03-30; + 3 months = 2026-06-30 again
    three = AfterMonths(months=3, round_to="quarter")
    assert expires_at(three, earned_at=u(2026, 3, 30, 2), tz=SH) == u(2026, 6, 30, 16)
    # local 2025-12-31; + 12 months = 2026-12-31, already the end of the year
    year = AfterMonths(months=12, round_to="year")
    assert expires_at(year, earned_at=u(2025, 12, 31, 2), tz=SH) == u(2026, 12, 31, 16)
    # local 2026-01-31; + 1 month = 2026-02-28, already the end of the month
    month = AfterMonths(months=1, round_to="month")
    assert expires_at(month, earned_at=u(2026, 1, 31, 2), tz=SH) == u(2026, 2, 28, 16)


# --- fixed_date -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("earned_at", "expected"),
    [
        # local 2025-02-10 09:00 -> end of 2026-12-31 = 2027-01-01 00:00 local
        (u(2025, 2, 10, 1), u(2026, 12, 31, 16)),
        # local 2025-12-31 23:59 -> still earned in 2025
        (u(2025, 12, 31, 15, 59), u(2026, 12, 31, 16)),
        # local 2026-01-01 00:01, though the UTC year is still 2025 -> end of 2027-12-31
        (u(2025, 12, 31, 16, 1), u(2027, 12, 31, 16)),
    ],
)
def test_fixed_date_end_of_year(earned_at: datetime, expected: datetime) -> None:
    policy = FixedYearlyDate(month=12, day=31)
    assert expires_at(policy, earned_at=earned_at, tz=SH) == expected


def test_fixed_date_29_february() -> None:
    policy = FixedYearlyDate(month=2, day=29)
    # earned local 2026 -> 2027 has no 29 Feb -> end of 2027-02-28 = 2027-03-01 00:00 local
    assert expires_at(policy, earned_at=u(2026, 5, 1, 2), tz=SH) == u(2027, 2, 28, 16)
    # earned local 2027 -> 2028 is a leap year -> end of 2028-02-29 = 2028-03-01 00:00 local
    assert expires_at(policy, earned_at=u(2027, 5, 1, 2), tz=SH) == u(2028, 2, 29, 16)


def test_fixed_date_years_after() -> None:
    policy = FixedYearlyDate(month=6, day=30, years_after=3)
    # earned local 2025-03-01 -> end of 2028-06-30
    assert expires_at(policy, earned_at=u(2025, 3, 1, 2), tz=SH) == u(2028, 6, 30, 16)


# --- inactivity -------------------------------------------------------------------------


def test_inactivity_without_later_activity() -> None:
    # earned local 2026-01-10 10:00 -> end of 2027-01-10
    policy = AfterInactivity(months=12)
    assert expires_at(policy, earned_at=u(2026, 1, 10, 2), tz=SH) == u(2027, 1, 10, 16)


def test_inactivity_deadline_moves_with_last_activity() -> None:
    policy = AfterInactivity(months=12)
    earned = u(2026, 1, 10, 2)
    # a spend on local 2026-05-20 pushes the lot to the end of 2027-05-20
    result = expires_at(policy, earned_at=earned, tz=SH, last_activity_at=u(2026, 5, 20, 3))
    assert result == u(2027, 5, 20, 16)
    # another on local 2026-09-02 (UTC 1 Sept 17:00) pushes it to the end of 2027-09-02
    result = expires_at(policy, earned_at=earned, tz=SH, last_activity_at=u(2026, 9, 1, 17))
    assert result == u(2027, 9, 2, 16)
    # an activity older than the lot itself does not shorten it
    result = expires_at(policy, earned_at=earned, tz=SH, last_activity_at=u(2025, 3, 1, 2))
    assert result == u(2027, 1, 10, 16)


@pytest.mark.parametrize(
    ("last_activity_at", "expected"),
    [
        # local 2026-08-01 02:00 (UTC still 31 July) + 6 months -> end of 2027-02-01
        (u(2026, 7, 31, 18), u(2027, 2, 1, 16)),
        # local 2026-07-31 23:00 + 6 months = 2027-01-31 -> end of it
        (u(2026, 7, 31, 15), u(2027, 1, 31, 16)),
        # local 2026-08-31 + 6 months = 2027-02-28 (clamped)
        (u(2026, 8, 31, 4), u(2027, 2, 28, 16)),
    ],
)
def test_inactivity_deadline(last_activity_at: datetime, expected: datetime) -> None:
    policy = AfterInactivity(months=6)
    assert inactivity_deadline(policy, last_activity_at=last_activity_at, tz=SH) == expected


# --- anniversary ------------------------------------------------------------------------

ENROLLED = u(2024, 6, 10, 2)  # local 2024-06-10 10:00


@pytest.mark.parametrize(
    ("earned_at", "expected"),
    [
        # before the enrolment date: membership year 0 -> start of 2025-06-10 local
        (u(2024, 5, 1, 2), u(2025, 6, 9, 16)),
        # on the enrolment day
        (u(2024, 6, 10, 3), u(2025, 6, 9, 16)),
        (u(2024, 12, 1, 2), u(2025, 6, 9, 16)),
        # local 2025-06-09 23:59, the last day of year 0 -> start of 2025-06-10 local
        (u(2025, 6, 9, 15, 59), u(2025, 6, 9, 16)),
        # local 2025-06-10 00:30 (UTC still 9 June): year 1 -> start of 2026-06-10 local
        (u(2025, 6, 9, 16, 30), u(2026, 6, 9, 16)),
        (u(2025, 6, 10, 4), u(2026, 6, 9, 16)),
    ],
)
def test_anniversary(earned_at: datetime, expected: datetime) -> None:
    result = expires_at(OnAnniversary(), earned_at=earned_at, tz=SH, enrolled_at=ENROLLED)
    assert result == expected


def test_anniversary_years_2() -> None:
    policy = OnAnniversary(years=2)
    # local 2025-06-09: year 0 -> anniversary 2 = 2026-06-10
    result = expires_at(policy, earned_at=u(2025, 6, 9, 4), tz=SH, enrolled_at=ENROLLED)
    assert result == u(2026, 6, 9, 16)
    # local 2025-06-10: year 1 -> anniversary 3 = 2027-06-10
    result = expires_at(policy, earned_at=u(2025, 6, 10, 4), tz=SH, enrolled_at=ENROLLED)
    assert result == u(2027, 6, 9, 16)


def test_anniversary_uses_the_local_enrolment_date() -> None:
    # enrolled 2024-06-09 17:00 UTC = local 2024-06-10 01:00: anniversaries are on 10 June
    enrolled = u(2024, 6, 9, 17)
    result = expires_at(OnAnniversary(), earned_at=u(2025, 6, 9, 4), tz=SH, enrolled_at=enrolled)
    assert result == u(2025, 6, 9, 16)


@pytest.mark.parametrize(
    ("earned_at", "expected"),
    [
        # local 2025-02-27: year 0; anniversary 1 is 2025-02-28 (no 29 Feb in 2025)
        (u(2025, 2, 27, 4), u(2025, 2, 27, 16)),
        # local 2025-02-28: the anniversary itself, year 1 -> anniversary 2 = 2026-02-28
        (u(2025, 2, 28, 4), u(2026, 2, 27, 16)),
        # local 2027-03-01: year 3 (from 2027-02-28) -> anniversary 4 = 2028-02-29
        (u(2027, 3, 1, 4), u(2028, 2, 28, 16)),
        # local 2028-02-28: still year 3, since anniversary 4 is 29 Feb in 2028
        (u(2028, 2, 28, 4), u(2028, 2, 28, 16)),
        # local 2028-02-29: year 4 -> anniversary 5 = 2029-02-28
        (u(2028, 2, 29, 4), u(2029, 2, 27, 16)),
    ],
)
def test_anniversary_enrolled_29_february(earned_at: datetime, expected: datetime) -> None:
    enrolled = u(2024, 2, 29, 4)  # local 2024-02-29 12:00
    result = expires_at(OnAnniversary(), earned_at=earned_at, tz=SH, enrolled_at=enrolled)
    assert result == expected


def test_anniversary_needs_enrolled_at() -> None:
    with pytest.raises(ValueError, match="enrolled_at"):
        expires_at(OnAnniversary(), earned_at=u(2025, 6, 9, 4), tz=SH)


# --- other zones ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("earned_at", "expected"),
    [
        # New York, spring forward on Sunday 2026-03-08 at 02:00.
        # local 2026-02-07 12:00 EST -> due 2026-03-07 -> 2026-03-08 00:00 EST (UTC-5)
        (u(2026, 2, 7, 17), u(2026, 3, 8, 5)),
        # local 2026-02-08 12:00 EST -> due 2026-03-08 -> 2026-03-09 00:00 EDT (UTC-4)
        (u(2026, 2, 8, 17), u(2026, 3, 9, 4)),
        # fall back on Sunday 2026-11-01 at 02:00.
        # local 2026-09-30 23:30 EDT (UTC already 1 Oct) -> due 2026-10-30
        # -> 2026-10-31 00:00 EDT (UTC-4)
        (u(2026, 10, 1, 3, 30), u(2026, 10, 31, 4)),
        # local 2026-10-01 12:00 EDT -> due 2026-11-01 -> 2026-11-02 00:00 EST (UTC-5)
        (u(2026, 10, 1, 16), u(2026, 11, 2, 5)),
        # local 2026-10-01 23:30 EDT (UTC already 2 Oct) -> due 2026-11-01 likewise
        (u(2026, 10, 2, 3, 30), u(2026, 11, 2, 5)),
        # local 2026-10-02 -> due 2026-11-02 -> 2026-11-03 00:00 EST (UTC-5)
        (u(2026, 10, 2, 16), u(2026, 11, 3, 5)),
    ],
)
def test_local_midnight_in_new_york_across_dst(earned_at: datetime, expected: datetime) -> None:
    result = expires_at(AfterMonths(months=1), earned_at=earned_at, tz=NY)
    assert result == expected
    assert result.astimezone(NY).time() == time(0)


def test_fixed_dates_either_side_of_the_fall_back_in_new_york() -> None:
    # 1 November 2026 is a 25-hour day in New York.
    earned = u(2025, 6, 1, 16)  # local 2025-06-01 12:00 EDT
    oct31 = FixedYearlyDate(month=10, day=31)
    nov1 = FixedYearlyDate(month=11, day=1)
    # end of 2026-10-31 = 2026-11-01 00:00 EDT (UTC-4)
    assert expires_at(oct31, earned_at=earned, tz=NY) == u(2026, 11, 1, 4)
    # end of 2026-11-01 = 2026-11-02 00:00 EST (UTC-5), 25 hours later
    assert expires_at(nov1, earned_at=earned, tz=NY) == u(2026, 11, 2, 5)


def test_fixed_offset_would_be_wrong_in_new_york() -> None:
    # earned in winter (EST), expiring in summer (EDT): the offset of earned_at is not used
    earned = u(2026, 1, 15, 17)  # local 2026-01-15 12:00 EST
    result = expires_at(AfterMonths(months=6), earned_at=earned, tz=NY)
    assert result == u(2026, 7, 16, 4)  # 2026-07-16 00:00 EDT, not 05:00 UTC


def test_midnight_skipped_by_dst_is_the_first_instant_of_the_day() -> None:
    # Chile sprang forward at local midnight on 2019-09-08 (00:00 -04 -> 01:00 -03); the
    # day's first instant is 01:00 -03 = 04:00 UTC.
    santiago = ZoneInfo("America/Santiago")
    # local 2019-08-07 12:00 -04 -> due 2019-09-07 -> start of 2019-09-08
    result = expires_at(AfterMonths(months=1), earned_at=u(2019, 8, 7, 16), tz=santiago)
    assert result == u(2019, 9, 8, 4)
    assert result.astimezone(santiago).date().isoformat() == "2019-09-08"
    assert (result - timedelta(microseconds=1)).astimezone(santiago).date().isoformat() == (
        "2019-09-07"
    )


def test_aware_non_utc_input_is_accepted() -> None:
    earned = u(2026, 1, 15, 10).astimezone(SH)  # same instant, +08:00
    assert expires_at(AfterMonths(months=12), earned_at=earned, tz=SH) == u(2027, 1, 15, 16)


# --- naive input ------------------------------------------------------------------------

NAIVE = datetime(2026, 1, 15, 10)


@pytest.mark.parametrize(
    "policy",
    [
        NeverExpire(),
        AfterMonths(months=1),
        FixedYearlyDate(month=12, day=31),
        AfterInactivity(months=1),
        OnAnniversary(),
    ],
)
def test_naive_earned_at_refused(policy: ExpiryPolicy) -> None:
    with pytest.raises(ValueError, match="naive"):
        expires_at(policy, earned_at=NAIVE, tz=SH, enrolled_at=ENROLLED)


def test_naive_other_inputs_refused() -> None:
    with pytest.raises(ValueError, match="naive"):
        expires_at(OnAnniversary(), earned_at=u(2026, 1, 1), tz=SH, enrolled_at=NAIVE)
    with pytest.raises(ValueError, match="naive"):
        expires_at(
            AfterInactivity(months=1), earned_at=u(2026, 1, 1), tz=SH, last_activity_at=NAIVE
        )
    with pytest.raises(ValueError, match="naive"):
        inactivity_deadline(AfterInactivity(months=1), last_activity_at=NAIVE, tz=SH)


# --- schema -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"kind": "never"}, NeverExpire()),
        ({"kind": "after_months", "months": 24}, AfterMonths(months=24)),
        (
            {"kind": "after_months", "months": 24, "round_to": "quarter"},
            AfterMonths(months=24, round_to="quarter"),
        ),
        ({"kind": "fixed_date", "month": 2, "day": 29}, FixedYearlyDate(month=2, day=29)),
        (
            {"kind": "fixed_date", "month": 12, "day": 31, "years_after": 2},
            FixedYearlyDate(month=12, day=31, years_after=2),
        ),
        ({"kind": "inactivity", "months": 240}, AfterInactivity(months=240)),
        ({"kind": "anniversary"}, OnAnniversary(years=1)),
        ({"kind": "anniversary", "years": 10}, OnAnniversary(years=10)),
    ],
)
def test_parse(data: dict[str, Any], expected: ExpiryPolicy) -> None:
    parsed = EXPIRY_POLICY.validate_python(data)
    assert parsed == expected
    assert type(parsed) is type(expected)
    assert EXPIRY_POLICY.validate_json(EXPIRY_POLICY.dump_json(parsed)) == parsed


@pytest.mark.parametrize(
    "data",
    [
        {"kind": "after_months", "months": 0},
        {"kind": "after_months", "months": 241},
        {"kind": "after_months"},
        {"kind": "after_months", "months": 12, "round_to": "week"},
        {"kind": "after_months", "months": "12"},
        {"kind": "after_months", "months": True},
        {"kind": "inactivity", "months": 0},
        {"kind": "fixed_date", "month": 4, "day": 31},
        {"kind": "fixed_date", "month": 2, "day": 30},
        {"kind": "fixed_date", "month": 13, "day": 1},
        {"kind": "fixed_date", "month": 12, "day": 31, "years_after": 0},
        {"kind": "fixed_date", "month": 12, "day": 31, "years_after": 11},
        {"kind": "anniversary", "years": 0},
        {"kind": "rolling"},
        {"months": 12},
        {"kind": "never", "months": 12},
        {"kind": "after_months", "months": 12, "grace_days": 30},
    ],
)
def test_invalid_policy_refused(data: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        EXPIRY_POLICY.validate_python(data)


def test_fixed_date_31_april_message() -> None:
    with pytest.raises(ValidationError, match="not a date"):
        EXPIRY_POLICY.validate_python({"kind": "fixed_date", "month": 4, "day": 31})


def test_policies_are_frozen() -> None:
    policy = AfterMonths(months=12)
    with pytest.raises(ValidationError):
        policy.months = 6  # type: ignore[misc]


# --- describe ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("policy", "zh", "en"),
    [
        (NeverExpire(), "积分永不过期", "Points never expire"),
        (
            AfterMonths(months=24, round_to="quarter"),
            "获得后 24 个月到期，取整到季度末",
            "24 months after earning, rounded up to the end of the quarter",
        ),
        (AfterMonths(months=1), "获得后 1 个月到期", "1 month after earning"),
        (
            AfterMonths(months=6, round_to="year"),
            "获得后 6 个月到期，取整到年末",
            "6 months after earning, rounded up to the end of the year",
        ),
        (
            FixedYearlyDate(month=12, day=31),
            "当年获得的积分于次年 12 月 31 日结束时到期",
            "Points earned in a calendar year expire at the end of 31 December of the "
            "following year",
        ),
        (
            FixedYearlyDate(month=2, day=29, years_after=2),
            "当年获得的积分于2 年后 2 月 29 日（非闰年为 2 月 28 日）结束时到期",
            "Points earned in a calendar year expire at the end of 29 February "
            "(28 February in non-leap years) of the year 2 years later",
        ),
        (
            AfterInactivity(months=12),
            "连续 12 个月无活动（获得或使用积分）后，全部积分到期",
            "All points expire after 12 months without activity (earning or spending)",
        ),
        (
            OnAnniversary(),
            "积分于获得时所在会员年度结束时（入会周年日）到期",
            "Points expire at the end of the membership year in which they were earned "
            "(on the enrolment anniversary)",
        ),
        (
            OnAnniversary(years=2),
            "积分于获得时所在会员年度开始后的第 2 个入会周年日到期",
            "Points expire on the 2nd enrolment anniversary after the start of the "
            "membership year in which they were earned",
        ),
    ],
)
def test_describe(policy: ExpiryPolicy, zh: str, en: str) -> None:
    assert policy.describe() == zh
    assert policy.describe("zh-CN") == zh
    assert policy.describe("en") == en
    assert policy.describe("fr") == en  # unknown languages fall back to English


# --- properties -------------------------------------------------------------------------

ZONES = st.sampled_from(
    [SH, NY, ZoneInfo("UTC"), ZoneInfo("Asia/Kolkata"), ZoneInfo("Australia/Lord_Howe")]
)
INSTANTS = st.datetimes(
    min_value=datetime(1990, 1, 1), max_value=datetime(2200, 12, 31), timezones=st.just(UTC)
)
AFTER_MONTHS = st.builds(
    AfterMonths,
    months=st.integers(min_value=1, max_value=240),
    round_to=st.sampled_from(["none", "month", "quarter", "year"]),
)


@given(policy=AFTER_MONTHS, tz=ZONES, a=INSTANTS, b=INSTANTS)
def test_after_months_properties(
    policy: AfterMonths, tz: ZoneInfo, a: datetime, b: datetime
) -> None:
    early, late = sorted((a, b))
    exp_early = expires_at(policy, earned_at=early, tz=tz)
    exp_late = expires_at(policy, earned_at=late, tz=tz)
    assert exp_early is not None
    assert exp_late is not None
    for earned, exp in ((early, exp_early), (late, exp_late)):
        assert exp.tzinfo is UTC
        assert exp > earned
        assert exp.astimezone(tz).time() == time(0)
    assert exp_early <= exp_late


ANY_EXPIRING = st.one_of(
    AFTER_MONTHS,
    st.builds(
        FixedYearlyDate,
        month=st.just(2),
        day=st.integers(min_value=1, max_value=29),
        years_after=st.integers(min_value=1, max_value=10),
    ),
    st.builds(
        FixedYearlyDate,
        month=st.integers(min_value=1, max_value=12),
        day=st.integers(min_value=1, max_value=28),
        years_after=st.integers(min_value=1, max_value=10),
    ),
    st.builds(AfterInactivity, months=st.integers(min_value=1, max_value=240)),
    st.builds(OnAnniversary, years=st.integers(min_value=1, max_value=10)),
)


@given(policy=ANY_EXPIRING, tz=ZONES, enrolled=INSTANTS, a=INSTANTS, b=INSTANTS)
def test_every_policy_expires_after_earning_monotonically(
    policy: ExpiryPolicy, tz: ZoneInfo, enrolled: datetime, a: datetime, b: datetime
) -> None:
    early, late = sorted((a, b))
    exp_early = expires_at(policy, earned_at=early, tz=tz, enrolled_at=enrolled)
    exp_late = expires_at(policy, earned_at=late, tz=tz, enrolled_at=enrolled)
    assert exp_early is not None
    assert exp_late is not None
    assert exp_early > early
    assert exp_late > late
    assert exp_early <= exp_late
    assert exp_late.astimezone(tz).time() == time(0)
