"""Request and response models of the catalog."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, Field

from juxing.kit.schemas import StrictModel

Currency = Annotated[str, Field(pattern=r"^[A-Z]{3}$", description="ISO 4217 code")]
Tier = Literal["new", "growing", "key_account"]


class MerchantCreate(StrictModel):
    name: Annotated[str, Field(min_length=2, max_length=120)]
    description: Annotated[str, Field(max_length=2000)] = ""


class MerchantTierUpdate(StrictModel):
    tier: Tier


class MerchantOut(BaseModel):
    id: int
    owner_id: int
    name: str
    description: str
    tier: str
    created_at: datetime


class CategoryCreate(StrictModel):
    name: Annotated[str, Field(min_length=1, max_length=80)]
    name_zh: Annotated[str, Field(max_length=80)] = ""
    parent_id: int | None = None


class CategoryOut(BaseModel):
    id: int
    name: str
    name_zh: str
    parent_id: int | None


class SkuCreate(StrictModel):
    name: Annotated[str, Field(min_length=1, max_length=120)]
    list_price_minor: Annotated[int, Field(gt=0, le=10**12)]
    currency: Currency = "CNY"
    stock: Annotated[int, Field(ge=0, le=10**9)] = 0


class SkuUpdate(StrictModel):
    name: Annotated[str, Field(min_length=1, max_length=120)] | None = None
    list_price_minor: Annotated[int, Field(gt=0, le=10**12)] | None = None
    stock: Annotated[int, Field(ge=0, le=10**9)] | None = None
    status: Literal["active", "inactive"] | None = None


class SkuOut(BaseModel):
    id: int
    product_id: int
    name: str
    list_price_minor: int
    currency: str
    stock: int
    status: str


class ProductCreate(StrictModel):
    merchant_id: int
    category_id: int | None = None
    title: Annotated[str, Field(min_length=2, max_length=200)]
    description: Annotated[str, Field(max_length=20000)] = ""
    status: Literal["draft", "active"] = "active"
    skus: Annotated[list[SkuCreate], Field(min_length=1, max_length=100)]


class ProductUpdate(StrictModel):
    category_id: int | None = None
    title: Annotated[str, Field(min_length=2, max_length=200)] | None = None
    description: Annotated[str, Field(max_length=20000)] | None = None
    status: Literal["draft", "active", "archived"] | None = None


class ImageOut(BaseModel):
    id: int
    url: str
    content_type: str
    size_bytes: int
    width: int
    height: int
    position: int


class ProductOut(BaseModel):
    id: int
    merchant_id: int
    category_id: int | None
    title: str
    description: str
    status: str
    created_at: datetime
    skus: list[SkuOut]
    images: list[ImageOut]
