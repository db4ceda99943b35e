"""Catalog business logic: merchants, categories, products, SKUs, images."""

from __future__ import annotations

import secrets
from collections.abc import Sequence

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload

from juxing.catalog.storage import EXTENSIONS, ImageStorage, inspect_image
from juxing.kit.auth import ensure_owner
from juxing.kit.errors import Conflict, NotFound, Unprocessable
from juxing.kit.time import utcnow
from juxing.models.accounts import Role, User
from juxing.models.catalog import Category, Merchant, Product, ProductImage, Sku
from juxing.models.deals import Campaign, CampaignStatus, DealItem


def create_merchant(
    *, session: Session, owner: User, name: str, description: str = "", tier: str = "new"
) -> Merchant:
    """Open a shop owned by ``owner``."""
    if session.scalar(select(Merchant.id).where(Merchant.name == name)) is not None:
        raise Conflict(
            "A merchant with this name exists.",
            code="merchant_name_taken",
            details={"field": "body.name"},
        )
    merchant = Merchant(owner_id=owner.id, name=name, description=description, tier=tier)
    session.add(merchant)
    session.flush()
    return merchant


def get_merchant(*, session: Session, merchant_id: int) -> Merchant:
    """A merchant by id, or 404."""
    merchant = session.get(Merchant, merchant_id)
    if merchant is None:
        raise NotFound("No such merchant.")
    return merchant


def owned_merchant(*, session: Session, merchant_id: int, user: User) -> Merchant:
    """A merchant the user owns (operators may act on any), else 404."""
    merchant = get_merchant(session=session, merchant_id=merchant_id)
    ensure_owner(merchant.owner_id, user, what="merchant")
    return merchant


def list_merchants(
    *, session: Session, owner_id: int | None = None, limit: int = 50, offset: int = 0
) -> tuple[list[Merchant], int]:
    """Merchants, optionally those of one owner."""
    query = select(Merchant)
    if owner_id is not None:
        query = query.where(Merchant.owner_id == owner_id)
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = session.scalars(query.order_by(Merchant.id).limit(limit).offset(offset)).all()
    return list(rows), total


def set_tier(*, session: Session, merchant_id: int, tier: str) -> Merchant:
    """Operators set a merchant's tier (new, growing, key_account)."""
    merchant = get_merchant(session=session, merchant_id=merchant_id)
    merchant.tier = tier
    session.flush()
    return merchant


def create_category(
    *, session: Session, name: str, name_zh: str = "", parent_id: int | None = None
) -> Category:
    """Add a category (operators)."""
    if parent_id is not None and session.get(Category, parent_id) is None:
        raise Unprocessable(
            "No such parent category.",
            code="category_not_found",
            details={"field": "body.parent_id"},
        )
    if session.scalar(select(Category.id).where(Category.name == name)) is not None:
        raise Conflict("A category with this name exists.", code="category_name_taken")
    category = Category(name=name, name_zh=name_zh, parent_id=parent_id)
    session.add(category)
    session.flush()
    return category


def list_categories(*, session: Session) -> list[Category]:
    """Every category."""
    return list(session.scalars(select(Category).order_by(Category.id)).all())


def create_product(
    *,
    session: Session,
    user: User,
    merchant_id: int,
    title: str,
    skus: Sequence[dict[str, object]],
    category_id: int | None = None,
    description: str = "",
    status: str = "active",
) -> Product:
    """Create a product with its SKUs for a merchant the user owns."""
    owned_merchant(session=session, merchant_id=merchant_id, user=user)
    if category_id is not None and session.get(Category, category_id) is None:
        raise Unprocessable(
            "No such category.", code="category_not_found", details={"field": "body.category_id"}
        )
    product = Product(
        merchant_id=merchant_id,
        category_id=category_id,
        title=title,
        description=description,
        status=status,
    )
    session.add(product)
    session.flush()
    for sku in skus:
        session.add(Sku(product_id=product.id, **sku))
    session.flush()
    return get_product(session=session, product_id=product.id)


def get_product(*, session: Session, product_id: int) -> Product:
    """A product with its SKUs and images, or 404."""
    product = session.scalar(
        select(Product)
        .where(Product.id == product_id)
        .options(selectinload(Product.skus), selectinload(Product.images))
        .execution_options(populate_existing=True)
    )
    if product is None:
        raise NotFound("No such product.")
    return product


def owned_product(*, session: Session, product_id: int, user: User) -> Product:
    """A product of a merchant the user owns, else 404."""
    product = get_product(session=session, product_id=product_id)
    merchant = get_merchant(session=session, merchant_id=product.merchant_id)
    ensure_owner(merchant.owner_id, user, what="product")
    return product


