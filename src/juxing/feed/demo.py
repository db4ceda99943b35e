"""Demo seeder of the feed: behaviour history for the demo shoppers, a trained model and the
default long-tail traffic policy, so every demo home feed is personal and explained.

Runs after the deals and content seeders (it uses whatever products and posts they made).
"""

from __future__ import annotations

import contextlib
from datetime import timedelta
from typing import Any

from sqlalchemy import select

from juxing.config import get_settings
from juxing.content import service as content
from juxing.feed import events as event_store
from juxing.feed import service, training
from juxing.kit.errors import JuxingError
from juxing.kit.time import utcnow
from juxing.models.catalog import Product
from juxing.models.content import FollowTarget, Post

SESSIONS_PER_SHOPPER = 4
STEPS = 6


def seed(ctx: Any) -> None:
    """Browse, cart and buy for every demo shopper; train; switch the default policy on."""
    rng = ctx.rng
    with ctx.db.session() as session:
        products = list(session.execute(select(Product.id, Product.category_id)).all())
        posts = list(session.scalars(select(Post.id).where(Post.status == "published")))
        if not products:
            return
        by_cat: dict[int | None, list[int]] = {}
        for pid, cat in products:
            by_cat.setdefault(cat, []).append(pid)
        cats = sorted(by_cat, key=lambda c: (c is None, c or 0))
        shoppers = ctx.users.get("shopper", []) + ctx.users.get("creator", [])
        now = utcnow()
        rows = []
        for s_i, user in enumerate(shoppers):
            favourite = cats[s_i % len(cats)]
            t = now - timedelta(days=14)
            for sess in range(SESSIONS_PER_SHOPPER):
                cat = favourite if rng.random() < 0.7 else rng.choice(cats)
                pool = by_cat[cat]
                start = rng.randrange(len(pool))
                for step in range(STEPS):
                    pid = pool[(start + step) % len(pool)]
                    action = "view"
                    if step == STEPS - 1:
                        action = rng.choice(["cart", "buy", "fav", "view"])
                    t += timedelta(minutes=rng.randint(1, 30))
                    rows.append(_row(user.id, action, "product", pid, f"demo-{sess}-{step}", t))
                if posts and rng.random() < 0.5:
                    post = rng.choice(posts)
                    rows.append(_row(user.id, "view", "post", post, f"demo-{sess}-post", t))
                t += timedelta(days=3)
            creators = [c for c in ctx.users.get("creator", []) if c.id != user.id]
            if creators and rng.random() < 0.6:
                # A creator the content seeder did not approve cannot be followed: skip.
                with contextlib.suppress(JuxingError):
                    content.follow(
                        session=session,
                        user=user,
                        kind=FollowTarget.CREATOR,
                        target_id=rng.choice(creators).id,
                    )
        event_store.insert_new(session, rows)
        operator = ctx.users["operator"][0] if ctx.users.get("operator") else None
        service.ensure_default_policy(session=session, operator=operator)
    try:
        training.train(ctx.db, get_settings().data_dir)
    except ValueError as exc:  # too few events (e.g. an empty catalog): cold-start feed only
        ctx.console.print(f"feed demo: no model trained ({exc})")


def _row(user_id: int, action: str, ttype: str, tid: int, cid: str, at: Any) -> dict[str, Any]:
    return {
        "source": "app",
        "user_id": user_id,
        "action": action,
        "target_type": ttype,
        "target_id": tid,
        "category_id": None,
        "dwell_ms": None,
        "client_event_id": cid,
        "occurred_at": at,
        "received_at": utcnow(),
    }
