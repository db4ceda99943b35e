"""Request and response models of the marketplace."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from juxing.kit.schemas import StrictModel


class BriefItemIn(StrictModel):
    product_id: int = Field(ge=1)
    deal_item_id: int | None = Field(default=None, ge=1)


class BriefCreate(StrictModel):
    """A new brief. The merchant comes from the caller; status and escrow are the server's."""

    merchant_id: int | None = Field(default=None, ge=1)
    title: str = Field(min_length=3, max_length=200)
    description: str = Field(default="", max_length=10_000)
    deliverable: Literal["post", "live"]
    post_type: Literal["article", "list", "video", "live"] | None = None
    commission_rate_bp: int = Field(default=0, ge=0, le=9000)
    fixed_fee_minor: int = Field(default=0, ge=0, le=10**12)
    budget_minor: int = Field(default=0, ge=0, le=10**13)
    currency: str = Field(default="CNY", pattern=r"^[A-Z]{3}$")
    deadline: datetime
    wanted_segments: list[str] = Field(default_factory=list, max_length=20)
    items: list[BriefItemIn] = Field(min_length=1, max_length=50)


class BriefItemOut(BaseModel):
    product_id: int
    deal_item_id: int | None


class BriefOut(BaseModel):
    id: int
    merchant_id: int
    title: str
    description: str
    deliverable: str
    post_type: str | None
    commission_rate_bp: int
    fixed_fee_minor: int
    budget_minor: int
    committed_minor: int
    currency: str
    deadline: datetime
    wanted_segments: list[str]
    status: str
    items: list[BriefItemOut]
    created_at: datetime


class ApplicationCreate(StrictModel):
    pitch: str = Field(min_length=1, max_length=2000)


class DeliveryIn(StrictModel):
    post_id: int | None = Field(default=None, ge=1)
    live_room_id: int | None = Field(default=None, ge=1)


class DisputeIn(StrictModel):
    reason: str = Field(min_length=3, max_length=1000)


class ResolveIn(StrictModel):
    in_favour_of: Literal["creator", "merchant"]
    note: str = Field(default="", max_length=1000)


class ApplicationOut(BaseModel):
    id: int
    brief_id: int
    creator_id: int
    pitch: str
    status: str
    fee_minor: int
    post_id: int | None
    live_room_id: int | None
    decided_at: datetime | None
    delivered_at: datetime | None
    closed_at: datetime | None
    dispute_reason: str | None
    resolution: str | None
    resolution_note: str | None
    created_at: datetime


class NotificationOut(BaseModel):
    id: int
    kind: str
    message: str
    brief_id: int | None
    application_id: int | None
    data: dict[str, Any]
    created_at: datetime
    read_at: datetime | None


class MarkRead(StrictModel):
    up_to_id: int | None = Field(default=None, ge=1)


class CreatorMatchOut(BaseModel):
    creator_id: int
    display_name: str
    score: float
    audience_fit: float
    conversion: float
    reasons: list[str]


class BriefMatchOut(BaseModel):
    brief: BriefOut
    score: float
    reasons: list[str]


class TopUpIn(StrictModel):
    """Money a merchant paid in for briefs (recorded by an operator)."""

    amount_minor: int = Field(ge=1, le=10**13)
    currency: str = Field(default="CNY", pattern=r"^[A-Z]{3}$")
    reference: str = Field(min_length=1, max_length=64)


class BalanceOut(BaseModel):
    merchant_id: int
    currency: str
    available_minor: int
    escrowed_minor: int
