"""The one small interface every recommender implements, and its versioned artifact format.

An artifact is a directory::

    manifest.json   {"model", "format_version", "params", "trained_at", "n_items", ...}
    arrays.npz      the model's numpy state (and the item ids, when known)
"""

from __future__ import annotations

import json
import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np

from juxing.recsys.data import History, Interactions

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
ARRAYS = "arrays.npz"

_REGISTRY: dict[str, type[Recommender]] = {}


class ArtifactError(Exception):
    """An artifact directory is missing, of another model, or of an unknown format version."""


@dataclass(frozen=True)
class Recommendations:
    """Top-k item indices per history (best first) and their scores; ``-1`` pads short lists."""

    items: np.ndarray
    scores: np.ndarray


Validation = tuple[Sequence[History], np.ndarray]


class Recommender(ABC):
    """fit / recommend / similar_items / save / load over dense item indices.

    ``recommend`` scores from an arbitrary item history (oldest first), so a feed can pass a user's
    training history plus session events that arrived after training, without refitting.
    """

    name: ClassVar[str]
    defaults: ClassVar[dict[str, Any]] = {}

    def __init__(self, **params: Any) -> None:
        unknown = set(params) - set(self.defaults)
        if unknown:
            raise TypeError(f"{self.name}: unknown parameters {sorted(unknown)}")
        self.params: dict[str, Any] = {**self.defaults, **params}
        self.n_items = 0
        self.item_ids: np.ndarray | None = None
        self.trained_at: str | None = None
        self.train_seconds = 0.0
        self.train_cpu_seconds = 0.0

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "name" in cls.__dict__:
            _REGISTRY[cls.name] = cls

    # --- to implement -------------------------------------------------------------------------
    @abstractmethod
    def _fit(self, data: Interactions, validation: Validation | None) -> None:
        """Learn the state from ``data`` (``validation`` may be used to pick hyperparameters)."""

    def _fit_holding_out_last(self, data: Interactions) -> None:
        """Tune on a copy trained without every user's last item, then train on all of ``data``.

        Models may override this with something cheaper (one fit and exact leave-one-out).
        """
        users = np.flatnonzero(data.lengths() >= 2)
        if self.params.get("tune") and len(users):
            train = data.truncate(1)
            validation = (
                [train.history(int(u)) for u in users],
                np.array([data.history(int(u))[-1] for u in users], dtype=np.int64),
            )
            tuned = type(self)(**self.params).fit(train, validation)
            self.params = {**tuned.params}
        self._fit(data, None)

    @abstractmethod
    def score(self, histories: Sequence[History]) -> np.ndarray:
        """Scores of every item for every history: float32 array (len(histories), n_items)."""

    @abstractmethod
    def _state(self) -> dict[str, np.ndarray]:
        """The arrays to save."""

    @abstractmethod
    def _load_state(self, arrays: dict[str, np.ndarray]) -> None:
        """Restore from the saved arrays."""

    # --- the interface ------------------------------------------------------------------------
    def fit(
        self,
        data: Interactions,
        validation: Validation | None = None,
        *,
        hold_out_last: bool = False,
    ) -> Self:
        """Train on ``data``; returns self. Records wall (``train_seconds``) and CPU time.

        ``hold_out_last``: choose the hyperparameters on every user's last item, held out (the
        user's earlier items are the history), then train on all of ``data``; ``validation`` is
        then ignored. Models without hyperparameter tuning just train on ``data``.
        """
        start, cpu_start = time.perf_counter(), time.process_time()
        self.n_items = data.n_items
        self.item_ids = data.item_ids
        if hold_out_last:
            self._fit_holding_out_last(data)
        else:
            self._fit(data, validation)
        self.train_seconds = time.perf_counter() - start
        self.train_cpu_seconds = time.process_time() - cpu_start
        self.trained_at = datetime.now(UTC).isoformat(timespec="seconds")
        return self

    def recommend(
        self,
        histories: Sequence[History],
        k: int = 10,
        *,
        exclude_seen: bool = True,
        batch_size: int = 512,
    ) -> Recommendations:
        """The ``k`` best next items for each history, never one of its items if exclude_seen."""
        self._check_fitted()
        n = len(histories)
        k = min(k, self.n_items)
        out_items = np.full((n, k), -1, dtype=np.int64)
        out_scores = np.full((n, k), -np.inf, dtype=np.float32)
        for start in range(0, n, batch_size):
            batch = histories[start : start + batch_size]
            scores = np.asarray(self.score(batch), dtype=np.float32)
            if exclude_seen:
                mask_seen(scores, batch)
            items, top = top_k(scores, k)
            out_items[start : start + len(batch)] = items
            out_scores[start : start + len(batch)] = top
        out_items[~np.isfinite(out_scores)] = -1
        return Recommendations(out_items, out_scores)

    def similar_items(self, item: int, k: int = 10) -> Recommendations:
        """The ``k`` items most related to ``item`` (default: next items after a 1-item history)."""
        self._check_fitted()
        scores = np.asarray(self.score([np.array([item])]), dtype=np.float32)
        scores[0, item] = -np.inf
        items, top = top_k(scores, min(k, self.n_items - 1))
        items[~np.isfinite(top)] = -1
        return Recommendations(items[0], top[0])

    def save(self, path: str | Path) -> Path:
        """Write the artifact directory (manifest.json + arrays.npz); returns its path."""
        self._check_fitted()
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        arrays = dict(self._state())
        if self.item_ids is not None:
            arrays["__item_ids"] = np.asarray(self.item_ids).astype(str)
        np.savez(path / ARRAYS, **arrays)  # type: ignore[arg-type]  # uncompressed: dense float32 barely compresses
        manifest = {
            "model": self.name,
            "format_version": FORMAT_VERSION,
            "params": self.params,
            "trained_at": self.trained_at,
            "train_seconds": round(self.train_seconds, 3),
            "n_items": self.n_items,
        }
        (path / MANIFEST).write_text(json.dumps(manifest, indent=2, default=_jsonable) + "\n")
        return path

    @classmethod
    def load(cls, path: str | Path) -> Recommender:
        """Load an artifact; on a subclass it also checks the artifact is of that model."""
        model = load_model(path)
        if cls is not Recommender and not isinstance(model, cls):
            raise ArtifactError(f"{path} holds a {model.name!r} model, not {cls.name!r}")
        return model

    def _check_fitted(self) -> None:
        if self.n_items == 0:
            raise RuntimeError(f"{self.name}: call fit() or load() first")


