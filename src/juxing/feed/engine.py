"""The serving side of the personalized feed (千人千面), held in memory by each API process.

``FeedEngine`` keeps the catalog snapshot, the active model version and the active traffic
policy in memory and swaps each of them atomically when a newer one exists (checked every
couple of seconds by a background thread; in tests, on every request). Everything heavy is
precomputed offline: the snapshot by the worker (``feed.snapshot``) and ``juxing train``, the
model's per-item neighbour lists by ``juxing train`` (``neighbours.py``). A feed request then
costs two indexed statements on the driver (the token; the shopper's recent events and
follows, ``reads.py``), a vectorised merge of the neighbour lists of the shopper's latest
items (the current session included, so a click changes the next request at once, without
retraining), the greedy policy re-ranking of ``ranking.py`` over plain lists, the live state
of the page's festival deals (cached for at most a second, refreshed by the background
thread), a response assembled from per-item JSON fragments cached per snapshot, and one
journal append for the impressions (``impressions.py``), which the background thread writes
to the database in batches.
"""

from __future__ import annotations

import base64
import binascii
import gc
import json
import logging
import pickle
import random
import threading
import time
import weakref
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import redis
from sqlalchemy import select
from sqlalchemy.orm import Session

from juxing.feed.catalog import (
    CatalogSnapshot,
    empty_snapshot,
    load_snapshot,
    read_snapshot,
    snapshot_path,
    write_snapshot,
)
from juxing.feed.impressions import (
    FLUSH_EVERY_S,
    RECOVER_EVERY_S,
    ImpressionLog,
    Touches,
    journal_dir,
    recover,
    rows_text,
    shown_text,
)
from juxing.feed.neighbours import build_neighbours, load_neighbours, save_neighbours
from juxing.feed.pages import (
    PAGE_TTL_S,
    EventWatch,
    FeedCache,
    Generation,
    KnownToken,
    RankedFeed,
    RenderedPage,
    TokenCache,
)
from juxing.feed.ranking import Placed, Ranked, grouped_order, merge, rerank
from juxing.feed.reads import FeedReads, Shopper, TokenRow
from juxing.feed.schemas import DealStateOut, FeedItemOut, FeedPage, PolicyRules
from juxing.kit import revocations
from juxing.kit.auth import token_is_live
from juxing.kit.db import Database
from juxing.kit.errors import BadRequest
from juxing.kit.time import utcnow
from juxing.models.feed import FeedModelVersion, TrafficPolicy
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
LOOP_S = 0.25  # the background thread's period
DEAL_SHOWN_S = 60.0  # deal items shown this recently are re-read ahead of expiry
DEAL_BATCH = 200  # deal states per card_states call of the background thread
MAX_DEAL_STATES = 20_000
TOKEN_CHECK_EVERY_S = 1.0  # the background thread re-reads due tokens' rows this often
RANK_AHEAD_BUDGET_S = 0.05  # the background thread ranks queued feeds this long per pass
ACTION_VERB = {
    "view": "viewed",
    "click": "viewed",
    "cart": "added to cart",
    "fav": "saved",
    "buy": "bought",
    "share": "shared",
}
# A deal item's live state: (deal price, the card's "deal" object, that object as JSON).
DealState = tuple[int, dict[str, Any], str]


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
    """The shopper-independent candidates of one snapshot (deals, trending, fresh, pools),
    one entry per item (the best source), best first."""

    items: np.ndarray
    scores: np.ndarray
    reasons: np.ndarray  # index into codes / texts
    codes: list[str]
    texts: list[str]
    damp: np.ndarray  # per snapshot item: score penalty for over-exposure


