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

import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, TypeVar

from pydantic import BaseModel, TypeAdapter, ValidationError
from pydantic_core import TzInfo

from jifen.earning.batch import MILLI
from jifen.earning.schemas import CENT, LineIn, PurchaseIn
from jifen.imports.files import Row
from jifen.members.schemas import MemberRef
from jifen.rules.facts import Line

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
    basket_lines: tuple[Line, ...] | None = field(default=None, compare=False)
    """Its lines as the evaluator reads them (`jifen.earning.batch._basket`'s), when they
    were read from their text (None: the booking makes them)."""


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
    """`parse` of each group of rows: an order in the plain forms `typed` reads is built
    straight from its text; the others are validated in one call (a model per order cost
    a seventh more), and when any of those is refused, each again on its own, so each
    refusal is what `parse` gives it."""
    built = [_typed(rows) for rows in groups]
    others = [rows for rows, found in zip(groups, built, strict=True) if found is None]
    validated = iter(_validated(others) if others else ())
    return [
        Order(rows, found[0], basket_lines=found[1]) if found is not None else next(validated)
        for rows, found in zip(groups, built, strict=True)
    ]


def _validated(groups: Sequence[list[Row]]) -> list[Order]:
    """`parse` of each group, the purchases validated in one call."""
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


# ---------------------------------------------------------------- the plain forms
# `typed` builds the `PurchaseIn` that validation would build, for an order whose every
# value is text in a form validation accepts as it stands; anything else (a value in
# another form, a number out of range, a line that does not add up, a Parquet number)
# is left to validation, which refuses it with its reason or accepts it. Validation of
# such an order cost about 60 µs, most of it pydantic's checks of the Decimal fields.
# tests/imports/test_fast_paths.py holds `typed` to `PurchaseIn.model_validate`.

_CONTROL = re.compile(r"[\x00-\x1f]")
_MONEY = re.compile(r"(?:0|[1-9][0-9]{0,13})(?:\.[0-9]{1,2})?")
"""`Money` (≥ 0, at most 16 digits of which 2 decimals), without leading zeros."""
_QUANTITY = re.compile(r"(?:0|[1-9][0-9]{0,11})(?:\.[0-9]{1,3})?")
"""`PositiveQuantity`'s digits (15, of which 3 decimals); > 0 is checked apart."""
_MOMENT = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:Z|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])"
)
"""ISO 8601 to the second with an offset, as `jifen gen` and most exports write it."""
_MEMBER_ID = re.compile(r"[1-9][0-9]{0,18}")
_ZONES: dict[str, TzInfo] = {}
M = TypeVar("M", bound=BaseModel)


def typed(rows: list[Row]) -> PurchaseIn | None:
    """The order of `rows` as `PurchaseIn.model_validate(document(rows))` gives it, when
    every value is in the plain forms above; None otherwise (validation decides)."""
    found = _typed(rows)
    return None if found is None else found[0]


