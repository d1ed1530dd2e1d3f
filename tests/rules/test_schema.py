"""The errors a person gets for a bad rule: each names the field and says what to fix."""

from __future__ import annotations

from datetime import time
from decimal import Decimal
from fractions import Fraction
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from jifen.rules.schemas import EarningRule, Effect, EventRule, RuleSet

OK = {"id": "r", "name": "r", "effect": {"bonus": 10}}


def error(model: Any, data: dict[str, Any]) -> tuple[str, str]:
    """(where, message) of the single error validating `data` gives."""
    with pytest.raises(ValidationError) as caught:
        model.model_validate(data)
    (only,) = caught.value.errors()
    return ".".join(str(part) for part in only["loc"]), only["msg"]


def rule_error(**fields: Any) -> tuple[str, str]:
    return error(EarningRule, OK | fields)


def test_a_good_rule_validates() -> None:
    assert EarningRule.model_validate(OK).effect == Effect(bonus=10)


@pytest.mark.parametrize(
    ("effect", "message"),
    [
        (
            {"bonus": 10, "multiplier": 2},
            "give exactly one of points_per_amount, points_per_quantity, "
            "points_per_attribute, multiplier, bonus (got multiplier, bonus)",
        ),
        (
            {},
            "give exactly one of points_per_amount, points_per_quantity, "
            "points_per_attribute, multiplier, bonus",
        ),
        ({"multiplier": 2, "per": 2}, "'per' only goes with points_per_amount/quantity/attribute"),
        ({"bonus": 5, "per": 10}, "'per' only goes with points_per_amount/quantity/attribute"),
        ({"points_per_attribute": 1}, "points_per_attribute and attribute go together"),
        (
            {"points_per_amount": 1, "attribute": "distance"},
            "points_per_attribute and attribute go together",
        ),
    ],
)
def test_bad_effects(effect: dict[str, Any], message: str) -> None:
    assert rule_error(effect=effect) == ("effect", f"Value error, {message}")


@pytest.mark.parametrize(
    ("effect", "where", "message"),
    [
        ({"multiplier": 1}, "effect.multiplier", "Input should be greater than 1"),
        ({"points_per_amount": 0}, "effect.points_per_amount", "Input should be greater than 0"),
        ({"bonus": 0}, "effect.bonus", "Input should be greater than 0"),
        ({"points_per_amount": 1, "per": 0}, "effect.per", "Input should be greater than 0"),
    ],
)
def test_effect_numbers_in_range(effect: dict[str, Any], where: str, message: str) -> None:
    assert rule_error(effect=effect) == (where, message)


@pytest.mark.parametrize(
    "condition",
    ["channel", "store", "payment_method", "tier", "segment", "sku", "category", "brand"],
)
def test_empty_lists(condition: str) -> None:
    assert rule_error(when={condition: []}) == (
        f"when.{condition}",
        "Value error, an empty list matches nothing; leave the condition out instead",
    )


def test_empty_days() -> None:
    for condition in ("weekdays", "days_of_month"):
        where, message = rule_error(when={condition: []})
        assert (where, "leave the condition out" in message) == (f"when.{condition}", True)


def test_empty_attributes() -> None:
    assert rule_error(when={"attributes": {"fare_class": []}}) == (
        "when.attributes",
        "Value error, attribute 'fare_class': an empty list matches nothing; "
        "list the values it may have",
    )
    assert rule_error(when={"attributes": {}}) == (
        "when.attributes",
        "Value error, name at least one attribute, or leave the condition out",
    )


@pytest.mark.parametrize(
    ("when", "where", "message"),
    [
        ({"weekdays": [0]}, "when.weekdays.0", "Input should be greater than or equal to 1"),
        ({"weekdays": [8]}, "when.weekdays.0", "Input should be less than or equal to 7"),
        (
            {"days_of_month": [32]},
            "when.days_of_month.0",
            "Input should be less than or equal to 31",
        ),
        (
            {"days_of_month": [-2]},
            "when.days_of_month.0",
            "Input should be greater than or equal to -1",
        ),
        (
            {"days_of_month": [8, 0]},
            "when.days_of_month",
            "Value error, 0 is no day of the month: give 1–31, or -1 for the last day",
        ),
        (
            {"min_amount": "199.999"},
            "when.min_amount",
            "Decimal input should have no more than 2 decimal places",
        ),
        ({"min_amount": -1}, "when.min_amount", "Input should be greater than or equal to 0"),
    ],
)
def test_condition_values_in_range(when: dict[str, Any], where: str, message: str) -> None:
    assert rule_error(when=when) == (where, message)


def test_hours() -> None:
    assert rule_error(when={"hours": {"from": "10:00", "to": "10:00"}}) == (
        "when.hours",
        "Value error, 'from' and 'to' are the same time: the range would be empty",
    )
    assert rule_error(when={"hours": {"from": "10:00"}}) == ("when.hours.to", "Field required")


def test_hours_written_unquoted_in_yaml() -> None:
    # YAML 1.1 reads 22:00 as the sexagesimal number 1320, which would be 00:22
    when = yaml.safe_load("hours: {from: 22:00, to: '02:00'}")
    assert when == {"hours": {"from": 1320, "to": "02:00"}}
    assert rule_error(when=when) == (
        "when.hours.from",
        "Value error, write the time in quotes, as '22:00' "
        "(YAML reads an unquoted 22:00 as 1320); 1320 is a number",
    )
    quoted = yaml.safe_load("hours: {from: '22:00', to: '02:00'}")
    hours = EarningRule.model_validate(OK | {"when": quoted}).when.hours
    assert hours is not None
    assert (hours.start, hours.end) == (time(22, 0), time(2, 0))


