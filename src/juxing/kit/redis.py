"""The optional Redis connection (production profile)."""

from __future__ import annotations

import redis


def make_redis(url: str) -> redis.Redis:
    """A Redis client with bounded timeouts, decoding nothing (values are bytes)."""
    return redis.Redis.from_url(
        url, socket_timeout=5, socket_connect_timeout=5, health_check_interval=30
    )
