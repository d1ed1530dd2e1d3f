"""`purchases.written_json`, the answer of a purchase booked in a group, is byte for byte
what the route's `shown` renders from the same rows read back (the answer built model by
model): for rows as
`jifen.earning.batch` writes them — claimed or not, with and without breakdown items,
lines with and without attributes, brand or category, money at every scale, a pending
release or none."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

import pytest

from jifen.db.dml import as_read
from jifen.earning.models import Purchase, PurchaseLine, PurchaseStatus
from jifen.earning.purchases import line_rows, purchase_row, shown, written_json
from jifen.earning.schemas import PurchaseIn, PurchaseOut

NOW = datetime(2027, 3, 1, 4, 5, 6, 789012, tzinfo=UTC)
ITEM = {
    "rule": "base",
    "name": '1 元 = 1 积分 "quoted"',
    "effect": "points_per_amount",
    "basis": "120.5",
    "lines": [0, 2],
    "wanted": 120,
    "points": 120,
    "capped_by": None,
}


def _order(lines: list[dict[str, Any]], **more: Any) -> PurchaseIn:
    total = sum(
        Decimal(str(line["unit_price"])) * Decimal(str(line.get("quantity", 1)))
        - Decimal(str(line.get("discount", 0)))
        for line in lines
    )
    return PurchaseIn.model_validate(
        {
            "external_id": "o-1",
            "occurred_at": (NOW - timedelta(minutes=3)).isoformat(),
            "channel": "store",
            "store": "sh-001",
            "lines": lines,
            "total": str(total),
            **more,
        }
    )


def _purchase(data: PurchaseIn, member_id: int | None, items: list[dict[str, Any]]) -> dict:
    """The row `jifen.earning.batch` writes for the order: recorded, then awarded."""
    row = purchase_row(3, data, member_id, now=NOW, actor="api-key:1") | {"id": 41}
    if member_id:
        row |= {
            "status": PurchaseStatus.AWARDED,
            "rule_set_version": 7,
            "points": sum(i["points"] for i in items),
            "growth": 5,
            "breakdown": items,
            "growth_breakdown": [ITEM | {"rule": "growth", "capped_by": "order"}],
            "earn_txn_id": 9,
            "growth_txn_id": 10,
        }
    return row


LINES = [
    {"sku": "6901", "unit_price": "60.25", "quantity": 2, "category": "fresh"},
    {"sku": "7702", "unit_price": "100", "discount": "10", "brand": "牌子", "quantity": "1.5"},
    {"sku": "x", "unit_price": 3, "attributes": {"colour": "red", "size": 2}},
]


@pytest.mark.parametrize("member_id", [12, None], ids=["claimed", "unclaimed"])
@pytest.mark.parametrize("items", [[], [ITEM], [ITEM, ITEM | {"rule": "fresh", "basis": "0"}]])
@pytest.mark.parametrize("release", [None, NOW + timedelta(days=7)], ids=["now", "pending"])
@pytest.mark.parametrize("lines", [LINES[:1], LINES], ids=["one", "three"])
def test_written_json_is_what_shown_renders(
    member_id: int | None, items: list[dict[str, Any]], release: datetime | None, lines: Any
) -> None:
    data = _order(lines, payment_method="wechat")
    purchase = _purchase(data, member_id, items)
    rows = line_rows(3, 41, data)
    want = _by_models(purchase, rows, release).model_dump_json()
    assert written_json(purchase, rows, release) == want


def _by_models(
    purchase: dict[str, Any], lines: list[dict[str, Any]], release: datetime | None
) -> PurchaseOut:
    """The rows as a query would read them, shown by the route's `shown`."""
    return shown(
        SimpleNamespace(**as_read(Purchase, purchase)),
        [SimpleNamespace(**as_read(PurchaseLine, line)) for line in lines],
        [],
        release,
    )
