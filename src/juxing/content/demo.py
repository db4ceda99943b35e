"""Demo content: creator profiles (levels 1-5, one brand-new), shoppable posts in Chinese and
English recommending the demo deals, a scheduled and a live room, follows, and a couple of
posts waiting in the moderation queue. Built through the services, like real use."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import select

from juxing.content import service
from juxing.demo import CREATOR_NAMES, DemoContext
from juxing.kit.time import utcnow
from juxing.models.catalog import Merchant, Product
from juxing.models.content import FollowTarget
from juxing.models.deals import Campaign, DealItem
from juxing.search.products import sweep_products

LEVELS = [5, 4, 3, 3, 2, 2, 1, 2]  # "New Voice Qiao" (index 6) is brand-new
BIOS = [
    "美妆博主 · 成分党 · 只推荐自己用过的 | Skincare that works, tested on my own skin.",
    "家常菜和厨房好物 | Kitchen tools I actually cook with.",
    "徒步十年，装备控 | Ten years on the trails; gear reviews.",
    "数码开箱，不吹不黑 | Honest unboxings.",
    "两个孩子的妈妈，精挑细选 | Picks from a mum of two.",
    "通勤穿搭 · 小个子 | Workwear for petite frames.",
    "新人报到，请多关照！ | New here — say hi!",
    "学生党省钱攻略 | Budget finds for students.",
]


def _handle(name: str) -> str:
    return "".join(ch for ch in name.lower().replace(" ", "_") if ch.isalnum() or ch == "_")[:32]


def _deal_items(session: Any, limit: int = 60) -> list[tuple[DealItem, str]]:
    rows = session.execute(
        select(DealItem, Product.title)
        .join(Campaign, Campaign.id == DealItem.campaign_id)
        .join(Product, Product.id == DealItem.product_id)
        .where(Campaign.status.in_(["scheduled", "live"]), DealItem.ends_at > utcnow())
        .order_by(DealItem.id)
        .limit(limit)
    ).all()
    return [(item, title) for item, title in rows]


def _posts_for(i: int, picks: list[tuple[DealItem, str]]) -> list[dict[str, Any]]:
    cards = [
        {"product_id": d.product_id, "deal_item_id": d.id, "note": note}
        for (d, _t), note in zip(
            picks,
            ["闭眼入，回购第三次了", "Great value at this price", "送礼很有面子"],
            strict=False,
        )
    ]
    titles = [t for _d, t in picks] or ["好物"]
    return [
        {
            "type": "list",
            "title": f"本周必买清单：{titles[0]} 等 {len(cards)} 件好物",
            "summary": "聚划算期间的真心推荐，价格和库存实时更新。",
            "body_markdown": (
                "## 为什么推荐\n\n- 自用半年以上\n- 活动价比平时低\n\n**库存有限，先到先得。**"
            ),
            "cards": cards,
        },
        {
            "type": "article",
            "title": f"Honest review: {titles[0]}",
            "summary": "What I liked, what I didn't, and whether the deal is worth it.",
            "body_markdown": (
                "I have used this for **three months**.\n\n"
                "1. Build quality is solid\n2. The deal price is the best I have seen this year\n\n"
                "> Tip: set a reminder before the deal starts."
            ),
            "cards": cards[:1],
        },
        {
            "type": "video",
            "title": f"开箱视频｜{titles[-1]}",
            "summary": "60 秒看懂要不要买",
            "video_url": f"https://video.juxing.demo/unboxing/{i}.mp4",
            "cover_image_url": f"https://img.juxing.demo/covers/{i}.jpg",
            "body_markdown": "视频里有详细对比，欢迎评论区提问。",
            "cards": cards[-1:],
        },
    ]


def seed(ctx: DemoContext) -> None:
    creators = ctx.users.get("creator", [])
    operator = ctx.users["operator"][0]
    shoppers = ctx.users.get("shopper", [])
    with ctx.db.session() as session:
        deals = _deal_items(session)
        for i, (user, (name, _zh)) in enumerate(zip(creators, CREATOR_NAMES, strict=False)):
            user = session.merge(user)
            app = service.apply_as_creator(
                session=session, user=user, handle=_handle(name), bio=BIOS[i % len(BIOS)],
                pitch="Demo creator.",
            )  # fmt: skip
            service.approve_application(
                session=session, operator=session.merge(operator), application_id=app.id,
                level=LEVELS[i % len(LEVELS)],
            )  # fmt: skip
        session.flush()
        # Follows: each shopper follows a few creators and a shop.
        merchant_ids = list(session.scalars(select(Merchant.id).order_by(Merchant.id)))
        for k, shopper in enumerate(shoppers):
            shopper = session.merge(shopper)
            for creator in ctx.rng.sample(creators, k=min(len(creators), 1 + k % 3)):
                if creator.id != shopper.id:
                    service.follow(
                        session=session, user=shopper, kind=FollowTarget.CREATOR,
                        target_id=creator.id,
                    )  # fmt: skip
            if merchant_ids:
                service.follow(
                    session=session, user=shopper, kind=FollowTarget.MERCHANT,
                    target_id=merchant_ids[k % len(merchant_ids)],
                )  # fmt: skip
        for i, user in enumerate(creators):
            if LEVELS[i % len(LEVELS)] == 1:
                continue  # the brand-new creator has not posted yet
            user = session.merge(user)
            picks = [deals[(i * 3 + k) % len(deals)] for k in range(3)] if deals else []
            for data in _posts_for(i, picks):
                if data["type"] == "list" and not data["cards"]:
                    data["type"] = "article"
                post = service.create_post(session=session, user=user, data=data)
                service.publish_post(session=session, user=user, post_id=post.id)
        # Two posts for the moderation queue.
        if len(creators) >= 2:
            a, b = session.merge(creators[0]), session.merge(creators[1])
            flagged = [
                (a, {"type": "article", "title": "私下交易更便宜",
                     "body_markdown": "想要的加微信私聊，比活动价还低。"}),
                (b, {"type": "article", "title": "Lowest price ever!!!",
                     "body_markdown": "Grab it at https://bit.ly/jx-demo before it is gone"}),
            ]  # fmt: skip
            for user, data in flagged:
                post = service.create_post(session=session, user=user, data=data)
                service.publish_post(session=session, user=user, post_id=post.id)
        # Live rooms: one scheduled for tomorrow evening, one live now with a pinned deal.
        if creators:
            host = session.merge(creators[0])
            items = [
                {"product_id": d.product_id, "deal_item_id": d.id, "live_only": k == 0,
                 "note": "直播间专享" if k == 0 else ""}
                for k, (d, _t) in enumerate(deals[:4])
            ]  # fmt: skip
            now = utcnow()
            service.create_room(
                session=session, user=host,
                data={"title": "明晚8点 · 双11护肤专场", "scheduled_at": now + timedelta(days=1),
                      "description": "Tomorrow 20:00 — skincare special.", "items": items},
            )  # fmt: skip
            live = service.create_room(
                session=session, user=host,
                data={"title": "正在直播：好物秒杀", "scheduled_at": now - timedelta(minutes=10),
                      "description": "Live now: flash deals.", "items": items},
            )  # fmt: skip
            service.start_room(session=session, user=host, room_id=live.id)
            if live.items:
                service.pin_item(
                    session=session, user=host, room_id=live.id, item_id=live.items[0].id
                )
        sweep_products(session=session, limit=5000)
