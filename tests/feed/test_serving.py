"""The fast serving path: neighbour lists, the published snapshot, the feed's own token
check, live deal state on festival-deal cards."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
from sqlalchemy import update

from factories import record_views
from juxing.feed import training
from juxing.feed.catalog import snapshot_path
from juxing.feed.engine import FeedEngine
from juxing.feed.neighbours import build_neighbours, load_neighbours
from juxing.kit.time import utcnow
from juxing.models.accounts import ApiToken, User
from juxing.models.catalog import Sku
from juxing.models.deals import Campaign, DealItem, Festival
from juxing.recsys.data import Interactions
from juxing.recsys.pipeline import DEFAULT_MODEL, make_model

FEED = "/api/v1/feed"


def test_neighbour_lists_are_the_models_next_items():
    seqs = [[0, 1, 2, 3], [0, 1, 2, 4], [1, 2, 3, 0], [4, 3, 2, 1], [0, 2, 1, 3]] * 4
    data = Interactions.from_sequences(seqs, 5)
    model = make_model(DEFAULT_MODEL, tune=False).fit(data)
    items, scores = build_neighbours(model, k=3)
    assert items.shape == (5, 3) and scores.shape == (5, 3)
    for j in range(5):
        assert j not in items[j].tolist()  # an item is never its own next item
        assert scores[j, 0] == np.float32(1.0)  # row-normalised, best first
        assert np.all(np.diff(scores[j]) <= 1e-6)
        expected = model.recommend([np.array([j])], 3).items[0]
        assert items[j].tolist() == expected.tolist()


def test_train_writes_neighbours_and_publishes_the_snapshot(kit, session, db, tmp_path):
    world = kit.build(session)
    _buy_walks(session, world)
    session.commit()
    result = training.train(db, tmp_path)
    assert load_neighbours(result.path / "next-item") is not None
    assert snapshot_path(tmp_path).is_file()
    # An API-style (background) engine serves from the published file, not the database.
    engine = FeedEngine(db, tmp_path, background=True)
    engine.refresh(force=True)
    assert engine.snapshot.n_items == len(world.products) + len(world.posts)
    assert engine.model is not None and engine.model.version == result.version
    before = engine.snapshot
    engine.refresh(force=True)
    assert engine.snapshot is before  # same file: not reloaded
    training.publish_snapshot(db, tmp_path)
    path = snapshot_path(tmp_path)
    stamp = path.stat().st_mtime + 5
    import os

    os.utime(path, (stamp, stamp))
    engine.refresh(force=True)
    assert engine.snapshot is not before  # a newer file is swapped in


def test_feed_token_check_answers_like_the_kit(kit, client, session):
    kit.build(session)
    user, auth = kit.user(session)
    assert client.get(FEED, headers=auth).status_code == 200
    assert client.get(FEED, headers=auth).status_code == 200  # fast path (recently used)
    assert client.get(FEED, headers={"Authorization": "Bearer nope"}).status_code == 401
    assert client.get(FEED, headers={"Authorization": "Basic abc"}).status_code == 401
    session.execute(update(ApiToken).where(ApiToken.user_id == user.id).values(revoked_at=utcnow()))
    session.flush()
    revoked = client.get(FEED, headers=auth)
    assert revoked.status_code == 401 and revoked.json()["error"]["code"] == "invalid_token"
    other, auth2 = kit.user(session)
    assert client.get(FEED, headers=auth2).status_code == 200
    session.execute(update(User).where(User.id == other.id).values(is_active=False))
    session.flush()
    assert client.get(FEED, headers=auth2).status_code == 401


def test_festival_deal_cards_carry_live_deal_state(kit, client, session):
    world = kit.build(session)
    now = utcnow()
    festival = Festival(
        name="Double 11",
        slug="d11-feed",
        starts_at=now - timedelta(days=1),
        ends_at=now + timedelta(days=1),
    )
    session.add(festival)
    session.flush()
    product = world.products[-1]
    campaign = Campaign(
        festival_id=festival.id,
        merchant_id=product.merchant_id,
        title="d11",
        status="live",
        starts_at=festival.starts_at,
        ends_at=festival.ends_at,
    )
    session.add(campaign)
    session.flush()
    sku = session.query(Sku).filter(Sku.product_id == product.id).one()
    deal = DealItem(
        campaign_id=campaign.id,
        sku_id=sku.id,
        product_id=product.id,
        merchant_id=product.merchant_id,
        deal_price_minor=499,
        deal_stock=10,
        available=7,
        sold=3,
        starts_at=festival.starts_at,
        ends_at=festival.ends_at,
    )
    session.add(deal)
    session.flush()
    items = client.get(FEED, params={"limit": 50}).json()["items"]
    cards = [i for i in items if i["deal_item_id"] == deal.id]
    assert cards, items
    card = cards[0]
    assert card["reason_code"] == "festival_deal" and card["reason"] == "festival deal"
    assert card["deal_price_minor"] == 499
    assert card["deal"]["status"] == "live" and card["deal"]["stock_left"] == 7
    others = [i for i in items if i["deal_item_id"] is None]
    assert all(i["deal"] is None for i in others)


def _buy_walks(session, world) -> None:
    from juxing.feed.events import insert_new

    now = utcnow()
    rows = []
    for u in range(30):
        for step in range(5):
            p = world.products[(u + step) % len(world.products)]
            rows.append(
                {
                    "source": "app",
                    "user_id": 800_000 + u,
                    "action": "view",
                    "target_type": "product",
                    "target_id": p.id,
                    "category_id": None,
                    "dwell_ms": None,
                    "client_event_id": f"w{u}-{step}",
                    "occurred_at": now - timedelta(hours=5 - step),
                    "received_at": now,
                }
            )
    insert_new(session, rows)
    session.flush()


def test_feed_json_is_the_documented_page(kit, session, db, tmp_path):
    """The endpoint's JSON (assembled from per-item fragments) is the FeedPage that
    ``feed_payload`` builds for the same shopper and cursor, and validates against it."""
    import json

    from juxing.feed.engine import _encode_cursor
    from juxing.feed.schemas import FeedPage

    world = kit.build(session)
    _buy_walks(session, world)
    shopper, _auth = kit.user(session)
    kit.follow(session, shopper, "creator", world.creators[1].id)
    _buy_walks_for(session, shopper.id, world)
    training.train(db, tmp_path)
    engine = FeedEngine(db, tmp_path, background=False)
    engine.start()
    cursor = _encode_cursor(0, 1234)  # the first page, with a fixed seed
    expected = engine.feed_payload(
        session, user_id=shopper.id, limit=20, cursor=cursor, log_impressions=False
    )
    with db.dbapi_connection() as conn:
        who = engine.reads(conn).shopper(shopper.id)
    assert who.recent and who.follows
    got = json.loads(engine.feed_json(who, limit=20, cursor=cursor, log_impressions=False))
    FeedPage.model_validate(got)
    assert got.pop("feed_id") and expected.pop("feed_id")
    assert got == expected
    codes = {i["reason_code"] for i in got["items"]}
    assert {"because_you_viewed", "follow"} <= codes, codes


def test_a_due_token_touch_is_recorded_by_the_feed(kit, client, session):
    kit.build(session)
    user, auth = kit.user(session)
    old = utcnow() - timedelta(hours=1)
    session.execute(update(ApiToken).where(ApiToken.user_id == user.id).values(last_used_at=old))
    session.flush()
    assert client.get(FEED, headers=auth).status_code == 200
    token = session.query(ApiToken).filter(ApiToken.user_id == user.id).one()
    session.refresh(token)
    assert token.last_used_at is not None and token.last_used_at > old + timedelta(minutes=59)
    recorded = token.last_used_at
    assert client.get(FEED, headers=auth).status_code == 200  # used just now: no new write
    session.refresh(token)
    assert token.last_used_at == recorded


def test_impressions_journal_is_replayed_after_a_crash(db, session, tmp_path):
    """Pages journaled by a process that died before writing them are written by the next
    one, once; a live process's journal is left alone."""
    import os

    from sqlalchemy import func, select

    from juxing.feed.impressions import ImpressionLog, recover, shown_text, write_pages
    from juxing.models.feed import FeedImpression

    def count() -> int:
        return session.scalar(select(func.count()).select_from(FeedImpression)) or 0

    folder = tmp_path / "journal"
    shown = shown_text(utcnow())
    pages = [
        (
            f"{n:032x}",
            7,
            None,
            shown,
            0,
            [("product", 1, 2, "trending"), ("post", 3, None, "fresh")],
        )
        for n in range(1, 4)
    ]
    dead = ImpressionLog(folder)
    for page in pages:
        dead.add(page)
    segment = dead._segment
    assert segment is not None and segment.path.is_file()
    before = count()
    assert recover(db, folder) == 0  # locked by its (live) writer: not touched
    assert segment.path.is_file()
    write_pages(db, pages[:1])  # the crash came after the first page's batch committed
    os.close(segment.fd)  # the process dies: its lock goes, the file stays
    assert recover(db, folder) == 4  # pages 2 and 3 (two rows each); page 1 not again
    assert not segment.path.exists()
    assert count() == before + 6
    assert recover(db, folder) == 0
    live = ImpressionLog(folder)
    live.add(pages[0])
    assert live.flush(db) == 2 and live._segment is None and not list(folder.glob("*.jsonl"))


def _buy_walks_for(session, user_id: int, world) -> None:
    ids = [world.products[step].id for step in range(3)]
    record_views(session, user_id, ids, "me", utcnow() - timedelta(minutes=10))


def test_grouped_order_is_lexsort_by_item_then_best_score():
    from juxing.feed.ranking import grouped_order

    rng = np.random.default_rng(5)
    for _ in range(100):
        n = int(rng.integers(1, 600))
        items = rng.integers(-1, 300, n)
        scores = np.round(rng.normal(0, 3, n), 2)  # ties included
        expected = np.lexsort((-scores, items))
        got = grouped_order(items, scores)
        assert (items[got] == items[expected]).all() and (scores[got] == scores[expected]).all()
