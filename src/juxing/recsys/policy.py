"""Traffic policy (流量策略): global, exposure-aware re-ranking of all users' candidate lists.

Exposure is a property of all feeds together, so the policy is solved over every user's candidate
list at once, as a Lagrangian relaxation of

    maximise   sum over users of the utility of the items put in their top-k
    subject to exposure(item) <= cap(item)                  for every item
               share of long-tail items in all lists >= tail_share

The dual variables are **prices**: one per item (its exposure is over its cap) plus one extra
price on every head item (the long-tail share is below target). An item's adjusted utility for a
user is ``utility - price[item]``; prices are found by projected sub-gradient steps
(``fit_prices``). A feed service can reuse the learned ``ExposurePrices`` per request
(``ExposurePrices.rerank``) without seeing the other users; offline, ``enforce_caps`` then
makes the caps hard with a greedy global allocation.

Utilities are scale-free, so prices mean the same for any model: by default (``"rank"``) the
NDCG discount ``1 / log2(rank + 2)`` of the candidate's position in the model's list, or
(``"minmax"``) the model scores min-max scaled within each candidate list. Each final list is
ordered by the original score (the policy decides which items get shown, the model still decides
their order).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from juxing.recsys.evaluation import exposure


@dataclass(frozen=True)
class TrafficPolicy:
    """Settings of an exposure policy; ``POLICIES`` holds the named ones."""

    name: str
    cap_factor: float  # cap = max(min_cap, cap_factor * average exposure per item)
    tail_gain: float  # target long-tail share = min(max_tail_share, tail_gain * current share)
    max_tail_share: float = 0.9
    min_cap: int = 1
    iterations: int = 60
    step: float = 0.05
    utility: str = "minmax"  # "minmax": scores scaled per list; "rank": 1 / log2(rank + 2)


POLICIES: dict[str, TrafficPolicy] = {
    # measured on Beauty (docs/recsys.md): rank utility protects the top of each list
    "longtail": TrafficPolicy("longtail", cap_factor=12.0, tail_gain=2.15, utility="rank"),
}


@dataclass
class ExposurePrices:
    """Learned dual prices: subtract from scaled scores, then keep the k best (usable online)."""

    item_prices: np.ndarray  # per-item price, including the head surcharge
    caps: np.ndarray  # exposure caps used offline (informative online)
    utility: str = "minmax"

    def rerank(self, items: np.ndarray, scores: np.ndarray, k: int) -> np.ndarray:
        """Top-k of each candidate row after prices, ordered by the original score.

        ``items`` / ``scores``: (n, C) candidates sorted best first, as from ``recommend``.
        """
        adjusted = _adjusted(items, scores, self.item_prices, self.utility)
        return select(items, scores, adjusted, k)

    def save(self, path: str) -> None:
        np.savez_compressed(
            path, item_prices=self.item_prices, caps=self.caps, utility=np.array(self.utility)
        )

    @classmethod
    def load(cls, path: str) -> ExposurePrices:
        with np.load(path, allow_pickle=False) as npz:
            return cls(npz["item_prices"], npz["caps"], str(npz["utility"]))


def utility(items: np.ndarray, scores: np.ndarray, kind: str = "minmax") -> np.ndarray:
    """Per-list utility of each candidate (empty slots -inf); rows sorted best first."""
    if kind == "rank":
        ranks = np.arange(items.shape[1], dtype=np.float64)
        u = np.broadcast_to(1.0 / np.log2(ranks + 2.0), items.shape)
        return np.where(items >= 0, u, -np.inf)
    if kind != "minmax":
        raise ValueError(f"unknown utility {kind!r}")
    return scaled_utility(items, scores)


def scaled_utility(items: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Scores min-max scaled to [0, 1] within each row; empty slots (-1) get -inf."""
    valid = items >= 0
    s = np.where(valid, scores, np.nan).astype(np.float64)
    lo = np.nanmin(np.where(valid, s, np.inf), axis=1, keepdims=True)
    hi = np.nanmax(np.where(valid, s, -np.inf), axis=1, keepdims=True)
    span = np.where(hi - lo > 0, hi - lo, 1.0)
    u = (s - lo) / span
    return np.where(valid, u, -np.inf)


def _adjusted(
    items: np.ndarray, scores: np.ndarray, prices: np.ndarray, kind: str = "minmax"
) -> np.ndarray:
    return utility(items, scores, kind) - prices[np.maximum(items, 0)]


