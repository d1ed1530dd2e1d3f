"""Each effect alone, its basis, and each rounding at line and order scope."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from jifen.rules.evaluator import BasketError, Item
from jifen.rules.schemas import EffectKind

from .build import award, base, basket, line, points, rule


def only_item(rules: list[Any], *lines: Any) -> Item:
    (item,) = award(rules, basket(*lines)).items
    return item


# --- base rates -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rate", "per", "amounts", "expected"),
    [
        (1, 1, ["123.45"], 123),  # 1 元 = 1 积分, floor
        (2, 1, ["123.45"], 246),
        ("0.5", 1, ["123.45"], 61),
        (1, 2, ["123.45"], 61),  # 1 point per 2 元: 61.725
        (1, 10, ["99.99"], 9),
        (1, 3, ["3.00"], 1),  # 1 point per 3 元, exactly 3 元
        (1, 3, ["1.00", "1.00", "1.00"], 1),  # the same, over three lines
        (2, 3, ["6.00"], 4),
        (1, 7, ["70.00"], 10),
        (1, "0.5", ["10.25"], 20),  # 1 point per 0.5 元
    ],
)
def test_points_per_amount(rate: Any, per: Any, amounts: list[str], expected: int) -> None:
    rules = [rule("r", {"points_per_amount": rate, "per": per})]
    item = only_item(rules, *(line(a) for a in amounts))
    assert item.points == expected
    assert item.effect == EffectKind.PER_AMOUNT
    assert item.basis == sum(Decimal(a) for a in amounts)


def test_points_per_amount_is_on_the_net_amount_of_each_line() -> None:
    # the line's amount is what was paid, after its discount
    assert points([base()], basket(line("89.90"), line("10.10"), line("0.00"))) == {"base": 100}


def test_points_per_quantity() -> None:
    rules = [rule("r", {"points_per_quantity": 5})]
    item = only_item(rules, line(10, quantity=2), line(99, quantity=3))
    assert (item.points, item.basis, item.effect) == (25, Decimal(5), EffectKind.PER_QUANTITY)
    per_two = [rule("r", {"points_per_quantity": 1, "per": 2})]
    assert points(per_two, basket(line(10, quantity=3))) == {"r": 1}
    kilos = [rule("r", {"points_per_quantity": 1})]
    assert points(kilos, basket(line(10, quantity="2.75"))) == {"r": 2}


def test_points_per_attribute() -> None:
    flight = [rule("miles", {"points_per_attribute": 1, "attribute": "distance"})]
    item = only_item(flight, line(1200, distance="1234.5"), line(800, distance="800"))
    assert (item.points, item.basis) == (2034, Decimal("2034.5"))
    assert item.effect == EffectKind.PER_ATTRIBUTE
    half = [rule("miles", {"points_per_attribute": "0.5", "attribute": "distance"})]
    assert points(half, basket(line(1, distance="1001"))) == {"miles": 500}


@pytest.mark.parametrize(
    ("attributes", "reason"),
    [
        ({}, "is missing (rule 'miles' computes on it)"),
        ({"distance": "far"}, "is 'far', not a number"),
        ({"distance": ""}, "is '', not a number"),
        ({"distance": "-5"}, "is '-5', not a number ≥ 0"),
        ({"distance": "NaN"}, "is 'NaN', not a number ≥ 0"),
        ({"distance": "Infinity"}, "is 'Infinity', not a number ≥ 0"),
    ],
)
def test_points_per_attribute_needs_a_number(attributes: dict[str, str], reason: str) -> None:
    flight = [rule("miles", {"points_per_attribute": 1, "attribute": "distance"})]
    order = basket(line(1, distance="100"), line(1, **attributes))
    with pytest.raises(BasketError) as caught:
        award(flight, order)
    assert str(caught.value) == f"line 2: attribute 'distance' {reason}"
    assert (caught.value.line, caught.value.attribute) == (1, "distance")


def test_points_per_attribute_reads_only_matched_lines() -> None:
    # a line the rule does not match need not carry the attribute
    flight = [
        rule(
            "miles",
            {"points_per_attribute": 1, "attribute": "distance"},
            when={"category": ["flight"]},
        )
    ]
    order = basket(line(1, category="flight", distance="500"), line(1, category="hotel"))
    assert points(flight, order) == {"miles": 500}


# --- multipliers --------------------------------------------------------------------------


def test_multiplier_adds_on_its_lines_only() -> None:
    rules = [base(), rule("double", {"multiplier": 2}, when={"category": ["grocery"]})]
    order = basket(line(100, category="grocery"), line(50, category="toys"))
    result = award(rules, order)
    assert result.by_rule() == {"base": 150, "double": 100}
    double = result.items[1]
    assert (double.effect, double.basis, double.lines) == (EffectKind.MULTIPLIER, 100, (0,))


def test_multiplier_is_m_minus_one_times_base() -> None:
    rules = [base(), rule("x", {"multiplier": "1.5"})]
    assert points(rules, basket(line(100))) == {"base": 100, "x": 50}


def test_multiplier_without_base_points_gives_nothing() -> None:
    assert points([rule("double", {"multiplier": 2})], basket(line(100))) == {}
    rules = [base(when={"category": ["toys"]}), rule("x", {"multiplier": 2})]
    # the multiplier matches the grocery line, where the base rule gives nothing
    only_grocery = [*rules[:1], rule("x", {"multiplier": 2}, when={"category": ["grocery"]})]
    order = basket(line(100, category="grocery"), line(10, category="toys"))
    assert points(only_grocery, order) == {"base": 10}
    assert points(rules, order) == {"base": 10, "x": 10}


def test_multiplier_on_a_rate_per_several_units() -> None:
    # 1 point per 3 元 on three lines of 1 元: exactly 1 point, doubled
    rules = [rule("base", {"points_per_amount": 1, "per": 3}), rule("double", {"multiplier": 2})]
    assert points(rules, basket(line(1), line(1), line(1))) == {"base": 1, "double": 1}


def test_multiplier_multiplies_every_base_rate() -> None:
    rules = [
        base(),
        rule("per-item", {"points_per_quantity": 10}),
        rule("triple", {"multiplier": 3}),
    ]
    assert points(rules, basket(line(100, quantity=2))) == {
        "base": 100,
        "per-item": 20,
        "triple": 240,
    }


# --- bonuses ------------------------------------------------------------------------------


def test_bonus_per_order() -> None:
    item = only_item([rule("b", {"bonus": 50})], line(1), line(2), line(3))
    assert (item.points, item.basis, item.effect) == (50, Decimal(1), EffectKind.BONUS)


def test_bonus_per_line() -> None:
    rules = [rule("b", {"bonus": 5}, scope="line", when={"category": ["new"]})]
    item = only_item(rules, line(1, category="new"), line(2), line(3, category="new"))
    assert (item.points, item.basis, item.lines) == (10, Decimal(2), (0, 2))


def test_bonus_is_not_multiplied() -> None:
    rules = [rule("b", {"bonus": 50}), rule("double", {"multiplier": 2})]
    assert points(rules, basket(line(10))) == {"b": 50}


# --- rounding ---------------------------------------------------------------------------

THREE_HALVES = (line("0.50"), line("0.50"), line("0.50"))  # 0.5 point each at 1 per 元


@pytest.mark.parametrize(
    ("scope", "rounding", "expected"),
    [
        ("line", "floor", 0),  # 0 + 0 + 0
        ("line", "round", 3),  # 1 + 1 + 1 (half up)
        ("line", "ceil", 3),
        ("order", "floor", 1),  # 1.5
        ("order", "round", 2),
        ("order", "ceil", 2),
    ],
)
def test_base_rounding(scope: str, rounding: str, expected: int) -> None:
    rules = [base(scope=scope, rounding=rounding)]
    assert points(rules, basket(*THREE_HALVES)) == ({"base": expected} if expected else {})


@pytest.mark.parametrize(
    ("amount", "rounding", "expected"),
    [
        ("2.50", "round", 3),  # half up, not to even
        ("3.50", "round", 4),
        ("2.49", "round", 2),
        ("2.01", "ceil", 3),
        ("2.00", "ceil", 2),
        ("2.99", "floor", 2),
    ],
)
def test_rounding_modes(amount: str, rounding: str, expected: int) -> None:
    assert points([base(rounding=rounding)], basket(line(amount))) == {"base": expected}


@pytest.mark.parametrize(
    ("scope", "rounding", "expected"),
    [
        ("line", "floor", 0),
        ("line", "round", 3),
        ("line", "ceil", 3),
        ("order", "floor", 1),
        ("order", "round", 2),
        ("order", "ceil", 2),
    ],
)
def test_multiplier_rounding(scope: str, rounding: str, expected: int) -> None:
    # the base gives exactly 1 point a line; ×1.5 adds 0.5 a line
    rules = [base(), rule("x", {"multiplier": "1.5"}, scope=scope, rounding=rounding)]
    got = points(rules, basket(line(1), line(1), line(1)))
    assert got == ({"base": 3, "x": expected} if expected else {"base": 3})


def test_multiplier_works_on_exact_base_points() -> None:
    # base floors 0.5 + 0.5 + 0.5 to 1; the 2× extra is on the exact 1.5, floored: 1
    rules = [base(), rule("double", {"multiplier": 2})]
    assert points(rules, basket(*THREE_HALVES)) == {"base": 1, "double": 1}


def test_line_scope_rounds_each_matched_line() -> None:
    rules = [base(scope="line", rounding="ceil", when={"category": ["a"]})]
    order = basket(
        line("0.10", category="a"), line("0.10", category="b"), line("0.10", category="a")
    )
    assert points(rules, order) == {"base": 2}
