"""Demo shops, products and the festival, so that every page of the web UI looks alive.

Runs first among the demo seeders and only fills what is missing: when a deals/catalog seeder
has already made festivals and products it does nothing. It makes categories, each demo
merchant's shop with products that fit the shop, a current festival (聚星节) that started two
days ago and a past one, approved campaigns with deal items (live, upcoming, one nearly sold
out), and paid deal orders spread over the last days and hours (the services take the time),
so the boards and charts have history. Built through the services, like real use.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select

from juxing.catalog import service as catalog
from juxing.deals import orders
from juxing.deals import service as deals
from juxing.kit.errors import JuxingError
from juxing.kit.time import utcnow
from juxing.models.catalog import Product
from juxing.models.deals import Festival

CATEGORIES = (
    ("Beauty", "美妆"),
    ("Kitchen", "厨房"),
    ("Outdoor", "户外"),
    ("Gadgets", "数码"),
    ("Baby", "母婴"),
    ("Tea", "茶饮"),
    ("Apparel", "服饰"),
    ("Handmade", "手作"),
)

# Per demo merchant (in demo.MERCHANT_NAMES order): category and (title, SKU, list price ¥).
SHOP_PRODUCTS: tuple[tuple[str, tuple[tuple[str, str, int], ...]], ...] = (
    ("Beauty", (
        ("Peony Glow Serum 牡丹精华", "30 ml", 199),
        ("Rice Water Toner 米水爽肤水", "150 ml", 89),
        ("Silk Sleep Mask 真丝睡眠面膜", "5 pcs", 129),
        ("Sunscreen SPF50 防晒霜", "50 ml", 119),
    )),
    ("Kitchen", (
        ("Cast-iron Wok 铸铁炒锅", "32 cm", 329),
        ("Bamboo Steamer 竹蒸笼", "2 tiers", 79),
        ("Clay Teapot 紫砂壶", "200 ml", 268),
        ("Chef Knife 主厨刀", "20 cm", 199),
    )),
    ("Outdoor", (
        ("Trail Jacket 冲锋衣", "M", 699),
        ("Ultralight Tent 轻量帐篷", "2 people", 1299),
        ("Hiking Poles 登山杖", "pair", 259),
        ("Down Vest 羽绒背心", "L", 459),
    )),
    ("Gadgets", (
        ("Noise-cancel Earbuds 降噪耳机", "Black", 599),
        ("Power Bank 充电宝", "20000 mAh", 149),
        ("Smart Desk Lamp 智能台灯", "White", 239),
        ("Mini Projector 迷你投影仪", "1080p", 1599),
    )),
    ("Baby", (
        ("Organic Cotton Onesie 有机棉连体衣", "66 cm", 89),
        ("Baby Carrier 婴儿背带", "Grey", 399),
        ("Silicone Bib Set 硅胶围兜", "3 pcs", 59),
    )),
    ("Tea", (
        ("West Lake Longjing 西湖龙井", "250 g", 368),
        ("Aged Pu-erh 陈年普洱", "357 g cake", 298),
        ("Jasmine Pearls 茉莉龙珠", "100 g", 128),
    )),
    ("Apparel", (
        ("Merino Sweater 美利奴毛衣", "M", 499),
        ("Linen Shirt 亚麻衬衫", "L", 269),
        ("Wool Scarf 羊毛围巾", "One size", 159),
    )),
    ("Handmade", (
        ("Hand-dyed Tote 扎染托特包", "One size", 139),
        ("Ceramic Mug 手作陶瓷杯", "350 ml", 88),
        ("Embroidered Pouch 刺绣收纳包", "Small", 69),
    )),
)  # fmt: skip

DISCOUNTS = (0.5, 0.6, 0.7, 0.55, 0.65)


def seed(ctx: Any) -> None:
    """Shops, products, festivals, campaigns with deal items, and paid orders with history."""
    with ctx.db.session() as session:
        if session.scalar(select(Festival.id).limit(1)) is not None:
            return  # a deals seeder made the festival world already
        if session.scalar(select(Product.id).limit(1)) is None:
            _catalog(ctx, session)
        items = _festivals(ctx, session)
        session.flush()
        _orders(ctx, session, items)


def _catalog(ctx: Any, session: Any) -> None:
    categories = {
        name: catalog.create_category(session=session, name=name, name_zh=zh).id
        for name, zh in CATEGORIES
    }
    from juxing.demo import MERCHANT_NAMES

    for owner, (name, tier), (category, products) in zip(
        ctx.users["merchant"], MERCHANT_NAMES, SHOP_PRODUCTS, strict=False
    ):
        owner = session.merge(owner)
        shop = catalog.create_merchant(
            session=session, owner=owner, name=name, description=f"{name} on Juxing", tier=tier
        )
        for title, sku, price in products:
            catalog.create_product(
                session=session,
                user=owner,
                merchant_id=shop.id,
                title=title,
                description=f"{title}. Ships in 48 hours from {name}.",
                category_id=categories[category],
                skus=[
                    {
                        "name": sku,
                        "list_price_minor": price * 100,
                        "currency": "CNY",
                        "stock": ctx.rng.randint(1000, 3000),
                    }
                ],
            )
    session.flush()


def _festivals(ctx: Any, session: Any) -> list[Any]:
    """A past festival and the current one with approved campaigns; returns the live items."""
    now = utcnow()
    operator = session.merge(ctx.users["operator"][0])
    deals.create_festival(
        session=session,
        user=operator,
        name="Spring Tea Festival",
        name_zh="春茶节",
        theme="New-season tea from small gardens",
        starts_at=now - timedelta(days=40),
        ends_at=now - timedelta(days=33),
    )
    festival = deals.create_festival(
        session=session,
        user=operator,
        name="Star Festival",
        name_zh="聚星双十一",
        theme="Deep discounts from small shops and the creators you follow",
        starts_at=now - timedelta(days=7),
        ends_at=now + timedelta(days=2, hours=6),
    )
    live_items = []
    for index, owner in enumerate(ctx.users["merchant"]):
        owner = session.merge(owner)
        merchants, _ = catalog.list_merchants(session=session, owner_id=owner.id, limit=5)
        if not merchants:
            continue
        shop = merchants[0]
        products, _ = catalog.list_products(session=session, merchant_id=shop.id, limit=10)
        if not products:
            continue
        campaign = deals.create_campaign(
            session=session,
            user=owner,
            festival_id=festival.id,
            merchant_id=shop.id,
            title=f"{shop.name} festival deals",
        )
        for k, product in enumerate(sorted(products, key=lambda p: p.id)):
            sku = product.skus[0]
            upcoming = (index + k) % 5 == 4  # some deals start later: countdowns
            starts = now + timedelta(hours=3 + k) if upcoming else festival.starts_at
            stock = 40 if (index, k) == (0, 0) else ctx.rng.choice((200, 300, 500, 800))
            item = deals.add_deal_item(
                session=session,
                user=owner,
                campaign_id=campaign.id,
                sku_id=sku.id,
                deal_price_minor=int(sku.list_price_minor * DISCOUNTS[(index + k) % 5]) // 100 * 100
                - 10,
                deal_stock=stock,
                per_user_limit=3,
                starts_at=starts,
                ends_at=festival.ends_at,
                commission_rate_bp=ctx.rng.choice((600, 800, 1000, 1200)),
            )
            if not upcoming:
                live_items.append(item)
        deals.submit_campaign(session=session, user=owner, campaign_id=campaign.id)
        if index == len(ctx.users["merchant"]) - 1:
            continue  # one campaign waits for the operator's review
        deals.approve_campaign(session=session, user=operator, campaign_id=campaign.id)
    return live_items


def _orders(ctx: Any, session: Any, items: list[Any]) -> None:
    """Paid deal orders by the demo shoppers over the festival so far, busier lately."""
    if not items:
        return
    now = utcnow()
    ctx_buy = orders.Buying(redis_client=None)
    shoppers = [session.merge(u) for u in ctx.users.get("shopper", [])]
    popular = items[: max(3, len(items) // 3)]
    placed = 0
    for s_index, shopper in enumerate(shoppers):
        for n in range(ctx.rng.randint(2, 6)):
            recent = ctx.rng.random() < 0.4
            minutes = ctx.rng.randint(2, 175) if recent else ctx.rng.randint(180, 6 * 24 * 60)
            at = now - timedelta(minutes=minutes)
            item = ctx.rng.choice(popular if ctx.rng.random() < 0.6 else items)
            if at < item.starts_at:
                continue
            _buy(session, ctx_buy, shopper, item.id, at, cancel=(s_index + n) % 11 == 0)
            placed += 1
    # The nearly sold-out deal: shoppers cleared most of it in the last hours.
    first = items[0]
    for k, shopper in enumerate(shoppers[:12]):
        _buy(session, ctx_buy, shopper, first.id, now - timedelta(minutes=5 + 9 * k), cancel=False)
    ctx.console.print(f"web demo: {placed} festival orders")


def _buy(
    session: Any, ctx_buy: Any, shopper: Any, item_id: int, at: datetime, cancel: bool
) -> None:
    try:
        with session.begin_nested():
            order = orders.reserve(
                session=session, ctx=ctx_buy, shopper=shopper, deal_item_id=item_id, now=at
            )
            if cancel:
                return  # left unpaid: the timeout sweep releases it
            orders.mark_paid(
                session=session, ctx=ctx_buy, order_id=order.id, now=at + timedelta(minutes=1)
            )
    except JuxingError:
        pass  # per-shopper limit or sold out: a real shopper would be refused too
