"""The invariants under concurrency: many threads buying one hot deal item at once, with
real commits, on SQLite, PostgreSQL (JUXING_TEST_DATABASE_URL) and Redis
(JUXING_TEST_REDIS_URL): available + reserved + sold == deal stock, nothing negative,
nobody above the per-user limit (also with parallel requests from one shopper), every
acknowledged order present."""

from __future__ import annotations

import random
import threading
from collections import Counter

import pytest
from sqlalchemy import func, select

from juxing.deals import orders
from juxing.deals.reconcile import check_item
from juxing.deals.stock import redis_keys
from juxing.kit.errors import JuxingError
from juxing.kit.redis import make_redis
from juxing.models.accounts import Role
from juxing.models.orders import Order, OrderLine


def _hammer(
    db, ctx, item_id, shoppers, attempts_per_thread, threads, pay_ratio=0.0, at_commit=False
):
    acknowledged: list[int] = []
    outcomes: Counter[str] = Counter()
    lock = threading.Lock()
    barrier = threading.Barrier(threads)

    def worker(seed: int) -> None:
        rng = random.Random(seed)
        barrier.wait()
        for _ in range(attempts_per_thread):
            shopper = rng.choice(shoppers)
            try:
                with db.session() as s:
                    order = orders.reserve(
                        session=s,
                        ctx=ctx,
                        shopper=shopper,
                        deal_item_id=item_id,
                        quantity=rng.choice([1, 1, 2]),
                        take_at_commit=at_commit,
                    )
                    order_id = order.id
                with lock:
                    acknowledged.append(order_id)
                    outcomes["ok"] += 1
                if rng.random() < pay_ratio:
                    with db.session() as s:
                        orders.mark_paid(session=s, ctx=ctx, order_id=order_id)
                elif rng.random() < 0.2:
                    with db.session() as s:
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


def _run(committed_db, redis_client, backend, builders, at_commit=False):
    build_world, make_user = builders
    db = committed_db
    with db.session() as s:
        world = build_world(s, stock=40, per_user_limit=3, backend=backend, with_headers=False)
        shoppers = [make_user(s, Role.SHOPPER) for _ in range(12)]
        s.expunge_all()
    if redis_client is not None:
        redis_client.delete(*redis_keys(world.deal_item_id))
    ctx = orders.Buying(redis_client=redis_client)
    acked, outcomes = _hammer(
        db,
        ctx,
        world.deal_item_id,
        shoppers,
        attempts_per_thread=15,
        threads=8,
        pay_ratio=0.5,
        at_commit=at_commit,
    )
    assert outcomes["ok"] > 0 and outcomes["sold_out"] + outcomes["per_user_limit"] > 0
    with db.session() as s:
        if redis_client is not None:
            live = redis_client.hgetall(redis_keys(world.deal_item_id)[0])
            assert sum(int(v) for v in live.values()) == 40
        report = check_item(session=s, deal_item_id=world.deal_item_id, redis_client=redis_client)
        assert report["ok"], {k: report[k] for k in ("live", "expected", "details")}
        assert min(report["live"].values()) >= 0
        assert report["details"]["max_holding"] <= 3
        # every acknowledged order exists
        found = set(s.scalars(select(Order.id).where(Order.id.in_(acked))).all())
        assert found == set(acked)
        # per-user limit straight from the orders
        per_user = s.execute(
            select(Order.shopper_id, func.sum(OrderLine.quantity))
            .join(OrderLine, OrderLine.order_id == Order.id)
            .where(OrderLine.deal_item_id == world.deal_item_id, Order.status != "cancelled")
            .group_by(Order.shopper_id)
        ).all()
        assert all(q <= 3 for _sid, q in per_user)
    return outcomes


def test_hot_item_sql_backend(committed_db, builders):
    _run(committed_db, None, "sql", builders)


def test_hot_item_sql_backend_stock_taken_at_commit(committed_db, builders):
    """The HTTP buy path: the guarded UPDATE runs inside the commit (on PostgreSQL, in the
    same round trip as COMMIT, committed asynchronously and then waited for)."""
    _run(committed_db, None, "sql", builders, at_commit=True)


@pytest.mark.redis
def test_hot_item_redis_backend(committed_db, builders, redis_url):
    client = make_redis(redis_url)
    try:
        _run(committed_db, client, "redis", builders)
    finally:
        client.close()


