"""The rewards catalog, redemptions, and coupons (PRODUCT.md R1–R5).

Stock and totals are counters changed only by atomic updates
(`UPDATE rewards SET redeemed = redeemed + :q WHERE … AND redeemed + :q <= stock`), with a
CHECK constraint behind them, so no interleaving of redeemers can oversell. Points move
only through the ledger: a redemption keeps the id of its spend transaction, and a
cancellation reverses it (the points return to their original lots and expiry).
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from jifen.db.base import Base, Id, Json, UtcDateTime

Money = Numeric(18, 2)


class Reward(Base):
    """One reward of the catalog (`jifen.programs.rewards.RewardSpec` plus its counters)."""

    __tablename__ = "rewards"
    __table_args__ = (
        UniqueConstraint("program_id", "code"),
        CheckConstraint("points >= 0", name="points_not_negative"),
        CheckConstraint("redeemed >= 0", name="redeemed_not_negative"),
        CheckConstraint("stock IS NULL OR redeemed <= stock", name="never_oversold"),
        CheckConstraint(
            "kind IN ('coupon', 'goods', 'service', 'experience', 'charity')", name="kind_known"
        ),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    program_id: Mapped[int] = mapped_column(Id, ForeignKey("programs.id"))
    code: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str | None] = mapped_column(String(2000))
    kind: Mapped[str] = mapped_column(String(12))
    points: Mapped[int] = mapped_column(BigInteger)
    cash: Mapped[Decimal | None] = mapped_column(Money)
    prices: Mapped[dict[str, Any] | None] = mapped_column(Json)
    """Tier code → points price."""
    tiers: Mapped[list[str] | None] = mapped_column(Json)
    """Only these tiers may redeem; None: everyone."""
    available_from: Mapped[datetime | None] = mapped_column(UtcDateTime)
    available_until: Mapped[datetime | None] = mapped_column(UtcDateTime)
    stock: Mapped[int | None] = mapped_column(BigInteger)
    """How many may ever be redeemed (None: unlimited)."""
    redeemed: Mapped[int] = mapped_column(BigInteger, default=0)
    """How many live (not cancelled) redemptions hold: what is left is stock − redeemed."""
    limit_per_day: Mapped[int | None] = mapped_column(Integer)
    limit_per_member: Mapped[int | None] = mapped_column(Integer)
    details: Mapped[dict[str, Any] | None] = mapped_column(Json)
    """Kind-specific: `coupon` (CouponSpec), `experience`, `cause`."""
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)


class RedemptionStatus:
    ISSUED = "issued"
    """Coupons, services, experiences and donations: the reward is the member's."""
    PENDING = "pending"
    """Goods waiting to be shipped."""
    SHIPPED = "shipped"
    DELIVERED = "delivered"
    CANCELLED = "cancelled"


class Redemption(Base):
    """A member's redemption of a reward (or a reward given as a tier benefit)."""

    __tablename__ = "redemptions"
    __table_args__ = (
        CheckConstraint("quantity > 0", name="quantity_positive"),
        CheckConstraint("points >= 0", name="points_not_negative"),
        CheckConstraint(
            "status IN ('issued', 'pending', 'shipped', 'delivered', 'cancelled')",
            name="status_known",
        ),
        Index(None, "program_id", "member_id", "reward_id", "created_at"),
        Index(None, "program_id", "reward_id", "status"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    program_id: Mapped[int] = mapped_column(Id, ForeignKey("programs.id"))
    member_id: Mapped[int] = mapped_column(Id, ForeignKey("members.id"))
    reward_id: Mapped[int] = mapped_column(Id, ForeignKey("rewards.id"))
    reward_code: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(12))
    quantity: Mapped[int] = mapped_column(Integer)
    points: Mapped[int] = mapped_column(BigInteger)
    """Points paid in all (price × quantity), at the member's tier price."""
    cash: Mapped[Decimal | None] = mapped_column(Money)
    """Money paid besides the points (points + cash), collected by the caller."""
    payment_reference: Mapped[str | None] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(10))
    source: Mapped[str] = mapped_column(String(16))
    """redeemed (the member paid points), benefit (a periodic tier benefit), birthday."""
    tier: Mapped[str | None] = mapped_column(String(64))
    """The member's tier when redeeming (it decided price and eligibility)."""
    spend_txn_id: Mapped[int | None] = mapped_column(Id, ForeignKey("journal_transactions.id"))
    cancel_txn_id: Mapped[int | None] = mapped_column(Id, ForeignKey("journal_transactions.id"))
    cause: Mapped[str | None] = mapped_column(String(64))
    shipping: Mapped[dict[str, Any] | None] = mapped_column(Json)
    """Goods: the address (name, phone, lines, city, postcode…)."""
    fulfilment: Mapped[dict[str, Any] | None] = mapped_column(Json)
    """Goods: carrier, tracking number, shipped/delivered times; a cancellation's reason."""
    details: Mapped[dict[str, Any] | None] = mapped_column(Json)
    """What the caller of a gift says about it (the benefit and period, the birthday year)."""
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)
    actor: Mapped[str] = mapped_column(String(100))


class CouponStatus:
    ISSUED = "issued"
    USED = "used"
    EXPIRED = "expired"
    CANCELLED = "cancelled"


class Coupon(Base):
    """A coupon with an unguessable code (`jifen.rewards.codes`)."""

    __tablename__ = "coupons"
    __table_args__ = (
        UniqueConstraint("program_id", "code"),
        CheckConstraint(
            "status IN ('issued', 'used', 'expired', 'cancelled')", name="status_known"
        ),
        CheckConstraint(
            "(status = 'used') = (used_order IS NOT NULL AND used_at IS NOT NULL "
            "AND discount IS NOT NULL)",
            name="used_has_order",
        ),
        CheckConstraint("discount IS NULL OR discount >= 0", name="discount_not_negative"),
        Index(None, "program_id", "member_id", "status"),
        Index(None, "program_id", "status", "expires_at"),
        Index(None, "program_id", "used_order"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    program_id: Mapped[int] = mapped_column(Id, ForeignKey("programs.id"))
    member_id: Mapped[int] = mapped_column(Id, ForeignKey("members.id"))
    reward_id: Mapped[int] = mapped_column(Id, ForeignKey("rewards.id"))
    redemption_id: Mapped[int] = mapped_column(Id, ForeignKey("redemptions.id"), index=True)
    code: Mapped[str] = mapped_column(String(32))
    """Stored without separators (`jifen.rewards.codes.normalise`)."""
    kind: Mapped[str] = mapped_column(String(16))
    amount: Mapped[Decimal | None] = mapped_column(Money)
    percent: Mapped[Decimal | None] = mapped_column(Numeric(5, 2))
    cap: Mapped[Decimal | None] = mapped_column(Money)
    min_spend: Mapped[Decimal] = mapped_column(Money)
    categories: Mapped[list[str] | None] = mapped_column(Json)
    status: Mapped[str] = mapped_column(String(10))
    issued_at: Mapped[datetime] = mapped_column(UtcDateTime)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    used_order: Mapped[str | None] = mapped_column(String(128))
    """The order (external id) the coupon was used on: a retry with it is idempotent."""
    discount: Mapped[Decimal | None] = mapped_column(Money)
    """The discount it gave on that order."""
    closed_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    """When it expired or was cancelled."""
    cancel_reason: Mapped[str | None] = mapped_column(String(500))
    actor: Mapped[str | None] = mapped_column(String(100))
    """Who used or cancelled it (an API key, a CLI user, `job:coupon-expiry`)."""
