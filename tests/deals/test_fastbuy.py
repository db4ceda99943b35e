"""The buy endpoint's fast path and group commit (deals/fastbuy.py, deals/flash.py): the
same answers as the regular route, every rule of a group checked per buy, the invariants
with groups placed concurrently with single buys, cancels and payments, and over HTTP."""

from __future__ import annotations

import json
import random
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select, text, update

from factories import bearer, fresh_window
from juxing.app import create_app
from juxing.deals import fastbuy, flash, orders
from juxing.deals.reconcile import check_item
from juxing.deals.schemas import OrderOut
from juxing.deals.stock import redis_keys
from juxing.kit.errors import JuxingError
from juxing.kit.ratelimit import LimitRule, RateLimiter
from juxing.kit.redis import make_redis
from juxing.kit.security import hash_token
from juxing.kit.time import utcnow
from juxing.models.accounts import Role
from juxing.models.deals import DealHolding, DealItem
from juxing.models.orders import Order, OrderLine


def _buy(client, headers, item_id, quantity=1, **extra):
    return client.post(
        "/api/v1/orders",
        json={"deal_item_id": item_id, "quantity": quantity, **extra},
        headers=headers,
    )


def _raw_token(headers: dict[str, str]) -> str:
    return headers["Authorization"].split(" ", 1)[1]


def _comparable(response) -> tuple[int, object, object]:
    """Status, body and headers: what must agree between the two paths (ids, times and
    request ids differ). The headers are the middleware stack's (request id, security
    headers), which the fast path adds itself."""
    assert len(response.headers.get("x-request-id", "")) == 32
    headers = sorted(
        (k, v) for k, v in response.headers.items() if k not in {"x-request-id", "content-length"}
    )
    body = response.json()
    if "error" in body:
        details = body["error"].get("details")
        if isinstance(details, dict):  # times of the deal (each path had its own world)
            details = {k: v for k, v in details.items() if k not in {"starts_at", "ends_at"}}
        return response.status_code, (body["error"]["code"], details), headers
    own = {"id", "shopper_id", "merchant_id", "created_at", "expires_at"}
    order = {k: v for k, v in body.items() if k not in own}
    ids = {"id", "sku_id", "deal_item_id", "product_id"}
    order["lines"] = [{k: v for k, v in ln.items() if k not in ids} for ln in body["lines"]]
    return response.status_code, order, headers


def _script(client, session, world, shoppers, merchant_headers, not_started, group_deal):
    """One sequence of buys touching every rule; the comparable answers."""
    a, b, c = shoppers
    bad = {"Authorization": "Bearer jx_not_a_token"}
    steps = [
        _buy(client, a, world.deal_item_id, 2),  # placed
        _buy(client, a, world.deal_item_id, 1),  # over the per-user limit (2)
        _buy(client, b, world.deal_item_id, 2),  # 1 left: sold out at the lookup
        _buy(client, b, world.deal_item_id, 1),  # placed, the last one
        _buy(client, c, world.deal_item_id, 1),  # sold out
        _buy(client, bad, world.deal_item_id, 1),  # 401
        _buy(client, merchant_headers, world.deal_item_id, 1),  # 403: not a shopper
        _buy(client, a, 987_654_321, 1),  # 404
        _buy(client, a, world.deal_item_id, 0),  # 422 validation (the regular route's)
        _buy(client, a, not_started.deal_item_id, 1),  # 422 deal_not_started
        _buy(client, a, group_deal.deal_item_id, 1),  # 422 group_required
        _buy(client, a, world.deal_item_id, 3),  # 422 per_user_limit (quantity)
    ]
    return [_comparable(r) for r in steps]


@pytest.fixture
def both_apps(settings, db):
    """The app with its fast paths, and the same app without them, on the test's database."""
    return (
        create_app(settings, db=db),
        create_app(settings.model_copy(update={"fast_paths": False}), db=db),
    )


