"""The rows are data the importer and the API accept: totals add up, discounts fit, ids
are unique, an order's lines are together and in time order, members buy only after
enrolling, everything lies within the period, and returns fit what was bought."""

from __future__ import annotations

import re
from collections import Counter
from datetime import datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal
from zoneinfo import ZoneInfo

from jifen.earning.schemas import PurchaseIn, ReturnIn
from jifen.members.schemas import MemberCreate

from .conftest import DataSet, Row

CENT = Decimal("0.01")
MONEY = re.compile(r"^(0|[1-9][0-9]*)\.[0-9]{2}$")
QUANTITY = re.compile(r"^([1-9][0-9]*|(0|[1-9][0-9]*)\.[0-9]{3})$")
INSTANT = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\+08:00$")
ZONE = ZoneInfo("Asia/Shanghai")


def _amount(row: Row) -> Decimal:
    gross = Decimal(row["quantity"]) * Decimal(row["unit_price"])
    return gross.quantize(CENT, rounding=ROUND_HALF_UP)


def _purchase(lines: list[Row]) -> PurchaseIn:
    """The order as the API would receive it (its checks: amounts, discounts, total)."""
    head = lines[0]
    member = {"external_id": head["member_external_id"]} if head["member_external_id"] else None
    return PurchaseIn.model_validate(
        {
            "external_id": head["order_id"],
            "member": member,
            "occurred_at": head["occurred_at"],
            "channel": head["channel"],
            "store": head["store"] or None,
            "payment_method": head["payment_method"],
            "total": head["total"],
            "lines": [
                {
                    "sku": line["sku"],
                    "category": line["category"],
                    "brand": line["brand"] or None,
                    "quantity": line["quantity"],
                    "unit_price": line["unit_price"],
                    "discount": line["discount"],
                }
                for line in lines
            ],
        }
    )


def test_every_order_adds_up_and_passes_the_apis_checks(dataset: DataSet) -> None:
    orders = dataset.orders()
    assert len(orders) == dataset.spec.purchases == dataset.written.counts.orders
    for order_id, lines in orders.items():
        totals = {line["total"] for line in lines}
        assert len(totals) == 1, order_id  # repeated on every line
        net = sum((_amount(line) - Decimal(line["discount"]) for line in lines), Decimal(0))
        assert Decimal(lines[0]["total"]) == net, order_id
        for line in lines:
            assert Decimal(0) <= Decimal(line["discount"]) <= _amount(line), line
            for field in ("unit_price", "discount", "total"):
                assert MONEY.match(line[field]), line
            assert QUANTITY.match(line["quantity"]), line
            assert Decimal(line["quantity"]) > 0, line
            assert Decimal(line["unit_price"]) > 0, line
        assert len({line["sku"] for line in lines}) == len(lines), order_id
        purchase = _purchase(lines)
        assert purchase.total == net
        for field in ("occurred_at", "channel", "store", "payment_method", "member_external_id"):
            assert len({line[field] for line in lines}) == 1, (order_id, field)
    assert any(line["discount"] != "0.00" for line in dataset.purchases)
    assert any("." in line["quantity"] for line in dataset.purchases)  # sold by weight


def test_order_ids_are_unique_and_an_orders_lines_are_consecutive(dataset: DataSet) -> None:
    runs = [dataset.purchases[0]["order_id"]]
    for row in dataset.purchases[1:]:
        if row["order_id"] != runs[-1]:
            runs.append(row["order_id"])
    assert len(runs) == len(set(runs)) == dataset.spec.purchases
    assert runs == sorted(runs)  # numbered in time order
    assert re.fullmatch(r"O0*1", runs[0])


def test_purchases_are_in_time_order_within_the_period_and_after_enrolment(
    dataset: DataSet,
) -> None:
    start = datetime.combine(dataset.spec.start, time(0), ZONE)
    end = datetime.combine(dataset.spec.end + timedelta(days=1), time(0), ZONE)
    enrolled = {m["external_id"]: datetime.fromisoformat(m["enrolled_at"]) for m in dataset.members}
    previous = start
    for row in dataset.purchases:
        assert INSTANT.match(row["occurred_at"]), row
        at = datetime.fromisoformat(row["occurred_at"])
        assert previous <= at < end, row
        previous = at
        member = row["member_external_id"]
        if member:
            assert enrolled[member] <= at, row


