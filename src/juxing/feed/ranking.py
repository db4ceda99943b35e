"""Merging candidates and re-ranking them under a traffic policy: pure functions, no I/O.

The policy works on consecutive windows of ``rules.window`` positions. In every window:

* diversity caps: at most N items per merchant, per creator and per category;
* minimum shares (long-tail merchants, new creators, per-tier ``min_share``) are *paced*: by
  position p, a group with minimum M has at least ceil(M * (p+1) / window) items, so boosted
  items are spread through the window instead of piling up at its end;
* per-tier ``max_share`` caps;
* exploration slots at evenly spaced positions, filled with items the shopper would not
  otherwise see (fresh or rarely shown), chosen by a seeded random draw.

An item placed to satisfy a minimum share keeps its own reason and gains a boost label
("new-seller boost", "new-creator boost"), so every card says why it is there.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from juxing.feed.catalog import TIERS, CatalogSnapshot
from juxing.feed.schemas import PolicyRules
from juxing.recsys.evaluation import gini

BOOST_TEXT = {
    "longtail": "new-seller boost",
    "new_creator": "new-creator boost",
    "explore": "exploration",
}


@dataclass
class Ranked:
    """Candidates best first, one per item, with each one's reason (parallel lists)."""

    items: list[int]
    codes: list[str]
    texts: list[str]

    def __len__(self) -> int:
        return len(self.items)


@dataclass
class Placed:
    item: int
    reason_code: str
    reason: str
    boosts: list[str] = field(default_factory=list)


