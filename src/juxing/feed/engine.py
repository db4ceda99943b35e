"""The serving side of the personalized feed (千人千面), held in memory by each API process.

``FeedEngine`` keeps the catalog snapshot, the active model version and the active traffic
policy in memory and swaps each of them atomically when a newer one exists (checked every
couple of seconds by a background thread; in tests, on every request). A feed request then
costs two indexed queries (the shopper's recent events and follows), one model scoring of the
shopper's history (training history plus the current session's events, so a click changes
the next request at once, without retraining), and the pure re-ranking of ``ranking.py``.
Impressions are buffered and written in batches by the same background thread.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from juxing.feed import events as event_store
from juxing.feed.catalog import CatalogSnapshot, empty_snapshot, follows_of, load_snapshot
from juxing.feed.ranking import Candidate, Placed, merge, rerank
from juxing.feed.schemas import FeedItemOut, FeedPage, PolicyRules
from juxing.kit.db import Database
from juxing.kit.errors import BadRequest
from juxing.kit.time import utcnow
from juxing.models.feed import FeedImpression, FeedModelVersion, TrafficPolicy
from juxing.recsys.base import Recommender, load_model, mask_seen

log = logging.getLogger("juxing.feed")

MODEL_DIR = "next-item"
CHECK_EVERY_S = 2.0
SNAPSHOT_EVERY_S = 120.0
MAX_FEED = 200
MODEL_CANDIDATES = 120
EXPLAIN_FROM = 3
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
    """A model version in memory, with its items mapped onto the current snapshot."""

    version: str
    model: Recommender
    key_index: dict[str, int]
    to_snap: np.ndarray  # model item index -> snapshot index (-1: not in the catalog)


@dataclass
class ActivePolicy:
    id: int
    name: str
    version: int
    rules: PolicyRules


class ImpressionLog:
    """A buffer of impression rows, written in batches (never on the request's own path)."""

    def __init__(self) -> None:
        self._rows: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    def add(self, rows: list[dict[str, Any]]) -> None:
        with self._lock:
            self._rows.extend(rows)

    def flush(self, db: Database) -> int:
        with self._lock:
            rows, self._rows = self._rows, []
        if not rows:
            return 0
        try:
            with db.session() as session:
                session.execute(insert(FeedImpression.__table__), rows)
        except Exception:
            log.exception("could not write %d impressions; will retry", len(rows))
            with self._lock:
                self._rows = rows + self._rows
            return 0
        return len(rows)


class FeedEngine:
    """In-memory serving state of the feed for one process."""

    def __init__(self, db: Database, data_dir: Path, *, background: bool = True) -> None:
        self.db = db
        self.data_dir = data_dir
        self.background = background
        self.snapshot: CatalogSnapshot = empty_snapshot()
        self.model: LoadedModel | None = None
        self.policy: ActivePolicy | None = None
        self.impressions = ImpressionLog()
        self._snapshot_at = 0.0
        self._checked_at = 0.0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._explore_cache: tuple[int, list[int]] | None = None
        self._pool_cache: tuple[tuple[int, float, int], list[Candidate]] | None = None

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
        """Swap in a newer model, policy or catalog snapshot when one exists."""
        now = time.monotonic()
        if not force and now - self._checked_at < CHECK_EVERY_S:
            return
        self._checked_at = now
        with self.db.session(write=False) as session:
            if force or now - self._snapshot_at >= SNAPSHOT_EVERY_S:
                snap = load_snapshot(session)
                self._snapshot_at = now
                with self._lock:
                    self.snapshot = snap
                    self._explore_cache = None
                    if self.model is not None:
                        self.model = _map_model(self.model.version, self.model.model, snap)
            self._refresh_policy(session)
            self._refresh_model(session)

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
            model = load_model(Path(row.path) / MODEL_DIR)
        except Exception:
            log.exception("cannot load model version %s; keeping the previous one", row.version)
            return
        _contiguous(model)
        loaded = _map_model(row.version, model, self.snapshot)
        with self._lock:
            self.model = loaded
        log.info("feed model version %s is now serving", row.version)

    # --- serving ------------------------------------------------------------------------------
    def feed(
        self,
        session: Session,
        *,
        user_id: int | None,
        limit: int,
        cursor: str | None,
        log_impressions: bool = True,
    ) -> FeedPage:
        """One page of the shopper's feed (cold start when ``user_id`` is None or unknown)."""
        if not self.background:
            self.refresh(force=True)
        offset, seed = _decode_cursor(cursor) if cursor else (0, uuid.uuid4().int & 0xFFFFFFFF)
        snap, loaded, policy = self.snapshot, self.model, self.policy
        n = min(MAX_FEED, offset + limit + 1)  # one more tells whether a next page exists
        placed = self.ranked_feed(
            session, user_id=user_id, n=n, snap=snap, loaded=loaded, policy=policy, seed=seed
        )
        page = placed[offset : offset + limit]
        feed_id = uuid.uuid4().hex
        items = [_card(p, snap) for p in page]
        more = len(placed) > offset + limit and offset + limit < MAX_FEED
        if log_impressions and page:
            shown = utcnow()
            self.impressions.add(
                [
                    {
                        "feed_id": feed_id,
                        "user_id": user_id,
                        "item_type": snap.kind[p.item],
                        "item_id": int(snap.ids[p.item]),
                        "merchant_id": int(snap.merchant[p.item])
                        if snap.merchant[p.item] >= 0
                        else None,
                        "position": offset + pos,
                        "reason": p.reason_code,
                        "policy_id": policy.id if policy else None,
                        "shown_at": shown,
                    }
                    for pos, p in enumerate(page)
                ]
            )
            if not self.background:
                self.impressions.flush(self.db)
        return FeedPage(
            feed_id=feed_id,
            items=items,
            next_cursor=_encode_cursor(offset + limit, seed) if more else None,
            policy=policy.name if policy else None,
            model_version=loaded.version if loaded else None,
        )

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
    ) -> list[Candidate]:
        """Every source's candidates for one shopper, merged and ordered by score."""
        recent = event_store.recent_items(session, user_id=user_id) if user_id else []
        follows = follows_of(session, user_id=user_id) if user_id else []
        cands: list[Candidate] = []
        seen: set[int] = set()
        history: list[tuple[int, str]] = []  # (snapshot index, action), newest first
        for action, ttype, tid, _at in recent:
            i = snap.index.get(f"{ttype}:{tid}")
            if i is not None:
                history.append((i, action))
                if action in {"view", "click", "buy"}:
                    seen.add(i)
        if loaded is not None and recent:
            cands += _model_candidates(loaded, snap, recent)
        for kind, ref in follows:
            pool = snap.by_creator.get(ref, []) if kind == "creator" else snap.by_merchant.get(ref)
            name = snap.name_of(kind, ref)
            for rank, i in enumerate(pool or []):
                cands.append(Candidate(i, 0.9 - 0.02 * rank, "follow", f"you follow {name}"))
        for i in snap.deals[:40]:
            cands.append(
                Candidate(
                    i, 0.55 + 0.3 * float(snap.popularity[i]), "festival_deal", "festival deal"
                )
            )
        for i in snap.trending[:60]:
            cands.append(
                Candidate(i, 0.4 + 0.3 * float(snap.popularity[i]), "trending", "trending now")
            )
        for rank, i in enumerate(snap.fresh[:60]):
            cands.append(Candidate(i, 0.38 - 0.001 * rank, "fresh", "new arrival"))
        cands += self._policy_pool(snap)
        ranked = merge(cands, seen)
        if snap.exposure.any():
            mean = float(snap.exposure.mean()) or 1.0
            for c in ranked:
                over = float(snap.exposure[c.item]) / mean
                if over > 1.0:
                    c.score -= 0.1 * min(1.0, float(np.log10(over)))
            ranked.sort(key=lambda c: (-c.score, c.item))
        return ranked

    def _policy_pool(self, snap: CatalogSnapshot) -> list[Candidate]:
        """Low-scored long-tail and new-creator items, so minimum shares can always be met."""
        policy = self.policy
        rules = policy.rules if policy else PolicyRules()
        key = (id(snap), rules.longtail_percentile, rules.new_creator_days)
        cached = self._pool_cache
        if cached is not None and cached[0] == key:
            return [Candidate(c.item, c.score, c.reason_code, c.reason) for c in cached[1]]
        out: list[Candidate] = []
        tail = np.flatnonzero(snap.longtail_mask(rules.longtail_percentile))
        for i in tail[np.argsort(-snap.popularity[tail], kind="stable")][:60].tolist():
            out.append(
                Candidate(
                    i, 0.1 + 0.1 * float(snap.popularity[i]), "small_shop", "from a small shop"
                )
            )
        new = np.flatnonzero(snap.new_creator_mask(rules.new_creator_days))
        for i in new[np.argsort(-snap.created_ts[new], kind="stable")][:40].tolist():
            name = snap.name_of("creator", int(snap.creator[i]))
            out.append(Candidate(i, 0.1, "new_creator", f"new from {name}"))
        self._pool_cache = (key, out)
        return [Candidate(c.item, c.score, c.reason_code, c.reason) for c in out]

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


