"""Tiers in and out of the API and the CLI: grants, history, and where a member stands."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from jifen.programs.tiers import Benefits, TierPolicy

GrantKindName = Literal["staff", "invitation", "paid"]

Amount = int | Decimal
"""Growth value and purchases are whole numbers; spend is money (a decimal string)."""


class GrantIn(BaseModel):
    """`POST /v1/members/{id}/tier/grants`: a tier given until an end date, whatever the
    member's record."""

    model_config = ConfigDict(extra="forbid")

    tier: Annotated[str, Field(min_length=1, max_length=64, examples=["gold"])]
    kind: GrantKindName
    ends_at: AwareDatetime | None = Field(
        None, description="when the grant ends (give this or `days`)"
    )
    days: Annotated[int, Field(ge=1, le=3660)] | None = Field(
        None,
        description="the grant lasts this many programme-local days, today counting as the "
        "first, to the end of the last one",
    )
    reason: Annotated[str, Field(min_length=1, max_length=500)] | None = None
    reference: Annotated[str, Field(min_length=1, max_length=200)] | None = Field(
        None,
        description="unique in the programme: a paid membership's payment or order id, so "
        "a retried payment webhook grants once (required for kind paid)",
    )

    @model_validator(mode="after")
    def _shape(self) -> GrantIn:
        if (self.ends_at is None) == (self.days is None):
            raise ValueError("give exactly one of ends_at, days")
        if self.kind == "paid" and self.reference is None:
            raise ValueError("a paid membership names its payment or order id as reference")
        return self


class RevokeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: Annotated[str, Field(min_length=1, max_length=500)] | None = None


class GrantOut(BaseModel):
    id: int
    member_id: int
    tier: str
    kind: str
    starts_at: datetime
    ends_at: datetime
    reason: str | None
    reference: str | None
    revoked_at: datetime | None
    active: bool
    """Neither revoked nor ended (at the time of the answer)."""
    created_at: datetime
    actor: str


class HistoryItem(BaseModel):
    id: int
    from_tier: str
    to_tier: str
    reason: str
    """qualified, downgraded, granted, grant_ended, grant_revoked, grace_started,
    grace_cleared."""
    details: dict[str, Any] | None
    at: datetime
    actor: str


class HistoryPage(BaseModel):
    items: list[HistoryItem]
    next_cursor: str | None


class HeldBy(BaseModel):
    how: Literal["qualified", "grant"]
    grant_id: int | None = None
    kind: str | None = None
    ends_at: datetime | None = None


class CurrentTier(BaseModel):
    code: str
    name: str
    since: datetime | None
    """When the member entered the tier (None: the base tier, since enrolment)."""
    held_by: HeldBy
    benefits: Benefits


class WindowOut(BaseModel):
    kind: Literal["rolling", "calendar"]
    months: int | None = None
    period: str | None = None
    start: date
    """The first local day counted (for entering a tier)."""


class Missing(BaseModel):
    measure: Literal["growth", "spend", "purchases"]
    threshold: Amount
    current: Amount
    missing: Amount
    """0 where the measure is reached."""


class NextTier(BaseModel):
    code: str
    name: str
    missing: list[Missing]
    """Any one measure reaching its threshold is enough."""
    deadline: date | None
    """Calendar windows: the last local day of the period the measures count."""
    drops_out_from: date | None
    """Rolling windows: the first local day the oldest amount counted stops counting."""
    message: str


class Keep(BaseModel):
    code: str
    threshold: dict[str, Amount]
    met: bool
    """The record holds the tier at the next evaluation."""
    missing: list[Missing]
    """Against the current period for calendar windows (what keeps the tier into the next
    one), against the window for rolling ones."""
    deadline: date | None
    grace_until: datetime | None
    message: str


class Standing(BaseModel):
    """`GET /v1/members/{id}/tier`."""

    member_id: int
    tier: CurrentTier
    qualified_tier: str
    """What the member's own record holds, grants aside."""
    window: WindowOut
    measures: dict[str, Amount]
    """growth, spend and purchases in the window that counts for entering a tier."""
    next: NextTier | None
    keep: Keep | None
    """None in the base tier: nothing to keep."""
    grants: list[GrantOut]
    """Active grants."""


class TiersOut(BaseModel):
    """`GET /v1/tiers`: the programme's tier definition."""

    configured: bool
    policy: TierPolicy | None
