"""Baseline recommenders: popularity / trending, item-kNN and implicit ALS."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp

from juxing.recsys.base import Recommendations, Recommender, Validation, top_k
from juxing.recsys.data import History, Interactions, histories_to_csr


class PopularityRecommender(Recommender):
    """Most interacted items; with ``half_life_s`` a trending score (exponential time decay).

    Without timestamps the decay runs over each event's position in the log instead
    (``half_life_events``), or is off when that is not set either.
    """

    name = "popularity"
    defaults = {"half_life_s": None, "half_life_events": None}

    def _fit(self, data: Interactions, validation: Validation | None) -> None:
        weights = np.ones(len(data.items), dtype=np.float64)
        half_life = self.params["half_life_s"]
        if half_life and data.timestamps is not None:
            age = float(data.timestamps.max()) - data.timestamps.astype(np.float64)
            weights = np.power(0.5, age / float(half_life))
        elif self.params["half_life_events"]:
            age = (data.lengths().max() - 1) - (
                np.arange(len(data.items)) - np.repeat(data.indptr[:-1], data.lengths())
            )
            weights = np.power(0.5, age / float(self.params["half_life_events"]))
        self.popularity = np.bincount(data.items, weights=weights, minlength=data.n_items).astype(
            np.float32
        )

    def score(self, histories: Sequence[History]) -> np.ndarray:
        return np.broadcast_to(self.popularity, (len(histories), self.n_items)).copy()

    def similar_items(self, item: int, k: int = 10) -> Recommendations:
        scores = self.popularity.copy()[None, :]
        scores[0, item] = -np.inf
        items, vals = top_k(scores, min(k, self.n_items - 1))
        return Recommendations(items[0], vals[0])

    def _state(self) -> dict[str, np.ndarray]:
        return {"popularity": self.popularity}

    def _load_state(self, arrays: dict[str, np.ndarray]) -> None:
        self.popularity = arrays["popularity"]


class ItemKNNRecommender(Recommender):
    """Item-based kNN: shrunk cosine similarity of item columns, top ``neighbors`` kept per item."""

    name = "item-knn"
    defaults = {"neighbors": 100, "shrink": 10.0}

    def _fit(self, data: Interactions, validation: Validation | None) -> None:
        x = data.to_csr(binary=True)
        co = (x.T @ x).tocsr().astype(np.float32)
        co.setdiag(0)
        co.eliminate_zeros()
        norms = np.sqrt(np.asarray(x.sum(axis=0)).ravel()).astype(np.float32)
        co = co.tocoo()
        data_ = co.data / (norms[co.row] * norms[co.col] + float(self.params["shrink"]))
        sim = sp.csr_matrix((data_, (co.row, co.col)), shape=co.shape)
        self.similarity = _keep_top_per_row(sim, int(self.params["neighbors"]))

    def score(self, histories: Sequence[History]) -> np.ndarray:
        q = histories_to_csr(histories, self.n_items)
        q.data[:] = 1.0
        return np.asarray((q @ self.similarity).toarray(), dtype=np.float32)

    def similar_items(self, item: int, k: int = 10) -> Recommendations:
        row = self.similarity.getrow(item).toarray()
        row[0, item] = -np.inf
        row[row == 0] = -np.inf
        items, vals = top_k(row.astype(np.float32), min(k, self.n_items - 1))
        items[~np.isfinite(vals)] = -1
        return Recommendations(items[0], vals[0])

    def _state(self) -> dict[str, np.ndarray]:
        s = self.similarity
        return {"indptr": s.indptr, "indices": s.indices, "data": s.data}

    def _load_state(self, arrays: dict[str, np.ndarray]) -> None:
        shape = (self.n_items, self.n_items)
        self.similarity = sp.csr_matrix(
            (arrays["data"], arrays["indices"], arrays["indptr"]), shape=shape
        )


class ALSRecommender(Recommender):
    """Implicit-feedback matrix factorisation (``implicit``'s ALS, Hu/Koren/Volinsky).

    New histories are folded in by solving the ALS user step against the item factors, so any
    recent item sequence can be scored without retraining.
    """

    name = "implicit-als"
    defaults = {
        "factors": 64,
        "regularization": 0.05,
        "alpha": 10.0,
        "iterations": 15,
        "seed": 0,
    }

    def _fit(self, data: Interactions, validation: Validation | None) -> None:
        from implicit.cpu.als import AlternatingLeastSquares
        from threadpoolctl import threadpool_limits

        x = data.to_csr(binary=True)
        x.data *= float(self.params["alpha"])
        with threadpool_limits(1, "blas"):
            model = AlternatingLeastSquares(
                factors=int(self.params["factors"]),
                regularization=float(self.params["regularization"]),
                alpha=1.0,
                iterations=int(self.params["iterations"]),
                random_state=int(self.params["seed"]),
                calculate_training_loss=False,
            )
            model.fit(x, show_progress=False)
        self.item_factors = np.asarray(model.item_factors, dtype=np.float32)

    def _user_factors(self, histories: Sequence[History]) -> np.ndarray:
        y = self.item_factors.astype(np.float64)
        f = y.shape[1]
        gram = y.T @ y + float(self.params["regularization"]) * np.eye(f)
        alpha = float(self.params["alpha"])
        users = np.zeros((len(histories), f), dtype=np.float64)
        for r, h in enumerate(histories):
            items = np.unique(np.asarray(h, dtype=np.int64))
            if len(items) == 0:
                continue
            yh = y[items]
            a = gram + alpha * (yh.T @ yh)
            b = (1.0 + alpha) * yh.sum(axis=0)
            users[r] = np.linalg.solve(a, b)
        return users

    def score(self, histories: Sequence[History]) -> np.ndarray:
        return (self._user_factors(histories) @ self.item_factors.T.astype(np.float64)).astype(
            np.float32
        )

    def similar_items(self, item: int, k: int = 10) -> Recommendations:
        y = self.item_factors
        norms = np.linalg.norm(y, axis=1) + 1e-9
        sims = ((y @ y[item]) / (norms * norms[item]))[None, :].astype(np.float32)
        sims[0, item] = -np.inf
        items, vals = top_k(sims, min(k, self.n_items - 1))
        return Recommendations(items[0], vals[0])

    def _state(self) -> dict[str, np.ndarray]:
        return {"item_factors": self.item_factors}

    def _load_state(self, arrays: dict[str, np.ndarray]) -> None:
        self.item_factors = arrays["item_factors"]


def _keep_top_per_row(m: sp.csr_matrix, n: int) -> sp.csr_matrix:
    """Keep the ``n`` largest entries of each row of a CSR matrix."""
    m = m.tocsr()
    m.sort_indices()
    lens = np.diff(m.indptr)
    if lens.max(initial=0) <= n:
        return m
    keep = np.zeros(m.nnz, dtype=bool)
    for r in np.flatnonzero(lens):
        lo, hi = m.indptr[r], m.indptr[r + 1]
        if hi - lo <= n:
            keep[lo:hi] = True
        else:
            keep[lo + np.argpartition(-m.data[lo:hi], n - 1)[:n]] = True
    rows = np.repeat(np.arange(m.shape[0]), lens)
    return sp.csr_matrix((m.data[keep], (rows[keep], m.indices[keep])), shape=m.shape)