def _model_candidates(
    loaded: LoadedModel, snap: CatalogSnapshot, recent: list[Any]
) -> list[Candidate]:
    """Next-item candidates from the model, each explained by the history item behind it."""
    hist: list[int] = []
    actions: dict[int, str] = {}
    for action, ttype, tid, _at in reversed(recent):  # oldest first
        j = loaded.key_index.get(f"{ttype}:{tid}")
        if j is None:
            continue
        if not hist or hist[-1] != j:
            hist.append(j)
        actions[j] = action
    if not hist:
        return []
    explain = list(dict.fromkeys(reversed(hist)))[:EXPLAIN_FROM]
    rows = [np.array(hist)] + [np.array([j]) for j in explain]
    scores = np.asarray(loaded.model.score(rows), dtype=np.float32)
    full = scores[:1].copy()
    mask_seen(full, [rows[0]])
    full[0, loaded.to_snap < 0] = -np.inf
    k = min(MODEL_CANDIDATES, full.shape[1])
    top = np.argpartition(-full[0], k - 1)[:k]
    top = top[np.isfinite(full[0, top])]
    if len(top) == 0:
        return []
    vals = full[0, top]
    lo, hi = float(vals.min()), float(vals.max())
    span = hi - lo if hi > lo else 1.0
    because = np.argmax(scores[1:, top], axis=0)
    out = []
    for j, v, b in zip(top.tolist(), vals.tolist(), because.tolist(), strict=True):
        src = explain[b]
        src_snap = int(loaded.to_snap[src])
        title = snap.titles[src_snap] if src_snap >= 0 else "an item"
        verb = ACTION_VERB.get(actions.get(src, "view"), "viewed")
        out.append(
            Candidate(
                int(loaded.to_snap[j]),
                0.5 + 0.5 * (v - lo) / span,
                "because_you_viewed",
                f"because you {verb} {title}",
            )
        )
    return out