@dataclass
class _Page:
    """One served page before it is rendered (as dicts or as JSON)."""

    feed_id: str
    placed: list[Placed]
    offset: int
    next_cursor: str | None
    snap: CatalogSnapshot
    policy: ActivePolicy | None
    model_version: str | None
    deal_states: dict[int, DealState | None]
    kept: RankedFeed | None = None  # the ranked feed this page came from (when kept)


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
        # Foreground engines (tests, scripts) write impressions at once: no journal needed.
        self.impressions = ImpressionLog(journal_dir(data_dir) if background else None)
        self.touches = Touches.new()
        self._paramstyle = db.engine.dialect.paramstyle
        self._snapshot_mtime: float | None = None
        self._checked_at = 0.0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._explore_cache: tuple[int, list[int]] | None = None
        self._global_cache: tuple[tuple[int, float, int], GlobalCandidates] | None = None
        self._fragments: tuple[int, dict[int, str]] = (0, {})
        self._strings: dict[str, str] = {}
        # deal item id -> (expires at, live state or None); and when it was last shown
        self._deal_states: dict[int, tuple[float, DealState | None]] = {}
        self._deal_shown: dict[int, float] = {}
        # Ranked feeds and resolved tokens kept for the fast path (pages.py); only a
        # background (serving) engine keeps them: it is the one that watches the event log.
        self.feeds = FeedCache()
        self.tokens = TokenCache()
        self.watch = EventWatch(self._paramstyle, lookback=db.engine.dialect.name != "sqlite")
        self._generation: Generation = (id(self.snapshot), None, None)
        self._tokens_checked = 0.0
        self.revocations = revocations.RevocationWatch()  # other processes' (with Redis)
        self._revocations_failing = False
        _live_engines.add(self)

    # --- lifecycle ----------------------------------------------------------------------------
    def start(self) -> None:
        """Load everything once, then keep it fresh in a daemon thread (if ``background``)."""
        self.refresh(force=True)
        if self.background:
            self.watch_events()  # the first look notes the newest event, before any is kept
            self.watch_revocations()  # likewise the newest revocation, before any token
        if self.background and not self._threads:
            for target, name in ((self._loop, "juxing-feed"), (self._write_loop, "juxing-feed-w")):
                thread = threading.Thread(target=target, name=name, daemon=True)
                thread.start()
                self._threads.append(thread)

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=10)
        self.touches.flush(self.db, utcnow())
        self.impressions.close(self.db)

    def _loop(self) -> None:
        """Keep the serving state fresh: snapshot, model, policy, festival-deal states."""
        while not self._stop.wait(LOOP_S):
            try:
                self.refresh()
                self.watch_events()
                self.watch_revocations()
                self.recheck_tokens()
                self._prefetch_deal_states()
                self.feeds.queue_expiring(time.monotonic())
                self.rank_ahead()
            except Exception:
                log.exception("feed refresh failed; serving the previous state")

    def _write_loop(self) -> None:
        """Write impressions and token touches in batches; replay orphaned journals (first
        at start, off the requests' path)."""
        self._recover()
        recovered = time.monotonic()
        while not self._stop.wait(FLUSH_EVERY_S):
            self.touches.flush(self.db, utcnow())
            self.impressions.flush(self.db)
            if time.monotonic() - recovered >= RECOVER_EVERY_S:
                recovered = time.monotonic()
                self._recover()

    def _recover(self) -> None:
        try:
            recover(self.db, journal_dir(self.data_dir))
        except Exception:
            log.exception("could not replay the impressions journal; will retry")

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
            model_changed = self._refresh_model(session)
        generation = self.generation()
        if generation != self._generation:
            # Feeds ranked under the previous snapshot, model or policy are not served again
            # (and must not keep the previous snapshot alive): the shoppers served lately are
            # ranked again, ahead of their next request, by the background thread.
            self._generation = generation
            self.feeds.clear(requeue=self.background)
        if self.background and (snap is not None or model_changed):
            # The snapshot and the neighbour lists are long-lived: keep them out of the
            # cyclic collector's full passes (a pause of tens of ms per pass otherwise).
            gc.collect()
            gc.freeze()

    def generation(self) -> Generation:
        """What a ranked feed depends on besides the shopper: snapshot, model, policy."""
        return _generation_of(self.snapshot, self.model, self.policy)

    def watch_events(self) -> int:
        """Drop the kept feeds of shoppers with new behaviour events; returns how many."""
        now = time.monotonic()
        with self.db.dbapi_connection() as conn:
            users = self.watch.poll(conn, now)
        if not users:
            return 0
        return self.feeds.invalidate(set(users), now, requeue=True)

    def watch_revocations(self) -> int:
        """Stop trusting the tokens other processes revoked (read from Redis; see
        ``kit/revocations.py``); returns how many trusted tokens were dropped."""
        if self.redis is None or not self.background:
            return 0
        try:
            got = self.revocations.poll(self.redis)
        except redis.RedisError as exc:
            if not self._revocations_failing:
                log.warning("cannot read revocations from Redis (%s); tokens are re-read "
                            "within %.0f s instead", exc, self.tokens.ttl)  # fmt: skip
            self._revocations_failing = True
            return 0
        self._revocations_failing = False
        return sum(self.drop_revoked(r) for r in got)

    def drop_revoked(self, revoked: revocations.Revoked) -> int:
        """Stop trusting revoked tokens and the tokens of disabled accounts now."""
        return self.tokens.revoke(revoked.token_hashes, revoked.user_ids, time.monotonic())

    def forget_shopper(self, user_id: int) -> None:
        """Drop the shopper's kept feed now (e.g. after an unfollow in this process)."""
        self.feeds.invalidate({user_id}, time.monotonic(), requeue=True)

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

    def _refresh_model(self, session: Session) -> bool:
        row = session.execute(
            select(FeedModelVersion.version, FeedModelVersion.path)
            .where(FeedModelVersion.is_active.is_(True))
            .order_by(FeedModelVersion.id.desc())
            .limit(1)
        ).first()
        if row is None:
            changed = self.model is not None
            self.model = None
            return changed
        if self.model is not None and self.model.version == row.version:
            return False
        try:
            loaded = load_serving_model(row.version, Path(row.path), self.snapshot)
        except Exception:
            log.exception("cannot load model version %s; keeping the previous one", row.version)
            return False
        with self._lock:
            self.model = loaded
        log.info("feed model version %s is now serving", row.version)
        return True

    # --- the shopper --------------------------------------------------------------------------
    def reads(self, conn: Any) -> FeedReads:
        """The feed's statements on a DB-API connection of this engine's database."""
        return FeedReads(conn, self._paramstyle)

    def shopper(self, session: Session, user_id: int | None) -> Shopper:
        """The shopper's recent events and follows, read in ``session``'s transaction."""
        conn = session.connection().connection.driver_connection
        return self.reads(conn).shopper(user_id)

    # --- serving ------------------------------------------------------------------------------
    def feed_json(
        self,
        shopper: Shopper,
        *,
        limit: int,
        cursor: str | None,
        log_impressions: bool = True,
        read_at: float | None = None,
    ) -> bytes:
        """One page of the shopper's feed as the ``FeedPage`` JSON document, assembled from
        per-item fragments (the hot path: no per-request model validation or dicts).

        ``read_at`` (monotonic) is when the shopper's events and follows were read: given it, a
        serving engine keeps the ranking for the fast path (``pages.py``) unless an event of
        the shopper arrived since."""
        page = self._page(shopper, limit=limit, cursor=cursor, session=None, read_at=read_at)
        rendered = self._render(page)
        if log_impressions:
            self._log(page, shopper.user_id, rendered)
        return assemble(page.feed_id, rendered, page.deal_states)

    def _render(self, page: _Page) -> RenderedPage:
        kept = page.kept
        key = (page.offset, len(page.placed))
        if kept is not None:
            got = kept.rendered.get(key)
            if got is not None:
                return got
        rendered = render_page(
            page.snap,
            page.placed,
            frags=self._fragments_of(page.snap),
            enc=self._encoded,
            next_cursor=page.next_cursor,
            policy=page.policy,
            model_version=page.model_version,
        )
        if kept is not None:
            kept.rendered[key] = rendered
        return rendered

    def serve_kept(
        self, user_id: int | None, *, limit: int, offset: int, seed: int | None
    ) -> bytes | None:
        """The page from the shopper's kept ranking, or None when there is none that answers
        it (then the regular route ranks one): the fast path's whole feed work. ``seed`` is
        the cursor's (None: the first page, any kept ranking)."""
        now = time.monotonic()
        kept = self.feeds.get(user_id, self.generation(), now)
        if kept is None or (seed is not None and kept.seed != seed):
            return None
        if not kept.covers(offset, limit):
            return None
        key = (offset, limit)
        rendered = kept.rendered.get(key)
        if rendered is None:
            end = offset + limit
            more = len(kept.placed) > end and end < MAX_FEED
            rendered = render_page(
                kept.snap,
                kept.placed[offset:end],
                frags=self._fragments_of(kept.snap),
                enc=self._encoded,
                next_cursor=_encode_cursor(end, kept.seed) if more else None,
                policy=kept.policy,
                model_version=kept.model_version,
            )
            kept.rendered[key] = rendered
        states: dict[int, DealState | None] = {}
        if rendered.deals:
            got = self._cached_deal_states(rendered.deals, now)
            if got is None:
                return None  # a deal state to read first: the regular route does it
            states = got
        self.feeds.touch(kept, now)
        feed_id = _feed_id()
        if rendered.rows:
            policy = kept.policy
            self.impressions.add(
                (
                    feed_id,
                    user_id,
                    policy.id if policy else None,
                    shown_text(utcnow()),
                    offset,
                    rendered.rows,
                ),
                rows_text=rendered.rows_text,
            )
        return assemble(feed_id, rendered, states)

    def remember_token(
        self, token_hash: str, row: TokenRow, *, touched: bool, read_at: float | None = None
    ) -> None:
        """Trust this token for the fast path for a few seconds (``pages.TOKEN_TTL_S``);
        ``read_at`` (monotonic): when its row was read (a revocation since wins)."""
        if not self.background:
            return
        used = time.time() if touched else 0.0
        if not touched and row.last_used_at is not None:
            used = row.last_used_at.timestamp()
        expires = row.expires_at.timestamp() if row.expires_at is not None else float("inf")
        self.tokens.put(
            token_hash,
            KnownToken(
                row.user_id,
                row.token_id,
                used,
                expires,
                time.monotonic() + self.tokens.ttl,
                hit_at=time.time(),
            ),
            read_at=read_at,
        )

    def recheck_tokens(self, *, force: bool = False) -> int:
        """Re-read the rows of the tokens the fast path used lately whose trust runs out
        soon: extended when still valid, dropped when revoked, expired or disabled (at most
        once a second)."""
        now, wall = time.monotonic(), time.time()
        if not force and now - self._tokens_checked < TOKEN_CHECK_EVERY_S:
            return 0
        self._tokens_checked = now
        due = self.tokens.due(now, wall)
        if due:
            with self.db.dbapi_connection() as conn:
                rows = self.reads(conn).tokens(due)
            at = utcnow()
            for h in due:
                known = self.tokens.get(h, float("-inf"))
                row = rows.get(h)
                if known is None:
                    continue
                if (
                    row is None
                    or not row.user_active
                    or not token_is_live(row.revoked_at, row.expires_at, at)
                ):
                    self.tokens.forget(h)
                else:
                    known.trusted_until = time.monotonic() + self.tokens.ttl
        self.tokens.forget_idle(now)
        return len(due)

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
        shopper = self.shopper(session, user_id)
        page = self._page(shopper, limit=limit, cursor=cursor, session=session)
        if log_impressions:
            self._log(page, user_id)
        items = []
        for p in page.placed:
            card = _card(p, page.snap)
            d = card["deal_item_id"]
            state = page.deal_states.get(d) if d is not None else None
            if state is not None:
                card["deal_price_minor"] = state[0]
                card["deal"] = dict(state[1])
            items.append(card)
        return {
            "feed_id": page.feed_id,
            "items": items,
            "next_cursor": page.next_cursor,
            "policy": page.policy.name if page.policy else None,
            "model_version": page.model_version,
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

    def _page(
        self,
        shopper: Shopper,
        *,
        limit: int,
        cursor: str | None,
        session: Session | None,
        read_at: float | None = None,
    ) -> _Page:
        if not self.background:
            self.refresh(force=True)
        offset, seed = _decode_cursor(cursor) if cursor else (0, random.getrandbits(32))
        snap, loaded, policy = self.snapshot, self.model, self.policy
        n = min(MAX_FEED, offset + limit + 1)  # one more tells whether a next page exists
        rules = policy.rules if policy else None
        placed = self._ranked(shopper, n=n, snap=snap, loaded=loaded, rules=rules, seed=seed)
        page = placed[offset : offset + limit]
        more = len(placed) > offset + limit and offset + limit < MAX_FEED
        deal_ids = [d for d in (snap.deal_item_l[p.item] for p in page) if d is not None]
        kept = None
        if self.background and read_at is not None:
            kept = self._keep(shopper.user_id, placed, n, seed, snap, loaded, policy, read_at)
        return _Page(
            feed_id=_feed_id(),
            placed=page,
            offset=offset,
            next_cursor=_encode_cursor(offset + limit, seed) if more else None,
            snap=snap,
            policy=policy,
            model_version=loaded.version if loaded else None,
            deal_states=self._deal_states_of(deal_ids, session) if deal_ids else {},
            kept=kept,
        )

    def _keep(
        self,
        user_id: int | None,
        placed: list[Placed],
        n: int,
        seed: int,
        snap: CatalogSnapshot,
        loaded: LoadedModel | None,
        policy: ActivePolicy | None,
        read_at: float,
    ) -> RankedFeed | None:
        """Keep a ranking for the fast path (unless the shopper's feed was dropped since
        ``read_at``, or the serving state changed meanwhile)."""
        generation = _generation_of(snap, loaded, policy)
        if generation != self.generation():
            return None
        kept = RankedFeed(
            user_id=user_id,
            generation=generation,
            seed=seed,
            placed=placed,
            complete=len(placed) < n,
            expires=time.monotonic() + PAGE_TTL_S,
            snap=snap,
            policy=policy,
            model_version=loaded.version if loaded else None,
        )
        return kept if self.feeds.put(kept, read_at=read_at) else None

    def rank_ahead(self, budget_s: float = RANK_AHEAD_BUDGET_S) -> int:
        """Rank the feeds of queued shoppers before their next request (the background
        thread, for at most ``budget_s`` per call); returns how many were ranked."""
        deadline = time.monotonic() + budget_s
        done = 0
        while self.feeds.queue and time.monotonic() < deadline:
            user_id, n = self.feeds.next_queued()
            read_at = time.monotonic()
            with self.db.dbapi_connection() as conn:
                shopper = self.reads(conn).shopper(user_id)
            snap, loaded, policy = self.snapshot, self.model, self.policy
            if snap.n_items == 0:
                break
            rules = policy.rules if policy else None
            seed = random.getrandbits(32)
            placed = self._ranked(shopper, n=n, snap=snap, loaded=loaded, rules=rules, seed=seed)
            self._keep(user_id, placed, n, seed, snap, loaded, policy, read_at)
            done += 1
            time.sleep(0)  # let requests have the interpreter between shoppers
        return done

    def _log(self, page: _Page, user_id: int | None, rendered: RenderedPage | None = None) -> None:
        if not page.placed:
            return
        if rendered is None:
            rendered = impression_rows(page.snap, page.placed)
        self.impressions.add(
            (
                page.feed_id,
                user_id,
                page.policy.id if page.policy else None,
                shown_text(utcnow()),
                page.offset,
                rendered.rows,
            ),
            rows_text=rendered.rows_text,
        )
        if not self.background:
            self.impressions.flush(self.db)

    def touch_token(self, token_id: int) -> None:
        """Record an API token's use (due every few minutes) off the request's path."""
        self.touches.add(token_id)
        if not self.background:
            self.touches.flush(self.db, utcnow())

    def _fragments_of(self, snap: CatalogSnapshot) -> dict[int, str]:
        frags = self._fragments
        if frags[0] != id(snap):
            frags = self._fragments = (id(snap), {})
        return frags[1]

    def _encoded(self, text: str) -> str:
        """``text`` as a JSON string (reason texts repeat: cached, bounded)."""
        got = self._strings.get(text)
        if got is None:
            if len(self._strings) > 50_000:
                self._strings = {}
            got = self._strings[text] = json.dumps(text, ensure_ascii=False)
        return got

    # --- festival-deal state ------------------------------------------------------------------
    def _cached_deal_states(
        self, deal_ids: list[int], now: float
    ) -> dict[int, DealState | None] | None:
        """The deals' states when every one is cached and fresh (None otherwise); marks them
        shown, so that the background thread keeps them fresh."""
        cache, shown = self._deal_states, self._deal_shown
        out: dict[int, DealState | None] = {}
        for d in deal_ids:
            shown[d] = now
            got = cache.get(d)
            if got is None or got[0] <= now:
                return None
            out[d] = got[1]
        return out

    def _deal_states_of(
        self, deal_ids: list[int], session: Session | None
    ) -> dict[int, DealState | None]:
        """Live state of the page's festival-deal items: the cached state when read in the
        last ``DEAL_STATE_TTL_S`` (the background thread re-reads the recently shown ones
        every second), else one batched ``card_states`` call for the rest."""
        if not self.background:  # tests and scripts: always the current state
            return self._read_deal_states(deal_ids, session)
        now = time.monotonic()
        cache, shown = self._deal_states, self._deal_shown
        out: dict[int, DealState | None] = {}
        missing = []
        for d in deal_ids:
            shown[d] = now
            got = cache.get(d)
            if got is None or got[0] <= now:
                missing.append(d)
            else:
                out[d] = got[1]
        if missing:
            fresh = self._read_deal_states(missing, session)
            self._remember(fresh, now)
            out.update(fresh)
        return out

    def _remember(self, states: dict[int, DealState | None], now: float) -> None:
        cache = self._deal_states
        if len(cache) > MAX_DEAL_STATES:
            cache.clear()
        expires = now + DEAL_STATE_TTL_S
        for d, state in states.items():
            cache[d] = (expires, state)

    def _prefetch_deal_states(self) -> None:
        """Re-read, just before they expire, the states of the festival deals every feed
        offers (the global pool) and of those shown in the last ``DEAL_SHOWN_S``, in
        batches: requests then find them cached, and only a deal item not shown for a while
        is read on a request's path."""
        snap, now = self.snapshot, time.monotonic()
        ids = {d for d in (snap.deal_item_l[i] for i in snap.deals[:40]) if d is not None}
        shown = self._deal_shown
        for d, at in list(shown.items()):
            if now - at > DEAL_SHOWN_S:
                shown.pop(d, None)
            else:
                ids.add(d)
        # Those that would expire before the next pass (each is re-read every ~0.75 s).
        due, cache = now + LOOP_S + 0.1, self._deal_states
        batch = sorted(d for d in ids if (got := cache.get(d)) is None or got[0] <= due)
        batch = batch[:MAX_DEAL_STATES]
        for start in range(0, len(batch), DEAL_BATCH):
            chunk = batch[start : start + DEAL_BATCH]
            self._remember(self._read_deal_states(chunk, None), time.monotonic())
            if self._stop.wait(0.005):  # let requests have the interpreter between batches
                return

    def _read_deal_states(
        self, deal_ids: list[int], session: Session | None
    ) -> dict[int, DealState | None]:
        from juxing.deals.service import card_states

        scope: AbstractContextManager[Session] = (
            nullcontext(session) if session is not None else self.db.session(write=False)
        )
        with scope as s:
            got = card_states(session=s, deal_item_ids=deal_ids, redis_client=self.redis)
        out: dict[int, DealState | None] = {}
        for d in deal_ids:
            card = got["deal_items"].get(d)
            if card is None:
                out[d] = None
                continue
            state = {
                "status": card["status"],
                "stock_left": card["stock_left"],
                "starts_at": card["starts_at"].isoformat(),
                "ends_at": card["ends_at"].isoformat(),
            }
            text = json.dumps(state, ensure_ascii=False, separators=(",", ":"))
            out[d] = (card["deal_price_minor"], state, text)
        return out

    # --- ranking ------------------------------------------------------------------------------
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
        if rules is None and use_policy:
            policy = policy or self.policy
            rules = policy.rules if policy else None
        return self._ranked(
            self.shopper(session, user_id),
            n=n,
            snap=snap or self.snapshot,
            loaded=loaded or self.model,
            rules=rules,
            seed=seed,
        )

    def _ranked(
        self,
        shopper: Shopper,
        *,
        n: int,
        snap: CatalogSnapshot,
        loaded: LoadedModel | None,
        rules: PolicyRules | None,
        seed: int,
    ) -> list[Placed]:
        if snap.n_items == 0:
            return []
        ranked = self._candidates(shopper, snap=snap, loaded=loaded)
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
        return self._candidates(self.shopper(session, user_id), snap=snap, loaded=loaded)

    def _candidates(
        self, shopper: Shopper, *, snap: CatalogSnapshot, loaded: LoadedModel | None
    ) -> Ranked:
        glob = self._global_candidates(snap)
        codes, texts = glob.codes, glob.texts
        history: list[tuple[int, str]] = []  # (snapshot index, action), newest first
        seen: list[int] = []
        positions = snap.positions  # item type -> {item id: snapshot index}
        nowhere: dict[int, int] = {}
        for action, ttype, tid in shopper.recent:
            i = positions.get(ttype, nowhere).get(tid)
            if i is not None:
                history.append((i, action))
                if action in SEEN_ACTIONS:
                    seen.append(i)
        if not history and not shopper.follows:  # cold start: the global candidates
            return Ranked(glob.items.tolist(), glob.reasons.tolist(), codes, texts, glob.items)
        codes, texts = list(codes), list(texts)
        parts_i: list[np.ndarray] = [glob.items]
        parts_s: list[np.ndarray] = [glob.scores]
        parts_r: list[np.ndarray] = [glob.reasons]
        seen_set = np.array(sorted(set(seen)), dtype=np.int64)
        if loaded is not None and history:
            got = _model_candidates(loaded, snap, history, seen_set, base=len(codes))
            if got is not None:
                m_items, m_scores, m_reasons, m_texts = got
                parts_i.append(m_items)
                parts_s.append(m_scores - glob.damp[m_items])
                parts_r.append(m_reasons)
                codes += ["because_you_viewed"] * len(m_texts)
                texts += m_texts
        for kind, ref in shopper.follows:
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
            np.concatenate(parts_i), np.concatenate(parts_s), np.concatenate(parts_r), seen_set
        )
        return Ranked(items.tolist(), reasons.tolist(), codes, texts, items)

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


