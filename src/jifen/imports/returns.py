"""Bulk import of returns and refunds: each one exactly as `POST /v1/purchases/{id}/returns`
records it (`jifen.earning.returns.record_return`: the points and growth value the order
no longer earns are taken back by the programme's return policy, caps given back, the
order's status updated).

Columns: `order_id` (the order's id, as imported), `return_id` (the refund's id: a repeat
is skipped, so a re-run imports nothing twice; the rows of one return are consecutive;
without it each row is a return of its own), and per line `line_no` or `sku` (the line of
the order), `quantity` (items returned) and/or `amount` (money refunded). An
`occurred_at` column is read past: a return is booked when it is imported, as the API
books it when it is sent.

Returns are fewer than orders and each changes lots already booked, so they go through the
service one by one, a chunk to a transaction, each in a savepoint so that a refused return
changes nothing and the rest of its chunk still lands.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from jifen.core.clock import Clock
from jifen.core.errors import InvalidInput, JifenError, NotFound
from jifen.db.uow import Database
from jifen.earning.models import Purchase, PurchaseLine
from jifen.earning.returns import record_return
from jifen.earning.schemas import ReturnIn
from jifen.imports.files import Rejects, Row
from jifen.imports.orders import validation_reason
from jifen.programs.service import book_for, get_program

REQUIRED = ("order_id",)


@dataclass
class Summary:
    rows: int = 0
    returns: int = 0
    imported: int = 0
    already: int = 0
    rejected: int = 0
    points: int = 0
    """Points the orders no longer earn."""


@dataclass
class _Chunk:
    imported: int = 0
    already: int = 0
    points: int = 0
    rejected: list[tuple[list[Row], str]] = field(default_factory=list)


def group(rows: Iterable[Row]) -> Iterator[list[Row]]:
    """Consecutive rows of one return (a row without a return id is a return alone)."""
    current: list[Row] = []
    for row in rows:
        key = row.values.get("return_id")
        if current and (key is None or key != current[0].values.get("return_id")):
            yield current
            current = []
        current.append(row)
    if current:
        yield current


def import_returns(
    db: Database,
    program_id: int,
    rows: Iterable[Row],
    *,
    clock: Clock,
    actor: str,
    rejects: Rejects,
    chunk: int = 500,
    lang: str = "en",
    progress: Callable[[Summary], None] | None = None,
) -> Summary:
    summary = Summary()
    batch: list[list[Row]] = []

    def run() -> None:
        done = db.write(lambda s: _record(s, program_id, batch, clock.now(), actor, lang))
        summary.rows += sum(len(r) for r in batch)
        summary.returns += len(batch)
        summary.imported += done.imported
        summary.already += done.already
        summary.points += done.points
        summary.rejected += len(done.rejected)
        for refused, reason in done.rejected:
            rejects.add(refused, reason)
        if progress:
            progress(summary)

    for return_rows in group(rows):
        batch.append(return_rows)
        if len(batch) >= chunk:
            run()
            batch = []
    if batch:
        run()
    return summary


def _record(
    session: Session,
    program_id: int,
    batch: list[list[Row]],
    now: datetime,
    actor: str,
    lang: str,
) -> _Chunk:
    program = get_program(session, program_id)
    book = book_for(session, program)
    orders = {str(rows[0].values.get("order_id")) for rows in batch}
    purchases: dict[str, int] = dict(
        session.execute(
            select(Purchase.external_id, Purchase.id).where(
                Purchase.program_id == program_id, Purchase.external_id.in_(orders)
            )
        ).all()
    )
    skus: dict[int, dict[str, list[int]]] = defaultdict(lambda: defaultdict(list))
    for purchase_id, sku, line_no in session.execute(
        select(PurchaseLine.purchase_id, PurchaseLine.sku, PurchaseLine.line_no).where(
            PurchaseLine.purchase_id.in_(list(purchases.values()))
        )
    ):
        skus[purchase_id][sku].append(line_no)
    done = _Chunk()
    for rows in batch:
        try:
            order = str(rows[0].values.get("order_id"))
            if any(str(r.values.get("order_id")) != order for r in rows):
                raise InvalidInput(
                    field="order_id",
                    reason=f"differs between the rows of return {rows[0].values.get('return_id')}",
                )
            if order not in purchases:
                raise NotFound(what="order", key=order)
            purchase_id = purchases[order]
            data = _parse(rows, skus[purchase_id])
            with session.begin_nested():
                recorded = record_return(
                    session, program, book, purchase_id, data, now=now, actor=actor
                )
        except JifenError as exc:
            done.rejected.append((rows, exc.message(lang)))
            continue
        except ValidationError as exc:
            done.rejected.append((rows, validation_reason(exc)))
            continue
        if recorded.created:
            done.imported += 1
            done.points += recorded.row.points
        else:
            done.already += 1
    return done


def _parse(rows: list[Row], skus: dict[str, list[int]]) -> ReturnIn:
    lines: list[dict[str, Any]] = []
    for row in rows:
        values = row.values
        line: dict[str, Any] = {}
        if values.get("line_no") is not None:
            line["line_no"] = values["line_no"]
        elif values.get("sku") is not None:
            found = skus.get(str(values["sku"]), [])
            if len(found) != 1:
                reason = "is not in the order" if not found else "is on several lines: give line_no"
                raise InvalidInput(field="sku", reason=f"{values['sku']} {reason}")
            line["line_no"] = found[0]
        else:
            raise InvalidInput(field="line_no", reason="give the line's line_no or sku")
        for column in ("quantity", "amount"):
            if values.get(column) is not None:
                line[column] = values[column]
        lines.append(line)
    body: dict[str, Any] = {"lines": lines}
    if rows[0].values.get("return_id") is not None:
        body["external_id"] = str(rows[0].values["return_id"])
    return ReturnIn.model_validate(body)
