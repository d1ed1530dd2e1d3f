"""An order read straight from the file's text (`jifen.imports.orders.typed`) is the
`PurchaseIn` validation builds from it, field for field (the Decimals' digits, the time's
zone, the fields set); whatever it does not read is left to validation, which refuses it
with the reason and rows it always gave."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from jifen.earning import batch
from jifen.generator.purchases import PURCHASE_COLUMNS
from jifen.imports.files import Row
from jifen.imports.orders import Order, group, parse, parse_many, typed


def exactly(value: Any) -> Any:
    """`value` with everything equality overlooks: each model's fields set, extra and
    private parts, each value's type and repr (Decimal('3.5') and Decimal('3.50') differ,
    as do a time's zones)."""
    if isinstance(value, BaseModel):
        return (
            type(value).__name__,
            sorted(value.model_fields_set),
            value.__pydantic_extra__,
            value.__pydantic_private__,
            {k: exactly(v) for k, v in value.__dict__.items()},
        )
    if isinstance(value, list):
        return [exactly(v) for v in value]
    if isinstance(value, dict):
        return {k: exactly(v) for k, v in value.items()}
    return (type(value).__name__, repr(value), repr(getattr(value, "tzinfo", None)))


def same_orders(found: list[Order], wanted: list[Order]) -> None:
    """`found` (by `parse_many`) are the orders `wanted` (by `parse`); the lines read with
    an order are the lines the booking would make of its `PurchaseIn`."""
    assert [(o.rows, o.data, o.error) for o in found] == [(o.rows, o.data, o.error) for o in wanted]
    for a, b in zip(found, wanted, strict=True):
        assert exactly(a.data) == exactly(b.data)
        if a.basket_lines is not None:
            assert a.data is not None
            made = batch._basket(SHANGHAI_BOOK, a.data).lines  # type: ignore[arg-type]
            assert a.basket_lines == made
            assert [exactly(vars(x)) for x in a.basket_lines] == [exactly(vars(x)) for x in made]


SHANGHAI_BOOK = SimpleNamespace(tz=ZoneInfo("Asia/Shanghai"))
"""All `_basket` reads of a book."""


MONEY = [
    "0", "0.00", "3.50", "3.5", "27.99", "10", "260.82", "03.50", "3.500", "-3", "1e2",
    " 3.50", "3.50 ", "+3.50", "3.", ".5", "99999999999999.99", "999999999999999.99",
    "1_000", "NaN", "٣.٥٠",
]  # fmt: skip
QUANTITIES = ["1", "2", "3", "0.750", "0", "0.000", "0.0001", "999999999999.999",
              "1000000000000", "two", "1.5"]  # fmt: skip
MOMENTS = [
    "2026-11-08T10:00:00+08:00", "2026-11-08T10:00:00Z", "2026-11-08T10:00:00-05:30",
    "2026-11-08T10:00:00-00:00", "2026-11-08T10:00:00+23:59", "2026-11-08T10:00:00+24:00",
    "2026-02-29T10:00:00+08:00", "2024-02-29T10:00:00+08:00", "2026-11-08T24:00:00+08:00",
    "2026-11-08T10:00:60+08:00", "2026-11-08 10:00", "2026-11-08T10:00:00",
    "2026-11-08T10:00:00.5+08:00", "2026-11-08t10:00:00z", "1700000000",
]  # fmt: skip
CODES = ["store", "app", "x" * 64, "x" * 65, "a\n", "tab\there", "\x7f", " ", "店"]
IDS = ["O1", "O2", "o" * 128, "o" * 129, "O\x00", "O3\n"]
MEMBER_IDS = ["1", "42", "0", "-1", "01", "9223372036854775807", "9223372036854775808", "x"]


def maybe(values: list[str]) -> Any:
    return st.one_of(st.none(), st.sampled_from(values))


