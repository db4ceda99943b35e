"""Rate limits per user and per client IP, as a one-line dependency.

Usage on an endpoint::

    @router.post("/auth/login", dependencies=[Depends(rate_limit("login"))])

Limits are configured by name in ``Settings.rate_limits`` (``JUXING_RATE_LIMITS`` as JSON,
merged over the defaults): ``"N/S"`` allows N requests per S seconds for each user and for
each client IP; ``"N/S,M/T"`` sets the per-user and the per-IP limit apart; ``"off"``
disables one name. ``JUXING_RATE_LIMITS_ENABLED=false`` turns every limit off (benchmarks).

Windows are fixed (aligned to multiples of S seconds). With Redis configured the counters
live in Redis (one atomic script per check) and are shared by every API process; without
Redis (the embedded single-process default) they are counted in the process. When Redis
does not answer, the limiter falls back to the in-process counters rather than failing the
request: limits then hold per process until Redis is back.

A request over a limit gets 429 ``rate_limited`` in the error envelope with ``Retry-After``.
"""

from __future__ import annotations

import logging
import math
import secrets
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import redis
from fastapi import Request
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from juxing.config import Settings
from juxing.kit.auth import SESSION_USER_KEY
from juxing.kit.db import DbSession
from juxing.kit.errors import RateLimited
from juxing.kit.security import hash_token
from juxing.models.accounts import ApiToken

log = logging.getLogger("juxing.ratelimit")

KEY_PREFIX = "juxing:rl:"
_build_lock = threading.Lock()

# KEYS[1] = counter key; ARGV[1] = window seconds. Returns the count after this request.
_INCR_SCRIPT = """
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
return n
"""


@dataclass(frozen=True)
class Limit:
    """At most ``count`` requests per ``window_s`` seconds."""

    count: int
    window_s: int

    @classmethod
    def parse(cls, text: str) -> Limit:
        """Parse ``"N/S"``."""
        count, _, window = text.strip().partition("/")
        limit = cls(int(count), int(window))
        if limit.count < 1 or limit.window_s < 1:
            raise ValueError(f"rate limit {text!r}: both numbers must be positive")
        return limit


@dataclass(frozen=True)
class LimitRule:
    """The per-user and per-IP limits of one name; ``None`` means unlimited."""

    per_user: Limit | None
    per_ip: Limit | None

    @classmethod
    def parse(cls, text: str) -> LimitRule:
        """Parse ``"N/S"``, ``"N/S,M/T"`` or ``"off"``."""
        if text.strip().lower() in {"off", "none", ""}:
            return cls(None, None)
        user_text, _, ip_text = text.partition(",")
        per_user = Limit.parse(user_text)
        return cls(per_user, Limit.parse(ip_text) if ip_text.strip() else per_user)


def configured_rules(settings: Settings) -> dict[str, LimitRule]:
    """Every configured limit, the settings' values merged over the defaults."""
    defaults: dict[str, str] = Settings.model_fields["rate_limits"].default
    return {
        name: LimitRule.parse(text) for name, text in {**defaults, **settings.rate_limits}.items()
    }


