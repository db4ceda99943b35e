"""The serving side of the personalized feed (千人千面), held in memory by each API process.

``FeedEngine`` keeps the catalog snapshot, the active model version and the active traffic
policy in memory and swaps each of them atomically when a newer one exists (checked every
couple of seconds by a background thread; in tests, on every request). Everything heavy is
precomputed offline: the snapshot by the worker (``feed.snapshot``) and ``juxing train``, the
model's per-item neighbour lists by ``juxing train`` (``neighbours.py``). A feed request then
costs two indexed queries (the shopper's recent events and follows), a vectorised merge of the
neighbour lists of the shopper's latest items (the current session included, so a click
changes the next request at once, without retraining), the greedy policy re-ranking of
``ranking.py`` over plain lists, one batched live-deal lookup when the page holds festival
deals, and a response built from the snapshot's arrays. Impressions are buffered and
written in batches by the same background thread.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import pickle
import random
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from juxing.feed import events as event_store
from juxing.feed.catalog import (
    CatalogSnapshot,
    empty_snapshot,
    follows_of,
    load_snapshot,
    read_snapshot,
    snapshot_path,
    write_snapshot,
)
from juxing.feed.neighbours import build_neighbours, load_neighbours, save_neighbours
from juxing.feed.ranking import Placed, Ranked, merge, rerank
from juxing.feed.schemas import DealStateOut, FeedItemOut, FeedPage, PolicyRules
from juxing.kit.db import Database
from juxing.kit.errors import BadRequest
from juxing.kit.time import utcnow
from juxing.models.feed import FeedImpression, FeedModelVersion, TrafficPolicy
from juxing.recsys.base import Recommender, load_model

log = logging.getLogger("juxing.feed")

MODEL_DIR = "next-item"
CHECK_EVERY_S = 2.0
MAX_FEED = 200
MODEL_CANDIDATES = 120
HISTORY_ITEMS = 10  # distinct recent items whose neighbour lists are merged
RECENCY_DECAY = 0.7  # weight of the k-th most recent item: RECENCY_DECAY ** k
ACTION_WEIGHT = {"buy": 1.5, "cart": 1.3, "fav": 1.2, "share": 1.1}
SEEN_ACTIONS = frozenset({"view", "click", "buy"})
DEFAULT_RULES = PolicyRules()  # pools are prepared for the default policy when none is active
DEAL_STATE_TTL_S = 1.0  # a feed card's deal state (stock left, status) is at most 1 s old
ACTION_VERB = {
    "view": "viewed",
    "click": "viewed",
    "cart": "added to cart",
    "fav": "saved",
    "buy": "bought",
    "share": "shared",
}


@dataclass
class LoadedModel:
    """A model version's neighbour lists, re-indexed onto the current snapshot's items."""

    version: str
    path: Path
    keys: list[str]  # model item index -> item key ("product:12")
    items: np.ndarray  # (n_model_items, K) neighbour model indices, -1 pads
    scores: np.ndarray  # (n_model_items, K) row-normalised scores
    nbr: np.ndarray  # (n_snapshot_items, K) neighbour snapshot indices, -1: none
    nbr_score: np.ndarray  # (n_snapshot_items, K)

    @property
    def model(self) -> LoadedModel:  # kept for callers that only test "a model is loaded"
        return self


@dataclass
class ActivePolicy:
    id: int
    name: str
    version: int
    rules: PolicyRules


@dataclass
class GlobalCandidates:
    """The shopper-independent candidates of one snapshot (deals, trending, fresh, pools)."""

    items: np.ndarray
    scores: np.ndarray
    reasons: np.ndarray  # index into codes / texts
    codes: list[str]
    texts: list[str]
    damp: np.ndarray  # per snapshot item: score penalty for over-exposure


IMPRESSION_COLUMNS = (
    "feed_id",
    "user_id",
    "item_type",
    "item_id",
    "merchant_id",
    "position",
    "reason",
    "policy_id",
    "shown_at",
)


class ImpressionLog:
    """A buffer of impression rows, written in batches (never on the request's own path).

    Rows are tuples in ``IMPRESSION_COLUMNS`` order, written with one driver-level
    ``executemany`` per flush: at a few thousand rows a second, SQLAlchemy's per-row
    parameter processing would cost more than the feed requests themselves.
    """

    def __init__(self) -> None:
        self._rows: list[tuple[Any, ...]] = []
        self._lock = threading.Lock()

    def add(self, rows: list[tuple[Any, ...]]) -> None:
        with self._lock:
            self._rows.extend(rows)

    def flush(self, db: Database) -> int:
        with self._lock:
            rows, self._rows = self._rows, []
        if not rows:
            return 0
        try:
            _write_impressions(db, rows)
        except Exception:
            log.exception("could not write %d impressions; will retry", len(rows))
            with self._lock:
                self._rows = rows + self._rows
            return 0
        return len(rows)


def _write_impressions(db: Database, rows: list[tuple[Any, ...]]) -> None:
    dialect = db.engine.dialect
    if dialect.name == "sqlite":
        # UTCDateTime stores naive UTC text on SQLite, in SQLAlchemy's own format.
        stamps: dict[int, str] = {}

        def stamp(at: datetime) -> str:
            text = stamps.get(id(at))
            if text is None:
                text = stamps[id(at)] = at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
            return text

        rows = [(*r[:-1], stamp(r[-1])) for r in rows]
    mark = "?" if dialect.paramstyle == "qmark" else "%s"
    columns, marks = ", ".join(IMPRESSION_COLUMNS), ", ".join([mark] * len(IMPRESSION_COLUMNS))
    # Only constant identifiers are interpolated; the values are bound parameters.
    sql = f"INSERT INTO {FeedImpression.__tablename__} ({columns}) VALUES ({marks})"  # noqa: S608
    with db.session() as session:
        session.connection().exec_driver_sql(sql, rows)


class FeedEngine:
    """In-memory serving state of the feed for one process."""

    def __init__(self, db: Database, data_dir: Path, *, background: bool = True) -> None:
        self.db = db
        self.data_dir = data_dir
        self.background = background
        self.snapshot: CatalogSnapshot = empty_snapshot()
        self.model: LoadedModel | None = None
        self.policy: ActivePolicy | None = None
        self.redis: Any = None
        self.impressions = ImpressionLog()
        self._snapshot_mtime: float | None = None
        self._checked_at = 0.0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._explore_cache: tuple[int, list[int]] | None = None
        self._global_cache: tuple[tuple[int, float, int], GlobalCandidates] | None = None
        # deal item id -> (expires at, (deal price, live state) or None)
        self._deal_states: dict[int, tuple[float, tuple[int, dict[str, Any]] | None]] = {}

    # --- lifecycle ----------------------------------------------------------------------------
    def start(self) -> None:
        """Load everything once, then keep it fresh in a daemon thread (if ``background``)."""
        self.refresh(force=True)
        if self.background and self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="juxing-feed", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self.impressions.flush(self.db)

    def _loop(self) -> None:
        while not self._stop.wait(1.0):
            try:
                self.impressions.flush(self.db)
                self.refresh()
            except Exception:
                log.exception("feed refresh failed; serving the previous state")

    def refresh(self, *, force: bool = False) -> None:
        """Swap in a newer model, policy or catalog snapshot when one exists.

        A background engine (the API) loads the snapshot file the worker publishes and only
        builds one itself when none exists yet; a foreground engine (tests, scripts) reads
        the database directly on every call.
        """
        now = time.monotonic()
        if not force and now - self._checked_at < CHECK_EVERY_S:
            return
        self._checked_at = now
        snap = self._newer_snapshot()
        if snap is not None:
            with self._lock:
                self.snapshot = snap
                self._explore_cache = None
                self._global_cache = None
                if self.model is not None:
                    self.model = _map_model(self.model, snap)
        with self.db.session(write=False) as session:
            self._refresh_policy(session)
            self._refresh_model(session)

    def _newer_snapshot(self) -> CatalogSnapshot | None:
        if not self.background:
            with self.db.session(write=False) as session:
                return load_snapshot(session)
        path = snapshot_path(self.data_dir)
        try:
            mtime = path.stat().st_mtime
        except FileNotFoundError:
            if self._snapshot_mtime is not None or self.snapshot.n_items:
                return None
            # First start of a fresh install: publish one now; the worker keeps it fresh.
            with self.db.session(write=False) as session:
                write_snapshot(session, self.data_dir)
            mtime = path.stat().st_mtime
        if mtime == self._snapshot_mtime:
            return None
        try:
            snap = read_snapshot(path)
        except (OSError, ValueError, EOFError, AttributeError, pickle.UnpicklingError):
            log.warning("feed snapshot %s is unreadable or outdated; rebuilding it", path)
            with self.db.session(write=False) as session:
                write_snapshot(session, self.data_dir)
            mtime = path.stat().st_mtime
            snap = read_snapshot(path)
        self._snapshot_mtime = mtime
        return snap

    def _refresh_policy(self, session: Session) -> None:
        row = session.execute(
            select(TrafficPolicy.id, TrafficPolicy.name, TrafficPolicy.version, TrafficPolicy.rules)
            .where(TrafficPolicy.is_active.is_(True))
            .order_by(TrafficPolicy.updated_at.desc())
            .limit(1)
        ).first()
        if row is None:
            self.policy = None
        elif self.policy is None or (self.policy.id, self.policy.version) != (row.id, row.version):
            self.policy = ActivePolicy(
                row.id, row.name, row.version, PolicyRules.model_validate(row.rules)
            )

    def _refresh_model(self, session: Session) -> None:
        row = session.execute(
            select(FeedModelVersion.version, FeedModelVersion.path)
            .where(FeedModelVersion.is_active.is_(True))
            .order_by(FeedModelVersion.id.desc())
            .limit(1)
        ).first()
        if row is None:
            self.model = None
            return
        if self.model is not None and self.model.version == row.version:
            return
        try:
            loaded = load_serving_model(row.version, Path(row.path), self.snapshot)
        except Exception:
            log.exception("cannot load model version %s; keeping the previous one", row.version)
            return
        with self._lock:
            self.model = loaded
        log.info("feed model version %s is now serving", row.version)

    # --- serving ------------------------------------------------------------------------------
    def feed_payload(
        self,
        session: Session,
        *,
        user_id: int | None,
        limit: int,
        cursor: str | None,
        log_impressions: bool = True,
    ) -> dict[str, Any]:
        """One page of the shopper's feed as plain JSON-ready data (the ``FeedPage`` shape);
        cold start when ``user_id`` is None or unknown."""
        if not self.background:
            self.refresh(force=True)
        offset, seed = _decode_cursor(cursor) if cursor else (0, random.getrandbits(32))
        snap, loaded, policy = self.snapshot, self.model, self.policy
        n = min(MAX_FEED, offset + limit + 1)  # one more tells whether a next page exists
        placed = self.ranked_feed(
            session, user_id=user_id, n=n, snap=snap, loaded=loaded, policy=policy, seed=seed
        )
        page = placed[offset : offset + limit]
        feed_id = f"{random.getrandbits(128):032x}"  # an id, not a secret
        items = [_card(p, snap) for p in page]
        self._attach_deal_states(session, items)
        more = len(placed) > offset + limit and offset + limit < MAX_FEED
        if log_impressions and page:
            shown = utcnow()
            policy_id = policy.id if policy else None
            self.impressions.add(
                [
                    (
                        feed_id,
                        user_id,
                        card["type"],
                        card["id"],
                        card["merchant_id"],
                        offset + pos,
                        card["reason_code"],
                        policy_id,
                        shown,
                    )
                    for pos, card in enumerate(items)
                ]
            )
            if not self.background:
                self.impressions.flush(self.db)
        return {
            "feed_id": feed_id,
            "items": items,
            "next_cursor": _encode_cursor(offset + limit, seed) if more else None,
            "policy": policy.name if policy else None,
            "model_version": loaded.version if loaded else None,
        }

    def feed(
        self,
        session: Session,
        *,
        user_id: int | None,
        limit: int,
        cursor: str | None,
        log_impressions: bool = True,
    ) -> FeedPage:
        """``feed_payload`` as a ``FeedPage`` (built without re-validation) for Python callers."""
        data = self.feed_payload(
            session, user_id=user_id, limit=limit, cursor=cursor, log_impressions=log_impressions
        )
        items = [
            FeedItemOut.model_construct(
                **{
                    **i,
                    "deal": DealStateOut.model_construct(**i["deal"]) if i["deal"] else None,
                }
            )
            for i in data["items"]
        ]
        return FeedPage.model_construct(**{**data, "items": items})

    def _attach_deal_states(self, session: Session, items: list[dict[str, Any]]) -> None:
        """Live state of the page's festival-deal items: at most one batched ``card_states``
        call, for the items whose state was not read in the last ``DEAL_STATE_TTL_S``."""
        deal_ids = [i["deal_item_id"] for i in items if i["deal_item_id"] is not None]
        if not deal_ids:
            return
        now = time.monotonic()
        cache = self._deal_states
        missing = [d for d in deal_ids if d not in cache or cache[d][0] <= now]
        if missing:
            from juxing.deals.service import card_states

            got = card_states(session=session, deal_item_ids=missing, redis_client=self.redis)
            if len(cache) > 50_000:
                cache.clear()
            for d in missing:
                card = got["deal_items"].get(d)
                state = None
                if card is not None:
                    state = (
                        card["deal_price_minor"],
                        {
                            "status": card["status"],
                            "stock_left": card["stock_left"],
                            "starts_at": card["starts_at"].isoformat(),
                            "ends_at": card["ends_at"].isoformat(),
                        },
                    )
                cache[d] = (now + (DEAL_STATE_TTL_S if self.background else 0.0), state)
        for item in items:
            d = item["deal_item_id"]
            state = cache[d][1] if d is not None and d in cache else None
            if not self.background:
                cache.pop(d, None)
            if state is not None:
                item["deal_price_minor"] = state[0]
                item["deal"] = dict(state[1])

    def ranked_feed(
        self,
        session: Session,
        *,
        user_id: int | None,
        n: int,
        snap: CatalogSnapshot | None = None,
        loaded: LoadedModel | None = None,
        policy: ActivePolicy | None = None,
        rules: PolicyRules | None = None,
        use_policy: bool = True,
        seed: int = 0,
    ) -> list[Placed]:
        """The first ``n`` placed items for a shopper under the given (or active) policy."""
        snap = snap or self.snapshot
        if snap.n_items == 0:
            return []
        if rules is None and use_policy:
            policy = policy or self.policy
            rules = policy.rules if policy else None
        ranked = self.candidates(session, user_id=user_id, snap=snap, loaded=loaded or self.model)
        pool = self._explore_pool(snap) if rules and rules.exploration_slots else []
        return rerank(ranked, snap, rules, n=n, explore_pool=pool, seed=seed)

    def candidates(
        self,
        session: Session,
        *,
        user_id: int | None,
        snap: CatalogSnapshot,
        loaded: LoadedModel | None,
    ) -> Ranked:
        """Every source's candidates for one shopper, merged and ordered by score."""
        recent = event_store.recent_targets(session, user_id=user_id) if user_id else []
        follows = follows_of(session, user_id=user_id) if user_id else []
        glob = self._global_candidates(snap)
        codes, texts = list(glob.codes), list(glob.texts)
        parts_i: list[np.ndarray] = [glob.items]
        parts_s: list[np.ndarray] = [glob.scores]
        parts_r: list[np.ndarray] = [glob.reasons]
        history: list[tuple[int, str]] = []  # (snapshot index, action), newest first
        seen: list[int] = []
        index = snap.index
        for action, ttype, tid in recent:
            i = index.get(f"{ttype}:{tid}")
            if i is not None:
                history.append((i, action))
                if action in SEEN_ACTIONS:
                    seen.append(i)
        if loaded is not None and history:
            got = _model_candidates(loaded, snap, history, seen, base=len(codes))
            if got is not None:
                m_items, m_scores, m_reasons, m_texts = got
                parts_i.append(m_items)
                parts_s.append(m_scores - glob.damp[m_items])
                parts_r.append(m_reasons)
                codes += ["because_you_viewed"] * len(m_texts)
                texts += m_texts
        for kind, ref in follows:
            pool = snap.by_creator.get(ref) if kind == "creator" else snap.by_merchant.get(ref)
            if not pool:
                continue
            f_items = np.asarray(pool, dtype=np.int64)
            parts_i.append(f_items)
            parts_s.append(0.9 - 0.02 * np.arange(len(pool)) - glob.damp[f_items])
            parts_r.append(np.full(len(pool), len(codes), dtype=np.int64))
            codes.append("follow")
            texts.append(f"you follow {snap.name_of(kind, ref)}")
        items, reasons = merge(
            np.concatenate(parts_i),
            np.concatenate(parts_s),
            np.concatenate(parts_r),
            np.asarray(seen, dtype=np.int64),
        )
        r = reasons.tolist()
        return Ranked(items.tolist(), [codes[x] for x in r], [texts[x] for x in r])

    def _global_candidates(self, snap: CatalogSnapshot) -> GlobalCandidates:
        """Deals, trending, fresh, long-tail and new-creator pools of a snapshot (cached)."""
        policy = self.policy
        rules = policy.rules if policy else DEFAULT_RULES
        key = (id(snap), rules.longtail_percentile, rules.new_creator_days)
        cached = self._global_cache
        if cached is not None and cached[0] == key:
            return cached[1]
        glob = _build_global(snap, rules)
        self._global_cache = (key, glob)
        return glob

    def _explore_pool(self, snap: CatalogSnapshot) -> list[int]:
        """Items rarely shown so far (and fresh ones): candidates for exploration slots."""
        cache = self._explore_cache
        if cache is not None and cache[0] == id(snap):
            return cache[1]
        rng = np.random.default_rng(len(snap.keys))
        quiet = np.flatnonzero(snap.exposure <= np.percentile(snap.exposure, 50))
        pick = rng.choice(quiet, size=min(200, len(quiet)), replace=False).tolist()
        pool = list(dict.fromkeys(snap.fresh[:50] + pick))
        self._explore_cache = (id(snap), pool)
        return pool


def _build_global(snap: CatalogSnapshot, rules: PolicyRules) -> GlobalCandidates:
    codes = ["festival_deal", "trending", "fresh", "small_shop"]
    texts = ["festival deal", "trending now", "new arrival", "from a small shop"]
    pop = snap.popularity.astype(np.float64)
    items: list[np.ndarray] = []
    scores: list[np.ndarray] = []
    reasons: list[np.ndarray] = []

    def add(block: list[int] | np.ndarray, score: np.ndarray, reason: np.ndarray | int) -> None:
        arr = np.asarray(block, dtype=np.int64)
        items.append(arr)
        scores.append(np.asarray(score, dtype=np.float64))
        reasons.append(np.broadcast_to(np.asarray(reason, dtype=np.int64), arr.shape).copy())

    deals = np.asarray(snap.deals[:40], dtype=np.int64)
    add(deals, 0.55 + 0.3 * pop[deals], 0)
    trending = np.asarray(snap.trending[:60], dtype=np.int64)
    add(trending, 0.4 + 0.3 * pop[trending], 1)
    fresh = np.asarray(snap.fresh[:60], dtype=np.int64)
    add(fresh, 0.38 - 0.001 * np.arange(len(fresh)), 2)
    tail = np.flatnonzero(snap.longtail_mask(rules.longtail_percentile))
    tail = tail[np.argsort(-pop[tail], kind="stable")][:60]
    add(tail, 0.1 + 0.1 * pop[tail], 3)
    new = np.flatnonzero(snap.new_creator_mask(rules.new_creator_days))
    new = new[np.argsort(-snap.created_ts[new], kind="stable")][:40]
    new_reasons = []
    for i in new.tolist():
        new_reasons.append(len(codes))
        codes.append("new_creator")
        texts.append(f"new from {snap.name_of('creator', snap.creator_l[i])}")
    add(new, np.full(len(new), 0.1), np.asarray(new_reasons, dtype=np.int64))
    damp = np.zeros(snap.n_items, dtype=np.float64)
    if snap.n_items and snap.exposure.any():
        mean = float(snap.exposure.mean()) or 1.0
        over = snap.exposure / mean
        hot = over > 1.0
        damp[hot] = 0.1 * np.minimum(1.0, np.log10(over[hot]))
    all_items = np.concatenate(items) if items else np.zeros(0, dtype=np.int64)
    return GlobalCandidates(
        all_items,
        (np.concatenate(scores) - damp[all_items]) if items else np.zeros(0),
        np.concatenate(reasons) if items else np.zeros(0, dtype=np.int64),
        codes,
        texts,
        damp,
    )


def _model_candidates(
    loaded: LoadedModel,
    snap: CatalogSnapshot,
    history: list[tuple[int, str]],
    seen: list[int],
    *,
    base: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]] | None:
    """Next-item candidates: the recent items' neighbour lists merged, weighted by recency.

    Items already ``seen`` are dropped before scores are scaled, so the best unseen item
    gets the top score. Each candidate is explained by the history item that contributed
    most to its score; reasons are ``base + k`` for the k-th returned text.
    """
    recent: list[int] = []
    actions: dict[int, str] = {}
    for i, action in history:  # newest first; the latest action on an item names it
        if i not in actions:
            actions[i] = action
            recent.append(i)
            if len(recent) == HISTORY_ITEMS:
                break
    h = np.asarray(recent, dtype=np.int64)
    weight = RECENCY_DECAY ** np.arange(len(h)) * np.array(
        [ACTION_WEIGHT.get(actions[i], 1.0) for i in recent]
    )
    nbr = loaded.nbr[h]
    contrib = (loaded.nbr_score[h] * weight[:, None]).ravel()
    src = np.repeat(np.arange(len(h)), nbr.shape[1])
    flat = nbr.ravel().astype(np.int64)
    ok = flat >= 0
    if seen:
        seen_mask = np.zeros(snap.n_items, dtype=bool)
        seen_mask[seen] = True
        ok &= ~seen_mask[np.maximum(flat, 0)]
    flat, contrib, src = flat[ok], contrib[ok], src[ok]
    if len(flat) == 0:
        return None
    uniq, inv = np.unique(flat, return_inverse=True)
    total = np.bincount(inv, weights=contrib)
    order = np.lexsort((-contrib, inv))
    first = np.flatnonzero(np.r_[True, inv[order][1:] != inv[order][:-1]])
    because = src[order][first]  # the history item contributing most, per unique item
    k = min(MODEL_CANDIDATES, len(uniq))
    top = np.argpartition(-total, k - 1)[:k]
    vals = total[top]
    lo, hi = float(vals.min()), float(vals.max())
    span = hi - lo if hi > lo else 1.0
    texts = []
    for i in recent:
        verb = ACTION_VERB.get(actions[i], "viewed")
        texts.append(f"because you {verb} {snap.titles[i]}")
    return uniq[top], 0.5 + 0.5 * (vals - lo) / span, base + because[top], texts


