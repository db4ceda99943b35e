"""Who is reading the feed: ``kit.auth.optional_user`` with its commonest case made cheap.

The feed is the hottest read of the engine and needs only the caller's id. A valid bearer
token that was used in the last few minutes is resolved by ONE indexed Core query (token
joined to its user); every other case — no header, a cookie session, a malformed, unknown,
revoked or expired token, a disabled account, a token due for its ``last_used_at`` touch —
goes through ``optional_user`` itself, so the answers and errors are exactly the kit's.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy import bindparam, select

from juxing.kit.auth import TOKEN_TOUCH_AFTER, optional_user, token_is_live
from juxing.kit.db import DbSession
from juxing.kit.security import hash_token
from juxing.kit.time import utcnow
from juxing.models.accounts import ApiToken, User

_t, _u = ApiToken.__table__, User.__table__
# Built once: statement construction would cost more than the indexed lookup itself.
_TOKEN = (
    select(_t.c.user_id, _t.c.revoked_at, _t.c.expires_at, _t.c.last_used_at, _u.c.is_active)
    .join(_u, _u.c.id == _t.c.user_id)
    .where(_t.c.token_hash == bindparam("token_hash"))
)


def feed_viewer(request: Request, session: DbSession) -> int | None:
    """The caller's user id, or None when signed out (errors as ``optional_user``'s)."""
    header = request.headers.get("authorization")
    if header:
        scheme, _, raw = header.partition(" ")
        raw = raw.strip()
        if scheme.lower() == "bearer" and raw:
            row = session.execute(_TOKEN, {"token_hash": hash_token(raw)}).first()
            now = utcnow()
            if (
                row is not None
                and row.is_active
                and token_is_live(row.revoked_at, row.expires_at, now)
                # a token due for its last-used touch goes through the kit, which records it
                and row.last_used_at is not None
                and now - row.last_used_at <= TOKEN_TOUCH_AFTER
            ):
                return int(row.user_id)
    user = optional_user(request, session)
    return user.id if user else None


FeedViewer = Annotated[int | None, Depends(feed_viewer)]