def _contiguous(model: Recommender) -> None:
    """Make the model's dense matrices C-contiguous once, at load time.

    A sparse @ dense product copies a non-contiguous dense operand on every call (tens of
    ms for a 4000 x 4000 matrix): paid once here instead of on every feed request.
    """
    for name, value in list(vars(model).items()):
        if isinstance(value, np.ndarray) and value.ndim == 2 and not value.flags.c_contiguous:
            setattr(model, name, np.ascontiguousarray(value))


def _map_model(version: str, model: Recommender, snap: CatalogSnapshot) -> LoadedModel:
    ids = [str(x) for x in (model.item_ids if model.item_ids is not None else [])]
    key_index = {k: j for j, k in enumerate(ids)}
    to_snap = np.array([snap.index.get(k, -1) for k in ids], dtype=np.int64)
    if len(to_snap) < model.n_items:
        to_snap = np.concatenate([to_snap, np.full(model.n_items - len(to_snap), -1)])
    return LoadedModel(version, model, key_index, to_snap)


def _card(p: Placed, snap: CatalogSnapshot) -> FeedItemOut:
    i = p.item

    def opt(a: np.ndarray) -> int | None:
        return int(a[i]) if a[i] >= 0 else None

    return FeedItemOut(
        key=snap.keys[i],
        type=snap.kind[i],
        id=int(snap.ids[i]),
        title=snap.titles[i],
        merchant_id=opt(snap.merchant),
        creator_id=opt(snap.creator),
        category_id=opt(snap.category),
        price_minor=opt(snap.price_minor),
        currency=snap.currency[i],
        deal_item_id=opt(snap.deal_item),
        deal_price_minor=opt(snap.deal_price_minor),
        reason=p.reason,
        reason_code=p.reason_code,
        boosts=p.boosts,
    )


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
            engine.start()
            state.feed_engine = engine
    return engine
