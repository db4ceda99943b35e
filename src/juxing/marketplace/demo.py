"""Demo marketplace: briefs in every state, audience segments and dashboard history.

Runs last, after the deals, content and feed seeders, and uses what they made: the demo shops
and their products, the creators' published posts, the shoppers' behaviour history. It posts
open briefs with applications, one accepted brief whose fixed fee sits in escrow (the
merchant's marketing balance is topped up first), one delivered and approved (fee released to
the creator), computes the audience segments from the behaviour log, and backfills the
dashboard rollups over the demo's history so the charts have something to show.

If no shop exists yet (no deals seeder in this build), the demo merchants open their shops and
list a few products through the catalog service first.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from juxing.analytics import rollups
from juxing.analytics import service as analytics
from juxing.catalog import service as catalog
from juxing.content import service as content
from juxing.demo import MERCHANT_NAMES, DemoContext
from juxing.kit.time import utcnow
from juxing.marketplace import service
from juxing.models.accounts import User
from juxing.models.catalog import Merchant, Product
from juxing.models.content import CreatorProfile, Post
from juxing.models.events import BehaviorEvent
from juxing.models.orders import Order

CURRENCY = "CNY"
TOP_UP_MINOR = 2_000_000  # ¥20,000 marketing balance per shop
FALLBACK_PRODUCTS = [
    ("Glow serum 30 ml", 16900),
    ("Cast-iron wok", 25900),
    ("Trail jacket", 69900),
]
BRIEFS: list[dict[str, Any]] = [
    {
        "title": "Morning routine with our best seller",
        "description": "Show the product in a real morning routine; honest pros and cons.",
        "deliverable": "post",
        "post_type": "article",
        "commission_rate_bp": 1500,
        "fixed_fee_minor": 50_000,
        "budget_minor": 300_000,
    },
    {
        "title": "Double 11 live session: 20 minutes on our shop",
        "description": "A live segment during the festival with the deal price pinned.",
        "deliverable": "live",
        "post_type": None,
        "commission_rate_bp": 2000,
        "fixed_fee_minor": 120_000,
        "budget_minor": 360_000,
    },
    {
        "title": "Pure-commission shopping list",
        "description": "Add our products to your next list post; 25% on every sale.",
        "deliverable": "post",
        "post_type": None,
        "commission_rate_bp": 2500,
        "fixed_fee_minor": 0,
        "budget_minor": 0,
    },
]
PITCHES = [
    "我的粉丝以25-35岁的上班族为主，很适合这款产品。",
    "I reviewed a similar product last month; it drove 300+ clicks.",
    "可以做一期对比测评，真实使用两周后出稿。",
]


def _shops(session: Session, ctx: DemoContext) -> list[tuple[Merchant, User]]:
    """The demo merchants' shops (opened here, with a few products, if none exist yet)."""
    merchants = [session.merge(u) for u in ctx.users.get("merchant", [])]
    shops: list[tuple[Merchant, User]] = []
    for i, owner in enumerate(merchants):
        shop = session.scalar(
            select(Merchant).where(Merchant.owner_id == owner.id).order_by(Merchant.id)
        )
        if shop is None:
            name, tier = MERCHANT_NAMES[i % len(MERCHANT_NAMES)]
            shop = catalog.create_merchant(session=session, owner=owner, name=name, tier=tier)
            for title, price in FALLBACK_PRODUCTS:
                catalog.create_product(
                    session=session,
                    user=owner,
                    merchant_id=shop.id,
                    title=f"{name} · {title}",
                    skus=[{"name": "default", "list_price_minor": price, "stock": 500}],
                )
        shops.append((shop, owner))
    return shops


def _published_post(session: Session, creator: User, post_type: str | None) -> Post:
    """One of the creator's published posts (of that type), written now if there is none."""
    q = select(Post).where(Post.author_id == creator.id, Post.status == "published")
    if post_type:
        q = q.where(Post.type == post_type)
    post = session.scalar(q.order_by(Post.id))
    if post is not None:
        return post
    post = content.create_post(
        session=session,
        user=creator,
        data={
            "type": post_type or "article",
            "title": "三周真实使用感受 | Three weeks with it",
            "summary": "What worked, what did not.",
            "body_markdown": "Used every morning for **three weeks**. Worth it at the deal price.",
        },
    )
    content.publish_post(session=session, user=creator, post_id=post.id)
    return session.get_one(Post, post.id)


