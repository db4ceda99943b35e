"""Request and response models of the commission and ledger endpoints."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from juxing.kit.schemas import StrictModel
from juxing.models.commission import LinkTarget, RuleScope

Currency = Field(default="CNY", pattern=r"^[A-Z]{3}$")


class LinkCreate(StrictModel):
    target_type: LinkTarget
    target_id: int = Field(ge=1)
    # With a product or deal item target: the product card sits inside this post.
    post_id: int | None = Field(default=None, ge=1)


class LinkOut(BaseModel):
    id: int
    code: str
    token: str
    url: str
    target_type: str
    target_id: int
    product_id: int | None
    deal_item_id: int | None
    post_id: int | None
    live_room_id: int | None
    created_at: datetime


class RuleIn(StrictModel):
    scope: Literal["merchant", "product", "campaign"]
    target_id: int = Field(default=0, ge=0)
    rate_bp: int | None = Field(default=None, ge=0, le=9000)
    window_days: int | None = Field(default=None, ge=1, le=90)


class RuleOut(BaseModel):
    id: int
    merchant_id: int
    scope: RuleScope
    target_id: int
    rate_bp: int | None
    window_days: int | None
    updated_at: datetime


class LevelBonusIn(StrictModel):
    level: int = Field(ge=1, le=5)
    bonus_bp: int = Field(ge=0, le=2000)


class LevelBonusOut(BaseModel):
    level: int
    bonus_bp: int
    source: Literal["operator", "default"]


class CommissionOut(BaseModel):
    id: int
    order_id: int
    order_line_id: int
    creator_id: int
    merchant_id: int
    product_id: int
    deal_item_id: int | None
    decision: str
    status: str
    click_id: int | None
    clicked_at: datetime | None
    window_days: int
    rule_scope: str
    rule_id: int | None
    base_rate_bp: int
    bonus_bp: int
    fee_bp: int
    currency: str
    amount_minor: int
    refunded_minor: int
    base_minor: int
    bonus_minor: int
    fee_minor: int
    earned_minor: int
    explanation: str
    placed_at: datetime
    paid_at: datetime | None
    received_at: datetime | None
    available_at: datetime | None
    matured_at: datetime | None
    flags: list[str] = []


class AttributionLine(BaseModel):
    order_line_id: int
    product_id: int
    amount_minor: int
    attributed: bool
    explanation: str
    commission: CommissionOut | None


class AttributionOut(BaseModel):
    order_id: int
    placed_at: datetime
    lines: list[AttributionLine]


class EarningsOut(BaseModel):
    currency: str
    pending_minor: int
    available_minor: int
    held_count: int
    payout_minimum_minor: int


class PayoutCreate(StrictModel):
    currency: str = Currency
    # Omit to pay out the whole available balance.
    amount_minor: int | None = Field(default=None, ge=1)


class PayoutSettle(StrictModel):
    outcome: Literal["paid", "failed"]
    reason: str | None = Field(default=None, max_length=200)


class PayoutOut(BaseModel):
    id: int
    creator_id: int
    amount_minor: int
    currency: str
    status: str
    period_start: datetime | None
    requested_at: datetime
    settled_at: datetime | None
    failure_reason: str | None


class StatementLineOut(BaseModel):
    at: datetime
    kind: str
    reference: str
    memo: str
    amount_minor: int
    balance_minor: int


class PayoutStatementOut(BaseModel):
    payout: PayoutOut
    opening_minor: int
    closing_minor: int
    lines: list[StatementLineOut]


class ReviewIn(StrictModel):
    reason: str = Field(min_length=3, max_length=500)


class HoldOut(BaseModel):
    commission: CommissionOut
    flags: list[dict[str, Any]]


class StatementRowOut(BaseModel):
    commission_id: int
    order_id: int
    order_line_id: int
    product_id: int
    creator_id: int
    merchant_id: int
    placed_at: datetime
    paid_at: datetime | None
    status: str
    rule_scope: str
    base_rate_bp: int
    bonus_bp: int
    currency: str
    amount_minor: int
    refunded_minor: int
    commission_minor: int
    clicked_at: datetime | None


class StatementOut(BaseModel):
    since: datetime | None
    until: datetime | None
    total_amount_minor: int
    total_commission_minor: int
    rows: list[StatementRowOut]


class AccountOut(BaseModel):
    id: int
    code: str
    kind: str
    owner_id: int | None
    currency: str
    balance_minor: int


class ReconciliationOut(BaseModel):
    id: int
    ok: bool
    trigger: str
    started_at: datetime
    finished_at: datetime | None
    checked_entries: int
    discrepancy_count: int
    discrepancies: list[dict[str, Any]]