def load_model(path: str | Path) -> Recommender:
    """Load any registered recommender from its artifact directory."""
    path = Path(path)
    try:
        manifest = json.loads((path / MANIFEST).read_text())
    except (OSError, ValueError) as exc:
        raise ArtifactError(f"cannot read {path / MANIFEST}: {exc}") from exc
    if manifest.get("format_version") != FORMAT_VERSION:
        raise ArtifactError(f"unsupported artifact format {manifest.get('format_version')!r}")
    cls = _REGISTRY.get(manifest.get("model", ""))
    if cls is None:
        raise ArtifactError(f"unknown model {manifest.get('model')!r}")
    model = cls(**manifest["params"])
    with np.load(path / ARRAYS, allow_pickle=False) as npz:
        # C-contiguous: a sparse @ dense product would copy a Fortran-ordered operand per call
        arrays = {key: np.ascontiguousarray(npz[key]) for key in npz.files}
    model.item_ids = arrays.pop("__item_ids", None)
    model.n_items = int(manifest["n_items"])
    model.trained_at = manifest.get("trained_at")
    model.train_seconds = float(manifest.get("train_seconds", 0.0))
    model._load_state(arrays)
    return model


def registered_models() -> dict[str, type[Recommender]]:
    return dict(_REGISTRY)


def mask_seen(scores: np.ndarray, histories: Sequence[History]) -> None:
    """Set the scores of each row's history items to -inf, in place."""
    lens = [len(h) for h in histories]
    if sum(lens):
        rows = np.repeat(np.arange(len(histories)), lens)
        cols = np.concatenate([np.asarray(h, dtype=np.int64) for h in histories if len(h)])
        scores[rows, cols] = -np.inf


def top_k(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Column indices and values of each row's k largest scores, best first (ties: lower index)."""
    if k <= 0:
        return np.zeros((len(scores), 0), dtype=np.int64), np.zeros((len(scores), 0), scores.dtype)
    if k < scores.shape[1]:
        part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    else:
        part = np.broadcast_to(np.arange(scores.shape[1]), scores.shape).copy()
    vals = np.take_along_axis(scores, part, axis=1)
    order = np.lexsort((part, -vals), axis=1)
    items = np.take_along_axis(part, order, axis=1).astype(np.int64)
    return items, np.take_along_axis(vals, order, axis=1)


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"not JSON serializable: {type(value)}")
