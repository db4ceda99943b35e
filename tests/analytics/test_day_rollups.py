"""Long windows read whole days from the day rollups: same figures as the orders themselves."""

from __future__ import annotations

import random
from collections import defaultdict
from datetime import timedelta

from factories import make_user
from juxing.analytics import dashboards, rollups
from juxing.kit.time import utcnow
from juxing.models.accounts import Role
from juxing.models.analytics import MetricRollup
from juxing.models.catalog import Merchant, Product, Sku
from juxing.models.orders import Order, OrderLine


def _order(session, shop, sku, product, paid_at, qty):
    amount = sku.list_price_minor * qty
    o = Order(
        shopper_id=shop.owner_id,
        merchant_id=shop.id,
        status="paid",
        currency="CNY",
        subtotal_minor=amount,
        total_minor=amount,
        created_at=paid_at - timedelta(minutes=1),
        paid_at=paid_at,
    )
    session.add(o)
    session.flush()
    session.add(
        OrderLine(
            order_id=o.id,
            sku_id=sku.id,
            product_id=product.id,
            title="x",
            quantity=qty,
            unit_price_minor=sku.list_price_minor,
            amount_minor=amount,
        )
    )
    session.flush()
    return amount


def test_long_window_uses_day_rollups_and_matches_orders(session):
    rng = random.Random(3)
    owner = make_user(session, Role.MERCHANT)
    shop = Merchant(owner_id=owner.id, name=f"Days shop {owner.id}", tier="new")
    session.add(shop)
    session.flush()
    product = Product(merchant_id=shop.id, title="Tea")
    session.add(product)
    session.flush()
    sku = Sku(product_id=product.id, name="default", list_price_minor=1990, stock=10_000)
    session.add(sku)
    session.flush()
    day0 = rollups.floor_day(utcnow()) - timedelta(days=12)
    paid: list[tuple] = []
    for _ in range(120):
        at = day0 + timedelta(minutes=rng.randrange(7 * 24 * 60))
        paid.append((at, _order(session, shop, sku, product, at, rng.randint(1, 3))))
    rollups.refresh(session, start=day0, end=day0 + timedelta(days=7), minutes=False)

    # An odd window: from 05:30 on day 0 to 07:10 on day 6 (hours starting inside it count).
    start, end = (
        day0 + timedelta(hours=5, minutes=30),
        day0 + timedelta(days=6, hours=7, minutes=10),
    )
    lo, hi = day0 + timedelta(hours=6), day0 + timedelta(days=6, hours=8)

    def expected():
        by_day: dict[str, int] = defaultdict(int)
        for at, amount in paid:
            if lo <= at < hi:
                by_day[rollups.floor_day(at).isoformat()] += amount
        return by_day

    d = dashboards.merchant_dashboard(session=session, merchant_id=shop.id, start=start, end=end)
    by_day = expected()
    assert d["window"]["grain"] == "d"
    assert d["totals"]["gmv_minor"] == sum(by_day.values())
    assert d["totals"]["paid_orders"] == sum(1 for at, _a in paid if lo <= at < hi)
    assert {r["bucket"]: r["gmv"] for r in d["tables"]["series"]} == dict(by_day)
    days = session.query(MetricRollup).filter_by(
        scope="merchant", scope_id=shop.id, grain="d", metric="gmv"
    )
    assert days.count() == 7

    # A late order: refreshing only its hours also brings its day's rollup up to date.
    late = day0 + timedelta(days=3, hours=10, minutes=5)
    paid.append((late, _order(session, shop, sku, product, late, 2)))
    rollups.refresh(session, start=late, end=late + timedelta(minutes=1), minutes=False)
    d = dashboards.merchant_dashboard(session=session, merchant_id=shop.id, start=start, end=end)
    by_day = expected()
    assert d["totals"]["gmv_minor"] == sum(by_day.values())
    assert {r["bucket"]: r["gmv"] for r in d["tables"]["series"]} == dict(by_day)

    # Refreshing everything again changes nothing; the days equal a rebuild from the hours.
    def day_rows():
        q = session.query(
            MetricRollup.metric, MetricRollup.bucket, MetricRollup.dim, MetricRollup.value
        )
        return sorted(q.filter_by(scope="merchant", scope_id=shop.id, grain="d").all())

    before = day_rows()
    rollups.refresh(session, start=day0, end=day0 + timedelta(days=7), minutes=False)
    assert day_rows() == before
    rollups.refresh_days(session, start=day0, end=day0 + timedelta(days=7))
    assert day_rows() == before

    # A short window stays hourly and agrees with the long one on its hours.
    short = dashboards.merchant_dashboard(
        session=session,
        merchant_id=shop.id,
        start=day0 + timedelta(days=3),
        end=late + timedelta(hours=1),
    )
    assert short["window"]["grain"] == "h"
    assert short["totals"]["gmv_minor"] == sum(
        a for at, a in paid if day0 + timedelta(days=3) <= at < day0 + timedelta(days=3, hours=12)
    )