def merge(
    items: np.ndarray, scores: np.ndarray, reasons: np.ndarray, exclude: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """One entry per item (the best-scored source wins), best first, ties by item.

    ``items``, ``scores`` and ``reasons`` are parallel arrays (``reasons`` indexes the caller's
    reason texts); returns the merged items and their reason indices.
    """
    if exclude is not None and len(exclude):
        mask = np.zeros(int(max(items.max(initial=0), exclude.max())) + 1, dtype=bool)
        mask[exclude] = True
        keep = ~mask[items]
        items, scores, reasons = items[keep], scores[keep], reasons[keep]
    if len(items) == 0:
        return items, reasons
    order = np.lexsort((items, -scores))
    items, scores, reasons = items[order], scores[order], reasons[order]
    _, first = np.unique(items, return_index=True)
    first.sort()  # the best entry of each item, still in score order
    return items[first], reasons[first]


@dataclass
class _Group:
    name: str
    need: int  # minimum per window
    label: str
    members: list[int]  # the ranked candidates in the group, best first
    mask: np.ndarray  # bool per item of the snapshot
    pos: int = 0  # members before this index are placed already


def rerank(
    ranked: Ranked,
    snap: CatalogSnapshot,
    rules: PolicyRules | None,
    *,
    n: int,
    explore_pool: Sequence[int] = (),
    seed: int = 0,
) -> list[Placed]:
    """The first ``n`` positions of the feed: ``ranked`` re-ranked under ``rules``.

    Without rules the feed is the relevance order. ``ranked`` must be best-first and free of
    duplicates (``merge``). A greedy pass per window; K is small, so plain Python over lists.
    """
    items = ranked.items
    if rules is None:
        return [Placed(i, ranked.codes[r], ranked.texts[r]) for r, i in enumerate(items[:n])]
    w = rules.window
    arr = np.asarray(items, dtype=np.int64)
    groups: list[_Group] = []

    def group(name: str, mask: np.ndarray, share: float, label: str) -> None:
        members = arr[mask[arr]].tolist() if len(arr) else []
        groups.append(_Group(name, math.ceil(share * w), label, members, mask))

    if rules.longtail_share > 0:
        group(
            "longtail",
            snap.longtail_mask(rules.longtail_percentile),
            rules.longtail_share,
            BOOST_TEXT["longtail"],
        )
    if rules.new_creator_share > 0:
        group(
            "new_creator",
            snap.new_creator_mask(rules.new_creator_days),
            rules.new_creator_share,
            BOOST_TEXT["new_creator"],
        )
    tier_max: dict[int, int] = {}
    for tier_name, quota in rules.tier_quotas.items():
        t = TIERS.index(tier_name)
        if quota.min_share > 0:
            group(
                f"tier:{tier_name}",
                snap.tier == t,
                quota.min_share,
                f"{tier_name.replace('_', ' ')} quota",
            )
        if quota.max_share < 1:
            tier_max[t] = math.floor(quota.max_share * w)
    slots = rules.exploration_slots
    explore_at = {(j + 1) * w // (slots + 1) for j in range(slots)} if slots else set()
    rng = random.Random(seed)
    pool = list(explore_pool)
    rng.shuffle(pool)
    reason_at = {i: r for r, i in enumerate(items)}
    state = _State(snap, rules, ranked, reason_at, tier_max)
    out: list[Placed] = []
    while len(out) < n:
        window = state.fill_window(groups, explore_at, pool, min(w, n - len(out)))
        if not window:
            break
        out += window
    return out


class _State:
    """What the greedy pass has placed so far, and the per-window counters."""

    def __init__(
        self,
        snap: CatalogSnapshot,
        rules: PolicyRules,
        ranked: Ranked,
        reason_at: dict[int, int],
        tier_max: dict[int, int],
    ) -> None:
        self.snap, self.rules, self.ranked = snap, rules, ranked
        self.reason_at, self.tier_max = reason_at, tier_max
        self.used: set[int] = set()
        self.head = 0  # ranked items before this index are all placed

    def fill_window(
        self, groups: list[_Group], explore_at: set[int], pool: list[int], size: int
    ) -> list[Placed]:
        rules, snap, used = self.rules, self.snap, self.used
        merchant, creator, category, tier = (
            snap.merchant_l,
            snap.creator_l,
            snap.category_l,
            snap.tier_l,
        )
        max_m, max_c, max_k = rules.max_per_merchant, rules.max_per_creator, rules.max_per_category
        tier_max = self.tier_max
        w = rules.window
        per_merchant: dict[int, int] = {}
        per_creator: dict[int, int] = {}
        per_category: dict[int, int] = {}
        per_tier: dict[int, int] = {}
        counts = [0] * len(groups)
        window: list[Placed] = []

        def fits(i: int) -> bool:
            if i in used:
                return False
            m, c, k, t = merchant[i], creator[i], category[i], tier[i]
            if m >= 0 and per_merchant.get(m, 0) >= max_m:
                return False
            if c >= 0 and per_creator.get(c, 0) >= max_c:
                return False
            if k >= 0 and per_category.get(k, 0) >= max_k:
                return False
            return not (t in tier_max and per_tier.get(t, 0) >= tier_max[t])

        def place(i: int, boost: str | None) -> None:
            used.add(i)
            for key, counter in (
                (merchant[i], per_merchant),
                (creator[i], per_creator),
                (category[i], per_category),
                (tier[i], per_tier),
            ):
                if key >= 0:
                    counter[key] = counter.get(key, 0) + 1
            for g_i, g in enumerate(groups):
                if g.mask[i]:
                    counts[g_i] += 1
            r = self.reason_at.get(i)
            boosts = [boost] if boost else []
            if r is None:  # a pool item with no organic reason: the boost is the reason
                code = "explore" if boost == BOOST_TEXT["explore"] else "boost"
                window.append(Placed(i, code, boost or "picked for you", boosts))
            else:
                window.append(Placed(i, self.ranked.codes[r], self.ranked.texts[r], boosts))

        items = self.ranked.items
        for p in range(size):
            placed = False
            if p in explore_at:
                while pool and not placed:
                    i = pool.pop()
                    if fits(i):
                        place(i, BOOST_TEXT["explore"])
                        placed = True
            if not placed and groups:
                deficits = [
                    (math.ceil(g.need * (p + 1) / w) - counts[g_i], g_i)
                    for g_i, g in enumerate(groups)
                ]
                for deficit, g_i in sorted(deficits, reverse=True):
                    if deficit <= 0:
                        break
                    g = groups[g_i]
                    members = g.members
                    while g.pos < len(members) and members[g.pos] in used:
                        g.pos += 1
                    for i in members[g.pos :]:
                        if fits(i):
                            place(i, g.label)
                            placed = True
                            break
                    if placed:
                        break
            if not placed:
                while self.head < len(items) and items[self.head] in used:
                    self.head += 1
                for i in items[self.head :]:
                    if fits(i):
                        place(i, None)
                        placed = True
                        break
            if not placed:  # caps exhausted every candidate: relax to the best unused one
                for i in items[self.head :]:
                    if i not in used:
                        place(i, None)
                        placed = True
                        break
            if not placed:
                break
        return window


def exposure_summary(
    feeds: Sequence[Sequence[int]], snap: CatalogSnapshot, rules: PolicyRules
) -> dict[str, object]:
    """Shares of long-tail, new-creator and tier items over many feeds, and the Gini index."""
    flat = np.array([i for feed in feeds for i in feed], dtype=np.int64)
    if len(flat) == 0:
        return {
            "longtail_share": 0.0,
            "new_creator_share": 0.0,
            "tier_shares": {t: 0.0 for t in TIERS},
            "distinct_items": 0,
            "distinct_merchants": 0,
            "gini": 0.0,
            "max_per_merchant_seen": 0,
        }
    longtail = snap.longtail_mask(rules.longtail_percentile)[flat].mean()
    new_creator = snap.new_creator_mask(rules.new_creator_days)[flat].mean()
    tiers = {t: float((snap.tier[flat] == i).mean()) for i, t in enumerate(TIERS)}
    counts = np.bincount(flat, minlength=snap.n_items).astype(np.float64)
    max_pm = 0
    for feed in feeds:
        for start in range(0, len(feed), rules.window):
            ms = [int(snap.merchant[i]) for i in feed[start : start + rules.window]]
            ms = [m for m in ms if m >= 0]
            if ms:
                max_pm = max(max_pm, max(ms.count(m) for m in set(ms)))
    merchants = {int(snap.merchant[i]) for i in flat if snap.merchant[i] >= 0}
    return {
        "longtail_share": round(float(longtail), 4),
        "new_creator_share": round(float(new_creator), 4),
        "tier_shares": {k: round(v, 4) for k, v in tiers.items()},
        "distinct_items": int((counts > 0).sum()),
        "distinct_merchants": len(merchants),
        "gini": round(gini(counts), 4),
        "max_per_merchant_seen": max_pm,
    }
