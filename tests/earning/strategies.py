"""Hypothesis strategies for the earning properties: rule sets drawn from the schema
(conditions, effects, stacking, rounding, order caps, member caps, budgets) and baskets
those rules can match."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from hypothesis import strategies as st

from earning.shop import item, local, order

SKUS = ("a", "b", "c")
CATEGORIES = ("fresh", "toys")
NOW = local(2026, 1, 15, 10)
"""The test clock's start."""

_BASE_EFFECTS = st.one_of(
    st.builds(
        lambda rate, per: {"points_per_amount": rate} | ({"per": per} if per != 1 else {}),
        st.sampled_from(["1", "2", "0.5", "1.5"]),
        st.sampled_from([1, 3, 10]),
    ),
    st.builds(lambda rate: {"points_per_quantity": rate}, st.sampled_from(["1", "5", "2.5"])),
)
_OTHER_EFFECTS = st.one_of(
    st.builds(lambda m: {"multiplier": m}, st.sampled_from(["1.5", "2", "3"])),
    st.builds(lambda b: {"bonus": b}, st.integers(1, 80)),
)

_WHEN = st.fixed_dictionaries(
    {},
    optional={
        "category": st.lists(st.sampled_from(CATEGORIES), min_size=1, max_size=2, unique=True),
        "sku": st.lists(st.sampled_from(SKUS), min_size=1, max_size=2, unique=True),
        "channel": st.lists(st.sampled_from(["pos", "web"]), min_size=1, max_size=1),
        "min_amount": st.sampled_from(["50", "100.00", "199.99", "300"]),
        "first_purchase": st.booleans(),
        "weekdays": st.lists(st.integers(1, 7), min_size=1, max_size=3, unique=True),
        "hours": st.sampled_from(
            [{"from": "08:00", "to": "12:00"}, {"from": "20:00", "to": "02:00"}]
        ),
    },
)


@st.composite
def earning_rule(draw: st.DrawFn, rule_id: str) -> dict[str, Any]:
    base = draw(st.booleans())
    effect = draw(_BASE_EFFECTS if base else _OTHER_EFFECTS)
    found: dict[str, Any] = {
        "id": rule_id,
        "name": rule_id,
        "effect": effect,
        "when": draw(_WHEN),
        "scope": draw(st.sampled_from(["order", "line"])),
        "rounding": draw(st.sampled_from(["floor", "round", "ceil"])),
        "priority": draw(st.integers(-1, 2)),
    }
    stacking = draw(st.sampled_from(["stack", "stack", "exclusive", "best_of"]))
    found["stacking"] = stacking
    if stacking == "best_of":
        # a best_of group may not mix base rates with multipliers and bonuses
        found["group"] = f"{'base' if base else 'extra'}-{draw(st.integers(1, 2))}"
    if draw(st.booleans()):
        found["cap_per_order"] = draw(st.integers(1, 150))
    if draw(st.booleans()):
        found["caps"] = draw(
            st.fixed_dictionaries(
                {}, optional={p: st.integers(1, 300) for p in ("day", "week", "month")}
            ).filter(bool)
        )
    if draw(st.booleans()):
        found["budget"] = {
            "points": draw(st.integers(1, 400)),
            "period": draw(st.sampled_from(["total", "day", "month"])),
        }
    return found


@st.composite
def rule_sets(draw: st.DrawFn) -> dict[str, Any]:
    """A RuleSet document: 1–5 earning rules, and the default or 1–2 random growth rules."""
    count = draw(st.integers(1, 5))
    document: dict[str, Any] = {
        "earning_rules": [draw(earning_rule(f"r{i}")) for i in range(count)],
    }
    if draw(st.booleans()):
        document["growth_rules"] = [
            draw(earning_rule(f"g{i}")) for i in range(draw(st.integers(1, 2)))
        ]
    return document


@st.composite
def lines(draw: st.DrawFn) -> list[dict[str, Any]]:
    found = []
    for _ in range(draw(st.integers(1, 4))):
        quantity = draw(st.integers(1, 3))
        cents = draw(st.integers(0, 15000))
        amount = Decimal(cents) / 100 * quantity
        discount = draw(st.sampled_from([Decimal(0), Decimal(0), amount / 10, amount]))
        fields: dict[str, Any] = {}
        category = draw(st.sampled_from((*CATEGORIES, None)))
        if category is not None:
            fields["category"] = category
        if discount:
            fields["discount"] = str(discount.quantize(Decimal("0.01"), rounding="ROUND_DOWN"))
        found.append(item(draw(st.sampled_from(SKUS)), Decimal(cents) / 100, quantity, **fields))
    return found


@st.composite
def baskets(draw: st.DrawFn, external_id: str, member: int | None) -> dict[str, Any]:
    """An order within the last three days (so inside the claim window), through pos or web."""
    at: datetime = NOW - timedelta(minutes=draw(st.integers(0, 3 * 24 * 60)))
    return order(
        external_id,
        *draw(lines()),
        member=member,
        at=at,
        channel=draw(st.sampled_from(["pos", "web"])),
    )