def list_products(
    *,
    session: Session,
    merchant_id: int | None = None,
    category_id: int | None = None,
    q: str | None = None,
    include_hidden: bool = False,
    limit: int = 50,
    offset: int = 0,
) -> tuple[list[Product], int]:
    """Products, filtered; only active ones unless ``include_hidden``."""
    query = select(Product)
    if merchant_id is not None:
        query = query.where(Product.merchant_id == merchant_id)
    if category_id is not None:
        query = query.where(Product.category_id == category_id)
    if q:
        query = query.where(Product.title.ilike(f"%{q}%"))
    if not include_hidden:
        query = query.where(Product.status == "active")
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = session.scalars(
        query.options(selectinload(Product.skus), selectinload(Product.images))
        .order_by(Product.id.desc())
        .limit(limit)
        .offset(offset)
    ).all()
    return list(rows), total


def update_product(*, session: Session, user: User, product_id: int, **changes: object) -> Product:
    """Change a product's title, description, category or status."""
    product = owned_product(session=session, product_id=product_id, user=user)
    category_id = changes.get("category_id")
    if category_id is not None and session.get(Category, category_id) is None:
        raise Unprocessable(
            "No such category.", code="category_not_found", details={"field": "body.category_id"}
        )
    for name, value in changes.items():
        setattr(product, name, value)
    session.flush()
    return get_product(session=session, product_id=product_id)


def add_sku(*, session: Session, user: User, product_id: int, **fields: object) -> Sku:
    """Add a variant to a product."""
    owned_product(session=session, product_id=product_id, user=user)
    sku = Sku(product_id=product_id, **fields)
    session.add(sku)
    session.flush()
    return sku


def update_sku(*, session: Session, user: User, sku_id: int, **changes: object) -> Sku:
    """Change a SKU's name, list price, stock or status."""
    sku = session.get(Sku, sku_id)
    if sku is None:
        raise NotFound("No such SKU.")
    owned_product(session=session, product_id=sku.product_id, user=user)
    for name, value in changes.items():
        setattr(sku, name, value)
    session.flush()
    return sku


def add_image(
    *,
    session: Session,
    storage: ImageStorage,
    user: User,
    product_id: int,
    data: bytes,
    max_bytes: int,
) -> ProductImage:
    """Check an uploaded image (type, size) and store it for a product."""
    product = owned_product(session=session, product_id=product_id, user=user)
    content_type, width, height = inspect_image(data, max_bytes=max_bytes)
    key = f"products/{product.id}/{secrets.token_hex(12)}.{EXTENSIONS[content_type]}"
    storage.put(key, data, content_type)
    image = ProductImage(
        product_id=product.id,
        storage_key=key,
        content_type=content_type,
        size_bytes=len(data),
        width=width,
        height=height,
        position=len(product.images),
    )
    session.add(image)
    try:
        session.flush()
    except IntegrityError:  # pragma: no cover - 96 random bits
        storage.delete(key)
        raise
    return image


def image_by_key(*, session: Session, key: str) -> ProductImage:
    """An image's record by its storage key, or 404."""
    image = session.scalar(select(ProductImage).where(ProductImage.storage_key == key))
    if image is None:
        raise NotFound("No such image.")
    return image


def similar_on_sale(
    *, session: Session, product_id: int, limit: int = 4
) -> list[dict[str, object]]:
    """Substitutes for a sold-out or ended deal: products of the same category with a live
    deal item that still has stock (then any active product of the category).

    Returns ``[{"product_id", "title", "deal_item_id" or None}]``.
    """
    product = session.get(Product, product_id)
    if product is None:
        raise NotFound("No such product.")
    now = utcnow()
    same_category = (
        Product.category_id == product.category_id
        if product.category_id is not None
        else Product.merchant_id == product.merchant_id
    )
    live = session.execute(
        select(Product.id, Product.title, func.min(DealItem.id))
        .join(DealItem, DealItem.product_id == Product.id)
        .join(Campaign, Campaign.id == DealItem.campaign_id)
        .where(
            same_category,
            Product.id != product_id,
            Product.status == "active",
            Campaign.status.in_([CampaignStatus.SCHEDULED.value, CampaignStatus.LIVE.value]),
            DealItem.starts_at <= now,
            DealItem.ends_at > now,
            DealItem.available > 0,
        )
        .group_by(Product.id, Product.title)
        .order_by(func.sum(DealItem.sold).desc(), Product.id)
        .limit(limit)
    ).all()
    result: list[dict[str, object]] = [
        {"product_id": pid, "title": title, "deal_item_id": did} for pid, title, did in live
    ]
    if len(result) < limit:
        seen = {product_id, *(r["product_id"] for r in result)}
        rest = session.execute(
            select(Product.id, Product.title)
            .where(same_category, Product.status == "active", Product.id.not_in(seen))
            .order_by(Product.id.desc())
            .limit(limit - len(result))
        ).all()
        result += [{"product_id": pid, "title": title, "deal_item_id": None} for pid, title in rest]
    return result


def is_operator(user: User) -> bool:
    return user.has_role(Role.OPERATOR)
