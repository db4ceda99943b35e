"""Behaviour events: the append-only log of what shoppers do (view, click, cart, buy, ...).

One narrow row per event. The log is written in batches (``INSERT ... ON CONFLICT DO NOTHING``)
and read two ways: a shopper's most recent events (``(user_id, occurred_at)`` index, one
range scan per feed request) and time windows for training and trending (``occurred_at``,
a BRIN index on PostgreSQL, which stays tiny at hundreds of millions of rows because the log
is appended in roughly time order). There are no foreign keys on purpose: imported events
reference shoppers and items of other systems, and an append-only log must not pay FK
checks on every row. Idempotency: ``(source, user_id, client_event_id)`` is unique.
"""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import BigInteger, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from juxing.models.base import Base, BigId, UTCDateTime


class Action(enum.StrEnum):
    """What the shopper did."""

    VIEW = "view"
    CLICK = "click"
    CART = "cart"  # add to cart
    FAV = "fav"  # favourite
    BUY = "buy"
    FOLLOW = "follow"
    SHARE = "share"


class TargetType(enum.StrEnum):
    """What the event is about."""

    PRODUCT = "product"
    POST = "post"
    CREATOR = "creator"
    LIVE_ROOM = "live_room"
    MERCHANT = "merchant"


class BehaviorEvent(Base):
    """One behaviour event (append-only; never updated)."""

    __tablename__ = "behavior_events"
    __table_args__ = (
        UniqueConstraint("source", "user_id", "client_event_id"),
        Index("ix_behavior_events_user_recent", "user_id", "occurred_at"),
        Index(
            "ix_behavior_events_occurred_at",
            "occurred_at",
            postgresql_using="brin",
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    # "app" for events sent by our clients; "userbehavior" etc. for imported logs, whose
    # user ids belong to that source.
    source: Mapped[str] = mapped_column(String(16), default="app")
    user_id: Mapped[int] = mapped_column(BigInteger)
    action: Mapped[str] = mapped_column(String(8))
    target_type: Mapped[str] = mapped_column(String(10))
    target_id: Mapped[int] = mapped_column(BigInteger)
    category_id: Mapped[int | None] = mapped_column(BigInteger)
    dwell_ms: Mapped[int | None] = mapped_column(Integer)
    client_event_id: Mapped[str] = mapped_column(String(64))
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime())
    received_at: Mapped[datetime] = mapped_column(UTCDateTime())
