"""An in-memory snapshot of everything the feed can show, rebuilt in the background.

Products (with their lowest list price and any live festival deal) and published posts are
loaded with a handful of bulk queries into flat arrays indexed by a dense item index, along
with what the ranking and the traffic policy need to know of each item: merchant, merchant
tier, creator, category, freshness, popularity and exposure. Serving a feed then reads only
these arrays (plus the shopper's own recent events and follows).

Building a snapshot groups the recent event log (millions of rows), so API processes do not
do it: the ``feed.snapshot`` worker job and ``juxing train`` write it to
``<data_dir>/feed/snapshot.pkl`` (written to a temporary file and renamed, so readers see a
whole file or the previous one), and every API process loads the newest file when its
modification time changes.
"""

from __future__ import annotations

import os
import pickle
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from juxing.kit.time import utcnow
from juxing.models.catalog import Merchant, Product, ProductStatus, Sku
from juxing.models.content import CREATOR_LEVEL_NEW, CreatorProfile, Post, PostStatus
from juxing.models.deals import Campaign, CampaignStatus, DealItem
from juxing.models.events import BehaviorEvent
from juxing.models.feed import FeedImpression

TIERS = ("new", "growing", "key_account")
POPULARITY_DAYS = 30
EXPOSURE_DAYS = 7
FRESH_DAYS = 7
ACTION_WEIGHT = {"view": 1.0, "click": 1.0, "share": 2.0, "fav": 3.0, "cart": 3.0, "buy": 5.0}
POOL_SIZE = 200
PER_AUTHOR = 8


def item_key(kind: str, item_id: int) -> str:
    return f"{kind}:{item_id}"