def _generation_of(
    snap: CatalogSnapshot, loaded: LoadedModel | None, policy: ActivePolicy | None
) -> Generation:
    return (
        id(snap),
        loaded.version if loaded is not None else None,
        (policy.id, policy.version) if policy is not None else None,
    )


def _feed_id() -> str:
    """A page id: nanosecond clock then 64 random bits (32 hex digits), so that the
    impressions' ``feed_id`` index is appended to, not written all over. An id, not a secret."""
    return f"{time.time_ns() & (2**64 - 1):016x}{random.getrandbits(64):016x}"


def render_page(
    snap: CatalogSnapshot,
    placed: list[Placed],
    *,
    frags: dict[int, str],
    enc: Any,
    next_cursor: str | None,
    policy: ActivePolicy | None,
    model_version: str | None,
) -> RenderedPage:
    """A page of placed items as JSON text with a gap for each festival deal's live state
    (``assemble`` fills them), and its impression rows. ``frags`` caches per-item fixed
    members (per snapshot); ``enc`` encodes a string as JSON."""
    parts: list[str] = []
    deals: list[int] = []
    fallback: list[str] = []
    current: list[str] = []
    for n, p in enumerate(placed):
        i = p.item
        head = frags.get(i)
        if head is None:
            head = frags[i] = _fragment(snap, i)
        boosts = "[" + ",".join(enc(b) for b in p.boosts) + "]" if p.boosts else "[]"
        rest = f'"reason":{enc(p.reason)},"reason_code":{enc(p.reason_code)},"boosts":{boosts}}}'
        price = snap.deal_price_l[i]
        own = f'"deal_price_minor":{"null" if price is None else price},"deal":null'
        d = snap.deal_item_l[i]
        current.append(f"{',' if n else ''}{head},")
        if d is None:
            current.append(f"{own},{rest}")
        else:
            parts.append("".join(current))
            deals.append(d)
            fallback.append(own)
            current = [f",{rest}"]
    parts.append("".join(current))
    tail = (
        f'],"next_cursor":{enc(next_cursor) if next_cursor else "null"},'
        f'"policy":{enc(policy.name) if policy else "null"},'
        f'"model_version":{enc(model_version) if model_version else "null"}}}'
    )
    rows = impression_rows(snap, placed)
    return RenderedPage(parts, deals, fallback, tail, rows.rows, rows.rows_text)


