"""The feed benchmark's generated world, built with bulk inserts and cached on disk.

100,000 shoppers, 2,000 merchants, 5,000 creators, 50,000 products, 20,000 posts, a live
festival with 1,000 deal items, ~60,000 follows and 2,000,000 behaviour events whose
sequences have structure (shoppers browse within a home category, popular items first), then
a trained model version. Rebuilt only when ``WORLD_VERSION`` or the sizes change.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import insert

from juxing.kit.db import Database
from juxing.kit.migrate import upgrade
from juxing.kit.security import hash_token, new_api_token

WORLD_VERSION = 3
SIZES = {
    "shoppers": 100_000,
    "merchants": 2_000,
    "creators": 5_000,
    "products": 50_000,
    "posts": 20_000,
    "categories": 200,
    "deal_items": 1_000,
    "events": 2_000_000,
    "tokens": 2_000,
}
FMT = "%Y-%m-%d %H:%M:%S.%f"


def _ts(dt: datetime) -> str:
    return dt.astimezone(UTC).replace(tzinfo=None).strftime(FMT)


def world_is_cached(folder: Path) -> dict[str, Any] | None:
    meta = folder / "world.json"
    if not meta.is_file():
        return None
    data = json.loads(meta.read_text())
    if data.get("version") != WORLD_VERSION or data.get("sizes") != SIZES:
        return None
    return data


def build_world(folder: Path, log: Any = print) -> dict[str, Any]:
    """Create ``folder/juxing.db`` with the world and a trained model; returns its metadata.

    The data and the model are two steps: when the data exist already (``world-data.json``),
    only the model is trained again.
    """
    from juxing.feed.training import train

    data_meta = folder / "world-data.json"
    if data_meta.is_file():
        data = json.loads(data_meta.read_text())
        if data.get("version") == WORLD_VERSION and data.get("sizes") == SIZES:
            return _train_and_save(folder, data, train, log)
    folder.mkdir(parents=True, exist_ok=True)
    for suffix in ("", "-wal", "-shm"):
        Path(f"{folder / 'juxing.db'}{suffix}").unlink(missing_ok=True)
    (folder / "world.json").unlink(missing_ok=True)
    url = f"sqlite:///{(folder / 'juxing.db').resolve()}"
    started = time.perf_counter()
    upgrade(url)
    db = Database(url)
    rng = np.random.default_rng(42)
    now = datetime.now(UTC)
    s = SIZES
    tokens: list[str] = []
    import juxing.models  # noqa: F401
    from juxing.models.accounts import ApiToken, User, UserRole
    from juxing.models.catalog import Category, Merchant, Product, Sku
    from juxing.models.content import CreatorProfile, Follow, Post
    from juxing.models.deals import Campaign, DealItem, Festival

    with db.engine.begin() as conn:
        n_users = s["shoppers"] + s["merchants"] + s["creators"]
        log(f"world: {n_users:,} users")
        conn.execute(
            insert(User),
            [
                {
                    "id": i,
                    "email": f"u{i}@bench.test",
                    "display_name": f"User {i}",
                    "password_hash": "-",
                    "is_active": True,
                    "locale": "en",
                }
                for i in range(1, n_users + 1)
            ],
        )
        shoppers = range(1, s["shoppers"] + 1)
        merchant_owners = range(s["shoppers"] + 1, s["shoppers"] + s["merchants"] + 1)
        creators = range(s["shoppers"] + s["merchants"] + 1, n_users + 1)
        roles = [{"user_id": u, "role": "shopper", "granted_at": now} for u in shoppers]
        roles += [{"user_id": u, "role": "merchant", "granted_at": now} for u in merchant_owners]
        roles += [{"user_id": u, "role": "creator", "granted_at": now} for u in creators]
        conn.execute(insert(UserRole), roles)
        picked = rng.choice(s["shoppers"], size=s["tokens"], replace=False) + 1
        rows = []
        for u in picked.tolist():
            raw = new_api_token()
            tokens.append(raw)
            rows.append(
                {
                    "user_id": u,
                    "name": "bench",
                    "token_hash": hash_token(raw),
                    "hint": raw[:10],
                    "created_at": now,
                    "last_used_at": now,
                }
            )
        conn.execute(insert(ApiToken), rows)
        log("world: catalog")
        conn.execute(
            insert(Category),
            [{"id": c, "name": f"Category {c}"} for c in range(1, s["categories"] + 1)],
        )
        tiers = rng.choice(
            ["key_account", "growing", "new"], p=[0.1, 0.3, 0.6], size=s["merchants"]
        )
        conn.execute(
            insert(Merchant),
            [
                {"id": m + 1, "owner_id": owner, "name": f"Shop {m + 1}", "tier": str(tiers[m])}
                for m, owner in enumerate(merchant_owners)
            ],
        )
        # Big merchants own many products: merchant of a product ~ Zipf.
        product_merchant = np.minimum(rng.zipf(1.4, s["products"]), s["merchants"])
        product_merchant = (product_merchant * 7919) % s["merchants"] + 1
        product_cat = rng.integers(1, s["categories"] + 1, s["products"])
        created = [now - timedelta(days=float(d)) for d in rng.uniform(0, 120, s["products"])]
        conn.execute(
            insert(Product),
            [
                {
                    "id": p + 1,
                    "merchant_id": int(product_merchant[p]),
                    "category_id": int(product_cat[p]),
                    "title": f"Product {p + 1}",
                    "status": "active",
                    "created_at": created[p],
                    "updated_at": created[p],
                }
                for p in range(s["products"])
            ],
        )
        prices = rng.integers(500, 50_000, s["products"])
        conn.execute(
            insert(Sku),
            [
                {
                    "id": p + 1,
                    "product_id": p + 1,
                    "name": "standard",
                    "list_price_minor": int(prices[p]),
                    "currency": "CNY",
                    "stock": 100,
                    "status": "active",
                }
                for p in range(s["products"])
            ],
        )
        levels = rng.choice([1, 2, 3, 4, 5], p=[0.3, 0.3, 0.2, 0.15, 0.05], size=s["creators"])
        conn.execute(
            insert(CreatorProfile),
            [
                {
                    "user_id": c,
                    "handle": f"creator{c}",
                    "display_name": f"Creator {c}",
                    "level": int(levels[i]),
                    "approved_at": now - timedelta(days=int(rng.integers(1, 700))),
                }
                for i, c in enumerate(creators)
            ],
        )
        post_author = rng.choice(np.array(list(creators)), size=s["posts"])
        post_cat = rng.integers(1, s["categories"] + 1, s["posts"])
        published = [now - timedelta(days=float(d)) for d in rng.uniform(0, 60, s["posts"])]
        conn.execute(
            insert(Post),
            [
                {
                    "id": p + 1,
                    "author_id": int(post_author[p]),
                    "author_kind": "creator",
                    "type": "article",
                    "title": f"Post {p + 1}",
                    "category_id": int(post_cat[p]),
                    "status": "published",
                    "published_at": published[p],
                }
                for p in range(s["posts"])
            ],
        )
        log("world: festival deals and follows")
        conn.execute(
            insert(Festival),
            [
                {
                    "id": 1,
                    "name": "Star Festival",
                    "slug": "star",
                    "starts_at": now - timedelta(days=1),
                    "ends_at": now + timedelta(days=30),
                }
            ],
        )
        deal_products = rng.choice(s["products"], size=s["deal_items"], replace=False) + 1
        deal_merchants = sorted({int(product_merchant[p - 1]) for p in deal_products})
        conn.execute(
            insert(Campaign),
            [
                {
                    "id": i + 1,
                    "festival_id": 1,
                    "merchant_id": m,
                    "title": f"Deals of shop {m}",
                    "status": "live",
                    "starts_at": now - timedelta(days=1),
                    "ends_at": now + timedelta(days=30),
                }
                for i, m in enumerate(deal_merchants)
            ],
        )
        campaign_of = {m: i + 1 for i, m in enumerate(deal_merchants)}
        conn.execute(
            insert(DealItem),
            [
                {
                    "campaign_id": campaign_of[int(product_merchant[p - 1])],
                    "sku_id": int(p),
                    "product_id": int(p),
                    "merchant_id": int(product_merchant[p - 1]),
                    "deal_price_minor": max(1, int(prices[p - 1]) // 2),
                    "deal_stock": 100,
                    "available": 100,
                    "starts_at": now - timedelta(days=1),
                    "ends_at": now + timedelta(days=30),
                }
                for p in deal_products.tolist()
            ],
        )
        followers = rng.choice(s["shoppers"], size=s["shoppers"] * 3 // 10, replace=False) + 1
        follows = set()
        for u in followers.tolist():
            for c in rng.choice(np.array(list(creators)), size=int(rng.integers(1, 4))):
                follows.add((u, "creator", int(c)))
        conn.execute(
            insert(Follow),
            [{"follower_id": u, "target_kind": k, "target_id": t} for u, k, t in sorted(follows)],
        )
    log(f"world: {s['events']:,} behaviour events")
    _events(db, rng, now, product_cat, post_cat)
    db.dispose()
    data = {
        "version": WORLD_VERSION,
        "sizes": SIZES,
        "tokens": tokens,
        "build_seconds": round(time.perf_counter() - started, 1),
    }
    data_meta.write_text(json.dumps(data))
    log(f"world: built in {data['build_seconds']:.0f} s; training the model")
    return _train_and_save(folder, data, train, log)


def _train_and_save(folder: Path, data: dict[str, Any], train: Any, log: Any) -> dict[str, Any]:
    db = Database(f"sqlite:///{(folder / 'juxing.db').resolve()}")
    try:
        result = train(db, folder)
    finally:
        db.dispose()
    log(f"world: model {result.version} trained in {result.train_seconds:.0f} s")
    meta = {
        **data,
        "train_seconds": round(result.train_seconds, 1),
        "model_version": result.version,
    }
    (folder / "world.json").write_text(json.dumps(meta))
    return meta


def _events(
    db: Database,
    rng: np.random.Generator,
    now: datetime,
    product_cat: np.ndarray,
    post_cat: np.ndarray,
) -> None:
    """Shoppers browse mostly within a home category, popular items more often."""
    s = SIZES
    by_cat = [np.flatnonzero(product_cat == c) + 1 for c in range(s["categories"] + 1)]
    posts_by_cat = [np.flatnonzero(post_cat == c) + 1 for c in range(s["categories"] + 1)]
    lengths = rng.poisson(s["events"] / s["shoppers"], s["shoppers"]).clip(1)
    lengths = (lengths * (s["events"] / lengths.sum())).astype(np.int64).clip(1)
    lengths[: s["events"] - int(lengths.sum())] += 1
    users = np.repeat(np.arange(1, s["shoppers"] + 1), lengths)[: s["events"]]
    n = len(users)
    home = rng.integers(1, s["categories"] + 1, s["shoppers"] + 1)
    wander = rng.random(n) < 0.15
    cats = np.where(wander, rng.integers(1, s["categories"] + 1, n), home[users])
    ranks = rng.zipf(1.6, n) - 1
    is_post = rng.random(n) < 0.12
    actions = rng.choice(
        ["view", "click", "fav", "cart", "buy", "share"],
        p=[0.72, 0.1, 0.05, 0.07, 0.04, 0.02],
        size=n,
    )
    start = now - timedelta(days=30)
    offsets = np.sort(rng.uniform(0, 30 * 86400, n))
    conn = db.engine.raw_connection()
    try:
        cur = conn.cursor()
        cur.execute("BEGIN")
        received = _ts(now)
        batch = []
        for i in range(n):
            c = int(cats[i])
            if is_post[i] and len(posts_by_cat[c]):
                pool, ttype = posts_by_cat[c], "post"
            else:
                pool, ttype = by_cat[c], "product"
            target = int(pool[int(ranks[i]) % len(pool)])
            at = start + timedelta(seconds=float(offsets[i]))
            batch.append(
                (
                    "app",
                    int(users[i]),
                    str(actions[i]),
                    ttype,
                    target,
                    None,
                    None,
                    f"g{i}",
                    _ts(at),
                    received,
                )
            )
            if len(batch) == 50_000:
                cur.executemany(_INSERT, batch)
                batch.clear()
        if batch:
            cur.executemany(_INSERT, batch)
        cur.execute("COMMIT")
    finally:
        conn.close()


_INSERT = (
    "INSERT INTO behavior_events (source, user_id, action, target_type, target_id, category_id,"
    " dwell_ms, client_event_id, occurred_at, received_at) VALUES (?,?,?,?,?,?,?,?,?,?)"
)
