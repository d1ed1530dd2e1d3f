"""The import's shortcuts give what the slow paths they stand for give: a chunk's orders
validated in one call (`jifen.imports.orders.parse_many`) are what each validated on its
own is, refusals and their reasons included; rows written by `copy_rows` are what
`write_rows` writes; the evaluator in whole numbers (`evaluate_lean`) gives `evaluate`'s
award, explanation and all; an order priced at once
(`jifen.earning.purchases.evaluate_at_once`) gets what `evaluate_with` gives it; the dates
of a batch's lots worked out once per day (`jifen.ledger.bulk.LotDates`) equal the
book's."""

from __future__ import annotations

import logging
import random
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Date,
    Integer,
    MetaData,
    Numeric,
    String,
    Table,
    select,
)

from earning.strategies import CATEGORIES, SKUS, rule_sets
from jifen.core.errors import InvalidInput
from jifen.db.base import Id, Json, UtcDateTime
from jifen.db.bulk import QUEUED_FROM, copy_rows, write_rows
from jifen.db.uow import Database
from jifen.earning.caps import Bound
from jifen.earning.purchases import evaluate_at_once, evaluate_with
from jifen.imports.files import Row
from jifen.imports.orders import group, parse, parse_many
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
from jifen.programs.rulesets import VersionedRules
from jifen.rules.evaluator import compile_rules, evaluate, evaluate_lean
from jifen.rules.facts import Basket, Line, MemberFacts
from jifen.rules.schemas import RuleSet

SHANGHAI = ZoneInfo("Asia/Shanghai")


def order_rows(order_id: str, lines: int, **changes: str | None) -> list[dict[str, str | None]]:
    base: dict[str, str | None] = {
        "order_id": order_id,
        "member_external_id": "M00001",
        "occurred_at": "2026-11-08T10:00:00+08:00",
        "channel": "store",
        "store": None,
        "payment_method": "wechat",
        "sku": "fresh-1",
        "category": "fresh",
        "brand": None,
        "quantity": "2",
        "unit_price": "3.50",
        "discount": "0.50",
        "total": f"{6.50 * lines:.2f}",
        "line_attr_origin": "yunnan",
        "order_attr_till": None,
    }
    return [{**base, "sku": f"fresh-{i}", **changes} for i in range(lines)]


def test_a_chunk_validated_at_once_is_each_order_validated_alone() -> None:
    good = [
        *order_rows("A", 1),
        *order_rows("B", 3, order_attr_till="7", line_attr_origin=None),
        *order_rows("C", 2, member_external_id=None, brand="house", total=None),
        *order_rows("D", 1, quantity="0.750", unit_price="4.00", discount="0", total="3.00"),
    ]
    bad = [
        *order_rows("E", 1, total="1.00"),
        *order_rows("F", 1, quantity="two"),
        *order_rows("G", 1, occurred_at="2026-11-08 10:00"),
        *order_rows("H", 2, sku=None),
        *order_rows("I", 1, unit_price="-3"),
        *order_rows("J", 1, line_attr_origin="x" * 201),
    ]
    differing = order_rows("K", 2)
    differing[1]["channel"] = "app"
    short = Row(99, {"order_id": "L", "occurred_at": "2026-11-08T10:00:00Z", "sku": "s"})
    for values in (good, good + bad, bad + good + differing, good + differing):
        groups = list(group([Row(n, v) for n, v in enumerate(values, start=2)]))
        assert parse_many(groups) == [parse(rows) for rows in groups]
    groups = [*group([Row(n, v) for n, v in enumerate(good, start=2)]), [short]]
    assert parse_many(groups) == [parse(rows) for rows in groups]
    assert all(o.data is not None for o in parse_many(groups[:-1]))
    refused = parse_many(list(group([Row(n, v) for n, v in enumerate(good + bad, start=2)])))
    assert [o.error is None for o in refused] == [True] * 4 + [False] * 6
    assert parse_many([]) == []


def versioned(document: dict[str, Any]) -> VersionedRules:
    rules = RuleSet.model_validate(document)
    return VersionedRules(
        3, rules, compile_rules(rules.earning_rules), compile_rules(rules.growth_rules)
    )


def room(bounds: list[Bound]) -> int:
    """Some room, the same for the same counters."""
    return sum(len(b.key) for b in bounds) % 40


lines = st.builds(
    Line,
    sku=st.sampled_from(SKUS),
    quantity=st.sampled_from([Decimal(1), Decimal(2), Decimal("0.750")]),
    amount=st.integers(0, 30_000).map(lambda cents: Decimal(cents).scaleb(-2)),
    category=st.sampled_from([*CATEGORIES, None]),
    attributes=st.sampled_from([{}, {"km": "12.5"}, {"km": "far"}]),
)
baskets = st.builds(
    Basket,
    at=st.sampled_from(
        [datetime(2026, 3, 8, 9, 30, tzinfo=SHANGHAI), datetime(2026, 3, 14, 23, tzinfo=SHANGHAI)]
    ),
    channel=st.sampled_from(["pos", "web"]),
    lines=st.lists(lines, min_size=0, max_size=5).map(tuple),
)
facts = st.builds(
    MemberFacts,
    tier=st.sampled_from([None, "gold"]),
    first_purchase=st.booleans(),
    tier_multiplier=st.sampled_from([None, Decimal("1.5")]),
)
plain_effects = st.one_of(
    st.builds(
        lambda kind, rate, per: {kind: rate, "per": per},
        st.sampled_from(["points_per_amount", "points_per_quantity"]),
        st.sampled_from([1, 2, "0.5", "1.5", "0.01", "3.333333"]),
        st.sampled_from([1, 3, 7, 10, "0.5"]),
    ),
    st.sampled_from([2, 3, "1.5", "1.25", "tier"]).map(lambda m: {"multiplier": m}),
    st.integers(1, 500).map(lambda b: {"bonus": b}),
    st.just({"points_per_attribute": "1.5", "attribute": "km"}),
)


