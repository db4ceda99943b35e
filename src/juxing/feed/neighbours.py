"""Per-item neighbour lists: the model's next-item scores, precomputed offline for serving.

Scoring a shopper's history with the full model costs a sparse x dense product and several
dense rows of every item's score: tens of milliseconds. Serving instead reads, for each
recent item of the history, its ``K`` best next items (computed once per model version by
``juxing train``, from the model's own ``recommend`` on a one-item history) and merges them
weighted by recency. The lists live next to the model artifact as ``neighbours.npz``:

    items   int32   (n_items, K)  model item indices, best first, -1 pads
    scores  float32 (n_items, K)  each row divided by its best score (1.0 = the best next item)
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from juxing.recsys.base import Recommender

log = logging.getLogger("juxing.feed")

NEIGHBOURS_FILE = "neighbours.npz"
K_NEIGHBOURS = 50
BATCH = 256


def build_neighbours(
    model: Recommender,
    *,
    k: int = K_NEIGHBOURS,
    on_progress: Callable[[int, int], None] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` best next items of every item (one-item histories), row-normalised scores."""
    n = model.n_items
    k = max(1, min(k, n - 1))
    items = np.full((n, k), -1, dtype=np.int32)
    scores = np.zeros((n, k), dtype=np.float32)
    for start in range(0, n, BATCH):
        stop = min(n, start + BATCH)
        recs = model.recommend(
            [np.array([j]) for j in range(start, stop)], k, exclude_seen=True, batch_size=BATCH
        )
        top = np.where(recs.items >= 0, recs.scores, 0.0).astype(np.float32)
        best = np.maximum(top[:, :1], np.float32(1e-12))
        items[start:stop] = recs.items
        scores[start:stop] = np.clip(top / best, 0.0, 1.0)
        if on_progress is not None:
            on_progress(stop, n)
    return items, scores


def save_neighbours(folder: Path, items: np.ndarray, scores: np.ndarray) -> Path:
    """Write ``folder/neighbours.npz`` atomically (a temporary file renamed into place)."""
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / (NEIGHBOURS_FILE + ".tmp.npz")
    np.savez(tmp, items=items, scores=scores)
    os.replace(tmp, folder / NEIGHBOURS_FILE)
    return folder / NEIGHBOURS_FILE


def load_neighbours(folder: Path) -> tuple[np.ndarray, np.ndarray] | None:
    """The saved lists, or None when this model version has none (trained before they existed)."""
    path = folder / NEIGHBOURS_FILE
    if not path.is_file():
        return None
    with np.load(path, allow_pickle=False) as npz:
        return np.ascontiguousarray(npz["items"]), np.ascontiguousarray(npz["scores"])