def test_fast_and_regular_paths_answer_alike(both_apps, session, make_shopper, builders):
    build_world, _make_user = builders
    fast_app, slow_app = both_apps

    answers = []
    for app in (fast_app, slow_app):
        world = build_world(session, stock=3, per_user_limit=2)
        not_started = build_world(session, starts_in_s=3600)
        group_deal = build_world(session, group_size=3, group_window_s=600)
        shoppers = [make_shopper()[1] for _ in range(3)]
        with TestClient(app, raise_server_exceptions=False) as client:
            answers.append(
                _script(
                    client,
                    session,
                    world,
                    shoppers,
                    world.headers["merchant"],
                    not_started,
                    group_deal,
                )
            )
        item = session.scalar(
            select(DealItem)
            .where(DealItem.id == world.deal_item_id)
            .execution_options(populate_existing=True)
        )
        assert (item.available, item.reserved, item.sold) == (0, 3, 0)
    assert answers[0] == answers[1]
    statuses = [status for status, _body, _headers in answers[0]]
    assert statuses == [201, 422, 409, 201, 409, 401, 403, 404, 422, 422, 422, 422]
    assert getattr(fast_app.state, "buy_writer", None) is not None, "the fast path placed them"
    assert getattr(slow_app.state, "buy_writer", None) is None


def test_what_the_fast_path_leaves_to_the_regular_route(client, app, session, world, shopper):
    _user, h = shopper
    # a body that is not JSON, and an unknown field: the regular route's validation errors
    broken = client.post(
        "/api/v1/orders", content=b"{not json", headers={**h, "Content-Type": "application/json"}
    )
    assert broken.status_code == 400 and broken.json()["error"]["code"]
    extra = _buy(client, h, world.deal_item_id, 1, colour="red")
    assert extra.status_code == 422 and extra.json()["error"]["code"] == "validation_error"
    empty_key = _buy(client, {**h, "Idempotency-Key": " "}, world.deal_item_id, 1)
    assert empty_key.status_code == 400 and empty_key.json()["error"]["code"] == "invalid_header"
    assert getattr(app.state, "buy_writer", None) is None
    # a plain one goes the fast way
    plain = _buy(client, h, world.deal_item_id, 1)
    assert plain.status_code == 201, plain.text
    assert getattr(app.state, "buy_writer", None) is not None
    got = client.get(f"/api/v1/orders/{plain.json()['id']}", headers=h).json()
    assert got == plain.json()


def _keyed_script(client, world, shopper_headers, other_headers):
    h, o = shopper_headers, other_headers
    first = _buy(client, {**h, "Idempotency-Key": "k-1"}, world.deal_item_id, 1)
    again = _buy(client, {**h, "Idempotency-Key": "k-1"}, world.deal_item_id, 1)
    reused = _buy(client, {**h, "Idempotency-Key": "k-1"}, world.deal_item_id, 2)
    other = _buy(client, {**o, "Idempotency-Key": "k-1"}, world.deal_item_id, 1)  # own scope
    too_many = _buy(client, {**h, "Idempotency-Key": "k-2"}, world.deal_item_id, 2)  # over limit
    retried = _buy(client, {**h, "Idempotency-Key": "k-2"}, world.deal_item_id, 2)
    assert first.status_code == 201 and again.json() == first.json()
    assert again.headers.get("idempotent-replayed") == "true"
    assert "idempotent-replayed" not in first.headers
    assert "idempotent-replayed" not in retried.headers, "a refused buy stores nothing"
    return [_comparable(r) for r in (first, again, reused, other, too_many, retried)]


