"""Feed test fixtures: a small world of merchants of each tier, products, creators, posts."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from datetime import timedelta

import pytest
from sqlalchemy.orm import Session

from factories import bearer
from juxing.kit.time import utcnow
from juxing.models.accounts import Role, User, UserRole
from juxing.models.catalog import Category, Merchant, Product, Sku
from juxing.models.content import CreatorProfile, Follow, Post

_seq = itertools.count(1)


@dataclass
class World:
    merchants: list[Merchant] = field(default_factory=list)
    products: list[Product] = field(default_factory=list)
    creators: list[User] = field(default_factory=list)
    posts: list[Post] = field(default_factory=list)
    categories: list[Category] = field(default_factory=list)


def fast_user(session: Session, *roles: Role) -> User:
    """A user without the (deliberately slow) password hashing: feed tests never sign in."""
    n = next(_seq)
    user = User(email=f"feed{n}@example.test", display_name=f"Feed user {n}", password_hash="-")
    session.add(user)
    session.flush()
    for role in roles or (Role.SHOPPER,):
        session.add(UserRole(user_id=user.id, role=role.value, granted_at=utcnow()))
    session.flush()
    return user


def shopper_with_auth(session: Session, *roles: Role) -> tuple[User, dict[str, str]]:
    user = fast_user(session, *roles)
    return user, bearer(session, user)


def build_world(
    session: Session,
    *,
    big_merchants: int = 2,
    small_merchants: int = 6,
    products_per_merchant: int = 10,
    creators: int = 3,
    posts_per_creator: int = 4,
) -> World:
    """Big key-account merchants and small new shops, each with products; creators with
    posts (the first creator is new, the others established)."""
    w = World()
    n = next(_seq)
    for c in range(4):
        cat = Category(name=f"cat-{n}-{c}")
        session.add(cat)
        w.categories.append(cat)
    session.flush()
    now = utcnow()
    for m in range(big_merchants + small_merchants):
        owner = fast_user(session, Role.MERCHANT)
        tier = "key_account" if m < big_merchants else "new"
        merchant = Merchant(owner_id=owner.id, name=f"shop-{n}-{m}", tier=tier)
        session.add(merchant)
        session.flush()
        w.merchants.append(merchant)
        for p in range(products_per_merchant):
            product = Product(
                merchant_id=merchant.id,
                category_id=w.categories[(m + p) % 4].id,
                title=f"{merchant.name} item {p}",
                created_at=now - timedelta(days=30 + p),
            )
            session.add(product)
            session.flush()
            session.add(Sku(product_id=product.id, name="std", list_price_minor=1000 + p, stock=5))
            w.products.append(product)
    for c in range(creators):
        user = fast_user(session, Role.CREATOR, Role.SHOPPER)
        session.add(
            CreatorProfile(
                user_id=user.id,
                handle=f"cr{n}x{c}",
                display_name=f"Creator {n}-{c}",
                level=1 if c == 0 else 4,
                approved_at=now - timedelta(days=3 if c == 0 else 400),
            )
        )
        w.creators.append(user)
        for p in range(posts_per_creator):
            post = Post(
                author_id=user.id,
                title=f"post {c}-{p}",
                status="published",
                published_at=now - timedelta(days=20 + p),
            )
            session.add(post)
            w.posts.append(post)
    session.flush()
    return w


def follow(session: Session, shopper: User, kind: str, target_id: int) -> None:
    session.add(Follow(follower_id=shopper.id, target_kind=kind, target_id=target_id))
    session.flush()


class WorldKit:
    build = staticmethod(build_world)
    follow = staticmethod(follow)
    user = staticmethod(shopper_with_auth)


@pytest.fixture
def kit() -> type[WorldKit]:
    """The feed world builders (tests import nothing from this folder)."""
    return WorldKit
