"""Audience segments (人以群分): shoppers grouped by behaviour, as pure functions over arrays.

A batch job streams behaviour events through :class:`BehaviourAccumulator` (chunk by chunk,
so the full 100M-row logs never sit in memory), turns them into one feature row per shopper
(activity, intent, price level, channel and category mix), clusters the rows with a seeded
k-means, and names and describes each cluster from how its centre differs from everyone.

Nothing here touches the database: ``analytics.service`` feeds it and stores the result.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import sparse

# Behaviour kinds, in the order of the count columns.
KINDS: tuple[str, ...] = ("view", "click", "cart", "fav", "buy")
KIND_INDEX = {k: i for i, k in enumerate(KINDS)}
# Taobao UserBehavior spells a product view "pv".
KIND_ALIASES = {"pv": "view", "favorite": "fav", "purchase": "buy", "order": "buy"}
DAY_S = 86_400


def kind_codes(kinds: Sequence[str]) -> np.ndarray:
    """Map behaviour names (``view``, ``pv``, ``cart``, ...) to column indices; unknown → -1."""
    return np.array([KIND_INDEX.get(KIND_ALIASES.get(k, k), -1) for k in kinds], dtype=np.int8)


class _Index:
    """Dense 0..n-1 indices for arbitrary ids, grown chunk by chunk."""

    def __init__(self) -> None:
        self.ids: list[int] = []
        self.pos: dict[int, int] = {}

    def encode(self, values: np.ndarray) -> np.ndarray:
        uniq, inverse = np.unique(values, return_inverse=True)
        mapped = np.empty(len(uniq), dtype=np.int64)
        for i, v in enumerate(uniq.tolist()):
            p = self.pos.get(v)
            if p is None:
                p = self.pos[v] = len(self.ids)
                self.ids.append(v)
            mapped[i] = p
        return mapped[inverse.reshape(-1)]

    def __len__(self) -> int:
        return len(self.ids)


@dataclass
class BehaviourAccumulator:
    """Per-shopper behaviour counts, accumulated from event chunks of any size."""

    _users: _Index = field(default_factory=_Index)
    _cats: _Index = field(default_factory=_Index)
    _channels: _Index = field(default_factory=_Index)
    _kinds: np.ndarray = field(default_factory=lambda: np.zeros((0, len(KINDS))))
    _pairs_cat: list[tuple[np.ndarray, np.ndarray]] = field(default_factory=list)
    _pairs_chan: list[tuple[np.ndarray, np.ndarray]] = field(default_factory=list)
    _user_days: set[int] = field(default_factory=set)
    _last_ts: np.ndarray = field(default_factory=lambda: np.zeros(0))
    _price_sum: np.ndarray = field(default_factory=lambda: np.zeros(0))
    _price_n: np.ndarray = field(default_factory=lambda: np.zeros(0))

    def add(
        self,
        *,
        users: np.ndarray,
        kinds: np.ndarray,
        ts: np.ndarray,
        categories: np.ndarray | None = None,
        channels: np.ndarray | None = None,
        prices: np.ndarray | None = None,
    ) -> None:
        """Add one chunk of events (parallel arrays; ``kinds`` from :func:`kind_codes`).

        ``prices`` are unit prices of the products acted on (NaN when unknown).
        """
        keep = np.asarray(kinds) >= 0
        users = np.asarray(users)[keep]
        if len(users) == 0:
            return
        kinds = np.asarray(kinds)[keep].astype(np.int64)
        ts = np.asarray(ts, dtype=np.float64)[keep]
        u = self._users.encode(users)
        n = len(self._users)
        self._grow(n)
        np.add.at(self._kinds, (u, kinds), 1)
        np.maximum.at(self._last_ts, u, ts)
        days = (ts // DAY_S).astype(np.int64)
        self._user_days.update((u * 100_000 + days).tolist())
        if categories is not None:
            c = self._cats.encode(np.asarray(categories)[keep])
            self._pairs_cat.append((u, c))
        if channels is not None:
            ch = self._channels.encode(np.asarray(channels)[keep])
            self._pairs_chan.append((u, ch))
        if prices is not None:
            p = np.asarray(prices, dtype=np.float64)[keep]
            ok = np.isfinite(p) & (p > 0)
            np.add.at(self._price_sum, u[ok], np.log(p[ok]))
            np.add.at(self._price_n, u[ok], 1)

    def _grow(self, n: int) -> None:
        old = len(self._last_ts)
        if n > old:
            extra = n - old
            self._last_ts = np.concatenate([self._last_ts, np.full(extra, -np.inf)])
            self._price_sum = np.concatenate([self._price_sum, np.zeros(extra)])
            self._price_n = np.concatenate([self._price_n, np.zeros(extra)])
            self._kinds = np.vstack([self._kinds, np.zeros((extra, len(KINDS)))])

    def behaviour(self, *, top_categories: int = 8) -> Behaviour:
        """The accumulated counts as one :class:`Behaviour` table."""
        n = len(self._users)
        kc = self._kinds.copy()
        days = np.zeros(n)
        if self._user_days:
            packed = np.fromiter(self._user_days, dtype=np.int64)
            np.add.at(days, packed // 100_000, 1)
        cat_m = _pair_matrix(self._pairs_cat, n, len(self._cats))
        chan_m = _pair_matrix(self._pairs_chan, n, len(self._channels))
        # The categories most shoppers touch become feature columns; the rest is "other".
        reach = np.asarray((cat_m > 0).sum(axis=0)).ravel()
        top = np.argsort(-reach, kind="stable")[:top_categories]
        cat_counts = np.asarray(cat_m[:, top].todense())
        price = np.full(n, np.nan)
        has = self._price_n > 0
        price[has] = np.exp(self._price_sum[has] / self._price_n[has])
        return Behaviour(
            user_ids=np.array(self._users.ids, dtype=np.int64),
            kind_counts=kc,
            active_days=days,
            last_ts=self._last_ts.copy(),
            category_ids=[self._cats.ids[i] for i in top],
            category_counts=cat_counts,
            channel_ids=list(self._channels.ids),
            channel_counts=np.asarray(chan_m.todense())
            if len(self._channels)
            else np.zeros((n, 0)),
            price_level=price,
        )


def _pair_matrix(pairs: list[tuple[np.ndarray, np.ndarray]], n: int, m: int) -> sparse.csr_matrix:
    if not pairs or m == 0:
        return sparse.csr_matrix((n, max(m, 0)))
    rows = np.concatenate([p[0] for p in pairs])
    cols = np.concatenate([p[1] for p in pairs])
    return sparse.coo_matrix((np.ones(len(rows)), (rows, cols)), shape=(n, m)).tocsr()


@dataclass(frozen=True)
class Behaviour:
    """One row per shopper: counts per behaviour kind, days active, price level, mixes."""

    user_ids: np.ndarray
    kind_counts: np.ndarray  # (n, len(KINDS))
    active_days: np.ndarray
    last_ts: np.ndarray
    category_ids: list[int]
    category_counts: np.ndarray  # (n, top categories)
    channel_ids: list[object]
    channel_counts: np.ndarray  # (n, channels)
    price_level: np.ndarray  # geometric mean unit price, NaN when unknown

    @property
    def events(self) -> np.ndarray:
        return np.asarray(self.kind_counts.sum(axis=1))

    def rate(self, kind: str) -> np.ndarray:
        """Share of a shopper's product views that led to ``kind`` (cart, fav, buy)."""
        views = self.kind_counts[:, KIND_INDEX["view"]] + self.kind_counts[:, KIND_INDEX["click"]]
        return np.asarray(self.kind_counts[:, KIND_INDEX[kind]] / np.maximum(views, 1.0))