def _same_shopper(committed_db, redis_client, backend, builders):
    build_world, make_user = builders
    db = committed_db
    with db.session() as s:
        world = build_world(s, stock=50, per_user_limit=2, backend=backend, with_headers=False)
        shopper = make_user(s, Role.SHOPPER)
        s.expunge_all()
    if redis_client is not None:
        redis_client.delete(*redis_keys(world.deal_item_id))
    ctx = orders.Buying(redis_client=redis_client)
    _acked, outcomes = _hammer(
        db, ctx, world.deal_item_id, [shopper], attempts_per_thread=4, threads=8, at_commit=True
    )
    with db.session() as s:
        held = s.scalar(
            select(func.sum(OrderLine.quantity))
            .join(Order, Order.id == OrderLine.order_id)
            .where(Order.shopper_id == shopper.id, Order.status != "cancelled")
        )
        assert held <= 2
        report = check_item(session=s, deal_item_id=world.deal_item_id, redis_client=redis_client)
        assert report["ok"], {k: report[k] for k in ("live", "expected", "details")}
    assert outcomes["per_user_limit"] > 0


def test_one_shopper_in_parallel_sql(committed_db, builders):
    _same_shopper(committed_db, None, "sql", builders)


@pytest.mark.redis
def test_one_shopper_in_parallel_redis(committed_db, builders, redis_url):
    client = make_redis(redis_url)
    try:
        _same_shopper(committed_db, client, "redis", builders)
    finally:
        client.close()


@pytest.mark.redis
def test_redis_rebuild_during_traffic_and_after_data_loss(committed_db, redis_url, builders):
    """Rebuilding the Redis counters while buyers are active is exact, and after Redis loses
    its data the reconciliation job restores them from SQL."""
    from juxing.deals.reconcile import reconcile_redis, repair_item

    build_world, make_user = builders
    client = make_redis(redis_url)
    db = committed_db
    try:
        with db.session() as s:
            world = build_world(s, stock=60, per_user_limit=4, backend="redis", with_headers=False)
            shoppers = [make_user(s, Role.SHOPPER) for _ in range(20)]
            s.expunge_all()
        client.delete(*redis_keys(world.deal_item_id))
        ctx = orders.Buying(redis_client=client)
        stop = threading.Event()
        rebuilds = 0

        def rebuilder() -> None:
            nonlocal rebuilds
            while not stop.is_set():
                with db.session() as s:
                    if repair_item(session=s, deal_item_id=world.deal_item_id, redis_client=client):
                        rebuilds += 1
                stop.wait(0.01)

        t = threading.Thread(target=rebuilder)
        t.start()
        try:
            _hammer(
                db,
                ctx,
                world.deal_item_id,
                shoppers,
                attempts_per_thread=12,
                threads=6,
                pay_ratio=0.5,
            )
        finally:
            stop.set()
            t.join()
        assert rebuilds >= 2
        with db.session() as s:
            report = check_item(session=s, deal_item_id=world.deal_item_id, redis_client=client)
            assert report["ok"], {k: report[k] for k in ("live", "expected", "details")}
        before = report["live"]
        client.delete(*redis_keys(world.deal_item_id))  # Redis restarted without its data
        with db.session() as s:
            stats = reconcile_redis(session=s, redis_client=client)
        assert stats["rebuilt"] >= 1
        with db.session() as s:
            report = check_item(session=s, deal_item_id=world.deal_item_id, redis_client=client)
        assert report["ok"] and report["live"] == before
    finally:
        client.close()


def _redis_item_with_one_order(db, client, builders):
    """A Redis-backed deal item (stock 5, 2 per shopper) with one committed reservation:
    (world, shopper, buying context, order id)."""
    build_world, make_user = builders
    with db.session() as s:
        world = build_world(s, stock=5, per_user_limit=2, backend="redis", with_headers=False)
        shopper = make_user(s, Role.SHOPPER)
        s.expunge_all()
    client.delete(*redis_keys(world.deal_item_id))
    ctx = orders.Buying(redis_client=client)
    with db.session() as s:
        order_id = orders.reserve(
            session=s, ctx=ctx, shopper=shopper, deal_item_id=world.deal_item_id
        ).id
    return world, shopper, ctx, order_id


def _live(client, item_id: int) -> dict[str, int]:
    """The Redis counters of a deal item."""
    return {k.decode(): int(v) for k, v in client.hgetall(redis_keys(item_id)[0]).items()}


