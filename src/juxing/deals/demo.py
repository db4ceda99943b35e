"""Demo world for the deals engine: products for the demo merchants, a live Star Festival
(聚星节) with approved campaigns (live, upcoming, nearly sold out, a group deal), coupons, and
shoppers' order history over the last weeks (paid, received, one refunded)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from juxing.catalog import service as catalog
from juxing.deals import coupons, orders, service
from juxing.deals.payments import SimulatedProvider
from juxing.kit.time import utcnow
from juxing.models.accounts import User

CATEGORIES = [
    ("Beauty", "美妆"),
    ("Kitchen", "厨具"),
    ("Outdoor", "户外"),
    ("Electronics", "数码"),
    ("Baby", "母婴"),
    ("Tea", "茶饮"),
    ("Apparel", "服饰"),
    ("Handmade", "手作"),
]

# merchant name -> (category, [(title, description, [(sku, list price in fen, stock)])])
PRODUCTS: dict[str, tuple[str, list[tuple[str, str, list[tuple[str, int, int]]]]]] = {
    "Huaxi Cosmetics": (
        "Beauty",
        [
            (
                "Camellia Hydrating Serum 山茶花保湿精华",
                "30 ml, for dry skin.",
                [("30 ml", 26_900, 800), ("50 ml", 39_900, 500)],
            ),
            (
                "Silk Finish Cushion Foundation 丝绒气垫",
                "SPF 35, three shades.",
                [("Ivory", 18_900, 600), ("Natural", 18_900, 600), ("Warm", 18_900, 400)],
            ),
            ("Rose Lip Balm Set 玫瑰润唇膏", "Three tinted balms.", [("Set of 3", 8_900, 900)]),
        ],
    ),
    "Jade Kitchenware": (
        "Kitchen",
        [
            ("Carbon Steel Wok 碳钢炒锅", "32 cm, pre-seasoned.", [("32 cm", 25_900, 300)]),
            ("Bamboo Steamer Set 竹蒸笼", "Two tiers with lid.", [("26 cm", 12_900, 400)]),
            ("Ceramic Rice Cooker 陶瓷电饭煲", "3 L, fuzzy logic.", [("3 L", 59_900, 150)]),
        ],
    ),
    "Summit Outdoor": (
        "Outdoor",
        [
            (
                "Ultralight Down Jacket 轻量羽绒服",
                "800 fill, packable.",
                [("M", 79_900, 200), ("L", 79_900, 200)],
            ),
            ("Trekking Poles Carbon 碳纤维登山杖", "Pair, 3 sections.", [("Pair", 32_900, 300)]),
            ("2-Person Tent 双人帐篷", "Freestanding, 1.9 kg.", [("Green", 129_900, 80)]),
        ],
    ),
    "Pixel Gadgets": (
        "Electronics",
        [
            ("Noise-Cancelling Earbuds 降噪耳机", "30 h battery.", [("Black", 49_900, 500)]),
            ("65W GaN Charger 氮化镓充电器", "3 ports.", [("White", 15_900, 700)]),
            ("Mechanical Keyboard 机械键盘", "Hot-swap, 75%.", [("Brown switch", 39_900, 200)]),
        ],
    ),
    "Little Sprout Baby": (
        "Baby",
        [
            (
                "Organic Cotton Bodysuits 有机棉连体衣",
                "Pack of 5.",
                [("0-3 m", 12_900, 300), ("3-6 m", 12_900, 300)],
            ),
            ("Silicone Feeding Set 硅胶餐具", "Plate, bowl, spoon.", [("Sage", 9_900, 400)]),
        ],
    ),
    "Silk Road Tea House": (
        "Tea",
        [
            (
                "West Lake Longjing 西湖龙井",
                "Pre-Qingming harvest, 250 g.",
                [("250 g", 36_800, 200)],
            ),
            ("Aged Pu'er Cake 陈年普洱饼", "357 g, 2015.", [("357 g", 45_800, 120)]),
        ],
    ),
    "Northwind Apparel": (
        "Apparel",
        [
            ("Linen Shirt 亚麻衬衫", "Relaxed fit.", [("S", 29_900, 200), ("M", 29_900, 250)]),
            ("Merino Crew Sweater 美利奴毛衣", "Machine washable.", [("M", 49_900, 150)]),
        ],
    ),
    "Handmade by Lan": (
        "Handmade",
        [
            (
                "Hand-thrown Tea Cups 手作茶杯",
                "Set of 2, celadon glaze.",
                [("Set of 2", 16_800, 60)],
            ),
            ("Indigo Tote Bag 蓝染托特包", "Hand-dyed cotton.", [("One size", 12_800, 80)]),
        ],
    ),
}


def seed(ctx: Any) -> None:
    """Build the deals part of the demo world through the services."""
    from juxing.demo import MERCHANT_NAMES

    rng = ctx.rng
    now = utcnow()
    with ctx.db.session() as s:
        operator: User = s.merge(ctx.users["operator"][0])
        cats = {
            name: catalog.create_category(session=s, name=name, name_zh=zh)
            for name, zh in CATEGORIES
        }
        festival = service.create_festival(
            session=s,
            user=operator,
            name="Star Festival",
            name_zh="聚星节",
            slug="star-festival",
            theme="Stars of every shop: deep deals for ten days",
            description="The Star Festival (聚星节): flash deals, group deals and red packets.",
            starts_at=now - timedelta(days=21),
            ends_at=now + timedelta(days=7),
        )
        merchants: dict[str, int] = {}
        items: list[dict[str, Any]] = []
        for (name, tier), user in zip(MERCHANT_NAMES, ctx.users["merchant"], strict=True):
            owner = s.merge(user)
            merchant = catalog.create_merchant(
                session=s, owner=owner, name=name, tier=tier, description=f"{name} on Juxing."
            )
            merchants[name] = merchant.id
            category, products = PRODUCTS[name]
            campaign = service.create_campaign(
                session=s,
                user=owner,
                festival_id=festival.id,
                merchant_id=merchant.id,
                title=f"{name} at the Star Festival",
            )
            for p_index, (title, description, skus) in enumerate(products):
                product = catalog.create_product(
                    session=s,
                    user=owner,
                    merchant_id=merchant.id,
                    title=title,
                    description=description,
                    category_id=cats[category].id,
                    skus=[
                        {"name": n, "list_price_minor": price, "currency": "CNY", "stock": st}
                        for n, price, st in skus
                    ],
                )
                sku = product.skus[0]
                upcoming = p_index == len(products) - 1 and len(products) > 2
                starts = now + timedelta(days=1) if upcoming else now - timedelta(days=20)
                group = name == "Jade Kitchenware" and p_index == 1
                nearly = name == "Pixel Gadgets" and p_index == 0
                item = service.add_deal_item(
                    session=s,
                    user=owner,
                    campaign_id=campaign.id,
                    sku_id=sku.id,
                    deal_price_minor=int(sku.list_price_minor * rng.choice([0.5, 0.6, 0.7]))
                    // 100
                    * 100
                    - 100
                    + 90,
                    deal_stock=30 if nearly else min(sku.stock // 2, 200),
                    per_user_limit=2 if nearly else 3,
                    starts_at=starts,
                    ends_at=now + timedelta(days=6),
                    group_size=3 if group else None,
                    group_window_s=86_400 if group else None,
                    commission_rate_bp=rng.choice([500, 800, 1000, 1500]),
                )
                items.append(
                    {
                        "id": item.id,
                        "merchant": name,
                        "upcoming": upcoming,
                        "group": group,
                        "nearly": nearly,
                    }
                )
            service.submit_campaign(session=s, user=owner, campaign_id=campaign.id)
            service.approve_campaign(session=s, user=operator, campaign_id=campaign.id)
        coupons.create_coupon(
            session=s,
            user=operator,
            title="Star Festival red packet 聚星红包",
            code="STAR20",
            kind="amount",
            amount_off_minor=2_000,
            min_spend_minor=9_900,
            valid_from=now - timedelta(days=21),
            valid_until=now + timedelta(days=7),
            per_shopper_cap=2,
            budget_minor=500_000,
            festival_id=festival.id,
        )
        huaxi_owner = s.merge(ctx.users["merchant"][0])
        coupons.create_coupon(
            session=s,
            user=huaxi_owner,
            title="Scan the Huaxi logo 扫Logo",
            code="SCAN-HUAXI",
            kind="percent",
            percent_off=10,
            max_discount_minor=3_000,
            valid_from=now - timedelta(days=21),
            valid_until=now + timedelta(days=7),
            per_shopper_cap=1,
            budget_minor=100_000,
            festival_id=festival.id,
            merchant_id=merchants["Huaxi Cosmetics"],
        )
    _order_history(ctx, items)


def _order_history(ctx: Any, items: list[dict[str, Any]]) -> None:
    """Shoppers' orders spread over the last three weeks."""
    rng = ctx.rng
    now = utcnow()
    buying = orders.Buying(redis_client=None)
    provider = SimulatedProvider("demo")
    live = [i for i in items if not i["upcoming"] and not i["group"] and not i["nearly"]]
    nearly = next(i for i in items if i["nearly"])
    shoppers = ctx.users["shopper"]
    refunded = False
    with ctx.db.session() as s:
        owners = {u.display_name: s.merge(u) for u in ctx.users["merchant"]}
        # the nearly sold-out deal: 27 of 30 gone
        bought = 0
        for shopper in shoppers:
            if bought >= 27:
                break
            q = min(2, 27 - bought)
            at = now - timedelta(hours=rng.randint(1, 48))
            o = orders.reserve(
                session=s,
                ctx=buying,
                shopper=s.merge(shopper),
                deal_item_id=nearly["id"],
                quantity=q,
                now=at,
            )
            orders.mark_paid(session=s, ctx=buying, order_id=o.id, now=at + timedelta(minutes=3))
            bought += q
        for shopper in shoppers:
            shopper = s.merge(shopper)
            for item in rng.sample(live, k=min(len(live), rng.randint(2, 5))):
                at = now - timedelta(days=rng.uniform(0.2, 19))
                o = orders.reserve(
                    session=s,
                    ctx=buying,
                    shopper=shopper,
                    deal_item_id=item["id"],
                    quantity=rng.choice([1, 1, 1, 2]),
                    now=at,
                    visitor_id=f"demo-{shopper.id}",
                )
                fate = rng.random()
                if fate < 0.08:
                    orders.cancel(session=s, ctx=buying, order_id=o.id, reason="shopper_cancelled")
                    continue
                if fate < 0.12 and at > now - timedelta(minutes=15):
                    continue  # still waiting for payment
                orders.mark_paid(
                    session=s,
                    ctx=buying,
                    order_id=o.id,
                    now=at + timedelta(minutes=rng.randint(1, 10)),
                )
                owner = owners[item["merchant"]]
                if at < now - timedelta(days=2):
                    orders.ship(session=s, user=owner, order_id=o.id)
                    if rng.random() < 0.7:
                        orders.confirm_receipt(
                            session=s, order_id=o.id, now=at + timedelta(days=rng.uniform(1.5, 4))
                        )
                    elif not refunded:
                        orders.refund(
                            session=s,
                            ctx=buying,
                            provider=provider,
                            order_id=o.id,
                            user=owner,
                            reason="Arrived damaged",
                        )
                        refunded = True
