"""The programme table: one row per loyalty programme (tenant) on the installation."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Boolean, CheckConstraint, Integer, Numeric, String
from sqlalchemy.orm import Mapped, mapped_column

from jifen.db.base import Base, Id, Json, UtcDateTime


class Program(Base):
    __tablename__ = "programs"
    __table_args__ = (
        CheckConstraint("pending_days >= 0", name="pending_days_not_negative"),
        CheckConstraint("point_value_points > 0", name="point_value_points_positive"),
        CheckConstraint("point_value_amount > 0", name="point_value_amount_positive"),
        CheckConstraint("hold_minutes > 0", name="hold_minutes_positive"),
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
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
