"""Refund requests on a database that really commits: parallel approvals of one request
refund once; parallel requests for one order leave one open; the Redis stock backend gets the
refund through the same path; after an approved request `juxing ledger check` is clean."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections import Counter
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import selectinload

from factories import bearer
from juxing.app import create_app
from juxing.deals import orders, refund_requests
from juxing.deals.payments import provider_for
from juxing.deals.reconcile import check_item
from juxing.deals.stock import redis_keys
from juxing.kit.errors import JuxingError
from juxing.kit.redis import make_redis
from juxing.models.accounts import Role, User
from juxing.models.orders import Order, Refund
from juxing.models.refund_requests import RefundRequest

PROVIDER = provider_for("simulated", secret="refund-concurrency")


def _user(session, user_id: int) -> User:
    return session.scalar(select(User).where(User.id == user_id).options(selectinload(User.roles)))


def _paid_order(db, builders, ctx, *, backend="sql", quantity=2):
    build_world, make_user = builders
    with db.session() as s:
        world = build_world(s, stock=10, per_user_limit=3, backend=backend, with_headers=False)
        shopper = make_user(s, Role.SHOPPER)
        ids = (world.deal_item_id, world.merchant_user.id, shopper.id)
    item_id, merchant_id, shopper_id = ids
    if ctx.redis_client is not None:
        ctx.redis_client.delete(*redis_keys(item_id))
    with db.session() as s:
        order = orders.reserve(
            session=s,
            ctx=ctx,
            shopper=_user(s, shopper_id),
            deal_item_id=item_id,
            quantity=quantity,
        )
        order_id = order.id
    with db.session() as s:
        assert orders.mark_paid(session=s, ctx=ctx, order_id=order_id)
    return item_id, merchant_id, shopper_id, order_id


def _parallel(n, fn):
    """Run ``fn`` in ``n`` threads released together; returns their outcomes."""
    barrier = threading.Barrier(n)
    outcomes: Counter[str] = Counter()
    lock = threading.Lock()

    def worker() -> None:
        barrier.wait()
        try:
            fn()
            result = "ok"
        except JuxingError as exc:
            result = exc.code
        with lock:
            outcomes[result] += 1

    pool = [threading.Thread(target=worker) for _ in range(n)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    return outcomes


def test_parallel_approvals_refund_once(committed_db, builders):
    db = committed_db
    ctx = orders.Buying(redis_client=None)
    item_id, merchant_id, shopper_id, order_id = _paid_order(db, builders, ctx)
    with db.session() as s:
        request_id = refund_requests.create(
            session=s, user=_user(s, shopper_id), order_id=order_id, reason="damaged"
        ).id

    def approve() -> None:
        with db.session() as s:
            refund_requests.approve(
                session=s,
                ctx=ctx,
                provider=PROVIDER,
                request_id=request_id,
                user=_user(s, merchant_id),
            )

    outcomes = _parallel(6, approve)
    assert outcomes == Counter({"ok": 1, "refund_request_not_open": 5}), outcomes
    with db.session() as s:
        assert s.scalar(select(func.count()).where(Refund.order_id == order_id)) == 1
        order = s.get(Order, order_id)
        assert order.status == "refunded" and order.refunded_minor == 2 * 5_900
        assert check_item(session=s, deal_item_id=item_id, redis_client=None)["ok"]


def test_parallel_requests_leave_one_open(committed_db, builders):
    db = committed_db
    ctx = orders.Buying(redis_client=None)
    _item_id, _merchant_id, shopper_id, order_id = _paid_order(db, builders, ctx)

    def ask() -> None:
        with db.session() as s:
            refund_requests.create(
                session=s, user=_user(s, shopper_id), order_id=order_id, reason="other"
            )

    outcomes = _parallel(6, ask)
    assert outcomes == Counter({"ok": 1, "refund_request_open": 5}), outcomes
    with db.session() as s:
        statuses = s.scalars(
            select(RefundRequest.status).where(RefundRequest.order_id == order_id)
        ).all()
        assert statuses == ["open"]


@pytest.mark.redis
def test_approval_on_the_redis_backend(committed_db, builders, redis_url):
    client = make_redis(redis_url)
    try:
        db = committed_db
        ctx = orders.Buying(redis_client=client)
        item_id, merchant_id, shopper_id, order_id = _paid_order(db, builders, ctx, backend="redis")
        with db.session() as s:
            request_id = refund_requests.create(
                session=s, user=_user(s, shopper_id), order_id=order_id, reason="wrong_item"
            ).id
        with db.session() as s:
            refund_requests.approve(
                session=s,
                ctx=ctx,
                provider=PROVIDER,
                request_id=request_id,
                user=_user(s, merchant_id),
            )
        with db.session() as s:
            report = check_item(session=s, deal_item_id=item_id, redis_client=client)
            assert report["ok"], report
            live = client.hgetall(redis_keys(item_id)[0])
            assert sum(int(v) for v in live.values()) == 10
            assert report["live"]["available"] == 10, "restocked by the item's policy"
    finally:
        client.close()


def test_ledger_check_is_clean_after_an_approved_request(
    committed_db, builders, settings, database_url
):
    """A creator's commission on the order is clawed back, and the real command says so."""
    build_world, make_user = builders
    with committed_db.session() as s:
        w = build_world(s, stock=10, per_user_limit=3, with_headers=False)
        shopper_h = bearer(s, make_user(s, Role.SHOPPER))
        creator_h = bearer(s, make_user(s, Role.CREATOR))
        merchant_h = bearer(s, _user(s, w.merchant_user.id))
    app = create_app(settings, db=committed_db)
    with TestClient(app) as client:
        link = client.post(
            "/api/v1/commission/links",
            json={"target_type": "deal_item", "target_id": w.deal_item_id},
            headers=creator_h,
        ).json()
        client.get(f"/t/{link['token']}", follow_redirects=False)
        order = client.post(
            "/api/v1/orders",
            json={"deal_item_id": w.deal_item_id, "quantity": 2},
            headers=shopper_h,
        ).json()
        pay = client.post(f"/api/v1/orders/{order['id']}/pay", headers=shopper_h).json()
        client.post(
            f"/api/v1/payments/{pay['id']}/simulate",
            json={"outcome": "succeeded", "deliver": "now"},
            headers=shopper_h,
        )
        line = order["lines"][0]["id"]
        req = client.post(
            f"/api/v1/orders/{order['id']}/refund-requests",
            json={"reason": "damaged", "lines": [{"order_line_id": line, "quantity": 1}]},
            headers=shopper_h,
        ).json()
        approved = client.post(f"/api/v1/refund-requests/{req['id']}/approve", headers=merchant_h)
        assert approved.status_code == 200, approved.text
    with committed_db.session() as s:
        assert s.scalar(select(func.count()).where(Refund.order_id == order["id"])) == 1
    env = {**os.environ, "JUXING_DATABASE_URL": database_url, "JUXING_ENV": "development"}
    juxing = Path(sys.executable).with_name("juxing")
    done = subprocess.run(
        [str(juxing), "ledger", "check", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert done.returncode == 0 and report["ok"], report
    assert report["checked_entries"] > 0
