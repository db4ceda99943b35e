"""The feed's fast path in a real ``juxing serve``: an event reaches the next feed within a
second (the background thread's event watch), and a token revoked through the API stops at
once (``kit/revocations.py``)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from sqlalchemy.orm import Session

from juxing.feed import service, training
from juxing.kit.db import Database
from juxing.kit.migrate import upgrade
from juxing.ops.cluster import free_port

pytestmark = pytest.mark.slow

FEED = "/api/v1/feed"
HIT = "X-Feed-Cache"


def _world(url: str, data_dir: Path, kit) -> tuple[str, int, str]:
    """A trained world; returns a shopper's token, a product id the model knows a next item
    of, and that product's title."""
    db = Database(url)
    try:
        with Session(db.engine, expire_on_commit=False) as session:
            world = kit.build(session)
            _shopper, auth = kit.user(session)
            from juxing.feed.events import insert_new
            from juxing.kit.time import utcnow

            now, n = utcnow(), len(world.products)
            rows = [
                {
                    "source": "app",
                    "user_id": 700_000 + u,
                    "action": "view",
                    "target_type": "product",
                    "target_id": world.products[(u + s) % n].id,
                    "category_id": None,
                    "dwell_ms": None,
                    "client_event_id": f"w{u}-{s}",
                    "occurred_at": now,
                    "received_at": now,
                }
                for u in range(30)
                for s in range(5)
            ]
            insert_new(session, rows)
            service.ensure_default_policy(session=session)
            target = world.products[20]
            session.commit()
        training.train(db, data_dir)
    finally:
        db.dispose()
    return auth["Authorization"], target.id, target.title


def test_events_and_revocations_reach_a_serving_process(kit, tmp_path):
    url = f"sqlite:///{tmp_path / 'juxing.db'}"
    upgrade(url)
    authorization, product_id, title = _world(url, tmp_path, kit)
    port = free_port()
    env = {
        **os.environ,
        "JUXING_DATA_DIR": str(tmp_path),
        "JUXING_DATABASE_URL": url,
        "JUXING_INPROCESS_JOBS": "false",
        "JUXING_RATE_LIMITS_ENABLED": "false",
        "JUXING_LOG_LEVEL": "WARNING",
    }
    env.pop("JUXING_REDIS_URL", None)
    juxing = Path(sys.executable).parent / "juxing"
    log = (tmp_path / "server.log").open("wb")
    proc = subprocess.Popen(
        [str(juxing), "serve", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    headers = {"Authorization": authorization}
    try:
        with httpx.Client(base_url=base, timeout=10) as http:
            deadline = time.monotonic() + 60
            while True:
                try:
                    if http.get("/healthz").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline, (tmp_path / "server.log").read_text()
                time.sleep(0.1)
            first = http.get(FEED, headers=headers)
            assert first.status_code == 200 and HIT not in first.headers
            second = http.get(FEED, headers=headers)
            assert second.headers.get(HIT) == "hit"
            posted = http.post(
                "/api/v1/events",
                json={
                    "events": [
                        {
                            "client_event_id": "cart-1",
                            "action": "cart",
                            "target_type": "product",
                            "target_id": product_id,
                        }
                    ]
                },
                headers=headers,
            )
            assert posted.status_code == 200, posted.text
            t0 = time.monotonic()
            reason = f"because you added to cart {title}"
            while True:
                page = http.get(FEED, headers=headers)
                assert page.status_code == 200
                if reason in {i["reason"] for i in page.json()["items"]}:
                    break
                assert time.monotonic() - t0 < 1.0, "the event did not reach the feed in 1 s"
                time.sleep(0.02)
            assert http.get(FEED, headers=headers).headers.get(HIT) == "hit"
            # Revoke the token through the API: the process that committed it stops
            # trusting it at once.
            tokens = http.get("/api/v1/auth/tokens", headers=headers).json()
            assert len(tokens) == 1
            revoked = http.delete(f"/api/v1/auth/tokens/{tokens[0]['id']}", headers=headers)
            assert revoked.status_code in (200, 204), revoked.text
            assert http.get(FEED, headers=headers).status_code == 401
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        log.close()
