"""The earning evaluator: rules + basket + member → an award and its explanation.

Pure: the same input always gives the same output; no clock, no database, no I/O. That is
what makes `POST /v1/simulate` agree with the real award, lets a return re-evaluate the
order as it was, and lets bulk imports evaluate without the service around it.

How an award is made, in order (docs/rules.md tells it for programme staff):
1. **Firing.** A rule fires when every purchase/member condition holds and, if it names
   line conditions, at least one line matches them. Its lines are the matching lines
   (all lines when it names none).
2. **Exclusivity.** Firing rules are taken by priority (higher first, then file order);
   once an `exclusive` rule fires, no rule of lower priority applies — unless, all
   computed, it gives nothing (budget or cap spent, best_of lost, nothing to multiply):
   then it steps aside and the award is decided again without it.
3. **Base rates** (points per amount / quantity / attribute) are computed on their lines:
   rounded per line (`scope: line`) or once on the sum (`scope: order`). Points are
   exact fractions until they are rounded (1 point per 3 元 on 3 元 is exactly 1).
4. **Multipliers** add (m − 1) × the exact base points the surviving base rules give on
   the lines both match, rounded the same way; several multipliers add up. A
   `multiplier: tier` takes m from the member's facts (their tier's earn multiplier).
5. **Bonuses** give their points once per order, or once per matching line.
6. **Bounds.** Each rule's points are cut to its `cap_per_order`, then to its allowance
   (what its per-member period caps and its budget leave, given by the caller).
7. **Best-of.** Of the rules of one best_of group, only the one with most points (after
   bounds; ties go to priority, then file order) applies. Base-rate groups are settled
   before multipliers are computed.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from fractions import Fraction

from jifen.rules.conditions import LineCondition, OrderCondition, compile_when
from jifen.rules.facts import Allowances, Basket, Line, MemberFacts
from jifen.rules.schemas import (
    BASE_EFFECTS,
    EarningRule,
    EffectKind,
    Rounding,
    Scope,
    Stacking,
)

HALF = Fraction(1, 2)


class BasketError(ValueError):
    """The basket lacks what a rule needs (e.g. a numeric line attribute)."""

    def __init__(self, line: int, attribute: str, reason: str) -> None:
        super().__init__(f"line {line + 1}: attribute {attribute!r} {reason}")
        self.line = line
        self.attribute = attribute
        self.reason = reason


@dataclass(frozen=True)
class Item:
    """One rule's part of an award: the explanation a member or auditor reads."""

    rule: str
    name: str
    effect: EffectKind
    basis: Decimal
    """What the rule computed on: net amount, quantity, attribute total, base points, or
    the number of orders/lines a bonus counted."""
    lines: tuple[int, ...]
    """The lines (0-based) the rule matched."""
    wanted: int
    """Points before the order cap and the allowance."""
    points: int
    capped_by: str | None = None
    """'order' or 'allowance' when a bound cut the points."""

    def as_dict(self) -> dict[str, object]:
        return {
            "rule": self.rule,
            "name": self.name,
            "effect": str(self.effect),
            "basis": str(self.basis),
            "lines": list(self.lines),
            "wanted": self.wanted,
            "points": self.points,
            "capped_by": self.capped_by,
        }


@dataclass(frozen=True)
class Award:
    items: tuple[Item, ...]

    @property
    def points(self) -> int:
        return sum(item.points for item in self.items)

    def by_rule(self) -> dict[str, int]:
        return {item.rule: item.points for item in self.items}


@dataclass(frozen=True)
class CompiledRule:
    rule: EarningRule
    position: int
    order: tuple[OrderCondition, ...]
    line: tuple[LineCondition, ...]
    kind: EffectKind
    rate: Fraction | None = None
    """Base rates: points per unit of basis, exactly."""
    extra: Fraction | None = None
    """Multipliers: m − 1, the share of the base points they add (None for `multiplier:
    tier`, whose m is the member's)."""


@dataclass(frozen=True)
class _Firing:
    rule: EarningRule
    compiled: CompiledRule
    lines: tuple[int, ...]


def compile_rules(rules: Sequence[EarningRule]) -> tuple[CompiledRule, ...]:
    """Compile once, evaluate many times (bulk imports, the benchmark)."""
    return tuple(_compile(position, rule) for position, rule in enumerate(rules))


