"""The programme table: one row per loyalty programme (tenant) on the installation."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    ForeignKey,
    Integer,
    Numeric,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from jifen.db.base import Base, Id, Json, UtcDateTime


class Program(Base):
    __tablename__ = "programs"
    __table_args__ = (
        CheckConstraint("pending_days >= 0", name="pending_days_not_negative"),
        CheckConstraint("point_value_points > 0", name="point_value_points_positive"),
        CheckConstraint("point_value_amount > 0", name="point_value_amount_positive"),
        CheckConstraint("hold_minutes > 0", name="hold_minutes_positive"),
        CheckConstraint("claim_days >= 0", name="claim_days_not_negative"),
        CheckConstraint(
            "return_policy IN ('debt', 'deduct', 'withhold')", name="return_policy_known"
        ),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    currency: Mapped[str] = mapped_column(String(3))
    timezone: Mapped[str] = mapped_column(String(64))
    points_name: Mapped[str] = mapped_column(String(40))
    point_value_points: Mapped[int] = mapped_column(Integer)
    """`point_value_points` points are worth `point_value_amount` of the currency (100 = 10 元)."""
    point_value_amount: Mapped[Decimal] = mapped_column(Numeric(18, 4))
    pending_days: Mapped[int] = mapped_column(Integer)
    expiry_policy: Mapped[dict[str, Any]] = mapped_column(Json)
    allow_transfers: Mapped[bool] = mapped_column(Boolean)
    allow_negative_balance: Mapped[bool] = mapped_column(Boolean)
    """The debt policy: may a reversal take a member's available points below zero?"""
    hold_minutes: Mapped[int] = mapped_column(Integer)
    """Default lifetime of a hold (points authorised at a checkout) before it lapses."""
    language: Mapped[str] = mapped_column(String(10))
    return_policy: Mapped[str] = mapped_column(String(10), server_default="withhold")
    """What a return does with points the member already spent: debt, deduct or withhold."""
    claim_days: Mapped[int] = mapped_column(Integer, server_default="30")
    """How old a purchase may be when it is attached to a member (late upload, retro-claim)."""
    points_payment: Mapped[dict[str, Any] | None] = mapped_column(Json)
    """`jifen.programs.schemas.PointsPayment` as JSON; None: points cannot pay at a checkout."""
    tiers: Mapped[dict[str, Any] | None] = mapped_column(Json)
    """`jifen.programs.tiers.TierPolicy` as JSON; None: the programme has no tiers."""
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)


class Store(Base):
    """A place or outlet purchases happen at (programme data: rules and analytics use it)."""

    __tablename__ = "stores"
    __table_args__ = (UniqueConstraint("program_id", "code"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    program_id: Mapped[int] = mapped_column(Id, ForeignKey("programs.id"))
    code: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200))
    region: Mapped[str | None] = mapped_column(String(100))
    active: Mapped[bool] = mapped_column(Boolean, default=True)


class Channel(Base):
    """A sales channel a purchase comes through: a store till, POS, web, app, mini-program."""

    __tablename__ = "channels"
    __table_args__ = (UniqueConstraint("program_id", "code"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    program_id: Mapped[int] = mapped_column(Id, ForeignKey("programs.id"))
    code: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(16))
    """store, pos, web, app or mini_program."""
    active: Mapped[bool] = mapped_column(Boolean, default=True)


class RuleSetVersion(Base):
    """One version of a programme's rules (`jifen.rules.schemas.RuleSet` as JSON).

    Versions are never changed: a change is a new version, and every award records the
    version that produced it, so an award can always be explained and re-evaluated.
    """

    __tablename__ = "rule_set_versions"
    __table_args__ = (UniqueConstraint("program_id", "version"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    program_id: Mapped[int] = mapped_column(Id, ForeignKey("programs.id"))
    version: Mapped[int] = mapped_column(Integer)
    document: Mapped[dict[str, Any]] = mapped_column(Json)
    digest: Mapped[str] = mapped_column(String(64))
    """sha256 of the canonical JSON: applying the same rules again makes no new version."""
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    actor: Mapped[str] = mapped_column(String(100))