def load_serving_model(version: str, path: Path, snap: CatalogSnapshot) -> LoadedModel:
    """A model version's item ids and neighbour lists (built now if the version predates them)."""
    folder = path / MODEL_DIR
    got = load_neighbours(folder)
    if got is None:
        log.warning("model version %s has no neighbour lists; building them once", version)
        model = load_model(folder)
        _contiguous(model)
        items, scores = build_neighbours(model)
        save_neighbours(folder, items, scores)
        keys = [str(x) for x in (model.item_ids if model.item_ids is not None else [])]
    else:
        items, scores = got
        with np.load(folder / "arrays.npz", allow_pickle=False) as npz:
            ids = npz["__item_ids"] if "__item_ids" in npz.files else np.zeros(0, dtype=str)
        keys = [str(x) for x in ids]
    empty = np.zeros((0, items.shape[1]), dtype=np.int32)
    raw = LoadedModel(version, path, keys, items, scores, empty, empty.astype(np.float32))
    return _map_model(raw, snap)


def _contiguous(model: Recommender) -> None:
    """Make the model's dense matrices C-contiguous once, at load time.

    A sparse @ dense product copies a non-contiguous dense operand on every call (tens of
    ms for a 4000 x 4000 matrix): paid once here instead of on every scoring call.
    """
    for name, value in list(vars(model).items()):
        if isinstance(value, np.ndarray) and value.ndim == 2 and not value.flags.c_contiguous:
            setattr(model, name, np.ascontiguousarray(value))


