"""The feed's fast path (feed/fastfeed.py, feed/pages.py): a kept ranking served on the event
loop is the feed the regular route ranks; events, follows, swaps and revocations reach it."""

from __future__ import annotations

import base64
import json
import time
from datetime import timedelta

import pytest
from sqlalchemy import func, select, update

from factories import record_views
from juxing.feed import service, training
from juxing.feed.engine import FeedEngine, _encode_cursor
from juxing.feed.pages import EventWatch, FeedCache, KnownToken, RankedFeed, TokenCache
from juxing.feed.schemas import FeedPage, PolicyIn
from juxing.kit.time import utcnow
from juxing.models.accounts import ApiToken, Role, User
from juxing.models.feed import FeedImpression

FEED = "/api/v1/feed"
HIT = "X-Feed-Cache"


def _events(session, user_id: int, product_ids: list[int], tag: str, *, hours: float = 5) -> None:
    record_views(session, user_id, product_ids, tag, utcnow() - timedelta(hours=hours))


def _walks(session, world) -> None:
    """Other shoppers' walks through the catalog, for the model to learn transitions."""
    n = len(world.products)
    for u in range(30):
        ids = [world.products[(u + s) % n].id for s in range(5)]
        _events(session, 700_000 + u, ids, f"walk{u}")


@pytest.fixture
def served(kit, session, db, tmp_path, app):
    """A trained world with the default long-tail policy active, and the app serving it
    through a serving-style (background) engine whose loop the test turns by hand."""
    world = kit.build(session)
    _walks(session, world)
    shopper, auth = kit.user(session)
    kit.follow(session, shopper, "creator", world.creators[1].id)
    _events(session, shopper.id, [p.id for p in world.products[:3]], "me", hours=1)
    service.ensure_default_policy(session=session)
    session.flush()
    training.train(db, tmp_path)
    engine = FeedEngine(db, tmp_path, background=True)  # threads not started
    engine.refresh(force=True)
    engine.watch_events()  # the first look notes the newest event id
    app.state.feed_engine = engine
    return world, shopper, auth, engine


def _page(response) -> dict:
    assert response.status_code == 200, response.text
    data = response.json()
    data.pop("feed_id")
    return data


def _seed(cursor: str) -> int:
    raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
    return int(json.loads(raw)["s"])


def test_the_fast_path_serves_the_regular_routes_ranking(served, client, session):
    _world, shopper, auth, engine = served
    first = client.get(FEED, headers=auth)
    assert HIT not in first.headers  # nothing kept yet: the regular route ranked it
    again = client.get(FEED, headers=auth)
    assert again.headers[HIT] == "hit"
    got = again.json()
    FeedPage.model_validate(got)
    assert got["feed_id"] != first.json()["feed_id"]
    assert _page(again) == _page(first)
    page = _page(again)
    assert page["policy"] == "longtail" and page["next_cursor"]
    codes = {i["reason_code"] for i in page["items"]}
    assert {"because_you_viewed", "follow"} <= codes, codes
    assert any(i["boosts"] for i in page["items"])  # the policy's quotas placed some
    # The same ranking computed afresh by the regular code for that seed.
    seed = _seed(page["next_cursor"])
    expected = engine.feed_payload(
        session,
        user_id=shopper.id,
        limit=20,
        cursor=_encode_cursor(0, seed),
        log_impressions=False,
    )
    expected.pop("feed_id")
    assert page == expected
    # The next page: ranked further by the regular route once, then kept.
    cursor = page["next_cursor"]
    second = client.get(FEED, params={"cursor": cursor}, headers=auth)
    assert HIT not in second.headers
    second_again = client.get(FEED, params={"cursor": cursor}, headers=auth)
    assert second_again.headers[HIT] == "hit"
    assert _page(second_again) == _page(second)
    expected2 = engine.feed_payload(
        session, user_id=shopper.id, limit=20, cursor=cursor, log_impressions=False
    )
    expected2.pop("feed_id")
    assert _page(second) == expected2
    keys = [i["key"] for i in page["items"] + _page(second)["items"]]
    assert len(keys) == len(set(keys))  # no item twice across the pages
    # The first page is still served from the (extended) kept ranking.
    third = client.get(FEED, headers=auth)
    assert third.headers[HIT] == "hit" and _page(third) == page
    # Other limits are rendered from the same ranking.
    ten = client.get(FEED, params={"limit": 10}, headers=auth)
    assert ten.headers[HIT] == "hit"
    assert _page(ten)["items"] == page["items"][:10]