@dataclass(frozen=True)
class Segment:
    """A named group of shoppers: its key, name, description, size and typical traits."""

    key: str
    name: str
    description: str
    size: int
    traits: dict[str, float | str | None]


@dataclass(frozen=True)
class Segmentation:
    """The segments and, for each shopper (``user_ids[i]``), the index of their segment."""

    segments: list[Segment]
    user_ids: np.ndarray
    labels: np.ndarray

    def of_user(self) -> dict[int, str]:
        """user id → segment key."""
        keys = [s.key for s in self.segments]
        return {int(u): keys[int(lbl)] for u, lbl in zip(self.user_ids, self.labels, strict=True)}


def feature_matrix(b: Behaviour) -> tuple[np.ndarray, list[str]]:
    """Standardized features with equal weight per behaviour axis; returns (X, column names)."""
    n = len(b.user_ids)
    events = b.events
    recency = (np.max(b.last_ts) - b.last_ts) / DAY_S if n else np.zeros(0)
    price = b.price_level.copy()
    known = np.isfinite(price)
    price[known] = np.log(price[known])
    price[~known] = np.median(price[known]) if known.any() else 0.0
    groups: list[tuple[str, np.ndarray, list[str]]] = [
        (
            "activity",
            np.column_stack([np.log1p(events), b.active_days, recency]),
            ["log_events", "active_days", "recency_days"],
        ),
        (
            "intent",
            np.column_stack(
                [
                    b.rate("cart"),
                    b.rate("fav"),
                    b.rate("buy"),
                    np.log1p(b.kind_counts[:, KIND_INDEX["buy"]]),
                ]
            ),
            ["cart_rate", "fav_rate", "buy_rate", "log_buys"],
        ),
        ("price", price.reshape(-1, 1), ["log_price"]),
    ]
    tot = np.maximum(events, 1.0).reshape(-1, 1)
    if b.category_counts.shape[1]:
        groups.append(("category", b.category_counts / tot, [f"cat:{c}" for c in b.category_ids]))
    if b.channel_counts.shape[1] > 1:
        groups.append(("channel", b.channel_counts / tot, [f"chan:{c}" for c in b.channel_ids]))
    cols, names = [], []
    for _g, block, labels in groups:
        mu, sd = block.mean(axis=0), block.std(axis=0)
        z = np.where(sd > 0, (block - mu) / np.where(sd > 0, sd, 1.0), 0.0)
        z = np.clip(z, -3.0, 3.0)  # one extreme shopper should not get a segment alone
        # Each axis weighs the same however many columns it has.
        cols.append(z / np.sqrt(block.shape[1]))
        names.extend(labels)
    return (np.hstack(cols) if cols else np.zeros((n, 0))), names


