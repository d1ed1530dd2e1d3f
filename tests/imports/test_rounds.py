"""A chunk's orders are priced in rounds, each member's run of orders together, with facts
derived rather than read again (jifen.earning.runs). An import in big chunks books exactly
what the same file imported one order per transaction books (each order then locks the
account, reads its facts and asks the tiers, as a request does), here with history older
than the expiry, whose lots are due the moment they are earned."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from jifen.core.clock import FrozenClock
from jifen.db.uow import Database
from jifen.ledger.models import LotStatus

from .test_safety import members_in, purchases_in
from .twins import apply_programme, sample, state, write_members_csv, write_purchases_csv

NOW = datetime(2026, 11, 20, 4, 0, tzinfo=UTC)


def test_big_chunks_book_what_one_order_per_chunk_books(db: Database, tmp_path: Path) -> None:
    clock = FrozenClock(NOW)
    data = sample(NOW, members=12, orders=90, seed=5)
    # The last 40 orders of the file are 27 months old: each lot expires as it is earned,
    # and is expired by the member's next order (so a run must end there), or stays due
    # when it is the member's last.
    orders = [
        order
        if i < len(data.orders) - 40
        else dict(
            order,
            occurred_at=(
                datetime.fromisoformat(order["occurred_at"]) - timedelta(days=820)
            ).isoformat(),
        )
        for i, order in enumerate(data.orders)
    ]
    write_members_csv(tmp_path / "members.csv", data.members)
    write_purchases_csv(tmp_path / "purchases.csv", orders)

    one_by_one = apply_programme(db, clock, capped=True, code="one-by-one")
    members_in(db, clock, one_by_one, tmp_path / "members.csv")
    purchases_in(db, clock, one_by_one, tmp_path / "purchases.csv", chunk=1)
    together = apply_programme(db, clock, capped=True, code="together")
    members_in(db, clock, together, tmp_path / "members.csv")
    done = purchases_in(db, clock, together, tmp_path / "purchases.csv", chunk=1000)
    assert (done.imported, done.already, done.rejected) == (90, 1, 0)

    expected, got = state(db, one_by_one), state(db, together)
    assert got["lots"] == expected["lots"]
    assert got["accounts"] == expected["accounts"]
    assert got["purchases"] == expected["purchases"]
    assert got["tiers"] == expected["tiers"]
    assert got["history"] == expected["history"]
    assert got["counters"] == expected["counters"]
    assert got["events"] == expected["events"]
    # worth comparing: lots expired by a later order, lots left due, and upgrades
    statuses = [lot[3] for lot in expected["lots"]]
    assert LotStatus.EXPIRED in statuses
    assert any(
        status == LotStatus.AVAILABLE and expires <= NOW
        for (_, _, _, status, _, _, expires) in expected["lots"]
    )
    assert expected["history"]