def test_signed_out_callers_get_the_kept_cold_start_feed(served, client):
    first = client.get(FEED)
    second = client.get(FEED)
    assert HIT not in first.headers and second.headers[HIT] == "hit"
    assert _page(first) == _page(second)
    assert not any(i["reason_code"] == "because_you_viewed" for i in _page(second)["items"])


def test_fast_path_pages_are_logged_as_impressions(served, client, session, db):
    _world, shopper, auth, engine = served
    client.get(FEED, headers=auth)
    before = engine.impressions.pending
    hit = client.get(FEED, headers=auth)
    assert hit.headers[HIT] == "hit"
    assert engine.impressions.pending == before + 1
    engine.impressions.flush(db)
    rows = session.execute(
        select(FeedImpression.item_id, FeedImpression.position, FeedImpression.user_id).where(
            FeedImpression.feed_id == hit.json()["feed_id"]
        )
    ).all()
    assert len(rows) == len(hit.json()["items"])
    assert {r.user_id for r in rows} == {shopper.id}
    assert sorted(r.position for r in rows) == list(range(len(rows)))


def test_a_new_event_drops_the_kept_feed(served, client, session):
    world, _shopper, auth, engine = served
    client.get(FEED, headers=auth)
    assert client.get(FEED, headers=auth).headers[HIT] == "hit"
    target = world.products[20]  # on the walks: the model knows what follows it
    r = client.post(
        "/api/v1/events",
        json={
            "events": [
                {
                    "client_event_id": "fresh-view",
                    "action": "cart",
                    "target_type": "product",
                    "target_id": target.id,
                }
            ]
        },
        headers=auth,
    )
    assert r.status_code == 200, r.text
    assert engine.watch_events() == 1  # what the background thread does every 0.25 s
    after = client.get(FEED, headers=auth)
    assert HIT not in after.headers
    reasons = {i["reason"] for i in _page(after)["items"]}
    assert f"because you added to cart {target.title}" in reasons, reasons
    # Another shopper's event leaves this shopper's kept feed alone.
    assert client.get(FEED, headers=auth).headers[HIT] == "hit"
    _events(session, 123_456, [target.id], "other", hours=0)
    assert engine.watch_events() == 0
    assert client.get(FEED, headers=auth).headers[HIT] == "hit"


def test_policy_change_and_model_swap_reach_served_feeds(served, client, session, db, tmp_path):
    _world, _shopper, auth, engine = served
    client.get(FEED, headers=auth)
    assert client.get(FEED, headers=auth).headers[HIT] == "hit"
    operator = session.scalar(select(User).limit(1))
    assert operator is not None
    service.create_policy(
        session=session,
        data=PolicyIn.model_validate(
            {
                "name": "no-quotas",
                "rules": {"longtail_share": 0, "new_creator_share": 0},
                "activate": True,
            }
        ),
        operator=operator,
    )
    session.flush()
    engine.refresh(force=True)
    after = client.get(FEED, headers=auth)
    assert HIT not in after.headers and _page(after)["policy"] == "no-quotas"
    assert client.get(FEED, headers=auth).headers[HIT] == "hit"
    old_version = _page(after)["model_version"]
    result = training.train(db, tmp_path)
    engine.refresh(force=True)
    swapped = client.get(FEED, headers=auth)
    assert HIT not in swapped.headers
    assert _page(swapped)["model_version"] == result.version != old_version


def test_follows_drop_the_kept_feed_in_this_process(served, client, session):
    from juxing.content.events import Followed, Unfollowed
    from juxing.kit.signals import publish

    world, shopper, auth, _engine = served
    client.get(FEED, headers=auth)
    assert client.get(FEED, headers=auth).headers[HIT] == "hit"
    publish(session, Unfollowed(follower_id=shopper.id, target_kind="creator", target_id=1))
    assert HIT not in client.get(FEED, headers=auth).headers
    assert client.get(FEED, headers=auth).headers[HIT] == "hit"
    publish(session, Followed(shopper.id, "creator", world.creators[2].id))
    assert HIT not in client.get(FEED, headers=auth).headers


