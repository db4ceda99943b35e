"""Request and response models of the content API. Request bodies are strict: authors cannot
set status, author, version, counters or prices."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import AnyHttpUrl, BaseModel, ConfigDict, Field, StringConstraints, model_validator

from juxing.kit.schemas import StrictModel
from juxing.models.content import FollowTarget, PostType

MAX_BODY_CHARS = 50_000
MAX_CARDS = 50

Handle = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_]{3,32}$")]
Title = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Reason = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=500)]


def _url(value: AnyHttpUrl | None) -> str | None:
    return str(value) if value is not None else None


HttpUrl500 = Annotated[AnyHttpUrl, Field(max_length=500)]


class CardIn(StrictModel):
    product_id: int = Field(gt=0)
    sku_id: int | None = Field(default=None, gt=0)
    deal_item_id: int | None = Field(default=None, gt=0)
    note: str = Field(default="", max_length=1000)


class PostCreate(StrictModel):
    type: PostType
    title: Title
    summary: str = Field(default="", max_length=500)
    body_markdown: str = Field(default="", max_length=MAX_BODY_CHARS)
    video_url: HttpUrl500 | None = None
    cover_image_url: HttpUrl500 | None = None
    category_id: int | None = Field(default=None, gt=0)
    merchant_id: int | None = Field(default=None, gt=0, description="Set for a shop post.")
    live_room_id: int | None = Field(default=None, gt=0)
    cards: list[CardIn] = Field(default_factory=list, max_length=MAX_CARDS)

    def data(self) -> dict[str, Any]:
        out = self.model_dump()
        out["video_url"] = _url(self.video_url)
        out["cover_image_url"] = _url(self.cover_image_url)
        return out


class PostUpdate(StrictModel):
    title: Title | None = None
    summary: str | None = Field(default=None, max_length=500)
    body_markdown: str | None = Field(default=None, max_length=MAX_BODY_CHARS)
    video_url: HttpUrl500 | None = None
    cover_image_url: HttpUrl500 | None = None
    category_id: int | None = Field(default=None, gt=0)
    cards: list[CardIn] | None = Field(default=None, max_length=MAX_CARDS)

    def changes(self) -> dict[str, Any]:
        out = self.model_dump(exclude_unset=True)
        for name in ("video_url", "cover_image_url"):
            if name in out:
                out[name] = _url(getattr(self, name))
        if out.get("title", "") is None:
            out.pop("title")
        return out


class CardOut(BaseModel):
    """A product card with its live state."""

    position: int
    product_id: int
    sku_id: int | None
    deal_item_id: int | None
    note: str
    title: str = ""
    status: str = "not_on_sale"
    list_price_minor: int | None = None
    deal_price_minor: int | None = None
    currency: str | None = None
    starts_at: datetime | None = None
    ends_at: datetime | None = None
    seconds_to_start: int | None = None
    seconds_to_end: int | None = None
    stock_left: int | None = None
    sold_out: bool = False
    substitutes: list[dict[str, Any]] = Field(default_factory=list)


class PostOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    author_id: int
    author_kind: str
    merchant_id: int | None
    type: str
    title: str
    summary: str
    body_html: str
    video_url: str | None
    cover_image_url: str | None
    category_id: int | None
    live_room_id: int | None
    status: str
    published_at: datetime | None
    version: int
    created_at: datetime
    updated_at: datetime
    cards: list[CardOut] = Field(default_factory=list)


class PostDetail(PostOut):
    """The author's view: also the Markdown source and the moderation note."""

    body_markdown: str
    moderation_note: str | None


class PublishResult(BaseModel):
    post: PostDetail
    findings: list[dict[str, Any]]


class PostVersionOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    version: int
    title: str
    summary: str
    body_markdown: str
    video_url: str | None
    cover_image_url: str | None
    cards: list[dict[str, Any]]
    edited_by_id: int | None
    created_at: datetime


