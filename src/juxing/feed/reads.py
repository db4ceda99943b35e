"""The feed's per-request reads, as plain SQL on a DB-API connection.

A feed request needs the caller's token row, the shopper's latest events and whom the shopper
follows: three indexed statements, run on the driver (``Database.dbapi_connection``) without an ORM
unit of work, statement building or result typing, which would cost more than the indexed
lookups themselves. Datetimes arrive as text on SQLite (the naive UTC text ``UTCDateTime``
stores) and as aware datetimes on PostgreSQL; ``_utc`` reads both.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from juxing.feed.events import RECENT_EVENTS
from juxing.models.accounts import ApiToken, User
from juxing.models.content import Follow
from juxing.models.events import BehaviorEvent


@dataclass(frozen=True)
class TokenRow:
    """A bearer token's row and its user's ``is_active``."""

    token_id: int
    user_id: int
    revoked_at: datetime | None
    expires_at: datetime | None
    last_used_at: datetime | None
    user_active: bool


@dataclass(frozen=True)
class Shopper:
    """What one feed request knows of the shopper: latest events (newest first, as
    ``(action, target type, target id)``) and follows (``(target kind, target id)``)."""

    user_id: int | None
    recent: list[tuple[str, str, int]]
    follows: list[tuple[str, int]]


ANONYMOUS = Shopper(None, [], [])


def _sql(mark: str) -> tuple[str, str, str]:
    # Only constant table names are interpolated; every value is a bound parameter.
    token = (
        "SELECT t.id, t.user_id, t.revoked_at, t.expires_at, t.last_used_at, u.is_active "  # noqa: S608
        f"FROM {ApiToken.__tablename__} t JOIN {User.__tablename__} u ON u.id = t.user_id "
        f"WHERE t.token_hash = {mark}"
    )
    # A range scan of the (user_id, occurred_at) index, newest first.
    events = (
        "SELECT action, target_type, target_id "  # noqa: S608
        f"FROM {BehaviorEvent.__tablename__} WHERE user_id = {mark} AND source = 'app' "
        f"ORDER BY occurred_at DESC, id DESC LIMIT {RECENT_EVENTS}"
    )
    follows = (
        f"SELECT target_kind, target_id FROM {Follow.__tablename__} "  # noqa: S608
        f"WHERE follower_id = {mark}"
    )
    return token, events, follows


# The rows of several tokens: "= {in}" becomes "IN (<one mark per hash>)".
_TOKENS_SQL = (
    "SELECT t.token_hash, t.id, t.user_id, t.revoked_at, t.expires_at, t.last_used_at, "  # noqa: S608
    f"u.is_active FROM {ApiToken.__tablename__} t "
    f"JOIN {User.__tablename__} u ON u.id = t.user_id WHERE t.token_hash = {{in}}"
)

_STATEMENTS = {"qmark": _sql("?"), "format": _sql("%s"), "pyformat": _sql("%s")}


def _utc(value: Any) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class FeedReads:
    """The feed's statements on one DB-API connection (one request's)."""

    def __init__(self, conn: Any, paramstyle: str) -> None:
        self.conn = conn
        self.token_sql, self.events_sql, self.follows_sql = _STATEMENTS[paramstyle]
        self._qmark = paramstyle == "qmark"
        self.tokens_sql = _TOKENS_SQL

    def token(self, token_hash: str) -> TokenRow | None:
        cur = self.conn.cursor()
        try:
            cur.execute(self.token_sql, (token_hash,))
            row = cur.fetchone()
        finally:
            cur.close()
        if row is None:
            return None
        tid, uid, revoked, expires, used, active = row
        return TokenRow(int(tid), int(uid), _utc(revoked), _utc(expires), _utc(used), bool(active))

    def tokens(self, token_hashes: list[str]) -> dict[str, TokenRow]:
        """Several tokens' rows by hash (the fast path's token cache re-reads them)."""
        out: dict[str, TokenRow] = {}
        mark = "?" if self._qmark else "%s"
        cur = self.conn.cursor()
        try:
            for start in range(0, len(token_hashes), 500):
                chunk = token_hashes[start : start + 500]
                marks = ",".join([mark] * len(chunk))
                sql = self.tokens_sql.replace("= {in}", f"IN ({marks})")
                cur.execute(sql, tuple(chunk))
                for h, tid, uid, revoked, expires, used, active in cur.fetchall():
                    out[h] = TokenRow(
                        int(tid), int(uid), _utc(revoked), _utc(expires), _utc(used), bool(active)
                    )
        finally:
            cur.close()
        return out

    def shopper(self, user_id: int | None) -> Shopper:
        """The shopper's latest events and follows (nothing for a signed-out caller)."""
        if user_id is None:
            return ANONYMOUS
        cur = self.conn.cursor()
        try:
            cur.execute(self.events_sql, (user_id,))
            recent = cur.fetchall()
            cur.execute(self.follows_sql, (user_id,))
            follows = cur.fetchall()
        finally:
            cur.close()
        return Shopper(user_id, recent, follows)