def kmeans(x: np.ndarray, k: int, *, seed: int = 7, iters: int = 50) -> np.ndarray:
    """Lloyd's k-means with k-means++ seeding; deterministic for a seed; returns labels."""
    n = len(x)
    k = max(1, min(k, n))
    rng = np.random.default_rng(seed)
    centres = np.empty((k, x.shape[1]))
    centres[0] = x[rng.integers(n)]
    d2 = ((x - centres[0]) ** 2).sum(axis=1)
    for j in range(1, k):
        total = d2.sum()
        idx = rng.choice(n, p=d2 / total) if total > 0 else rng.integers(n)
        centres[j] = x[idx]
        d2 = np.minimum(d2, ((x - centres[j]) ** 2).sum(axis=1))
    labels = np.zeros(n, dtype=np.int64)
    sq = (x**2).sum(axis=1)
    for _ in range(iters):
        dist = sq[:, None] - 2.0 * (x @ centres.T) + (centres**2).sum(axis=1)[None, :]
        new = dist.argmin(axis=1)
        for j in range(k):
            members = new == j
            if members.any():
                centres[j] = x[members].mean(axis=0)
            else:  # an empty cluster takes the point farthest from its centre
                far = int(dist[np.arange(n), new].argmax())
                centres[j] = x[far]
                new[far] = j
        if np.array_equal(new, labels):
            break
        labels = new
    return labels


def segment(
    b: Behaviour,
    *,
    k: int = 6,
    seed: int = 7,
    category_names: dict[int, str] | None = None,
    channel_names: Mapping[Any, str] | None = None,
) -> Segmentation:
    """Cluster shoppers by behaviour and name each cluster; largest segment first."""
    n = len(b.user_ids)
    if n == 0:
        return Segmentation(segments=[], user_ids=b.user_ids, labels=np.zeros(0, dtype=np.int64))
    x, _names = feature_matrix(b)
    labels = kmeans(x, k, seed=seed)
    order = np.argsort(-np.bincount(labels, minlength=labels.max() + 1), kind="stable")
    remap = np.empty_like(order)
    remap[order] = np.arange(len(order))
    labels = remap[labels]
    segments: list[Segment] = []
    used: dict[str, int] = {}
    for j in range(int(labels.max()) + 1):
        members = labels == j
        seg = _describe(b, members, category_names or {}, channel_names or {})
        count = used.get(seg.key, 0) + 1
        used[seg.key] = count
        if count > 1:
            seg = Segment(
                key=f"{seg.key}-{count}",
                name=f"{seg.name} ({count})",
                description=seg.description,
                size=seg.size,
                traits=seg.traits,
            )
        segments.append(seg)
    return Segmentation(segments=segments, user_ids=b.user_ids, labels=labels)


