"""The import's shortcuts give what the slow paths they stand for give: the dates of a
batch's lots worked out once per day (`jifen.ledger.bulk.LotDates`) equal the book's."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from jifen.ledger.bulk import LotDates
from jifen.ledger.expiry import (
    AfterInactivity,
    AfterMonths,
    ExpiryPolicy,
    FixedYearlyDate,
    NeverExpire,
    OnAnniversary,
)
from jifen.ledger.models import Account
from jifen.ledger.posting import Book

POLICIES: list[ExpiryPolicy] = [
    NeverExpire(),
    AfterMonths(months=24, round_to="month"),
    AfterMonths(months=1),
    AfterMonths(months=13, round_to="quarter"),
    FixedYearlyDate(month=2, day=29, years_after=1),
    AfterInactivity(months=6),
    OnAnniversary(years=1),
]


@pytest.mark.parametrize("policy", POLICIES, ids=lambda p: p.kind)
@pytest.mark.parametrize("zone", ["Asia/Shanghai", "America/New_York"])
@pytest.mark.parametrize("pending_days", [0, 7])
def test_lot_dates_equal_the_books(policy: ExpiryPolicy, zone: str, pending_days: int) -> None:
    book = Book(
        program_id=1,
        tz=ZoneInfo(zone),
        expiry=policy,
        pending_days=pending_days,
        allow_negative=False,
        allow_transfers=False,
        hold_minutes=15,
        accounts={},
    )
    accounts = [
        Account(id=i, opened_at=datetime(2023, 2, 28 - i, 23, 30, tzinfo=UTC)) for i in range(3)
    ]
    # every 37 minutes over days that cross a month's end, a leap day and DST changes,
    # asked in random order (each day's first answer is kept and given again)
    start = datetime(2024, 2, 27, tzinfo=UTC)
    times = [start + timedelta(minutes=37 * i) for i in range(200)]
    starts = [datetime(2024, 3, 9, tzinfo=UTC), datetime(2024, 10, 30, tzinfo=UTC)]
    times += [s + timedelta(minutes=37 * i) for s in starts for i in range(120)]
    times += [t.astimezone(ZoneInfo(zone)) for t in times[::5]]  # other zones' instants too
    random.Random(5).shuffle(times)
    now = datetime(2024, 11, 20, 4, 0, tzinfo=UTC)
    dates = LotDates(book)
    for i, earned_at in enumerate(times):
        account = accounts[i % len(accounts)]
        # (repr: the same instant in the same zone)
        assert repr(dates.release_at(earned_at)) == repr(book.release_at(earned_at))
        for at in (now, now + timedelta(days=40)):
            assert repr(dates.lot_expiry(account, earned_at, at)) == repr(
                book.lot_expiry(account, earned_at, at)
            )
