"""``juxing analytics backfill`` fills the rollups over a past period, chunk by chunk."""

from __future__ import annotations

from datetime import timedelta

from typer.testing import CliRunner

from factories import make_user
from juxing.analytics import dashboards, rollups
from juxing.analytics.cli import chunks
from juxing.cli import app
from juxing.config import get_settings
from juxing.kit.time import utcnow
from juxing.models.accounts import Role
from juxing.models.analytics import MetricRollup
from juxing.models.catalog import Merchant, Product, Sku
from juxing.models.orders import Order, OrderLine


def test_chunks_cover_the_period_once():
    t = rollups.floor_day(utcnow())
    pieces = chunks(t, t + timedelta(hours=50), 24)
    assert [b - a for a, b in pieces] == [timedelta(hours=24)] * 2 + [timedelta(hours=2)]
    assert pieces[0][0] == t and pieces[-1][1] == t + timedelta(hours=50)


def test_backfill_command(committed_db, monkeypatch):
    day0 = rollups.floor_day(utcnow()) - timedelta(days=4)
    amounts = []
    with committed_db.session() as s:
        owner = make_user(s, Role.MERCHANT)
        shop = Merchant(owner_id=owner.id, name="Backfill shop", tier="new")
        s.add(shop)
        s.flush()
        product = Product(merchant_id=shop.id, title="Kettle")
        s.add(product)
        s.flush()
        sku = Sku(product_id=product.id, name="default", list_price_minor=5900, stock=50)
        s.add(sku)
        s.flush()
        for n in range(30):
            paid_at = day0 + timedelta(hours=2 * n, minutes=7)
            amount = 5900 * (1 + n % 2)
            order = Order(
                shopper_id=owner.id,
                merchant_id=shop.id,
                status="paid",
                currency="CNY",
                subtotal_minor=amount,
                total_minor=amount,
                created_at=paid_at - timedelta(minutes=3),
                paid_at=paid_at,
            )
            s.add(order)
            s.flush()
            s.add(
                OrderLine(
                    order_id=order.id,
                    sku_id=sku.id,
                    product_id=product.id,
                    title="Kettle",
                    quantity=1 + n % 2,
                    unit_price_minor=5900,
                    amount_minor=amount,
                )
            )
            amounts.append(amount)
        shop_id = shop.id
    monkeypatch.setenv("JUXING_DATABASE_URL", committed_db.url)
    get_settings.cache_clear()
    try:
        runner = CliRunner()
        args = ["analytics", "backfill", "--start", day0.strftime("%Y-%m-%d")]
        end = (day0 + timedelta(days=3)).strftime("%Y-%m-%dT%H:%M:%S")
        r = runner.invoke(app, [*args, "--end", end, "--chunk-hours", "12"])
        assert r.exit_code == 0, r.output
        assert "6 chunks" in r.output
        again = runner.invoke(app, [*args, "--end", end, "--no-minutes", "--rebuild-days"])
        assert again.exit_code == 0, again.output
        bad = runner.invoke(app, ["analytics", "backfill", "--start", end, "--end", end])
        assert bad.exit_code == 2
    finally:
        get_settings.cache_clear()
    with committed_db.session() as s:
        d = dashboards.merchant_dashboard(
            session=s, merchant_id=shop_id, start=day0, end=day0 + timedelta(days=3)
        )
        assert d["totals"]["gmv_minor"] == sum(amounts)  # 30 orders over 60 hours
        assert d["totals"]["paid_orders"] == len(amounts)
        days = s.query(MetricRollup).filter_by(scope_id=shop_id, grain="d", metric="gmv").count()
        assert days == 3