def test_idempotency_keys_answer_alike_on_both_paths(both_apps, session, make_shopper, builders):
    build_world, _make_user = builders
    fast_app, slow_app = both_apps

    answers = []
    for app in (fast_app, slow_app):
        world = build_world(session, stock=5, per_user_limit=2)
        with TestClient(app, raise_server_exceptions=False) as client:
            answers.append(_keyed_script(client, world, make_shopper()[1], make_shopper()[1]))
    assert answers[0] == answers[1]
    assert [status for status, _body, _headers in answers[0]] == [201, 201, 422, 201, 422, 422]
    assert getattr(fast_app.state, "buy_writer", None) is not None
    # a key first answered by the regular route is replayed by the fast path, and back
    world = build_world(session, stock=5, per_user_limit=2)
    h = make_shopper()[1]
    with TestClient(slow_app) as slow, TestClient(fast_app) as fast:
        a = _buy(slow, {**h, "Idempotency-Key": "x"}, world.deal_item_id, 1)
        b = _buy(fast, {**h, "Idempotency-Key": "x"}, world.deal_item_id, 1)
        c = _buy(fast, {**h, "Idempotency-Key": "y"}, world.deal_item_id, 1)
        d = _buy(slow, {**h, "Idempotency-Key": "y"}, world.deal_item_id, 1)
    assert a.status_code == b.status_code == c.status_code == d.status_code == 201
    assert b.json() == a.json() and b.headers["idempotent-replayed"] == "true"
    assert d.json() == c.json() and d.headers["idempotent-replayed"] == "true"


def test_the_201_body_is_what_pydantic_writes():
    now = utcnow()
    order = {
        "id": 7,
        "shopper_id": 3,
        "merchant_id": 2,
        "status": "pending_payment",
        "currency": "CNY",
        "subtotal_minor": 11_800,
        "discount_minor": 0,
        "total_minor": 11_800,
        "refunded_minor": 0,
        "coupon_claim_id": None,
        "group_id": None,
        "visitor_id": "v1",
        "reservation_token": None,
        "created_at": now,
        "updated_at": now,
        "expires_at": now + timedelta(minutes=15),
    }
    line = {
        "id": 9,
        "order_id": 7,
        "sku_id": 1,
        "deal_item_id": 4,
        "product_id": 5,
        "title": "Star Lamp 星光灯 · Warm white",
        "quantity": 2,
        "unit_price_minor": 5_900,
        "amount_minor": 11_800,
        "refunded_minor": 0,
        "refunded_quantity": 0,
        "restocked_quantity": 0,
    }
    expected = OrderOut.model_validate(
        {
            **order,
            "paid_at": None,
            "shipped_at": None,
            "received_at": None,
            "cancelled_at": None,
            "cancel_reason": None,
            "lines": [line],
        }
    ).model_dump_json()
    assert flash.order_json(flash.Placed(order, line)) == expected.encode()


@pytest.mark.parametrize(
    "title",
    ['Star Lamp 星光灯 · 100% "warm"', "Lamp -1000000000000000005 %d", "\\u0000 \n tab\t"],
)
def test_a_groups_bodies_are_each_orders_own(title):
    """order_bodies renders a group's bodies from one template per item: each must be the
    order's own order_json, whatever the shared text holds (marks' digits, %, escapes)."""
    now = utcnow()

    def placed(i, item, quantity):
        price = 590 + item
        order = {
            "id": i,
            "shopper_id": 100 + i,
            "merchant_id": item,
            "status": "pending_payment",
            "currency": "CNY",
            "subtotal_minor": price * quantity,
            "discount_minor": 0,
            "total_minor": price * quantity,
            "refunded_minor": 0,
            "coupon_claim_id": None,
            "group_id": None,
            "created_at": now,
            "expires_at": now + timedelta(minutes=15),
        }
        line = {
            "id": 1000 + i,
            "order_id": i,
            "sku_id": item,
            "deal_item_id": item,
            "product_id": item,
            "title": f"{title} {item}",
            "quantity": quantity,
            "unit_price_minor": price,
            "amount_minor": price * quantity,
            "refunded_minor": 0,
            "refunded_quantity": 0,
        }
        return flash.Placed(order, line)

    group = [placed(i, item=1 + i % 2, quantity=1 + i % 3) for i in range(1, 12)]
    bodies = flash.order_bodies(group)
    assert bodies == [flash.order_json(p) for p in group]
    assert len(set(bodies)) == len(group)