@st.composite
def plain_rules(draw: st.DrawFn) -> list[dict[str, Any]]:
    """Mostly rule sets `evaluate_lean` computes itself; now and then one with an
    exclusive rule or a rate on an attribute (which it leaves to `evaluate`)."""
    plain = draw(st.sampled_from([True, True, True, False]))
    rules = []
    for i in range(draw(st.integers(0, 7))):
        effect = draw(plain_effects)
        if plain and "attribute" in effect:
            effect = {"points_per_amount": 1}
        rule: dict[str, Any] = {
            "id": f"r{i}",
            "name": f"rule {i}",
            "effect": effect,
            "when": draw(
                st.sampled_from(
                    [{}, {"category": [CATEGORIES[0]]}, {"sku": [SKUS[0], SKUS[1]]}, {}]
                )
            )
            | draw(st.sampled_from([{}, {"tier": ["gold"]}, {"min_amount": "150"}, {}])),
            "scope": draw(st.sampled_from(["order", "line"])),
            "rounding": draw(st.sampled_from(["floor", "round", "ceil"])),
            "priority": draw(st.integers(-1, 2)),
        }
        base = "multiplier" not in effect and "bonus" not in effect
        stacking = draw(st.sampled_from(["stack", "stack", "best_of", "best_of", "exclusive"]))
        if plain and stacking == "exclusive":
            stacking = "stack"
        rule["stacking"] = stacking
        if stacking == "best_of":
            rule["group"] = ("base-" if base else "other-") + draw(st.sampled_from("xy"))
        if draw(st.booleans()):
            rule["cap_per_order"] = draw(st.integers(1, 300))
        rules.append(rule)
    return rules


@settings(max_examples=600, deadline=None)
@given(plain_rules(), baskets, facts)
def test_the_evaluator_in_whole_numbers_gives_what_evaluate_gives(
    rules: list[dict[str, Any]], basket: Basket, member: MemberFacts
) -> None:
    compiled = compile_rules(RuleSet.model_validate({"earning_rules": rules}).earning_rules)
    found: list[Any] = []
    for price in (evaluate, evaluate_lean):
        try:
            found.append(price(compiled, basket, member))
        except ValueError as exc:  # a line without the attribute a rule needs
            found.append((type(exc), str(exc)))
    assert found[1] == found[0]


by_attribute = {"id": "km", "name": "km", "effect": {"points_per_attribute": 2, "attribute": "km"}}


@settings(max_examples=300, deadline=None)
@given(rule_sets(), baskets, facts, st.booleans(), st.booleans())
def test_an_order_priced_at_once_gets_what_evaluate_with_gives(
    document: dict[str, Any],
    basket: Basket,
    member: MemberFacts,
    plain: bool,
    attribute: bool,
) -> None:
    if plain:  # no caps nor budgets: the short way
        for rule in [*document["earning_rules"], *document.get("growth_rules", [])]:
            for key in ("caps", "budget"):
                rule.pop(key, None)
    if attribute:  # a rule that needs a numeric line attribute, which some lack
        document["earning_rules"].append(by_attribute)
    rules = versioned(document)
    found: list[Any] = []
    for price in (evaluate_with, evaluate_at_once):
        try:
            found.append(price(rules, 7, basket, member, room))
        except InvalidInput as exc:  # the same refusal, said the same way
            found.append((exc.code, exc.message("en")))
    assert found[1] == found[0]


META = MetaData()


def kinds(name: str) -> Table:
    return Table(
        name,
        META,
        Column("id", Id, primary_key=True),
        Column("n", Integer),
        Column("big", BigInteger),
        Column("code", String(20)),
        Column("yes", Boolean),
        Column("price", Numeric(12, 3)),
        Column("day", Date),
        Column("at", UtcDateTime),
        Column("doc", Json),
        Column("more", Json),
    )


BY_COPY, BY_WRITE = kinds("fast_copy"), kinds("fast_write")


@pytest.mark.parametrize("n", [3, QUEUED_FROM + 7])
def test_copy_rows_writes_what_write_rows_writes(
    db: Database, n: int, caplog: pytest.LogCaptureFixture
) -> None:
    META.create_all(db.engine)
    shared = {"purchase_id": 7, "order": "O-7", "tags": ["a", "é"]}  # one object, many rows
    rows = [
        {
            "id": i,
            "n": i - 2,
            "big": 2**40 + i,
            "code": None if i % 4 == 0 else f"c-{i}",
            "yes": i % 3 == 0,
            "price": Decimal(i).scaleb(-3) + Decimal("0.100"),
            "day": date(2026, 1 + i % 12, 1 + i % 28),
            "at": datetime(2026, 11, 20, 4, i % 60, 5, 123456, tzinfo=UTC),
            "doc": shared if i % 2 else [{"rule": "base", "points": i, "capped_by": None}],
            "more": None if i % 5 else {"x": 1.5, "n": i},
        }
        for i in range(1, n + 1)
    ]

    def both(session: Any) -> None:
        copy_rows(session, BY_COPY, rows)
        write_rows(session, BY_WRITE, rows)

    with caplog.at_level(logging.WARNING):
        db.write(both)
    assert caplog.records == []  # (psycopg warned of a JSON encoder it could not cache)

    def read(table: Table) -> list[tuple[Any, ...]]:
        return db.read(lambda s: [tuple(r) for r in s.execute(select(table).order_by(table.c.id))])

    written = read(BY_WRITE)
    assert read(BY_COPY) == written
    assert len(written) == n
    assert written[0][-2] == shared


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
