"""The batch path attributes and posts like the per-request path, and reconciles."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from factories import make_user
from juxing.commission import batch, reconcile
from juxing.kit.time import utcnow
from juxing.models.accounts import Role
from juxing.models.commission import Commission, CommissionRule
from juxing.models.orders import Order


def test_batch_matches_the_request_path_and_reconciles(world, session):
    merchant = world.merchant()
    product = world.product(merchant)
    session.add(CommissionRule(merchant_id=merchant.id, scope="merchant", target_id=0, rate_bp=700))
    a, b = make_user(session, Role.CREATOR), make_user(session, Role.CREATOR, Role.SHOPPER)
    shopper = make_user(session)
    now = utcnow()
    world.click(world.link(a, product), shopper=shopper, at=now - timedelta(days=2))
    world.click(world.link(b, product), shopper=shopper, at=now - timedelta(days=1))
    world.click(world.link(b, product), shopper=b, at=now - timedelta(days=1))
    # Orders written without events (as a backfill would find them).
    orders = []
    for who, amount in ((shopper, 12_345), (b, 5_000), (make_user(session), 9_999)):
        o = Order(
            shopper_id=who.id,
            merchant_id=merchant.id,
            status="paid",
            currency="CNY",
            subtotal_minor=amount,
            total_minor=amount,
            refunded_minor=0,
            discount_minor=0,
            created_at=now,
            paid_at=now,
        )
        session.add(o)
        session.flush()
        orders.append(o)
        from juxing.models.catalog import Sku
        from juxing.models.orders import OrderLine

        sku = session.scalar(select(Sku).where(Sku.product_id == product.id))
        session.add(
            OrderLine(
                order_id=o.id,
                sku_id=sku.id,
                product_id=product.id,
                title="t",
                quantity=1,
                unit_price_minor=amount,
                amount_minor=amount,
                refunded_minor=0,
                refunded_quantity=0,
                restocked_quantity=0,
            )
        )
    session.flush()
    res = batch.attribute_and_post(session, order_ids=[o.id for o in orders])
    assert (res.orders, res.attributed, res.transactions) == (3, 2, 1)
    rows = {c.shopper_id: c for c in session.scalars(select(Commission))}
    assert rows[shopper.id].creator_id == b.id and rows[shopper.id].base_minor == 864
    assert rows[b.id].decision == "self_purchase" and rows[b.id].base_minor == 0
    assert reconcile.run_checks(session)[0] == []
    again = batch.attribute_and_post(session, order_ids=[o.id for o in orders])
    assert again.attributed == 0  # idempotent: already attributed orders are skipped
