"""The tier measures of members over a window, read set-based (one query per measure for a
whole batch of members; one member is a batch of one).

- **growth**: the member's growth-value account movements dated in the window: credits,
  less the clawbacks and reversals of them. A clawback or reversal is dated by the credit
  it takes back, so a return takes growth out of the window that counted it, and a
  return of an order from before the window does not lower today's window. Read from
  the journal (entries of the growth account joined to their transactions), which is
  exact at all times and indexed by member.
- **spend**: the net totals (order total less refunds) of the member's purchases that
  occurred in the window.
- **purchases**: the member's purchases that occurred in the window and were not wholly
  returned.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any, TypeVar

from sqlalchemy import BigInteger, ColumnElement, Select, bindparam, case, func, select
from sqlalchemy import cast as sql_cast
from sqlalchemy.orm import InstrumentedAttribute, Session, aliased

from jifen.core.clock import as_utc
from jifen.db.bulk import among, among_bound
from jifen.earning.models import Purchase, PurchaseStatus
from jifen.ledger.models import Account, AccountKind, JournalEntry, JournalTransaction
from jifen.programs.tiers import Measure
from jifen.tiers.qualify import zero
from jifen.tiers.windows import Span

CENT = Decimal("0.01")


def _in(
    column: ColumnElement[datetime] | InstrumentedAttribute[datetime], span: Span
) -> ColumnElement[bool]:
    inside = column >= span.start
    return inside if span.end is None else inside & (column < span.end)


_ORIGINAL = aliased(JournalTransaction)
"""For a clawback or reversal, the credit it takes back."""
_DATED = func.coalesce(_ORIGINAL.created_at, JournalTransaction.created_at)
"""When a growth entry counts: a clawback or reversal on the date of what it takes back."""

Q = TypeVar("Q", bound=Select[*tuple[Any, ...]])


def _growth_entries(query: Q) -> Q:
    """`query` over the entries of the members' growth-value accounts, each joined to its
    transaction and to the credit a clawback or reversal takes back (`_DATED`)."""
    return (
        query.select_from(JournalEntry)
        .join(JournalTransaction, JournalTransaction.id == JournalEntry.transaction_id)
        .join(Account, Account.id == JournalEntry.account_id)
        .outerjoin(
            _ORIGINAL,
            _ORIGINAL.id
            == func.coalesce(JournalTransaction.clawback_of_id, JournalTransaction.reverses_id),
        )
        .where(Account.kind == AccountKind.GROWTH)
    )


def _growth_statement(bounded: bool) -> Select[int | None, int]:
    return _growth_entries(
        select(JournalEntry.member_id, func.sum(JournalEntry.amount))
        .where(
            JournalEntry.program_id == bindparam("program_id"),
            among_bound(JournalEntry.member_id, "member_ids"),
            _in_bound(_DATED, bounded),
        )
        .group_by(JournalEntry.member_id)
    )


def _bought_statement(bounded: bool) -> Select[int | None, Decimal, int]:
    return (
        select(
            Purchase.member_id,
            func.sum(Purchase.net_total),
            func.count(Purchase.id).filter(Purchase.status != PurchaseStatus.RETURNED),
        )
        .where(
            Purchase.program_id == bindparam("program_id"),
            among_bound(Purchase.member_id, "member_ids"),
            _in_bound(Purchase.occurred_at, bounded),
        )
        .group_by(Purchase.member_id)
    )


def _in_bound(
    column: ColumnElement[datetime] | InstrumentedAttribute[datetime], bounded: bool
) -> ColumnElement[bool]:
    """`_in` with the span's ends as bound parameters (`start`, and `end` if `bounded`)."""
    inside = column >= bindparam("start", type_=column.type)
    return inside & (column < bindparam("end", type_=column.type)) if bounded else inside


