"""Request and response models of the feed: behaviour events, feed pages, traffic policies."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, Field, model_validator

from juxing.kit.schemas import StrictModel
from juxing.models.events import Action, TargetType

MAX_BATCH = 1000


class EventIn(StrictModel):
    """One behaviour event as a client reports it; the shopper is the authenticated caller."""

    client_event_id: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[\x21-\x7e]+$")]
    action: Action
    target_type: TargetType
    target_id: Annotated[int, Field(ge=1)]
    occurred_at: datetime | None = None
    dwell_ms: Annotated[int | None, Field(ge=0, le=86_400_000)] = None


class EventBatchIn(StrictModel):
    """Up to 1,000 events. Each item is validated on its own: bad ones are reported, good
    ones are kept."""

    events: Annotated[list[dict[str, Any]], Field(min_length=1, max_length=MAX_BATCH)]


class EventError(BaseModel):
    index: int
    client_event_id: str | None
    errors: list[dict[str, Any]]


class EventBatchResult(BaseModel):
    accepted: int = Field(description="Events stored by this request.")
    duplicates: int = Field(description="Events already stored under the same client_event_id.")
    rejected: int
    errors: list[EventError]


class DealStateOut(BaseModel):
    """Live state of a festival-deal item (from the deals engine at request time)."""

    status: str = Field(description="upcoming / live / sold_out / ended / not_on_sale")
    stock_left: int
    starts_at: str
    ends_at: str


class FeedItemOut(BaseModel):
    """One card of the feed, with why it is there."""

    key: str
    type: str
    id: int
    title: str
    merchant_id: int | None
    creator_id: int | None
    category_id: int | None
    price_minor: int | None
    currency: str | None
    deal_item_id: int | None
    deal_price_minor: int | None
    deal: DealStateOut | None = None
    reason: str
    reason_code: str
    boosts: list[str]


class FeedPage(BaseModel):
    feed_id: str
    items: list[FeedItemOut]
    next_cursor: str | None
    policy: str | None
    model_version: str | None


# --- traffic policy ------------------------------------------------------------------------


Share = Annotated[float, Field(ge=0.0, le=1.0)]


class TierQuota(StrictModel):
    """Bounds on the share of a merchant tier's items in every top-K window."""

    min_share: Share = 0.0
    max_share: Share = 1.0

    @model_validator(mode="after")
    def _ordered(self) -> TierQuota:
        if self.min_share > self.max_share:
            raise ValueError("min_share must not exceed max_share")
        return self


class PolicyRules(StrictModel):
    """What a traffic policy asks of every served feed (each window of ``window`` items)."""

    window: Annotated[int, Field(ge=4, le=100)] = 20
    longtail_share: Share = Field(
        0.25, description="Minimum share of items from long-tail merchants."
    )
    longtail_percentile: Annotated[float, Field(ge=50.0, le=99.0)] = Field(
        80.0,
        description="Merchants below this percentile of sales + exposure are long tail.",
    )
    new_creator_share: Share = Field(0.1, description="Minimum share of posts by new creators.")
    new_creator_days: Annotated[int, Field(ge=1, le=365)] = 30
    tier_quotas: dict[str, TierQuota] = Field(default_factory=dict)
    max_per_merchant: Annotated[int, Field(ge=1, le=100)] = 3
    max_per_creator: Annotated[int, Field(ge=1, le=100)] = 3
    max_per_category: Annotated[int, Field(ge=1, le=100)] = 6
    exploration_slots: Annotated[int, Field(ge=0, le=20)] = 1

    @model_validator(mode="after")
    def _feasible(self) -> PolicyRules:
        caps = (self.max_per_merchant, self.max_per_creator, self.max_per_category)
        if any(c > self.window for c in caps):
            raise ValueError("diversity caps must not exceed the window")
        if self.exploration_slots >= self.window:
            raise ValueError("exploration_slots must be fewer than the window")
        mins = self.longtail_share + self.new_creator_share
        mins += sum(q.min_share for q in self.tier_quotas.values())
        if mins > 1.0 + 1e-9:
            raise ValueError("the minimum shares add up to more than the whole window")
        unknown = set(self.tier_quotas) - {"new", "growing", "key_account"}
        if unknown:
            raise ValueError(f"unknown merchant tiers: {sorted(unknown)}")
        return self


class PolicyIn(StrictModel):
    name: Annotated[str, Field(min_length=1, max_length=80)]
    description: Annotated[str, Field(max_length=500)] = ""
    rules: PolicyRules = Field(default_factory=PolicyRules)
    activate: bool = False


class PolicyUpdate(StrictModel):
    description: Annotated[str | None, Field(max_length=500)] = None
    rules: PolicyRules | None = None


class PolicyOut(BaseModel):
    id: int
    name: str
    description: str
    rules: PolicyRules
    is_active: bool
    version: int
    updated_at: datetime


class PreviewIn(StrictModel):
    rules: PolicyRules
    sample_users: Annotated[int, Field(ge=1, le=2000)] = 200


class ExposureSummary(BaseModel):
    longtail_share: float
    new_creator_share: float
    tier_shares: dict[str, float]
    distinct_items: int
    distinct_merchants: int
    gini: float
    max_per_merchant_seen: int


class PreviewOut(BaseModel):
    sample_users: int
    window: int
    without_policy: ExposureSummary
    with_policy: ExposureSummary
    current_policy: ExposureSummary | None


class ModelVersionOut(BaseModel):
    version: str
    models: list[str]
    n_users: int
    n_items: int
    n_events: int
    train_seconds: float
    is_active: bool
    created_at: datetime