def test_what_the_fast_path_leaves_to_the_regular_route(served, client, session):
    _world, _shopper, auth, _engine = served
    client.get(FEED, headers=auth)
    assert client.get(FEED, headers=auth).headers[HIT] == "hit"
    for params in ({"limit": "20", "extra": "1"}, {"limit": "020"}):
        r = client.get(FEED, params=params, headers=auth)
        assert r.status_code == 200 and HIT not in r.headers
    assert client.get(FEED, params={"limit": 0}, headers=auth).status_code == 422
    assert client.get(FEED, params={"limit": 51}, headers=auth).status_code == 422
    bad = client.get(FEED, params={"cursor": "nope"}, headers=auth)
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_cursor"
    assert client.get(FEED, headers={"Authorization": "Bearer nope"}).status_code == 401
    assert client.get(FEED, headers={"Authorization": "Basic abc"}).status_code == 401
    # A cursor of another ranking (another seed) is ranked by the regular route.
    other = _encode_cursor(20, 99)
    r = client.get(FEED, params={"cursor": other}, headers=auth)
    assert r.status_code == 200 and HIT not in r.headers


def test_session_cookie_callers_take_the_regular_route(served, client, session):
    _world, _shopper, _auth, _engine = served
    client.get(FEED)
    assert client.get(FEED).headers[HIT] == "hit"
    # Any request carrying the session cookie (even an unreadable one, which the session
    # middleware reads as signed out) is the session layer's: the regular route answers.
    client.cookies.set("juxing_session", "tampered")
    r = client.get(FEED)
    assert r.status_code == 200 and HIT not in r.headers
    client.cookies.clear()
    from factories import PASSWORD, make_user

    user = make_user(session, Role.SHOPPER)
    login = client.post("/api/v1/auth/login", json={"email": user.email, "password": PASSWORD})
    assert login.status_code == 200, login.text
    for _ in range(2):  # a signed-in cookie session: never the kept signed-out feed
        r = client.get(FEED)
        assert r.status_code == 200 and HIT not in r.headers


def test_a_revoked_token_stops_at_its_next_recheck(served, client, session):
    _world, shopper, auth, engine = served
    client.get(FEED, headers=auth)
    assert client.get(FEED, headers=auth).headers[HIT] == "hit"
    session.execute(
        update(ApiToken).where(ApiToken.user_id == shopper.id).values(revoked_at=utcnow())
    )
    session.flush()
    # Trusted for TOKEN_TTL_S after its row was read; re-read when less than
    # TOKEN_RECHECK_S is left (here: made due at once).
    assert engine.recheck_tokens(force=True) == 0
    for known in engine.tokens._tokens.values():
        known.trusted_until = time.monotonic() + 1
    assert engine.recheck_tokens(force=True) == 1
    r = client.get(FEED, headers=auth)
    assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_token"


def test_a_disabled_account_or_expired_token_stops_too(served, client, session, kit):
    _world, _shopper, _auth, engine = served
    other, auth2 = kit.user(session, Role.SHOPPER)
    client.get(FEED, headers=auth2)
    assert client.get(FEED, headers=auth2).headers[HIT] == "hit"
    session.execute(update(User).where(User.id == other.id).values(is_active=False))
    session.flush()
    for known in engine.tokens._tokens.values():
        known.trusted_until = time.monotonic() + 1
    engine.recheck_tokens(force=True)
    assert client.get(FEED, headers=auth2).status_code == 401
    third, auth3 = kit.user(session, Role.SHOPPER)
    client.get(FEED, headers=auth3)
    for known in engine.tokens._tokens.values():
        if known.user_id == third.id:
            known.expires_at = time.time() - 1  # the token's own expiry, seen at once
    session.execute(
        update(ApiToken)
        .where(ApiToken.user_id == third.id)
        .values(expires_at=utcnow() - timedelta(seconds=1))
    )
    session.flush()
    assert client.get(FEED, headers=auth3).status_code == 401


def test_a_token_revoked_through_the_api_stops_at_the_commit(served, client):
    _world, _shopper, auth, engine = served
    client.get(FEED, headers=auth)
    assert client.get(FEED, headers=auth).headers[HIT] == "hit"
    token_id = client.get("/api/v1/auth/tokens", headers=auth).json()[0]["id"]
    assert client.delete(f"/api/v1/auth/tokens/{token_id}", headers=auth).status_code == 200
    assert not engine.tokens._tokens  # dropped when the revoke committed, no re-read needed
    r = client.get(FEED, headers=auth)
    assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_token"