_GROWTH = {bounded: _growth_statement(bounded) for bounded in (False, True)}
_BOUGHT = {bounded: _bought_statement(bounded) for bounded in (False, True)}
"""Built once (by whether the span has an end): a statement built per call cost a tenth
of a purchase's CPU in SQLAlchemy's construction and cache-key work."""


def measure(
    session: Session,
    program_id: int,
    member_ids: Sequence[int],
    span: Span,
    which: Collection[Measure] = tuple(Measure),
) -> dict[int, dict[Measure, Decimal]]:
    """Each member's measures in `span` (every member of `member_ids` is in the answer;
    measures not asked for are 0)."""
    found = {member_id: zero() for member_id in member_ids}
    if not member_ids:
        return found
    bounded = span.end is not None
    params = {"program_id": program_id, "member_ids": list(member_ids), "start": span.start}
    if bounded:
        params["end"] = span.end
    if Measure.GROWTH in which:
        for member_id, total in session.execute(_GROWTH[bounded], params).all():
            if member_id is not None:
                found[member_id][Measure.GROWTH] = Decimal(int(total or 0))
    if Measure.SPEND in which or Measure.PURCHASES in which:
        for member_id, spend, count in session.execute(_BOUGHT[bounded], params).all():
            if member_id is None:
                continue
            found[member_id][Measure.SPEND] = Decimal(spend or 0).quantize(CENT)
            found[member_id][Measure.PURCHASES] = Decimal(int(count or 0))
    return found


def oldest(
    session: Session, program_id: int, member_id: int, span: Span
) -> dict[Measure, datetime | None]:
    """When the oldest amount each measure counts in `span` is dated (what drops out of a
    rolling window first)."""
    growth = session.execute(
        _growth_entries(select(func.min(_DATED))).where(
            JournalEntry.program_id == program_id,
            JournalEntry.member_id == member_id,
            JournalEntry.amount > 0,
            _in(_DATED, span),
        )
    ).scalar_one_or_none()
    bought = session.execute(
        select(func.min(Purchase.occurred_at)).where(
            Purchase.program_id == program_id,
            Purchase.member_id == member_id,
            Purchase.status != PurchaseStatus.RETURNED,
            _in(Purchase.occurred_at, span),
        )
    ).scalar_one_or_none()
    return {
        Measure.GROWTH: _aware(growth),
        Measure.SPEND: _aware(bought),
        Measure.PURCHASES: _aware(bought),
    }


def _aware(value: object) -> datetime | None:
    """min() over a UTC column comes back untyped on SQLite (text) and aware on PostgreSQL."""
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    assert isinstance(value, datetime)
    return as_utc(value)


