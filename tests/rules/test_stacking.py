"""How rules combine: exclusive, best_of, caps and allowances, `only`, inactive rules."""

from __future__ import annotations

from decimal import Decimal

from jifen.rules.evaluator import compile_rules
from jifen.rules.facts import MemberFacts
from jifen.rules.schemas import EarningRule

from .build import award, base, basket, line, points, rule

GOLD = MemberFacts(tier="gold")
HUNDRED = basket(line(100))

# --- exclusive ---------------------------------------------------------------------------


def test_exclusive_cuts_lower_priorities_and_keeps_equal_and_higher() -> None:
    rules = [
        base(priority=0),
        rule("flash", {"bonus": 100}, priority=10, stacking="exclusive"),
        rule("same", {"bonus": 7}, priority=10),
        rule("higher", {"bonus": 5}, priority=20),
        rule("lower", {"bonus": 3}, priority=9),
    ]
    assert points(rules, HUNDRED) == {"flash": 100, "same": 7, "higher": 5}


def test_exclusive_that_does_not_fire_cuts_nothing() -> None:
    rules = [
        base(),
        rule(
            "app-only", {"bonus": 100}, priority=10, stacking="exclusive", when={"channel": ["app"]}
        ),
    ]
    assert points(rules, basket(line(100), channel="pos")) == {"base": 100}
    assert points(rules, basket(line(100), channel="app")) == {"app-only": 100}


def test_the_highest_exclusive_rule_decides() -> None:
    rules = [
        rule("top", {"bonus": 1}, priority=30, stacking="exclusive"),
        rule("middle", {"bonus": 10}, priority=20, stacking="exclusive"),
        rule("peer", {"bonus": 100}, priority=30, stacking="exclusive"),
    ]
    assert points(rules, HUNDRED) == {"top": 1, "peer": 100}


def test_exclusive_multiplier_above_the_base_has_nothing_to_multiply_and_steps_aside() -> None:
    # exclusivity cuts by priority, so a multiplier that outranks the base rate exclusively
    # would have nothing left to multiply; giving nothing, it cuts nothing
    rules = [base(priority=0), rule("x", {"multiplier": 2}, priority=5, stacking="exclusive")]
    assert points(rules, HUNDRED) == {"base": 100}
    kept = [base(priority=5), rule("x", {"multiplier": 2}, priority=5, stacking="exclusive")]
    assert points(kept, HUNDRED) == {"base": 100, "x": 100}


def test_an_exclusive_rule_whose_budget_is_spent_steps_aside() -> None:
    rules = [
        base(),
        rule("spent", {"bonus": 50}, priority=1, stacking="exclusive"),
        rule("low", {"bonus": 5}, priority=-1),
    ]
    assert award(rules, HUNDRED, allowances={"spent": 0}).by_rule() == {"base": 100, "low": 5}
    assert award(rules, HUNDRED, allowances={"spent": 10}).by_rule() == {"spent": 10}


def test_the_next_exclusive_rule_cuts_when_the_first_steps_aside() -> None:
    rules = [
        base(),
        rule("first", {"bonus": 50}, priority=9, stacking="exclusive"),
        rule("second", {"bonus": 30}, priority=5, stacking="exclusive"),
    ]
    assert award(rules, HUNDRED, allowances={"first": 0}).by_rule() == {"second": 30}


# --- best_of -----------------------------------------------------------------------------


def best(rule_id: str, bonus: int, **fields: object) -> EarningRule:
    return rule(rule_id, {"bonus": bonus}, stacking="best_of", group="g", **fields)


def test_best_of_keeps_the_rule_giving_most() -> None:
    rules = [best("a", 20), best("b", 80), best("c", 50), rule("other", {"bonus": 1})]
    assert points(rules, HUNDRED) == {"b": 80, "other": 1}


def test_best_of_compares_points_after_caps() -> None:
    rules = [best("a", 100, cap_per_order=30), best("b", 50)]
    assert points(rules, HUNDRED) == {"b": 50}
    by_allowance = [best("a", 100), best("b", 50)]
    assert points(by_allowance, HUNDRED, allowances={"a": 10}) == {"b": 50}
    assert points(by_allowance, HUNDRED, allowances={"a": 60}) == {"a": 60}


def test_best_of_ties_go_to_priority_then_file_order() -> None:
    by_priority = [best("a", 50), best("b", 50, priority=5)]
    assert points(by_priority, HUNDRED) == {"b": 50}
    by_file = [best("a", 50), best("b", 50)]
    assert points(by_file, HUNDRED) == {"a": 50}
    reversed_file = [best("b", 50), best("a", 50)]
    assert points(reversed_file, HUNDRED) == {"b": 50}


def test_best_of_groups_are_independent() -> None:
    rules = [
        best("a", 20),
        best("b", 30),
        rule("c", {"bonus": 5}, stacking="best_of", group="h"),
        rule("d", {"bonus": 7}, stacking="best_of", group="h"),
    ]
    assert points(rules, HUNDRED) == {"b": 30, "d": 7}


def test_best_of_only_among_rules_that_fire() -> None:
    rules = [best("small", 20, when={"min_amount": 200}), best("big", 80, when={"min_amount": 500})]
    assert points(rules, basket(line(199))) == {}
    assert points(rules, basket(line(200))) == {"small": 20}
    assert points(rules, basket(line(500))) == {"big": 80}


