"""Purchases, their lines and returns, behaviour events, and the counters behind rule caps.

A purchase row keeps everything needed to explain and re-evaluate its award: the member
facts as they were (`facts`), the rule-set version, and the breakdown per rule. Points
themselves live only in the ledger (`earn_txn_id`, `growth_txn_id`); the totals here are
what the earning service awarded and clawed back, for reading without the journal.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from jifen.db.base import Base, Id, Json, UtcDateTime, checked_key

Money = Numeric(18, 2)
Quantity = Numeric(18, 3)


class PurchaseStatus:
    UNCLAIMED = "unclaimed"
    """Recorded without a member; a member may claim it within the claim window."""
    AWARDED = "awarded"
    RETURNED = "returned"
    """Every line returned: nothing of the award is left."""


class Purchase(Base):
    __tablename__ = "purchases"
    __table_args__ = (
        UniqueConstraint("program_id", "external_id"),
        Index(None, "program_id", "member_id", "occurred_at"),
        CheckConstraint("total >= 0", name="total_not_negative"),
        CheckConstraint("net_total >= 0 AND net_total <= total", name="net_total_in_range"),
        CheckConstraint("points >= 0 AND points_returned >= 0", name="points_not_negative"),
        CheckConstraint("points_returned <= points", name="points_returned_in_range"),
        CheckConstraint("growth_returned <= growth", name="growth_returned_in_range"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    program_id: Mapped[int] = mapped_column(Id, checked_key("programs.id"))
    member_id: Mapped[int | None] = mapped_column(Id, checked_key("members.id"))
    external_id: Mapped[str] = mapped_column(String(128))
    status: Mapped[str] = mapped_column(String(10))
    occurred_at: Mapped[datetime] = mapped_column(UtcDateTime)
    channel: Mapped[str] = mapped_column(String(64))
    store: Mapped[str | None] = mapped_column(String(64))
    payment_method: Mapped[str | None] = mapped_column(String(64))
    total: Mapped[Decimal] = mapped_column(Money)
    net_total: Mapped[Decimal] = mapped_column(Money)
    """The total less everything returned so far."""
    rule_set_version: Mapped[int | None] = mapped_column(Integer)
    facts: Mapped[dict[str, Any] | None] = mapped_column(Json)
    """The member as the rules saw them: tier, segments, first purchase, birthday."""
    points: Mapped[int] = mapped_column(BigInteger, default=0)
    growth: Mapped[int] = mapped_column(BigInteger, default=0)
    points_returned: Mapped[int] = mapped_column(BigInteger, default=0)
    """Points the returns took back or reported as not taken (forgiven or withheld)."""
    growth_returned: Mapped[int] = mapped_column(BigInteger, default=0)
    breakdown: Mapped[list[dict[str, Any]] | None] = mapped_column(Json)
    growth_breakdown: Mapped[list[dict[str, Any]] | None] = mapped_column(Json)
    earn_txn_id: Mapped[int | None] = mapped_column(Id, checked_key("journal_transactions.id"))
    growth_txn_id: Mapped[int | None] = mapped_column(Id, checked_key("journal_transactions.id"))
    attributes: Mapped[dict[str, Any] | None] = mapped_column(Json)
    # hold_id and capture_txn_id have no foreign key: SQLite adds a column to an existing
    # table only without one (and the journal's triggers rule out a table rebuild).
    hold_id: Mapped[int | None] = mapped_column(Id)
    """Points as payment: the checkout hold this purchase captured."""
    paid_points: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    """Points spent on this order (captured from the hold)."""
    paid_points_value: Mapped[Decimal] = mapped_column(
        Money, default=Decimal("0.00"), server_default="0"
    )
    """What those points paid, in money: the order earns on the rest (the cash part)."""
    capture_txn_id: Mapped[int | None] = mapped_column(Id)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    claimed_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    actor: Mapped[str] = mapped_column(String(100))


class PurchaseLine(Base):
    __tablename__ = "purchase_lines"
    __table_args__ = (
        UniqueConstraint("purchase_id", "line_no"),
        CheckConstraint("quantity > 0", name="quantity_positive"),
        CheckConstraint("discount >= 0 AND discount <= amount", name="discount_in_range"),
        CheckConstraint(
            "returned_quantity >= 0 AND returned_quantity <= quantity",
            name="returned_quantity_in_range",
        ),
        CheckConstraint(
            # in cents: SQLite keeps NUMERIC as floating point, where 99.99 - 0.01 < 99.98
            "returned_amount >= 0 "
            "AND round(returned_amount * 100) <= round((amount - discount) * 100)",
            name="returned_amount_in_range",
        ),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    program_id: Mapped[int] = mapped_column(Id, checked_key("programs.id"))
    purchase_id: Mapped[int] = mapped_column(Id, ForeignKey("purchases.id"))
    line_no: Mapped[int] = mapped_column(Integer)
    """1-based, in the order the purchase listed its lines."""
    sku: Mapped[str] = mapped_column(String(64))
    category: Mapped[str | None] = mapped_column(String(64))
    brand: Mapped[str | None] = mapped_column(String(64))
    quantity: Mapped[Decimal] = mapped_column(Quantity)
    unit_price: Mapped[Decimal] = mapped_column(Money)
    amount: Mapped[Decimal] = mapped_column(Money)
    """quantity × unit price, before the line's discount."""
    discount: Mapped[Decimal] = mapped_column(Money)
    attributes: Mapped[dict[str, Any] | None] = mapped_column(Json)
    returned_quantity: Mapped[Decimal] = mapped_column(Quantity, default=Decimal(0))
    returned_amount: Mapped[Decimal] = mapped_column(Money, default=Decimal(0))
    """Net amount refunded for the line so far (money, and the points share if points paid
    part of the line)."""
    points_value: Mapped[Decimal] = mapped_column(
        Money, default=Decimal("0.00"), server_default="0"
    )
    """The part of this line's net amount paid with points (earns nothing)."""