class LocalCounters:
    """Fixed-window counters in this process (the embedded default, or Redis is down)."""

    max_keys = 100_000

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[str, tuple[int, int]] = {}  # key -> (window end, count)

    def hit(self, key: str, limit: Limit, now: float) -> tuple[int, float]:
        """Count one request; return (count in this window, seconds until it ends)."""
        window_end = (int(now) // limit.window_s + 1) * limit.window_s
        with self._lock:
            end, count = self._counts.get(key, (window_end, 0))
            if end != window_end:
                end, count = window_end, 0
            count += 1
            self._counts[key] = (end, count)
            if len(self._counts) > self.max_keys:
                self._prune(now)
        return count, window_end - now

    def _prune(self, now: float) -> None:
        self._counts = {k: v for k, v in self._counts.items() if v[0] > now}


class RateLimiter:
    """Counts requests against limits, in Redis when available, else in the process."""

    def __init__(self, redis_client: redis.Redis | None, *, prefix: str = KEY_PREFIX) -> None:
        self.redis = redis_client
        self.prefix = prefix
        self.local = LocalCounters()
        self._script: Any = redis_client.register_script(_INCR_SCRIPT) if redis_client else None

    def hit(self, key: str, limit: Limit, now: float | None = None) -> tuple[int, float]:
        """Count one request under ``key``; return (count so far, seconds left in window)."""
        now = time.time() if now is None else now
        if self._script is not None:
            window = int(now) // limit.window_s
            window_end = (window + 1) * limit.window_s
            redis_key = self._redis_key(key, limit, window)
            try:
                count = int(self._script(keys=[redis_key], args=[limit.window_s + 1]))
                return count, window_end - now
            except redis.exceptions.RedisError as exc:
                log.warning("rate limiter: Redis unavailable (%s); counting in process", exc)
        return self.local.hit(key, limit, now)

    def hit_many(
        self, keys: list[str], limit: Limit, now: float | None = None
    ) -> list[tuple[int, float]]:
        """``hit`` for several requests in one round trip (a key given twice counts twice)."""
        now = time.time() if now is None else now
        if self._script is not None and self.redis is not None and keys:
            window = int(now) // limit.window_s
            window_end = (window + 1) * limit.window_s
            try:
                pipe = self.redis.pipeline(transaction=False)
                for key in keys:
                    redis_key = self._redis_key(key, limit, window)
                    self._script(keys=[redis_key], args=[limit.window_s + 1], client=pipe)
                return [(int(count), window_end - now) for count in pipe.execute()]
            except redis.exceptions.RedisError as exc:
                log.warning("rate limiter: Redis unavailable (%s); counting in process", exc)
        return [self.local.hit(key, limit, now) for key in keys]

    def _redis_key(self, key: str, limit: Limit, window: int) -> str:
        """The Redis counter of ``key`` in fixed window number ``window`` of ``limit``."""
        return f"{self.prefix}{key}:{limit.window_s}:{window}"

    def check(self, key: str, limit: Limit, *, name: str, scope: str) -> None:
        """Count one request and raise 429 when it is over ``limit``."""
        count, left = self.hit(key, limit)
        refusal = over_limit(count, left, limit, name=name, scope=scope)
        if refusal is not None:
            raise refusal


def over_limit(
    count: int, left: float, limit: Limit, *, name: str, scope: str
) -> RateLimited | None:
    """The 429 for the ``count``-th request of a window with ``left`` seconds to go, if
    that is over ``limit``."""
    if count <= limit.count:
        return None
    retry_after = max(1, math.ceil(left))
    return RateLimited(
        "Too many requests; slow down and retry later.",
        details={
            "limit": name,
            "scope": scope,
            "max_requests": limit.count,
            "window_s": limit.window_s,
            "retry_after_s": retry_after,
        },
        headers={"Retry-After": str(retry_after)},
    )


def limiter_for(request: Request) -> RateLimiter:
    """The app's limiter, built on first use (``app.state.rate_limiter``)."""
    state = request.app.state
    limiter: RateLimiter | None = getattr(state, "rate_limiter", None)
    if limiter is not None:
        return limiter
    with _build_lock:
        limiter = getattr(state, "rate_limiter", None)
        if limiter is not None:
            return limiter
        prefix = getattr(state, "rate_limit_prefix", KEY_PREFIX)
        if state.settings.env == "test":
            # Test apps share one Redis; each counts apart so tests cannot throttle each other.
            prefix = f"{prefix}test:{secrets.token_hex(6)}:"
        limiter = RateLimiter(getattr(state, "redis", None), prefix=prefix)
        state.rate_limit_rules = configured_rules(state.settings)
        state.rate_limiter = limiter
    return limiter


def client_ip(request: Request, *, trust_forwarded_for: bool) -> str:
    """The client's address; X-Forwarded-For's last hop only behind a trusted proxy."""
    if trust_forwarded_for:
        forwarded = request.headers.get("x-forwarded-for", "")
        hops = [h.strip() for h in forwarded.split(",") if h.strip()]
        if hops:
            return hops[-1]
    return request.client.host if request.client else "unknown"


def _user_key(request: Request, session: DbSession) -> str | None:
    """Who is asking, without failing: a session's user id, or a bearer token's user id."""
    user = getattr(request.state, "user", None)
    if user is not None:
        return user_key(user.id)
    header = request.headers.get("authorization", "")
    scheme, _, raw = header.partition(" ")
    if scheme.lower() == "bearer" and raw.strip():
        user_id = session.scalar(
            select(ApiToken.user_id).where(ApiToken.token_hash == hash_token(raw.strip()))
        )
        # An unknown token is refused by authentication later; count it by IP only.
        return user_key(user_id) if user_id is not None else None
    if "session" in request.scope:
        uid = request.session.get(SESSION_USER_KEY)
        if uid is not None:
            return user_key(int(uid))
    return None


def check_ip(request: Request, name: str) -> None:
    """Count one request of ``name`` against its per-IP limit (429 when over it)."""
    limiter = limiter_for(request)  # (builds the rules on first use)
    rule: LimitRule = request.app.state.rate_limit_rules[name]
    if rule.per_ip is not None:
        settings: Settings = request.app.state.settings
        ip = client_ip(request, trust_forwarded_for=settings.trust_forwarded_for)
        limiter.check(f"{name}:ip:{ip}", rule.per_ip, name=name, scope="ip")


def check_users(
    limiter: RateLimiter, rule: LimitRule, *, name: str, user_ids: list[int]
) -> list[RateLimited | None]:
    """Count requests of ``name`` by known users against the per-user limit, in one round
    trip and in order: each one's 429, or None."""
    if rule.per_user is None:
        return [None] * len(user_ids)
    keys = [f"{name}:{user_key(user_id)}" for user_id in user_ids]
    return [
        over_limit(count, left, rule.per_user, name=name, scope="user")
        for count, left in limiter.hit_many(keys, rule.per_user)
    ]


def user_key(user_id: int) -> str:
    return f"u{user_id}"


def rate_limit(name: str) -> Callable[..., Awaitable[None]]:
    """A dependency limiting requests under ``name`` per user and per client IP.

    ``name`` must be one of the defaults in ``Settings.rate_limits`` (add yours there).
    """
    if name not in Settings.model_fields["rate_limits"].default:
        raise ValueError(f"no rate limit named {name!r} in Settings.rate_limits")

    async def _dependency(request: Request, session: DbSession) -> None:
        settings: Settings = request.app.state.settings
        if settings.rate_limits_enabled:  # the check may wait on Redis or the database
            await run_in_threadpool(_check, request, session, settings)

    def _check(request: Request, session: DbSession, settings: Settings) -> None:
        check_ip(request, name)
        rule: LimitRule = request.app.state.rate_limit_rules[name]
        if rule.per_user is not None:
            user_key = _user_key(request, session)
            if user_key is not None:
                limiter_for(request).check(
                    f"{name}:{user_key}", rule.per_user, name=name, scope="user"
                )

    _dependency.__name__ = f"rate_limit_{name}"
    return _dependency
