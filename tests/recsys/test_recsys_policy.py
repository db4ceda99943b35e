"""The long-tail traffic policy on a synthetic case with a strong popularity skew."""

from __future__ import annotations

import numpy as np

from juxing.recsys.evaluation import aplt, exposure, gini, long_tail_mask
from juxing.recsys.policy import (
    ExposurePrices,
    TrafficPolicy,
    apply_policy,
    enforce_caps,
    exposure_caps,
    fit_prices,
)


def skewed_candidates(n_users: int = 400, n_items: int = 200, c: int = 40, seed: int = 1):
    """Candidate lists where popular items (low ids) score higher for everybody."""
    rng = np.random.default_rng(seed)
    items = np.empty((n_users, c), dtype=np.int64)
    scores = np.empty((n_users, c))
    p = 1.0 / np.arange(1, n_items + 1) ** 1.1
    p /= p.sum()
    for u in range(n_users):
        row = rng.choice(n_items, size=c, replace=False, p=p)
        s = np.sort(rng.random(c) + 2.0 / (1 + row) ** 0.3)[::-1]
        items[u], scores[u] = row[np.argsort(row)], s
    counts = np.bincount(items[:, :10].ravel(), minlength=n_items)
    return items, scores, long_tail_mask(counts + np.arange(n_items)[::-1] * 1e-6)


def test_caps_are_met_and_tail_share_rises() -> None:
    items, scores, tail = skewed_candidates()
    policy = TrafficPolicy("test", cap_factor=3.0, tail_gain=2.0)
    k = 10
    off = items[:, :k]
    on, prices = apply_policy(items, scores, k, tail, policy)
    caps = exposure_caps(len(items), k, len(tail), policy)
    assert (exposure(on, len(tail)) <= caps).all()
    assert aplt(on, tail) > 1.5 * aplt(off, tail)
    assert gini(exposure(on, len(tail))) < gini(exposure(off, len(tail)))
    for row_on, row_cand in zip(on, items, strict=True):
        valid = row_on[row_on >= 0]
        assert len(set(valid.tolist())) == len(valid)
        assert set(valid.tolist()) <= set(row_cand.tolist())
    assert (on >= 0).sum() == len(items) * k  # enough candidates: every list is full
    assert prices.item_prices.shape == (len(tail),)


def test_prices_are_usable_per_request(tmp_path) -> None:
    items, scores, tail = skewed_candidates()
    prices = fit_prices(items, scores, 10, tail, TrafficPolicy("t", 3.0, 2.0))
    prices.save(str(tmp_path / "prices.npz"))
    loaded = ExposurePrices.load(str(tmp_path / "prices.npz"))
    one = loaded.rerank(items[:1], scores[:1], 10)
    assert one.shape == (1, 10)
    # ordered by the model's score among the chosen items
    pos = [int(np.flatnonzero(items[0] == i)[0]) for i in one[0]]
    assert pos == sorted(pos)
    assert aplt(loaded.rerank(items, scores, 10), tail) > aplt(items[:, :10], tail)


def test_enforce_caps_with_tight_caps_leaves_slots_empty() -> None:
    items = np.array([[0, 1], [0, 1], [0, 1]])
    scores = np.array([[2.0, 1.0], [2.0, 1.0], [2.0, 1.0]])
    out = enforce_caps(items, scores, scores, 2, np.array([1, 1]))
    assert (exposure(out, 2) <= 1).all()
    assert (out >= 0).sum() == 2
