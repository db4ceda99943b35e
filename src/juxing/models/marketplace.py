"""The merchant–creator marketplace: promotion briefs, creators' applications, notifications.

A merchant posts a :class:`Brief` (products or deal items to promote, the deliverable, a
commission rate and/or a fixed fee, a budget, a deadline, the audience wanted). Creators
apply; an accepted :class:`BriefApplication` is an engagement whose fixed fee sits in escrow
in the ledger until the merchant approves the delivery (released to the creator), an operator
decides a dispute, or the deadline passes (returned to the merchant).
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
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from juxing.kit.time import utcnow
from juxing.models.base import Base, BigId, IdMixin, TimestampMixin


class BriefStatus(enum.StrEnum):
    OPEN = "open"  # accepting applications
    CLOSED = "closed"  # the merchant stopped taking applications, or the deadline passed
    CANCELLED = "cancelled"  # withdrawn before any engagement


class Deliverable(enum.StrEnum):
    POST = "post"  # a published post (of ``post_type``, when given)
    LIVE = "live"  # a live session


class ApplicationStatus(enum.StrEnum):
    APPLIED = "applied"
    DECLINED = "declined"
    WITHDRAWN = "withdrawn"
    ACCEPTED = "accepted"  # engaged; the fixed fee is in escrow
    DELIVERED = "delivered"  # the creator linked a post or live session
    APPROVED = "approved"  # fee released to the creator
    DISPUTED = "disputed"  # waiting for an operator
    RESOLVED = "resolved"  # operator decided; ``resolution`` says for whom
    EXPIRED = "expired"  # deadline passed; an escrowed fee went back to the merchant


# Applications that still hold a place (and possibly escrow) on their brief.
ENGAGED = (ApplicationStatus.ACCEPTED, ApplicationStatus.DELIVERED, ApplicationStatus.DISPUTED)


class Brief(IdMixin, TimestampMixin, Base):
    """A merchant's promotion brief."""

    __tablename__ = "briefs"
    __table_args__ = (
        CheckConstraint("fixed_fee_minor >= 0", name="fee_not_negative"),
        CheckConstraint("budget_minor >= 0", name="budget_not_negative"),
        CheckConstraint("committed_minor >= 0", name="committed_not_negative"),
        CheckConstraint("committed_minor <= budget_minor", name="committed_within_budget"),
        CheckConstraint(
            "commission_rate_bp >= 0 AND commission_rate_bp <= 9000", name="rate_in_range"
        ),
        Index("ix_briefs_status_deadline", "status", "deadline"),
    )

    merchant_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("merchants.id", ondelete="RESTRICT"), index=True
    )
    created_by_id: Mapped[int] = mapped_column(BigId, ForeignKey("users.id", ondelete="RESTRICT"))
    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    deliverable: Mapped[str] = mapped_column(String(8))
    post_type: Mapped[str | None] = mapped_column(String(16))
    # Commission on attributed sales, in basis points (1000 = 10%), and/or a fixed fee.
    commission_rate_bp: Mapped[int] = mapped_column(Integer, default=0)
    fixed_fee_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    currency: Mapped[str] = mapped_column(String(3), default="CNY")
    # Fixed fees promised to accepted creators may not exceed the budget.
    budget_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    committed_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    deadline: Mapped[datetime]
    wanted_segments: Mapped[list[str]] = mapped_column(JSON, default=list)
    status: Mapped[str] = mapped_column(String(12), default=BriefStatus.OPEN.value)

    items: Mapped[list[BriefItem]] = relationship(
        back_populates="brief", lazy="raise", cascade="all, delete-orphan", order_by="BriefItem.id"
    )


class BriefItem(IdMixin, Base):
    """A product (optionally a deal item of it) the brief promotes."""

    __tablename__ = "brief_items"
    __table_args__ = (UniqueConstraint("brief_id", "product_id", "deal_item_id"),)

    brief_id: Mapped[int] = mapped_column(BigId, ForeignKey("briefs.id", ondelete="CASCADE"))
    product_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("products.id", ondelete="RESTRICT"), index=True
    )
    deal_item_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("deal_items.id", ondelete="SET NULL")
    )

    brief: Mapped[Brief] = relationship(back_populates="items", lazy="raise")


class BriefApplication(IdMixin, TimestampMixin, Base):
    """A creator's application to a brief and, once accepted, the engagement."""

    __tablename__ = "brief_applications"
    __table_args__ = (
        UniqueConstraint("brief_id", "creator_id"),
        Index("ix_brief_applications_creator_status", "creator_id", "status"),
        Index("ix_brief_applications_status_brief", "status", "brief_id"),
    )

    brief_id: Mapped[int] = mapped_column(BigId, ForeignKey("briefs.id", ondelete="CASCADE"))
    creator_id: Mapped[int] = mapped_column(BigId, ForeignKey("users.id", ondelete="CASCADE"))
    pitch: Mapped[str] = mapped_column(String(2000), default="")
    status: Mapped[str] = mapped_column(String(12), default=ApplicationStatus.APPLIED.value)
    # The fixed fee held in escrow for this engagement (0 for commission-only briefs).
    fee_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    escrow_ref: Mapped[str | None] = mapped_column(String(64))
    post_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("posts.id", ondelete="SET NULL"))
    live_room_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("live_rooms.id", ondelete="SET NULL")
    )
    decided_at: Mapped[datetime | None]
    delivered_at: Mapped[datetime | None]
    closed_at: Mapped[datetime | None]
    dispute_reason: Mapped[str | None] = mapped_column(String(1000))
    # "creator" (fee released) or "merchant" (fee returned), set by an operator.
    resolution: Mapped[str | None] = mapped_column(String(10))
    resolution_note: Mapped[str | None] = mapped_column(String(1000))
    resolved_by_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("users.id", ondelete="SET NULL")
    )


class MarketplaceNotification(IdMixin, Base):
    """A note to one side of a brief about a step the other side took.

    The content domain's inbox only knows content kinds, so the marketplace keeps its own.
    """

    __tablename__ = "marketplace_notifications"
    __table_args__ = (Index("ix_marketplace_notifications_user_id_id", "user_id", "id"),)

    user_id: Mapped[int] = mapped_column(BigId, ForeignKey("users.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(24))
    brief_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("briefs.id", ondelete="CASCADE"))
    application_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("brief_applications.id", ondelete="CASCADE")
    )
    message: Mapped[str] = mapped_column(String(500))
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    read_at: Mapped[datetime | None]
