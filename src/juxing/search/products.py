"""Products in the search index: title, description, category, price now, deal window."""

from __future__ import annotations

from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import Session

from juxing.kit.time import utcnow
from juxing.models.catalog import Category, Product, Sku
from juxing.models.deals import Campaign, DealItem
from juxing.models.search import SearchDocument
from juxing.search.service import DocumentKind, index_document, remove_document

ON_SALE_CAMPAIGNS = ("scheduled", "live")


def index_product(*, session: Session, product: Product) -> None:
    """Index one product (or drop it when it is not active)."""
    if product.status != "active":
        remove_document(session=session, kind=DocumentKind.PRODUCT, ref_id=product.id)
        return
    now = utcnow()
    list_price, currency = session.execute(
        select(func.min(Sku.list_price_minor), func.min(Sku.currency)).where(
            Sku.product_id == product.id
        )
    ).one()
    deal = session.scalar(
        select(DealItem)
        .join(Campaign, Campaign.id == DealItem.campaign_id)
        .where(
            DealItem.product_id == product.id,
            Campaign.status.in_(ON_SALE_CAMPAIGNS),
            DealItem.ends_at > now,
        )
        .order_by(DealItem.starts_at, DealItem.deal_price_minor)
        .limit(1)
    )
    category = session.get(Category, product.category_id) if product.category_id else None
    live_deal = deal is not None and deal.starts_at <= now
    index_document(
        session=session,
        kind=DocumentKind.PRODUCT,
        ref_id=product.id,
        title=product.title,
        texts=(product.description, category.name if category else None,
               category.name_zh if category else None),
        snippet=product.description,
        category_id=product.category_id,
        price_minor=deal.deal_price_minor if live_deal and deal else list_price,
        currency=(deal.currency if deal else currency),
        deal_starts_at=deal.starts_at if deal else None,
        deal_ends_at=deal.ends_at if deal else None,
    )  # fmt: skip


def sweep_products(*, session: Session, limit: int = 500) -> int:
    """Index products that are new or changed since their document, and refresh documents
    whose deal window has passed. Returns how many were indexed."""
    now = utcnow()
    doc = SearchDocument
    stale = session.scalars(
        select(Product)
        .outerjoin(doc, and_(doc.kind == DocumentKind.PRODUCT.value, doc.ref_id == Product.id))
        .where(
            or_(
                doc.id.is_(None),
                Product.updated_at > doc.updated_at,
                and_(doc.deal_ends_at.is_not(None), doc.deal_ends_at <= now),
                and_(doc.deal_starts_at.is_not(None), doc.deal_starts_at <= now,
                     doc.updated_at < doc.deal_starts_at),
            )
        )
        .order_by(Product.id)
        .limit(limit)
    ).all()  # fmt: skip
    for product in stale:
        index_product(session=session, product=product)
    return len(stale)