def impression_rows(snap: CatalogSnapshot, placed: list[Placed]) -> RenderedPage:
    """The page's impression rows (in a ``RenderedPage`` with no JSON)."""
    kind, ids, merchant = snap.kind, snap.ids_l, snap.merchant_l
    rows = [
        (kind[i], ids[i], m if (m := merchant[i]) >= 0 else None, p.reason_code)
        for p in placed
        for i in (p.item,)
    ]
    return RenderedPage([], [], [], "", rows, rows_text(rows))


def assemble(feed_id: str, rendered: RenderedPage, states: dict[int, DealState | None]) -> bytes:
    """The ``FeedPage`` document: the rendered page with the deals' live states filled in."""
    parts = rendered.parts
    if rendered.deals:
        out = [parts[0]]
        for k, d in enumerate(rendered.deals):
            state = states.get(d)
            if state is None:
                out.append(rendered.fallback[k])
            else:
                out.append(f'"deal_price_minor":{state[0]},"deal":{state[2]}')
            out.append(parts[k + 1])
        items = "".join(out)
    else:
        items = parts[0]
    return f'{{"feed_id":"{feed_id}","items":[{items}{rendered.tail}'.encode()


def _fragment(snap: CatalogSnapshot, i: int) -> str:
    """The item's fixed JSON members, from ``{"key"`` to ``"deal_item_id":..`` (no brace)."""
    m, c, k = snap.merchant_l[i], snap.creator_l[i], snap.category_l[i]
    price, deal_item = snap.price_l[i], snap.deal_item_l[i]
    return (
        f'{{"key":{json.dumps(snap.keys[i])},"type":{json.dumps(snap.kind[i])},'
        f'"id":{snap.ids_l[i]},"title":{json.dumps(snap.titles[i], ensure_ascii=False)},'
        f'"merchant_id":{m if m >= 0 else "null"},"creator_id":{c if c >= 0 else "null"},'
        f'"category_id":{k if k >= 0 else "null"},'
        f'"price_minor":{"null" if price is None else price},'
        f'"currency":{json.dumps(snap.currency[i])},'
        f'"deal_item_id":{"null" if deal_item is None else deal_item}'
    )


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
    all_items = np.concatenate(items)
    all_scores = np.concatenate(scores) - damp[all_items]
    all_reasons = np.concatenate(reasons)
    # One entry per item (its best source), best first: the cold-start feed as it is, and
    # a smaller merge per request.
    order = np.lexsort((all_items, -all_scores))
    _, first = np.unique(all_items[order], return_index=True)
    keep = order[np.sort(first)]
    return GlobalCandidates(
        all_items[keep], all_scores[keep], all_reasons[keep], codes, texts, damp
    )


