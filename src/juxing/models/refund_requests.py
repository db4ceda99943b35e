"""A shopper's refund request (退款申请) for a paid order, and every step it went through."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from juxing.kit.time import utcnow
from juxing.models.base import Base, BigId, IdMixin


class RefundRequestStatus(enum.StrEnum):
    OPEN = "open"  # waiting for the shop (or the auto-approval deadline)
    APPROVED = "approved"  # the refund was made through the deals engine's refund path
    REJECTED = "rejected"  # refused with a reason
    CANCELLED = "cancelled"  # withdrawn by the shopper


class RefundReason(enum.StrEnum):
    NOT_RECEIVED = "not_received"
    DAMAGED = "damaged"
    NOT_AS_DESCRIBED = "not_as_described"
    WRONG_ITEM = "wrong_item"
    CHANGED_MIND = "changed_mind"
    OTHER = "other"


class RefundRequest(IdMixin, Base):
    """A shopper asks the shop to refund some units of an order; the shop (or an operator)
    approves or rejects it, or it is approved automatically when nobody answers in time."""

    __tablename__ = "refund_requests"
    __table_args__ = (
        CheckConstraint("amount_minor >= 0", name="amount_not_negative"),
        Index("ix_refund_requests_status_due_at", "status", "due_at"),
        Index("ix_refund_requests_merchant_id_status", "merchant_id", "status"),
    )

    order_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("orders.id", ondelete="RESTRICT"), index=True
    )
    # Equal to order_id while the request is open, NULL after: the unique constraint allows
    # one open request per order on SQLite and PostgreSQL alike (NULLs are distinct).
    open_order_id: Mapped[int | None] = mapped_column(BigId, unique=True)
    shopper_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("users.id", ondelete="RESTRICT"), index=True
    )
    merchant_id: Mapped[int] = mapped_column(BigId, ForeignKey("merchants.id", ondelete="RESTRICT"))
    status: Mapped[str] = mapped_column(String(16), default=RefundRequestStatus.OPEN.value)
    reason: Mapped[str] = mapped_column(String(24))
    note: Mapped[str] = mapped_column(String(500), default="")
    # Computed from the order lines when asked; the amount actually refunded once approved.
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    reject_reason: Mapped[str | None] = mapped_column(String(200))
    refund_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("refunds.id", ondelete="SET NULL")
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Approved automatically at this time if the shop has not answered.
    due_at: Mapped[datetime]
    decided_at: Mapped[datetime | None]
    decided_by_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("users.id", ondelete="SET NULL")
    )

    lines: Mapped[list[RefundRequestLine]] = relationship(
        back_populates="request", lazy="raise", order_by="RefundRequestLine.id"
    )
    transitions: Mapped[list[RefundRequestTransition]] = relationship(
        lazy="raise", order_by="RefundRequestTransition.id"
    )


class RefundRequestLine(IdMixin, Base):
    """Units of one order line the shopper wants refunded."""

    __tablename__ = "refund_request_lines"
    __table_args__ = (CheckConstraint("quantity >= 1", name="quantity_positive"),)

    request_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("refund_requests.id", ondelete="CASCADE"), index=True
    )
    order_line_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("order_lines.id", ondelete="RESTRICT")
    )
    quantity: Mapped[int] = mapped_column(Integer)
    amount_minor: Mapped[int] = mapped_column(BigInteger)

    request: Mapped[RefundRequest] = relationship(back_populates="lines", lazy="raise")


class RefundRequestTransition(IdMixin, Base):
    """One step of a refund request: from, to, who (NULL actor = the auto-approval job), when."""

    __tablename__ = "refund_request_transitions"

    request_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("refund_requests.id", ondelete="CASCADE"), index=True
    )
    from_status: Mapped[str | None] = mapped_column(String(16))
    to_status: Mapped[str] = mapped_column(String(16))
    actor_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("users.id", ondelete="SET NULL"))
    # shopper | merchant | operator | system
    actor_role: Mapped[str] = mapped_column(String(16))
    note: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
