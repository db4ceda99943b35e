"""Shoppers' feeds ranked ahead of their next request, for the fast path (``fastfeed.py``).

Ranking a feed (candidates, merge, policy re-rank) costs about a millisecond of Python; serving
an already ranked one costs tens of microseconds. So every ranking a serving process computes
is kept, per shopper, for the next requests: the placed items (as many as were ranked), the
seed of the exploration draw (which the cursor carries) and the rendered pages. A kept feed is
served until the first of:

* the shopper's behaviour events or follows change (``EventWatch`` polls the event log every
  quarter of a second in the background thread; unfollows are dropped at once in the process
  that records them, see ``handlers.py``);
* the catalog snapshot, the model version or the traffic policy changes (the *generation*);
* ``PAGE_TTL_S`` passes (fresh exploration draws, deal pools and exposure damping).

Who holds a bearer token is kept too: a token is trusted for ``TOKEN_TTL_S`` after its row
was last read, and the background thread re-reads the rows of the tokens used in the last
``TOKEN_IDLE_S`` (in batches) when their trust has less than ``TOKEN_RECHECK_S`` left. A token
revoked, or an account disabled, through the accounts service is dropped from this cache when
its transaction commits (``kit/revocations.py``): at once in the process that committed it,
and in the other processes (with Redis) at the background thread's next turn, within about a
quarter of a second. A row read before the revocation cannot bring the token back (``put``
refuses reads older than the drop). What still waits for the re-read, at most
``TOKEN_TTL_S`` (10 s): a change made past the service (SQL by hand) or a revocation whose
announcement Redis lost.

The background thread also ranks ahead of the request, for at most 50 ms per quarter second:
the shoppers whose kept feed an event (or a follow) just dropped, those whose feed served in
the last half minute expires within ``AHEAD_OF_EXPIRY_S``, and, after a snapshot, model or
policy swap, those whose feeds were kept (most recently served first). So a shopper who keeps
using the app is normally served from a kept ranking, whatever changes.

All of this is per process and in memory; a process that has no ranked feed for a shopper
answers through the regular route, which ranks one and keeps it.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from juxing.models.events import BehaviorEvent

PAGE_TTL_S = 60.0  # a ranked feed is served for at most this long
MAX_FEEDS = 10_000  # feeds kept per process, least recently used dropped (~16 MB per 1,000)
TOKEN_TTL_S = 10.0  # a resolved bearer token is trusted this long without a look at its row
TOKEN_RECHECK_S = 5.0  # re-read a used token's row when its trust has less than this left
TOKEN_IDLE_S = 60.0  # tokens unused this long are not re-read (they lapse)
MAX_TOKENS = 100_000
DEFAULT_POSITIONS = 21  # a first page of the default 20 items, and whether a next exists
MAX_AHEAD = 61  # positions ranked ahead at most (three pages of 20)
AHEAD_OF_EXPIRY_S = 5.0  # a feed served lately is ranked again this long before it expires
STAMP_KEEP_S = 30.0  # how long an invalidation is remembered against late stores
WATCH_LOOKBACK_S = 3.0  # PostgreSQL: event ids may commit out of order; look back this long
WATCH_BATCH = 50_000
_NEVER = float("-inf")

# Generation of the serving state a feed was ranked under: (snapshot identity, model version,
# (policy id, policy version) or None).
Generation = tuple[int, str | None, tuple[int, int] | None]


@dataclass
class RenderedPage:
    """One page (offset, limit) of a ranked feed as JSON text: ``parts`` joined with the live
    state of the festival deals ``deals`` in between (``len(parts) == len(deals) + 1``)."""

    parts: list[str]
    deals: list[int]
    fallback: list[str]  # per deal: the members to use when the deal has no live state
    tail: str  # after the items: next_cursor, policy, model_version and the closing brace
    rows: list[tuple[str, int, int | None, str]]  # impressions: (type, id, merchant, reason)
    rows_text: str  # the same as journal text (``impressions._line``)


@dataclass
class RankedFeed:
    """A shopper's ranked feed, kept for the next requests."""

    user_id: int | None
    generation: Generation
    seed: int
    placed: list[Any]  # ranking.Placed, positions 0..len-1
    complete: bool  # the feed has no items beyond ``placed``
    expires: float  # time.monotonic()
    snap: Any
    policy: Any
    model_version: str | None
    rendered: dict[tuple[int, int], RenderedPage] = field(default_factory=dict)
    hit_at: float = 0.0  # monotonic: last served by the fast path

    def covers(self, offset: int, limit: int) -> bool:
        """``placed`` answers the page (and whether a next page exists)."""
        return self.complete or offset + limit < len(self.placed)


