"""Orders, their lines, payments, provider callbacks and refunds."""

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
from juxing.models.base import Base, BigId, IdMixin


class OrderStatus(enum.StrEnum):
    PENDING_PAYMENT = "pending_payment"
    PAID = "paid"
    SHIPPED = "shipped"
    RECEIVED = "received"
    CANCELLED = "cancelled"
    REFUNDED = "refunded"


class Order(IdMixin, Base):
    """A shopper's order at one merchant; the price is locked when the stock is reserved."""

    __tablename__ = "orders"
    __table_args__ = (
        CheckConstraint("total_minor >= 0", name="total_not_negative"),
        CheckConstraint("refunded_minor >= 0 AND refunded_minor <= total_minor", name="refund_le"),
    )

    shopper_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("users.id", ondelete="RESTRICT"), index=True
    )
    merchant_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("merchants.id", ondelete="RESTRICT"), index=True
    )
    status: Mapped[str] = mapped_column(
        String(20), default=OrderStatus.PENDING_PAYMENT.value, index=True
    )
    currency: Mapped[str] = mapped_column(String(3))
    subtotal_minor: Mapped[int] = mapped_column(BigInteger)
    discount_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    total_minor: Mapped[int] = mapped_column(BigInteger)
    refunded_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    coupon_claim_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("coupon_claims.id", ondelete="SET NULL")
    )
    group_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("group_buys.id", ondelete="SET NULL"), index=True
    )
    # The anonymous tracking cookie (juxing_vid) sent with the order; commission attribution.
    visitor_id: Mapped[str | None] = mapped_column(String(64), index=True)
    # Redis stock backend: the reservation token, so reconciliation can match Redis to SQL.
    reservation_token: Mapped[str | None] = mapped_column(String(40), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(index=True)
    paid_at: Mapped[datetime | None]
    shipped_at: Mapped[datetime | None]
    received_at: Mapped[datetime | None] = mapped_column(index=True)
    cancelled_at: Mapped[datetime | None]
    cancel_reason: Mapped[str | None] = mapped_column(String(40))

    lines: Mapped[list[OrderLine]] = relationship(
        back_populates="order", lazy="raise", order_by="OrderLine.id"
    )


class OrderLine(IdMixin, Base):
    __tablename__ = "order_lines"
    __table_args__ = (
        CheckConstraint("quantity >= 1", name="quantity_positive"),
        CheckConstraint("refunded_quantity >= 0 AND refunded_quantity <= quantity", name="rq_le"),
        CheckConstraint("refunded_minor >= 0 AND refunded_minor <= amount_minor", name="rm_le"),
    )

    order_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("orders.id", ondelete="CASCADE"), index=True
    )
    sku_id: Mapped[int] = mapped_column(BigId, ForeignKey("skus.id", ondelete="RESTRICT"))
    deal_item_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("deal_items.id", ondelete="RESTRICT"), index=True
    )
    product_id: Mapped[int] = mapped_column(BigId, ForeignKey("products.id", ondelete="RESTRICT"))
    title: Mapped[str] = mapped_column(String(200))
    quantity: Mapped[int] = mapped_column(Integer)
    unit_price_minor: Mapped[int] = mapped_column(BigInteger)
    # What was actually paid for the line after discounts.
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    refunded_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    refunded_quantity: Mapped[int] = mapped_column(Integer, default=0)
    # Units returned to the deal's stock by refunds (policy restock_on_refund).
    restocked_quantity: Mapped[int] = mapped_column(Integer, default=0)

    order: Mapped[Order] = relationship(back_populates="lines", lazy="raise")


class Payment(IdMixin, Base):
    """One payment attempt through a provider; confirmed asynchronously by a signed callback."""

    __tablename__ = "payments"
    __table_args__ = (UniqueConstraint("provider", "provider_ref"),)

    order_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("orders.id", ondelete="RESTRICT"), index=True
    )
    provider: Mapped[str] = mapped_column(String(32))
    provider_ref: Mapped[str] = mapped_column(String(64))
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    # pending | succeeded | failed | void (succeeded after the order was closed: refunded)
    status: Mapped[str] = mapped_column(String(16), default="pending", index=True)
    failure_reason: Mapped[str | None] = mapped_column(String(120))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    confirmed_at: Mapped[datetime | None]


class ProviderCallback(IdMixin, Base):
    """Every provider callback received, deduplicated by the provider's event id."""

    __tablename__ = "provider_callbacks"
    __table_args__ = (UniqueConstraint("provider", "event_id"),)

    provider: Mapped[str] = mapped_column(String(32))
    event_id: Mapped[str] = mapped_column(String(64))
    payment_id: Mapped[int | None] = mapped_column(BigId, index=True)
    payload: Mapped[str] = mapped_column(Text)
    outcome: Mapped[str] = mapped_column(String(32))
    received_at: Mapped[datetime] = mapped_column(default=utcnow)


class Refund(IdMixin, Base):
    """Money returned to the shopper for some units of an order (full or partial)."""

    __tablename__ = "refunds"
    __table_args__ = (CheckConstraint("amount_minor > 0", name="amount_positive"),)

    order_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("orders.id", ondelete="RESTRICT"), index=True
    )
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    reason: Mapped[str] = mapped_column(String(200), default="")
    restocked: Mapped[bool] = mapped_column(Boolean, default=False)
    created_by_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("users.id", ondelete="SET NULL")
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    lines: Mapped[list[RefundLine]] = relationship(back_populates="refund", lazy="raise")


class RefundLine(IdMixin, Base):
    __tablename__ = "refund_lines"

    refund_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("refunds.id", ondelete="CASCADE"), index=True
    )
    order_line_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("order_lines.id", ondelete="RESTRICT"), index=True
    )
    quantity: Mapped[int] = mapped_column(Integer)
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    restocked_quantity: Mapped[int] = mapped_column(Integer, default=0)

    refund: Mapped[Refund] = relationship(back_populates="lines", lazy="raise")
