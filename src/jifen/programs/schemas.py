"""Programme settings in and out."""

from __future__ import annotations

import re
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    field_serializer,
    field_validator,
    model_validator,
)

from jifen.ledger.expiry import ExpiryPolicy, NeverExpire
from jifen.programs.rulesets import canonical
from jifen.rules.schemas import RuleSet


class ReturnPolicy(StrEnum):
    DEBT = "debt"
    DEDUCT = "deduct"
    WITHHOLD = "withhold"


class PointsPayment(BaseModel):
    """Points as payment at a checkout (积分抵现, PRODUCT.md R4): how much of an order points
    may pay. What a point is worth is the programme's `point_value_*`."""

    model_config = ConfigDict(extra="forbid")

    max_share: Annotated[Decimal, Field(gt=0, le=1, max_digits=5, decimal_places=4)] = Decimal(
        "0.5"
    )
    """The largest part of the eligible amount points may pay (0.5: half)."""
    min_points: Annotated[int, Field(ge=0, le=100_000_000)] = 0
    """Fewer points than this cannot be used at all."""
    step: Annotated[int, Field(ge=1, le=1_000_000)] = 1
    """Points are used in multiples of this (100: whole 10-元 units at 100 = 10 元)."""
    excluded_categories: list[Annotated[str, Field(min_length=1, max_length=64)]] = []
    """Lines of these categories cannot be paid with points (tobacco, gift cards…)."""


CODE_PATTERN = re.compile(r"^[a-z0-9][a-z0-9-]{1,62}$")


class ProgramSettings(BaseModel):
    """Everything a programme decides about its points (PRODUCT.md O4, L3a, L4)."""

    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, Field(min_length=1, max_length=200)]
    currency: Annotated[str, Field(pattern=r"^[A-Z]{3}$", description="ISO 4217, e.g. CNY")] = "CNY"
    timezone: str = Field("Asia/Shanghai", description="IANA zone for day-based rules")
    points_name: Annotated[str, Field(min_length=1, max_length=40)] = "积分"
    point_value_points: Annotated[int, Field(gt=0, le=1_000_000)] = 100
    point_value_amount: Annotated[
        Decimal, Field(gt=0, max_digits=18, decimal_places=4, description="money per N points")
    ] = Decimal("10")
    pending_days: Annotated[int, Field(ge=0, le=365, description="return window")] = 0
    expiry_policy: ExpiryPolicy = Field(default_factory=lambda: NeverExpire(kind="never"))
    allow_transfers: bool = False
    allow_negative_balance: bool = Field(
        False, description="debt policy: may a reversal take available points below zero"
    )
    hold_minutes: Annotated[int, Field(gt=0, le=60 * 24 * 30)] = 30
    language: Annotated[str, Field(pattern=r"^(zh-CN|en)$")] = "zh-CN"
    return_policy: ReturnPolicy = Field(
        ReturnPolicy.WITHHOLD,
        description="what a return does with points already spent: debt (negative balance, "
        "needs allow_negative_balance), deduct (only what is available; the rest is "
        "forgiven) or withhold (deduct what is available, report the rest as money to keep "
        "back from the refund)",
    )
    claim_days: Annotated[int, Field(ge=0, le=366)] = Field(
        30, description="how old a purchase may be when it is attached to a member"
    )
    points_payment: PointsPayment | None = Field(
        None, description="points as payment at a checkout; None: points cannot pay"
    )

    @model_validator(mode="after")
    def _debt_needs_negative_balance(self) -> ProgramSettings:
        if self.return_policy == ReturnPolicy.DEBT and not self.allow_negative_balance:
            raise ValueError(
                "return_policy debt leaves a negative balance: set allow_negative_balance too"
            )
        return self

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r} (use an IANA name)") from exc
        return value


class ProgramCreate(ProgramSettings):
    code: Annotated[
        str,
        Field(description="short unique name: lower-case letters, digits, '-'", max_length=63),
    ]

    @field_validator("code")
    @classmethod
    def _slug(cls, value: str) -> str:
        if not CODE_PATTERN.match(value):
            raise ValueError(
                "2–63 lower-case letters, digits or '-', starting with a letter or digit"
            )
        return value


class ProgramOut(ProgramCreate):
    model_config = ConfigDict(extra="forbid", from_attributes=True)

    id: int
    created_at: datetime
    expiry_description: str
    point_value_description: str


def describe_program(program: Any) -> ProgramOut:
    from jifen.ledger.expiry import EXPIRY_POLICY

    policy = EXPIRY_POLICY.validate_python(program.expiry_policy)
    amount = program.point_value_amount.normalize()
    return ProgramOut(
        id=program.id,
        code=program.code,
        name=program.name,
        currency=program.currency,
        timezone=program.timezone,
        points_name=program.points_name,
        point_value_points=program.point_value_points,
        # as stored (NUMERIC(18, 4)), whether just created or read back
        point_value_amount=program.point_value_amount.quantize(Decimal("0.0001")),
        pending_days=program.pending_days,
        expiry_policy=policy,
        allow_transfers=program.allow_transfers,
        allow_negative_balance=program.allow_negative_balance,
        hold_minutes=program.hold_minutes,
        language=program.language,
        return_policy=program.return_policy,
        claim_days=program.claim_days,
        points_payment=program.points_payment,
        created_at=program.created_at,
        expiry_description=policy.describe(program.language),
        point_value_description=(
            f"{program.point_value_points} {program.points_name} = {amount:f} {program.currency}"
        ),
    )


# -- stores and channels ---------------------------------------------------------------------


class ChannelKind(StrEnum):
    STORE = "store"
    POS = "pos"
    WEB = "web"
    APP = "app"
    MINI_PROGRAM = "mini_program"


OutletCode = Annotated[
    str,
    Field(
        min_length=1,
        max_length=64,
        pattern=r"^\S+$",
        description="what purchases and rules name it by (no spaces)",
    ),
]


class StoreSpec(BaseModel):
    """A store as the programme file gives it (and `GET /v1/stores` shows it)."""

    model_config = ConfigDict(extra="forbid", frozen=True, from_attributes=True)

    code: OutletCode
    name: Annotated[str, Field(min_length=1, max_length=200)]
    region: Annotated[str, Field(min_length=1, max_length=100)] | None = None
    active: bool = True


class ChannelSpec(BaseModel):
    """A sales channel as the programme file gives it (and `GET /v1/channels` shows it)."""

    model_config = ConfigDict(extra="forbid", frozen=True, from_attributes=True)

    code: OutletCode
    name: Annotated[str, Field(min_length=1, max_length=200)]
    kind: ChannelKind
    active: bool = True


# -- rules -----------------------------------------------------------------------------------


class RulesOut(BaseModel):
    """One version of a programme's rules: what `GET /v1/rules` answers."""

    version: int = Field(description='send it back as `If-Match: "<version>"` to PUT safely')
    created_at: datetime
    actor: str = Field(description="who made this version: an API key, a CLI user, system")
    rules: RuleSet

    # No return annotation on purpose: pydantic then documents the field as a RuleSet
    # (OpenAPI), where `-> dict` would make it a bare object.
    @field_serializer("rules")
    def _stored_form(self, rules: RuleSet):  # type: ignore[no-untyped-def]
        """Every field, by the names the file and PUT use (`from`/`to`): a GET can be PUT
        back as it is."""
        return canonical(rules)


class RulesSaved(RulesOut):
    """What `PUT /v1/rules` answers: the version now current, and whether the PUT made it."""

    created: bool = Field(description="false: the rules equal the current version's")