def _holdings(session, item_id):
    rows = session.execute(
        select(DealHolding.shopper_id, DealHolding.quantity).where(
            DealHolding.deal_item_id == item_id
        )
    ).all()
    return {shopper: q for shopper, q in rows if q}


def test_a_group_checks_every_buy_in_order(db, session, builders, redis_url_or_none):
    build_world, make_user = builders
    backend = "redis" if redis_url_or_none else "sql"
    redis_client = make_redis(redis_url_or_none) if redis_url_or_none else None
    world = build_world(session, stock=5, per_user_limit=2, backend=backend)
    if redis_client is not None:
        redis_client.delete(*redis_keys(world.deal_item_id))
    a, b, c, d = (make_user(session, Role.SHOPPER) for _ in range(4))
    tokens = {u.id: _raw_token(bearer(session, u)) for u in (a, b, c, d)}
    merchant_token = _raw_token(world.headers["merchant"])
    session.commit()

    def buy(user_token: str, quantity: int = 1, item: int = world.deal_item_id) -> flash.Buy:
        return flash.Buy(token_hash=hash_token(user_token), deal_item_id=item, quantity=quantity)

    group = [
        buy(tokens[a.id]),  # placed
        buy(tokens[a.id]),  # placed (a holds 2)
        buy(tokens[a.id]),  # over the limit
        buy(tokens[b.id], 3),  # more than the limit at once
        buy("jx_unknown"),  # 401
        buy(merchant_token),  # 403
        buy(tokens[b.id], item=123_456_789),  # 404
        buy(tokens[b.id], 2),  # placed (stock 5: 3 left -> 1)
        buy(tokens[c.id], 2),  # sold out at the hot row (1 left), first come first served
        buy(tokens[d.id], 1),  # placed, the last unit
    ]
    s = db.new_session()
    flash.place_buys(
        session=s, ctx=orders.Buying(redis_client=redis_client), buys=group, optimistic=False
    )
    db.end(s, commit=True)
    codes = [b.outcome.code if isinstance(b.outcome, JuxingError) else "placed" for b in group]
    assert codes == [
        "placed",
        "placed",
        "per_user_limit",
        "per_user_limit",
        "invalid_token",
        "role_required",
        "not_found",
        "placed",
        "sold_out",
        "placed",
    ]
    placed = [b.outcome for b in group if isinstance(b.outcome, flash.Placed)]
    assert len({p.order["id"] for p in placed}) == 4
    rows = session.execute(
        select(Order.id, Order.shopper_id, OrderLine.quantity, Order.reservation_token)
        .join(OrderLine, OrderLine.order_id == Order.id)
        .where(OrderLine.deal_item_id == world.deal_item_id)
    ).all()
    assert {r.id: (r.shopper_id, r.quantity) for r in rows} == {
        p.order["id"]: (p.order["shopper_id"], p.line["quantity"]) for p in placed
    }
    assert all((r.reservation_token is not None) == (backend == "redis") for r in rows)
    report = check_item(session=session, deal_item_id=world.deal_item_id, redis_client=redis_client)
    assert report["ok"], report
    assert report["live"] == {"available": 0, "reserved": 5, "sold": 0}
    if backend == "sql":
        assert _holdings(session, world.deal_item_id) == {a.id: 2, b.id: 2, d.id: 1}