def _compile(position: int, rule: EarningRule) -> CompiledRule:
    order, line = compile_when(rule.when)
    effect = rule.effect
    return CompiledRule(
        rule,
        position,
        tuple(order),
        tuple(line),
        kind=effect.kind,
        rate=effect.rate if effect.kind in BASE_EFFECTS else None,
        extra=Fraction(effect.multiplier) - 1
        if effect.multiplier is not None and effect.multiplier != "tier"
        else None,
    )


def evaluate(
    rules: Sequence[EarningRule | CompiledRule],
    basket: Basket,
    member: MemberFacts,
    *,
    allowances: Allowances | None = None,
    only: Collection[str] | None = None,
) -> Award:
    """The award for `basket`; `only` restricts the rules considered (a return re-evaluates
    with the rules that fired on the original purchase)."""
    compiled: Sequence[CompiledRule] = [
        rule if isinstance(rule, CompiledRule) else _compile(position, rule)
        for position, rule in enumerate(rules)
    ]
    if not basket.lines:
        return Award(())  # nothing bought (everything returned): nothing earned, not even a bonus
    firing = _fire(compiled, basket, member, only)
    allowances = allowances or {}
    # An exclusive rule that ends up giving nothing (its budget or cap spent, its best_of
    # group lost, nothing to multiply) cuts nothing: it steps aside and the rest is decided
    # again without it.
    while True:
        kept, cutter = _exclusive_cut(firing)
        award = _award(kept, basket, allowances, member)
        if cutter is None or award.by_rule().get(cutter, 0) > 0:
            return award
        firing = [f for f in firing if f.rule.id != cutter]


def _award(
    firing: list[_Firing], basket: Basket, allowances: Allowances, member: MemberFacts
) -> Award:
    base = [f for f in firing if f.compiled.rate is not None]
    computed = {f.rule.id: _base_of(f, basket) for f in base}
    base_items = _best_of([_base_item(f, computed[f.rule.id], allowances) for f in base], base)
    kept_base = {item.rule for item in base_items}
    surviving = [computed[f.rule.id] for f in base if f.rule.id in kept_base]
    whole = sum((b.exact for b in surviving), Fraction(0))

    return _with_others(
        firing,
        base_items,
        lambda f: _multiplier_item(f, surviving, whole, allowances, member),
        allowances,
    )


def _with_others(
    firing: list[_Firing],
    base_items: list[Item],
    multiplied: Callable[[_Firing], Item],
    allowances: Allowances,
) -> Award:
    """The award: the base items kept, and the best of the multipliers (`multiplied`) and
    bonuses, in the rules' order, without those that want nothing."""
    others = [f for f in firing if f.compiled.rate is None]
    other_items = _best_of(
        [
            multiplied(f)
            if f.compiled.kind == EffectKind.MULTIPLIER
            else _bonus_item(f, allowances)
            for f in others
        ],
        others,
    )
    order = {f.rule.id: f.compiled.position for f in firing}
    items = sorted(base_items + other_items, key=lambda item: order[item.rule])
    return Award(tuple(item for item in items if item.wanted > 0))


def _fire(
    compiled: Sequence[CompiledRule],
    basket: Basket,
    member: MemberFacts,
    only: Collection[str] | None,
) -> list[_Firing]:
    every_line = tuple(range(len(basket.lines)))
    firing = []
    for c in compiled:
        rule = c.rule
        if not rule.active or (only is not None and rule.id not in only):
            continue
        if not _holds(c.order, basket, member):
            continue
        if c.line:
            lines = tuple([i for i, line in enumerate(basket.lines) if _matches(c.line, line)])
            if not lines:
                continue
        else:
            lines = every_line
        firing.append(_Firing(rule, c, lines))
    return firing


# Loops rather than all() over a generator: these run for every rule on every purchase,
# and a loop is two to three times faster for the one or two conditions a rule has.
def _holds(conditions: tuple[OrderCondition, ...], basket: Basket, member: MemberFacts) -> bool:
    for condition in conditions:  # noqa: SIM110 (see above)
        if not condition.holds(basket, member):
            return False
    return True


def _matches(conditions: tuple[LineCondition, ...], line: Line) -> bool:
    for condition in conditions:  # noqa: SIM110 (see above)
        if not condition.matches(line):
            return False
    return True


def _exclusive_cut(firing: list[_Firing]) -> tuple[list[_Firing], str | None]:
    """The rules left once the highest exclusive rule has cut those of lower priority,
    and that rule's id (None when no exclusive rule fired)."""
    ranked = sorted(firing, key=lambda f: (-f.rule.priority, f.compiled.position))
    cutoff: int | None = None
    cutter: str | None = None
    kept = []
    for f in ranked:
        if cutoff is not None and f.rule.priority < cutoff:
            break
        kept.append(f)
        if f.rule.stacking == Stacking.EXCLUSIVE and cutoff is None:
            cutoff, cutter = f.rule.priority, f.rule.id
    return kept, cutter


