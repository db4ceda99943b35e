"""Which rate and which attribution window apply to an order line.

Precedence for the rate (basis points of the amount paid): the deal item's own
``commission_rate_bp`` → a product rule → the deal item's campaign rule → the merchant's
default rule → none (0: the line earns nothing). The attribution window: the campaign
rule's → the merchant default's → ``POLICY.default_window_days``. Creators get a
platform-paid bonus by level on top.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from juxing.commission.policy import POLICY
from juxing.kit.errors import NotFound, Unprocessable
from juxing.models.catalog import Merchant, Product
from juxing.models.commission import CommissionRule, CreatorLevelBonus, RuleScope
from juxing.models.deals import Campaign, DealItem


@dataclass(frozen=True)
class RateDecision:
    """The rate in force for one line, and where it came from."""

    scope: RuleScope
    rule_id: int | None
    base_rate_bp: int
    window_days: int


def resolve(
    session: Session, *, merchant_id: int, product_id: int, deal_item_id: int | None
) -> RateDecision:
    """The rate and window for a line of ``product_id`` (bought through ``deal_item_id``)."""
    item = session.get(DealItem, deal_item_id) if deal_item_id is not None else None
    campaign_id = item.campaign_id if item is not None else None
    targets = [(RuleScope.MERCHANT.value, 0), (RuleScope.PRODUCT.value, product_id)]
    if campaign_id is not None:
        targets.append((RuleScope.CAMPAIGN.value, campaign_id))
    rules = {
        r.scope: r
        for r in session.scalars(
            select(CommissionRule).where(CommissionRule.merchant_id == merchant_id)
        )
        if (r.scope, r.target_id) in targets
    }
    merchant = rules.get(RuleScope.MERCHANT.value)
    campaign = rules.get(RuleScope.CAMPAIGN.value)
    product = rules.get(RuleScope.PRODUCT.value)
    window = next(
        (r.window_days for r in (campaign, merchant) if r is not None and r.window_days),
        POLICY.default_window_days,
    )
    if item is not None and item.commission_rate_bp is not None:
        return RateDecision(RuleScope.DEAL_ITEM, item.id, item.commission_rate_bp, window)
    for scope, rule in (
        (RuleScope.PRODUCT, product),
        (RuleScope.CAMPAIGN, campaign),
        (RuleScope.MERCHANT, merchant),
    ):
        if rule is not None and rule.rate_bp is not None:
            return RateDecision(scope, rule.id, rule.rate_bp, window)
    return RateDecision(RuleScope.NONE, None, 0, window)


def creator_level(session: Session, *, creator_id: int) -> int:
    """The creator's level from the content domain's profile (1 if there is none)."""
    from juxing.models.content import CreatorProfile

    profile = session.get(CreatorProfile, creator_id)
    return int(profile.level) if profile is not None else 1


def level_bonus_bp(session: Session, *, creator_id: int) -> int:
    """The platform-paid bonus for the creator's level (operator table, else the policy)."""
    level = creator_level(session, creator_id=creator_id)
    row = session.get(CreatorLevelBonus, level)
    if row is not None:
        return row.bonus_bp
    return POLICY.level_bonus_bp.get(level, 0)


def set_rule(
    session: Session,
    *,
    merchant: Merchant,
    scope: RuleScope,
    target_id: int,
    rate_bp: int | None,
    window_days: int | None,
    actor_id: int,
) -> CommissionRule:
    """Create or replace one of the merchant's rules (validated against its own catalog)."""
    if scope is RuleScope.MERCHANT:
        target_id = 0
    elif scope is RuleScope.PRODUCT:
        product = session.get(Product, target_id)
        if product is None or product.merchant_id != merchant.id:
            raise NotFound("No such product in this shop.", details={"field": "body.target_id"})
        if window_days is not None:
            raise Unprocessable(
                "Attribution windows are set per campaign or per shop.",
                code="window_not_allowed",
                details={"field": "body.window_days"},
            )
    elif scope is RuleScope.CAMPAIGN:
        campaign = session.get(Campaign, target_id)
        if campaign is None or campaign.merchant_id != merchant.id:
            raise NotFound("No such campaign in this shop.", details={"field": "body.target_id"})
    else:
        raise Unprocessable(
            "Deal item rates are set on the deal item itself.",
            code="invalid_scope",
            details={"field": "body.scope"},
        )
    if rate_bp is None and window_days is None:
        raise Unprocessable(
            "Give a rate_bp, a window_days or both.",
            code="empty_rule",
            details={"field": "body"},
        )
    rule = session.scalar(
        select(CommissionRule).where(
            CommissionRule.merchant_id == merchant.id,
            CommissionRule.scope == scope.value,
            CommissionRule.target_id == target_id,
        )
    )
    if rule is None:
        rule = CommissionRule(merchant_id=merchant.id, scope=scope.value, target_id=target_id)
        session.add(rule)
    rule.rate_bp = rate_bp
    rule.window_days = window_days
    rule.updated_by_id = actor_id
    session.flush()
    return rule


def list_rules(session: Session, *, merchant_id: int) -> list[CommissionRule]:
    """A merchant's rules."""
    return list(
        session.scalars(
            select(CommissionRule)
            .where(CommissionRule.merchant_id == merchant_id)
            .order_by(CommissionRule.scope, CommissionRule.target_id)
        )
    )


def delete_rule(session: Session, *, merchant_id: int, rule_id: int) -> None:
    """Remove a rule; orders already placed keep the rate recorded on their lines."""
    rule = session.get(CommissionRule, rule_id)
    if rule is None or rule.merchant_id != merchant_id:
        raise NotFound("No such rule.")
    session.delete(rule)
    session.flush()
