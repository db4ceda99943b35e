"""Revoked credentials, told to whatever trusts a resolved bearer token for a while (the feed's
fast path keeps resolved tokens for ``feed.pages.TOKEN_TTL_S``).

A revoked API token or a disabled account is announced once the revoking transaction commits
(``announce``; before that the revocation is not real and could still roll back):

* in this process, to the listeners (``listen``), at once;
* to the other processes, when Redis is configured, as one entry of the stream
  ``juxing:auth:revoked`` (trimmed to about ``STREAM_MAXLEN`` entries). Each serving process
  reads the stream from where it last read, with one non-blocking ``XREAD`` per turn of its
  background thread (``RevocationWatch``, every quarter second): nothing on a request's path.
  A stream, not pub/sub: an entry written while a reader was briefly disconnected is read
  when it reconnects.

Without Redis there is one serving process, and the first bullet is all. If an announcement
is lost (Redis down), the token cache's own bound still holds: a token's row is re-read
within ``TOKEN_TTL_S``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import redis
from sqlalchemy import event as orm_event
from sqlalchemy.orm import Session

log = logging.getLogger("juxing.auth")

STREAM = "juxing:auth:revoked"
STREAM_MAXLEN = 10_000
READ_COUNT = 1_000


@dataclass(frozen=True)
class Revoked:
    """API tokens revoked (by their stored hash) and accounts disabled (by user id)."""

    token_hashes: tuple[str, ...] = ()
    user_ids: tuple[int, ...] = ()


Listener = Callable[[Revoked], None]
_listeners: list[Listener] = []


def listen(fn: Listener) -> Listener:
    """Call ``fn`` with every revocation committed in this process (or read from Redis by a
    ``RevocationWatch`` whose owner passes it on)."""
    if fn not in _listeners:
        _listeners.append(fn)
    return fn


def deliver(revoked: Revoked) -> None:
    """Tell this process's listeners."""
    for fn in list(_listeners):
        try:
            fn(revoked)
        except Exception:  # a listener's failure must not fail the committed request
            log.exception("a revocation listener failed")


def announce(session: Session, revoked: Revoked, *, redis_client: Any = None) -> None:
    """Once ``session`` commits: tell this process's listeners and, with Redis, every other
    process (a Redis failure is logged, not raised: the revocation is committed)."""

    def committed(_session: Session) -> None:
        deliver(revoked)
        if redis_client is None:
            return
        try:
            redis_client.xadd(STREAM, _fields(revoked), maxlen=STREAM_MAXLEN, approximate=True)
        except redis.RedisError:
            log.warning("could not announce a revocation through Redis; other processes "
                        "stop trusting the token within the token cache's trust")  # fmt: skip

    orm_event.listen(session, "after_commit", committed, once=True)


def _fields(revoked: Revoked) -> dict[str, str]:
    return {
        "t": ",".join(revoked.token_hashes),
        "u": ",".join(str(u) for u in revoked.user_ids),
    }


def _parse(fields: dict[bytes, bytes]) -> Revoked:
    tokens = fields.get(b"t", b"").decode()
    users = fields.get(b"u", b"").decode()
    return Revoked(
        tuple(t for t in tokens.split(",") if t),
        tuple(int(u) for u in users.split(",") if u),
    )


class RevocationWatch:
    """Reads the revocations other processes announced, from where it last read.

    The first look only notes the newest entry (a process that just started trusts no
    token yet); a look that fails leaves the position as it was."""

    def __init__(self) -> None:
        self.last_id: bytes | None = None

    def poll(self, redis_client: Any) -> list[Revoked]:
        if self.last_id is None:
            newest = redis_client.xrevrange(STREAM, count=1)
            self.last_id = newest[0][0] if newest else b"0-0"
            return []
        got = redis_client.xread({STREAM: self.last_id}, count=READ_COUNT)
        out: list[Revoked] = []
        for _stream, entries in got or ():
            for entry_id, fields in entries:
                self.last_id = entry_id
                out.append(_parse(fields))
        return out
