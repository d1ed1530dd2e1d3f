"""Properties of the evaluator over random rules and baskets (hypothesis)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from jifen.rules.evaluator import compile_rules, evaluate
from jifen.rules.facts import Basket, Line, MemberFacts
from jifen.rules.schemas import EarningRule, RuleSet

from .build import TUESDAY, local

CATEGORIES = ["fresh", "dairy", "toys"]

money = st.integers(0, 100_000).map(lambda cents: Decimal(cents).scaleb(-2))
quantities = st.one_of(
    st.integers(1, 5).map(Decimal), st.sampled_from([Decimal("0.5"), Decimal("2.25")])
)
lines = st.builds(
    Line,
    sku=st.sampled_from(["a", "b", "c"]),
    quantity=quantities,
    amount=money,
    category=st.sampled_from([*CATEGORIES, None]),
)
moments = st.sampled_from([TUESDAY, local(2026, 3, 8, 9, 30), local(2026, 3, 14, 23, 0)])
baskets = st.builds(
    Basket,
    at=moments,
    channel=st.sampled_from(["pos", "app"]),
    lines=st.lists(lines, min_size=1, max_size=6).map(tuple),
)
members = st.builds(
    MemberFacts,
    tier=st.sampled_from([None, "gold"]),
    first_purchase=st.booleans(),
)
rates = st.sampled_from([1, 2, "0.5", "1.5", "0.01", "3.333333"])
pers = st.sampled_from([1, 2, 3, 7, 10, "0.5"])
roundings = st.sampled_from(["floor", "round", "ceil"])
scopes = st.sampled_from(["order", "line"])
line_conditions = st.one_of(
    st.just({}),
    st.lists(st.sampled_from(CATEGORIES), min_size=1, max_size=2, unique=True).map(
        lambda c: {"category": c}
    ),
    st.just({"sku": ["a"]}),
)
order_conditions = st.one_of(
    st.just({}),
    st.just({"channel": ["app"]}),
    st.just({"tier": ["gold"]}),
    st.just({"days_of_month": [8, -1]}),
    st.just({"weekdays": [6, 7]}),
    st.just({"hours": {"from": "22:00", "to": "10:00"}}),
    st.just({"first_purchase": True}),
    money.map(lambda amount: {"min_amount": str(amount)}),
)
base_effects = st.one_of(
    st.builds(lambda r, p: {"points_per_amount": r, "per": p}, rates, pers),
    st.builds(lambda r, p: {"points_per_quantity": r, "per": p}, rates, pers),
)
other_effects = st.one_of(
    st.sampled_from([2, 3, "1.5", "1.25"]).map(lambda m: {"multiplier": m}),
    st.integers(1, 500).map(lambda b: {"bonus": b}),
)


@st.composite
def rule_dicts(draw: st.DrawFn) -> dict[str, Any]:
    is_base = draw(st.booleans())
    effect = draw(base_effects if is_base else other_effects)
    rule: dict[str, Any] = {
        "name": "rule",
        "effect": effect,
        "when": draw(line_conditions) | draw(order_conditions),
        "scope": draw(scopes),
        "rounding": draw(roundings),
        "priority": draw(st.integers(-2, 2)),
    }
    stacking = draw(st.sampled_from(["stack", "stack", "exclusive", "best_of"]))
    rule["stacking"] = stacking
    if stacking == "best_of":
        rule["group"] = ("base-" if is_base else "other-") + draw(st.sampled_from("xy"))
    if draw(st.booleans()):
        rule["cap_per_order"] = draw(st.integers(1, 300))
    return rule


rule_lists = st.lists(rule_dicts(), max_size=8).map(
    lambda rules: (
        RuleSet.model_validate(
            {"earning_rules": [r | {"id": f"r{i}"} for i, r in enumerate(rules)]}
        ).earning_rules
    )
)
allowance_maps = st.dictionaries(
    st.sampled_from([f"r{i}" for i in range(8)]), st.integers(-5, 200), max_size=4
)


@settings(max_examples=150)
@given(rule_lists, baskets, members, allowance_maps)
def test_deterministic_never_negative_and_points_add_up(
    rules: list[EarningRule], basket: Basket, member: MemberFacts, allowances: dict[str, int]
) -> None:
    award = evaluate(rules, basket, member, allowances=allowances)
    assert award == evaluate(rules, basket, member, allowances=allowances)
    assert award == evaluate(compile_rules(rules), basket, member, allowances=allowances)
    assert award.points == sum(item.points for item in award.items)
    assert award.points >= 0
    ids = [r.id for r in rules]
    assert [item.rule for item in award.items] == sorted(
        (item.rule for item in award.items), key=ids.index
    )
    for item in award.items:
        assert 0 <= item.points <= item.wanted
        assert (item.points < item.wanted) == (item.capped_by is not None)


@settings(max_examples=100)
@given(
    base_effects.filter(lambda e: "points_per_amount" in e),
    line_conditions,
    st.one_of(st.just({}), money.map(lambda amount: {"min_amount": str(amount)})),
    baskets,
    lines,
)
def test_adding_a_line_never_lowers_an_order_award(
    effect: dict[str, Any],
    on_lines: dict[str, Any],
    on_order: dict[str, Any],
    basket: Basket,
    extra: Line,
) -> None:
    rule = EarningRule.model_validate(
        {"id": "r", "name": "r", "effect": effect, "when": on_lines | on_order}
    )
    before = evaluate([rule], basket, MemberFacts()).points
    bigger = Basket(at=basket.at, channel=basket.channel, lines=(*basket.lines, extra))
    assert evaluate([rule], bigger, MemberFacts()).points >= before


@st.composite
def line_rules(draw: st.DrawFn) -> list[EarningRule]:
    count = draw(st.integers(1, 4))
    return [
        EarningRule.model_validate(
            {
                "id": f"r{i}",
                "name": "r",
                "effect": draw(base_effects),
                "when": draw(line_conditions),
                "scope": "line",
                "rounding": draw(roundings),
            }
        )
        for i in range(count)
    ]


@settings(max_examples=100)
@given(line_rules(), baskets)
def test_line_scope_award_is_the_sum_over_its_lines(
    rules: list[EarningRule], basket: Basket
) -> None:
    whole = evaluate(rules, basket, MemberFacts()).by_rule()
    apart: dict[str, int] = {}
    for one in basket.lines:
        alone = Basket(at=basket.at, channel=basket.channel, lines=(one,))
        for rule, points in evaluate(rules, alone, MemberFacts()).by_rule().items():
            apart[rule] = apart.get(rule, 0) + points
    assert whole == {rule: points for rule, points in apart.items() if points}
