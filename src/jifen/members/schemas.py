"""Member data in and out. Identifiers are normalised before they are stored or looked up."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Annotated, Any

from email_validator import EmailNotValidError, validate_email
from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

PHONE_PATTERN = re.compile(r"^\+?[0-9]{5,20}$")


class MemberStatus(StrEnum):
    ACTIVE = "active"
    FROZEN = "frozen"
    CLOSED = "closed"


class IdentifierField(StrEnum):
    PHONE = "phone"
    EMAIL = "email"
    CARD_NUMBER = "card_number"
    EXTERNAL_ID = "external_id"


def normalise_phone(value: str) -> str:
    phone = re.sub(r"[\s\-().]", "", value)
    if not PHONE_PATTERN.match(phone):
        raise ValueError("a phone number is 5–20 digits, optionally starting with +")
    return phone


def normalise_email(value: str) -> str:
    try:
        return validate_email(value.strip(), check_deliverability=False).normalized.lower()
    except EmailNotValidError as exc:
        raise ValueError(str(exc)) from exc


def normalise_identifier(field: IdentifierField, value: str) -> str:
    if field == IdentifierField.PHONE:
        return normalise_phone(value)
    if field == IdentifierField.EMAIL:
        return normalise_email(value)
    cleaned = value.strip()
    if not cleaned:
        raise ValueError(f"{field} must not be empty")
    return cleaned


class Profile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Annotated[str | None, Field(max_length=200)] = None
    birthday: date | None = None
    gender: Annotated[str | None, Field(max_length=16)] = None
    city: Annotated[str | None, Field(max_length=100)] = None
    language: Annotated[str | None, Field(pattern=r"^(zh-CN|en)$")] = None
    attributes: dict[str, Any] = Field(default_factory=dict)

    @field_validator("birthday")
    @classmethod
    def _plausible_birthday(cls, value: date | None) -> date | None:
        if value is not None and value < date(1900, 1, 1):
            raise ValueError("birthday must be on or after 1900-01-01")
        return value


class Identifiers(BaseModel):
    model_config = ConfigDict(extra="forbid")

    phone: Annotated[str | None, Field(max_length=32)] = None
    email: Annotated[str | None, Field(max_length=254)] = None
    card_number: Annotated[str | None, Field(max_length=64)] = None
    external_id: Annotated[str | None, Field(max_length=128)] = None

    @field_validator("phone")
    @classmethod
    def _phone(cls, value: str | None) -> str | None:
        return None if value is None else normalise_phone(value)

    @field_validator("email")
    @classmethod
    def _email(cls, value: str | None) -> str | None:
        return None if value is None else normalise_email(value)

    @field_validator("card_number", "external_id")
    @classmethod
    def _not_blank(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            raise ValueError("must not be blank")
        return None if value is None else value.strip()

    def given(self) -> dict[str, str]:
        fields = ("phone", "email", "card_number", "external_id")
        return {k: v for k in fields if (v := getattr(self, k)) is not None}


class MemberCreate(Identifiers, Profile):
    """Enrol in one step from any channel: at least one identifier."""

    enrolment_channel: Annotated[str | None, Field(max_length=32)] = None
    enrolled_at: AwareDatetime | None = Field(
        None, description="when the member joined (imports), with a zone; defaults to now"
    )

    @field_validator("enrolled_at")
    @classmethod
    def _in_utc(cls, value: datetime | None) -> datetime | None:
        try:
            return None if value is None else value.astimezone(UTC)
        except OverflowError:  # 0001-01-01T00:00+01:00 is in year 0 in UTC
            raise ValueError("out of range once converted to UTC") from None

    @model_validator(mode="after")
    def _one_identifier(self) -> MemberCreate:
        if not self.given():
            raise ValueError("give at least one of phone, email, card_number, external_id")
        return self


class MemberUpdate(Identifiers, Profile):
    """A partial update: only the fields sent change."""

    attributes: dict[str, Any] | None = None  # type: ignore[assignment]

    @field_validator("attributes")
    @classmethod
    def _attributes_not_null(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        # None only stands for "not sent"; the stored attributes are always an object
        if value is None:
            raise ValueError("attributes cannot be null; send {} to clear them")
        return value


class StatusChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    status: MemberStatus
    reason: Annotated[str, Field(min_length=1, max_length=500)]


class MemberOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    program_id: int
    phone: str | None
    email: str | None
    card_number: str | None
    external_id: str | None
    name: str | None
    birthday: date | None
    gender: str | None
    city: str | None
    language: str | None
    attributes: dict[str, Any]
    status: MemberStatus
    status_reason: str | None
    enrolled_at: datetime
    enrolment_channel: str | None
    updated_at: datetime


class MemberRef(BaseModel):
    """A member named by exactly one of: jifen's id, phone, email, card number, external id
    (what a till or an app knows)."""

    model_config = ConfigDict(extra="forbid")

    id: Annotated[int, Field(gt=0, lt=2**63)] | None = None
    phone: str | None = None
    email: str | None = None
    card_number: str | None = None
    external_id: str | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> MemberRef:
        given = [name for name, value in self if value is not None]
        if len(given) != 1:
            raise ValueError(
                "name the member by exactly one of id, phone, email, card_number, external_id"
            )
        return self