def test_an_account_disabled_through_the_api_stops_at_the_commit(served, client, session, kit):
    _world, _shopper, _auth, engine = served
    shopper, auth = kit.user(session, Role.SHOPPER)
    _op, op_auth = kit.user(session, Role.OPERATOR)
    client.get(FEED, headers=auth)
    assert client.get(FEED, headers=auth).headers[HIT] == "hit"
    r = client.patch(
        f"/api/v1/accounts/users/{shopper.id}", json={"is_active": False}, headers=op_auth
    )
    assert r.status_code == 200 and r.json()["is_active"] is False, r.text
    assert all(k.user_id != shopper.id for k in engine.tokens._tokens.values())
    r = client.get(FEED, headers=auth)
    assert r.status_code == 401 and r.json()["error"]["code"] == "account_disabled"
    assert client.get(FEED, headers=op_auth).status_code == 200  # the operator's own token


def test_a_token_read_before_its_revocation_is_not_trusted_again():
    tokens = TokenCache()

    def known(user_id: int) -> KnownToken:
        return KnownToken(user_id, 1, 0.0, float("inf"), time.monotonic() + 10)

    read_at = time.monotonic()  # a request reads the row (still live) ...
    tokens.revoke(["h1"], [7], time.monotonic())  # ... the revocation commits ...
    assert not tokens.put("h1", known(1), read_at=read_at)  # ... the late store is refused
    assert not tokens.put("h2", known(7), read_at=read_at)  # the disabled account's too
    assert tokens.put("h3", known(8), read_at=read_at)
    assert tokens.put("h1", known(1), read_at=time.monotonic())  # a read after it: its answer
    assert tokens.revoke([], [8], time.monotonic()) == 1 and tokens.get("h3", 0.0) is None


def test_a_revocation_reaches_another_process_through_redis(
    served, client, settings, db, redis_url
):
    """Two app instances sharing Redis: one revokes, the other's fast path stops trusting the
    token at its background thread's next turn (``watch_revocations``, every 0.25 s)."""
    from fastapi.testclient import TestClient

    from juxing.app import create_app
    from juxing.feed import engine as feed_engine
    from juxing.kit.redis import make_redis

    _world, _shopper, auth, engine = served
    # ``engine`` stands for another process: revocations committed here do not reach it
    # in memory, only through Redis.
    feed_engine._live_engines.discard(engine)
    engine.redis = make_redis(redis_url)
    try:
        assert engine.watch_revocations() == 0  # the first look notes the newest entry
        client.get(FEED, headers=auth)
        assert client.get(FEED, headers=auth).headers[HIT] == "hit"
        other = create_app(settings, db=db)
        assert other.state.redis is not None
        with TestClient(other, raise_server_exceptions=False) as revoker:
            token_id = revoker.get("/api/v1/auth/tokens", headers=auth).json()[0]["id"]
            r = revoker.delete(f"/api/v1/auth/tokens/{token_id}", headers=auth)
            assert r.status_code == 200, r.text
        assert client.get(FEED, headers=auth).headers[HIT] == "hit"  # not read yet
        assert engine.watch_revocations() == 1
        r = client.get(FEED, headers=auth)
        assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_token"
        assert engine.watch_revocations() == 0  # each entry is read once
    finally:
        engine.redis.close()
        engine.redis = None


def test_a_ranking_read_before_an_invalidation_is_not_kept():
    cache = FeedCache(max_feeds=2)
    gen = (1, "v", None)

    def feed(user: int, seed: int = 7, n: int = 3) -> RankedFeed:
        return RankedFeed(user, gen, seed, list(range(n)), False, time.monotonic() + 60, None,
                          None, "v")  # fmt: skip

    read_at = time.monotonic()
    cache.invalidate({1}, time.monotonic())  # an event arrived after the reads
    assert not cache.put(feed(1), read_at=read_at)
    assert cache.put(feed(1), read_at=time.monotonic())
    assert cache.get(1, gen, time.monotonic()) is not None
    assert cache.get(1, (2, "v", None), time.monotonic()) is None  # another generation
    assert not cache.put(feed(1, n=2), read_at=time.monotonic())  # covers fewer positions
    assert cache.put(feed(1, n=5), read_at=time.monotonic())  # the same ranking, longer
    cache.put(feed(2), read_at=time.monotonic())
    cache.put(feed(3), read_at=time.monotonic())
    assert len(cache) == 2 and cache.get(1, gen, time.monotonic()) is None  # LRU


