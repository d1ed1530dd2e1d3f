"""A member in debt (a return clawed back points already spent, the programme allowing a
negative balance) whose orders are then imported ends with what posting them one by one
through the API gives: each credit repays the debt first, lot by lot, and the member's
run of orders ends at every order while they are in debt."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from jifen.core.clock import FrozenClock
from jifen.db.uow import Database
from jifen.earning.models import Purchase
from jifen.imports.files import FileFormat, Rejects, read_rows
from jifen.imports.orders import REQUIRED
from jifen.imports.purchases import import_purchases
from jifen.members.models import Member
from jifen.programs.apply import apply
from jifen.programs.config import load_program_file

from .twins import Sample, post_through_api, programme_text, state, till, write_purchases_csv

NOW = datetime(2026, 11, 20, 4, 0, tzinfo=UTC)


def debt_programme(db: Database, clock: FrozenClock) -> int:
    text = programme_text(capped=False)
    assert "  return_policy: withhold\n" in text
    text = text.replace(
        "  return_policy: withhold\n",
        "  return_policy: debt\n  allow_negative_balance: true\n",
        1,
    )
    file = load_program_file(text, "retail-chain.yaml")
    return db.write(lambda s: apply(s, file, now=clock.now(), actor="test").program_id)


def order(external_id: str, member: str | None, at: datetime, *prices: str) -> dict[str, Any]:
    lines = [
        {
            "sku": f"SKU-{i}",
            "category": "grocery",
            "quantity": "1",
            "unit_price": price,
            "discount": "0",
        }
        for i, price in enumerate(prices)
    ]
    found: dict[str, Any] = {
        "external_id": external_id,
        "occurred_at": at.isoformat(),
        "channel": "app",
        "lines": lines,
        "total": str(sum((Decimal(p) for p in prices), Decimal(0))),
        "payment_method": "wechat",
    }
    if member is not None:
        found["member"] = {"external_id": member}
    return found


def into_debt(db: Database, clock: FrozenClock, program_id: int) -> None:
    """Through the API: three members; an old order of M00001's (available at once), most
    of its points spent, then the order returned whole: the clawback takes the points
    anyway (`debt`), and M00001's available balance goes below zero."""
    with till(db, clock, program_id) as post:
        for n in range(1, 4):
            post(
                "/v1/members",
                {
                    "external_id": f"M{n:05d}",
                    "phone": f"1390000{n:04d}",
                    "enrolled_at": (NOW - timedelta(days=300)).isoformat(),
                },
            )
        old = NOW - timedelta(days=20)
        bought = post("/v1/purchases", order("OLD-1", "M00001", old, "688.00", "199.00"))
        post("/v1/purchases", order("OLD-2", "M00002", old, "59.90"))
        member_id = db.read(
            lambda s: s.execute(
                select(Member.id).where(
                    Member.program_id == program_id, Member.external_id == "M00001"
                )
            ).scalar_one()
        )
        assert bought["points"] > 800
        post(f"/v1/members/{member_id}/spend", {"points": 800})
        purchase_id = db.read(
            lambda s: s.execute(
                select(Purchase.id).where(
                    Purchase.program_id == program_id, Purchase.external_id == "OLD-1"
                )
            ).scalar_one()
        )
        post(f"/v1/purchases/{purchase_id}/returns", {"external_id": "R-1", "amount": "887.00"})


@pytest.mark.parametrize("chunk", [3, 100])
def test_a_member_in_debt_imports_what_the_api_gives(
    twin: tuple[Database, Database], tmp_path: Path, chunk: int
) -> None:
    through_api, imported = twin
    clock = FrozenClock(NOW)
    programs = [debt_programme(db, clock) for db in twin]
    for db, program_id in zip(twin, programs, strict=True):
        into_debt(db, clock, program_id)
    before = state(imported, programs[1])
    assert before == state(through_api, programs[0])
    assert before["accounts"][("M00001", "points")][0] == -800  # available: in debt

    at = NOW - timedelta(days=18)  # released at once, but for the last (pending)
    later = [
        order("N-01", "M00001", at, "120.00"),
        order("N-02", "M00002", at + timedelta(hours=1), "59.90"),
        order("N-03", "M00001", at + timedelta(hours=2), "199.00", "12.80"),
        order("N-04", None, at + timedelta(hours=3), "28.00"),
        order("N-05", "M00001", at + timedelta(days=1), "300.00"),
        order("N-06", "M00003", at + timedelta(days=1, hours=1), "688.00"),
        order("N-07", "M00001", at + timedelta(days=5), "688.00", "199.00"),
        order("N-08", "M00001", at + timedelta(days=8), "3.50"),
        order("N-09", "M00002", at + timedelta(days=9), "12.80"),
        order("N-10", "M00001", at + timedelta(days=9, hours=1), "28.00"),
        order("N-11", "M00001", NOW - timedelta(days=2), "59.90"),
    ]
    post_through_api(through_api, clock, programs[0], Sample([], later))
    write_purchases_csv(tmp_path / "later.csv", later)
    rejects = Rejects(None)
    summary = import_purchases(
        imported,
        programs[1],
        read_rows(tmp_path / "later.csv", FileFormat.CSV, REQUIRED),
        clock=clock,
        actor="import",
        rejects=rejects,
        chunk=chunk,
    )
    assert (summary.imported, summary.rejected) == (len(later), 0)

    expected, got = state(through_api, programs[0]), state(imported, programs[1])
    assert got["accounts"] == expected["accounts"]
    assert got["lots"] == expected["lots"]
    assert got["purchases"] == expected["purchases"]
    assert got == expected
    # the debt was repaid along the way, and the member earned past it
    assert expected["accounts"][("M00001", "points")][0] > 0