def seed(ctx: DemoContext) -> None:
    """Briefs in every state, segments, and the dashboard rollups over the demo history."""
    rng = ctx.rng
    now = utcnow()
    with ctx.db.session() as session:
        shops = _shops(session, ctx)
        approved = set(session.scalars(select(CreatorProfile.user_id)))
        creators = [session.merge(u) for u in ctx.users.get("creator", []) if u.id in approved]
        if not shops or not creators:
            ctx.console.print("marketplace demo: no shops or approved creators; skipped")
            return
        briefs = []
        for s_i, (shop, owner) in enumerate(shops[:4]):
            service.top_up(
                session=session,
                merchant_id=shop.id,
                amount_minor=TOP_UP_MINOR,
                currency=CURRENCY,
                reference=f"demo-top-up-{shop.id}",
            )
            products = list(
                session.scalars(
                    select(Product.id).where(Product.merchant_id == shop.id).order_by(Product.id)
                )
            )
            if not products:
                continue
            for b_i, spec in enumerate(BRIEFS[: 2 if s_i else 3]):
                brief = service.create_brief(
                    session=session,
                    user=owner,
                    merchant_id=shop.id,
                    currency=CURRENCY,
                    deadline=now + timedelta(days=5 + 3 * b_i),
                    wanted_segments=[],
                    items=[service.ItemSpec(product_id=p) for p in products[:2]],
                    **spec,
                )
                briefs.append((brief, owner))
        # Applications: two or three creators pitch for each brief.
        applications = []
        for brief, owner in briefs:
            for creator in rng.sample(creators, k=min(len(creators), 2 + rng.randrange(2))):
                app = service.apply(
                    session=session,
                    user=creator,
                    brief_id=brief.id,
                    pitch=rng.choice(PITCHES),
                )
                applications.append((app, brief, owner, creator))
        post_apps = [a for a in applications if a[1].deliverable == "post" and a[1].fixed_fee_minor]
        # One accepted (fee in escrow), one delivered and approved (fee released).
        if post_apps:
            app, _brief, owner, _creator = post_apps[0]
            service.accept(session=session, user=owner, application_id=app.id)
        done = next((a for a in post_apps[1:] if a[1].id != post_apps[0][1].id), None)
        if done is not None:
            app, brief, owner, creator = done
            service.accept(session=session, user=owner, application_id=app.id)
            post = _published_post(session, creator, brief.post_type)
            service.deliver(
                session=session,
                user=creator,
                application_id=app.id,
                post_id=post.id,
                live_room_id=None,
            )
            service.approve(session=session, user=owner, application_id=app.id)
        # One declined, so every state shows up in the lists.
        rest = [a for a in applications if a[0].status == "applied"]
        if len(rest) > 3:
            app, _brief, owner, _creator = rest[-1]
            service.decline(session=session, user=owner, application_id=app.id)
        shoppers = session.scalar(select(func.count(func.distinct(BehaviorEvent.user_id)))) or 0
        if shoppers >= 2:
            result = analytics.compute_segments(session=session, k=min(6, shoppers))
            ctx.console.print(f"marketplace demo: {len(result.segments)} audience segments")
    with ctx.db.session() as session:
        rollups.refresh(session, start=_history_start(session, now), end=now + timedelta(hours=1))


def _history_start(session: Session, now: datetime) -> datetime:
    """Where the demo's history begins: its first behaviour event or order (at most 60 days)."""
    firsts = [
        session.scalar(select(func.min(BehaviorEvent.occurred_at))),
        session.scalar(select(func.min(Order.created_at))),
    ]
    found = [rollups.floor_hour(t) for t in firsts if t is not None]
    return max(min(found, default=now - timedelta(days=1)), now - timedelta(days=60))
