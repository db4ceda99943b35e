"""The home feed's fast path (``kit/fastroute.py``): ``GET /api/v1/feed`` answered on the event
loop from the shopper's kept ranking (``pages.py``), without a worker thread or a database read.

It answers only the plain case: a bearer token this process resolved in the last few seconds
(or no credentials at all, the signed-out cold-start feed), ``limit`` and ``cursor`` and no
other query parameter, and a kept ranking of the shopper that covers the page and whose
festival deals' live states are cached. Everything else — session cookies, unknown or new
tokens, odd or invalid parameters, a shopper with no kept ranking, a page beyond it — is handed
to the regular route, which answers it (with the kit's errors), and keeps what it ranked for
the next requests. A page served here is marked ``X-Feed-Cache: hit``.
"""

from __future__ import annotations

import hashlib
import logging
import time

from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import Response

from juxing.feed.engine import FeedEngine, _decode_cursor
from juxing.kit.auth import TOKEN_TOUCH_AFTER
from juxing.kit.errors import JuxingError
from juxing.kit.fastroute import add_fast_path

log = logging.getLogger("juxing.feed")

PATH = "/api/v1/feed"
DEFAULT_LIMIT = 20
MAX_LIMIT = 50
MAX_CURSOR = 200
TOUCH_AFTER_S = TOKEN_TOUCH_AFTER.total_seconds()
_CURSOR_CHARS = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
HIT_HEADERS = {"X-Feed-Cache": "hit"}


def install(app: FastAPI) -> None:
    """Put the feed's fast path in front of ``GET /api/v1/feed``."""
    add_fast_path(app, method="GET", path=PATH, handler=feed_fast)


def _query(raw: bytes) -> tuple[int, str | None] | None:
    """``(limit, cursor)`` of a plain query string; None for anything else."""
    if not raw:
        return DEFAULT_LIMIT, None
    limit, cursor = DEFAULT_LIMIT, None
    seen: set[bytes] = set()
    for pair in raw.split(b"&"):
        name, eq, value = pair.partition(b"=")
        if not eq or name in seen:
            return None
        seen.add(name)
        if name == b"limit":
            if not value.isdigit() or (len(value) > 1 and value[0:1] == b"0"):
                return None
            limit = int(value)
            if not 1 <= limit <= MAX_LIMIT:
                return None
        elif name == b"cursor":
            if not value or len(value) > MAX_CURSOR or not _CURSOR_CHARS.issuperset(value):
                return None
            cursor = value.decode()
        else:
            return None
    return limit, cursor


def _authorization(headers: list[tuple[bytes, bytes]]) -> bytes | None:
    for name, value in headers:
        if name == b"authorization":
            return value
    return None


async def feed_fast(request: Request) -> Response | None:
    """The kept page, or None: the regular route answers."""
    scope = request.scope
    engine: FeedEngine | None = getattr(request.app.state, "feed_engine", None)
    if engine is None or not engine.background:  # (session cookies: kit/fastroute.py)
        return None
    query = _query(scope["query_string"])
    if query is None:
        return None
    limit, cursor = query
    offset, seed = 0, None
    if cursor is not None:
        try:
            offset, seed = _decode_cursor(cursor)
        except JuxingError:
            return None  # the regular route answers with its error
    header = _authorization(scope["headers"])
    user_id: int | None = None
    if header is not None:
        scheme, _, raw = header.partition(b" ")
        raw = raw.strip()
        if scheme.lower() != b"bearer" or not raw:
            return None
        token_hash = hashlib.sha256(raw).hexdigest()
        known = engine.tokens.get(token_hash, time.monotonic())
        if known is None:
            return None
        wall = time.time()
        if known.expires_at <= wall:
            engine.tokens.forget(token_hash)
            return None
        known.hit_at = wall
        if wall - known.last_used > TOUCH_AFTER_S:
            known.last_used = wall
            engine.touch_token(known.token_id)
        user_id = known.user_id
    try:
        body = engine.serve_kept(user_id, limit=limit, offset=offset, seed=seed)
    except Exception:  # the regular route is always there to answer
        log.exception("feed fast path failed; answering through the regular route")
        return None
    if body is None:
        return None
    return Response(body, media_type="application/json", headers=HIT_HEADERS)
