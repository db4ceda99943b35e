"""Attribution: last click wins inside the window, take-over, self-purchase, rule precedence."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from factories import make_user
from juxing import ledger
from juxing.commission import rules
from juxing.kit.time import utcnow
from juxing.ledger.service import CREATOR_PENDING, MERCHANT_COMMISSION, PLATFORM_REVENUE
from juxing.models.accounts import Role
from juxing.models.commission import Commission, CommissionRule, RuleScope
from juxing.models.ledger import LedgerEntry


def _commissions(session, order):
    return list(session.scalars(select(Commission).where(Commission.order_id == order.id)))


def _setup(world, session, rate_bp=1000):
    merchant = world.merchant()
    product = world.product(merchant)
    session.add(
        CommissionRule(merchant_id=merchant.id, scope="merchant", target_id=0, rate_bp=rate_bp)
    )
    session.flush()
    return merchant, product


def test_last_click_wins_and_a_later_creator_takes_over(world, session):
    merchant, product = _setup(world, session)
    a, b = make_user(session, Role.CREATOR), make_user(session, Role.CREATOR)
    shopper = make_user(session)
    now = utcnow()
    world.click(world.link(a, product), shopper=shopper, at=now - timedelta(days=3))
    late = world.click(world.link(b, product), visitor="vid-1", at=now - timedelta(days=1))
    order = world.place(shopper, merchant, [(product, 20_000)], visitor="vid-1", at=now)
    (c,) = _commissions(session, order)
    assert c.creator_id == b.id and c.click_id == late.id and c.decision == "attributed"
    assert f"last click #{late.id}" in c.explanation and "15-day window" in c.explanation
    assert c.rule_scope == "merchant" and c.base_rate_bp == 1000


def test_window_default_15_days_and_closes_when_the_order_is_placed(world, session):
    merchant, product = _setup(world, session)
    creator, shopper = make_user(session, Role.CREATOR), make_user(session)
    link = world.link(creator, product)
    now = utcnow()
    world.click(link, shopper=shopper, at=now - timedelta(days=15, minutes=1))
    old = world.place(shopper, merchant, [(product, 10_000)], at=now)
    assert _commissions(session, old) == []
    # A click after the order was placed does not reach back to it.
    world.click(link, shopper=shopper, at=now + timedelta(minutes=1))
    world.pay(old, at=now + timedelta(minutes=2))
    assert _commissions(session, old) == []
    world.click(link, shopper=shopper, at=now - timedelta(days=14, hours=23))
    inside = world.place(shopper, merchant, [(product, 10_000)], at=now)
    assert len(_commissions(session, inside)) == 1


def test_campaign_rule_overrides_the_window(world, session):
    merchant, product = _setup(world, session)
    item = world.deal_item(merchant, product)
    session.add(
        CommissionRule(
            merchant_id=merchant.id, scope="campaign", target_id=item.campaign_id, window_days=30
        )
    )
    session.flush()
    creator, shopper = make_user(session, Role.CREATOR), make_user(session)
    now = utcnow()
    world.click(world.link(creator, product), shopper=shopper, at=now - timedelta(days=25))
    order = world.place(shopper, merchant, [(product, 10_000)], at=now, deal_item=item)
    (c,) = _commissions(session, order)
    assert c.window_days == 30


def test_self_purchase_earns_nothing_and_posts_nothing(world, session):
    merchant, product = _setup(world, session)
    creator = make_user(session, Role.CREATOR, Role.SHOPPER)
    world.click(world.link(creator, product), shopper=creator)
    order = world.place(creator, merchant, [(product, 30_000)])
    world.pay(order)
    (c,) = _commissions(session, order)
    assert c.decision == "self_purchase" and c.status == "no_commission"
    assert "self-purchase" in c.explanation
    assert session.scalar(select(LedgerEntry.id).limit(1)) is None


def test_rate_precedence_deal_item_product_merchant_and_level_bonus(world, session):
    merchant, product = _setup(world, session, rate_bp=300)
    other = world.product(merchant)
    item = world.deal_item(merchant, product, rate_bp=2000)
    session.add(
        CommissionRule(merchant_id=merchant.id, scope="product", target_id=product.id, rate_bp=800)
    )
    session.flush()
    d = rules.resolve(session, merchant_id=merchant.id, product_id=product.id, deal_item_id=item.id)
    assert (d.scope, d.base_rate_bp) == (RuleScope.DEAL_ITEM, 2000)
    d = rules.resolve(session, merchant_id=merchant.id, product_id=product.id, deal_item_id=None)
    assert (d.scope, d.base_rate_bp) == (RuleScope.PRODUCT, 800)
    d = rules.resolve(session, merchant_id=merchant.id, product_id=other.id, deal_item_id=None)
    assert (d.scope, d.base_rate_bp) == (RuleScope.MERCHANT, 300)
    d = rules.resolve(
        session, merchant_id=world.merchant().id, product_id=other.id, deal_item_id=None
    )
    assert (d.scope, d.base_rate_bp) == (RuleScope.NONE, 0)


def test_commission_on_amount_paid_with_fee_and_bonus_is_posted_pending(world, session):
    from juxing.models.content import CreatorProfile

    merchant, product = _setup(world, session, rate_bp=1000)
    creator, shopper = make_user(session, Role.CREATOR), make_user(session)
    session.add(
        CreatorProfile(user_id=creator.id, handle=f"c{creator.id}", display_name="C", level=4)
    )
    session.flush()
    world.click(world.link(creator, product), shopper=shopper)
    order = world.place(shopper, merchant, [(product, 12_345)])
    world.pay(order)
    (c,) = _commissions(session, order)
    # base 10% of 12345 = 1234; fee 10% of base = 123; level-4 bonus 1% of 12345 = 123
    assert (c.base_minor, c.fee_minor, c.bonus_minor, c.bonus_bp) == (1234, 123, 123, 100)
    assert c.status == "pending"

    def bal(kind, owner=None):
        return ledger.balance(session, kind=kind, owner_id=owner, currency="CNY")

    assert bal(CREATOR_PENDING, creator.id) == 1234 - 123 + 123
    assert bal(MERCHANT_COMMISSION, merchant.id) == -1234
    assert bal(PLATFORM_REVENUE) == 0


def test_cancelled_order_earns_nothing(world, session):
    merchant, product = _setup(world, session)
    creator, shopper = make_user(session, Role.CREATOR), make_user(session)
    world.click(world.link(creator, product), shopper=shopper)
    order = world.place(shopper, merchant, [(product, 10_000)])
    world.cancel(order)
    (c,) = _commissions(session, order)
    assert c.status == "cancelled"