def test_one_key_twice_in_a_group(db, session, builders):
    build_world, make_user = builders
    world = build_world(session, stock=5, per_user_limit=2)
    user = make_user(session, Role.SHOPPER)
    token = hash_token(_raw_token(bearer(session, user)))
    session.commit()

    def keyed(key: str) -> flash.Buy:
        return flash.Buy(
            token_hash=token,
            deal_item_id=world.deal_item_id,
            quantity=1,
            idempotency_key=key,
            request_hash="h",
        )

    group = [keyed("same"), keyed("same"), keyed("other")]
    s = db.new_session()
    flash.place_buys(session=s, ctx=orders.Buying(redis_client=None), buys=group)
    db.end(s, commit=True)
    codes = [b.outcome.code if isinstance(b.outcome, JuxingError) else "placed" for b in group]
    assert codes == ["placed", "idempotency_in_progress", "placed"]
    again = [keyed("same")]
    s = db.new_session()
    flash.place_buys(session=s, ctx=orders.Buying(redis_client=None), buys=again)
    db.end(s, commit=True)
    assert isinstance(again[0].outcome, flash.Replayed) and again[0].outcome.status == 201
    assert json.loads(again[0].outcome.body)["id"] == group[0].outcome.order["id"]


def test_an_optimistic_group_that_finds_the_stock_gone_is_placed_again(
    db, session, builders, monkeypatch
):
    build_world, make_user = builders
    world = build_world(session, stock=4, per_user_limit=2)
    users = [make_user(session, Role.SHOPPER) for _ in range(3)]
    tokens = [_raw_token(bearer(session, u)) for u in users]
    session.commit()
    ctx = orders.Buying(redis_client=None)
    group = [
        flash.Buy(token_hash=hash_token(t), deal_item_id=world.deal_item_id, quantity=1)
        for t in tokens
    ]
    real_insert = flash._insert

    def insert_while_another_group_takes_stock(s, placed, rows, ctx_, now):
        real_insert(s, placed, rows, ctx_, now)
        s.execute(  # as if another process's group had taken 2 units meanwhile
            update(DealItem)
            .where(DealItem.id == world.deal_item_id)
            .values(available=DealItem.available - 2, reserved=DealItem.reserved + 2)
        )

    monkeypatch.setattr(flash, "_insert", insert_while_another_group_takes_stock)
    s = db.new_session()
    with pytest.raises(flash.StockMoved):
        flash.place_buys(session=s, ctx=ctx, buys=group)
    db.end(s, commit=False)
    monkeypatch.undo()
    # what the writer does next: the same group, the hot row locked first
    s = db.new_session()
    s.execute(
        update(DealItem)
        .where(DealItem.id == world.deal_item_id)
        .values(available=DealItem.available - 2, reserved=DealItem.reserved + 2)
    )
    flash.place_buys(session=s, ctx=ctx, buys=group, optimistic=False)
    db.end(s, commit=True)
    codes = [b.outcome.code if isinstance(b.outcome, JuxingError) else "placed" for b in group]
    assert codes == ["placed", "placed", "sold_out"]
    assert _holdings(session, world.deal_item_id) == {users[0].id: 1, users[1].id: 1}


def test_a_groups_per_user_rate_limit_counts_each_buy_once(
    db, session, builders, redis_url_or_none
):
    """The writer counts a group's buys against the per-user limit in one round trip, in
    the buys' order, and a group placed again (after a rollback) does not count again."""
    build_world, make_user = builders
    world = build_world(session, stock=20, per_user_limit=10)
    a, b = make_user(session, Role.SHOPPER), make_user(session, Role.SHOPPER)
    token_a, token_b = (hash_token(_raw_token(bearer(session, u))) for u in (a, b))
    session.commit()
    client = make_redis(redis_url_or_none) if redis_url_or_none else None
    limiter = RateLimiter(client, prefix=f"juxing:rl:test:group:{time.time_ns()}:")
    rule = LimitRule.parse("2/3600,1000/3600")
    fresh_window(3600)
    ctx = orders.Buying(redis_client=None)

    def buy(token: str) -> flash.Buy:
        return flash.Buy(token_hash=token, deal_item_id=world.deal_item_id, quantity=1)

    group = [buy(token_a), buy(token_b), buy(token_a), buy("jx_unknown"), buy(token_a)]
    s = db.new_session()
    flash.place_buys(session=s, ctx=ctx, buys=group, limiter=(limiter, rule))
    db.end(s, commit=False)  # as a failed group: the writer places it again
    s = db.new_session()
    flash.place_buys(session=s, ctx=ctx, buys=group, limiter=(limiter, rule))
    db.end(s, commit=True)
    codes = [x.outcome.code if isinstance(x.outcome, JuxingError) else "placed" for x in group]
    assert codes == ["placed", "placed", "placed", "invalid_token", "rate_limited"]
    assert group[4].outcome.headers["Retry-After"]
    # counted once each: a's third buy was the 3rd of its window, b has one more
    assert limiter.hit_many([f"buy:u{b.id}"], rule.per_user)[0][0] == 2