def _map_model(loaded: LoadedModel, snap: CatalogSnapshot) -> LoadedModel:
    """Re-index the neighbour lists onto ``snap`` (vectorised; run when either changes)."""
    k = loaded.items.shape[1]
    to_snap = np.array([snap.index.get(key, -1) for key in loaded.keys], dtype=np.int64)
    n_model = loaded.items.shape[0]
    if len(to_snap) < n_model:
        to_snap = np.concatenate([to_snap, np.full(n_model - len(to_snap), -1, dtype=np.int64)])
    to_snap = to_snap[:n_model]
    nbr = np.full((snap.n_items, k), -1, dtype=np.int32)
    nbr_score = np.zeros((snap.n_items, k), dtype=np.float32)
    rows = np.flatnonzero(to_snap >= 0)
    if len(rows):
        src = loaded.items[rows].astype(np.int64)
        mapped = np.where(src >= 0, to_snap[np.maximum(src, 0)], -1)
        nbr[to_snap[rows]] = mapped
        nbr_score[to_snap[rows]] = np.where(mapped >= 0, loaded.scores[rows], 0.0)
    return LoadedModel(
        loaded.version, loaded.path, loaded.keys, loaded.items, loaded.scores, nbr, nbr_score
    )


def _card(p: Placed, snap: CatalogSnapshot) -> dict[str, Any]:
    i = p.item
    m, c, k = snap.merchant_l[i], snap.creator_l[i], snap.category_l[i]
    return {
        "key": snap.keys[i],
        "type": snap.kind[i],
        "id": snap.ids_l[i],
        "title": snap.titles[i],
        "merchant_id": m if m >= 0 else None,
        "creator_id": c if c >= 0 else None,
        "category_id": k if k >= 0 else None,
        "price_minor": snap.price_l[i],
        "currency": snap.currency[i],
        "deal_item_id": snap.deal_item_l[i],
        "deal_price_minor": snap.deal_price_l[i],
        "deal": None,
        "reason": p.reason,
        "reason_code": p.reason_code,
        "boosts": p.boosts,
    }


def _encode_cursor(offset: int, seed: int) -> str:
    raw = json.dumps({"o": offset, "s": seed}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[int, int]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        data = json.loads(raw)
        offset, seed = int(data["o"]), int(data["s"])
    except (binascii.Error, ValueError, KeyError, TypeError) as exc:
        raise BadRequest("The cursor is not valid.", code="invalid_cursor") from exc
    if not 0 <= offset < MAX_FEED:
        raise BadRequest("The cursor is past the end of the feed.", code="invalid_cursor")
    return offset, seed


_engines_lock = threading.Lock()


def engine_for(state: Any) -> FeedEngine:
    """The app's engine, created and started on first use."""
    engine: FeedEngine | None = getattr(state, "feed_engine", None)
    if engine is not None:
        return engine
    with _engines_lock:
        engine = getattr(state, "feed_engine", None)
        if engine is None:
            settings = state.settings
            engine = FeedEngine(
                state.db, Path(settings.data_dir), background=settings.env != "test"
            )
            engine.redis = getattr(state, "redis", None)
            engine.start()
            state.feed_engine = engine
    return engine
