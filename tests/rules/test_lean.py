"""The evaluator in one pass (`evaluate_lean`, what a bulk import prices with) gives what
`evaluate` gives: the award, its explanation and its refusals, for many baskets priced
with one compiled rule set (its lines' matches are looked up by their shape the second
time a shape comes)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

import imports.test_fast_paths as fast
from earning.strategies import CATEGORIES, SKUS
from jifen.rules.evaluator import compile_rules, evaluate, evaluate_lean
from jifen.rules.facts import Basket, Line, MemberFacts
from jifen.rules.schemas import RuleSet

lines = st.builds(
    Line,
    sku=st.sampled_from(SKUS),
    quantity=st.sampled_from([Decimal(1), Decimal(2), Decimal("0.750")]),
    amount=st.integers(0, 30_000).map(lambda cents: Decimal(cents).scaleb(-2)),
    category=st.sampled_from([*CATEGORIES, None]),
    brand=st.sampled_from([None, "house"]),
    attributes=st.sampled_from([{}, {"km": "12.5"}, {"km": "far"}, {"fare": "Y", "km": "3"}]),
)
baskets = st.builds(
    Basket,
    at=fast.baskets.map(lambda b: b.at),
    channel=st.sampled_from(["pos", "web"]),
    lines=st.lists(lines, min_size=0, max_size=5).map(tuple),
)
facts = st.builds(
    MemberFacts,
    tier=st.sampled_from([None, "gold"]),
    first_purchase=st.booleans(),
    tier_multiplier=st.sampled_from(
        [None, Decimal("1.5"), Decimal("1.50"), Decimal(1), Decimal("0.9"), Decimal("1.2")]
    ),
)


@st.composite
def rule_sets(draw: st.DrawFn) -> list[dict[str, Any]]:
    """`plain_rules`, with now and then a rule switched off or matching a line attribute."""
    rules = draw(fast.plain_rules())
    for rule in rules:
        if draw(st.integers(0, 5)) == 0:
            rule["active"] = False
        if draw(st.integers(0, 5)) == 0:
            rule["when"] = rule["when"] | {"attributes": {"fare": ["Y"]}}
        if draw(st.integers(0, 5)) == 0:
            rule["when"] = rule["when"] | {"brand": ["house"]}
    return rules


def priced(price: Any, compiled: Any, basket: Basket, member: MemberFacts) -> Any:
    try:
        return price(compiled, basket, member)
    except ValueError as exc:  # a line without the attribute a rule needs
        return (type(exc), str(exc))


@settings(max_examples=500, deadline=None)
@given(rule_sets(), st.lists(st.tuples(baskets, facts), min_size=1, max_size=6))
def test_the_evaluator_in_one_pass_gives_what_evaluate_gives(
    rules: list[dict[str, Any]], orders: list[tuple[Basket, MemberFacts]]
) -> None:
    compiled = compile_rules(RuleSet.model_validate({"earning_rules": rules}).earning_rules)
    for _ in range(2):  # the second time, every line's shape is known
        for basket, member in orders:
            wanted = priced(evaluate, compiled, basket, member)
            assert priced(evaluate_lean, compiled, basket, member) == wanted


def test_the_retail_chains_rules_in_one_pass() -> None:
    """The rule set the import benchmark prices with: base rate, category and member-day
    multipliers, the tier's multiplier and two best_of spend bonuses."""
    rules = [
        {"id": "base", "name": "base", "effect": {"points_per_amount": 1}},
        {
            "id": "double-fresh",
            "name": "fresh",
            "when": {"category": ["fresh", "dairy"]},
            "effect": {"multiplier": 2},
        },
        {"id": "day", "name": "day", "when": {"days_of_month": [8]}, "effect": {"multiplier": 2}},
        {"id": "tier", "name": "tier", "effect": {"multiplier": "tier"}},
        {
            "id": "s200",
            "name": "200",
            "when": {"min_amount": 200},
            "effect": {"bonus": 20},
            "stacking": "best_of",
            "group": "spend",
        },
        {
            "id": "s500",
            "name": "500",
            "when": {"min_amount": 500},
            "effect": {"bonus": 80},
            "stacking": "best_of",
            "group": "spend",
        },
    ]
    compiled = compile_rules(RuleSet.model_validate({"earning_rules": rules}).earning_rules)
    fresh = Line("fresh-1", Decimal(3), Decimal("19.80"), category="fresh")
    other = Line("soap-1", Decimal(1), Decimal("480.01"), category="household")
    gold = MemberFacts(tier="gold", tier_multiplier=Decimal("1.5"))
    shanghai = fast.SHANGHAI
    for at in (datetime(2026, 3, 8, 9, tzinfo=shanghai), datetime(2026, 3, 9, 9, tzinfo=shanghai)):
        for basket_lines in ((fresh,), (fresh, other), (other, fresh, fresh)):
            basket = Basket(at=at, channel="pos", lines=basket_lines)
            for member in (MemberFacts(), gold):
                award = evaluate_lean(compiled, basket, member)
                assert award == evaluate(compiled, basket, member)
                assert [i.as_dict() for i in award.items] == [
                    i.as_dict() for i in evaluate(compiled, basket, member).items
                ]