@dataclass
class CatalogSnapshot:
    """Flat per-item arrays (index = dense item index) and precomputed candidate pools."""

    keys: list[str]
    kind: list[str]
    ids: np.ndarray
    titles: list[str]
    merchant: np.ndarray  # -1: none
    creator: np.ndarray  # -1: none (posts by merchants have a merchant instead)
    category: np.ndarray  # -1: none
    tier: np.ndarray  # index into TIERS, -1: none
    created_ts: np.ndarray
    price_minor: np.ndarray  # -1: unknown
    currency: list[str | None]
    deal_item: np.ndarray  # -1: no live deal
    deal_price_minor: np.ndarray
    popularity: np.ndarray  # weighted recent events, scaled to [0, 1]
    exposure: np.ndarray  # recent impressions
    merchant_activity: dict[int, float]  # sales + exposure per merchant (long-tail basis)
    creator_level: dict[int, int]
    creator_approved_ts: dict[int, float]
    names: dict[str, str]  # "creator:7" / "merchant:3" -> display name
    built_at: datetime
    index: dict[str, int] = field(default_factory=dict)
    by_creator: dict[int, list[int]] = field(default_factory=dict)
    by_merchant: dict[int, list[int]] = field(default_factory=dict)
    trending: list[int] = field(default_factory=list)
    fresh: list[int] = field(default_factory=list)
    deals: list[int] = field(default_factory=list)
    # Derived lookups (masks, per-item tuples), computed on first use, never pickled.
    _masks: dict[tuple[str, float], Any] = field(default_factory=dict)
    # Plain-Python copies for the per-item loops of the re-ranking and the response (indexing
    # a list is several times cheaper than indexing a numpy array one element at a time).
    merchant_l: list[int] = field(default_factory=list)
    creator_l: list[int] = field(default_factory=list)
    category_l: list[int] = field(default_factory=list)
    tier_l: list[int] = field(default_factory=list)
    ids_l: list[int] = field(default_factory=list)
    price_l: list[int | None] = field(default_factory=list)
    deal_item_l: list[int | None] = field(default_factory=list)
    deal_price_l: list[int | None] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.index = {k: i for i, k in enumerate(self.keys)}
        self.merchant_l = self.merchant.tolist()
        self.creator_l = self.creator.tolist()
        self.category_l = self.category.tolist()
        self.tier_l = self.tier.tolist()
        self.ids_l = self.ids.tolist()
        self.price_l = [None if v < 0 else v for v in self.price_minor.tolist()]
        self.deal_item_l = [None if v < 0 else v for v in self.deal_item.tolist()]
        self.deal_price_l = [None if v < 0 else v for v in self.deal_price_minor.tolist()]

    @property
    def n_items(self) -> int:
        return len(self.keys)

    def longtail_mask(self, percentile: float) -> np.ndarray:
        """Items of merchants below ``percentile`` of merchant sales + exposure."""
        cache_key = ("longtail", percentile)
        if cache_key not in self._masks:
            merchants = sorted({int(m) for m in self.merchant if m >= 0})
            if merchants:
                activity = np.array([self.merchant_activity.get(m, 0.0) for m in merchants])
                cut = float(np.percentile(activity, percentile))
                small = {m for m, a in zip(merchants, activity, strict=True) if a <= cut}
                # When everyone is equally active there is no head: nobody is long tail.
                if len(small) == len(merchants) or activity.max() == activity.min():
                    small = set()
            else:
                small = set()
            lookup = np.array(sorted(small), dtype=np.int64)
            self._masks[cache_key] = np.isin(self.merchant, lookup) & (self.merchant >= 0)
        return self._masks[cache_key]

    def new_creator_mask(self, days: int) -> np.ndarray:
        """Posts by creators at the entry level or approved within ``days``."""
        cache_key = ("new_creator", float(days))
        if cache_key not in self._masks:
            since = (self.built_at - timedelta(days=days)).timestamp()
            new = {
                c
                for c, level in self.creator_level.items()
                if level <= CREATOR_LEVEL_NEW or self.creator_approved_ts.get(c, 0.0) >= since
            }
            lookup = np.array(sorted(new), dtype=np.int64)
            self._masks[cache_key] = np.isin(self.creator, lookup) & (self.creator >= 0)
        return self._masks[cache_key]

    def mask_list(self, name: str, value: float) -> list[bool]:
        """``longtail_mask`` / ``new_creator_mask`` as a plain list (cheap per-item reads)."""
        cache_key = (f"{name}:list", float(value))
        got = self._masks.get(cache_key)
        if got is None:
            mask = (
                self.longtail_mask(value)
                if name == "longtail"
                else self.new_creator_mask(int(value))
            )
            got = self._masks[cache_key] = mask.tolist()
        return got

    @property
    def attrs(self) -> list[tuple[int, int, int, int]]:
        """Per item: (merchant, creator, category, tier), -1 for none (the policy's keys)."""
        got = self._masks.get(("attrs", 0.0))
        if got is None:
            got = self._masks[("attrs", 0.0)] = list(
                zip(self.merchant_l, self.creator_l, self.category_l, self.tier_l, strict=True)
            )
        return got

    @property
    def positions(self) -> dict[str, dict[int, int]]:
        """Per item type, item id -> snapshot index: the shopper's events are looked up
        without building an ``index`` key string each."""
        got = self._masks.get(("positions", 0.0))
        if got is None:
            got = {}
            for i, (kind, item_id) in enumerate(zip(self.kind, self.ids_l, strict=True)):
                got.setdefault(kind, {})[item_id] = i
            self._masks[("positions", 0.0)] = got
        return got

    def name_of(self, kind: str, ref: int) -> str:
        return self.names.get(f"{kind}:{ref}", f"{kind} {ref}")


SNAPSHOT_FILE = "snapshot.pkl"
SNAPSHOT_FORMAT = 2  # bump when CatalogSnapshot's fields change: older files are rebuilt


def snapshot_path(data_dir: Path) -> Path:
    return Path(data_dir) / "feed" / SNAPSHOT_FILE


