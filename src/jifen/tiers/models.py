"""Where each member stands in the programme's tiers, the grants that lift them, the history
of every change, and the periodic benefits already issued (PRODUCT.md T1–T4).

A member without a `member_tiers` row is in the programme's base tier (the first level):
rows are written on the first upgrade or grant, so the evaluation job only ever looks at
members above the base tier or holding grants.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import CheckConstraint, ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from jifen.db.base import Base, Id, Json, UtcDateTime, checked_key


class MemberTier(Base):
    """A member's current tier (the better of what their record earns and their grants)."""

    __tablename__ = "member_tiers"
    __table_args__ = (
        UniqueConstraint("program_id", "member_id"),
        # half-full pages: the evaluation job's update of every row of a page is HOT
        # (migration 0009)
        {"postgresql_with": {"fillfactor": 50}},
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    program_id: Mapped[int] = mapped_column(Id, checked_key("programs.id"))
    member_id: Mapped[int] = mapped_column(Id, checked_key("members.id"))
    tier: Mapped[str] = mapped_column(String(64))
    """The tier the member is in now: what benefits and rules use."""
    qualified_tier: Mapped[str] = mapped_column(String(64))
    """The tier the member's own record holds (without grants)."""
    since: Mapped[datetime] = mapped_column(UtcDateTime)
    """When the member entered `tier`."""
    grace_until: Mapped[datetime | None] = mapped_column(UtcDateTime)
    """Set when an evaluation found the record below the retain threshold: the member
    keeps the tier until then, and is downgraded by the first evaluation after it."""
    evaluated_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)


class GrantKind:
    STAFF = "staff"
    INVITATION = "invitation"
    PAID = "paid"
    """A paid membership (付费会员): `reference` is the payment or order id."""


class TierGrant(Base):
    """A tier given to a member until `ends_at`, whatever their record: by staff, by
    invitation, or by a paid membership."""

    __tablename__ = "tier_grants"
    __table_args__ = (
        UniqueConstraint("program_id", "reference"),
        CheckConstraint("ends_at > starts_at", name="ends_after_start"),
        CheckConstraint("kind IN ('staff', 'invitation', 'paid')", name="kind_known"),
        Index(None, "program_id", "member_id"),
        Index(None, "program_id", "ends_at"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    program_id: Mapped[int] = mapped_column(Id, ForeignKey("programs.id"))
    member_id: Mapped[int] = mapped_column(Id, ForeignKey("members.id"))
    tier: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(12))
    starts_at: Mapped[datetime] = mapped_column(UtcDateTime)
    ends_at: Mapped[datetime] = mapped_column(UtcDateTime)
    reason: Mapped[str | None] = mapped_column(String(500))
    reference: Mapped[str | None] = mapped_column(String(200))
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    actor: Mapped[str] = mapped_column(String(100))


class TierChange(Base):
    """One change of a member's tier, with its reason (the tier history, T2)."""

    __tablename__ = "tier_history"
    __table_args__ = (Index(None, "program_id", "member_id", "id"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    program_id: Mapped[int] = mapped_column(Id, checked_key("programs.id"))
    member_id: Mapped[int] = mapped_column(Id, checked_key("members.id"))
    from_tier: Mapped[str] = mapped_column(String(64))
    to_tier: Mapped[str] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(String(32))
    """qualified, downgraded, granted, grant_ended, grant_revoked, grace_started,
    grace_cleared (`jifen.tiers.service.Reason`)."""
    details: Mapped[dict[str, Any] | None] = mapped_column(Json)
    """What decided it: the measures and thresholds, the grant, the purchase."""
    at: Mapped[datetime] = mapped_column(UtcDateTime)
    actor: Mapped[str] = mapped_column(String(100))


class BenefitIssue(Base):
    """A periodic benefit, birthday gift or near-upgrade reminder settled for a member for
    one period: the unique key makes the jobs idempotent (they can run any number of times,
    or crash midway) and tells a member of a near upgrade once per tier and period."""

    __tablename__ = "tier_benefit_issues"
    __table_args__ = (UniqueConstraint("program_id", "member_id", "benefit", "period"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    program_id: Mapped[int] = mapped_column(Id, checked_key("programs.id"))
    member_id: Mapped[int] = mapped_column(Id, checked_key("members.id"))
    benefit: Mapped[str] = mapped_column(String(200))
    """`<tier>:<reward>:<every>` (a periodic reward), `birthday` (the tier's birthday gift,
    once a year whatever the tier) or `near-upgrade:<tier>` (a reminder)."""
    period: Mapped[str] = mapped_column(String(16))
    """`2027-03`, `2027-Q1`, `2027`."""
    tier: Mapped[str] = mapped_column(String(64))
    details: Mapped[dict[str, Any] | None] = mapped_column(Json)
    """What was issued: redemption id, points transaction id; `refused` (a problem code)
    when the rewards refused the gift."""
    issued_at: Mapped[datetime] = mapped_column(UtcDateTime)
