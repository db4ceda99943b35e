"""The personalized feed (千人千面): traffic policies, model versions, impressions."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, Float, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from juxing.models.base import Base, BigId, IdMixin, TimestampMixin, UTCDateTime


class TrafficPolicy(IdMixin, TimestampMixin, Base):
    """An operator-set traffic policy (流量策略); at most one is active at a time.

    ``rules`` holds the validated settings (``feed.schemas.PolicyRules``): long-tail and
    new-creator exposure shares, per-merchant-tier quotas, diversity caps, exploration slots.
    """

    __tablename__ = "traffic_policies"

    name: Mapped[str] = mapped_column(String(80), unique=True)
    description: Mapped[str] = mapped_column(String(500), default="")
    rules: Mapped[dict[str, Any]] = mapped_column(JSON)
    is_active: Mapped[bool] = mapped_column(Boolean, default=False, index=True)
    version: Mapped[int] = mapped_column(Integer, default=1)
    updated_by_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("users.id", ondelete="SET NULL")
    )


class FeedModelVersion(IdMixin, Base):
    """A trained model artifact set; serving uses the newest ``is_active`` one."""

    __tablename__ = "feed_model_versions"

    version: Mapped[str] = mapped_column(String(40), unique=True)
    path: Mapped[str] = mapped_column(String(500))
    models: Mapped[list[str]] = mapped_column(JSON)
    n_users: Mapped[int] = mapped_column(Integer)
    n_items: Mapped[int] = mapped_column(Integer)
    n_events: Mapped[int] = mapped_column(BigInteger)
    train_seconds: Mapped[float] = mapped_column(Float)
    is_active: Mapped[bool] = mapped_column(Boolean, default=False, index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class FeedImpression(Base):
    """One item shown in one served feed page (append-only, written in batches)."""

    __tablename__ = "feed_impressions"
    __table_args__ = (Index("ix_feed_impressions_item", "item_type", "item_id", "shown_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    feed_id: Mapped[str] = mapped_column(String(32), index=True)
    user_id: Mapped[int | None] = mapped_column(BigInteger)
    item_type: Mapped[str] = mapped_column(String(10))
    item_id: Mapped[int] = mapped_column(BigInteger)
    merchant_id: Mapped[int | None] = mapped_column(BigInteger)
    position: Mapped[int] = mapped_column(Integer)
    reason: Mapped[str] = mapped_column(String(24))
    policy_id: Mapped[int | None] = mapped_column(BigInteger)
    shown_at: Mapped[datetime] = mapped_column(UTCDateTime())
