"""A small world for the web tests, made through the services: a festival with a live deal,
a creator with a published post carrying the deal's product card, a shopper."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy.orm import Session

from factories import make_user
from juxing.catalog import service as catalog
from juxing.content import service as content
from juxing.deals import service as deals
from juxing.kit.time import utcnow
from juxing.models.accounts import Role, User

_seq = itertools.count(1)


@dataclass
class World:
    operator: User
    merchant: User
    creator: User
    shopper: User
    merchant_id: int
    product_id: int
    sku_id: int
    festival_id: int
    deal_item_id: int
    post_id: int
    handle: str


def make_creator(session: Session, operator: User, *, name: str, handle: str) -> User:
    """A shopper who applied to be a creator and was approved."""
    user = make_user(session, Role.SHOPPER, name=name)
    application = content.apply_as_creator(
        session=session, user=user, handle=handle, bio="Skincare notes", pitch="I test serums"
    )
    content.approve_application(
        session=session, operator=operator, application_id=application.id, level=2
    )
    session.flush()
    return user


def build(
    session: Session, *, post_title: str = "My honest serum review", history_days: int = 0
) -> World:
    """The world; with ``history_days`` the festival and its deal started that long ago."""
    n = next(_seq)
    now = utcnow()
    started = now - timedelta(days=history_days, hours=1)
    operator = make_user(session, Role.OPERATOR, name="Festival Ops")
    merchant = make_user(session, Role.MERCHANT, name="Huaxi Cosmetics")
    shop = catalog.create_merchant(session=session, owner=merchant, name=f"Huaxi Cosmetics {n}")
    product = catalog.create_product(
        session=session,
        user=merchant,
        merchant_id=shop.id,
        title="Peony Serum 牡丹精华",
        description="Light serum for dry skin.",
        skus=[{"name": "30 ml", "list_price_minor": 19900, "stock": 500}],
    )
    sku = product.skus[0]
    festival = deals.create_festival(
        session=session,
        user=operator,
        name="Star Festival",
        name_zh="聚星节",
        theme="Deep discounts from small shops",
        starts_at=started,
        ends_at=now + timedelta(days=2),
    )
    campaign = deals.create_campaign(
        session=session,
        user=merchant,
        festival_id=festival.id,
        merchant_id=shop.id,
        title="Peony Serum at half price",
    )
    item = deals.add_deal_item(
        session=session,
        user=merchant,
        campaign_id=campaign.id,
        sku_id=sku.id,
        deal_price_minor=9900,
        deal_stock=500,
        per_user_limit=2,
        starts_at=started + timedelta(minutes=5),
        ends_at=now + timedelta(hours=12),
        commission_rate_bp=1000,
    )
    deals.submit_campaign(session=session, user=merchant, campaign_id=campaign.id)
    deals.approve_campaign(session=session, user=operator, campaign_id=campaign.id)
    handle = f"meimei{n}"
    creator = make_creator(session, operator, name="Meimei 美美", handle=handle)
    post = content.create_post(
        session=session,
        user=creator,
        data={
            "type": "article",
            "title": post_title,
            "summary": "Two weeks with the peony serum.",
            "body_markdown": "It **really** helps with dry skin.\n\n- light\n- no scent",
            "cards": [
                {"product_id": product.id, "deal_item_id": item.id, "note": "Half price today"}
            ],
        },
    )
    content.publish_post(session=session, user=creator, post_id=post.id)
    shopper = make_user(session, Role.SHOPPER, name="Li Na")
    session.flush()
    return World(
        operator=operator,
        merchant=merchant,
        creator=creator,
        shopper=shopper,
        merchant_id=shop.id,
        product_id=product.id,
        sku_id=sku.id,
        festival_id=festival.id,
        deal_item_id=item.id,
        post_id=post.id,
        handle=handle,
    )


def add_history(session: Session, w: World, *, days: int, orders_count: int, seed: int = 7) -> None:
    """Clicks on the creator's post link and paid orders spread over the last ``days`` (the
    services take the time), then the analytics rollups, so charts have history."""
    import random

    from juxing.analytics import rollups
    from juxing.commission import links
    from juxing.deals import orders

    rng = random.Random(seed)
    now = utcnow()
    link = links.link_for(
        session,
        secret_key="x" * 32,
        creator_id=w.creator.id,
        target_type="post",
        target_id=w.post_id,
    )
    ctx = orders.Buying(redis_client=None)
    shoppers = [make_user(session, Role.SHOPPER) for _ in range((orders_count + 1) // 2)]
    for i in range(orders_count):
        # A third in the last three hours (the operator's live board), the rest over the days.
        recent = i % 3 == 0
        at = now - timedelta(minutes=rng.randint(5, 170 if recent else days * 24 * 60 - 10))
        shopper = shoppers[i // 2]
        for k in range(3):  # most clicks do not convert
            links.record_click(
                session,
                link=link,
                secret_key="x" * 32,
                shopper_id=shopper.id if k == 0 else None,
                visitor_id=None,
                ip=f"10.{k}.{i}.1",
                fingerprint=f"device-{i}-{k}",
                referrer=None,
                at=at - timedelta(minutes=3 + 40 * k),
            )
        order = orders.reserve(
            session=session, ctx=ctx, shopper=shopper, deal_item_id=w.deal_item_id, now=at
        )
        orders.mark_paid(session=session, ctx=ctx, order_id=order.id, now=at + timedelta(minutes=1))
    session.flush()
    rollups.refresh(session, start=now - timedelta(days=days + 1), end=now)
    session.flush()