class FeedCache:
    """Ranked feeds per shopper (``None``: signed-out callers), least recently used first."""

    def __init__(self, max_feeds: int = MAX_FEEDS) -> None:
        self.max_feeds = max_feeds
        self._feeds: OrderedDict[int | None, RankedFeed] = OrderedDict()
        self._stamps: dict[int | None, float] = {}  # user -> when last invalidated
        # Shoppers whose feeds the background thread ranks ahead: user -> positions to rank.
        self.queue: OrderedDict[int | None, int] = OrderedDict()
        self._scanned = 0.0
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._feeds)

    def get(self, user_id: int | None, generation: Generation, now: float) -> RankedFeed | None:
        feed = self._feeds.get(user_id)
        if feed is None or feed.generation != generation or feed.expires <= now:
            self.misses += 1
            return None
        self.hits += 1
        return feed

    def put(self, feed: RankedFeed, *, read_at: float) -> bool:
        """Keep ``feed``, ranked from reads made at ``read_at`` (monotonic), unless the
        shopper's feed was invalidated since (an event that arrived after the reads)."""
        with self._lock:
            stamp = self._stamps.get(feed.user_id)
            if stamp is not None and stamp >= read_at:
                return False
            feeds = self._feeds
            old = feeds.get(feed.user_id)
            if old is not None and old.seed == feed.seed and old.generation == feed.generation:
                if len(old.placed) >= len(feed.placed) and old.expires > time.monotonic():
                    return False  # the kept one already covers these positions
                feed.expires = min(feed.expires, old.expires)  # the same ranking, extended
            feeds[feed.user_id] = feed
            feeds.move_to_end(feed.user_id)
            while len(feeds) > self.max_feeds:
                feeds.popitem(last=False)
            return True

    def touch(self, feed: RankedFeed, now: float) -> None:
        """The feed was served: kept longest, and ranked again before it expires."""
        feed.hit_at = now
        with contextlib.suppress(KeyError):  # dropped by another thread meanwhile
            self._feeds.move_to_end(feed.user_id)

    def invalidate(
        self, user_ids: set[int | None] | list[int | None], now: float, *, requeue: bool = False
    ) -> int:
        """Drop these shoppers' feeds; returns how many were kept. With ``requeue``, those
        that were kept are queued to be ranked again ahead of the shopper's next request."""
        dropped = 0
        with self._lock:
            for u in user_ids:
                self._stamps[u] = now
                old = self._feeds.pop(u, None)
                if old is not None:
                    dropped += 1
                    if requeue:
                        self._enqueue(u, old)
            if len(self._stamps) > 4 * self.max_feeds:
                self.forget_stamps(now)
        return dropped

    def _enqueue(self, user_id: int | None, old: RankedFeed) -> None:
        if user_id not in self.queue and len(self.queue) < self.max_feeds:
            self.queue[user_id] = max(DEFAULT_POSITIONS, min(len(old.placed), MAX_AHEAD))

    def next_queued(self) -> tuple[int | None, int]:
        """The next shopper to rank ahead, and how many positions."""
        with self._lock:
            return self.queue.popitem(last=False)

    def queue_expiring(self, now: float) -> int:
        """Queue the feeds served lately that expire soon (a scan at most once a second)."""
        if now - self._scanned < 1.0:
            return 0
        self._scanned = now
        soon, recent = now + AHEAD_OF_EXPIRY_S, now - PAGE_TTL_S / 2
        queued = 0
        with self._lock:
            for u, feed in list(self._feeds.items()):
                if feed.expires <= soon and feed.hit_at >= recent and u not in self.queue:
                    self._enqueue(u, feed)
                    queued += 1
        return queued

    def forget_stamps(self, now: float) -> None:
        old = now - STAMP_KEEP_S
        self._stamps = {u: t for u, t in self._stamps.items() if t > old}

    def clear(self, *, requeue: bool = False) -> None:
        """Drop every feed (the serving state changed); with ``requeue``, queue those not
        expired yet to be ranked again, most recently served first."""
        now = time.monotonic()
        with self._lock:
            if requeue:
                self.queue.clear()
                for u, feed in reversed(self._feeds.items()):
                    if feed.expires > now:
                        self._enqueue(u, feed)
            self._feeds.clear()

    def users(self) -> list[int | None]:
        """Shoppers with a kept feed, most recently used first."""
        return list(reversed(self._feeds.keys()))


@dataclass
class KnownToken:
    user_id: int
    token_id: int
    last_used: float  # wall-clock seconds of the token's last recorded use (0: never)
    expires_at: float  # wall-clock seconds when the token expires (inf: never)
    trusted_until: float  # monotonic: resolve again after this
    hit_at: float = 0.0  # wall-clock seconds of its last use on the fast path


