"""Who is reading the feed: ``kit.auth.optional_user`` with its commonest case made cheap.

The feed is the hottest read of the engine and needs only the caller's id. A valid bearer
token is resolved by ONE indexed statement on the request's DB-API connection (token joined
to its user, ``reads.FeedReads.token``); when its ``last_used_at`` is due for the kit's
every-few-minutes touch, the touch is handed to the feed engine's background writer instead
of a write transaction on the request's path. Every other case — no header, a cookie session,
a malformed, unknown, revoked or expired token, a disabled account — goes through
``optional_user`` itself, so the answers and errors are exactly the kit's.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from fastapi import Request
from sqlalchemy.orm import Session

from juxing.feed.reads import FeedReads
from juxing.kit.auth import TOKEN_TOUCH_AFTER, optional_user, token_is_live
from juxing.kit.security import hash_token
from juxing.kit.time import utcnow


def fast_viewer(
    reads: FeedReads,
    request: Request,
    touch: Callable[[int], None],
    remember: Callable[..., None] | None = None,
) -> int | None:
    """The caller's user id when a valid bearer token says so; None: ask ``slow_viewer``.

    ``touch(token_id)`` records a use that is due (every ``TOKEN_TOUCH_AFTER``);
    ``remember(token_hash, row, touched=, read_at=)`` is told of every valid token (the fast
    path's token cache; ``read_at``: monotonic time before its row was read)."""
    header = request.headers.get("authorization")
    if not header:
        return None
    scheme, _, raw = header.partition(" ")
    raw = raw.strip()
    if scheme.lower() != "bearer" or not raw:
        return None
    token_hash = hash_token(raw)
    read_at = time.monotonic()
    row = reads.token(token_hash)
    now = utcnow()
    if row is None or not row.user_active or not token_is_live(row.revoked_at, row.expires_at, now):
        return None
    due = row.last_used_at is None or now - row.last_used_at > TOKEN_TOUCH_AFTER
    if due:
        touch(row.token_id)
    if remember is not None:
        remember(token_hash, row, touched=due, read_at=read_at)
    return row.user_id


def slow_viewer(request: Request, session: Session) -> int | None:
    """The kit's answer: the user id, None when signed out, or the kit's 401."""
    user = optional_user(request, session)
    return user.id if user else None
