"""Creator commission (淘宝联盟-style CPS): tracking links, clicks, rules, attributed lines,
fraud flags, operator reviews and payouts. Money moves only through the ledger.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from juxing.kit.time import utcnow
from juxing.models.base import Base, BigId, IdMixin, TimestampMixin


class LinkTarget(enum.StrEnum):
    PRODUCT = "product"
    DEAL_ITEM = "deal_item"
    POST = "post"
    LIVE_ROOM = "live_room"


class RuleScope(enum.StrEnum):
    """Where a rate comes from, in precedence order (deal item first)."""

    DEAL_ITEM = "deal_item"
    PRODUCT = "product"
    CAMPAIGN = "campaign"
    MERCHANT = "merchant"
    NONE = "none"


class CommissionStatus(enum.StrEnum):
    PLACED = "placed"  # attributed, order not paid yet
    PENDING = "pending"  # paid; inside the return window
    HELD = "held"  # flagged by a fraud rule, waiting for an operator
    AVAILABLE = "available"  # return window closed; may be paid out
    VOIDED = "voided"  # an operator voided it (entries reversed)
    CANCELLED = "cancelled"  # the order was cancelled before payment
    NO_COMMISSION = "no_commission"  # self-purchase or no rate: explained, earns nothing


class PayoutStatus(enum.StrEnum):
    IN_TRANSIT = "in_transit"
    PAID = "paid"
    FAILED = "failed"


class TrackingLink(IdMixin, Base):
    """A creator's link to a product, deal item, post or live room: short code + signature."""

    __tablename__ = "tracking_links"
    __table_args__ = (UniqueConstraint("code"), UniqueConstraint("creator_id", "target_key"))

    code: Mapped[str] = mapped_column(String(16))
    # HMAC over code, creator and target: a forged or altered link fails verification.
    signature: Mapped[str] = mapped_column(String(32))
    creator_id: Mapped[int] = mapped_column(BigId, ForeignKey("users.id", ondelete="CASCADE"))
    target_type: Mapped[str] = mapped_column(String(16))
    target_id: Mapped[int] = mapped_column(BigInteger)
    # "product:5" or "product:5@post:9" (a product card inside a post): one link per target.
    target_key: Mapped[str] = mapped_column(String(96))
    product_id: Mapped[int | None] = mapped_column(BigInteger, index=True)
    deal_item_id: Mapped[int | None] = mapped_column(BigInteger)
    post_id: Mapped[int | None] = mapped_column(BigInteger, index=True)
    live_room_id: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    disabled_at: Mapped[datetime | None]


class Click(IdMixin, Base):
    """One recorded click on a tracking link (PII only as keyed hashes)."""

    __tablename__ = "commission_clicks"
    __table_args__ = (
        Index("ix_commission_clicks_shopper_at", "shopper_id", "clicked_at"),
        Index("ix_commission_clicks_visitor_at", "visitor_id", "clicked_at"),
        Index("ix_commission_clicks_ip_at", "ip_hash", "clicked_at"),
        Index("ix_commission_clicks_device_at", "device_hash", "clicked_at"),
        Index("ix_commission_clicks_creator_at", "creator_id", "clicked_at"),
    )

    link_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("tracking_links.id", ondelete="CASCADE"), index=True
    )
    creator_id: Mapped[int] = mapped_column(BigInteger)
    product_id: Mapped[int | None] = mapped_column(BigInteger)
    post_id: Mapped[int | None] = mapped_column(BigInteger)
    live_room_id: Mapped[int | None] = mapped_column(BigInteger)
    shopper_id: Mapped[int | None] = mapped_column(BigInteger)
    visitor_id: Mapped[str | None] = mapped_column(String(64))
    ip_hash: Mapped[str] = mapped_column(String(64))
    device_hash: Mapped[str] = mapped_column(String(64))
    referrer: Mapped[str | None] = mapped_column(String(512))
    clicked_at: Mapped[datetime] = mapped_column(default=utcnow)


class CommissionRule(IdMixin, TimestampMixin, Base):
    """A merchant's rate (basis points of the amount paid) and/or attribution window.

    Scopes: ``merchant`` (default for the shop), ``product``, ``campaign`` (window
    override and rate for its deal items). A deal item's own ``commission_rate_bp`` comes
    first; see ``commission.rules``.
    """

    __tablename__ = "commission_rules"
    __table_args__ = (
        UniqueConstraint("merchant_id", "scope", "target_id"),
        CheckConstraint("rate_bp IS NULL OR (rate_bp >= 0 AND rate_bp <= 9000)", name="rate"),
        CheckConstraint(
            "window_days IS NULL OR (window_days >= 1 AND window_days <= 90)", name="window"
        ),
    )

    merchant_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("merchants.id", ondelete="CASCADE"), index=True
    )
    scope: Mapped[str] = mapped_column(String(16))
    # The product or campaign id; 0 for the merchant default.
    target_id: Mapped[int] = mapped_column(BigInteger, default=0)
    rate_bp: Mapped[int | None] = mapped_column(Integer)
    window_days: Mapped[int | None] = mapped_column(Integer)
    updated_by_id: Mapped[int | None] = mapped_column(BigInteger)


