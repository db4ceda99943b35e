"""Fixtures for the deals tests: a live festival with one deal item, built through the
services (``world``), and the same committed for real for concurrency tests."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy.orm import Session

from factories import bearer
from juxing.catalog import service as catalog
from juxing.deals import service
from juxing.kit.time import utcnow
from juxing.models.accounts import Role, User, UserRole

_seq = itertools.count(1)
_HASH: list[str] = []


def make_user(session: Session, *roles: Role) -> User:
    """A user without the cost of hashing a password each time (hashed once per run)."""
    from juxing.kit.security import hash_password

    if not _HASH:
        _HASH.append(hash_password("correct horse battery"))
    n = next(_seq)
    now = utcnow()
    user = User(
        email=f"deals{n}-{uuid.uuid4().hex[:8]}@example.test",
        display_name=f"Buyer {n}",
        password_hash=_HASH[0],
        locale="en",
        is_active=True,
        created_at=now,
        updated_at=now,
    )
    user.roles = [UserRole(role=r.value, granted_at=now) for r in (roles or (Role.SHOPPER,))]
    session.add(user)
    session.flush()
    return user


@dataclass
class World:
    operator: User
    merchant_user: User
    merchant_id: int
    product_id: int
    sku_id: int
    festival_id: int
    campaign_id: int
    deal_item_id: int
    headers: dict[str, dict[str, str]] = field(default_factory=dict)


def build_world(
    session: Session,
    *,
    stock: int = 10,
    per_user_limit: int = 2,
    list_price: int = 10_000,
    deal_price: int = 5_900,
    sku_stock: int | None = None,
    group_size: int | None = None,
    group_window_s: int | None = None,
    backend: str = "sql",
    starts_in_s: int = -60,
    restock_on_refund: bool = True,
    with_headers: bool = True,
) -> World:
    now = utcnow()
    operator = make_user(session, Role.OPERATOR)
    merchant_user = make_user(session, Role.MERCHANT)
    merchant = catalog.create_merchant(
        session=session, owner=merchant_user, name=f"Shop {merchant_user.id}"
    )
    product = catalog.create_product(
        session=session,
        user=merchant_user,
        merchant_id=merchant.id,
        title="Star Lamp 星光灯",
        skus=[
            {
                "name": "Warm white",
                "list_price_minor": list_price,
                "currency": "CNY",
                "stock": sku_stock if sku_stock is not None else stock + 100,
            }
        ],
    )
    sku = product.skus[0]
    festival = service.create_festival(
        session=session,
        user=operator,
        name=f"Star Festival {operator.id}",
        name_zh="聚星节",
        starts_at=now - timedelta(hours=1),
        ends_at=now + timedelta(days=2),
        theme="stars",
    )
    campaign = service.create_campaign(
        session=session,
        user=merchant_user,
        festival_id=festival.id,
        merchant_id=merchant.id,
        title="Lamps for the festival",
    )
    item = service.add_deal_item(
        session=session,
        user=merchant_user,
        campaign_id=campaign.id,
        sku_id=sku.id,
        deal_price_minor=deal_price,
        deal_stock=stock,
        per_user_limit=per_user_limit,
        starts_at=now + timedelta(seconds=starts_in_s),
        ends_at=now + timedelta(hours=6),
        group_size=group_size,
        group_window_s=group_window_s,
        restock_on_refund=restock_on_refund,
        commission_rate_bp=800,
    )
    service.submit_campaign(session=session, user=merchant_user, campaign_id=campaign.id)
    service.approve_campaign(
        session=session, user=operator, campaign_id=campaign.id, stock_backend=backend
    )
    session.flush()
    world = World(
        operator=operator,
        merchant_user=merchant_user,
        merchant_id=merchant.id,
        product_id=product.id,
        sku_id=sku.id,
        festival_id=festival.id,
        campaign_id=campaign.id,
        deal_item_id=item.id,
    )
    if with_headers:
        world.headers["operator"] = bearer(session, operator)
        world.headers["merchant"] = bearer(session, merchant_user)
    return world


@pytest.fixture
def world(session: Session) -> World:
    return build_world(session)


@pytest.fixture
def world_factory(session: Session) -> Callable[..., World]:
    def make(**kwargs: Any) -> World:
        return build_world(session, **kwargs)

    return make


@pytest.fixture
def shopper(session: Session) -> tuple[User, dict[str, str]]:
    user = make_user(session, Role.SHOPPER)
    return user, bearer(session, user)


@pytest.fixture
def make_shopper(session: Session) -> Callable[[], tuple[User, dict[str, str]]]:
    def make() -> tuple[User, dict[str, str]]:
        user = make_user(session, Role.SHOPPER)
        return user, bearer(session, user)

    return make


@pytest.fixture
def builders() -> tuple[Callable[..., World], Callable[..., User]]:
    """(build_world, make_user) for tests that open their own sessions."""
    return build_world, make_user