class PurchaseReturn(Base):
    __tablename__ = "purchase_returns"
    __table_args__ = (
        UniqueConstraint("purchase_id", "external_id"),
        CheckConstraint("amount >= 0", name="amount_not_negative"),
        CheckConstraint("points >= 0 AND points_not_taken >= 0", name="points_not_negative"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    program_id: Mapped[int] = mapped_column(Id, ForeignKey("programs.id"))
    purchase_id: Mapped[int] = mapped_column(Id, ForeignKey("purchases.id"), index=True)
    member_id: Mapped[int | None] = mapped_column(Id, ForeignKey("members.id"))
    external_id: Mapped[str | None] = mapped_column(String(128))
    amount: Mapped[Decimal] = mapped_column(Money)
    """Net money refunded by this return."""
    lines: Mapped[list[dict[str, Any]]] = mapped_column(Json)
    """Per line: line_no, quantity, amount."""
    policy: Mapped[str] = mapped_column(String(10))
    points: Mapped[int] = mapped_column(BigInteger)
    """Points the award loses by this return (taken back, forgiven or withheld)."""
    points_taken: Mapped[int] = mapped_column(BigInteger)
    points_not_taken: Mapped[int] = mapped_column(BigInteger)
    withhold_amount: Mapped[Decimal] = mapped_column(Money)
    """Money to keep back from the refund for points already spent (policy withhold)."""
    growth: Mapped[int] = mapped_column(BigInteger)
    breakdown: Mapped[list[dict[str, Any]]] = mapped_column(Json)
    clawback_txn_id: Mapped[int | None] = mapped_column(Id, ForeignKey("journal_transactions.id"))
    growth_clawback_txn_id: Mapped[int | None] = mapped_column(
        Id, ForeignKey("journal_transactions.id")
    )
    # Points as payment: what this return gave back of the points the order was paid with
    # (`jifen.rewards.checkout.refund_returned`). No foreign key, as for purchases.hold_id.
    paid_points_refunded: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    paid_points_value_refunded: Mapped[Decimal] = mapped_column(
        Money, default=Decimal("0.00"), server_default="0"
    )
    """The part of `amount` points had paid: not refunded in money."""
    refund_txn_id: Mapped[int | None] = mapped_column(Id)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    actor: Mapped[str] = mapped_column(String(100))


class BehaviourEvent(Base):
    """A behaviour a member was (or, over its limit, was not) rewarded for (E4)."""

    __tablename__ = "behaviour_events"
    __table_args__ = (
        UniqueConstraint("program_id", "external_id"),
        Index(None, "program_id", "member_id", "type", "occurred_at"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    program_id: Mapped[int] = mapped_column(Id, ForeignKey("programs.id"))
    member_id: Mapped[int] = mapped_column(Id, ForeignKey("members.id"))
    type: Mapped[str] = mapped_column(String(64))
    external_id: Mapped[str] = mapped_column(String(128))
    occurred_at: Mapped[datetime] = mapped_column(UtcDateTime)
    status: Mapped[str] = mapped_column(String(16))
    """awarded, or why not: limited (frequency cap) or budget (budget spent)."""
    points: Mapped[int] = mapped_column(BigInteger)
    growth: Mapped[int] = mapped_column(BigInteger)
    rule_set_version: Mapped[int | None] = mapped_column(Integer)
    points_txn_id: Mapped[int | None] = mapped_column(Id, ForeignKey("journal_transactions.id"))
    growth_txn_id: Mapped[int | None] = mapped_column(Id, ForeignKey("journal_transactions.id"))
    attributes: Mapped[dict[str, Any] | None] = mapped_column(Json)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    actor: Mapped[str] = mapped_column(String(100))


class RuleCounter(Base):
    """Points a capped rule has given, per key (a member and period, or a budget).

    Keys: `member:<id>:<rule>:<period key>` for per-member caps (changed only under the
    member's account lock) and `budget:<rule>:<period key>[:<per value>]` for budgets
    (changed under this row's own lock). Returns give their points back.
    """

    __tablename__ = "rule_counters"
    __table_args__ = (
        UniqueConstraint("program_id", "key"),
        CheckConstraint("used >= 0", name="used_not_negative"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    program_id: Mapped[int] = mapped_column(Id, checked_key("programs.id"))
    key: Mapped[str] = mapped_column(String(200))
    used: Mapped[int] = mapped_column(BigInteger, default=0)