def _typed(rows: list[Row]) -> tuple[PurchaseIn, tuple[Line, ...]] | None:
    """`typed`, with the order's lines as the evaluator reads them."""
    first = rows[0].values
    if len(rows) > 1:
        order = tuple(map(first.get, ORDER_COLUMNS))
        for row in rows[1:]:
            if tuple(map(row.values.get, ORDER_COLUMNS)) != order:
                return None  # `document` says which column differs
    external_id = first.get("order_id")
    channel = first.get("channel")
    occurred_at = _moment(first.get("occurred_at"))
    if not (_id_text(external_id) and _code(channel)) or occurred_at is None:
        return None
    given = {"external_id", "occurred_at", "channel", "lines", "total"}
    store = first.get("store")
    if store is not None:
        if not _code(store):
            return None
        given.add("store")
    payment_method = first.get("payment_method")
    if payment_method is not None:
        if not _code(payment_method):
            return None
        given.add("payment_method")
    member = _member(first)
    if member is not None:
        if member is False:
            return None
        given.add("member")
    attributes = _attributes(first, ORDER_ATTR)
    if attributes is None:
        return None
    if attributes:
        given.add("attributes")
    if len(rows) > 500:
        return None
    lines = []
    read: list[Line] = []
    net = Decimal(0)
    names = _line_columns(tuple(first))
    shapes = _SHAPES.get(names)
    if shapes is None or len(shapes) > 65_536:
        shapes = _SHAPES[names] = {}
    columns = first.keys()
    for row in rows:
        values = row.values
        if values.keys() != columns:
            return None  # a short row: its lines are looked up by the first row's columns
        try:
            cells = tuple(map(values.get, names))
            shape = shapes.get(cells, _UNSEEN)
        except TypeError:  # an unhashable value (Parquet): not a plain form
            return None
        if shape is _UNSEEN:
            shape = shapes[cells] = _typed_line(values)
        if shape is None:
            return None
        template, given_line, line_net, basket_line = shape
        read.append(basket_line)
        line_values = template.copy()
        if template["attributes"]:
            line_values["attributes"] = template["attributes"].copy()
        lines.append(_built(LineIn, line_values, set(given_line)))
        net += line_net
    total_text = first.get("total")
    if total_text is None:
        total_text = str(net)  # as `document` writes it
    total = _money(total_text)
    if total is None or total != net:
        return None
    purchase = _built(
        PurchaseIn,
        {
            "member": member,
            "external_id": external_id,
            "occurred_at": occurred_at,
            "channel": channel,
            "store": store,
            "payment_method": payment_method,
            "lines": lines,
            "total": total,
            "attributes": attributes,
            "points_payment": None,
        },
        given,
    )
    return purchase, tuple(read)


_Shape = tuple[dict[str, Any], frozenset[str], Decimal, Line]
_SHAPES: dict[tuple[str, ...], dict[tuple[Any, ...], _Shape | None]] = {}
"""Per header's line columns, each line's cells → the `LineIn`'s fields, the fields set,
its net amount and the line as the evaluator reads it (None: not in a plain form). A
file's lines repeat (the same item at the same price, a basket's usual lines): most are
looked up, not read."""


def _line_columns(header: tuple[str, ...]) -> tuple[str, ...]:
    """The columns a line is made of (`_line`), in this header."""
    found = _LINE_NAMES.get(header)
    if found is None:
        if len(_LINE_NAMES) > 64:
            _LINE_NAMES.clear()
        found = _LINE_NAMES[header] = (
            *LINE_COLUMNS,
            *(column for column, _ in _columns(header, LINE_ATTR)),
        )
    return found


_LINE_NAMES: dict[tuple[str, ...], tuple[str, ...]] = {}
_UNSEEN: Any = object()


def _typed_line(values: dict[str, Any]) -> _Shape | None:
    """`LineIn.model_validate(_line(values))`'s fields, the fields set, its net amount and
    the evaluator's line, or None (see `typed`)."""
    sku = values.get("sku")
    if not _code(sku):
        return None
    given = {"sku", "unit_price", "amount"}  # the validator sets `amount` when it is left out
    category, brand = values.get("category"), values.get("brand")
    for name, value in (("category", category), ("brand", brand)):
        if value is not None:
            if not _code(value):
                return None
            given.add(name)
    quantity = Decimal(1)
    text = values.get("quantity")
    if text is not None:
        if not (isinstance(text, str) and _QUANTITY.fullmatch(text)):
            return None
        quantity = Decimal(text)
        if not quantity > 0:
            return None
        given.add("quantity")
    unit_price = _money(values.get("unit_price"))
    if unit_price is None:
        return None
    gross = (quantity * unit_price).quantize(CENT, rounding=ROUND_HALF_UP)
    amount = gross
    text = values.get("amount")
    if text is not None:
        found = _money(text)
        if found is None or found != gross:
            return None
        amount = found
    discount = Decimal(0)
    text = values.get("discount")
    if text is not None:
        found = _money(text)
        if found is None or found > amount:
            return None
        discount = found
        given.add("discount")
    attributes = _attributes(values, LINE_ATTR)
    if attributes is None or len(attributes) > 20:
        return None
    if attributes:
        given.add("attributes")
    fields = {
        "sku": sku,
        "category": category,
        "brand": brand,
        "quantity": quantity,
        "unit_price": unit_price,
        "amount": amount,
        "discount": discount,
        "attributes": attributes,
    }
    net = amount - discount
    line = Line(  # as `jifen.earning.batch._basket` makes it of the `LineIn`
        sku=str(sku),  # a `Code`, checked above
        quantity=quantity.quantize(MILLI),
        amount=net.quantize(CENT),
        category=category,
        brand=brand,
        attributes={k: str(v) for k, v in attributes.items()},
    )
    return fields, frozenset(given), net, line


