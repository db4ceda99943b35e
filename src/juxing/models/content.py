"""Content (淘宝头条 / 达人): creators, shoppable posts, live rooms, follows, inbox, moderation.

Product cards reference catalog SKUs or deal items by id; their live state (price, deal price,
countdown, stock left) is read from the deals domain when a card is shown, never copied here.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
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


class CreatorStatus(enum.StrEnum):
    ACTIVE = "active"
    SUSPENDED = "suspended"


class ApplicationStatus(enum.StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"


class AuthorKind(enum.StrEnum):
    CREATOR = "creator"
    MERCHANT = "merchant"


class PostType(enum.StrEnum):
    ARTICLE = "article"
    LIST = "list"
    VIDEO = "video"
    LIVE = "live"


class PostStatus(enum.StrEnum):
    DRAFT = "draft"
    PENDING_REVIEW = "pending_review"
    PUBLISHED = "published"
    REJECTED = "rejected"
    UNPUBLISHED = "unpublished"
    DELETED = "deleted"


class LiveRoomStatus(enum.StrEnum):
    SCHEDULED = "scheduled"
    LIVE = "live"
    ENDED = "ended"


class FollowTarget(enum.StrEnum):
    CREATOR = "creator"
    MERCHANT = "merchant"


class InboxKind(enum.StrEnum):
    NEW_POST = "new_post"
    LIVE_STARTED = "live_started"
    MODERATION = "moderation"


class ModerationStatus(enum.StrEnum):
    OPEN = "open"
    APPROVED = "approved"
    REJECTED = "rejected"


# Creator levels, used by commission bonuses and the traffic policy (1 = new ... 5 = top).
CREATOR_LEVEL_NEW = 1
CREATOR_LEVEL_TOP = 5


class CreatorProfile(TimestampMixin, Base):
    """A creator (达人): a user whose application an operator approved."""

    __tablename__ = "creator_profiles"

    user_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    handle: Mapped[str] = mapped_column(String(32), unique=True)
    display_name: Mapped[str] = mapped_column(String(80))
    bio: Mapped[str] = mapped_column(String(500), default="")
    avatar_url: Mapped[str | None] = mapped_column(String(500))
    level: Mapped[int] = mapped_column(Integer, default=CREATOR_LEVEL_NEW)
    status: Mapped[str] = mapped_column(String(16), default=CreatorStatus.ACTIVE)
    approved_at: Mapped[datetime | None]
    follower_count: Mapped[int] = mapped_column(Integer, default=0)
    post_count: Mapped[int] = mapped_column(Integer, default=0)


class CreatorApplication(IdMixin, TimestampMixin, Base):
    """A shopper's request to become a creator; an operator approves or rejects it."""

    __tablename__ = "creator_applications"

    user_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    handle: Mapped[str] = mapped_column(String(32))
    bio: Mapped[str] = mapped_column(String(500), default="")
    pitch: Mapped[str] = mapped_column(String(2000), default="")
    status: Mapped[str] = mapped_column(String(16), default=ApplicationStatus.PENDING, index=True)
    decision_reason: Mapped[str | None] = mapped_column(String(500))
    decided_by_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("users.id", ondelete="SET NULL")
    )
    decided_at: Mapped[datetime | None]