def test_best_of_among_base_rates_decides_what_multipliers_multiply() -> None:
    rules = [
        base("standard", 1, stacking="best_of", group="rate"),
        base("gold-rate", 2, stacking="best_of", group="rate", when={"tier": ["gold"]}),
        rule("double", {"multiplier": 2}),
    ]
    assert points(rules, HUNDRED) == {"standard": 100, "double": 100}
    # gold: only the better rate counts and only it is doubled (not 100 + 200)
    assert points(rules, HUNDRED, GOLD) == {"gold-rate": 200, "double": 200}
    # a cap that makes the gold rate lose hands the multiplier the standard rate
    capped = [*rules[:1], rules[1].model_copy(update={"cap_per_order": 90}), rules[2]]
    assert points(capped, HUNDRED, GOLD) == {"standard": 100, "double": 100}


# --- caps and allowances -----------------------------------------------------------------


def test_cap_per_order() -> None:
    (item,) = award([base(cap_per_order=100)], basket(line(250))).items
    assert (item.wanted, item.points, item.capped_by) == (250, 100, "order")
    (under,) = award([base(cap_per_order=100)], basket(line(100))).items
    assert (under.wanted, under.points, under.capped_by) == (100, 100, None)


def test_allowance() -> None:
    def bounded(allowance: int) -> tuple[int, int, str | None]:
        (item,) = award([base()], basket(line(250)), allowances={"base": allowance}).items
        return item.wanted, item.points, item.capped_by

    assert bounded(40) == (250, 40, "allowance")
    assert bounded(0) == (250, 0, "allowance")
    assert bounded(-5) == (250, 0, "allowance")  # an overdrawn counter gives nothing
    assert bounded(250) == (250, 250, None)
    assert bounded(1000) == (250, 250, None)


def test_allowance_after_the_order_cap() -> None:
    rules = [base(cap_per_order=100)]
    tighter = award(rules, basket(line(250)), allowances={"base": 60}).items[0]
    assert (tighter.wanted, tighter.points, tighter.capped_by) == (250, 60, "allowance")
    looser = award(rules, basket(line(250)), allowances={"base": 150}).items[0]
    assert (looser.wanted, looser.points, looser.capped_by) == (250, 100, "order")


def test_allowances_bound_only_their_rule() -> None:
    rules = [base(), rule("b", {"bonus": 50}), rule("x", {"multiplier": 2}, cap_per_order=30)]
    result = award(rules, basket(line(100)), allowances={"b": 20})
    assert result.by_rule() == {"base": 100, "b": 20, "x": 30}
    assert [i.capped_by for i in result.items] == [None, "allowance", "order"]
    assert result.points == 150


def test_multiplier_multiplies_the_base_before_its_caps() -> None:
    # documented: multipliers work on the exact base points, not on what caps left
    rules = [base(cap_per_order=10), rule("double", {"multiplier": 2})]
    assert points(rules, HUNDRED) == {"base": 10, "double": 100}


# --- only, active, order, determinism --------------------------------------------------


def test_only_restricts_the_rules() -> None:
    rules = [
        base(),
        rule("b", {"bonus": 50}),
        rule("flash", {"bonus": 5}, priority=9, stacking="exclusive"),
    ]
    assert points(rules, HUNDRED) == {"flash": 5}
    assert award(rules, HUNDRED, only={"base", "b"}).by_rule() == {"base": 100, "b": 50}
    assert award(rules, HUNDRED, only=set()).items == ()
    assert award(rules, HUNDRED, only={"gone"}).items == ()


def test_inactive_rules_never_fire() -> None:
    rules = [
        base(),
        rule("b", {"bonus": 50}, active=False),
        rule("flash", {"bonus": 5}, priority=9, stacking="exclusive", active=False),
    ]
    assert points(rules, HUNDRED) == {"base": 100}
    assert award(rules, HUNDRED, only={"b", "flash"}).items == ()


def test_items_follow_file_order() -> None:
    rules = [
        rule("b", {"bonus": 1}, priority=-5),
        rule("x", {"multiplier": 2}, priority=3),
        base(priority=7),
    ]
    assert [item.rule for item in award(rules, HUNDRED).items] == ["b", "x", "base"]


def test_rules_that_give_nothing_are_left_out() -> None:
    rules = [base(), rule("x", {"multiplier": 2}, when={"category": ["none-here"]})]
    assert [item.rule for item in award(rules, basket(line("0.99"))).items] == []


def test_deterministic_and_compiled_alike() -> None:
    rules = [
        base(scope="line", rounding="round"),
        rule("x", {"multiplier": "1.25"}, when={"category": ["a"]}),
        rule("b", {"bonus": 3}, scope="line", stacking="best_of", group="g"),
        rule("c", {"bonus": 5}, stacking="best_of", group="g"),
    ]
    order = basket(line("10.50", category="a"), line("3.30"), line("7.77", category="a"))
    first = award(rules, order)
    assert first == award(rules, order)
    assert first == award(compile_rules(rules), order)
    assert first.by_rule() == {"base": 22, "x": 4, "b": 9}
    assert first.points == sum(item.points for item in first.items) == 35
    x = first.items[1]
    assert x.basis == Decimal("18.27")
