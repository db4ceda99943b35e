"""Our default next-item model: a closed-form item-item model blended with item transitions.

``TransitionEASERecommender`` scores the next item of a history as a blend of

* **transitions**: how often item ``j`` directly follows item ``i`` in the training sequences
  (first-order Markov chain, optionally with a short look-ahead window and backward links),
  row-normalised, applied to the most recent items of the history with a recency decay;
* **EASE** (Steck 2019): a closed-form ridge item-item regression ``B`` learned on the users x
  items matrix, applied to the history with a (weaker) recency decay — the long-term taste;
* a small popularity prior, which only breaks ties and serves empty histories.

Each component's scores are normalised per history (divided by that row's maximum) before the
weighted sum, so the blend weights mean the same on any data set. The blend weights and decays
are chosen on a validation target when one is given to ``fit`` (the standard protocol passes the
second-to-last item of each user); everything is numpy / scipy, and scoring any new history
(including session events that arrived after training) is one sparse-dense product.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.linalg as sla
import scipy.sparse as sp

from juxing.recsys.base import Recommender, Validation, mask_seen
from juxing.recsys.data import History, Interactions, histories_to_csr

_EPS = np.float32(1e-12)


class TransitionEASERecommender(Recommender):
    """Default sequence-aware model (transitions + EASE blend). See the module docstring."""

    name = "transition-ease"
    defaults = {
        "l2": 300.0,  # EASE ridge strength
        "max_ease_items": 20000,  # the dense (n x n) parts cover at most this many items ...
        "min_ease_count": 3,  # ... each with at least this many training interactions
        "ridge_l2": 50.0,  # next-item ridge regression: strength (50 > 10 on validation) ...
        "ridge_decay": 0.5,  # ... recency decay of the input prefix ...
        "ridge_len": 5,  # ... and how many recent items form the input
        "ridge_weight": 1.0,
        "trans_weight": 0.3,
        "window": 1,  # transitions counted to the next `window` items ...
        "gap_decay": 0.5,  # ... with weight gap_decay ** (gap - 1)
        "backward": 0.0,  # weight of the reversed (j -> i) transitions
        "smoothing": 5.0,  # row normalisation: counts / (row total + smoothing)
        "trans_decay": 0.1,  # history recency decay for the transition part
        "trans_len": 5,  # how many recent items feed the transition part
        "ease_decay": 0.5,  # history recency decay for the EASE part
        "ease_weight": 0.5,  # blend weights (the transition part has weight 1)
        "pop_weight": 0.01,
        "attr_weight": 0.3,  # item attributes (when the data has them): weight ...
        "attr_decay": 0.3,  # ... recency decay ...
        "attr_len": 3,  # ... and how many recent items are matched on attributes
        "tune": True,  # choose decays / weights on the validation target when given one
        "tune_users": 4000,  # validation users sampled for tuning
        "seed": 0,
    }

    # --- training -----------------------------------------------------------------------------
    def _fit(self, data: Interactions, validation: Validation | None) -> None:
        p = self.params
        counts = data.item_counts()
        self.popularity = (counts / max(counts.max(), 1)).astype(np.float32)
        self.transition = _transition_matrix(
            data,
            int(p["window"]),
            float(p["gap_decay"]),
            float(p["backward"]),
            float(p["smoothing"]),
        )
        m = min(int(p["max_ease_items"]), int((counts >= int(p["min_ease_count"])).sum()))
        self.ease_items = np.sort(np.argsort(-counts, kind="stable")[:m]).astype(np.int64)
        self.ease = _ease(data, self.ease_items, float(p["l2"]))
        self.ridge = _next_item_ridge(
            data,
            self.ease_items,
            float(p["ridge_l2"]),
            float(p["ridge_decay"]),
            int(p["ridge_len"]),
        )
        self.attributes = _attribute_embedding(data.item_attributes, data.n_items)
        if validation is not None and p["tune"]:
            self.params.update(self._tune(validation))

    def _tune(self, validation: Validation) -> dict[str, float]:
        """Grid over blend weights and query decays, maximising NDCG@10 on validation targets."""
        histories, targets = validation
        rng = np.random.default_rng(int(self.params["seed"]))
        n = len(histories)
        pick = np.sort(rng.choice(n, size=min(n, int(self.params["tune_users"])), replace=False))
        hs = [histories[i] for i in pick]
        ts = np.asarray(targets)[pick]
        trans = {td: self._transition_part(hs, td) for td in (0.1, 0.5)}
        ease = {ed: self._ease_part(hs, ed) for ed in (0.3, 0.6, 1.0)}
        ridge = self._ridge_part(hs)
        pop = float(self.params["pop_weight"]) * self.popularity
        attr = self._attribute_part(hs)
        grid = {
            "ease_weight": (0.0, 0.3, 0.6, 1.0, 2.0),
            "trans_weight": (0.0, 0.3, 1.0),
            "ease_decay": tuple(ease),
            "trans_decay": tuple(trans),
            "attr_weight": (0.0, 0.15, 0.3, 0.6) if attr is not None else (0.0,),
        }
        current = {key: self.params[key] for key in grid}
        current["attr_weight"] = current["attr_weight"] if attr is not None else 0.0
        current["ease_decay"] = 0.6 if current["ease_decay"] not in ease else current["ease_decay"]
        current["trans_decay"] = (
            0.1 if current["trans_decay"] not in trans else current["trans_decay"]
        )

        def objective(c: dict[str, float]) -> float:
            s = ridge + c["trans_weight"] * trans[c["trans_decay"]]
            s = s + c["ease_weight"] * ease[c["ease_decay"]] + pop
            if attr is not None and c["attr_weight"]:
                s = s + c["attr_weight"] * attr
            return _ndcg_at(s, hs, ts, 10)

        best = objective(current)
        for _ in range(2):  # coordinate ascent, two sweeps
            for key, values in grid.items():
                for value in values:
                    if value == current[key]:
                        continue
                    trial = current | {key: value}
                    score = objective(trial)
                    if score > best:
                        best, current = score, trial
        return current

    # --- scoring ------------------------------------------------------------------------------
    def _transition_part(self, histories: Sequence[History], decay: float) -> np.ndarray:
        q = histories_to_csr(histories, self.n_items, decay, max_len=int(self.params["trans_len"]))
        return _row_normalise(np.asarray((q @ self.transition).toarray(), dtype=np.float32))

    def _dense_part(self, q: sp.csr_matrix, weights: np.ndarray) -> np.ndarray:
        sub = np.asarray(q[:, self.ease_items] @ weights, dtype=np.float32)
        if len(self.ease_items) == self.n_items:
            return _row_normalise(sub)
        s = np.zeros((q.shape[0], self.n_items), dtype=np.float32)
        s[:, self.ease_items] = sub
        return _row_normalise(s)

    def _ease_part(self, histories: Sequence[History], decay: float) -> np.ndarray:
        return self._dense_part(histories_to_csr(histories, self.n_items, decay), self.ease)

    def _ridge_part(self, histories: Sequence[History]) -> np.ndarray:
        p = self.params
        q = histories_to_csr(
            histories, self.n_items, float(p["ridge_decay"]), max_len=int(p["ridge_len"])
        )
        return self._dense_part(q, self.ridge)

    def _attribute_part(self, histories: Sequence[History]) -> np.ndarray | None:
        """Attribute (brand / category) overlap of every item with the last few history items."""
        if self.attributes is None:
            return None
        p = self.params
        q = histories_to_csr(
            histories, self.n_items, float(p["attr_decay"]), max_len=int(p["attr_len"])
        )
        profile = np.asarray((q @ self.attributes).toarray(), dtype=np.float32)
        s = np.asarray((self.attributes @ profile.T).T, dtype=np.float32)
        return _row_normalise(np.ascontiguousarray(s))

    def score(self, histories: Sequence[History]) -> np.ndarray:
        p = self.params
        s = float(p["pop_weight"]) * np.broadcast_to(
            self.popularity, (len(histories), self.n_items)
        )
        s = s.astype(np.float32)
        if p["ridge_weight"]:
            s += float(p["ridge_weight"]) * self._ridge_part(histories)
        if p["trans_weight"]:
            s += float(p["trans_weight"]) * self._transition_part(
                histories, float(p["trans_decay"])
            )
        if p["ease_weight"]:
            s += float(p["ease_weight"]) * self._ease_part(histories, float(p["ease_decay"]))
        if p["attr_weight"] and self.attributes is not None:
            attr = self._attribute_part(histories)
            assert attr is not None
            s += float(p["attr_weight"]) * attr
        return s

    # --- artifacts ----------------------------------------------------------------------------
    def _state(self) -> dict[str, np.ndarray]:
        t = self.transition
        return {
            "popularity": self.popularity,
            "trans_indptr": t.indptr,
            "trans_indices": t.indices,
            "trans_data": t.data,
            "ease_items": self.ease_items,
            "ease": self.ease,
            "ridge": self.ridge,
        } | _sparse_state("attr", self.attributes)

    def _load_state(self, arrays: dict[str, np.ndarray]) -> None:
        self.popularity = arrays["popularity"]
        self.transition = sp.csr_matrix(
            (arrays["trans_data"], arrays["trans_indices"], arrays["trans_indptr"]),
            shape=(self.n_items, self.n_items),
        )
        self.ease_items = arrays["ease_items"]
        self.ease = arrays["ease"]
        self.ridge = arrays["ridge"]
        self.attributes = None
        if "attr_indptr" in arrays:
            self.attributes = sp.csr_matrix(
                (arrays["attr_data"], arrays["attr_indices"], arrays["attr_indptr"]),
                shape=tuple(arrays["attr_shape"]),
            )


def _sparse_state(prefix: str, m: sp.csr_matrix | None) -> dict[str, np.ndarray]:
    if m is None:
        return {}
    return {
        f"{prefix}_indptr": m.indptr,
        f"{prefix}_indices": m.indices,
        f"{prefix}_data": m.data,
        f"{prefix}_shape": np.array(m.shape),
    }


def _attribute_embedding(attributes: sp.csr_matrix | None, n_items: int) -> sp.csr_matrix | None:
    """TF-IDF weighted, L2-normalised item x attribute rows (None without attributes)."""
    if attributes is None or attributes.nnz == 0:
        return None
    a = sp.csr_matrix(attributes, dtype=np.float32)
    df = np.asarray((a > 0).sum(axis=0)).ravel()
    a = a @ sp.diags(np.log((n_items + 1) / (df + 1)).astype(np.float32))
    norms = np.sqrt(np.asarray(a.multiply(a).sum(axis=1)).ravel())
    return (sp.diags(1.0 / np.maximum(norms, 1e-9)) @ a).tocsr().astype(np.float32)


def _next_item_ridge(
    data: Interactions, items: np.ndarray, l2: float, decay: float, length: int
) -> np.ndarray:
    """Ridge regression from a decayed window of recent items to the next item, over ``items``.

    One training row per position t >= 1 of every sequence: input = the ``length`` items before
    t weighted ``decay ** age``, target = the item at t. W = (X'X + l2 I)^-1 X'Y, restricted to
    ``items`` (other items neither predict nor are predicted here).
    """
    n = data.n_items
    local = np.full(n, -1, dtype=np.int64)
    local[items] = np.arange(len(items))
    m = len(items)
    user = data.user_index()
    seq_items = local[data.items]
    rows, cols, vals = [], [], []
    pos = np.arange(len(seq_items))
    target_ok = seq_items >= 0
    for lag in range(1, length + 1):
        src = pos[lag:][user[lag:] == user[:-lag]]  # target positions with a source `lag` back
        src = src[target_ok[src] & (seq_items[src - lag] >= 0)]
        rows.append(src)
        cols.append(seq_items[src - lag])
        vals.append(np.full(len(src), decay ** (lag - 1), dtype=np.float32))
    r, c, v = np.concatenate(rows), np.concatenate(cols), np.concatenate(vals)
    x = sp.coo_matrix((v, (r, c)), shape=(len(seq_items), m)).tocsr()
    x.sum_duplicates()
    keep = np.flatnonzero(target_ok & (np.diff(x.indptr) > 0))
    x = x[keep]
    y = sp.csr_matrix(
        (np.ones(len(keep), dtype=np.float32), (np.arange(len(keep)), seq_items[keep])),
        shape=(len(keep), m),
    )
    gram = np.asarray((x.T @ x).toarray(), dtype=np.float32)
    gram[np.diag_indices_from(gram)] += np.float32(l2)
    prec = _spd_inverse(gram)
    xy = (x.T @ y).tocsr()
    # prec is symmetric: prec @ xy; stored C-contiguous (row-major products at scoring time)
    return np.ascontiguousarray((xy.T @ prec).T, dtype=np.float32)


def _transition_matrix(
    data: Interactions, window: int, gap_decay: float, backward: float, smoothing: float
) -> sp.csr_matrix:
    """Row-normalised counts of item j following item i within ``window`` steps."""
    n = data.n_items
    user = data.user_index()
    rows: list[np.ndarray] = []
    cols: list[np.ndarray] = []
    vals: list[np.ndarray] = []
    for gap in range(1, window + 1):
        same = user[gap:] == user[:-gap]
        src, dst = data.items[:-gap][same], data.items[gap:][same]
        w = np.full(len(src), gap_decay ** (gap - 1), dtype=np.float32)
        rows += [src, dst] if backward else [src]
        cols += [dst, src] if backward else [dst]
        vals += [w, backward * w] if backward else [w]
    if not rows:
        return sp.csr_matrix((n, n), dtype=np.float32)
    t = sp.csr_matrix(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(n, n)
    )
    t.sum_duplicates()
    t.setdiag(0)
    t.eliminate_zeros()
    totals = np.asarray(t.sum(axis=1)).ravel().astype(np.float32)
    return (sp.diags(1.0 / (totals + smoothing + _EPS)) @ t).tocsr().astype(np.float32)


def _ease(data: Interactions, items: np.ndarray, l2: float) -> np.ndarray:
    """EASE item-item weights over ``items``: B = I - P / diag(P), P = (X'X + l2 I)^-1."""
    x = data.to_csr(binary=True)[:, items]
    gram = np.asarray((x.T @ x).toarray(), dtype=np.float32)
    gram[np.diag_indices_from(gram)] += np.float32(l2)
    prec = _spd_inverse(gram)
    diag = np.diag(prec).copy()
    prec /= -diag[None, :]
    np.fill_diagonal(prec, 0.0)
    return prec


def _spd_inverse(a: np.ndarray) -> np.ndarray:
    """Inverse of a symmetric positive definite float32 matrix (Cholesky; overwrites ``a``)."""
    if a.shape[0] == 0:  # no item with enough interactions for the dense parts
        return a
    chol, info = sla.lapack.spotrf(a, lower=1, overwrite_a=1)
    if info != 0:
        raise np.linalg.LinAlgError(f"Cholesky factorisation failed (info={info})")
    inv, info = sla.lapack.spotri(chol, lower=1, overwrite_c=1)
    if info != 0:
        raise np.linalg.LinAlgError(f"inverse failed (info={info})")
    inv = np.tril(inv)
    inv += np.tril(inv, -1).T
    return inv


def _row_normalise(s: np.ndarray) -> np.ndarray:
    top = np.abs(s).max(axis=1, keepdims=True)
    s /= np.maximum(top, _EPS)
    return s


def _ndcg_at(
    scores: np.ndarray, histories: Sequence[History], targets: np.ndarray, k: int
) -> float:
    """Mean NDCG@k of one target per row, full ranking with the history excluded."""
    scores = scores.copy()
    target_scores = scores[np.arange(len(targets)), targets].copy()
    mask_seen(scores, histories)
    hit_ok = np.isfinite(scores[np.arange(len(targets)), targets])
    rank = (scores > target_scores[:, None]).sum(axis=1)
    gain = np.where(hit_ok & (rank < k), 1.0 / np.log2(rank + 2.0), 0.0)
    return float(gain.mean())
