"""Ledger read models: balance, lots, history items, holds."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict


class ExpiringPoints(BaseModel):
    date: date
    """The programme-local day at whose end the points expire."""
    points: int


class Balance(BaseModel):
    member_id: int
    available: int
    """Spendable now. Negative only where the programme's debt policy allowed a reversal."""
    pending: int
    """Earned but still inside the return window."""
    held: int
    """Set aside by open holds (checkouts)."""
    lifetime_earned: int
    growth_value: int
    expiring_soon: list[ExpiringPoints]
    """What expires within the next 30 days, day by day (programme time zone)."""
    as_of: datetime


class LotOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    amount: int
    remaining: int
    status: str
    earned_at: datetime
    available_at: datetime | None
    expires_at: datetime | None
    transaction_id: int


class HistoryItem(BaseModel):
    id: int
    kind: str
    points: int
    """Net change of this member's points (all buckets): + credited, − debited, 0 a move."""
    growth_value: int
    """Change of the member's growth value."""
    available: int
    pending: int
    held: int
    created_at: datetime
    reference: str | None
    reason: str | None
    actor: str
    reverses_id: int | None
    reversed_by_id: int | None
    hold_id: int | None
    details: dict[str, Any] | None


class HistoryPage(BaseModel):
    items: list[HistoryItem]
    next_cursor: str | None


class HoldOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    member_id: int
    amount: int
    captured: int
    status: str
    reference: str | None
    created_at: datetime
    expires_at: datetime
    closed_at: datetime | None


class TransactionOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    member_id: int | None
    kind: str
    points: int
    created_at: datetime
    reference: str | None
    reason: str | None
    actor: str
    reverses_id: int | None
    hold_id: int | None
    details: dict[str, Any] | None
