"""Test data for the content suites: creators, and products on deal (arranged directly)."""

from __future__ import annotations

import itertools
from datetime import timedelta

from sqlalchemy.orm import Session

from factories import bearer, make_user
from juxing.content import service
from juxing.kit.time import utcnow
from juxing.models.accounts import Role, User
from juxing.models.catalog import Category, Merchant, Product, Sku
from juxing.models.deals import Campaign, DealItem, Festival

_seq = itertools.count(1)


def make_creator(
    session: Session, *, level: int = 1, handle: str | None = None
) -> tuple[User, dict[str, str]]:
    """A shopper who applied and was approved (through the service)."""
    user = make_user(session, Role.SHOPPER)
    operator = make_user(session, Role.OPERATOR)
    app = service.apply_as_creator(
        session=session, user=user, handle=handle or f"creator{next(_seq)}", bio="", pitch=""
    )
    service.approve_application(
        session=session, operator=operator, application_id=app.id, level=level
    )
    session.flush()
    return user, bearer(session, user)


def make_merchant(session: Session) -> tuple[User, Merchant]:
    owner = make_user(session, Role.MERCHANT)
    merchant = Merchant(owner_id=owner.id, name=f"Shop {next(_seq)}")
    session.add(merchant)
    session.flush()
    return owner, merchant


def make_category(session: Session, name: str = "Beauty") -> Category:
    category = Category(name=f"{name} {next(_seq)}", name_zh="美妆")
    session.add(category)
    session.flush()
    return category


def make_product(
    session: Session,
    *,
    merchant: Merchant | None = None,
    category: Category | None = None,
    title: str = "Sunscreen SPF50 防晒霜",
    list_price_minor: int = 12900,
) -> tuple[Product, Sku]:
    if merchant is None:
        _owner, merchant = make_merchant(session)
    product = Product(
        merchant_id=merchant.id,
        category_id=category.id if category else None,
        title=title,
        description="",
    )
    session.add(product)
    session.flush()
    sku = Sku(product_id=product.id, name="50ml", list_price_minor=list_price_minor, stock=100)
    session.add(sku)
    session.flush()
    return product, sku


def make_deal_item(
    session: Session,
    *,
    product: Product,
    sku: Sku,
    deal_price_minor: int = 8900,
    stock: int = 10,
    starts_in: timedelta = timedelta(hours=-1),
    lasts: timedelta = timedelta(hours=4),
    campaign_status: str = "live",
) -> DealItem:
    now = utcnow()
    festival = Festival(
        name=f"Festival {next(_seq)}",
        slug=f"festival-{next(_seq)}",
        starts_at=now - timedelta(days=1),
        ends_at=now + timedelta(days=7),
    )
    session.add(festival)
    session.flush()
    campaign = Campaign(
        festival_id=festival.id,
        merchant_id=product.merchant_id,
        title="Campaign",
        status=campaign_status,
    )
    session.add(campaign)
    session.flush()
    item = DealItem(
        campaign_id=campaign.id,
        sku_id=sku.id,
        product_id=product.id,
        merchant_id=product.merchant_id,
        deal_price_minor=deal_price_minor,
        currency="CNY",
        deal_stock=stock,
        available=stock,
        reserved=0,
        sold=0,
        per_user_limit=1,
        starts_at=now + starts_in,
        ends_at=now + starts_in + lasts,
    )
    session.add(item)
    session.flush()
    return item