def test_the_event_watch_reports_late_commits_with_lookback(db, session):
    """On PostgreSQL an event id can become visible after a higher one: the watch re-reads
    the last seconds of ids and reports each event once."""
    from juxing.models.events import BehaviorEvent

    paramstyle = db.engine.dialect.paramstyle
    with db.dbapi_connection() as conn:
        watch = EventWatch(paramstyle, lookback=True)
        _events(session, 5_001, [1], "a")
        assert watch.poll(conn, 100.0) == set()  # the first look notes the newest id
        newest = session.scalar(select(func.max(BehaviorEvent.id)))
        assert newest is not None
        _events(session, 5_002, [1], "b")
        session.execute(  # a second event, committed late under a lower id
            update(BehaviorEvent)
            .where(BehaviorEvent.client_event_id == "b-0")
            .values(id=newest + 10)
        )
        _events(session, 5_003, [1], "c")
        session.flush()
        assert watch.poll(conn, 100.5) == {5_002, 5_003}

        def event_with_id(event_id: int, user_id: int) -> None:
            session.execute(
                BehaviorEvent.__table__.insert().values(
                    id=event_id,
                    source="app",
                    user_id=user_id,
                    action="view",
                    target_type="product",
                    target_id=1,
                    client_event_id=f"id{event_id}",
                    occurred_at=utcnow(),
                    received_at=utcnow(),
                )
            )
            session.flush()

        event_with_id(newest + 5, 5_004)
        assert watch.poll(conn, 101.0) == {5_004}  # seen although below the last mark
        assert watch.poll(conn, 101.5) == set()  # each event once
        assert watch.poll(conn, 105.0) == set()  # later looks forget what is far behind
        plain = EventWatch(paramstyle, lookback=False)  # SQLite: ids commit in order
        plain.poll(conn, 0.0)
        event_with_id(newest + 100, 5_005)
        assert plain.poll(conn, 0.1) == {5_005}
        assert plain.poll(conn, 0.2) == set()


def test_feeds_are_ranked_again_ahead_of_the_next_request(served, client, session):
    """What the background thread does: after an event, a swap, or shortly before a served
    feed expires, the shopper's feed is ranked again before the shopper asks."""
    world, shopper, auth, engine = served
    client.get(FEED, headers=auth)
    assert client.get(FEED, headers=auth).headers[HIT] == "hit"
    target = world.products[20]
    _events(session, shopper.id, [target.id], "ahead", hours=0)
    assert engine.watch_events() == 1
    assert list(engine.feeds.queue) == [shopper.id]
    assert engine.rank_ahead() == 1 and not engine.feeds.queue
    after = client.get(FEED, headers=auth)
    assert after.headers[HIT] == "hit"  # ranked ahead, with the new event
    assert f"because you viewed {target.title}" in {i["reason"] for i in _page(after)["items"]}
    seed = _seed(_page(after)["next_cursor"])
    expected = engine.feed_payload(
        session, user_id=shopper.id, limit=20, cursor=_encode_cursor(0, seed), log_impressions=False
    )
    expected.pop("feed_id")
    assert _page(after) == expected
    # A served feed about to expire is queued (at most one scan a second).
    kept = engine.feeds.get(shopper.id, engine.generation(), time.monotonic())
    assert kept is not None
    kept.expires = time.monotonic() + 1
    engine.feeds._scanned = 0.0
    assert engine.feeds.queue_expiring(time.monotonic()) == 1
    assert engine.rank_ahead() == 1
    renewed = engine.feeds.get(shopper.id, engine.generation(), time.monotonic())
    assert renewed is not None and renewed is not kept and renewed.expires > kept.expires
    # A policy change: the feeds kept are ranked again under the new policy.
    policy = service.active_policy(session=session)
    assert policy is not None
    service.deactivate_policies(session=session)
    session.flush()
    engine.refresh(force=True)
    assert list(engine.feeds.queue) == [shopper.id] and len(engine.feeds) == 0
    engine.rank_ahead()
    swapped = client.get(FEED, headers=auth)
    assert swapped.headers[HIT] == "hit" and _page(swapped)["policy"] is None
