"""Rate limits per user and per client IP, in process and in Redis."""

from __future__ import annotations

import socket
import time

import pytest
from fastapi import APIRouter, Depends, FastAPI
from fastapi.testclient import TestClient

from factories import PASSWORD, fresh_window, make_user, make_user_with_auth
from juxing.app import create_app
from juxing.config import Settings
from juxing.kit.auth import CurrentUser
from juxing.kit.ratelimit import (
    Limit,
    LimitRule,
    RateLimiter,
    configured_rules,
    rate_limit,
)
from juxing.kit.redis import make_redis
from juxing.models.accounts import Role

HOUR = 3600


def _app(settings: Settings, db, **limits: str) -> FastAPI:  # type: ignore[no-untyped-def]
    """The real app with a probe route limited by ``buy`` and the given limits."""
    app = create_app(
        settings.model_copy(update={"rate_limits": limits, "rate_limits_enabled": True}), db=db
    )
    router = APIRouter()

    @router.post("/api/test/buy", dependencies=[Depends(rate_limit("buy"))])
    def buy(user: CurrentUser) -> dict[str, int]:
        return {"user": user.id}

    app.include_router(router)
    return app


# --- parsing and configuration -------------------------------------------------------


def test_rules_parse_per_user_and_per_ip() -> None:
    assert LimitRule.parse("10/60") == LimitRule(Limit(10, 60), Limit(10, 60))
    assert LimitRule.parse("30/10,300/10") == LimitRule(Limit(30, 10), Limit(300, 10))
    assert LimitRule.parse("off") == LimitRule(None, None)
    for bad in ("ten/60", "0/60", "5/0", "5"):
        with pytest.raises(ValueError):
            LimitRule.parse(bad)


def test_env_json_is_merged_over_the_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JUXING_RATE_LIMITS", '{"login": "3/30", "click": "off"}')
    rules = configured_rules(Settings())
    assert rules["login"] == LimitRule(Limit(3, 30), Limit(3, 30))
    assert rules["click"] == LimitRule(None, None)
    assert rules["register"] == LimitRule.parse(
        Settings.model_fields["rate_limits"].default["register"]
    )


def test_an_unknown_limit_name_fails_at_import_time() -> None:
    with pytest.raises(ValueError, match="no rate limit named"):
        rate_limit("no-such-limit")


# --- behaviour through HTTP (in-process counters, or Redis when configured) ------------


def test_login_is_limited_per_ip_with_retry_after(settings: Settings, db, session) -> None:
    user = make_user(session, Role.SHOPPER)
    app = create_app(settings.model_copy(update={"rate_limits": {"login": f"4/{HOUR}"}}), db=db)
    fresh_window(HOUR)
    with TestClient(app) as client:
        codes = [
            client.post(
                "/api/v1/auth/token", json={"email": user.email, "password": "wrong password"}
            ).status_code
            for _ in range(4)
        ]
        assert codes == [401] * 4
        # The cookie login shares the "login" limit: the fifth attempt is refused, even with
        # the right password.
        r = client.post("/api/v1/auth/login", json={"email": user.email, "password": PASSWORD})
    assert r.status_code == 429
    assert r.json()["error"]["code"] == "rate_limited"
    assert r.json()["error"]["details"]["scope"] == "ip"
    assert 1 <= int(r.headers["Retry-After"]) <= HOUR


def test_register_is_limited(settings: Settings, db) -> None:
    app = create_app(settings.model_copy(update={"rate_limits": {"register": f"2/{HOUR}"}}), db=db)
    fresh_window(HOUR)
    with TestClient(app) as client:
        codes = [
            client.post(
                "/api/v1/accounts/register",
                json={"email": f"new{i}@example.test", "password": PASSWORD, "display_name": "N"},
            ).status_code
            for i in range(3)
        ]
    assert codes == [201, 201, 429]


def test_forwarded_for_is_ignored_unless_the_proxy_is_trusted(settings: Settings, db) -> None:
    limits = {"login": f"1/{HOUR}"}
    body = {"email": "nobody@example.test", "password": "wrong password"}
    fresh_window(HOUR)
    untrusted = create_app(settings.model_copy(update={"rate_limits": limits}), db=db)
    with TestClient(untrusted) as client:
        first = client.post("/api/v1/auth/token", json=body, headers={"X-Forwarded-For": "1.1.1.1"})
        spoofed = client.post(
            "/api/v1/auth/token", json=body, headers={"X-Forwarded-For": "2.2.2.2"}
        )
    assert (first.status_code, spoofed.status_code) == (401, 429)

    trusted = create_app(
        settings.model_copy(update={"rate_limits": limits, "trust_forwarded_for": True}), db=db
    )
    with TestClient(trusted) as client:
        codes = [
            client.post(
                "/api/v1/auth/token", json=body, headers={"X-Forwarded-For": f"9.9.9.9, {ip}"}
            ).status_code
            for ip in ("1.1.1.1", "1.1.1.1", "2.2.2.2")
        ]
    # The last hop (added by the trusted proxy) is the client.
    assert codes == [401, 429, 401]


