"""HTTP endpoints of the catalog: merchants, categories, products, SKUs, images."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Query, Request, UploadFile
from fastapi.responses import Response

from juxing.catalog import service
from juxing.catalog.schemas import (
    CategoryCreate,
    CategoryOut,
    ImageOut,
    MerchantCreate,
    MerchantOut,
    MerchantTierUpdate,
    ProductCreate,
    ProductOut,
    ProductUpdate,
    SkuCreate,
    SkuOut,
    SkuUpdate,
)
from juxing.catalog.storage import ImageStorage, LocalImageStorage, S3ImageStorage
from juxing.deals.settings import get_deals_settings
from juxing.kit.auth import CurrentUser, MerchantOrOperator, MerchantUser, OperatorUser
from juxing.kit.db import DbSession
from juxing.kit.errors import ServiceUnavailable
from juxing.kit.schemas import Limit, Offset, Page
from juxing.models.catalog import Merchant, Product, ProductImage, Sku

router = APIRouter(tags=["catalog"])


def image_storage(request: Request) -> ImageStorage:
    """The configured image store (built once per app)."""
    storage: ImageStorage | None = getattr(request.app.state, "image_storage", None)
    if storage is None:
        ds = get_deals_settings()
        if ds.image_storage == "s3":
            if not (ds.s3_endpoint and ds.s3_bucket and ds.s3_access_key and ds.s3_secret_key):
                raise ServiceUnavailable("S3 image storage is not configured.")
            storage = S3ImageStorage(
                endpoint=ds.s3_endpoint,
                bucket=ds.s3_bucket,
                access_key=ds.s3_access_key,
                secret_key=ds.s3_secret_key,
                region=ds.s3_region,
            )
        else:
            storage = LocalImageStorage(request.app.state.settings.data_dir / "uploads")
        request.app.state.image_storage = storage
    return storage


def merchant_out(m: Merchant) -> MerchantOut:
    return MerchantOut(
        id=m.id,
        owner_id=m.owner_id,
        name=m.name,
        description=m.description,
        tier=m.tier,
        created_at=m.created_at,
    )


def sku_out(s: Sku) -> SkuOut:
    return SkuOut(
        id=s.id,
        product_id=s.product_id,
        name=s.name,
        list_price_minor=s.list_price_minor,
        currency=s.currency,
        stock=s.stock,
        status=s.status,
    )


def image_out(i: ProductImage) -> ImageOut:
    return ImageOut(
        id=i.id,
        url=f"/api/v1/images/{i.storage_key}",
        content_type=i.content_type,
        size_bytes=i.size_bytes,
        width=i.width,
        height=i.height,
        position=i.position,
    )


def product_out(p: Product) -> ProductOut:
    return ProductOut(
        id=p.id,
        merchant_id=p.merchant_id,
        category_id=p.category_id,
        title=p.title,
        description=p.description,
        status=p.status,
        created_at=p.created_at,
        skus=[sku_out(s) for s in p.skus],
        images=[image_out(i) for i in p.images],
    )


@router.post("/merchants", status_code=201, response_model=MerchantOut)
def create_merchant(body: MerchantCreate, user: MerchantUser, session: DbSession) -> MerchantOut:
    """Open a shop (merchants)."""
    return merchant_out(
        service.create_merchant(
            session=session, owner=user, name=body.name, description=body.description
        )
    )


@router.get("/merchants", response_model=Page[MerchantOut])
def list_merchants(
    session: DbSession,
    limit: Limit = 50,
    offset: Offset = 0,
    owner_id: Annotated[int | None, Query()] = None,
) -> Page[MerchantOut]:
    """Shops (public)."""
    rows, total = service.list_merchants(
        session=session, owner_id=owner_id, limit=limit, offset=offset
    )
    return Page(items=[merchant_out(m) for m in rows], total=total, limit=limit, offset=offset)


@router.get("/merchants/{merchant_id}", response_model=MerchantOut)
def get_merchant(merchant_id: int, session: DbSession) -> MerchantOut:
    """One shop (public)."""
    return merchant_out(service.get_merchant(session=session, merchant_id=merchant_id))


@router.put("/merchants/{merchant_id}/tier", response_model=MerchantOut)
def set_tier(
    merchant_id: int, body: MerchantTierUpdate, _user: OperatorUser, session: DbSession
) -> MerchantOut:
    """Set a merchant's tier (operators)."""
    return merchant_out(service.set_tier(session=session, merchant_id=merchant_id, tier=body.tier))


@router.get("/categories", response_model=list[CategoryOut])
def list_categories(session: DbSession) -> list[CategoryOut]:
    """Every category (public)."""
    return [
        CategoryOut(id=c.id, name=c.name, name_zh=c.name_zh, parent_id=c.parent_id)
        for c in service.list_categories(session=session)
    ]


