"""Deals (聚划算): festivals, campaigns, deal items, per-shopper holdings, groups, coupons."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from juxing.kit.time import utcnow
from juxing.models.base import Base, BigId, IdMixin, TimestampMixin


class CampaignStatus(enum.StrEnum):
    DRAFT = "draft"
    SUBMITTED = "submitted"
    APPROVED = "approved"
    REJECTED = "rejected"
    SCHEDULED = "scheduled"
    LIVE = "live"
    ENDED = "ended"


class Festival(IdMixin, TimestampMixin, Base):
    """A named sales event with a time window and a theme, e.g. the Star Festival (聚星节)."""

    __tablename__ = "festivals"
    __table_args__ = (CheckConstraint("ends_at > starts_at", name="window_ordered"),)

    name: Mapped[str] = mapped_column(String(120))
    name_zh: Mapped[str] = mapped_column(String(120), default="")
    slug: Mapped[str] = mapped_column(String(80), unique=True)
    theme: Mapped[str] = mapped_column(String(200), default="")
    description: Mapped[str] = mapped_column(Text, default="")
    starts_at: Mapped[datetime] = mapped_column(index=True)
    ends_at: Mapped[datetime] = mapped_column(index=True)
    created_by_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("users.id", ondelete="SET NULL")
    )


class Campaign(IdMixin, TimestampMixin, Base):
    """A merchant's sign-up of deal items for a festival, reviewed by operators."""

    __tablename__ = "campaigns"

    festival_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("festivals.id", ondelete="CASCADE"), index=True
    )
    merchant_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("merchants.id", ondelete="CASCADE"), index=True
    )
    title: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(16), default=CampaignStatus.DRAFT.value, index=True)
    reject_reason: Mapped[str | None] = mapped_column(Text)
    starts_at: Mapped[datetime | None]
    ends_at: Mapped[datetime | None]

    items: Mapped[list[DealItem]] = relationship(
        back_populates="campaign", lazy="raise", order_by="DealItem.id"
    )


class CampaignTransition(IdMixin, Base):
    """One recorded step of a campaign's lifecycle."""

    __tablename__ = "campaign_transitions"

    campaign_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("campaigns.id", ondelete="CASCADE"), index=True
    )
    from_status: Mapped[str | None] = mapped_column(String(16))
    to_status: Mapped[str] = mapped_column(String(16))
    actor_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("users.id", ondelete="SET NULL"))
    reason: Mapped[str | None] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(default=utcnow)


class DealItem(IdMixin, TimestampMixin, Base):
    """A SKU on deal: deep price, limited stock, per-shopper limit, a time window.

    Invariant: ``available + reserved + sold == deal_stock``, none negative.
    """

    __tablename__ = "deal_items"
    __table_args__ = (
        CheckConstraint("available >= 0", name="available_not_negative"),
        CheckConstraint("reserved >= 0", name="reserved_not_negative"),
        CheckConstraint("sold >= 0", name="sold_not_negative"),
        CheckConstraint("available + reserved + sold = deal_stock", name="stock_balances"),
        CheckConstraint("per_user_limit >= 1", name="per_user_limit_positive"),
        CheckConstraint("deal_price_minor > 0", name="deal_price_positive"),
    )

    campaign_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("campaigns.id", ondelete="CASCADE"), index=True
    )
    sku_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("skus.id", ondelete="RESTRICT"), index=True
    )
    product_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("products.id", ondelete="RESTRICT"), index=True
    )
    merchant_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("merchants.id", ondelete="RESTRICT"), index=True
    )
    deal_price_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3), default="CNY")
    deal_stock: Mapped[int] = mapped_column(Integer)
    available: Mapped[int] = mapped_column(Integer)
    reserved: Mapped[int] = mapped_column(Integer, default=0)
    sold: Mapped[int] = mapped_column(Integer, default=0)
    per_user_limit: Mapped[int] = mapped_column(Integer, default=1)
    starts_at: Mapped[datetime] = mapped_column(index=True)
    ends_at: Mapped[datetime] = mapped_column(index=True)
    # 拼团: orders proceed only once ``group_size`` buyers joined within ``group_window_s``.
    group_size: Mapped[int | None] = mapped_column(Integer)
    group_window_s: Mapped[int | None] = mapped_column(Integer)
    # Per-deal-item creator commission rate in basis points (read by the commission domain).
    commission_rate_bp: Mapped[int | None] = mapped_column(Integer)
    # Refund policy: does a refunded unit go back on sale?
    restock_on_refund: Mapped[bool] = mapped_column(Boolean, default=True)
    # "sql" or "redis": which stock backend holds the live counters.
    stock_backend: Mapped[str] = mapped_column(String(8), default="sql")

    campaign: Mapped[Campaign] = relationship(back_populates="items", lazy="raise")