class Post(IdMixin, TimestampMixin, Base):
    """A shoppable post by a creator or a merchant (shop posts, like Weitao 微淘)."""

    __tablename__ = "posts"
    __table_args__ = (
        Index("ix_posts_author_status", "author_id", "status"),
        Index("ix_posts_status_published_at", "status", "published_at"),
    )

    author_id: Mapped[int] = mapped_column(BigId, ForeignKey("users.id", ondelete="CASCADE"))
    author_kind: Mapped[str] = mapped_column(String(16), default=AuthorKind.CREATOR)
    merchant_id: Mapped[int | None] = mapped_column(BigId, index=True)
    type: Mapped[str] = mapped_column(String(16), default=PostType.ARTICLE)
    title: Mapped[str] = mapped_column(String(200))
    summary: Mapped[str] = mapped_column(String(500), default="")
    body_markdown: Mapped[str] = mapped_column(Text, default="")
    # Sanitized HTML rendered from body_markdown at save time.
    body_html: Mapped[str] = mapped_column(Text, default="")
    video_url: Mapped[str | None] = mapped_column(String(500))
    cover_image_url: Mapped[str | None] = mapped_column(String(500))
    category_id: Mapped[int | None] = mapped_column(BigId)
    live_room_id: Mapped[int | None] = mapped_column(BigId)
    status: Mapped[str] = mapped_column(String(20), default=PostStatus.DRAFT)
    published_at: Mapped[datetime | None]
    version: Mapped[int] = mapped_column(Integer, default=1)
    # The latest moderation outcome the author may see (reason for a rejection).
    moderation_note: Mapped[str | None] = mapped_column(String(500))

    cards: Mapped[list[PostProductCard]] = relationship(
        back_populates="post",
        lazy="raise",
        cascade="all, delete-orphan",
        order_by="PostProductCard.position",
    )