def write_snapshot(session: Session, data_dir: Path) -> Path:
    """Build a snapshot and publish it atomically for the API processes to load."""
    snap = load_snapshot(session)
    path = snapshot_path(data_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    snap._masks = {}
    with tmp.open("wb") as f:
        pickle.dump((SNAPSHOT_FORMAT, snap), f, protocol=pickle.HIGHEST_PROTOCOL)
    os.replace(tmp, path)
    return path


def read_snapshot(path: Path) -> CatalogSnapshot:
    """Load a published snapshot (a file this engine wrote into its own data directory)."""
    with path.open("rb") as f:
        data = pickle.load(f)  # noqa: S301 - our own artifact, never user input
    if not (isinstance(data, tuple) and len(data) == 2 and data[0] == SNAPSHOT_FORMAT):
        raise ValueError(f"{path} is not a feed snapshot of format {SNAPSHOT_FORMAT}")
    snap = data[1]
    if not isinstance(snap, CatalogSnapshot):
        raise ValueError(f"{path} is not a feed snapshot")
    snap._masks = {}
    return snap


def empty_snapshot() -> CatalogSnapshot:
    return _build([], {}, {}, {}, {}, {}, {}, utcnow())


def load_snapshot(session: Session, *, now: datetime | None = None) -> CatalogSnapshot:
    """Read the feed-able catalog and recent activity with a few bulk queries."""
    now = now or utcnow()
    rows: list[dict[str, object]] = []
    price = (
        select(Sku.product_id, func.min(Sku.list_price_minor).label("p"), func.min(Sku.currency))
        .where(Sku.status == "active")
        .group_by(Sku.product_id)
    )
    prices = {pid: (p, cur) for pid, p, cur in session.execute(price)}
    merchants = {
        mid: (tier, name)
        for mid, tier, name in session.execute(select(Merchant.id, Merchant.tier, Merchant.name))
    }
    for pid, mid, cat, title, created in session.execute(
        select(
            Product.id, Product.merchant_id, Product.category_id, Product.title, Product.created_at
        )
        .where(Product.status == ProductStatus.ACTIVE.value)
        .order_by(Product.id)
    ):
        p, cur = prices.get(pid, (None, None))
        rows.append(
            {
                "kind": "product",
                "id": pid,
                "title": title,
                "merchant": mid,
                "creator": None,
                "category": cat,
                "created": created,
                "price": p,
                "currency": cur,
            }
        )
    creators = {
        uid: (name, level, approved)
        for uid, name, level, approved in session.execute(
            select(
                CreatorProfile.user_id,
                CreatorProfile.display_name,
                CreatorProfile.level,
                CreatorProfile.approved_at,
            )
        )
    }
    for post_id, author, kind, post_merchant, cat, title, published in session.execute(
        select(
            Post.id,
            Post.author_id,
            Post.author_kind,
            Post.merchant_id,
            Post.category_id,
            Post.title,
            Post.published_at,
        )
        .where(Post.status == PostStatus.PUBLISHED.value)
        .order_by(Post.id)
    ):
        rows.append(
            {
                "kind": "post",
                "id": post_id,
                "title": title,
                "merchant": post_merchant,
                "creator": author if kind == "creator" else None,
                "category": cat,
                "created": published,
                "price": None,
                "currency": None,
            }
        )
    deals: dict[int, tuple[int, int]] = {}
    for deal_id, product_id, deal_price in session.execute(
        select(DealItem.id, DealItem.product_id, DealItem.deal_price_minor)
        .join(Campaign, Campaign.id == DealItem.campaign_id)
        .where(
            Campaign.status == CampaignStatus.LIVE.value,
            DealItem.starts_at <= now,
            DealItem.ends_at > now,
            DealItem.available > 0,
        )
        .order_by(DealItem.deal_price_minor)
    ):
        deals.setdefault(product_id, (deal_id, deal_price))
    ev = BehaviorEvent.__table__
    activity: dict[str, float] = {}
    sales: dict[str, float] = {}
    for ttype, tid, action, n in session.execute(
        select(ev.c.target_type, ev.c.target_id, ev.c.action, func.count())
        .where(
            ev.c.source == "app",
            ev.c.occurred_at >= now - timedelta(days=POPULARITY_DAYS),
            ev.c.target_type.in_(("product", "post")),
        )
        .group_by(ev.c.target_type, ev.c.target_id, ev.c.action)
    ):
        key = item_key(ttype, tid)
        activity[key] = activity.get(key, 0.0) + ACTION_WEIGHT.get(action, 1.0) * n
        if action == "buy":
            sales[key] = sales.get(key, 0.0) + n
    imp = FeedImpression.__table__
    exposure = {
        item_key(t, i): float(n)
        for t, i, n in session.execute(
            select(imp.c.item_type, imp.c.item_id, func.count())
            .where(imp.c.shown_at >= now - timedelta(days=EXPOSURE_DAYS))
            .group_by(imp.c.item_type, imp.c.item_id)
        )
    }
    return _build(rows, merchants, creators, deals, activity, sales, exposure, now)


def _build(
    rows: list[dict[str, object]],
    merchants: dict[int, tuple[str, str]],
    creators: dict[int, tuple[str, int, datetime | None]],
    deals: dict[int, tuple[int, int]],
    activity: dict[str, float],
    sales: dict[str, float],
    exposure: dict[str, float],
    now: datetime,
) -> CatalogSnapshot:
    n = len(rows)
    keys = [item_key(str(r["kind"]), int(r["id"])) for r in rows]  # type: ignore[call-overload]

    def ints(name: str) -> np.ndarray:
        return np.array([-1 if r[name] is None else r[name] for r in rows], dtype=np.int64)

    merchant = ints("merchant")
    tier_index = {t: i for i, t in enumerate(TIERS)}
    tier = np.array(
        [
            tier_index.get(merchants.get(int(m), ("", ""))[0], -1) if m >= 0 else -1
            for m in merchant
        ],
        dtype=np.int64,
    )
    created = np.array(
        [r["created"].timestamp() if r["created"] is not None else 0.0 for r in rows],  # type: ignore[attr-defined]
        dtype=np.float64,
    )
    ids = ints("id")
    deal_item = np.full(n, -1, dtype=np.int64)
    deal_price = np.full(n, -1, dtype=np.int64)
    for i, r in enumerate(rows):
        if r["kind"] == "product" and int(r["id"]) in deals:  # type: ignore[call-overload]
            deal_item[i], deal_price[i] = deals[int(r["id"])]  # type: ignore[call-overload]
    pop = np.array([activity.get(k, 0.0) for k in keys], dtype=np.float64)
    popularity = np.log1p(pop)
    if n and popularity.max() > 0:
        popularity /= popularity.max()
    expo = np.array([exposure.get(k, 0.0) for k in keys], dtype=np.float64)
    merchant_activity: dict[int, float] = {}
    total_sales = sum(sales.values()) or 1.0
    total_expo = float(expo.sum()) or 1.0
    for i, m in enumerate(merchant):
        if m >= 0:
            share = sales.get(keys[i], 0.0) / total_sales + expo[i] / total_expo
            merchant_activity[int(m)] = merchant_activity.get(int(m), 0.0) + share
    names = {f"merchant:{m}": name for m, (_tier, name) in merchants.items()}
    names.update({f"creator:{c}": name for c, (name, _lvl, _appr) in creators.items()})
    snap = CatalogSnapshot(
        keys=keys,
        kind=[str(r["kind"]) for r in rows],
        ids=ids,
        titles=[str(r["title"]) for r in rows],
        merchant=merchant,
        creator=ints("creator"),
        category=ints("category"),
        tier=tier,
        created_ts=created,
        price_minor=ints("price"),
        currency=[r["currency"] for r in rows],  # type: ignore[misc]
        deal_item=deal_item,
        deal_price_minor=deal_price,
        popularity=popularity.astype(np.float32),
        exposure=expo,
        merchant_activity=merchant_activity,
        creator_level={c: lvl for c, (_n, lvl, _a) in creators.items()},
        creator_approved_ts={c: a.timestamp() for c, (_n, _l, a) in creators.items() if a},
        names=names,
        built_at=now,
    )
    order_new = np.argsort(-created, kind="stable")
    for i in order_new.tolist():
        c, m = int(snap.creator[i]), int(merchant[i])
        if c >= 0 and len(snap.by_creator.setdefault(c, [])) < PER_AUTHOR:
            snap.by_creator[c].append(i)
        if m >= 0 and len(snap.by_merchant.setdefault(m, [])) < PER_AUTHOR:
            snap.by_merchant[m].append(i)
    fresh_since = (now - timedelta(days=FRESH_DAYS)).timestamp()
    snap.fresh = [i for i in order_new[:POOL_SIZE].tolist() if created[i] >= fresh_since]
    hot = np.argsort(-popularity, kind="stable")[:POOL_SIZE]
    snap.trending = [i for i in hot.tolist() if popularity[i] > 0]
    live = np.flatnonzero(deal_item >= 0)
    snap.deals = live[np.argsort(-popularity[live], kind="stable")][:POOL_SIZE].tolist()
    return snap