def test_hours_take_no_offset() -> None:
    # an aware time would fail to compare with the local time at evaluation
    assert rule_error(when={"hours": {"from": "09:00+08:00", "to": "12:00"}}) == (
        "when.hours.from",
        "Value error, give the local time without an offset ('22:00', not '22:00+08:00'): "
        "hours are read in the programme's time zone",
    )


def test_dates() -> None:
    assert rule_error(when={"dates": {"from": "2026-02-01", "to": "2026-01-31"}}) == (
        "when.dates",
        "Value error, 'to' is before 'from'",
    )
    assert rule_error(when={"dates": {}}) == (
        "when.dates",
        "Value error, give 'from', 'to' or both",
    )
    assert rule_error(when={"dates": {"from": 0}}) == (
        "when.dates.from",
        "Value error, write the date as YYYY-MM-DD, e.g. 2026-11-11; 0 is a number",
    )
    # YAML dates are dates already
    dates = yaml.safe_load("dates: {from: 2026-11-01, to: 2026-11-11}")
    assert EarningRule.model_validate(OK | {"when": dates}).when.dates is not None
    one_day = {"dates": {"from": "2026-11-11", "to": "2026-11-11"}}
    assert EarningRule.model_validate(OK | {"when": one_day}).when.dates is not None


def test_unknown_fields_are_named() -> None:
    assert rule_error(when={"categroy": ["fresh"]}) == (
        "when.categroy",
        "Extra inputs are not permitted",
    )
    assert rule_error(stacking="best_of", grup="g") == ("grup", "Extra inputs are not permitted")
    assert rule_error(effect={"bonus": 1, "points": 2}) == (
        "effect.points",
        "Extra inputs are not permitted",
    )
    assert error(RuleSet, {"earnings_rules": []}) == (
        "earnings_rules",
        "Extra inputs are not permitted",
    )


def test_stacking() -> None:
    assert rule_error(stacking="best_of") == (
        "",
        "Value error, a best_of rule needs a group: the rules it competes with",
    )
    assert rule_error(group="spend") == ("", "Value error, group only goes with stacking: best_of")
    assert rule_error(stacking="biggest") == (
        "stacking",
        "Input should be 'stack', 'exclusive' or 'best_of'",
    )
    assert rule_error(rounding="half_even") == (
        "rounding",
        "Input should be 'floor', 'round' or 'ceil'",
    )


def test_ids() -> None:
    where, message = rule_error(id="Double Points")
    assert (where, message) == (
        "id",
        "Value error, 1–63 lower-case letters, digits, '-' or '_', starting with a letter or digit",
    )


def test_budget_per_is_for_events() -> None:
    assert rule_error(budget={"points": 1000, "per": "manager"}) == (
        "",
        "Value error, an earning rule's budget cannot be split ('per' is for events)",
    )


def test_duplicate_ids() -> None:
    rules = [OK, OK | {"name": "another"}]
    assert error(RuleSet, {"earning_rules": rules}) == (
        "",
        "Value error, earning_rules: rule id 'r' appears twice",
    )
    assert error(RuleSet, {"growth_rules": rules}) == (
        "",
        "Value error, growth_rules: rule id 'r' appears twice",
    )
    # the same id in earning and growth rules is fine: they are separate lists
    assert RuleSet.model_validate({"earning_rules": [OK], "growth_rules": [OK]})


def test_best_of_group_mixing_base_and_multiplier() -> None:
    rules = [
        {"id": "a", "name": "a", "effect": {"points_per_amount": 1}},
        {"id": "b", "name": "b", "effect": {"multiplier": 2}},
    ]
    grouped = [r | {"stacking": "best_of", "group": "g"} for r in rules]
    assert error(RuleSet, {"earning_rules": grouped}) == (
        "",
        "Value error, earning_rules: best_of group 'g' mixes base rates with "
        "multipliers or bonuses; they cannot compete",
    )
    bonus_and_multiplier = [grouped[1], OK | {"stacking": "best_of", "group": "g"}]
    assert RuleSet.model_validate({"earning_rules": bonus_and_multiplier})


def test_event_and_birthday_rules() -> None:
    assert error(RuleSet, {"event_rules": [{"type": "review", "name": "review"}]}) == (
        "event_rules.0",
        "Value error, the rule gives neither points nor growth value",
    )
    too_much = {"type": "task", "name": "task", "points": 50, "max_points": 20}
    assert error(RuleSet, {"event_rules": [too_much]}) == (
        "event_rules.0",
        "Value error, points (the default) is above max_points",
    )
    twice = [{"type": "review", "name": "a", "points": 5}] * 2
    assert error(RuleSet, {"event_rules": twice}) == (
        "",
        "Value error, event_rules: type 'review' appears twice",
    )
    assert error(RuleSet, {"birthday": {"window": "month"}}) == (
        "birthday",
        "Value error, the birthday rule gives neither points nor growth value",
    )
    check_in = EventRule.model_validate(
        {"type": "check_in", "name": "签到", "points": 5, "limit": {"count": 1, "per": "day"}}
    )
    assert check_in.limit is not None


def test_rate_is_exact() -> None:
    assert Effect(points_per_amount=Decimal(1), per=Decimal(3)).rate == Fraction(1, 3)
    assert Effect(points_per_quantity=Decimal("1.5")).rate == Fraction(3, 2)


def test_default_growth_rule() -> None:
    (growth,) = RuleSet().growth_rules
    assert growth.effect.points_per_amount == 1
