"""A small marketplace world: a merchant with products, creators with posts, an operator."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import pytest
from sqlalchemy.orm import Session

from factories import make_user_with_auth
from juxing.kit.time import utcnow
from juxing.models.accounts import Role, User
from juxing.models.catalog import Merchant, Product
from juxing.models.content import Post


@dataclass
class World:
    merchant_user: User
    merchant_auth: dict[str, str]
    merchant: Merchant
    products: list[Product]
    creators: list[tuple[User, dict[str, str]]]
    operator_auth: dict[str, str]
    other_merchant_auth: dict[str, str]


def make_post(
    session: Session, author: User, *, type_: str = "article", published: bool = True
) -> Post:
    post = Post(
        author_id=author.id,
        type=type_,
        title=f"Post by {author.display_name}",
        status="published" if published else "draft",
        published_at=utcnow() if published else None,
    )
    session.add(post)
    session.flush()
    return post


@pytest.fixture
def world(session: Session) -> World:
    m_user, m_auth = make_user_with_auth(session, Role.MERCHANT)
    merchant = Merchant(owner_id=m_user.id, name=f"Shop {m_user.id}", tier="new")
    session.add(merchant)
    session.flush()
    products = [Product(merchant_id=merchant.id, title=f"Product {i}") for i in range(2)]
    session.add_all(products)
    session.flush()
    creators = [make_user_with_auth(session, Role.CREATOR, Role.SHOPPER) for _ in range(3)]
    _op, op_auth = make_user_with_auth(session, Role.OPERATOR)
    other, other_auth = make_user_with_auth(session, Role.MERCHANT)
    session.add(Merchant(owner_id=other.id, name=f"Shop {other.id}"))
    session.flush()
    return World(m_user, m_auth, merchant, products, creators, op_auth, other_auth)


def brief_body(world: World, **over: object) -> dict[str, object]:
    body: dict[str, object] = {
        "title": "Spring glow serum launch",
        "description": "Show the serum in a morning routine.",
        "deliverable": "post",
        "post_type": "article",
        "commission_rate_bp": 1500,
        "fixed_fee_minor": 30_000,
        "budget_minor": 60_000,
        "currency": "CNY",
        "deadline": (utcnow() + timedelta(days=7)).isoformat(),
        "items": [{"product_id": world.products[0].id}],
    }
    body.update(over)
    return body


@pytest.fixture
def new_brief_body():  # type: ignore[no-untyped-def]
    return brief_body


@pytest.fixture
def new_post():  # type: ignore[no-untyped-def]
    return make_post