def _describe(
    b: Behaviour,
    members: np.ndarray,
    category_names: dict[int, str],
    channel_names: Mapping[Any, str],
) -> Segment:
    n, size = len(members), int(members.sum())
    events, days = b.events, b.active_days
    ev_seg, ev_all = float(events[members].mean()), float(events.mean())
    buy_seg, buy_all = float(b.rate("buy")[members].mean()), float(b.rate("buy").mean())
    cart_seg, cart_all = float(b.rate("cart")[members].mean()), float(b.rate("cart").mean())
    fav_seg, fav_all = float(b.rate("fav")[members].mean()), float(b.rate("fav").mean())
    if ev_seg >= 1.5 * ev_all:
        activity = "Heavy"
    elif ev_seg <= 0.6 * ev_all:
        activity = "Light"
    else:
        activity = "Regular"
    buyers_seg = float((b.kind_counts[members, KIND_INDEX["buy"]] > 0).mean())
    if buy_seg >= 1.5 * buy_all and buyers_seg >= 0.5:
        intent = "buyers"
    elif cart_seg >= 1.5 * cart_all and cart_seg > 0:
        intent = "cart-fillers"
    elif fav_seg >= 1.5 * fav_all and fav_seg > 0:
        intent = "wishlisters"
    else:
        intent = "browsers"
    name_parts = [f"{activity} {intent}"]
    tot = np.maximum(events, 1.0).reshape(-1, 1)
    traits: dict[str, float | str | None] = {
        "events_per_shopper": round(ev_seg, 2),
        "active_days": round(float(days[members].mean()), 2),
        "buy_rate": round(buy_seg, 4),
        "cart_rate": round(cart_seg, 4),
        "fav_rate": round(fav_seg, 4),
        "share_of_shoppers": round(size / n, 4),
        "top_category": None,
        "top_channel": None,
        "price_level": None,
    }
    sentences = [
        f"{size} shoppers ({size / n:.0%})",
        f"{ev_seg:.1f} actions each over {traits['active_days']} active days",
        f"buy after {buy_seg:.1%} of views (everyone: {buy_all:.1%})",
    ]
    if b.category_counts.shape[1]:
        share = b.category_counts / tot
        seg_share, all_share = share[members].mean(axis=0), share.mean(axis=0)
        lift = seg_share / np.maximum(all_share, 1e-9)
        j = int(np.argmax(lift))
        if lift[j] >= 1.5 and seg_share[j] >= 0.05:
            cid = b.category_ids[j]
            cname = category_names.get(cid, f"category {cid}")
            traits["top_category"] = str(cid)
            name_parts.append(cname)
            sentences.append(f"{seg_share[j]:.0%} of their activity in {cname}")
    price = b.price_level
    known = np.isfinite(price)
    if known[members].any() and known.sum() > 1:
        p_seg, p_all = float(np.median(price[members & known])), float(np.median(price[known]))
        traits["price_level"] = round(p_seg, 2)
        if p_seg >= 1.5 * p_all:
            name_parts.append("premium")
            sentences.append(f"typical price {p_seg / 100:.2f} (everyone: {p_all / 100:.2f})")
        elif p_seg <= 0.67 * p_all:
            name_parts.append("budget")
            sentences.append(f"typical price {p_seg / 100:.2f} (everyone: {p_all / 100:.2f})")
    if b.channel_counts.shape[1] > 1:
        share = b.channel_counts / tot
        seg_share = share[members].mean(axis=0)
        j = int(np.argmax(seg_share))
        ch = b.channel_ids[j]
        traits["top_channel"] = str(ch)
        if seg_share[j] >= 1.3 * share.mean(axis=0)[j]:
            cname = channel_names.get(ch, str(ch))
            name_parts.append(f"via {cname}")
            sentences.append(f"mostly via {cname} ({seg_share[j]:.0%})")
    name = " · ".join(name_parts)
    key = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:60] or "segment"
    return Segment(
        key=key, name=name, description="; ".join(sentences) + ".", size=size, traits=traits
    )


def audience_mix(weights: dict[int, float], user_segment: dict[int, str]) -> dict[str, float]:
    """A set of shoppers (user id → weight) as shares per segment key; unknown users skipped."""
    mix: dict[str, float] = {}
    for user, w in weights.items():
        key = user_segment.get(user)
        if key is not None and w > 0:
            mix[key] = mix.get(key, 0.0) + w
    total = sum(mix.values())
    return {k: v / total for k, v in sorted(mix.items(), key=lambda kv: -kv[1])} if total else {}
