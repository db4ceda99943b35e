"""Offline evaluation: leave-one-out full ranking, accuracy and exposure metrics.

All metrics are pure functions of top-K item lists (``-1`` = empty slot):

* ``hit_rate`` / ``ndcg``: one held-out target per user (HR@K equals Recall@K here);
* ``coverage``: share of the catalogue that appears in at least one list;
* ``aplt``: average share of long-tail items per list (head = the 20% most popular items by
  training interactions, long tail = the rest);
* ``gini``: Gini coefficient of item exposure over all lists (0 = every item shown equally often,
  1 = one item takes all exposure), computed over the whole catalogue.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from juxing.recsys.base import Recommender
from juxing.recsys.data import History, LeaveOneOutSplit


def hit_rate(rec_items: np.ndarray, targets: np.ndarray, k: int) -> float:
    """Share of rows whose target is among the first ``k`` items."""
    if len(targets) == 0:
        return 0.0
    return float((rec_items[:, :k] == np.asarray(targets)[:, None]).any(axis=1).mean())


def ndcg(rec_items: np.ndarray, targets: np.ndarray, k: int) -> float:
    """Mean NDCG@k with a single relevant item: 1 / log2(position + 2) when hit, else 0."""
    if len(targets) == 0:
        return 0.0
    hits = rec_items[:, :k] == np.asarray(targets)[:, None]
    gains = 1.0 / np.log2(np.arange(hits.shape[1]) + 2.0)
    return float((hits * gains).sum(axis=1).mean())


def exposure(rec_items: np.ndarray, n_items: int) -> np.ndarray:
    """How many lists show each item."""
    shown = rec_items[rec_items >= 0]
    return np.bincount(shown, minlength=n_items)


def coverage(rec_items: np.ndarray, n_items: int) -> float:
    return float((exposure(rec_items, n_items) > 0).sum() / max(n_items, 1))


def long_tail_mask(item_counts: np.ndarray, head_share: float = 0.2) -> np.ndarray:
    """True for long-tail items: all but the ``head_share`` most interacted items."""
    n = len(item_counts)
    n_head = int(np.ceil(head_share * n))
    order = np.argsort(-item_counts, kind="stable")
    tail = np.ones(n, dtype=bool)
    tail[order[:n_head]] = False
    return tail


def aplt(rec_items: np.ndarray, tail: np.ndarray) -> float:
    """Average percentage of long-tail items per list (empty slots do not count)."""
    valid = rec_items >= 0
    in_tail = np.where(valid, tail[np.maximum(rec_items, 0)], False)
    per_list = in_tail.sum(axis=1) / np.maximum(valid.sum(axis=1), 1)
    return float(per_list.mean()) if len(per_list) else 0.0


def gini(counts: np.ndarray) -> float:
    """Gini coefficient of a non-negative vector (here: item exposure counts)."""
    x = np.sort(np.asarray(counts, dtype=np.float64))
    n = len(x)
    if n == 0 or x.sum() == 0:
        return 0.0
    cum = np.cumsum(x)
    return float((n + 1 - 2 * (cum / cum[-1]).sum()) / n)


@dataclass
class EvalReport:
    """Figures of one model on one split, with or without a traffic policy."""

    model: str
    policy: str
    metrics: dict[str, float] = field(default_factory=dict)
    train_s: float = 0.0
    train_cpu_s: float = 0.0
    protocol: str = "strict"

    def as_dict(self) -> dict[str, Any]:
        head: dict[str, Any] = {"model": self.model, "policy": self.policy}
        head["protocol"] = self.protocol
        head["train_s"] = round(self.train_s, 2)
        head["train_cpu_s"] = round(self.train_cpu_s, 2)
        return head | {key: round(value, 4) for key, value in self.metrics.items()}


def list_metrics(
    rec_items: np.ndarray, targets: np.ndarray, ks: Sequence[int], n_items: int, tail: np.ndarray
) -> dict[str, float]:
    """HR@K, NDCG@K for every K, and coverage / APLT / Gini at the largest K."""
    out: dict[str, float] = {}
    for k in ks:
        out[f"HR@{k}"] = hit_rate(rec_items, targets, k)
        out[f"NDCG@{k}"] = ndcg(rec_items, targets, k)
    top = rec_items[:, : max(ks)]
    out["coverage"] = coverage(top, n_items)
    out["APLT"] = aplt(top, tail)
    out["Gini"] = gini(exposure(top, n_items))
    return out


Reranker = Callable[[np.ndarray, np.ndarray, int], np.ndarray]


def evaluate(
    model: Recommender,
    split: LeaveOneOutSplit,
    ks: Sequence[int] = (10, 20),
    *,
    target: str = "test",
    rerankers: dict[str, Reranker] | None = None,
    candidates: int = 200,
) -> list[EvalReport]:
    """Evaluate a fitted model on the split's test (or validation) targets.

    ``rerankers`` maps a policy name to ``f(candidate_items, candidate_scores, k) -> items``; the
    policy-off figures are always included under the name ``"off"``.
    """
    histories: Sequence[History]
    if target == "test":
        histories, targets = split.test_histories, split.test_targets
    else:
        histories, targets = split.valid_histories, split.valid_targets
    k_max = max(ks)
    n_cand = max(k_max, candidates) if rerankers else k_max
    recs = model.recommend(histories, n_cand, exclude_seen=True)
    tail = long_tail_mask(split.train.item_counts())
    reports = [
        EvalReport(
            model.name,
            "off",
            list_metrics(recs.items[:, :k_max], targets, ks, model.n_items, tail),
            model.train_seconds,
            model.train_cpu_seconds,
        )
    ]
    for name, rerank in (rerankers or {}).items():
        items = rerank(recs.items, recs.scores, k_max)
        reports.append(
            EvalReport(
                model.name,
                name,
                list_metrics(items, targets, ks, model.n_items, tail),
                model.train_seconds,
                model.train_cpu_seconds,
            )
        )
    return reports
