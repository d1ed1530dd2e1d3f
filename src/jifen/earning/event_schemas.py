"""Behaviour events in and out (PRODUCT.md E4)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StrictInt, field_validator

from jifen.members.schemas import MemberRef

BUILT_IN_EVENT_TYPES = (
    "sign_up",
    "profile_completed",
    "survey_completed",
    "review",
    "social_share",
    "check_in",
    "app_download",
    "referral_success",
)
"""The behaviours the product names (E4). Any other type a programme's rules define is as
good; a type is accepted only while the programme's rules have an active rule for it."""

BIRTHDAY = "birthday"
"""Birthday points come only from the birthday job, never from a recorded event."""

EventType = Annotated[
    str,
    Field(
        pattern=r"^[a-z][a-z0-9_]{0,62}$",
        description="the behaviour: sign_up, profile_completed, survey_completed, review, "
        "social_share, check_in, app_download, referral_success, or a custom type the "
        "programme's event rules define",
        examples=["check_in"],
    ),
]
NoControl = r"^[^\x00-\x1f\x7f]+$"


class EventStatus:
    AWARDED = "awarded"
    LIMITED = "limited"
    """Over the rule's frequency limit: recorded, nothing given."""
    BUDGET = "budget"
    """The rule's budget had less left than the event asked for: it got what was left."""


class EventIn(BaseModel):
    """A behaviour of a member to reward by the programme's event rules."""

    model_config = ConfigDict(extra="forbid")

    type: EventType
    member: MemberRef
    external_id: Annotated[str, Field(min_length=1, max_length=128, pattern=NoControl)] = Field(
        description="the caller's id of this event, unique in the programme: sending it again "
        "returns the first result instead of rewarding twice"
    )
    occurred_at: AwareDatetime | None = Field(
        None,
        description="when the behaviour happened, with a zone (default: now); at most 5 "
        "minutes ahead of the server's clock and no older than the programme's claim_days",
    )
    points: StrictInt | None = Field(
        None,
        description="only for rules with max_points (a manager rewarding a task): 1 to "
        "max_points; the rule's own points otherwise",
    )
    attributes: dict[
        Annotated[str, Field(min_length=1, max_length=64, pattern=NoControl)],
        Annotated[str, Field(max_length=200)],
    ] = Field(
        default_factory=dict,
        description="what the event is about (e.g. manager, survey id); a rule whose budget "
        "is kept per attribute needs that attribute",
    )

    @field_validator("external_id")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be blank")
        return value.strip()

    @field_validator("occurred_at")
    @classmethod
    def _in_utc(cls, value: datetime | None) -> datetime | None:
        try:
            return None if value is None else value.astimezone(UTC)
        except OverflowError:  # 9999-12-31T23:00-05:00 is in year 10000 in UTC
            raise ValueError("out of range once converted to UTC") from None

    @field_validator("attributes")
    @classmethod
    def _few(cls, value: dict[str, str]) -> dict[str, str]:
        if len(value) > 20:
            raise ValueError("at most 20 attributes")
        return value


class EventOut(BaseModel):
    """A recorded event: what it gave and, when it gave less than the rule says, why."""

    id: int
    type: str
    member_id: int
    external_id: str
    occurred_at: datetime
    status: str = Field(description="awarded, limited (frequency limit) or budget (budget spent)")
    points: int
    growth: int
    reason: str | None = Field(
        None, description="why the event got less than its rule gives (limited or budget)"
    )
    rule_set_version: int | None
    points_transaction_id: int | None
    growth_transaction_id: int | None
    attributes: dict[str, str]
    created_at: datetime
    actor: str
    repeat: bool = Field(
        False,
        description="true when this external_id was recorded before: this is that first "
        "result, nothing was given again",
    )


class EventPage(BaseModel):
    items: list[EventOut]
    next_cursor: str | None