class ApplicationCreate(StrictModel):
    handle: Handle
    bio: str = Field(default="", max_length=500)
    pitch: str = Field(default="", max_length=2000)


class ApplicationOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    user_id: int
    handle: str
    bio: str
    pitch: str
    status: str
    decision_reason: str | None
    decided_at: datetime | None
    created_at: datetime


class ApproveApplication(StrictModel):
    level: int = Field(default=1, ge=1, le=5)


class RejectBody(StrictModel):
    reason: Reason


class CreatorOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    user_id: int
    handle: str
    display_name: str
    bio: str
    avatar_url: str | None
    level: int
    follower_count: int
    post_count: int
    approved_at: datetime | None


class Storefront(BaseModel):
    creator: CreatorOut
    posts: list[PostOut]
    products: list[CardOut]
    live_rooms: list[LiveRoomOut]


class ProfileUpdate(StrictModel):
    display_name: (
        Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=80)] | None
    ) = None
    bio: str | None = Field(default=None, max_length=500)
    avatar_url: HttpUrl500 | None = None

    def changes(self) -> dict[str, Any]:
        out = self.model_dump(exclude_unset=True, exclude_none=True)
        if "avatar_url" in out:
            out["avatar_url"] = _url(self.avatar_url)
        return out


class LevelBody(StrictModel):
    level: int = Field(ge=1, le=5)


class FollowBody(StrictModel):
    target_kind: FollowTarget
    target_id: int = Field(gt=0)


class FollowOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    target_kind: str
    target_id: int
    created_at: datetime


class InboxItemOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    kind: str
    actor_id: int | None
    post_id: int | None
    live_room_id: int | None
    message: str
    created_at: datetime
    read_at: datetime | None


class InboxPage(BaseModel):
    items: list[InboxItemOut]
    total: int
    unread: int
    limit: int
    offset: int


class MarkRead(StrictModel):
    up_to_id: int | None = Field(default=None, gt=0)


class CaseOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    post_id: int
    post_version: int
    status: str
    findings: list[dict[str, Any]]
    decided_by_id: int | None
    decided_at: datetime | None
    reason: str | None
    created_at: datetime


class ApproveCase(StrictModel):
    reason: str | None = Field(default=None, max_length=500)


class AuditOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    post_id: int
    post_version: int
    case_id: int | None
    actor_id: int | None
    action: str
    reason: str | None
    findings: list[dict[str, Any]]
    created_at: datetime


class BannedTermIn(StrictModel):
    term: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]


class BannedTermOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    term: str
    created_at: datetime


class RoomItemIn(CardIn):
    live_only: bool = False


class RoomCreate(StrictModel):
    title: Title
    description: str = Field(default="", max_length=2000)
    cover_image_url: HttpUrl500 | None = None
    scheduled_at: datetime
    items: list[RoomItemIn] = Field(default_factory=list, max_length=MAX_CARDS)

    @model_validator(mode="after")
    def _aware(self) -> RoomCreate:
        if self.scheduled_at.tzinfo is None:
            raise ValueError("scheduled_at needs a time zone (e.g. 2025-11-11T20:00:00+08:00)")
        return self

    def data(self) -> dict[str, Any]:
        out = self.model_dump()
        out["cover_image_url"] = _url(self.cover_image_url)
        return out


class PinBody(StrictModel):
    item_id: int | None = Field(default=None, gt=0, description="A room item id; null unpins.")


class RoomItemOut(CardOut):
    id: int
    live_only: bool


class LiveRoomOut(BaseModel):
    id: int
    creator_id: int
    title: str
    description: str
    cover_image_url: str | None
    scheduled_at: datetime
    started_at: datetime | None
    ended_at: datetime | None
    status: str
    pinned_item_id: int | None
    revision: int
    viewers: int = 0
    peak_viewers: int
    items: list[RoomItemOut] = Field(default_factory=list)


class MediaOut(BaseModel):
    url: str
    content_type: str
    width: int
    height: int
    size_bytes: int


Storefront.model_rebuild()
