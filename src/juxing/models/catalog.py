"""Catalog: merchants, categories, products, their SKUs (variants) and images."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from juxing.kit.time import utcnow
from juxing.models.base import Base, BigId, IdMixin, TimestampMixin


class MerchantTier(enum.StrEnum):
    NEW = "new"
    GROWING = "growing"
    KEY_ACCOUNT = "key_account"


class ProductStatus(enum.StrEnum):
    DRAFT = "draft"
    ACTIVE = "active"
    ARCHIVED = "archived"


class SkuStatus(enum.StrEnum):
    ACTIVE = "active"
    INACTIVE = "inactive"


class Merchant(IdMixin, Base):
    """A shop, owned by a user with the merchant role."""

    __tablename__ = "merchants"

    owner_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("users.id", ondelete="RESTRICT"), index=True
    )
    name: Mapped[str] = mapped_column(String(120), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")
    tier: Mapped[str] = mapped_column(String(16), default=MerchantTier.NEW.value)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Category(IdMixin, Base):
    """A product category; ``parent_id`` makes a tree."""

    __tablename__ = "categories"

    name: Mapped[str] = mapped_column(String(80), unique=True)
    name_zh: Mapped[str] = mapped_column(String(80), default="")
    parent_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("categories.id", ondelete="SET NULL"), index=True
    )


class Product(IdMixin, TimestampMixin, Base):
    __tablename__ = "products"

    merchant_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("merchants.id", ondelete="CASCADE"), index=True
    )
    category_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("categories.id", ondelete="SET NULL"), index=True
    )
    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str] = mapped_column(String(16), default=ProductStatus.ACTIVE.value, index=True)

    skus: Mapped[list[Sku]] = relationship(
        back_populates="product", lazy="raise", order_by="Sku.id"
    )
    images: Mapped[list[ProductImage]] = relationship(
        back_populates="product", lazy="raise", order_by="ProductImage.position"
    )


class Sku(IdMixin, Base):
    """A variant of a product with its own list price and stock."""

    __tablename__ = "skus"
    __table_args__ = (
        CheckConstraint("stock >= 0", name="stock_not_negative"),
        CheckConstraint("list_price_minor > 0", name="price_positive"),
    )

    product_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("products.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(120))
    list_price_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3), default="CNY")
    stock: Mapped[int] = mapped_column(Integer, default=0)
    status: Mapped[str] = mapped_column(String(16), default=SkuStatus.ACTIVE.value)

    product: Mapped[Product] = relationship(back_populates="skus", lazy="raise")


class ProductImage(IdMixin, Base):
    """An uploaded image, kept in the configured storage under ``storage_key``."""

    __tablename__ = "product_images"

    product_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("products.id", ondelete="CASCADE"), index=True
    )
    storage_key: Mapped[str] = mapped_column(String(255), unique=True)
    content_type: Mapped[str] = mapped_column(String(40))
    size_bytes: Mapped[int] = mapped_column(Integer)
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    position: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    product: Mapped[Product] = relationship(back_populates="images", lazy="raise")