@pytest.fixture
def redis_url_or_none(request):
    import os

    return os.environ.get("JUXING_TEST_REDIS_URL") if request.param == "redis" else None


def pytest_generate_tests(metafunc):
    if "redis_url_or_none" in metafunc.fixturenames:
        import os

        params = ["sql"] + (["redis"] if os.environ.get("JUXING_TEST_REDIS_URL") else [])
        metafunc.parametrize("redis_url_or_none", params, indirect=True)


# --- under concurrency, with real commits --------------------------------------------------


def _mixed_traffic(db, ctx, item_id, shoppers, tokens, rounds, threads):
    """Threads placing groups (the fast path's writer) beside single buys, cancels and
    payments of the regular path."""
    acknowledged: list[int] = []
    outcomes: Counter[str] = Counter()
    lock = threading.Lock()
    barrier = threading.Barrier(threads)

    def worker(seed: int) -> None:
        rng = random.Random(seed)
        barrier.wait()
        for _ in range(rounds):
            if seed % 2 == 0:
                group = [
                    flash.Buy(
                        token_hash=hash_token(rng.choice(tokens)),
                        deal_item_id=item_id,
                        quantity=rng.choice([1, 1, 2]),
                    )
                    for _ in range(rng.randint(1, 12))
                ]
                optimistic = True
                while True:
                    s = db.new_session()
                    try:
                        flash.place_buys(session=s, ctx=ctx, buys=group, optimistic=optimistic)
                    except flash.StockMoved:
                        db.end(s, commit=False)
                        optimistic = False
                        continue
                    db.end(s, commit=True)
                    break
                with lock:
                    for b in group:
                        if isinstance(b.outcome, flash.Placed):
                            acknowledged.append(b.outcome.order["id"])
                            outcomes["ok"] += 1
                        else:
                            outcomes[b.outcome.code] += 1
                continue
            shopper = rng.choice(shoppers)
            try:
                with db.session() as s:
                    order_id = orders.reserve(
                        session=s, ctx=ctx, shopper=shopper, deal_item_id=item_id, quantity=1
                    ).id
                with lock:
                    acknowledged.append(order_id)
                    outcomes["ok"] += 1
                with db.session() as s:
                    if rng.random() < 0.5:
                        orders.mark_paid(session=s, ctx=ctx, order_id=order_id)
                    else:
                        orders.cancel(session=s, ctx=ctx, order_id=order_id, reason="test")
            except JuxingError as exc:
                with lock:
                    outcomes[exc.code] += 1

    pool = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    return acknowledged, outcomes


