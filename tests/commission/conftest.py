"""Commission test world: merchants, products, links, clicks and orders.

Orders are inserted as rows and their events published exactly as the deals service does
(``kit.signals.publish`` inside the order's transaction), so the commission handlers run
as they do in production.
"""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta

import pytest
from sqlalchemy.orm import Session

from factories import make_user
from juxing.commission import links
from juxing.deals.events import OrderCancelled, OrderPaid, OrderPlaced, OrderReceived, OrderRefunded
from juxing.kit.signals import publish
from juxing.kit.time import utcnow
from juxing.models.accounts import Role, User
from juxing.models.catalog import Merchant, Product, Sku
from juxing.models.commission import Click, TrackingLink
from juxing.models.deals import Campaign, DealItem, Festival
from juxing.models.orders import Order, OrderLine, Refund, RefundLine

SECRET = "test-secret-key-0123456789-abcdefghijklmnop"
_seq = itertools.count(1)


class World:
    def __init__(self, session: Session) -> None:
        self.s = session

    # --- catalog -----------------------------------------------------------------------
    def merchant(self, owner: User | None = None) -> Merchant:
        owner = owner or make_user(self.s, Role.MERCHANT)
        m = Merchant(owner_id=owner.id, name=f"Shop {next(_seq)}")
        self.s.add(m)
        self.s.flush()
        return m

    def product(self, merchant: Merchant, price: int = 10_000) -> Product:
        p = Product(merchant_id=merchant.id, title=f"Product {next(_seq)}")
        self.s.add(p)
        self.s.flush()
        self.s.add(Sku(product_id=p.id, name="default", list_price_minor=price, stock=1000))
        self.s.flush()
        return p

    def deal_item(
        self, merchant: Merchant, product: Product, *, rate_bp: int | None = None
    ) -> DealItem:
        now = utcnow()
        n = next(_seq)
        f = Festival(
            name=f"Fest {n}",
            slug=f"fest-{n}",
            starts_at=now - timedelta(days=60),
            ends_at=now + timedelta(days=60),
        )
        self.s.add(f)
        self.s.flush()
        c = Campaign(festival_id=f.id, merchant_id=merchant.id, title=f"Campaign {n}")
        self.s.add(c)
        self.s.flush()
        sku = self.s.query(Sku).filter(Sku.product_id == product.id).first()
        assert sku is not None
        item = DealItem(
            campaign_id=c.id,
            sku_id=sku.id,
            product_id=product.id,
            merchant_id=merchant.id,
            deal_price_minor=5000,
            deal_stock=100,
            available=100,
            reserved=0,
            sold=0,
            starts_at=now - timedelta(days=60),
            ends_at=now + timedelta(days=60),
            commission_rate_bp=rate_bp,
        )
        self.s.add(item)
        self.s.flush()
        return item

    # --- links and clicks --------------------------------------------------------------
    def link(self, creator: User, product: Product, **kw: object) -> TrackingLink:
        return links.link_for(
            self.s,
            secret_key=SECRET,
            creator_id=creator.id,
            target_type="product",
            target_id=product.id,
            **kw,  # type: ignore[arg-type]
        )

    def click(
        self,
        link: TrackingLink,
        *,
        shopper: User | None = None,
        visitor: str | None = None,
        at: datetime | None = None,
        ip: str = "10.0.0.1",
        device: str = "Mozilla/5.0|en|Linux",
    ) -> Click:
        return links.record_click(
            self.s,
            link=link,
            secret_key=SECRET,
            shopper_id=shopper.id if shopper else None,
            visitor_id=visitor,
            ip=ip,
            fingerprint=device,
            referrer="https://example.test/",
            at=at or utcnow() - timedelta(hours=1),
        )

    # --- orders, as the deals service writes them ---------------------------------------
    def place(
        self,
        shopper: User,
        merchant: Merchant,
        lines: list[tuple[Product, int]],
        *,
        visitor: str | None = None,
        at: datetime | None = None,
        deal_item: DealItem | None = None,
    ) -> Order:
        total = sum(a for _, a in lines)
        order = Order(
            shopper_id=shopper.id,
            merchant_id=merchant.id,
            status="pending_payment",
            currency="CNY",
            subtotal_minor=total,
            discount_minor=0,
            total_minor=total,
            refunded_minor=0,
            visitor_id=visitor,
            created_at=at or utcnow(),
        )
        self.s.add(order)
        self.s.flush()
        for product, amount in lines:
            sku = self.s.query(Sku).filter(Sku.product_id == product.id).first()
            assert sku is not None
            self.s.add(
                OrderLine(
                    order_id=order.id,
                    sku_id=sku.id,
                    product_id=product.id,
                    title=product.title,
                    quantity=1,
                    unit_price_minor=amount,
                    amount_minor=amount,
                    deal_item_id=deal_item.id if deal_item is not None else None,
                    refunded_minor=0,
                    refunded_quantity=0,
                    restocked_quantity=0,
                )
            )
        self.s.flush()
        publish(
            self.s,
            OrderPlaced(
                order_id=order.id,
                shopper_id=order.shopper_id,
                visitor_id=order.visitor_id,
                placed_at=order.created_at,
            ),
        )
        return order

    def pay(self, order: Order, at: datetime | None = None) -> None:
        order.status = "paid"
        order.paid_at = at or utcnow()
        self.s.flush()
        publish(self.s, OrderPaid(order_id=order.id))

    def receive(self, order: Order, at: datetime | None = None) -> None:
        order.status = "received"
        order.received_at = at or utcnow()
        self.s.flush()
        publish(self.s, OrderReceived(order_id=order.id))

    def cancel(self, order: Order) -> None:
        order.status = "cancelled"
        self.s.flush()
        publish(self.s, OrderCancelled(order_id=order.id))

    def refund(self, order: Order, line: OrderLine, amount: int) -> Refund:
        refund = Refund(order_id=order.id, amount_minor=amount, currency=order.currency)
        self.s.add(refund)
        self.s.flush()
        self.s.add(
            RefundLine(refund_id=refund.id, order_line_id=line.id, quantity=0, amount_minor=amount)
        )
        line.refunded_minor += amount
        order.refunded_minor += amount
        self.s.flush()
        publish(self.s, OrderRefunded(order_id=order.id, refund_id=refund.id, amount_minor=amount))
        return refund

    def lines(self, order: Order) -> list[OrderLine]:
        return list(
            self.s.query(OrderLine).filter(OrderLine.order_id == order.id).order_by(OrderLine.id)
        )


@pytest.fixture
def world(session: Session) -> World:
    return World(session)
