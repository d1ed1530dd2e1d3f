"""The rule schema: earning, growth-value and behaviour-event rules as data (PRODUCT.md E2, E4).

A programme's staff write these in the programme file (YAML) or send them to
`PUT /v1/rules`; they are validated here, stored as JSON, and evaluated by
`jifen.rules.evaluator` without any I/O. Every model forbids unknown fields, so a typo
in a programme file is an error that names the field, never a silently ignored rule.

An earning rule reads as a sentence: *when* the purchase and member match, the *effect*
gives points, once per order or per line (`scope`), rounded (`rounding`); `priority` and
`stacking` decide how it combines with other rules; `cap_per_order`, `caps` (per member
per day/week/month/year) and `budget` (all members together) bound it.
"""

from __future__ import annotations

import re
from datetime import date, time
from decimal import Decimal
from enum import StrEnum
from fractions import Fraction
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, field_validator, model_validator

RULE_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
Code = Annotated[str, Field(min_length=1, max_length=64)]
Points = Annotated[int, Field(ge=0, le=10**9)]
PositivePoints = Annotated[int, Field(gt=0, le=10**9)]
Rate = Annotated[Decimal, Field(gt=0, le=Decimal(10**6), max_digits=16, decimal_places=6)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _rule_id(value: str) -> str:
    if not RULE_ID.match(value):
        raise ValueError(
            "1–63 lower-case letters, digits, '-' or '_', starting with a letter or digit"
        )
    return value


class Period(StrEnum):
    DAY = "day"
    WEEK = "week"
    """ISO week: Monday to Sunday, in the programme's time zone."""
    MONTH = "month"
    YEAR = "year"


class Scope(StrEnum):
    ORDER = "order"
    LINE = "line"


class Rounding(StrEnum):
    FLOOR = "floor"
    ROUND = "round"
    """Half up (四舍五入): 2.5 → 3."""
    CEIL = "ceil"


class Stacking(StrEnum):
    STACK = "stack"
    """Applies alongside every other rule."""
    EXCLUSIVE = "exclusive"
    """When it fires, no rule of lower priority applies."""
    BEST_OF = "best_of"
    """Of the rules of one `group` that fire, only the one giving most points applies."""


def _not_a_number(value: object, how: str) -> object:
    # Pydantic would read a number as seconds: YAML reads an unquoted 22:00 as the
    # sexagesimal number 1320, which would become 00:22 (and a date 0 would be 1970-01-01)
    if isinstance(value, int | float | Decimal):
        raise ValueError(f"{how}; {value!r} is a number")
    return value


class HourRange(Strict):
    """Local time of day, `from` included, `to` excluded; `to` before `from` wraps midnight."""

    start: time = Field(alias="from")
    end: time = Field(alias="to")

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @field_validator("start", "end", mode="before")
    @classmethod
    def _as_text(cls, value: object) -> object:
        return _not_a_number(
            value, "write the time in quotes, as '22:00' (YAML reads an unquoted 22:00 as 1320)"
        )

    @field_validator("start", "end")
    @classmethod
    def _local(cls, value: time) -> time:
        if value.tzinfo is not None:
            raise ValueError(
                "give the local time without an offset ('22:00', not '22:00+08:00'): "
                "hours are read in the programme's time zone"
            )
        return value

    @model_validator(mode="after")
    def _not_empty(self) -> HourRange:
        if self.start == self.end:
            raise ValueError("'from' and 'to' are the same time: the range would be empty")
        return self

    def contains(self, at: time) -> bool:
        at = at.replace(tzinfo=None)
        if self.start < self.end:
            return self.start <= at < self.end
        return at >= self.start or at < self.end


class DateRange(Strict):
    """Local dates, both ends included."""

    start: date | None = Field(None, alias="from")
    end: date | None = Field(None, alias="to")

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @field_validator("start", "end", mode="before")
    @classmethod
    def _as_text(cls, value: object) -> object:
        return _not_a_number(value, "write the date as YYYY-MM-DD, e.g. 2026-11-11")

    @model_validator(mode="after")
    def _ordered(self) -> DateRange:
        if self.start is None and self.end is None:
            raise ValueError("give 'from', 'to' or both")
        if self.start and self.end and self.end < self.start:
            raise ValueError("'to' is before 'from'")
        return self


class When(Strict):
    """Conditions: all that are given must hold. Lists match any of their values.

    Purchase-level: channel, store, payment_method, dates, weekdays, days_of_month,
    hours, min_amount, first_purchase. Member-level: tier, segment, birthday_month.
    Line-level (they select the lines the effect is computed on): sku, category,
    brand, attributes.
    """

    channel: list[Code] | None = None
    store: list[Code] | None = None
    payment_method: list[Code] | None = None
    dates: DateRange | None = None
    weekdays: list[Annotated[int, Field(ge=1, le=7)]] | None = Field(
        None, description="ISO weekdays: 1 = Monday … 7 = Sunday"
    )
    days_of_month: list[Annotated[int, Field(ge=-1, le=31)]] | None = Field(
        None, description="1–31, or -1 for the last day of the month (a monthly member day)"
    )
    hours: HourRange | None = None
    min_amount: Annotated[Decimal, Field(ge=0, max_digits=18, decimal_places=2)] | None = Field(
        None, description="the order's net amount (all lines, after discounts) is at least this"
    )
    first_purchase: bool | None = None
    tier: list[Code] | None = None
    segment: list[Code] | None = None
    birthday_month: bool | None = None
    sku: list[Code] | None = None
    category: list[Code] | None = None
    brand: list[Code] | None = None
    attributes: dict[Code, list[str]] | None = Field(
        None, description="line attributes, e.g. {fare_class: [F, J]}"
    )

    @field_validator(
        "channel",
        "store",
        "payment_method",
        "weekdays",
        "days_of_month",
        "tier",
        "segment",
        "sku",
        "category",
        "brand",
    )
    @classmethod
    def _non_empty(cls, value: list[object] | None) -> list[object] | None:
        if value is not None and not value:
            raise ValueError("an empty list matches nothing; leave the condition out instead")
        return value

    @field_validator("days_of_month")
    @classmethod
    def _real_days(cls, value: list[int] | None) -> list[int] | None:
        if value is not None and 0 in value:
            raise ValueError("0 is no day of the month: give 1–31, or -1 for the last day")
        return value

    @field_validator("attributes")
    @classmethod
    def _attribute_values(cls, value: dict[str, list[str]] | None) -> dict[str, list[str]] | None:
        if value is not None and not value:
            raise ValueError("name at least one attribute, or leave the condition out")
        for name, values in (value or {}).items():
            if not values:
                raise ValueError(
                    f"attribute {name!r}: an empty list matches nothing; "
                    "list the values it may have"
                )
        return value

    @property
    def line_level(self) -> bool:
        return any(v is not None for v in (self.sku, self.category, self.brand, self.attributes))


class EffectKind(StrEnum):
    PER_AMOUNT = "per_amount"
    PER_QUANTITY = "per_quantity"
    PER_ATTRIBUTE = "per_attribute"
    MULTIPLIER = "multiplier"
    BONUS = "bonus"


BASE_EFFECTS = frozenset({EffectKind.PER_AMOUNT, EffectKind.PER_QUANTITY, EffectKind.PER_ATTRIBUTE})


_MULTIPLIER: TypeAdapter[Decimal] = TypeAdapter(
    Annotated[Decimal, Field(gt=1, le=100, max_digits=8, decimal_places=4)]
)


class Effect(Strict):
    """Exactly one of:

    - `points_per_amount: 1` (with `per: 2`: 1 point per 2 currency units) — on net amount;
    - `points_per_quantity: 1` — per item bought;
    - `points_per_attribute: 1.5` with `attribute: distance` — on a numeric line attribute;
    - `multiplier: 2` — adds (2 − 1) × the points the base rules (the three above) give on
      the lines this rule matches; several multipliers add up (2× and 3× make 4×);
      `multiplier: tier` uses the member's tier's `earn_multiplier` (1, nothing, when the
      tier has none);
    - `bonus: 100` — fixed points, once per order (scope order) or per matching line.
    """

    points_per_amount: Rate | None = None
    points_per_quantity: Rate | None = None
    points_per_attribute: Rate | None = None
    attribute: Code | None = None
    per: Rate = Decimal(1)
    multiplier: Decimal | Literal["tier"] | None = None
    """A number above 1, or `tier`: the member's tier's `earn_multiplier` (nothing when
    the tier has none)."""
    bonus: PositivePoints | None = None

    @field_validator("multiplier", mode="wrap")
    @classmethod
    def _number_or_tier(cls, value: Any, handler: Any) -> Any:
        # checked here rather than as a union, so that a bad number gets one error that
        # says what is wrong with it (a union would add "or it should be 'tier'")
        if value is None or value == "tier":
            return value
        if isinstance(value, str) and not re.fullmatch(r"\s*[-+]?[0-9.eE]+\s*", value):
            raise ValueError("give a number above 1, or tier (the member's tier's multiplier)")
        return _MULTIPLIER.validate_python(value)

    @model_validator(mode="after")
    def _exactly_one(self) -> Effect:
        given = [
            name
            for name in (
                "points_per_amount",
                "points_per_quantity",
                "points_per_attribute",
                "multiplier",
                "bonus",
            )
            if getattr(self, name) is not None
        ]
        if len(given) != 1:
            raise ValueError(
                "give exactly one of points_per_amount, points_per_quantity, "
                "points_per_attribute, multiplier, bonus"
                + (f" (got {', '.join(given)})" if given else "")
            )
        if (self.points_per_attribute is None) != (self.attribute is None):
            raise ValueError("points_per_attribute and attribute go together")
        if self.per != 1 and self.kind not in BASE_EFFECTS:
            raise ValueError("'per' only goes with points_per_amount/quantity/attribute")
        return self

    @property
    def kind(self) -> EffectKind:
        if self.points_per_amount is not None:
            return EffectKind.PER_AMOUNT
        if self.points_per_quantity is not None:
            return EffectKind.PER_QUANTITY
        if self.points_per_attribute is not None:
            return EffectKind.PER_ATTRIBUTE
        if self.multiplier is not None:
            return EffectKind.MULTIPLIER
        return EffectKind.BONUS

    @property
    def rate(self) -> Fraction:
        """Points per unit of basis (base effects only), exactly: 1 point per 3 元 is 1/3,
        which no Decimal holds."""
        value = self.points_per_amount or self.points_per_quantity or self.points_per_attribute
        assert value is not None
        return Fraction(value) / Fraction(self.per)


class PeriodCaps(Strict):
    """Most points one member may get from the rule per local day/week/month/year."""

    day: PositivePoints | None = None
    week: PositivePoints | None = None
    month: PositivePoints | None = None
    year: PositivePoints | None = None

    def items(self) -> list[tuple[Period, int]]:
        return [
            (Period(name), limit)
            for name in ("day", "week", "month", "year")
            if (limit := getattr(self, name)) is not None
        ]


class Budget(Strict):
    """Most points the rule may give all members together (a campaign budget), in total
    or per local period; `per` splits it by an event attribute (e.g. each manager's own
    budget in an employee programme)."""

    points: PositivePoints
    period: Period | Literal["total"] = "total"
    per: Code | None = None


class EarningRule(Strict):
    id: str
    name: Annotated[str, Field(min_length=1, max_length=200)]
    description: str | None = None
    active: bool = True
    when: When = When()
    effect: Effect
    scope: Scope = Scope.ORDER
    rounding: Rounding = Rounding.FLOOR
    priority: int = Field(0, ge=-1000, le=1000, description="higher is considered first")
    stacking: Stacking = Stacking.STACK
    group: Code | None = Field(None, description="best_of: the rules that compete")
    cap_per_order: PositivePoints | None = None
    caps: PeriodCaps | None = None
    budget: Budget | None = None

    _check_id = field_validator("id")(_rule_id)

    @model_validator(mode="after")
    def _coherent(self) -> EarningRule:
        if self.stacking == Stacking.BEST_OF and self.group is None:
            raise ValueError("a best_of rule needs a group: the rules it competes with")
        if self.group is not None and self.stacking != Stacking.BEST_OF:
            raise ValueError("group only goes with stacking: best_of")
        if self.budget is not None and self.budget.per is not None:
            raise ValueError("an earning rule's budget cannot be split ('per' is for events)")
        return self


class EventRule(Strict):
    """Points (and growth value) for a behaviour: sign-up, review, check-in, …"""

    type: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,62}$")]
    name: Annotated[str, Field(min_length=1, max_length=200)]
    active: bool = True
    points: Points = 0
    growth: Points = 0
    max_points: PositivePoints | None = Field(
        None,
        description="when set, the event itself says how many points (up to this), "
        "e.g. a manager rewarding a task; `points` is then the default",
    )
    limit: PositiveLimit | None = None
    budget: Budget | None = None

    @model_validator(mode="after")
    def _gives_something(self) -> EventRule:
        if self.points == 0 and self.growth == 0 and self.max_points is None:
            raise ValueError("the rule gives neither points nor growth value")
        if self.max_points is not None and self.points > self.max_points:
            raise ValueError("points (the default) is above max_points")
        return self


