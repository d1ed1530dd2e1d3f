"""Request and response bodies that exist only over HTTP (the domain's own schemas, such
as `MemberCreate`, `Balance` or `HoldOut`, are used as they are).

Points are strict JSON integers: `1.5`, `"10"`, `true`, zero and negatives are refused
with 422 `invalid-input` before any service runs.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    field_validator,
    model_validator,
)

from jifen.access.service import Scope
from jifen.api.deps import MAX_ID
from jifen.ledger.posting import MAX_POINTS
from jifen.ledger.schemas import Balance, HoldOut, TransactionOut
from jifen.programs.schemas import ProgramOut

Points = Annotated[
    StrictInt, Field(gt=0, le=MAX_POINTS, description="a positive whole number of points")
]
Reference = Annotated[
    str | None,
    Field(max_length=200, description="external reference (order id…), unique per programme"),
]
Reason = Annotated[str | None, Field(max_length=500)]
RequiredReason = Annotated[str, Field(min_length=1, max_length=500)]
Id = Annotated[StrictInt, Field(gt=0, le=MAX_ID)]


def _in_utc(value: datetime) -> datetime:
    try:
        return value.astimezone(UTC)
    except OverflowError:  # 9999-12-31T23:00-05:00 is in year 10000 in UTC
        raise ValueError("out of range once converted to UTC") from None


Instant = Annotated[AwareDatetime, AfterValidator(_in_utc)]
"""An ISO-8601 instant with a zone, in any zone; handed on in UTC."""


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class EarnIn(_In):
    points: Points
    reference: Reference = None
    reason: Reason = None
    pending: StrictBool | None = Field(
        None,
        description="keep the points pending until the programme's return window closes; "
        "default: pending exactly when the programme has a return window (pending_days > 0)",
    )


class SpendIn(_In):
    points: Points
    reference: Reference = None
    reason: Reason = None


class AdjustmentIn(_In):
    points: Annotated[
        StrictInt,
        Field(
            ge=-MAX_POINTS,
            le=MAX_POINTS,
            description="non-zero: positive credits the member, negative debits",
        ),
    ]
    reason: RequiredReason
    reference: Reference = None

    @field_validator("points")
    @classmethod
    def _not_zero(cls, value: int) -> int:
        if value == 0:
            raise ValueError("an adjustment of zero points changes nothing")
        return value


class TransferIn(_In):
    from_member_id: Id
    to_member_id: Id
    points: Points
    reference: Reference = None
    reason: Reason = None


class ReversalIn(_In):
    reason: RequiredReason
    allow_debt: StrictBool | None = Field(
        None,
        description="may the reversal take the member's available points below zero; "
        "default: the programme's debt policy",
    )
    reference: Reference = None


MAX_HOLD_MINUTES = 60 * 24 * 30
"""A hold is for a checkout: it lasts at most 30 days, however its deadline is given."""


class HoldIn(_In):
    member_id: Id
    points: Points
    expires_in_minutes: Annotated[StrictInt | None, Field(gt=0, le=MAX_HOLD_MINUTES)] = None
    expires_at: Instant | None = Field(None, description="at most 30 days from now")
    reference: Reference = None

    @model_validator(mode="after")
    def _one_deadline(self) -> HoldIn:
        if self.expires_in_minutes is not None and self.expires_at is not None:
            raise ValueError("give expires_in_minutes or expires_at, not both")
        return self


class CaptureIn(_In):
    points: Points | None = Field(None, description="default: the whole hold")
    reference: Reference = None


class KeyIn(_In):
    name: Annotated[str, Field(min_length=1, max_length=100)]
    scope: Scope


# -- out -----------------------------------------------------------------------------------


class PostingOut(BaseModel):
    """A journal transaction and the member's balance right after it."""

    transaction: TransactionOut
    balance: Balance


class TransferOut(BaseModel):
    transaction: TransactionOut
    from_balance: Balance
    to_balance: Balance


class HoldActionOut(BaseModel):
    """A capture or void: the hold, its journal transaction, the member's balance."""

    hold: HoldOut
    transaction: TransactionOut
    balance: Balance


class KeyOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    scope: Scope
    prefix: str
    created_at: datetime
    created_by: str
    revoked_at: datetime | None


class KeyCreatedOut(KeyOut):
    key: str | None = Field(
        description="the key itself, shown only in this response and never stored; "
        "null when a retry replays the response"
    )

    @classmethod
    def of(cls, key: object, plaintext: str) -> KeyCreatedOut:
        return cls(**KeyOut.model_validate(key).model_dump(), key=plaintext)


class ProgramCreatedOut(BaseModel):
    program: ProgramOut
    admin_key: KeyCreatedOut


class JobOut(BaseModel):
    job: str
    batches: int
    accounts: int
    """member accounts touched"""
    items: int
    """holds lapsed, lots released or lots expired"""
    points: int


class Health(BaseModel):
    status: str
    version: str
    database: str