def test_buy_is_limited_per_user_not_across_users(settings: Settings, db, session) -> None:
    _a, auth_a = make_user_with_auth(session, Role.SHOPPER)
    _b, auth_b = make_user_with_auth(session, Role.SHOPPER)
    app = _app(settings, db, buy=f"2/{HOUR},100/{HOUR}")
    fresh_window(HOUR)
    with TestClient(app) as client:
        a = [client.post("/api/test/buy", headers=auth_a).status_code for _ in range(3)]
        b = [client.post("/api/test/buy", headers=auth_b).status_code for _ in range(2)]
        over = client.post("/api/test/buy", headers=auth_a)
    assert a == [200, 200, 429]
    assert b == [200, 200]
    assert over.status_code == 429, over.text
    assert over.json()["error"]["details"]["scope"] == "user"


def test_a_user_with_many_tokens_has_one_budget(settings: Settings, db, session) -> None:
    from factories import bearer

    user = make_user(session, Role.SHOPPER)
    tokens = [bearer(session, user) for _ in range(3)]
    app = _app(settings, db, buy=f"2/{HOUR},100/{HOUR}")
    fresh_window(HOUR)
    with TestClient(app) as client:
        codes = [client.post("/api/test/buy", headers=t).status_code for t in tokens]
    assert codes == [200, 200, 429]


def test_the_switch_turns_limits_off(settings: Settings, db) -> None:
    app = create_app(
        settings.model_copy(
            update={"rate_limits": {"login": f"1/{HOUR}"}, "rate_limits_enabled": False}
        ),
        db=db,
    )
    body = {"email": "nobody@example.test", "password": "wrong password"}
    with TestClient(app) as client:
        codes = {client.post("/api/v1/auth/token", json=body).status_code for _ in range(5)}
    assert codes == {401}


# --- backends ---------------------------------------------------------------------------


def test_local_counters_reset_with_the_window() -> None:
    limiter = RateLimiter(None)
    limit = Limit(2, 10)
    assert [limiter.hit("k", limit, now=100.0)[0] for _ in range(3)] == [1, 2, 3]
    count, left = limiter.hit("k", limit, now=110.5)
    assert (count, left) == (1, 9.5)
    assert limiter.hit("other", limit, now=110.5)[0] == 1


@pytest.mark.redis
def test_redis_counters_are_shared_between_processes(redis_url: str) -> None:
    """Two limiters (as in two API processes) on one Redis count together."""
    prefix = f"juxing:rl:test:shared:{time.time_ns()}:"
    one = RateLimiter(make_redis(redis_url), prefix=prefix)
    two = RateLimiter(make_redis(redis_url), prefix=prefix)
    limit = Limit(3, HOUR)
    fresh_window(HOUR)
    counts = [one.hit("buy:u1", limit)[0], two.hit("buy:u1", limit)[0], one.hit("buy:u1", limit)[0]]
    assert counts == [1, 2, 3]
    ttl = one.redis.ttl(f"{prefix}buy:u1:{HOUR}:{int(time.time()) // HOUR}")  # type: ignore[union-attr]
    assert 0 < ttl <= HOUR + 1
    assert one.local.hit("buy:u1", limit, time.time())[0] == 1  # nothing counted in process


@pytest.mark.redis
def test_two_apps_on_one_redis_share_the_budget(settings: Settings, db, session, redis_url) -> None:
    _user, auth = make_user_with_auth(session, Role.SHOPPER)
    prefix = f"juxing:rl:shared-apps:{time.time_ns()}:"
    apps = []
    for _ in range(2):
        app = _app(
            settings.model_copy(update={"redis_url": redis_url, "env": "development"}),
            db,
            buy=f"3/{HOUR}",
        )
        app.state.rate_limit_prefix = prefix
        apps.append(app)
    fresh_window(HOUR)
    with TestClient(apps[0]) as c0, TestClient(apps[1]) as c1:
        codes = [c.post("/api/test/buy", headers=auth).status_code for c in (c0, c1, c0, c1)]
    assert codes == [200, 200, 200, 429]


def test_redis_down_falls_back_to_counting_in_process() -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens here now
    limiter = RateLimiter(make_redis(f"redis://127.0.0.1:{port}/0"))
    limit = Limit(2, HOUR)
    assert [limiter.hit("login:ip:x", limit)[0] for _ in range(3)] == [1, 2, 3]
    # several at once (the buy writer's group): in order, a key given twice counts twice
    assert [c for c, _left in limiter.hit_many(["buy:u1", "buy:u1", "buy:u2"], limit)] == [1, 2, 1]