class TokenCache:
    """Bearer token hash -> its live user, trusted for ``ttl`` seconds."""

    def __init__(self, ttl: float = TOKEN_TTL_S, max_tokens: int = MAX_TOKENS) -> None:
        self.ttl = ttl
        self.max_tokens = max_tokens
        self._tokens: dict[str, KnownToken] = {}
        # When (monotonic) a token was revoked / an account disabled, against late stores.
        self._revoked: dict[str, float] = {}
        self._disabled: dict[int, float] = {}
        self._lock = threading.Lock()  # stores and drops (``get`` needs none)

    def get(self, token_hash: str, now: float) -> KnownToken | None:
        known = self._tokens.get(token_hash)
        if known is None or known.trusted_until <= now:
            return None
        return known

    def put(self, token_hash: str, known: KnownToken, *, read_at: float | None = None) -> bool:
        """Trust the token, resolved from its row read at ``read_at`` (monotonic), unless it
        was revoked or its account disabled since (the read may predate that commit)."""
        with self._lock:
            if read_at is not None and (
                self._revoked.get(token_hash, _NEVER) >= read_at
                or self._disabled.get(known.user_id, _NEVER) >= read_at
            ):
                return False
            tokens = self._tokens
            if len(tokens) >= self.max_tokens:
                tokens.clear()
            tokens[token_hash] = known
            return True

    def revoke(self, token_hashes: Iterable[str], user_ids: Iterable[int], now: float) -> int:
        """Stop trusting these tokens and every token of these users; returns how many were
        trusted."""
        users = set(user_ids)
        dropped = 0
        with self._lock:
            for h in token_hashes:
                self._revoked[h] = now
                dropped += self._tokens.pop(h, None) is not None
            for u in users:
                self._disabled[u] = now
            if users:
                for h, k in list(self._tokens.items()):
                    if k.user_id in users:
                        dropped += self._tokens.pop(h, None) is not None
            if len(self._revoked) + len(self._disabled) > 1_000:
                old = now - STAMP_KEEP_S
                self._revoked = {h: t for h, t in self._revoked.items() if t > old}
                self._disabled = {u: t for u, t in self._disabled.items() if t > old}
        return dropped

    def forget(self, token_hash: str) -> None:
        self._tokens.pop(token_hash, None)

    def due(self, now: float, wall: float) -> list[str]:
        """Tokens used lately whose trust runs out soon: to be re-read."""
        soon, recent = now + TOKEN_RECHECK_S, wall - TOKEN_IDLE_S
        return [
            h
            for h, k in list(self._tokens.items())
            if k.trusted_until <= soon and k.hit_at >= recent
        ]

    def forget_idle(self, now: float) -> None:
        """Drop tokens whose trust has run out."""
        for h, k in list(self._tokens.items()):
            if k.trusted_until <= now:
                self._tokens.pop(h, None)


def _watch_sql(mark: str) -> tuple[str, str]:
    table = BehaviorEvent.__tablename__
    newest = f"SELECT MAX(id) FROM {table}"  # noqa: S608
    # Only a constant table name is interpolated; the range bounds are bound parameters.
    users = (
        f"SELECT id, user_id FROM {table} "  # noqa: S608
        f"WHERE id > {mark} AND id <= {mark} AND source = 'app'"
    )
    return newest, users


_WATCH_SQL = {"qmark": _watch_sql("?"), "format": _watch_sql("%s"), "pyformat": _watch_sql("%s")}


class EventWatch:
    """Which shoppers have new behaviour events: a look at the event log's newest ids.

    The first look only notes the newest id. Each later look reads the ids above the last
    one seen (one primary-key range, however many events were imported in between). On
    PostgreSQL ids are drawn before their transactions commit, so an event may become visible
    after a higher id did: there every look re-reads the last ``WATCH_LOOKBACK_S`` seconds of
    ids and reports only events it has not reported yet.
    """

    def __init__(self, paramstyle: str, *, lookback: bool) -> None:
        self.newest_sql, self.users_sql = _WATCH_SQL[paramstyle]
        self.lookback = lookback
        self.mark: int | None = None
        self._marks: deque[tuple[float, int]] = deque()  # (when, mark) of recent looks
        self._reported: set[int] = set()  # event ids above the look-back mark, reported

    def poll(self, conn: Any, now: float) -> set[int]:
        cur = conn.cursor()
        try:
            cur.execute(self.newest_sql)
            row = cur.fetchone()
            newest = int(row[0]) if row and row[0] is not None else 0
            if self.mark is None:
                self.mark = newest
                self._marks.append((now, newest))
                return set()
            low = self.mark
            if self.lookback:
                while len(self._marks) > 1 and self._marks[1][0] <= now - WATCH_LOOKBACK_S:
                    self._marks.popleft()
                low = self._marks[0][1]
            users: set[int] = set()
            if newest > low:
                top = min(newest, max(self.mark, low) + WATCH_BATCH)
                cur.execute(self.users_sql, (low, top))
                reported = self._reported
                for event_id, user_id in cur.fetchall():
                    if event_id not in reported:
                        users.add(int(user_id))
                        if self.lookback:
                            reported.add(int(event_id))
                self.mark = max(self.mark, top)
        finally:
            cur.close()
        if self.lookback:
            self._marks.append((now, self.mark))
            floor = self._marks[0][1]
            if self._reported and min(self._reported) <= floor:
                self._reported = {e for e in self._reported if e > floor}
        return users