@pytest.mark.parametrize("backend", ["sql", "redis"])
def test_groups_beside_single_buys_keep_the_invariants(committed_db, builders, backend):
    import os

    redis_url = os.environ.get("JUXING_TEST_REDIS_URL")
    if backend == "redis" and not redis_url:
        pytest.skip("JUXING_TEST_REDIS_URL is not set")
    redis_client = make_redis(redis_url) if backend == "redis" else None
    build, make = builders
    db = committed_db
    with db.session() as s:
        world = build(s, stock=60, per_user_limit=3, backend=backend, with_headers=False)
        shoppers = [make(s, Role.SHOPPER) for _ in range(14)]
        tokens = [_raw_token(bearer(s, u)) for u in shoppers]
        s.expunge_all()
    if redis_client is not None:
        redis_client.delete(*redis_keys(world.deal_item_id))
    ctx = orders.Buying(redis_client=redis_client)
    acked, outcomes = _mixed_traffic(
        db, ctx, world.deal_item_id, shoppers, tokens, rounds=10, threads=6
    )
    assert outcomes["ok"] > 0 and outcomes["sold_out"] + outcomes["per_user_limit"] > 0
    with db.session() as s:
        report = check_item(session=s, deal_item_id=world.deal_item_id, redis_client=redis_client)
        assert report["ok"], {k: report[k] for k in ("live", "expected", "details")}
        assert min(report["live"].values()) >= 0
        assert report["details"]["max_holding"] <= 3
        assert set(s.scalars(select(Order.id).where(Order.id.in_(acked)))) == set(acked)
        per_user = s.execute(
            select(Order.shopper_id, func.sum(OrderLine.quantity))
            .join(OrderLine, OrderLine.order_id == Order.id)
            .where(OrderLine.deal_item_id == world.deal_item_id, Order.status != "cancelled")
            .group_by(Order.shopper_id)
        ).all()
        assert all(q <= 3 for _sid, q in per_user)


def test_many_clients_over_http(committed_db, builders, settings, live_server):
    """A real server: parallel clients (several from one shopper) buy one hot item through
    the fast path; every 201 is an order, nobody is over the limit, nothing oversold."""
    build, make = builders
    db = committed_db
    backend = "redis" if settings.redis_url else "sql"
    with db.session() as s:
        world = build(s, stock=50, per_user_limit=2, backend=backend, with_headers=False)
        shoppers = [make(s, Role.SHOPPER) for _ in range(30)]
        headers = [bearer(s, u) for u in shoppers]
    if settings.redis_url:
        make_redis(settings.redis_url).delete(*redis_keys(world.deal_item_id))
    app = create_app(settings, db=db)
    base = live_server(app)

    def attempt(i: int) -> tuple[int, dict]:
        with httpx.Client(base_url=base, timeout=30) as client:
            r = client.post(
                "/api/v1/orders",
                json={"deal_item_id": world.deal_item_id, "quantity": 1},
                headers=headers[i % len(headers)],
            )
            return r.status_code, r.json()

    with ThreadPoolExecutor(max_workers=24) as pool:
        results = list(pool.map(attempt, range(120)))
    statuses = Counter(status for status, _ in results)
    assert set(statuses) <= {201, 409, 422}, statuses
    assert statuses[201] == 50, statuses
    acked = [body["id"] for status, body in results if status == 201]
    with db.session() as s:
        assert set(s.scalars(select(Order.id).where(Order.id.in_(acked)))) == set(acked)
        report = check_item(
            session=s,
            deal_item_id=world.deal_item_id,
            redis_client=make_redis(settings.redis_url) if settings.redis_url else None,
        )
        assert report["ok"] and report["live"]["available"] == 0
        assert report["details"]["max_holding"] <= 2
        assert s.execute(text("SELECT 1")).scalar() == 1
    assert getattr(app.state, "buy_writer", None) is not None


def test_a_full_buy_queue_answers_503(client, world, shopper, monkeypatch):
    _user, h = shopper
    monkeypatch.setattr(fastbuy, "MAX_QUEUED", 0)
    r = _buy(client, h, world.deal_item_id, 1)
    assert r.status_code == 503 and r.json()["error"]["code"] == "buy_queue_full"
    assert r.headers["retry-after"] == "1"
    monkeypatch.setattr(fastbuy, "MAX_QUEUED", 10)
    assert _buy(client, h, world.deal_item_id, 1).status_code == 201