def _round(value: Fraction, rounding: Rounding) -> int:
    if rounding == Rounding.FLOOR:
        return math.floor(value)
    if rounding == Rounding.CEIL:
        return math.ceil(value)
    # half up, away from zero (Decimal's ROUND_HALF_UP): 2.5 → 3, -2.5 → -3
    return math.floor(value + HALF) if value >= 0 else -math.floor(-value + HALF)


def _exact(rate: Fraction, basis: Decimal) -> Fraction:
    """rate × basis, exactly; built from integers, it is 2.5 times as fast as
    `rate * Fraction(basis)`."""
    numerator, denominator = basis.as_integer_ratio()
    return Fraction(rate.numerator * numerator, rate.denominator * denominator)


def _decimal(value: Fraction) -> Decimal:
    """A fraction as shown in an explanation (exact unless it does not end, as 1/3)."""
    return Decimal(value.numerator) / Decimal(value.denominator)


def _basis(kind: EffectKind, rule: EarningRule, line: Line, index: int) -> Decimal:
    if kind == EffectKind.PER_AMOUNT:
        return line.amount
    if kind == EffectKind.PER_QUANTITY:
        return line.quantity
    name = rule.effect.attribute
    assert name is not None
    raw = line.attributes.get(name)
    if raw is None:
        raise BasketError(index, name, f"is missing (rule {rule.id!r} computes on it)")
    try:
        value = Decimal(raw)
    except InvalidOperation:
        raise BasketError(index, name, f"is {raw!r}, not a number") from None
    if not value.is_finite() or value < 0:
        raise BasketError(index, name, f"is {raw!r}, not a number ≥ 0")
    return value


@dataclass(frozen=True)
class _Base:
    """A base rule's rate and its basis on each of its lines: its exact points on a line
    are rate × basis. Computed once, for the rule and for every multiplier."""

    rate: Fraction
    bases: dict[int, Decimal]
    basis: Decimal
    """The sum of `bases`."""
    exact: Fraction
    """Its exact points on all its lines."""


def _base_of(f: _Firing, basket: Basket) -> _Base:
    rate, kind = f.compiled.rate, f.compiled.kind
    assert rate is not None
    bases = {i: _basis(kind, f.rule, basket.lines[i], i) for i in f.lines}
    basis = sum(bases.values(), Decimal(0))
    return _Base(rate, bases, basis, _exact(rate, basis))


def _bounded(f: _Firing, basis: Decimal, wanted: int, allowances: Allowances) -> Item:
    rule = f.rule
    points, capped_by = max(wanted, 0), None
    if rule.cap_per_order is not None and points > rule.cap_per_order:
        points, capped_by = rule.cap_per_order, "order"
    allowed = allowances.get(rule.id)
    if allowed is not None and points > max(allowed, 0):
        points, capped_by = max(allowed, 0), "allowance"
    return Item(
        rule=rule.id,
        name=rule.name,
        effect=f.compiled.kind,
        basis=basis,
        lines=f.lines,
        wanted=max(wanted, 0),
        points=points,
        capped_by=capped_by,
    )


def _base_item(f: _Firing, base: _Base, allowances: Allowances) -> Item:
    rule = f.rule
    if rule.scope == Scope.LINE:
        wanted = sum(_round(_exact(base.rate, b), rule.rounding) for b in base.bases.values())
    else:
        wanted = _round(base.exact, rule.rounding)
    return _bounded(f, base.basis, wanted, allowances)


def _multiplier_item(
    f: _Firing,
    surviving: list[_Base],
    whole: Fraction,
    allowances: Allowances,
    member: MemberFacts,
) -> Item:
    """(m − 1) × the exact points the surviving base rules give on the lines both match
    (`whole`: all their points, for a multiplier on every line)."""
    rule, extra = f.rule, f.compiled.extra
    if extra is None:  # multiplier: tier — the member's tier's, 1 (nothing) without one
        m = member.tier_multiplier
        extra = Fraction(m) - 1 if m is not None and m > 1 else Fraction(0)
    if rule.scope == Scope.LINE:
        by_line = [
            sum((_exact(b.rate, b.bases[i]) for b in surviving if i in b.bases), Fraction(0))
            for i in f.lines
        ]
        exact = sum(by_line, Fraction(0))
        wanted = sum(_round(extra * points, rule.rounding) for points in by_line)
    elif not f.compiled.line:  # on every line: all the base points
        exact = whole
        wanted = _round(extra * exact, rule.rounding)
    else:
        exact = sum(
            (
                _exact(b.rate, sum((b.bases[i] for i in f.lines if i in b.bases), Decimal(0)))
                for b in surviving
            ),
            Fraction(0),
        )
        wanted = _round(extra * exact, rule.rounding)
    return _bounded(f, _decimal(exact), wanted, allowances)