class PostVersion(IdMixin, Base):
    """A snapshot of a post as it was saved; every edit keeps the previous versions."""

    __tablename__ = "post_versions"
    __table_args__ = (UniqueConstraint("post_id", "version"),)

    post_id: Mapped[int] = mapped_column(BigId, ForeignKey("posts.id", ondelete="CASCADE"))
    version: Mapped[int] = mapped_column(Integer)
    title: Mapped[str] = mapped_column(String(200))
    summary: Mapped[str] = mapped_column(String(500), default="")
    body_markdown: Mapped[str] = mapped_column(Text, default="")
    video_url: Mapped[str | None] = mapped_column(String(500))
    cover_image_url: Mapped[str | None] = mapped_column(String(500))
    cards: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    edited_by_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("users.id", ondelete="SET NULL")
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class PostProductCard(IdMixin, Base):
    """A product card inside a post: a SKU or a deal item, with the author's note."""

    __tablename__ = "post_product_cards"
    __table_args__ = (UniqueConstraint("post_id", "position"),)

    post_id: Mapped[int] = mapped_column(BigId, ForeignKey("posts.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(Integer)
    product_id: Mapped[int] = mapped_column(BigId, index=True)
    sku_id: Mapped[int | None] = mapped_column(BigId)
    deal_item_id: Mapped[int | None] = mapped_column(BigId, index=True)
    note: Mapped[str] = mapped_column(String(1000), default="")

    post: Mapped[Post] = relationship(back_populates="cards", lazy="raise")


class LiveRoom(IdMixin, TimestampMixin, Base):
    """A creator's live session with pinned products and live-only deal items."""

    __tablename__ = "live_rooms"
    __table_args__ = (Index("ix_live_rooms_status_scheduled_at", "status", "scheduled_at"),)

    creator_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(String(2000), default="")
    cover_image_url: Mapped[str | None] = mapped_column(String(500))
    scheduled_at: Mapped[datetime]
    started_at: Mapped[datetime | None]
    ended_at: Mapped[datetime | None]
    status: Mapped[str] = mapped_column(String(16), default=LiveRoomStatus.SCHEDULED)
    pinned_item_id: Mapped[int | None] = mapped_column(BigId)
    # Bumped on every change viewers must see (pin, items, status); events carry it.
    revision: Mapped[int] = mapped_column(Integer, default=0)
    peak_viewers: Mapped[int] = mapped_column(Integer, default=0)
    post_id: Mapped[int | None] = mapped_column(BigId)

    items: Mapped[list[LiveRoomItem]] = relationship(
        back_populates="room",
        lazy="raise",
        cascade="all, delete-orphan",
        order_by="LiveRoomItem.position",
    )


class LiveRoomItem(IdMixin, Base):
    """A product shown in a live room; ``live_only`` deal items are sold only there."""

    __tablename__ = "live_room_items"
    __table_args__ = (UniqueConstraint("room_id", "position"),)

    room_id: Mapped[int] = mapped_column(BigId, ForeignKey("live_rooms.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(Integer)
    product_id: Mapped[int] = mapped_column(BigId)
    sku_id: Mapped[int | None] = mapped_column(BigId)
    deal_item_id: Mapped[int | None] = mapped_column(BigId)
    note: Mapped[str] = mapped_column(String(1000), default="")
    live_only: Mapped[bool] = mapped_column(Boolean, default=False)

    room: Mapped[LiveRoom] = relationship(back_populates="items", lazy="raise")


class Follow(IdMixin, Base):
    """A shopper follows a creator or a merchant."""

    __tablename__ = "follows"
    __table_args__ = (
        UniqueConstraint("follower_id", "target_kind", "target_id"),
        Index("ix_follows_target", "target_kind", "target_id"),
    )

    follower_id: Mapped[int] = mapped_column(BigId, ForeignKey("users.id", ondelete="CASCADE"))
    target_kind: Mapped[str] = mapped_column(String(16))
    target_id: Mapped[int] = mapped_column(BigId)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class InboxItem(IdMixin, Base):
    """A notice in a user's inbox: a new post or a go-live from whom they follow, or a
    moderation decision on their own post."""

    __tablename__ = "inbox_items"
    __table_args__ = (
        Index("ix_inbox_items_user_id_id", "user_id", "id"),
        UniqueConstraint("user_id", "kind", "post_id", "live_room_id"),
    )

    user_id: Mapped[int] = mapped_column(BigId, ForeignKey("users.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(16))
    actor_id: Mapped[int | None] = mapped_column(BigId)
    post_id: Mapped[int | None] = mapped_column(BigId)
    live_room_id: Mapped[int | None] = mapped_column(BigId)
    message: Mapped[str] = mapped_column(String(500), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    read_at: Mapped[datetime | None]


class ModerationCase(IdMixin, TimestampMixin, Base):
    """A post version that failed the automatic checks, waiting for an operator."""

    __tablename__ = "moderation_cases"
    __table_args__ = (Index("ix_moderation_cases_status_id", "status", "id"),)

    post_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("posts.id", ondelete="CASCADE"), index=True
    )
    post_version: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16), default=ModerationStatus.OPEN)
    findings: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    decided_by_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("users.id", ondelete="SET NULL")
    )
    decided_at: Mapped[datetime | None]
    reason: Mapped[str | None] = mapped_column(String(500))


class ModerationAuditEntry(IdMixin, Base):
    """One moderation decision, automatic or by an operator; never updated or deleted."""

    __tablename__ = "moderation_audit"

    post_id: Mapped[int] = mapped_column(BigId, index=True)
    post_version: Mapped[int] = mapped_column(Integer)
    case_id: Mapped[int | None] = mapped_column(BigId)
    # None for the automatic checks.
    actor_id: Mapped[int | None] = mapped_column(BigId)
    action: Mapped[str] = mapped_column(String(24))
    reason: Mapped[str | None] = mapped_column(String(500))
    findings: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class PriceObservation(IdMixin, Base):
    """A price seen for a product (fed from card states): the history that absolute
    claims such as 最低价 / "lowest price ever" are checked against."""

    __tablename__ = "price_observations"
    __table_args__ = (
        Index("ix_price_observations_product_id_observed_at", "product_id", "observed_at"),
    )

    product_id: Mapped[int] = mapped_column(BigId)
    sku_id: Mapped[int | None] = mapped_column(BigId)
    deal_item_id: Mapped[int | None] = mapped_column(BigId)
    price_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    observed_at: Mapped[datetime] = mapped_column(default=utcnow)


class BannedTerm(IdMixin, Base):
    """A word or phrase that sends a post to the moderation queue, added by an operator
    (on top of the list shipped in ``juxing/content/data/banned_words.txt``)."""

    __tablename__ = "banned_terms"

    term: Mapped[str] = mapped_column(String(100), unique=True)
    added_by_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("users.id", ondelete="SET NULL")
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
