"""Owner factories for the authorization matrix: each makes one object owned by a given user
and returns the path parameters that address it (see ``OWNERS`` in authz_matrix.py).

Objects are made through the domain services where that is cheap and as plain rows where a
service needs a long chain of preconditions (an approved creator profile, a funded brief).
"""

from __future__ import annotations

import itertools
from datetime import timedelta

from sqlalchemy.orm import Session

from factories import make_user
from juxing.catalog import service as catalog
from juxing.deals import orders
from juxing.deals import service as deals
from juxing.deals.payments import provider_for
from juxing.kit.time import utcnow
from juxing.models.accounts import Role, User
from juxing.models.catalog import Merchant, Product, Sku
from juxing.models.commission import Payout
from juxing.models.content import LiveRoom, Post
from juxing.models.marketplace import Brief, BriefApplication

_seq = itertools.count(1)


def _shop(session: Session, owner: User) -> Merchant:
    existing = session.query(Merchant).filter(Merchant.owner_id == owner.id).first()
    if existing is not None:
        return existing
    return catalog.create_merchant(session=session, owner=owner, name=f"Matrix shop {owner.id}")


def _product(session: Session, owner: User) -> Product:
    shop = _shop(session, owner)
    return catalog.create_product(
        session=session,
        user=owner,
        merchant_id=shop.id,
        title=f"Matrix lamp {next(_seq)}",
        skus=[{"name": "default", "list_price_minor": 10_000, "currency": "CNY", "stock": 50}],
    )


def _campaign_and_item(session: Session, merchant: User, *, approve: bool) -> tuple[int, int]:
    now = utcnow()
    operator = make_user(session, Role.OPERATOR)
    product = _product(session, merchant)
    festival = deals.create_festival(
        session=session,
        user=operator,
        name=f"Matrix festival {next(_seq)}",
        starts_at=now - timedelta(hours=1),
        ends_at=now + timedelta(days=2),
    )
    campaign = deals.create_campaign(
        session=session,
        user=merchant,
        festival_id=festival.id,
        merchant_id=_shop(session, merchant).id,
        title="Matrix campaign",
    )
    item = deals.add_deal_item(
        session=session,
        user=merchant,
        campaign_id=campaign.id,
        sku_id=product.skus[0].id,
        deal_price_minor=5_900,
        deal_stock=10,
        per_user_limit=2,
        starts_at=now - timedelta(minutes=5),
        ends_at=now + timedelta(hours=6),
    )
    if approve:
        deals.submit_campaign(session=session, user=merchant, campaign_id=campaign.id)
        deals.approve_campaign(session=session, user=operator, campaign_id=campaign.id)
        deals.advance_campaigns(session=session)
    session.flush()
    return campaign.id, item.id


def _order(session: Session, shopper: User, merchant: User | None = None) -> int:
    merchant = merchant or make_user(session, Role.MERCHANT)
    _campaign_id, item_id = _campaign_and_item(session, merchant, approve=True)
    order = orders.reserve(
        session=session,
        ctx=orders.Buying(redis_client=None),
        shopper=shopper,
        deal_item_id=item_id,
        quantity=1,
    )
    session.flush()
    return order.id


# --- the factories: (session, owner) -> path parameters ---------------------------------------


def campaign(session: Session, owner: User) -> dict[str, int]:
    campaign_id, _ = _campaign_and_item(session, owner, approve=False)
    return {"campaign_id": campaign_id}


def deal_item(session: Session, owner: User) -> dict[str, int]:
    _, item_id = _campaign_and_item(session, owner, approve=False)
    return {"deal_item_id": item_id}


def order(session: Session, owner: User) -> dict[str, int]:
    """An unpaid order of the shopper ``owner``."""
    return {"order_id": _order(session, owner)}


def shop_order(session: Session, owner: User) -> dict[str, int]:
    """An order placed in the shop of the merchant ``owner``."""
    return {"order_id": _order(session, make_user(session, Role.SHOPPER), owner)}


def payment(session: Session, owner: User) -> dict[str, int]:
    order_id = _order(session, owner)
    p = orders.start_payment(
        session=session,
        provider=provider_for("simulated", secret="matrix-secret"),
        user=owner,
        order_id=order_id,
    )
    session.flush()
    return {"payment_id": p.id}


def merchant(session: Session, owner: User) -> dict[str, int]:
    return {"merchant_id": _shop(session, owner).id}


def product(session: Session, owner: User) -> dict[str, int]:
    return {"product_id": _product(session, owner).id}


def sku(session: Session, owner: User) -> dict[str, int]:
    p = _product(session, owner)
    s = session.query(Sku).filter(Sku.product_id == p.id).one()
    return {"sku_id": s.id}


def post(session: Session, owner: User) -> dict[str, int]:
    p = Post(
        author_id=owner.id,
        type="article",
        title=f"Matrix post {next(_seq)}",
        body_markdown="Hello",
        status="draft",
        version=1,
    )
    session.add(p)
    session.flush()
    return {"post_id": p.id}


def live_room(session: Session, owner: User) -> dict[str, int]:
    room = LiveRoom(
        creator_id=owner.id,
        title=f"Matrix live {next(_seq)}",
        scheduled_at=utcnow() + timedelta(hours=1),
    )
    session.add(room)
    session.flush()
    return {"room_id": room.id}


def _brief(session: Session, merchant_user: User) -> Brief:
    shop = _shop(session, merchant_user)
    b = Brief(
        merchant_id=shop.id,
        created_by_id=merchant_user.id,
        title=f"Matrix brief {next(_seq)}",
        deliverable="post",
        deadline=utcnow() + timedelta(days=7),
    )
    session.add(b)
    session.flush()
    return b


def brief(session: Session, owner: User) -> dict[str, int]:
    return {"brief_id": _brief(session, owner).id}


def application_of_creator(session: Session, owner: User) -> dict[str, int]:
    """An application by the creator ``owner`` to another merchant's brief."""
    b = _brief(session, make_user(session, Role.MERCHANT))
    a = BriefApplication(brief_id=b.id, creator_id=owner.id, pitch="Matrix pitch")
    session.add(a)
    session.flush()
    return {"application_id": a.id}


def application_to_merchant(session: Session, owner: User) -> dict[str, int]:
    """An application by some creator to a brief of the merchant ``owner``."""
    b = _brief(session, owner)
    a = BriefApplication(
        brief_id=b.id, creator_id=make_user(session, Role.CREATOR).id, pitch="Matrix pitch"
    )
    session.add(a)
    session.flush()
    return {"application_id": a.id}


def payout(session: Session, owner: User) -> dict[str, int]:
    p = Payout(creator_id=owner.id, amount_minor=1_000, currency="CNY", requested_at=utcnow())
    session.add(p)
    session.flush()
    return {"payout_id": p.id}


def _refund_request(session: Session, shopper: User, merchant: User | None = None) -> int:
    """An open refund request on a paid order of ``shopper``."""
    from juxing.deals import refund_requests

    order_id = _order(session, shopper, merchant)
    orders.mark_paid(session=session, ctx=orders.Buying(redis_client=None), order_id=order_id)
    request = refund_requests.create(
        session=session, user=shopper, order_id=order_id, reason="damaged"
    )
    session.flush()
    return request.id


def refund_request(session: Session, owner: User) -> dict[str, int]:
    """An open refund request the shopper ``owner`` made."""
    return {"request_id": _refund_request(session, owner)}


def shop_refund_request(session: Session, owner: User) -> dict[str, int]:
    """An open refund request on an order of the merchant ``owner``'s shop."""
    return {"request_id": _refund_request(session, make_user(session, Role.SHOPPER), owner)}
