"""Request and response models of the deals engine."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, model_validator

from juxing.kit.schemas import StrictModel

Minor = Annotated[int, Field(gt=0, le=10**12)]


class FestivalCreate(StrictModel):
    name: Annotated[str, Field(min_length=2, max_length=120)]
    name_zh: Annotated[str, Field(max_length=120)] = ""
    slug: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9-]{1,79}$")] | None = None
    theme: Annotated[str, Field(max_length=200)] = ""
    description: Annotated[str, Field(max_length=5000)] = ""
    starts_at: datetime
    ends_at: datetime


class FestivalUpdate(StrictModel):
    name: Annotated[str, Field(min_length=2, max_length=120)] | None = None
    name_zh: Annotated[str, Field(max_length=120)] | None = None
    theme: Annotated[str, Field(max_length=200)] | None = None
    description: Annotated[str, Field(max_length=5000)] | None = None
    starts_at: datetime | None = None
    ends_at: datetime | None = None


class FestivalOut(BaseModel):
    id: int
    name: str
    name_zh: str
    slug: str
    theme: str
    description: str
    starts_at: datetime
    ends_at: datetime


class CampaignCreate(StrictModel):
    festival_id: int
    merchant_id: int
    title: Annotated[str, Field(min_length=2, max_length=200)]


class DealItemCreate(StrictModel):
    sku_id: int
    deal_price_minor: Minor
    deal_stock: Annotated[int, Field(ge=1, le=10**8)]
    per_user_limit: Annotated[int, Field(ge=1, le=1000)] = 1
    starts_at: datetime
    ends_at: datetime
    group_size: Annotated[int, Field(ge=2, le=100)] | None = None
    group_window_s: Annotated[int, Field(ge=60, le=7 * 24 * 3600)] | None = None
    commission_rate_bp: Annotated[int, Field(ge=0, le=9000)] | None = None
    restock_on_refund: bool = True


class DealItemOut(BaseModel):
    id: int
    campaign_id: int
    sku_id: int
    product_id: int
    merchant_id: int
    deal_price_minor: int
    currency: str
    deal_stock: int
    available: int
    reserved: int
    sold: int
    per_user_limit: int
    starts_at: datetime
    ends_at: datetime
    group_size: int | None
    group_window_s: int | None
    commission_rate_bp: int | None
    restock_on_refund: bool
    stock_backend: str


class CampaignOut(BaseModel):
    id: int
    festival_id: int
    merchant_id: int
    title: str
    status: str
    reject_reason: str | None
    starts_at: datetime | None
    ends_at: datetime | None
    items: list[DealItemOut]


class RejectIn(StrictModel):
    reason: Annotated[str, Field(min_length=3, max_length=1000)]


class TransitionOut(BaseModel):
    from_status: str | None
    to_status: str
    actor_id: int | None
    reason: str | None
    at: datetime


class ReserveIn(StrictModel):
    deal_item_id: int
    quantity: Annotated[int, Field(ge=1, le=1000)] = 1
    coupon_claim_id: int | None = None
    start_group: bool = False
    group_code: Annotated[str, Field(min_length=4, max_length=32)] | None = None
    # The live room the shopper buys from: required for live-only deal items.
    live_room_id: int | None = None

    @model_validator(mode="after")
    def _one_group_choice(self) -> ReserveIn:
        if self.start_group and self.group_code:
            raise ValueError("either start_group or group_code, not both")
        return self


class OrderLineOut(BaseModel):
    id: int
    sku_id: int
    deal_item_id: int | None
    product_id: int
    title: str
    quantity: int
    unit_price_minor: int
    amount_minor: int
    refunded_minor: int
    refunded_quantity: int


class OrderOut(BaseModel):
    id: int
    shopper_id: int
    merchant_id: int
    status: str
    currency: str
    subtotal_minor: int
    discount_minor: int
    total_minor: int
    refunded_minor: int
    coupon_claim_id: int | None
    group_id: int | None
    created_at: datetime
    expires_at: datetime | None
    paid_at: datetime | None
    shipped_at: datetime | None
    received_at: datetime | None
    cancelled_at: datetime | None
    cancel_reason: str | None
    lines: list[OrderLineOut]


class PaymentOut(BaseModel):
    id: int
    order_id: int
    provider: str
    provider_ref: str
    amount_minor: int
    currency: str
    status: str
    created_at: datetime
    confirmed_at: datetime | None
    callback_url: str


class SimulateIn(StrictModel):
    outcome: Literal["succeeded", "failed"] = "succeeded"
    deliver: Literal["now", "twice", "later"] = "now"
    delay_s: Annotated[float, Field(ge=0, le=3600)] = 2.0


class RefundLineIn(StrictModel):
    order_line_id: int
    quantity: Annotated[int, Field(ge=1, le=1000)]


class RefundIn(StrictModel):
    lines: Annotated[list[RefundLineIn], Field(min_length=1, max_length=100)] | None = None
    reason: Annotated[str, Field(max_length=200)] = ""
    restock: bool | None = None


class RefundOut(BaseModel):
    id: int
    order_id: int
    amount_minor: int
    currency: str
    reason: str
    restocked: bool
    created_at: datetime
    lines: list[dict[str, int]]


class CouponCreate(StrictModel):
    title: Annotated[str, Field(min_length=2, max_length=120)]
    code: Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{4,40}$")] | None = None
    kind: Literal["amount", "percent"]
    amount_off_minor: Minor | None = None
    percent_off: Annotated[int, Field(ge=1, le=100)] | None = None
    max_discount_minor: Minor | None = None
    min_spend_minor: Annotated[int, Field(ge=0, le=10**12)] = 0
    currency: Annotated[str, Field(pattern=r"^[A-Z]{3}$")] = "CNY"
    valid_from: datetime
    valid_until: datetime
    per_shopper_cap: Annotated[int, Field(ge=1, le=100)] = 1
    budget_minor: Minor
    festival_id: int | None = None
    merchant_id: int | None = None


class CouponOut(BaseModel):
    id: int
    code: str
    title: str
    festival_id: int | None
    merchant_id: int | None
    kind: str
    amount_off_minor: int | None
    percent_off: int | None
    max_discount_minor: int | None
    min_spend_minor: int
    currency: str
    valid_from: datetime
    valid_until: datetime
    per_shopper_cap: int
    budget_minor: int
    budget_used_minor: int
    claimed_count: int
    scan_url: str


class ClaimIn(StrictModel):
    coupon_id: int | None = None
    code: Annotated[str, Field(min_length=4, max_length=40)] | None = None

    @model_validator(mode="after")
    def _one_of(self) -> ClaimIn:
        if (self.coupon_id is None) == (self.code is None):
            raise ValueError("give exactly one of coupon_id or code")
        return self


class ClaimOut(BaseModel):
    id: int
    coupon_id: int
    status: str
    via: str
    claimed_at: datetime
    used_at: datetime | None
    order_id: int | None
    discount_minor: int
    coupon: CouponOut | None = None


class GroupOut(BaseModel):
    id: int
    code: str
    deal_item_id: int
    size: int
    member_count: int
    paid_count: int
    status: str
    expires_at: datetime
    share_url: str
    order_ids: list[int] = []


class CardOut(BaseModel):
    model_config = {"extra": "allow"}

    deal_item_id: int | None
    product_id: int
    sku_id: int
    title: str
    status: str
    stock_left: int
    deal_price_minor: int | None
    list_price_minor: int
    currency: str
    starts_at: datetime | None
    ends_at: datetime | None


class StockReport(BaseModel):
    deal_item_id: int
    backend: str
    deal_stock: int
    live: dict[str, int] | None
    expected: dict[str, int]
    ok: bool
    details: dict[str, Any] = {}