class CreatorLevelBonus(Base):
    """The platform-paid bonus (basis points of the amount paid) for a creator level."""

    __tablename__ = "creator_level_bonuses"
    __table_args__ = (CheckConstraint("bonus_bp >= 0 AND bonus_bp <= 2000", name="bonus"),)

    level: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    bonus_bp: Mapped[int] = mapped_column(Integer)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Commission(IdMixin, Base):
    """The commission decision for one order line: the click, the rule, the money state.

    ``base_minor`` is charged to the merchant, ``bonus_minor`` paid by the platform,
    ``fee_minor`` (the platform's service fee) withheld: the creator earns
    ``base - fee + bonus``. Refunds claw back each part in proportion to ``refunded_minor``.
    """

    __tablename__ = "commissions"
    __table_args__ = (
        UniqueConstraint("order_line_id"),
        Index("ix_commissions_status_available_at", "status", "available_at"),
        Index("ix_commissions_creator_placed", "creator_id", "placed_at"),
        Index("ix_commissions_merchant_placed", "merchant_id", "placed_at"),
    )

    order_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("orders.id", ondelete="RESTRICT"), index=True
    )
    order_line_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("order_lines.id", ondelete="RESTRICT")
    )
    merchant_id: Mapped[int] = mapped_column(BigInteger)
    shopper_id: Mapped[int] = mapped_column(BigInteger)
    creator_id: Mapped[int] = mapped_column(BigInteger)
    product_id: Mapped[int] = mapped_column(BigInteger)
    deal_item_id: Mapped[int | None] = mapped_column(BigInteger)
    click_id: Mapped[int | None] = mapped_column(BigInteger)
    link_id: Mapped[int | None] = mapped_column(BigInteger)
    clicked_at: Mapped[datetime | None]
    decision: Mapped[str] = mapped_column(String(16))  # attributed | self_purchase
    status: Mapped[str] = mapped_column(String(16))
    window_days: Mapped[int] = mapped_column(Integer)
    rule_scope: Mapped[str] = mapped_column(String(16))
    rule_id: Mapped[int | None] = mapped_column(BigInteger)
    base_rate_bp: Mapped[int] = mapped_column(Integer, default=0)
    bonus_bp: Mapped[int] = mapped_column(Integer, default=0)
    fee_bp: Mapped[int] = mapped_column(Integer, default=0)
    currency: Mapped[str] = mapped_column(String(3))
    amount_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    base_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    bonus_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    fee_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    refunded_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    explanation: Mapped[str] = mapped_column(String(500))
    placed_at: Mapped[datetime]
    paid_at: Mapped[datetime | None]
    received_at: Mapped[datetime | None]
    available_at: Mapped[datetime | None]
    matured_at: Mapped[datetime | None]
    voided_at: Mapped[datetime | None]

    @property
    def creator_minor(self) -> int:
        """What the creator earns before refunds."""
        return self.base_minor - self.fee_minor + self.bonus_minor


class FraudFlag(IdMixin, Base):
    """A fraud rule that fired on a commission (which is then held for review)."""

    __tablename__ = "commission_fraud_flags"

    commission_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("commissions.id", ondelete="CASCADE"), index=True
    )
    rule: Mapped[str] = mapped_column(String(32))
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class CommissionReview(IdMixin, Base):
    """Audit entry: a hold placed by a rule, or an operator's release or void with a reason."""

    __tablename__ = "commission_reviews"

    commission_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("commissions.id", ondelete="CASCADE"), index=True
    )
    action: Mapped[str] = mapped_column(String(16))  # hold | release | void
    actor_id: Mapped[int | None] = mapped_column(BigInteger)
    reason: Mapped[str] = mapped_column(String(500))
    ledger_transaction_id: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Payout(IdMixin, Base):
    """Money leaving a creator's available balance: in transit, then paid (or failed)."""

    __tablename__ = "commission_payouts"
    __table_args__ = (CheckConstraint("amount_minor > 0", name="amount_positive"),)

    creator_id: Mapped[int] = mapped_column(BigId, ForeignKey("users.id"), index=True)
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    status: Mapped[str] = mapped_column(String(16), default=PayoutStatus.IN_TRANSIT.value)
    # The statement covers available-balance movements since the previous payout.
    period_start: Mapped[datetime | None]
    requested_at: Mapped[datetime] = mapped_column(default=utcnow)
    settled_at: Mapped[datetime | None]
    settled_by_id: Mapped[int | None] = mapped_column(BigInteger)
    failure_reason: Mapped[str | None] = mapped_column(String(200))
    # The ledger entry id on the creator's available account that moved the money.
    entry_id: Mapped[int | None] = mapped_column(BigInteger)