def _model_candidates(
    loaded: LoadedModel,
    snap: CatalogSnapshot,
    history: list[tuple[int, str]],
    seen: np.ndarray,
    *,
    base: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]] | None:
    """Next-item candidates: the recent items' neighbour lists merged, weighted by recency.

    Items already ``seen`` (sorted) are dropped before scores are scaled, so the best unseen
    item gets the top score. Each candidate is explained by the history item that contributed
    most to its score; reasons are ``base + k`` for the k-th returned text. One sort of the
    (at most ``HISTORY_ITEMS`` x K) entries does the grouping: by item, largest contribution
    first.
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
    weight = np.array(
        [RECENCY_DECAY**k * ACTION_WEIGHT.get(actions[i], 1.0) for k, i in enumerate(recent)]
    )
    flat = loaded.nbr[h].ravel()
    contrib = (loaded.nbr_score[h] * weight[:, None]).ravel()
    order = grouped_order(flat, contrib)
    grouped = flat[order]
    start = np.empty(len(grouped), dtype=bool)
    start[:1] = True
    np.not_equal(grouped[1:], grouped[:-1], out=start[1:])
    starts = np.flatnonzero(start)
    uniq = grouped[starts].astype(np.int64)
    total = np.add.reduceat(contrib[order], starts)
    because = order[starts] // loaded.nbr.shape[1]  # the history row contributing most
    keep = (uniq >= 0) & ~_member(uniq, seen)  # -1 pads the lists
    uniq, total, because = uniq[keep], total[keep], because[keep]
    if len(uniq) == 0:
        return None
    if len(uniq) > MODEL_CANDIDATES:
        top = np.argpartition(-total, MODEL_CANDIDATES - 1)[:MODEL_CANDIDATES]
        uniq, total, because = uniq[top], total[top], because[top]
    lo, hi = float(total.min()), float(total.max())
    span = hi - lo if hi > lo else 1.0
    texts = []
    for i in recent:
        verb = ACTION_VERB.get(actions[i], "viewed")
        texts.append(f"because you {verb} {snap.titles[i]}")
    return uniq, 0.5 + 0.5 * (total - lo) / span, base + because, texts


def _member(values: np.ndarray, sorted_set: np.ndarray) -> np.ndarray:
    """``np.isin(values, sorted_set)`` for a small sorted set (a binary search per value)."""
    if len(sorted_set) == 0:
        return np.zeros(len(values), dtype=bool)
    at = np.searchsorted(sorted_set, values)
    return sorted_set[np.minimum(at, len(sorted_set) - 1)] == values


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
    except (binascii.Error, ValueError, KeyError, TypeError, OverflowError) as exc:
        raise BadRequest("The cursor is not valid.", code="invalid_cursor") from exc
    if not 0 <= offset < MAX_FEED:
        raise BadRequest("The cursor is past the end of the feed.", code="invalid_cursor")
    return offset, seed


_engines_lock = threading.Lock()
_live_engines: weakref.WeakSet[FeedEngine] = weakref.WeakSet()


def forget_shopper(user_id: int) -> None:
    """Drop the shopper's kept feed in every engine of this process (a follow changed)."""
    for engine in list(_live_engines):
        engine.forget_shopper(user_id)


@revocations.listen
def _drop_revoked(revoked: revocations.Revoked) -> None:
    """A revocation committed in this process: every engine here stops trusting the tokens."""
    for engine in list(_live_engines):
        engine.drop_revoked(revoked)


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