def _bonus_item(f: _Firing, allowances: Allowances) -> Item:
    rule = f.rule
    assert rule.effect.bonus is not None
    count = len(f.lines) if rule.scope == Scope.LINE else 1
    return _bounded(f, Decimal(count), rule.effect.bonus * count, allowances)


def _best_of(items: list[Item], firing: list[_Firing]) -> list[Item]:
    by_rule = {f.rule.id: f for f in firing}
    winners: dict[str, Item] = {}
    kept: list[Item] = []
    for item in items:
        f = by_rule[item.rule]
        group = f.rule.group if f.rule.stacking == Stacking.BEST_OF else None
        if group is None:
            kept.append(item)
            continue
        best = winners.get(group)
        if best is None or _beats(item, f, best, by_rule[best.rule]):
            winners[group] = item
    return kept + list(winners.values())


def _beats(item: Item, f: _Firing, best: Item, g: _Firing) -> bool:
    if item.points != best.points:
        return item.points > best.points
    if f.rule.priority != g.rule.priority:
        return f.rule.priority > g.rule.priority
    return f.compiled.position < g.compiled.position


# ---------------------------------------------------------------- in whole numbers
# `evaluate` again for the rule sets most programmes have, with exact fractions kept as
# pairs of integers (numerator, denominator > 0) rather than `Fraction`s, which reduce
# every intermediate value by its gcd: a third of the evaluator's time. Same steps, same
# rounding, same explanation. `evaluate_lean` (below) is its one user.

_Ratio = tuple[int, int]
_PLAIN_KINDS = frozenset(
    {EffectKind.PER_AMOUNT, EffectKind.PER_QUANTITY, EffectKind.MULTIPLIER, EffectKind.BONUS}
)
_PLAIN: dict[int, tuple[Sequence[CompiledRule], bool]] = {}


def _plain(compiled: Sequence[CompiledRule]) -> bool:
    """Whether `evaluate_lean` computes `compiled` itself (once per compiled rule set:
    each entry keeps its key alive)."""
    cached = _PLAIN.get(id(compiled))
    if cached is not None and cached[0] is compiled:
        return cached[1]
    plain = all(c.kind in _PLAIN_KINDS and c.rule.stacking != Stacking.EXCLUSIVE for c in compiled)
    if len(_PLAIN) > 4096:
        _PLAIN.clear()
    _PLAIN[id(compiled)] = (compiled, plain)
    return plain


def _times(rate: Fraction, basis: Decimal) -> _Ratio:
    """rate × basis, as `_exact`, unreduced."""
    numerator, denominator = basis.as_integer_ratio()
    return rate.numerator * numerator, rate.denominator * denominator


def _plus(a: _Ratio, b: _Ratio) -> _Ratio:
    return a[0] * b[1] + b[0] * a[1], a[1] * b[1]