def select(items: np.ndarray, scores: np.ndarray, adjusted: np.ndarray, k: int) -> np.ndarray:
    """Per row: the k candidates of highest adjusted utility, ordered by original score."""
    k = min(k, items.shape[1])
    pick = np.argpartition(-adjusted, k - 1, axis=1)[:, :k]
    chosen = np.take_along_axis(items, pick, axis=1)
    ok = np.isfinite(np.take_along_axis(adjusted, pick, axis=1))
    order_key = np.where(ok, np.take_along_axis(scores, pick, axis=1), -np.inf)
    order = np.argsort(-order_key, axis=1, kind="stable")
    chosen = np.take_along_axis(np.where(ok, chosen, -1), order, axis=1)
    return chosen


def exposure_caps(n_lists: int, k: int, n_items: int, policy: TrafficPolicy) -> np.ndarray:
    avg = n_lists * k / max(n_items, 1)
    cap = max(policy.min_cap, int(np.ceil(policy.cap_factor * avg)))
    return np.full(n_items, cap, dtype=np.int64)


def fit_prices(
    items: np.ndarray,
    scores: np.ndarray,
    k: int,
    tail: np.ndarray,
    policy: TrafficPolicy,
) -> ExposurePrices:
    """Learn per-item prices that meet the caps and the long-tail share on these candidates."""
    n_items = len(tail)
    caps = exposure_caps(len(items), k, n_items, policy)
    util = utility(items, scores, policy.utility)
    safe = np.maximum(items, 0)
    head = ~tail
    base = select(items, scores, util, k)
    tail_now = _tail_share(base, tail)
    tail_target = min(policy.max_tail_share, policy.tail_gain * tail_now)
    cap_price = np.zeros(n_items, dtype=np.float64)
    head_price = 0.0
    for it in range(policy.iterations):
        prices = cap_price + head_price * head
        chosen = select(items, scores, util - prices[safe], k)
        exp = exposure(chosen, n_items)
        step = policy.step / np.sqrt(1.0 + it / 10.0)
        cap_price = np.maximum(0.0, cap_price + step * (exp - caps) / caps)
        head_price = max(0.0, head_price + step * 4.0 * (tail_target - _tail_share(chosen, tail)))
    prices = (cap_price + head_price * head).astype(np.float32)
    return ExposurePrices(prices, caps, policy.utility)


def enforce_caps(
    items: np.ndarray, adjusted: np.ndarray, scores: np.ndarray, k: int, caps: np.ndarray
) -> np.ndarray:
    """Greedy global allocation: best adjusted pairs first, no item above its cap.

    Rows that run out of candidates under the caps keep fewer than k items (padded with -1).
    """
    n, c = items.shape
    order = np.argsort(-adjusted, axis=None, kind="stable")
    rows, cols = np.unravel_index(order, (n, c))
    filled = np.zeros(n, dtype=np.int64)
    used = np.zeros(len(caps), dtype=np.int64)
    out = np.full((n, k), -1, dtype=np.int64)
    out_scores = np.full((n, k), -np.inf)
    flat_items = items[rows, cols]
    flat_ok = np.isfinite(adjusted[rows, cols]) & (flat_items >= 0)
    flat_scores = scores[rows, cols]
    remaining = n * k
    for r, item, ok, s in zip(
        rows.tolist(), flat_items.tolist(), flat_ok.tolist(), flat_scores.tolist(), strict=True
    ):
        if not ok or filled[r] >= k or used[item] >= caps[item]:
            continue
        out[r, filled[r]] = item
        out_scores[r, filled[r]] = s
        filled[r] += 1
        used[item] += 1
        remaining -= 1
        if remaining == 0:
            break
    order2 = np.argsort(-out_scores, axis=1, kind="stable")
    return np.take_along_axis(out, order2, axis=1)


def apply_policy(
    items: np.ndarray,
    scores: np.ndarray,
    k: int,
    tail: np.ndarray,
    policy: TrafficPolicy | str = "longtail",
) -> tuple[np.ndarray, ExposurePrices]:
    """Offline path: learn prices on all candidate lists, then allocate with hard caps."""
    if isinstance(policy, str):
        policy = POLICIES[policy]
    prices = fit_prices(items, scores, k, tail, policy)
    adjusted = _adjusted(items, scores, prices.item_prices, policy.utility)
    return enforce_caps(items, adjusted, scores, k, prices.caps), prices


def _tail_share(chosen: np.ndarray, tail: np.ndarray) -> float:
    valid = chosen >= 0
    return float(tail[chosen[valid]].mean()) if valid.any() else 0.0
