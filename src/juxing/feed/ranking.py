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
class Candidate:
    """An item the feed could show, with its relevance score and why."""

    item: int
    score: float
    reason_code: str
    reason: str


@dataclass
class Placed:
    item: int
    reason_code: str
    reason: str
    boosts: list[str] = field(default_factory=list)


def merge(candidates: Sequence[Candidate], exclude: set[int]) -> list[Candidate]:
    """One candidate per item (the best-scored source wins), best first."""
    best: dict[int, Candidate] = {}
    for c in candidates:
        if c.item in exclude:
            continue
        cur = best.get(c.item)
        if cur is None or c.score > cur.score:
            best[c.item] = c
    return sorted(best.values(), key=lambda c: (-c.score, c.item))


@dataclass
class _Group:
    name: str
    members: np.ndarray  # bool per item
    need: int  # minimum per window
    label: str | None


def rerank(
    ranked: Sequence[Candidate],
    snap: CatalogSnapshot,
    rules: PolicyRules | None,
    *,
    n: int,
    explore_pool: Sequence[int] = (),
    seed: int = 0,
) -> list[Placed]:
    """The first ``n`` positions of the feed: ``ranked`` re-ranked under ``rules``.

    Without rules the feed is the relevance order. ``ranked`` must be best-first and free of
    duplicates (``merge``).
    """
    if rules is None:
        return [Placed(c.item, c.reason_code, c.reason) for c in ranked[:n]]
    w = rules.window
    groups: list[_Group] = []
    if rules.longtail_share > 0:
        groups.append(
            _Group(
                "longtail",
                snap.longtail_mask(rules.longtail_percentile),
                math.ceil(rules.longtail_share * w),
                BOOST_TEXT["longtail"],
            )
        )
    if rules.new_creator_share > 0:
        groups.append(
            _Group(
                "new_creator",
                snap.new_creator_mask(rules.new_creator_days),
                math.ceil(rules.new_creator_share * w),
                BOOST_TEXT["new_creator"],
            )
        )
    tier_max: dict[int, int] = {}
    for tier_name, quota in rules.tier_quotas.items():
        t = TIERS.index(tier_name)
        if quota.min_share > 0:
            groups.append(
                _Group(
                    f"tier:{tier_name}",
                    snap.tier == t,
                    math.ceil(quota.min_share * w),
                    f"{tier_name.replace('_', ' ')} quota",
                )
            )
        if quota.max_share < 1:
            tier_max[t] = math.floor(quota.max_share * w)
    slots = rules.exploration_slots
    explore_at = {(j + 1) * w // (slots + 1) for j in range(slots)} if slots else set()
    rng = random.Random(seed)
    pool = [i for i in explore_pool]
    rng.shuffle(pool)
    reasons = {c.item: c for c in ranked}
    used: set[int] = set()
    out: list[Placed] = []
    while len(out) < n:
        window = _fill_window(
            ranked,
            snap,
            rules,
            groups,
            tier_max,
            explore_at,
            pool,
            reasons,
            used,
            min(w, n - len(out)),
        )
        if not window:
            break
        out += window
    return out


def _fill_window(
    ranked: Sequence[Candidate],
    snap: CatalogSnapshot,
    rules: PolicyRules,
    groups: list[_Group],
    tier_max: dict[int, int],
    explore_at: set[int],
    pool: list[int],
    reasons: dict[int, Candidate],
    used: set[int],
    size: int,
) -> list[Placed]:
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
        m, c, k, t = (
            int(snap.merchant[i]),
            int(snap.creator[i]),
            int(snap.category[i]),
            int(snap.tier[i]),
        )
        if m >= 0 and per_merchant.get(m, 0) >= rules.max_per_merchant:
            return False
        if c >= 0 and per_creator.get(c, 0) >= rules.max_per_creator:
            return False
        if k >= 0 and per_category.get(k, 0) >= rules.max_per_category:
            return False
        return not (t in tier_max and per_tier.get(t, 0) >= tier_max[t])

    def place(i: int, boost: str | None) -> None:
        used.add(i)
        for key, counter in (
            (int(snap.merchant[i]), per_merchant),
            (int(snap.creator[i]), per_creator),
            (int(snap.category[i]), per_category),
            (int(snap.tier[i]), per_tier),
        ):
            if key >= 0:
                counter[key] = counter.get(key, 0) + 1
        for g_i, g in enumerate(groups):
            if g.members[i]:
                counts[g_i] += 1
        cand = reasons.get(i)
        boosts = [boost] if boost else []
        if cand is None:  # a pool item with no organic reason: the boost is the reason
            code = "explore" if boost == BOOST_TEXT["explore"] else "boost"
            text = boost or "picked for you"
            window.append(Placed(i, code, text, boosts))
        else:
            window.append(Placed(i, cand.reason_code, cand.reason, boosts))

    for p in range(size):
        placed = False
        if p in explore_at:
            while pool and not placed:
                i = pool.pop()
                if fits(i):
                    place(i, BOOST_TEXT["explore"])
                    placed = True
        if not placed:
            deficits = [
                (math.ceil(g.need * (p + 1) / w) - counts[g_i], g_i) for g_i, g in enumerate(groups)
            ]
            for deficit, g_i in sorted(deficits, reverse=True):
                if deficit <= 0:
                    break
                g = groups[g_i]
                for c in ranked:
                    if g.members[c.item] and fits(c.item):
                        place(c.item, g.label)
                        placed = True
                        break
                if placed:
                    break
        if not placed:
            for c in ranked:
                if fits(c.item):
                    place(c.item, None)
                    placed = True
                    break
        if not placed:  # caps exhausted every candidate: relax to the best unused one
            for c in ranked:
                if c.item not in used:
                    place(c.item, None)
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