@router.post("/categories", status_code=201, response_model=CategoryOut)
def create_category(body: CategoryCreate, _user: OperatorUser, session: DbSession) -> CategoryOut:
    """Add a category (operators)."""
    c = service.create_category(
        session=session, name=body.name, name_zh=body.name_zh, parent_id=body.parent_id
    )
    return CategoryOut(id=c.id, name=c.name, name_zh=c.name_zh, parent_id=c.parent_id)


@router.post("/products", status_code=201, response_model=ProductOut)
def create_product(body: ProductCreate, user: MerchantOrOperator, session: DbSession) -> ProductOut:
    """Create a product with its SKUs (the merchant's owner or an operator)."""
    product = service.create_product(
        session=session,
        user=user,
        merchant_id=body.merchant_id,
        title=body.title,
        description=body.description,
        category_id=body.category_id,
        status=body.status,
        skus=[s.model_dump() for s in body.skus],
    )
    return product_out(product)


@router.get("/products", response_model=Page[ProductOut])
def list_products(
    session: DbSession,
    limit: Limit = 50,
    offset: Offset = 0,
    merchant_id: Annotated[int | None, Query()] = None,
    category_id: Annotated[int | None, Query()] = None,
    q: Annotated[str | None, Query(max_length=100)] = None,
) -> Page[ProductOut]:
    """Active products (public)."""
    rows, total = service.list_products(
        session=session,
        merchant_id=merchant_id,
        category_id=category_id,
        q=q,
        limit=limit,
        offset=offset,
    )
    return Page(items=[product_out(p) for p in rows], total=total, limit=limit, offset=offset)


@router.get("/products/{product_id}", response_model=ProductOut)
def get_product(product_id: int, session: DbSession) -> ProductOut:
    """One product with SKUs and images (public)."""
    return product_out(service.get_product(session=session, product_id=product_id))


@router.get("/products/{product_id}/similar")
def similar(
    product_id: int, session: DbSession, limit: Annotated[int, Query(ge=1, le=20)] = 4
) -> list[dict[str, object]]:
    """Substitutes on sale now, for a sold-out or ended deal (public)."""
    return service.similar_on_sale(session=session, product_id=product_id, limit=limit)


@router.patch("/products/{product_id}", response_model=ProductOut)
def update_product(
    product_id: int, body: ProductUpdate, user: MerchantOrOperator, session: DbSession
) -> ProductOut:
    """Change a product (its merchant's owner or an operator)."""
    return product_out(
        service.update_product(
            session=session, user=user, product_id=product_id, **body.model_dump(exclude_unset=True)
        )
    )


@router.post("/products/{product_id}/skus", status_code=201, response_model=SkuOut)
def add_sku(
    product_id: int, body: SkuCreate, user: MerchantOrOperator, session: DbSession
) -> SkuOut:
    """Add a variant (its merchant's owner or an operator)."""
    return sku_out(
        service.add_sku(session=session, user=user, product_id=product_id, **body.model_dump())
    )


@router.patch("/skus/{sku_id}", response_model=SkuOut)
def update_sku(
    sku_id: int, body: SkuUpdate, user: MerchantOrOperator, session: DbSession
) -> SkuOut:
    """Change a SKU's price, stock or status (its merchant's owner or an operator)."""
    return sku_out(
        service.update_sku(
            session=session, user=user, sku_id=sku_id, **body.model_dump(exclude_unset=True)
        )
    )


@router.post("/products/{product_id}/images", status_code=201, response_model=ImageOut)
async def upload_image(
    product_id: int,
    request: Request,
    user: CurrentUser,
    session: DbSession,
    file: Annotated[UploadFile, File(description="JPEG, PNG or WebP")],
) -> ImageOut:
    """Upload a product image (checked for type and size)."""
    max_bytes = request.app.state.settings.upload_max_bytes
    data = await file.read(max_bytes + 1)
    image = service.add_image(
        session=session,
        storage=image_storage(request),
        user=user,
        product_id=product_id,
        data=data,
        max_bytes=max_bytes,
    )
    return image_out(image)


@router.get("/images/{key:path}", include_in_schema=False)
def get_image(key: str, request: Request, session: DbSession) -> Response:
    """Serve a stored image (public)."""
    image = service.image_by_key(session=session, key=key)
    data = image_storage(request).get(image.storage_key)
    return Response(
        data,
        media_type=image.content_type,
        headers={"Cache-Control": "public, max-age=86400", "X-Content-Type-Options": "nosniff"},
    )
