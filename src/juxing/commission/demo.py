"""Demo world for commission: rules, tracking links, clicks over the past weeks, attributed
orders (pending and available commission, a refund), a payout and a fraud hold to review.

Runs after the deals and content seeders and uses their shops and products (it opens two
small shops itself if there are none). Orders are written as the deals engine writes them,
back-dated over the past weeks, and their events are published so the commission
subscribers run exactly as in production.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from juxing.catalog import service as catalog
from juxing.commission import links, payouts, rules, service
from juxing.config import get_settings
from juxing.deals.events import OrderPaid, OrderPlaced, OrderReceived, OrderRefunded
from juxing.demo import DemoContext
from juxing.kit.signals import publish
from juxing.kit.time import utcnow
from juxing.models.catalog import Merchant, Product, Sku
from juxing.models.commission import RuleScope
from juxing.models.orders import Order, OrderLine, Refund, RefundLine


def _catalog(ctx: DemoContext, session: Session) -> list[tuple[Merchant, list[Product]]]:
    merchants = list(session.scalars(select(Merchant).order_by(Merchant.id).limit(4)))
    if not merchants:
        for owner in ctx.users["merchant"][:2]:
            owner = session.merge(owner)
            m = catalog.create_merchant(session=session, owner=owner, name=f"{owner.display_name}")
            for title, price in (("Silk scarf 丝巾", 12_900), ("Tea set 茶具", 25_800)):
                catalog.create_product(
                    session=session, user=owner, merchant_id=m.id, title=title,
                    skus=[{"name": "Standard", "list_price_minor": price, "currency": "CNY",
                           "stock": 500}],
                )  # fmt: skip
            merchants.append(m)
    out = []
    for m in merchants:
        products = list(
            session.scalars(
                select(Product).where(Product.merchant_id == m.id).order_by(Product.id).limit(3)
            )
        )
        if products:
            out.append((m, products))
    return out


def _order(session: Session, shopper_id: int, product: Product, when, rng) -> Order:
    sku = session.scalar(select(Sku).where(Sku.product_id == product.id).limit(1))
    assert sku is not None
    qty = rng.randint(1, 2)
    amount = sku.list_price_minor * qty
    order = Order(
        shopper_id=shopper_id, merchant_id=product.merchant_id, status="pending_payment",
        currency=sku.currency, subtotal_minor=amount, discount_minor=0, total_minor=amount,
        refunded_minor=0, created_at=when, updated_at=when,
    )  # fmt: skip
    session.add(order)
    session.flush()
    session.add(
        OrderLine(
            order_id=order.id, sku_id=sku.id, product_id=product.id, title=product.title,
            quantity=qty, unit_price_minor=sku.list_price_minor, amount_minor=amount,
            refunded_minor=0, refunded_quantity=0, restocked_quantity=0,
        )
    )  # fmt: skip
    session.flush()
    publish(
        session,
        OrderPlaced(
            order_id=order.id, shopper_id=shopper_id, visitor_id=None, placed_at=order.created_at
        ),
    )
    order.status, order.paid_at = "paid", when + timedelta(minutes=3)
    session.flush()
    publish(session, OrderPaid(order_id=order.id))
    return order


def seed(ctx: DemoContext) -> None:
    secret = get_settings().secret_key
    rng = ctx.rng
    now = utcnow()
    creators = ctx.users.get("creator", [])[:5]
    shoppers = ctx.users.get("shopper", [])
    operator = ctx.users["operator"][0]
    if not creators or not shoppers:
        return
    with ctx.db.session() as session:
        shops = _catalog(ctx, session)
        if not shops:
            return
        for i, (m, products) in enumerate(shops):
            owner = session.get(type(creators[0]), m.owner_id)
            assert owner is not None
            rules.set_rule(
                session, merchant=m, scope=RuleScope.MERCHANT, target_id=0,
                rate_bp=(500, 800, 300, 1000)[i % 4], window_days=None, actor_id=owner.id,
            )  # fmt: skip
            rules.set_rule(
                session, merchant=m, scope=RuleScope.PRODUCT, target_id=products[0].id,
                rate_bp=1500, window_days=None, actor_id=owner.id,
            )  # fmt: skip
        all_products = [p for _, ps in shops for p in ps]
        made = {}
        for c in creators:
            for p in rng.sample(all_products, k=min(3, len(all_products))):
                made[(c.id, p.id)] = links.link_for(
                    session, secret_key=secret, creator_id=c.id, target_type="product",
                    target_id=p.id,
                )  # fmt: skip
        # Clicks and orders over the past three weeks.
        orders = []
        for k, shopper in enumerate(shoppers[:20]):
            (_cid, pid), link = rng.choice(list(made.items()))
            when = now - timedelta(days=rng.randint(1, 21), hours=rng.randint(0, 12))
            links.record_click(
                session, link=link, secret_key=secret, shopper_id=shopper.id,
                visitor_id=f"demo-{k}", ip=f"203.0.113.{k}", fingerprint=f"demo-device-{k}",
                referrer="https://weibo.example/", at=when - timedelta(hours=rng.randint(1, 48)),
            )  # fmt: skip
            if k % 4 == 3:
                continue  # clicked, did not buy
            product = session.get(Product, pid)
            assert product is not None
            orders.append(_order(session, shopper.id, product, when, rng))
        # Older orders were received long enough ago for their commission to be available.
        for order in orders:
            if order.created_at < now - timedelta(days=9):
                order.status, order.received_at = "received", order.created_at + timedelta(days=1)
                session.flush()
                publish(session, OrderReceived(order_id=order.id))
        service.mature_due(session, at=now)
        # One partial refund after confirmation.
        received = [o for o in orders if o.received_at is not None]
        if received:
            order = received[0]
            line = session.scalar(select(OrderLine).where(OrderLine.order_id == order.id))
            assert line is not None
            part = line.amount_minor // 2
            refund = Refund(order_id=order.id, amount_minor=part, currency=order.currency,
                            reason="demo: one item returned")  # fmt: skip
            session.add(refund)
            session.flush()
            session.add(RefundLine(refund_id=refund.id, order_line_id=line.id, quantity=0,
                                   amount_minor=part))  # fmt: skip
            line.refunded_minor += part
            order.refunded_minor += part
            session.flush()
            publish(session, OrderRefunded(order_id=order.id, refund_id=refund.id,
                                           amount_minor=part))  # fmt: skip
        # A click flood from one IP before an order: held for operator review.
        flood_creator = creators[-1]
        product = all_products[-1]
        link = links.link_for(session, secret_key=secret, creator_id=flood_creator.id,
                              target_type="product", target_id=product.id)  # fmt: skip
        start = now - timedelta(hours=3)
        for j in range(40):
            links.record_click(
                session, link=link, secret_key=secret, shopper_id=None, visitor_id=f"bot-{j}",
                ip="198.51.100.7", fingerprint="headless", referrer=None,
                at=start + timedelta(seconds=60 * j),
            )  # fmt: skip
        buyer = shoppers[-1]
        links.record_click(
            session, link=link, secret_key=secret, shopper_id=buyer.id, visitor_id="bot-buyer",
            ip="198.51.100.7", fingerprint="headless", referrer=None,
            at=start + timedelta(minutes=41),
        )  # fmt: skip
        _order(session, buyer.id, product, start + timedelta(minutes=50), rng)
        # A payout for each creator with enough available balance; the first one settled.
        for n, c in enumerate(creators):
            available = service.ledger.balance(
                session, kind="creator_available", owner_id=c.id, currency="CNY"
            )
            if available >= payouts.POLICY.payout_minimum_minor:
                payout = payouts.request_payout(session, creator_id=c.id, currency="CNY")
                if n % 2 == 0:
                    payouts.settle_payout(session, payout_id=payout.id, operator_id=operator.id,
                                          paid=True)  # fmt: skip