def test_redis_hooks_of_a_rolled_back_savepoint_never_run(committed_db, redis_url, builders):
    """A stock transition made inside a savepoint that rolls back leaves Redis untouched even
    though the outer transaction commits; a reservation taken there is undone."""
    client = make_redis(redis_url)
    db = committed_db
    try:
        world, shopper, ctx, order_id = _redis_item_with_one_order(db, client, builders)

        class Undo(Exception):
            pass

        with db.session() as s:
            with pytest.raises(Undo), s.begin_nested():
                assert orders.mark_paid(session=s, ctx=ctx, order_id=order_id)
                raise Undo
            with pytest.raises(Undo), s.begin_nested():
                orders.reserve(session=s, ctx=ctx, shopper=shopper, deal_item_id=world.deal_item_id)
                raise Undo
        with db.session() as s:
            assert s.get(Order, order_id).status == "pending_payment"
            report = check_item(session=s, deal_item_id=world.deal_item_id, redis_client=client)
        assert report["ok"], {k: report[k] for k in ("live", "expected", "details")}
        assert report["live"] == {"available": 4, "reserved": 1, "sold": 0}
        # the order can still be paid once, for real
        with db.session() as s:
            assert orders.mark_paid(session=s, ctx=ctx, order_id=order_id)
        assert _live(client, world.deal_item_id) == {"available": 4, "reserved": 0, "sold": 1}
    finally:
        client.close()


def test_a_released_savepoint_is_not_the_commit(committed_db, redis_url, builders):
    """SQLAlchemy fires before/after_commit when a savepoint is released: neither an outer
    transition's Redis update nor a reservation's commit check may run then, and if the
    outer transaction then rolls back, Redis ends as it began (the reservation undone)."""
    client = make_redis(redis_url)
    db = committed_db
    try:
        world, shopper, ctx, order_id = _redis_item_with_one_order(db, client, builders)

        def live() -> dict[str, int]:
            return _live(client, world.deal_item_id)

        before = live()
        assert before == {"available": 4, "reserved": 1, "sold": 0}

        class Abort(Exception):
            pass

        with pytest.raises(Abort), db.session() as s:
            assert orders.mark_paid(session=s, ctx=ctx, order_id=order_id)  # sell op hook
            orders.reserve(session=s, ctx=ctx, shopper=shopper, deal_item_id=world.deal_item_id)
            with s.begin_nested():  # e.g. the ledger posting commission in a savepoint
                pass
            assert live() == {"available": 3, "reserved": 2, "sold": 0}, "sell op ran early"
            raise Abort
        assert live() == before
        with db.session() as s:
            assert s.get(Order, order_id).status == "pending_payment"
            report = check_item(session=s, deal_item_id=world.deal_item_id, redis_client=client)
        assert report["ok"], {k: report[k] for k in ("live", "expected", "details")}
    finally:
        client.close()


@pytest.mark.redis
def test_redis_restart_during_a_buy_and_before_a_payment_hook(committed_db, redis_url, builders):
    """Redis loses its data (a restart) while a buy is in flight: the buy is refused before
    it commits (no order that no counter holds). A payment committed while the counters are
    missing is remembered and counted exactly once by the rebuild."""
    from juxing.deals.reconcile import repair_item
    from juxing.kit.errors import ServiceUnavailable

    build_world, make_user = builders
    client = make_redis(redis_url)
    db = committed_db
    try:
        with db.session() as s:
            world = build_world(s, stock=5, per_user_limit=2, backend="redis", with_headers=False)
            shopper = make_user(s, Role.SHOPPER)
            s.expunge_all()
        keys = redis_keys(world.deal_item_id)
        client.delete(*keys)
        ctx = orders.Buying(redis_client=client)
        with db.session() as s:
            paid_id = orders.reserve(
                session=s, ctx=ctx, shopper=shopper, deal_item_id=world.deal_item_id
            ).id
        with pytest.raises(ServiceUnavailable), db.session() as s:
            lost = orders.reserve(
                session=s, ctx=ctx, shopper=shopper, deal_item_id=world.deal_item_id
            )
            lost_id = lost.id
            client.delete(*keys)  # Redis restarted empty before this buy committed
        with db.session() as s:
            assert s.get(Order, lost_id) is None
            assert orders.mark_paid(session=s, ctx=ctx, order_id=paid_id)
        assert not client.exists(keys[0])  # the hook found no counters ...
        assert client.hget(keys[3], f"p:{paid_id}:{world.deal_item_id}") is not None  # ... noted it
        with db.session() as s:
            repair_item(session=s, deal_item_id=world.deal_item_id, redis_client=client)
        with db.session() as s:
            report = check_item(session=s, deal_item_id=world.deal_item_id, redis_client=client)
        assert report["ok"], {k: report[k] for k in ("live", "expected", "details")}
        assert report["live"] == {"available": 4, "reserved": 0, "sold": 1}
    finally:
        client.close()
