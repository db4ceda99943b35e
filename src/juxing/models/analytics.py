"""Analytics: audience segments (人以群分) and the rollup table behind the dashboards.

Segments are recomputed as a whole by a batch job; each run replaces the previous one.
:class:`MetricRollup` holds pre-aggregated figures per time bucket, recomputed for the
recent window by a periodic job (``analytics.tasks``), so a dashboard reads a few hundred
rows instead of scanning millions of orders and events.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from juxing.kit.time import utcnow
from juxing.models.base import Base, BigId, IdMixin


class AudienceSegment(IdMixin, Base):
    """A named group of shoppers with similar behaviour, from one segmentation run."""

    __tablename__ = "audience_segments"

    key: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(120))
    description: Mapped[str] = mapped_column(Text)
    size: Mapped[int] = mapped_column(Integer)
    traits: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    run_id: Mapped[str] = mapped_column(String(32))
    computed_at: Mapped[datetime] = mapped_column(default=utcnow)


class ShopperSegment(Base):
    """Which segment a shopper belongs to (one per shopper)."""

    __tablename__ = "shopper_segments"

    user_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    segment_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("audience_segments.id", ondelete="CASCADE"), index=True
    )


class MetricRollup(IdMixin, Base):
    """One pre-aggregated figure: ``metric`` of ``scope``/``scope_id`` in one time bucket.

    ``grain`` is ``h`` (hour) or ``m`` (minute); ``dim`` breaks a metric down (a campaign,
    creator, channel or product id, a merchant tier), ``""`` when it does not.
    """

    __tablename__ = "metric_rollups"
    __table_args__ = (
        UniqueConstraint("scope", "scope_id", "grain", "metric", "bucket", "dim"),
        # Both indexes carry every column a dashboard reads, so reads are index-only scans
        # (rows written by a backfill are scattered over the table; the index is not).
        # One subject's figures (a shop, a creator) over a window:
        Index(
            "ix_metric_rollups_subject",
            "scope",
            "scope_id",
            "grain",
            "metric",
            "bucket",
            "dim",
            "value",
        ),
        # Every subject in a window (the operator's view; the refresh's deletes):
        Index(
            "ix_metric_rollups_grain_bucket",
            "grain",
            "bucket",
            "scope",
            "metric",
            "scope_id",
            "dim",
            "value",
        ),
    )

    scope: Mapped[str] = mapped_column(String(10))
    scope_id: Mapped[int] = mapped_column(BigInteger)
    grain: Mapped[str] = mapped_column(String(1))
    metric: Mapped[str] = mapped_column(String(24))
    bucket: Mapped[datetime]
    dim: Mapped[str] = mapped_column(String(40), default="")
    value: Mapped[int] = mapped_column(BigInteger)


class RollupWatermark(Base):
    """How far each rollup job has got (for monitoring and incremental runs)."""

    __tablename__ = "rollup_watermarks"

    name: Mapped[str] = mapped_column(String(40), primary_key=True)
    through: Mapped[datetime]
    note: Mapped[str] = mapped_column(String(200), default="")