def _built(cls: type[M], values: dict[str, Any], given: set[str]) -> M:
    """The model as validation leaves it (what `model_construct` makes, without its
    walk over the fields: `values` has every field)."""
    model = cls.__new__(cls)
    object.__setattr__(model, "__dict__", values)
    object.__setattr__(model, "__pydantic_fields_set__", given)
    object.__setattr__(model, "__pydantic_extra__", None)
    object.__setattr__(model, "__pydantic_private__", None)
    return model


def _code(value: Any) -> bool:
    """A `Code` as it stands: 1 to 64 characters, none a control character."""
    if type(value) is not str:
        return False
    if value in _CODES:
        return True
    if 0 < len(value) <= 64 and _CONTROL.search(value) is None:
        if len(_CODES) > 65_536:
            _CODES.clear()
        _CODES.add(value)
        return True
    return False


_CODES: set[str] = set()
"""Codes met, that are `Code`s (a file has few: channels, stores, skus, categories)."""


def _id_text(value: Any) -> bool:
    return isinstance(value, str) and 0 < len(value) <= 128 and _CONTROL.search(value) is None


def _money(value: Any) -> Decimal | None:
    if type(value) is not str:
        return None
    found = _MONEYS.get(value)
    if found is None and _MONEY.fullmatch(value):
        if len(_MONEYS) > 65_536:
            _MONEYS.clear()
        found = _MONEYS[value] = Decimal(value)
    return found


_MONEYS: dict[str, Decimal] = {}
"""Amounts met, as text → Decimal (prices and discounts repeat)."""


def _moment(value: Any) -> datetime | None:
    if type(value) is not str or _MOMENT.fullmatch(value) is None:
        return None
    zone = _ZONES.get(value[19:])
    if zone is None:
        sign, hours, minutes = value[19], value[20:22], value[23:25]
        offset = 0 if sign == "Z" else (int(hours) * 60 + int(minutes)) * 60
        zone = _ZONES[value[19:]] = TzInfo(-offset if sign == "-" else offset)
    try:  # the local time as the pattern has it, YYYY-MM-DDTHH:MM:SS
        return datetime.fromisoformat(value[:19]).replace(tzinfo=zone)
    except ValueError:  # no such day or time: validation says so
        return None


def _member(first: dict[str, Any]) -> MemberRef | bool | None:
    """The member the order names (None: none; False: not in a plain form)."""
    found: MemberRef | bool | None = None
    for column, ref in MEMBER_COLUMNS.items():
        value = first.get(column)
        if value is None:
            continue
        if found is not None or not isinstance(value, str):
            return False  # two members named: validation refuses it
        if ref == "id":
            if not _MEMBER_ID.fullmatch(value) or int(value) >= 2**63:
                return False
            value = int(value)
        fields = _NO_MEMBER.copy()
        fields[ref] = value
        found = _built(MemberRef, fields, {ref})
    return found


_NO_MEMBER: dict[str, Any] = dict.fromkeys(MemberRef.model_fields)


def _attributes(values: dict[str, Any], prefix: str) -> dict[str, Any] | None:
    """`_prefixed`, each name a `Code` and each value text of at most 200 characters
    (which stays text); None otherwise."""
    found = _prefixed(values, prefix)
    for name, value in found.items():
        if not (_code(name) and isinstance(value, str) and len(value) <= 200):
            return None
    return found


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
