"""Purchase files: one row per order line, an order's lines on consecutive rows, turned
into the API's own `PurchaseIn` (so a file is checked exactly as a request is).

Columns (see docs/import.md): `order_id`, one member column of `member_id`,
`member_external_id`, `member_phone`, `member_email`, `member_card_number` (none: an
unclaimed order), `occurred_at` (ISO 8601 with an offset), `channel`, `store`,
`payment_method`, and per line `sku`, `category`, `brand`, `quantity`, `unit_price`,
`amount`, `discount`; `total` is optional (checked when given). `line_attr_<name>` and
`order_attr_<name>` columns become line and order attributes.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from pydantic import TypeAdapter, ValidationError

from jifen.earning.schemas import LineIn, PurchaseIn
from jifen.imports.files import Row

REQUIRED = ("order_id", "occurred_at", "channel", "sku", "unit_price")
MEMBER_COLUMNS = {
    "member_id": "id",
    "member_external_id": "external_id",
    "member_phone": "phone",
    "member_email": "email",
    "member_card_number": "card_number",
}
ORDER_COLUMNS = (
    "order_id",
    "occurred_at",
    "channel",
    "store",
    "payment_method",
    "total",
    *MEMBER_COLUMNS,
)
LINE_COLUMNS = ("sku", "category", "brand", "quantity", "unit_price", "amount", "discount")
LINE_ATTR = "line_attr_"
ORDER_ATTR = "order_attr_"


@dataclass(frozen=True)
class Order:
    """An order read from the file: its rows, and the purchase they make (None with the
    reason when they make none)."""

    rows: list[Row]
    data: PurchaseIn | None
    error: str | None = None


def group(rows: Iterable[Row]) -> Iterator[list[Row]]:
    """Consecutive rows with the same order id."""
    current: list[Row] = []
    for row in rows:
        if current and row.values.get("order_id") != current[0].values.get("order_id"):
            yield current
            current = []
        current.append(row)
    if current:
        yield current


def parse(rows: list[Row]) -> Order:
    try:
        return Order(rows, PurchaseIn.model_validate(document(rows)))
    except ValidationError as exc:
        return Order(rows, None, validation_reason(exc))
    except ValueError as exc:
        return Order(rows, None, str(exc))


_PURCHASES = TypeAdapter(list[PurchaseIn])


def parse_many(groups: Sequence[list[Row]]) -> list[Order]:
    """`parse` of each group of rows, the purchases validated in one call (a model per
    order cost a seventh more). When any is refused, each is validated on its own
    again, so each refusal is what `parse` gives it."""
    documents: list[dict[str, Any]] = []
    for rows in groups:
        try:
            documents.append(document(rows))
        except ValueError:
            return [parse(rows) for rows in groups]
    try:
        purchases = _PURCHASES.validate_python(documents)
    except ValidationError:
        return [parse(rows) for rows in groups]
    return [Order(rows, data) for rows, data in zip(groups, purchases, strict=True)]


def document(rows: list[Row]) -> dict[str, Any]:
    """The order as the API's request body."""
    first = rows[0].values
    for row in rows[1:]:
        for column in ORDER_COLUMNS:
            if row.values.get(column) != first.get(column):
                raise ValueError(
                    f"{column}: differs between the rows of order {first.get('order_id')} "
                    f"(rows {rows[0].number} and {row.number})"
                )
    given = {
        ref: first[column]
        for column, ref in MEMBER_COLUMNS.items()
        if first.get(column) is not None
    }
    body: dict[str, Any] = {
        "external_id": _text(first.get("order_id")),
        "occurred_at": first.get("occurred_at"),
        "channel": first.get("channel"),
        "lines": [_line(row.values) for row in rows],
    }
    if given:
        body["member"] = {k: (v if k == "id" else _text(v)) for k, v in given.items()}
    for column in ("store", "payment_method"):
        if first.get(column) is not None:
            body[column] = first[column]
    attributes = _prefixed(first, ORDER_ATTR)
    if attributes:
        body["attributes"] = attributes
    if first.get("total") is not None:
        body["total"] = first["total"]
    else:  # the lines' amounts less discounts
        try:
            nets = [LineIn.model_validate(line).net for line in body["lines"]]
            body["total"] = str(sum(nets, Decimal(0)))
        except ValidationError:
            body["total"] = "0"  # the purchase's own validation reports the bad line
    return body


def _line(values: dict[str, Any]) -> dict[str, Any]:
    line = {c: values[c] for c in LINE_COLUMNS if values.get(c) is not None}
    attributes = _prefixed(values, LINE_ATTR)
    if attributes:
        line["attributes"] = attributes
    return line


def _prefixed(values: dict[str, Any], prefix: str) -> dict[str, Any]:
    columns = _columns(tuple(values), prefix)
    if not columns:
        return {}
    return {name: values[column] for column, name in columns if values[column] is not None}


_COLUMNS: dict[tuple[tuple[str, ...], str], tuple[tuple[str, str], ...]] = {}


def _columns(names: tuple[str, ...], prefix: str) -> tuple[tuple[str, str], ...]:
    """The columns of `names` that start with `prefix`, each with the rest of its name
    (worked out once per header: every row of a file has the same columns)."""
    key = (names, prefix)
    found = _COLUMNS.get(key)
    if found is None:
        if len(_COLUMNS) > 64:
            _COLUMNS.clear()
        found = _COLUMNS[key] = tuple(
            (name, name.removeprefix(prefix)) for name in names if name.startswith(prefix)
        )
    return found


def _text(value: Any) -> Any:
    """Ids written as numbers by a spreadsheet (Parquet ints) are still ids."""
    return str(value) if isinstance(value, int) else value


def validation_reason(exc: ValidationError) -> str:
    """The first problem pydantic found, as `field: what is wrong`, on one line."""
    error = exc.errors()[0]
    where = ".".join(str(part) for part in error["loc"])
    text = str(error["msg"]).removeprefix("Value error, ")
    message = f"{where}: {text}" if where else text
    return " ".join(message.split())
