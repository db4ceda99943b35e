"""Our default next-item model: a closed-form item-item model blended with item transitions.

``TransitionEASERecommender`` scores the next item of a history as a blend of

* **transitions**: how often item ``j`` directly follows item ``i`` in the training sequences
  (first-order Markov chain, optionally with a short look-ahead window and backward links),
  row-normalised, applied to the most recent items of the history with a recency decay;
* **EASE** (Steck 2019): a closed-form ridge item-item regression ``B`` learned on the users x
  items matrix, applied to the history with a (weaker) recency decay — the long-term taste;
* a small popularity prior, which only breaks ties and serves empty histories.

The next-item ridge regression (recent items -> next item) is solved with EASE's precision matrix
(``ridge_l2=None``, the default), so a fit costs one dense Cholesky inverse.

Each component's scores are normalised per history (divided by that row's maximum) before the
weighted sum, so the blend weights mean the same on any data set. The blend weights and decays
are chosen on a validation target when one is given to ``fit`` (the standard protocol passes the
second-to-last item of each user), or, with ``fit(data, hold_out_last=True)``, on each user's
last item by exact leave-one-out from the one fit; everything is numpy / scipy, and scoring any
new history (including session events that arrived after training) is one sparse-dense product.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import scipy.linalg as sla
import scipy.sparse as sp

from juxing.recsys.base import Recommender, Validation, mask_seen
from juxing.recsys.data import History, Interactions, histories_to_csr

_EPS = np.float32(1e-12)
_TRANS_DECAYS = (0.1, 0.5)  # query decays the tuning grid tries
_EASE_DECAYS = (0.3, 0.6, 1.0)
_BLOCK = 512  # rows / columns per block when mirroring or transposing n x n matrices
_LOO_BATCH = 1000  # tuning users per batch of leave-one-out corrections (memory bound)


@dataclass
class _Parts:
    """The blend's component scores on the tuning histories (each row-normalised)."""

    trans: dict[float, np.ndarray]
    ease: dict[float, np.ndarray]
    ridge: np.ndarray
    pop: np.ndarray
    attr: np.ndarray | None