@st.composite
def orders(draw: st.DrawFn) -> list[dict[str, Any]]:
    """The rows of an order: mostly plain, now and then anything validation sees."""
    plain = draw(st.booleans())
    order = {
        "order_id": draw(st.sampled_from(IDS[:3] if plain else IDS)),
        "member_external_id": draw(st.one_of(st.none(), st.just("M00001"))),
        "member_phone": draw(st.one_of(st.none(), st.just("13800138000"))) if not plain else None,
        "member_id": draw(maybe(MEMBER_IDS)),
        "occurred_at": draw(st.sampled_from(MOMENTS[:5] if plain else MOMENTS)),
        "channel": draw(st.sampled_from(CODES[:3] if plain else CODES)),
        "store": draw(maybe(CODES[:2] if plain else CODES)),
        "payment_method": draw(maybe(["wechat", "a\n"])),
        "order_attr_till": draw(maybe(["7", "x" * 201])),
        "total": None,
    }
    lines = []
    for _ in range(draw(st.integers(1, 3))):
        lines.append(
            {
                "sku": draw(st.sampled_from(CODES[:3] if plain else [*CODES, None])),
                "category": draw(maybe(["fresh", "x" * 65])),
                "brand": draw(maybe(["house"])),
                "quantity": draw(maybe(QUANTITIES[:4] if plain else QUANTITIES)),
                "unit_price": draw(st.sampled_from(MONEY[:7] if plain else [*MONEY, None])),
                "amount": draw(maybe(MONEY)) if not plain else None,
                "discount": draw(maybe(["0", "0.00", "0.50", "1.00", "5000"])),
                "line_attr_origin": draw(maybe(["yunnan", "x" * 200, "x" * 201])),
            }
        )
    rows = [{**order, **line} for line in lines]
    total = draw(st.sampled_from(["none", "right", "wrong", "bad"]))
    if total != "none":
        for row in rows:
            row["total"] = {"right": None, "wrong": "1.00", "bad": "1.005"}[total]
    if total == "right":  # the lines' nets as the file would say them, when they are plain
        parsed = parse([Row(2 + i, r) for i, r in enumerate(rows)])
        if parsed.data is not None:
            for row in rows:
                row["total"] = str(parsed.data.total)
    if not plain and len(rows) > 1 and draw(st.booleans()):
        rows[-1]["channel"] = "web"  # the rows of one order disagree
    return rows


@settings(max_examples=600, deadline=None)
@given(orders())
def test_an_order_read_from_its_text_is_the_order_validation_builds(
    values: list[dict[str, Any]],
) -> None:
    rows = [Row(2 + i, v) for i, v in enumerate(values)]
    wanted = parse(rows)
    found = typed(rows)
    if found is not None:
        assert wanted.data is not None, wanted.error
        assert exactly(found) == exactly(wanted.data)
    same_orders(parse_many([rows]), [wanted])


@settings(max_examples=200, deadline=None)
@given(st.lists(orders(), min_size=1, max_size=6))
def test_a_chunk_of_plain_and_other_orders_is_each_order_parsed_alone(
    chunk: list[list[dict[str, Any]]],
) -> None:
    number = 2
    rows = []
    for i, values in enumerate(chunk):
        for v in values:
            rows.append(Row(number, {**v, "order_id": f"{v['order_id']}-{i}"}))
            number += 1
    groups = list(group(rows))
    same_orders(parse_many(groups), [parse(g) for g in groups])


def test_the_generators_orders_are_read_from_their_text() -> None:
    """`jifen gen`'s rows (the benchmark's) are all in the plain forms."""
    header = list(PURCHASE_COLUMNS)
    lines = [
        "O00000001,M00000700,2025-12-06T01:16:40+08:00,mini_program,,wechat,household-00001,"
        "household,house,1,27.99,4.19,43.60",
        "O00000001,M00000700,2025-12-06T01:16:40+08:00,mini_program,,wechat,fresh-00045,"
        "fresh,,3,6.60,0.00,43.60",
        "O00000002,,2025-12-06T02:00:00+08:00,store,s01,cash,dairy-00002,dairy,,2,0.50,0.00,1.00",
    ]
    rows = [
        Row(n, {k: (v or None) for k, v in zip(header, line.split(","), strict=True)})
        for n, line in enumerate(lines, start=2)
    ]
    groups = list(group(rows))
    assert all(typed(g) is not None for g in groups)
    same_orders(parse_many(groups), [parse(g) for g in groups])


def test_rows_with_other_columns_than_the_first_are_left_to_validation() -> None:
    """A short CSV row has fewer columns; a line looked up by the first row's columns
    must not lend another line its attributes."""
    base = {
        "order_id": "A",
        "occurred_at": "2026-11-08T10:00:00+08:00",
        "channel": "store",
        "sku": "a",
        "unit_price": "1.50",
    }
    for first, second in (
        (base, {**base, "line_attr_km": "3"}),
        ({**base, "line_attr_km": "3"}, base),
    ):
        for rows in ([Row(2, first), Row(3, second)], [Row(2, second)], [Row(2, first)]):
            if rows[0].values.keys() != rows[-1].values.keys():
                assert typed(rows) is None
            same_orders(parse_many([rows]), [parse(rows)])


def test_values_not_in_text_are_left_to_validation() -> None:
    """Parquet's numbers and unhashable cells: validation reads them, as before."""
    base = {
        "order_id": 17,
        "member_id": 5,
        "occurred_at": "2026-11-08T10:00:00+08:00",
        "channel": "store",
        "sku": "a",
        "quantity": 2,
        "unit_price": "1.50",
        "total": "3.00",
    }
    for values in (base, {**base, "line_attr_tags": ["x"]}, {**base, "quantity": 2.5}):
        rows = [Row(1, values)]
        assert typed(rows) is None
        same_orders(parse_many([rows]), [parse(rows)])
    assert parse([Row(1, base)]).data is not None
