"""Crash test: buyers hammer a running ``juxing serve`` on PostgreSQL + Redis while the server
is killed with SIGKILL several times and restarted. Afterwards the invariants hold and every
order acknowledged to a client (a 201) is in the database."""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from juxing.deals.reconcile import check_item, reconcile_redis
from juxing.deals.stock import redis_keys
from juxing.kit.redis import make_redis
from juxing.kit.security import hash_token
from juxing.kit.time import utcnow
from juxing.models.accounts import ApiToken, Role
from juxing.models.orders import Order, OrderLine

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.redis]
JUXING = Path(sys.executable).parent / "juxing"


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start(env: dict[str, str], log: Path) -> subprocess.Popen:
    with log.open("ab") as err:
        proc = subprocess.Popen(
            [str(JUXING), "serve"], env=env, stdout=subprocess.DEVNULL, stderr=err
        )
    deadline = time.monotonic() + 240  # a shared, loaded machine starts slowly
    while time.monotonic() < deadline:
        try:
            if (
                httpx.get(f"http://127.0.0.1:{env['JUXING_PORT']}/healthz", timeout=1).status_code
                == 200
            ):
                return proc
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.kill()
    proc.wait()
    raise RuntimeError("server did not start: " + log.read_text()[-2000:])


def test_sigkill_while_buying(committed_db, database_url, redis_url, builders, tmp_path):
    if not database_url.startswith("postgresql"):
        pytest.skip("the crash test runs on PostgreSQL (JUXING_TEST_DATABASE_URL)")
    build_world, make_user = builders
    db = committed_db
    stock, limit = 400, 2
    with db.session() as s:
        world = build_world(
            s, stock=stock, per_user_limit=limit, backend="redis", with_headers=False
        )
        tokens = []
        for _ in range(150):
            u = make_user(s, Role.SHOPPER)
            raw = f"jx_crash_{u.id}_{os.urandom(8).hex()}"
            s.add(
                ApiToken(
                    user_id=u.id,
                    name="crash",
                    token_hash=hash_token(raw),
                    hint=raw[:10],
                    created_at=utcnow(),
                    last_used_at=utcnow(),
                )
            )
            tokens.append(raw)
    client = make_redis(redis_url)
    client.delete(*redis_keys(world.deal_item_id))
    port = _port()
    env = {
        **os.environ,
        "JUXING_DATABASE_URL": database_url,
        "JUXING_REDIS_URL": redis_url,
        "JUXING_PORT": str(port),
        "JUXING_HOST": "127.0.0.1",
        "JUXING_WORKERS": "1",
        "JUXING_INPROCESS_JOBS": "false",
        "JUXING_RATE_LIMITS_ENABLED": "false",
        "JUXING_STOCK_BACKEND": "redis",
        "JUXING_DATA_DIR": str(tmp_path),
        "JUXING_LOG_LEVEL": "WARNING",
    }
    log = tmp_path / "server.log"
    acknowledged: list[int] = []
    paid: list[int] = []
    lock = threading.Lock()
    stop = threading.Event()

    def buyer(seed: int) -> None:
        rng = random.Random(seed)
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
            while not stop.is_set():
                token = rng.choice(tokens)
                h = {"Authorization": f"Bearer {token}"}
                try:
                    r = http.post(
                        "/api/v1/orders",
                        headers=h,
                        json={"deal_item_id": world.deal_item_id, "quantity": 1},
                    )
                    if r.status_code != 201:
                        time.sleep(0.01)
                        continue
                    order_id = r.json()["id"]
                    with lock:
                        acknowledged.append(order_id)
                    if rng.random() < 0.5:
                        p = http.post(f"/api/v1/orders/{order_id}/pay", headers=h)
                        if p.status_code == 201:
                            s = http.post(
                                f"/api/v1/payments/{p.json()['id']}/simulate", headers=h, json={}
                            )
                            if s.status_code == 200 and s.json()["outcomes"] == ["paid"]:
                                with lock:
                                    paid.append(order_id)
                    elif rng.random() < 0.3:
                        http.post(f"/api/v1/orders/{order_id}/cancel", headers=h)
                except httpx.HTTPError:
                    time.sleep(0.05)  # the server is down: retry

    proc = _start(env, log)
    threads = [threading.Thread(target=buyer, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    kills = 0
    try:
        for _ in range(4):
            time.sleep(random.uniform(1.5, 3.0))
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            kills += 1
            proc = _start(env, log)
        time.sleep(2)
    finally:
        stop.set()
        for t in threads:
            t.join()
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
    assert kills == 4 and len(acknowledged) > 20, (kills, len(acknowledged))
    with db.session() as s:
        # the reconciliation job after the restarts
        reconcile_redis(session=s, redis_client=client)
    with db.session() as s:
        report = check_item(session=s, deal_item_id=world.deal_item_id, redis_client=client)
        assert report["ok"], {k: report[k] for k in ("live", "expected", "details")}
        live = report["live"]
        assert sum(live.values()) == stock and min(live.values()) >= 0
        found = set(s.scalars(select(Order.id).where(Order.id.in_(acknowledged))).all())
        assert found == set(acknowledged), "an acknowledged order is missing"
        statuses = (
            dict(s.execute(select(Order.id, Order.status).where(Order.id.in_(paid))).all())
            if paid
            else {}
        )
        assert all(v == "paid" for v in statuses.values())
        per_user = s.execute(
            select(Order.shopper_id, func.sum(OrderLine.quantity))
            .join(OrderLine, OrderLine.order_id == Order.id)
            .where(OrderLine.deal_item_id == world.deal_item_id, Order.status != "cancelled")
            .group_by(Order.shopper_id)
        ).all()
        assert all(q <= limit for _sid, q in per_user)
    client.close()