class DealHolding(Base):
    """Units of a deal item a shopper holds (reserved or bought), bounded by its per-user
    limit with a guarded upsert."""

    __tablename__ = "deal_holdings"
    __table_args__ = (CheckConstraint("quantity >= 0", name="quantity_not_negative"),)

    deal_item_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("deal_items.id", ondelete="CASCADE"), primary_key=True
    )
    shopper_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    quantity: Mapped[int] = mapped_column(Integer, default=0)


class GroupBuy(IdMixin, Base):
    """拼团: a group of ``size`` buyers for a deal item, filled before ``expires_at`` or
    expired (every member refunded, stock returned)."""

    __tablename__ = "group_buys"
    __table_args__ = (
        CheckConstraint("member_count >= 0 AND member_count <= size", name="members_bounded"),
        CheckConstraint("paid_count >= 0 AND paid_count <= size", name="paid_bounded"),
    )

    deal_item_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("deal_items.id", ondelete="CASCADE"), index=True
    )
    leader_id: Mapped[int] = mapped_column(BigId, ForeignKey("users.id", ondelete="CASCADE"))
    code: Mapped[str] = mapped_column(String(32), unique=True)
    size: Mapped[int] = mapped_column(Integer)
    member_count: Mapped[int] = mapped_column(Integer, default=0)
    paid_count: Mapped[int] = mapped_column(Integer, default=0)
    status: Mapped[str] = mapped_column(String(16), default="open", index=True)
    expires_at: Mapped[datetime] = mapped_column(index=True)
    filled_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Coupon(IdMixin, TimestampMixin, Base):
    """A festival coupon (红包 / 优惠券): amount or percent off, minimum spend, validity
    window, per-shopper cap and a total budget that is never overspent."""

    __tablename__ = "coupons"
    __table_args__ = (
        CheckConstraint("budget_used_minor >= 0", name="budget_used_not_negative"),
        CheckConstraint("budget_used_minor <= budget_minor", name="budget_not_overspent"),
        CheckConstraint("valid_until > valid_from", name="window_ordered"),
    )

    code: Mapped[str] = mapped_column(String(40), unique=True)
    title: Mapped[str] = mapped_column(String(120))
    festival_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("festivals.id", ondelete="SET NULL"), index=True
    )
    # None = issued by the platform (an operator); otherwise only valid for this merchant.
    merchant_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("merchants.id", ondelete="CASCADE"), index=True
    )
    kind: Mapped[str] = mapped_column(String(8))  # amount | percent
    amount_off_minor: Mapped[int | None] = mapped_column(BigInteger)
    percent_off: Mapped[int | None] = mapped_column(Integer)
    max_discount_minor: Mapped[int | None] = mapped_column(BigInteger)
    min_spend_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    currency: Mapped[str] = mapped_column(String(3), default="CNY")
    valid_from: Mapped[datetime]
    valid_until: Mapped[datetime]
    per_shopper_cap: Mapped[int] = mapped_column(Integer, default=1)
    budget_minor: Mapped[int] = mapped_column(BigInteger)
    budget_used_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    claimed_count: Mapped[int] = mapped_column(Integer, default=0)
    status: Mapped[str] = mapped_column(String(16), default="active")
    created_by_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("users.id", ondelete="SET NULL")
    )


class CouponClaim(IdMixin, Base):
    """A shopper's claimed coupon; ``used`` once applied to an order."""

    __tablename__ = "coupon_claims"
    __table_args__ = (UniqueConstraint("coupon_id", "shopper_id", "seq"),)

    coupon_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("coupons.id", ondelete="CASCADE"), index=True
    )
    shopper_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    # 1..per_shopper_cap: the unique key makes the cap hold under concurrency.
    seq: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16), default="claimed")  # claimed | used
    via: Mapped[str] = mapped_column(String(16), default="page")  # page | scan
    order_id: Mapped[int | None] = mapped_column(BigId, index=True)
    discount_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    claimed_at: Mapped[datetime] = mapped_column(default=utcnow)
    used_at: Mapped[datetime | None]