def test_members_have_unique_identifiers_and_plausible_profiles(dataset: DataSet) -> None:
    members = dataset.members
    for key in ("external_id", "phone", "card_number"):
        values = [m[key] for m in members]
        assert all(values), key
        assert len(set(values)) == len(values), key
    emails = [m["email"] for m in members if m["email"]]
    assert len(set(emails)) == len(emails)
    assert 0.5 < len(emails) / len(members) < 0.75  # some give no email
    assert [m["external_id"] for m in members] == [f"M{i:08d}" for i in range(1, 4001)]
    times = [datetime.fromisoformat(m["enrolled_at"]) for m in members]
    assert times == sorted(times)  # numbered in enrolment order
    assert times[-1] < datetime.combine(dataset.spec.end + timedelta(days=1), time(0), ZONE)
    assert (times[-1] - times[0]).days > 2 * 365  # enrolments spread over years
    by_year = Counter(t.year for t in times)
    assert by_year[2025] > by_year[2024] > by_year[2023]  # a growing programme
    channels = {code for code, _ in dataset.spec.channels}
    for member, enrolled in zip(members, times, strict=True):
        assert re.fullmatch(r"1[3-9][0-9]{9}", member["phone"]), member
        assert member["enrolment_channel"] in channels
        assert member["gender"] in ("female", "male", "")
        assert member["language"] in ("zh-CN", "en")
        assert member["name"]
        assert member["city"]
        if member["birthday"]:
            born = datetime.fromisoformat(member["birthday"]).date()
            age = (enrolled.date() - born).days / 365.2425
            assert 18 <= age <= 80.01, member
        MemberCreate.model_validate({k: v or None for k, v in member.items()})
    assert Counter(m["language"] for m in members).most_common(1)[0][0] == "zh-CN"
    assert sum(1 for m in members if not m["birthday"]) > 0


def test_returns_take_back_what_was_bought_after_it_was_bought(dataset: DataSet) -> None:
    orders = dataset.orders()
    end = datetime.combine(dataset.spec.end + timedelta(days=1), time(0), ZONE)
    by_return: dict[str, list[Row]] = {}
    previous = None
    for row in dataset.returns:
        by_return.setdefault(row["return_id"], []).append(row)
        at = datetime.fromisoformat(row["occurred_at"])
        assert previous is None or previous <= at  # in time order
        previous = at
    assert len(by_return) == dataset.written.counts.returns
    assert len({rows[0]["order_id"] for rows in by_return.values()}) == len(by_return)
    for return_id, rows in by_return.items():
        lines = orders[rows[0]["order_id"]]
        bought_at = datetime.fromisoformat(lines[0]["occurred_at"])
        line_no = {line["sku"]: no for no, line in enumerate(lines, start=1)}
        asked = []
        for row in rows:
            assert row["order_id"] == rows[0]["order_id"]
            assert row["occurred_at"] == rows[0]["occurred_at"]
            assert bought_at < datetime.fromisoformat(row["occurred_at"]) < end
            line = lines[line_no[row["sku"]] - 1]
            quantity, amount = Decimal(row["quantity"]), Decimal(row["amount"])
            net = _amount(line) - Decimal(line["discount"])
            assert 0 < quantity <= Decimal(line["quantity"]), (return_id, row)
            assert MONEY.match(row["amount"])
            assert QUANTITY.match(row["quantity"])
            if quantity == Decimal(line["quantity"]):
                assert amount == net, (return_id, row)
            else:  # the share the API refunds for a part of the line
                share = net * quantity / Decimal(line["quantity"])
                assert amount == share.quantize(CENT, rounding=ROUND_HALF_UP), (return_id, row)
            asked.append({"line_no": line_no[row["sku"]], "quantity": row["quantity"]})
        ReturnIn.model_validate({"external_id": return_id, "lines": asked})
    whole = sum(1 for rows in by_return.values() if len(rows) == len(orders[rows[0]["order_id"]]))
    assert 0 < whole < len(by_return)  # some orders returned whole, others in part