class PositiveLimit(Strict):
    """How often one member may be rewarded for the event: `count` times `per` period
    ('ever' for once in a lifetime with count 1)."""

    count: PositivePoints = 1
    per: Period | Literal["ever"] = "ever"


EventRule.model_rebuild()


class BirthdayRule(Strict):
    """Birthday points, given by the birthday job once per member per year: on the day
    (local), or on any day of the birthday month when `window` is month."""

    points: Points = 0
    growth: Points = 0
    window: Literal["day", "month"] = "day"

    @model_validator(mode="after")
    def _gives_something(self) -> BirthdayRule:
        if self.points == 0 and self.growth == 0:
            raise ValueError("the birthday rule gives neither points nor growth value")
        return self


DEFAULT_GROWTH_RULE = EarningRule(
    id="growth",
    name="1 growth value per currency unit of net spend",
    effect=Effect(points_per_amount=Decimal(1)),
)


class RuleSet(Strict):
    """Everything a programme earns by: what `PUT /v1/rules` takes and the programme file
    holds under its rules keys."""

    earning_rules: list[EarningRule] = []
    growth_rules: list[EarningRule] = Field(
        default_factory=lambda: [DEFAULT_GROWTH_RULE],
        description="growth value (成长值) from purchases; default 1 per currency unit",
    )
    event_rules: list[EventRule] = []
    birthday: BirthdayRule | None = None

    @model_validator(mode="after")
    def _unique_and_grouped(self) -> RuleSet:
        for name in ("earning_rules", "growth_rules"):
            rules: list[EarningRule] = getattr(self, name)
            _no_duplicates([r.id for r in rules], f"{name}: rule id")
            groups: dict[str, set[bool]] = {}
            for rule in rules:
                if rule.group is not None:
                    groups.setdefault(rule.group, set()).add(rule.effect.kind in BASE_EFFECTS)
            # base effects are settled before multipliers and bonuses: a group cannot span both
            mixed = sorted(g for g, kinds in groups.items() if len(kinds) > 1)
            if mixed:
                raise ValueError(
                    f"{name}: best_of group {mixed[0]!r} mixes base rates with "
                    "multipliers or bonuses; they cannot compete"
                )
        _no_duplicates([r.type for r in self.event_rules], "event_rules: type")
        return self


def _no_duplicates(values: list[str], what: str) -> None:
    seen: set[str] = set()
    for value in values:
        if value in seen:
            raise ValueError(f"{what} {value!r} appears twice")
        seen.add(value)