def _round_ratio(value: _Ratio, rounding: Rounding) -> int:
    """`_round` of numerator / denominator."""
    numerator, denominator = value
    if rounding == Rounding.FLOOR:
        return numerator // denominator
    if rounding == Rounding.CEIL:
        return -(-numerator // denominator)
    if numerator >= 0:  # half up, away from zero
        return (2 * numerator + denominator) // (2 * denominator)
    return -((-2 * numerator + denominator) // (2 * denominator))


@dataclass(eq=False, slots=True)
class _PlainBase:
    """`_Base` with its exact points as a pair of integers (not frozen: it never leaves
    `evaluate_lean`, and a frozen one costs a call per field to make)."""

    rate: Fraction
    bases: dict[int, Decimal]
    basis: Decimal
    exact: _Ratio


# ---------------------------------------------------------------- in one pass
# `evaluate` again, for the purchases of an import and of a group: the same steps in
# whole numbers (above), with what depends on the rule set only worked out once per
# compiled set (`_Lean`), no `_Firing` between the steps, and each line's matches of the
# rules' line conditions looked up by the line's shape (its sku, category, brand and
# attributes: all a line condition reads). tests/rules/test_lean.py holds it to
# `evaluate`.


@dataclass(frozen=True, slots=True)
class _LeanRule:
    compiled: CompiledRule
    base: bool
    """A base rate (on amount or quantity) rather than a multiplier or a bonus."""
    per_amount: bool
    by_line: bool
    """`scope: line`."""
    group: str | None
    """The best_of group, None for a stacking rule."""
    matcher: int | None
    """Its index among the rules with line conditions (None: it has none)."""


@dataclass(frozen=True, slots=True)
class _Lean:
    rules: tuple[_LeanRule, ...]
    """The active rules, in file order."""
    line_rules: tuple[CompiledRule, ...]
    shapes: dict[tuple[object, ...], tuple[bool, ...]]
    """A line's shape → whether it matches each of `line_rules`' line conditions."""


_LEAN: dict[int, tuple[Sequence[CompiledRule], _Lean]] = {}


def evaluate_lean(compiled: Sequence[CompiledRule], basket: Basket, member: MemberFacts) -> Award:
    """`evaluate(compiled, basket, member)`: the award with no allowances, every rule
    considered, explanation and all. Computed in whole numbers, in one pass, when no rule
    is exclusive and every rule is a rate on amount or quantity, a multiplier or a bonus;
    otherwise by `evaluate`."""
    if not _plain(compiled):
        return evaluate(compiled, basket, member)
    lines = basket.lines
    if not lines:
        return Award(())
    lean = _lean(compiled)
    matched = _line_matches(lean, lines) if lean.line_rules else ()
    every_line = tuple(range(len(lines)))
    # 1. firing, in file order (no rule is exclusive: every firing rule is kept)
    firing: list[tuple[_LeanRule, tuple[int, ...]]] = []
    for r in lean.rules:
        c = r.compiled
        if c.order and not _holds(c.order, basket, member):
            continue
        if r.matcher is not None:
            k = r.matcher
            found = tuple([i for i, hits in enumerate(matched) if hits[k]])
            if not found:
                continue
            firing.append((r, found))
        else:
            firing.append((r, every_line))
    # 2. base rates, then their best_of groups
    computed: dict[str, _PlainBase] = {}
    base_items: list[Item] = []
    grouped = False
    for r, at in firing:
        if not r.base:
            continue
        c = r.compiled
        rule, rate = c.rule, c.rate
        assert rate is not None
        if r.per_amount:
            bases = {i: lines[i].amount for i in at}
        else:
            bases = {i: lines[i].quantity for i in at}
        basis = sum(bases.values(), Decimal(0))
        exact = _times(rate, basis)
        computed[rule.id] = _PlainBase(rate, bases, basis, exact)
        if r.by_line:
            wanted = sum(_round_ratio(_times(rate, b), rule.rounding) for b in bases.values())
        else:
            wanted = _round_ratio(exact, rule.rounding)
        base_items.append(_lean_item(c, at, basis, wanted))
        grouped = grouped or r.group is not None
    if grouped:
        base_firing = [_Firing(r.compiled.rule, r.compiled, at) for r, at in firing if r.base]
        base_items = _best_of(base_items, base_firing)
    kept_base = {item.rule for item in base_items}
    surviving = [
        computed[r.compiled.rule.id]
        for r, _ in firing
        if r.base and r.compiled.rule.id in kept_base
    ]
    whole: _Ratio = (0, 1)
    for b in surviving:
        whole = _plus(whole, b.exact)
    # 3. multipliers and bonuses, then their best_of groups
    other_items: list[Item] = []
    grouped = False
    for r, at in firing:
        if r.base:
            continue
        c = r.compiled
        if c.kind == EffectKind.MULTIPLIER:
            other_items.append(_lean_multiplier(c, at, surviving, whole, member))
        else:
            bonus = c.rule.effect.bonus
            assert bonus is not None
            count = len(at) if r.by_line else 1
            other_items.append(_lean_item(c, at, Decimal(count), bonus * count))
        grouped = grouped or r.group is not None
    if grouped:
        other_firing = [_Firing(r.compiled.rule, r.compiled, at) for r, at in firing if not r.base]
        other_items = _best_of(other_items, other_firing)
    position = {r.compiled.rule.id: r.compiled.position for r, _ in firing}
    items = sorted(base_items + other_items, key=lambda item: position[item.rule])
    return Award(tuple([item for item in items if item.wanted > 0]))


def _lean(compiled: Sequence[CompiledRule]) -> _Lean:
    """What `evaluate_lean` needs of a compiled set, worked out once (each entry keeps
    its key alive)."""
    cached = _LEAN.get(id(compiled))
    if cached is not None and cached[0] is compiled:
        return cached[1]
    rules = []
    line_rules: list[CompiledRule] = []
    for c in compiled:
        if not c.rule.active:
            continue
        matcher = None
        if c.line:
            matcher = len(line_rules)
            line_rules.append(c)
        rules.append(
            _LeanRule(
                c,
                base=c.rate is not None,
                per_amount=c.kind == EffectKind.PER_AMOUNT,
                by_line=c.rule.scope == Scope.LINE,
                group=c.rule.group if c.rule.stacking == Stacking.BEST_OF else None,
                matcher=matcher,
            )
        )
    lean = _Lean(tuple(rules), tuple(line_rules), {})
    if len(_LEAN) > 4096:
        _LEAN.clear()
    _LEAN[id(compiled)] = (compiled, lean)
    return lean


def _line_matches(lean: _Lean, lines: tuple[Line, ...]) -> list[tuple[bool, ...]]:
    """Each line's matches of `lean.line_rules`, by the line's shape."""
    shapes = lean.shapes
    found = []
    for line in lines:
        attributes = line.attributes
        shape = (
            (line.sku, line.category, line.brand, *attributes.items())
            if attributes
            else (line.sku, line.category, line.brand)
        )
        try:
            hits = shapes.get(shape)
        except TypeError:  # an attribute value that cannot be a key: no shape
            found.append(tuple(_matches(c.line, line) for c in lean.line_rules))
            continue
        if hits is None:
            hits = tuple(_matches(c.line, line) for c in lean.line_rules)
            if len(shapes) > 65_536:
                shapes.clear()
            shapes[shape] = hits
        found.append(hits)
    return found


def _lean_item(c: CompiledRule, at: tuple[int, ...], basis: Decimal, wanted: int) -> Item:
    """`_bounded` with no allowances."""
    rule = c.rule
    points, capped_by = max(wanted, 0), None
    if rule.cap_per_order is not None and points > rule.cap_per_order:
        points, capped_by = rule.cap_per_order, "order"
    return Item(rule.id, rule.name, c.kind, basis, at, max(wanted, 0), points, capped_by)


def _lean_multiplier(
    c: CompiledRule,
    at: tuple[int, ...],
    surviving: list[_PlainBase],
    whole: _Ratio,
    member: MemberFacts,
) -> Item:
    """`_multiplier_item` with no allowances, in whole numbers, a tier's multiplier made a
    pair of integers once."""
    rule, extra = c.rule, c.extra
    if extra is None:  # multiplier: tier — the member's tier's, 1 (nothing) without one
        p, q = _tier_extra(member.tier_multiplier)
    else:
        p, q = extra.numerator, extra.denominator
    exact: _Ratio
    if rule.scope == Scope.LINE:
        exact = (0, 1)
        wanted = 0
        for i in at:
            points: _Ratio = (0, 1)
            for b in surviving:
                if i in b.bases:
                    points = _plus(points, _times(b.rate, b.bases[i]))
            exact = _plus(exact, points)
            wanted += _round_ratio((p * points[0], q * points[1]), rule.rounding)
    elif not c.line:  # on every line: all the base points
        exact = whole
        wanted = _round_ratio((p * exact[0], q * exact[1]), rule.rounding)
    else:
        exact = (0, 1)
        for b in surviving:
            matched = sum((b.bases[i] for i in at if i in b.bases), Decimal(0))
            exact = _plus(exact, _times(b.rate, matched))
        wanted = _round_ratio((p * exact[0], q * exact[1]), rule.rounding)
    basis = Decimal(exact[0]) / Decimal(exact[1])  # as `_decimal`: the value decides
    return _lean_item(c, at, basis, wanted)


_TIER_EXTRA: dict[Decimal | None, tuple[int, int]] = {}


def _tier_extra(m: Decimal | None) -> tuple[int, int]:
    """m − 1 of a tier's multiplier m as (numerator, denominator); 0 without one or at 1."""
    found = _TIER_EXTRA.get(m)
    if found is None:
        extra = Fraction(m) - 1 if m is not None and m > 1 else Fraction(0)
        found = (extra.numerator, extra.denominator)
        if len(_TIER_EXTRA) > 1024:
            _TIER_EXTRA.clear()
        _TIER_EXTRA[m] = found
    return found