def span_totals(
    program_id: int,
    member_ids: Sequence[int] | str | ColumnElement[Any] | Select[Any],
    spans: Sequence[Span],
    which: Collection[Measure] = tuple(Measure),
) -> tuple[Select[*tuple[Any, ...]] | None, Select[*tuple[Any, ...]] | None]:
    """The queries of `measure_spans` (None for one `which` does not need): growth, with
    columns `member_id, g0…` (each span's growth total), and purchases, with `member_id,
    s0…, c0…` (each span's spend and count of purchases kept). Each a conditional sum per
    span over what the union of the spans reads; the batch's ids one array parameter on
    PostgreSQL (`jifen.db.bulk.among`). `measure_spans` runs them; the evaluation job also
    joins them into its set-based decision (`jifen.tiers.jobs`), so both read the same;
    `member_ids` a name: the ids are that parameter, given when the query runs
    (PostgreSQL, `jifen.db.bulk.among_bound`); a column: the one member it names (a
    query correlated to an outer one, for a LATERAL join); a query of member ids: the
    members it finds (the evaluation's scan of all a programme's members: a semi-join,
    and the growth entries hash-aggregated as the plain aggregate of the benchmark does,
    not one member's index probes after another)."""
    everyone = isinstance(member_ids, Select)

    def of(column: Any) -> ColumnElement[bool]:
        if isinstance(member_ids, Select):
            found: ColumnElement[bool] = column.in_(member_ids)
            return found
        if isinstance(member_ids, str):
            return among_bound(column, member_ids)
        if isinstance(member_ids, ColumnElement):
            one: ColumnElement[bool] = column == member_ids
            return one
        return among(column, list(member_ids))

    union = Span(
        min(span.start for span in spans),
        None if any(span.end is None for span in spans) else max(s.end for s in spans if s.end),
    )
    growth: Select[*tuple[Any, ...]] | None = None
    if Measure.GROWTH in which:
        growth = (
            _growth_entries(
                select(
                    JournalEntry.member_id.label("member_id"),
                    *(
                        # a bigint (a sum of bigints is numeric): compared with whole
                        # thresholds as one by the evaluation
                        sql_cast(
                            func.sum(case((_in(_DATED, span), JournalEntry.amount))),
                            BigInteger(),
                        ).label(f"g{i}")
                        for i, span in enumerate(spans)
                    ),
                )
            )
            .where(
                JournalEntry.program_id == program_id,
                of(JournalEntry.member_id),
                # the accounts too: found by their index, not hashed whole to join them
                # (for a batch; the scan of everyone hashes them)
                *(() if everyone else (Account.program_id == program_id, of(Account.member_id))),
                _in(_DATED, union),
            )
            .group_by(JournalEntry.member_id)
        )
    bought: Select[*tuple[Any, ...]] | None = None
    if Measure.SPEND in which or Measure.PURCHASES in which:
        kept = Purchase.status != PurchaseStatus.RETURNED
        bought = (
            select(
                Purchase.member_id.label("member_id"),
                *(
                    func.sum(case((_in(Purchase.occurred_at, span), Purchase.net_total))).label(
                        f"s{i}"
                    )
                    for i, span in enumerate(spans)
                ),
                *(
                    func.count(case((_in(Purchase.occurred_at, span) & kept, Purchase.id))).label(
                        f"c{i}"
                    )
                    for i, span in enumerate(spans)
                ),
            )
            .where(
                Purchase.program_id == program_id,
                of(Purchase.member_id),
                _in(Purchase.occurred_at, union),
            )
            .group_by(Purchase.member_id)
        )
    return growth, bought


def growth_of(total: Any) -> Decimal:
    """A growth total as `measure` gives it (a sum over no entries is NULL: 0)."""
    return Decimal(int(total or 0))


def spend_of(total: Any) -> Decimal:
    return Decimal(total or 0).quantize(CENT)


def purchases_of(count: Any) -> Decimal:
    return Decimal(int(count or 0))


def measure_spans(
    session: Session,
    program_id: int,
    member_ids: Sequence[int],
    spans: Sequence[Span],
    which: Collection[Measure] = tuple(Measure),
) -> list[dict[int, dict[Measure, Decimal]]]:
    """`measure` of (at least) the measures `which`, the others 0, over each of `spans`
    (one answer per span, in order), in one query per measure kind for all the spans
    (`span_totals`)."""
    nothing = zero()  # copied: Decimal("0.00") is parsed once, not once per member
    found = [{member_id: dict(nothing) for member_id in member_ids} for _ in spans]
    if not member_ids or not spans:
        return found
    growth, bought = span_totals(program_id, member_ids, spans, which)
    connection = session.connection()  # plain rows: no ORM result processing
    if growth is not None:
        for member_id, *totals in connection.execute(growth).all():
            if member_id is None:
                continue
            for answer, total in zip(found, totals, strict=True):
                answer[member_id][Measure.GROWTH] = growth_of(total)
    if bought is not None:
        n = len(spans)
        for member_id, *sums in connection.execute(bought).all():
            if member_id is None:
                continue
            for answer, spend, count in zip(found, sums[:n], sums[n:], strict=True):
                answer[member_id][Measure.SPEND] = spend_of(spend)
                answer[member_id][Measure.PURCHASES] = purchases_of(count)
    return found