class TransitionEASERecommender(Recommender):
    """Default sequence-aware model (transitions + EASE blend). See the module docstring."""

    name = "transition-ease"
    defaults = {
        "l2": 300.0,  # EASE ridge strength
        "max_ease_items": 20000,  # the dense (n x n) parts cover at most this many items ...
        "min_ease_count": 3,  # ... each with at least this many training interactions
        # next-item ridge regression: None = on EASE's Gram matrix (one factorisation for both;
        # as good on validation as its own), or a strength for its own Gram matrix ...
        "ridge_l2": None,
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
    # held during a hold_out_last fit only (the leave-one-out tuning), None otherwise
    _design: _RidgeDesign | None = None
    _precision: np.ndarray | None = None  # the regression's own precision (ridge_l2 set)

    # --- training -----------------------------------------------------------------------------
    def _fit(self, data: Interactions, validation: Validation | None) -> None:
        self._fit_state(data)
        if validation is not None and self.params["tune"]:
            histories, targets = validation
            pick = self._tune_sample(len(histories))
            hs = [histories[i] for i in pick]
            self.params.update(self._tune(self._parts(hs), hs, np.asarray(targets)[pick]))

    def _fit_holding_out_last(self, data: Interactions) -> None:
        """One factorisation: fit on all of ``data``, then tune on exact leave-one-out scores.

        For each sampled user the dense parts are corrected, in closed form, to what a model
        trained without that user's last item would score (a rank-2 Woodbury update of the EASE
        precision for the user's row, and the removal of one training row of the next-item
        regression); transitions and popularity are recounted without the sampled last items.
        """
        self._fit_state(data, keep_precision=True)
        users = np.flatnonzero(data.lengths() >= 2)
        if self.params["tune"] and len(users):
            users = users[self._tune_sample(len(users))]
            hs = [data.history(int(u))[:-1] for u in users]
            ts = np.array([data.history(int(u))[-1] for u in users], dtype=np.int64)
            self.params.update(self._tune(self._held_out_parts(data, users), hs, ts))
        self._precision = self._design = None

    def _fit_state(self, data: Interactions, keep_precision: bool = False) -> None:
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
        design = _ridge_design(data, self.ease_items, float(p["ridge_decay"]), int(p["ridge_len"]))
        xy = (design.x.T @ design.y).tocsr()
        prec = _spd_inverse(_gram(data, self.ease_items, float(p["l2"])))
        ridge_prec = prec
        if p["ridge_l2"] is not None:  # the regression's own Gram matrix (a second solve)
            gram = np.asarray((design.x.T @ design.x).toarray(), dtype=np.float32)
            gram[np.diag_indices_from(gram)] += np.float32(p["ridge_l2"])
            ridge_prec = _spd_inverse(gram)
        # precision matrices are symmetric: W' = xy' @ prec, then W C-ordered for the row-major
        # products at scoring time (transposed in place: no second n x n array)
        self.ridge = _transpose_in_place(np.asarray(xy.T.tocsr() @ ridge_prec, dtype=np.float32))
        # kept for the leave-one-out tuning only (None otherwise / when shared with EASE)
        self._design = design if keep_precision else None
        self._precision = ridge_prec if keep_precision and ridge_prec is not prec else None
        self.ease_diag = np.diag(prec).copy()
        self.ease = _ease_from_precision(prec, self.ease_diag)
        self.attributes = _attribute_embedding(data.item_attributes, data.n_items)

    def _tune_sample(self, n: int) -> np.ndarray:
        rng = np.random.default_rng(int(self.params["seed"]))
        return np.sort(rng.choice(n, size=min(n, int(self.params["tune_users"])), replace=False))

    def _parts(self, hs: Sequence[History]) -> _Parts:
        """The blend's components on validation histories, from the fitted state."""
        return _Parts(
            trans={td: self._transition_part(hs, td) for td in _TRANS_DECAYS},
            ease={ed: self._ease_part(hs, ed) for ed in _EASE_DECAYS},
            ridge=self._ridge_part(hs),
            pop=self.popularity,
            attr=self._attribute_part(hs),
        )

    def _held_out_parts(self, data: Interactions, users: np.ndarray) -> _Parts:
        """The components for each user's history without its last item, as if trained without it.

        Exact leave-one-out for the dense parts (EASE and the next-item regression, per user);
        transitions and popularity are recounted without the sampled users' last items.
        """
        p = self.params
        drop = np.zeros(data.n_interactions, dtype=bool)
        drop[data.indptr[users + 1] - 1] = True
        rest = _without(data, drop)
        counts = rest.item_counts()
        transition = _transition_matrix(
            rest,
            int(p["window"]),
            float(p["gap_decay"]),
            float(p["backward"]),
            float(p["smoothing"]),
        )
        hs = [data.history(int(u))[:-1] for u in users]
        ease: dict[float, list[np.ndarray]] = {ed: [] for ed in _EASE_DECAYS}
        ridge: list[np.ndarray] = []
        for start in range(0, len(users), _LOO_BATCH):
            batch = users[start : start + _LOO_BATCH]
            e, r = self._loo_dense(data, batch, hs[start : start + _LOO_BATCH])
            for ed in _EASE_DECAYS:
                ease[ed].append(e[ed])
            ridge.append(r)
        return _Parts(
            trans={td: self._transition_part(hs, td, transition) for td in _TRANS_DECAYS},
            ease={ed: np.concatenate(ease[ed]) for ed in _EASE_DECAYS},
            ridge=np.concatenate(ridge),
            pop=(counts / max(counts.max(), 1)).astype(np.float32),
            attr=self._attribute_part(hs),
        )

    def _loo_dense(
        self, data: Interactions, users: np.ndarray, hs: Sequence[History]
    ) -> tuple[dict[float, np.ndarray], np.ndarray]:
        """EASE (per decay) and ridge scores of ``hs`` with each user's last item held out.

        EASE: the user's binary row goes from ``x`` (with the last item) to ``x0`` (without),
        so the precision becomes P0 = P - PU (C^-1 + U'PU)^-1 U'P with U = [x, x0],
        C = diag(-1, 1) (Woodbury), and B0 = I - P0 / diag(P0). Ridge: the held-out item was
        the target of exactly one training row r (it is the user's last item); removing it
        changes the Gram matrix (own: by r r'; shared with EASE: as above) and X'Y by r e_v'.
        """
        p = self.params
        items = self.ease_items
        local = np.full(self.n_items, -1, dtype=np.int64)
        local[items] = np.arange(len(items))
        full = [data.history(int(u)) for u in users]
        xf = _binary_rows(full, local)
        x0 = _binary_rows(hs, local)
        qe = [histories_to_csr(hs, self.n_items, ed)[:, items].tocsr() for ed in _EASE_DECAYS]
        q = histories_to_csr(
            hs, self.n_items, float(p["ridge_decay"]), max_len=int(p["ridge_len"])
        )[:, items].tocsr()
        # every product with B at once, the rows of one user next to each other (cache reuse)
        qb = _interleaved_products([xf, x0, *qe, q], self.ease)
        pxf, px0 = self._precision_rows(xf, qb[:, 0]), self._precision_rows(x0, qb[:, 1])
        a_ff, a_f0, a_00 = _rowdot(pxf, xf), _rowdot(pxf, x0), _rowdot(px0, x0)
        # M = (C^-1 + U'PU)^-1 per user, C^-1 = diag(-1, 1)
        k11, k12, k22 = a_ff - 1.0, a_f0, a_00 + 1.0
        det = k11 * k22 - k12 * k12
        m11, m12, m22 = k22 / det, -k12 / det, k11 / det
        diag0 = self.ease_diag[None, :] - (
            m11[:, None] * pxf * pxf + 2 * m12[:, None] * pxf * px0 + m22[:, None] * px0 * px0
        )

        def p0_rows(qp: np.ndarray) -> np.ndarray:
            """Rows q P0 from rows q P."""
            q_f, q_0 = _rowdot(qp, xf), _rowdot(qp, x0)
            c1 = m11 * q_f + m12 * q_0
            c2 = m12 * q_f + m22 * q_0
            return qp - c1[:, None] * pxf - c2[:, None] * px0

        ease: dict[float, np.ndarray] = {}
        for k, ed in enumerate(_EASE_DECAYS):
            qp = self._precision_rows(qe[k], qb[:, 2 + k])
            ease[ed] = self._full_rows(qe[k].toarray() - p0_rows(qp) / diag0)
        # the one training row of the regression that had the held-out item as its target
        design = self._design
        assert design is not None
        last_pos = data.indptr[users + 1] - 1
        row = np.searchsorted(design.positions, last_pos)
        has_row = row < len(design.positions)
        has_row[has_row] = design.positions[row[has_row]] == last_pos[has_row]
        pick = sp.csr_matrix(
            (
                np.ones(int(has_row.sum()), dtype=np.float32),
                (np.flatnonzero(has_row), row[has_row]),
            ),
            shape=(len(users), design.x.shape[0]),
        )
        r_rows = (pick @ design.x).tocsr()  # zero rows where the item was no regression target
        target = np.where(has_row, local[np.array([h[-1] for h in full])], -1)
        if self._precision is None:  # shared Gram: W = P X'Y with P updated as for EASE
            w = _interleaved_products([q, xf, x0], self.ridge)
            qw = w[:, 0].copy()
            qp = self._precision_rows(q, qb[:, 5])
            qf, q0 = _rowdot(qp, xf), _rowdot(qp, x0)
            c1 = m11 * qf + m12 * q0
            c2 = m12 * qf + m22 * q0
            qw -= c1[:, None] * w[:, 1] + c2[:, None] * w[:, 2]
            coef = -_rowdot(qp - c1[:, None] * pxf - c2[:, None] * px0, r_rows)
        else:  # own Gram: remove r r' (Sherman-Morrison) and r e_v' from X'Y
            w = _interleaved_products([q, r_rows], self.ridge)
            qw = w[:, 0].copy()
            z = np.asarray(r_rows @ self._precision, dtype=np.float32)
            c = _rowdot(z, q) / (1.0 - _rowdot(z, r_rows))
            qw += c[:, None] * w[:, 1]
            coef = -c
        ok = np.flatnonzero(target >= 0)
        qw[ok, target[ok]] += coef[ok]
        return ease, self._full_rows(qw)

    def _precision_rows(self, q: sp.csr_matrix, qb: np.ndarray) -> np.ndarray:
        """q P for sparse rows q over the dense items, given q B: P = -B diag(P) + diag(P)."""
        return (q.toarray() - qb) * self.ease_diag[None, :]

    def _full_rows(self, sub: np.ndarray) -> np.ndarray:
        sub = np.asarray(sub, dtype=np.float32)
        if len(self.ease_items) == self.n_items:
            return _row_normalise(sub)
        s = np.zeros((sub.shape[0], self.n_items), dtype=np.float32)
        s[:, self.ease_items] = sub
        return _row_normalise(s)

    def _tune(self, parts: _Parts, hs: Sequence[History], ts: np.ndarray) -> dict[str, float]:
        """Grid over blend weights and query decays, maximising NDCG@10 on validation targets."""
        trans, ease, ridge, attr = parts.trans, parts.ease, parts.ridge, parts.attr
        pop = float(self.params["pop_weight"]) * parts.pop
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

        rows = np.arange(len(ts))
        base = ridge + pop  # the fixed part; seen items can never be recommended: -inf
        mask_seen(base, hs)
        seen_target = ~np.isfinite(base[rows, ts])
        gains = 1.0 / np.log2(np.arange(10) + 2.0)
        buf, tmp = np.empty_like(base), np.empty_like(base)
        above = np.empty(base.shape, dtype=bool)
        tried: dict[tuple[float, ...], float] = {}

        def objective(c: dict[str, float]) -> float:
            """NDCG@10 of the blend ``c`` (computed in place: the arrays are large)."""
            key = tuple(c[k] for k in grid)
            if key in tried:
                return tried[key]
            terms = [(c["trans_weight"], trans[c["trans_decay"]])]
            terms.append((c["ease_weight"], ease[c["ease_decay"]]))
            if attr is not None:
                terms.append((c["attr_weight"], attr))
            np.copyto(buf, base)
            target = ridge[rows, ts] + pop[ts]
            for weight, part in terms:
                if weight:
                    np.multiply(part, np.float32(weight), out=tmp)
                    np.add(buf, tmp, out=buf)
                    target += np.float32(weight) * part[rows, ts]
            np.greater(buf, target[:, None], out=above)
            rank = above.sum(axis=1)
            hit = ~seen_target & (rank < 10)
            tried[key] = float(np.where(hit, gains[np.minimum(rank, 9)], 0.0).mean())
            return tried[key]

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
    def _transition_part(
        self, histories: Sequence[History], decay: float, matrix: sp.csr_matrix | None = None
    ) -> np.ndarray:
        q = histories_to_csr(histories, self.n_items, decay, max_len=int(self.params["trans_len"]))
        t = self.transition if matrix is None else matrix
        return _row_normalise(np.asarray((q @ t).toarray(), dtype=np.float32))

    def _dense_part(self, q: sp.csr_matrix, weights: np.ndarray) -> np.ndarray:
        return self._full_rows(np.asarray(q[:, self.ease_items] @ weights, dtype=np.float32))

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


@dataclass(frozen=True)
class _RidgeDesign:
    """Training rows of the next-item regression over the dense items (local indices)."""

    x: sp.csr_matrix  # input: decayed window of the items before the target
    y: sp.csr_matrix  # one-hot target
    positions: np.ndarray  # position of each row's target in ``data.items`` (increasing)


def _ridge_design(data: Interactions, items: np.ndarray, decay: float, length: int) -> _RidgeDesign:
    """One row per position t >= 1 of every sequence: input = the ``length`` items before t
    weighted ``decay ** age``, target = the item at t; both restricted to ``items`` (other items
    neither predict nor are predicted here), rows without any input dropped.
    """
    local = np.full(data.n_items, -1, dtype=np.int64)
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
    y = sp.csr_matrix(
        (np.ones(len(keep), dtype=np.float32), (np.arange(len(keep)), seq_items[keep])),
        shape=(len(keep), m),
    )
    return _RidgeDesign(x[keep].tocsr(), y, keep)


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


def _gram(data: Interactions, items: np.ndarray, l2: float) -> np.ndarray:
    """X'X + l2 I of the binary users x ``items`` matrix, dense float32."""
    x = data.to_csr(binary=True)[:, items]
    gram = np.asarray((x.T @ x).toarray(), dtype=np.float32)
    gram[np.diag_indices_from(gram)] += np.float32(l2)
    return gram


def _ease_from_precision(prec: np.ndarray, diag: np.ndarray) -> np.ndarray:
    """EASE weights B = I - P / diag(P) (Steck 2019), computed in place of ``prec``."""
    prec /= -diag[None, :]
    np.fill_diagonal(prec, 0.0)
    return prec


def _spd_inverse(a: np.ndarray) -> np.ndarray:
    """Inverse of a symmetric positive definite float32 matrix, C-ordered, in place of ``a``.

    ``a`` is symmetric, so in either memory order it is (or its transpose is) the same matrix in
    Fortran order: LAPACK factorises (Cholesky) and inverts it without a copy; the triangle it
    leaves is mirrored block by block.
    """
    n = a.shape[0]
    if n == 0:  # no item with enough interactions for the dense parts
        return a
    f = a if a.flags.f_contiguous else a.T
    chol, info = sla.lapack.spotrf(f, lower=1, overwrite_a=1, clean=0)
    if info != 0:
        raise np.linalg.LinAlgError(f"Cholesky factorisation failed (info={info})")
    inv, info = sla.lapack.spotri(chol, lower=1, overwrite_c=1)
    if info != 0:
        raise np.linalg.LinAlgError(f"inverse failed (info={info})")
    out = inv.T  # C-ordered; the valid triangle is the upper one
    for i in range(0, n, _BLOCK):  # mirror the upper triangle into the lower one
        j = min(i + _BLOCK, n)
        out[j:, i:j] = out[i:j, j:].T
        block = out[i:j, i:j]
        block[...] = np.triu(block) + np.triu(block, 1).T
    return out


def _transpose_in_place(a: np.ndarray) -> np.ndarray:
    """Transpose a square C-ordered matrix in place, block by block; returns ``a``."""
    n = a.shape[0]
    for i in range(0, n, _BLOCK):
        j = min(i + _BLOCK, n)
        a[i:j, i:j] = a[i:j, i:j].T.copy()
        for k in range(j, n, _BLOCK):
            m = min(k + _BLOCK, n)
            upper = a[i:j, k:m].copy()
            a[i:j, k:m] = a[k:m, i:j].T
            a[k:m, i:j] = upper.T
    return a


def _row_normalise(s: np.ndarray) -> np.ndarray:
    top = np.abs(s).max(axis=1, keepdims=True)
    s /= np.maximum(top, _EPS)
    return s


def _interleaved_products(mats: list[sp.csr_matrix], dense: np.ndarray) -> np.ndarray:
    """``mats[k] @ dense`` for every k, as one array indexed [row, k, column].

    The k rows of one history are multiplied one after the other, so the rows of ``dense`` they
    share (the history's items) are read from cache instead of memory.
    """
    k, b = len(mats), mats[0].shape[0]
    order = np.arange(k * b).reshape(k, b).T.ravel()
    stacked = sp.vstack(mats, format="csr")[order]
    return np.asarray(stacked @ dense, dtype=np.float32).reshape(b, k, dense.shape[1])


def _rowdot(a: np.ndarray, b: sp.csr_matrix) -> np.ndarray:
    """Row-wise dot products of dense rows ``a`` with sparse rows ``b``."""
    return np.asarray(b.multiply(a).sum(axis=1), dtype=np.float32).ravel()


def _binary_rows(histories: Sequence[History], local: np.ndarray) -> sp.csr_matrix:
    """1 for each (history, dense item) pair; ``local`` maps items to dense indices (or -1)."""
    rows = np.repeat(np.arange(len(histories)), [len(h) for h in histories])
    cols = local[np.concatenate([np.asarray(h, dtype=np.int64) for h in histories])]
    keep = cols >= 0
    m = sp.csr_matrix(
        (np.ones(int(keep.sum()), dtype=np.float32), (rows[keep], cols[keep])),
        shape=(len(histories), int(local.max()) + 1),
    )
    m.sum_duplicates()
    m.data[:] = 1.0
    return m


def _without(data: Interactions, drop: np.ndarray) -> Interactions:
    """``data`` minus the interactions flagged in ``drop``."""
    keep = ~drop
    counts = np.bincount(data.user_index()[keep], minlength=data.n_users)
    indptr = np.zeros_like(data.indptr)
    np.cumsum(counts, out=indptr[1:])
    return Interactions(indptr, data.items[keep], data.n_items, None)
