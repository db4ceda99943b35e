"""Scale-out: two ``juxing serve`` processes on one PostgreSQL + Redis give the same results
as one. The same rush (more demand than stock, more than the per-user limit) runs against
one process and against both; in each case exactly the deal stock is taken, nobody holds
more than the limit (also when one shopper's parallel requests land on both processes),
every acknowledged order exists once, the paid orders reconcile in the ledger, and both
processes serve the same feed."""

from __future__ import annotations

import os
import random
import threading
import uuid
from collections import Counter
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from juxing.ops.cluster import PAYMENT_SECRET, Cluster, World, fresh_database, seed_world

pytestmark = pytest.mark.slow

ADMIN_URL = os.environ.get("JUXING_TEST_DATABASE_URL", "")
STOCK, LIMIT, SHOPPERS, TRIES = 30, 2, 24, 3

if not ADMIN_URL.startswith("postgresql"):
    pytest.skip("scale-out needs PostgreSQL (JUXING_TEST_DATABASE_URL)", allow_module_level=True)


@pytest.fixture(scope="module")
def cluster_world() -> Any:
    url = fresh_database(ADMIN_URL, "juxing_scaleout")
    cluster = Cluster(
        database_url=url,
        apis=2,
        with_worker=False,
        extra_env={"JUXING_RATE_LIMITS_ENABLED": "false"},
    )
    cluster.start()
    try:
        # Per backend, one item for the single-process rush and one for the two-process rush.
        plan = [(b, STOCK, LIMIT) for b in ("redis", "redis", "sql", "sql")]
        world = seed_world(url, items=plan, shoppers=SHOPPERS, creators=1)
        yield cluster, world
    finally:
        cluster.stop()


def _rush(urls: list[str], world: World, item_id: int) -> tuple[dict[int, int], Counter[str]]:
    """Every shopper tries to buy one unit TRIES times, all at once, round-robin over
    ``urls``; returns (acknowledged order id -> shopper id, outcomes)."""
    acked: dict[int, int] = {}
    outcomes: Counter[str] = Counter()
    lock = threading.Lock()
    # Every shopper first arrives through the creator's tracking link (so paid orders earn
    # commission and post to the ledger).
    with httpx.Client(timeout=60) as http:
        for i, (_sid, token) in enumerate(sorted(world.shopper_tokens.items())):
            r = http.get(
                f"{urls[i % len(urls)]}/t/{world.link_tokens[item_id][0]}",
                headers={"Authorization": f"Bearer {token}"},
            )
            assert r.status_code == 302, r.text
    jobs = [(sid, n) for sid in world.shopper_tokens for n in range(TRIES)]
    random.Random(item_id).shuffle(jobs)
    barrier = threading.Barrier(8)

    def worker(part: list[tuple[int, int]], k: int) -> None:
        with httpx.Client(timeout=60) as http:
            barrier.wait()
            for i, (sid, _n) in enumerate(part):
                url = urls[(k + i) % len(urls)]
                r = http.post(
                    f"{url}/api/v1/orders",
                    json={"deal_item_id": item_id, "quantity": 1},
                    headers={
                        "Authorization": f"Bearer {world.shopper_tokens[sid]}",
                        "Idempotency-Key": uuid.uuid4().hex,
                    },
                )
                with lock:
                    if r.status_code == 201:
                        acked[r.json()["id"]] = sid
                        outcomes["ok"] += 1
                    else:
                        outcomes[r.json()["error"]["code"]] += 1

    threads = [threading.Thread(target=worker, args=(jobs[k::8], k)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return acked, outcomes


def _pay_all(urls: list[str], world: World, acked: dict[int, int]) -> None:
    from juxing.deals.payments import SIGNATURE_HEADER, SimulatedProvider

    provider = SimulatedProvider(PAYMENT_SECRET)
    with httpx.Client(timeout=60) as http:
        for i, (oid, sid) in enumerate(sorted(acked.items())):
            url = urls[i % len(urls)]
            auth = {"Authorization": f"Bearer {world.shopper_tokens[sid]}"}
            p = http.post(f"{url}/api/v1/orders/{oid}/pay", headers=auth)
            assert p.status_code == 201, p.text
            pay = p.json()
            body, sig = provider.callback(
                provider_ref=pay["provider_ref"],
                outcome="succeeded",
                amount_minor=pay["amount_minor"],
                currency=pay["currency"],
            )
            cb = http.post(
                f"{urls[(i + 1) % len(urls)]}/api/v1/payments/callbacks/simulated",
                content=body,
                headers={SIGNATURE_HEADER: sig, "Content-Type": "application/json"},
            )
            assert cb.status_code == 200 and cb.json()["outcome"] == "paid", cb.text


def _state(cluster: Cluster, item_id: int) -> dict[str, Any]:
    from juxing.deals.reconcile import check_item
    from juxing.deals.stock import counts_from_orders
    from juxing.kit.db import Database
    from juxing.kit.redis import make_redis
    from juxing.models.deals import DealItem

    assert cluster.redis is not None
    db = Database(cluster.database_url)
    rds = make_redis(cluster.redis.url)
    try:
        with db.session() as s:
            item = s.get(DealItem, item_id)
            assert item is not None
            truth = counts_from_orders(s, item_id=item_id, deal_stock=item.deal_stock)
            report = check_item(session=s, deal_item_id=item_id, redis_client=rds)
            return {
                "counts": (truth.available, truth.reserved, truth.sold),
                "max_holding": max(truth.holdings.values(), default=0),
                "holders": len(truth.holdings),
                "live_ok": report["ok"],
            }
    finally:
        rds.close()
        db.dispose()


@pytest.mark.parametrize("backend", ["redis", "sql"])
def test_one_process_and_two_processes_sell_exactly_the_stock(cluster_world, backend):
    cluster, world = cluster_world
    one_item, two_item = [i for i, spec in world.items.items() if spec["backend"] == backend]
    results = {}
    for label, urls, item_id in (
        ("one", cluster.api_urls[:1], one_item),
        ("two", cluster.api_urls, two_item),
    ):
        acked, outcomes = _rush(urls, world, item_id)
        held = Counter(acked.values())
        assert sum(held.values()) == STOCK, (label, outcomes)
        assert max(held.values()) <= LIMIT
        assert set(outcomes) <= {"ok", "sold_out", "per_user_limit"}, outcomes
        _pay_all(urls, world, acked)
        state = _state(cluster, item_id)
        assert state["counts"] == (0, 0, STOCK), (label, state)
        assert state["max_holding"] <= LIMIT and state["live_ok"], (label, state)
        results[label] = (sum(held.values()), state["counts"], state["max_holding"] <= LIMIT)
    # The same outcome whether one process or two served the rush.
    assert results["one"] == results["two"]


def test_one_shoppers_parallel_requests_across_both_processes_respect_the_limit(cluster_world):
    cluster, world = cluster_world
    item_id = next(i for i, spec in world.items.items() if spec["backend"] == "redis")
    sid = max(world.shopper_tokens)  # the rush above may have left this shopper room
    headers = {"Authorization": f"Bearer {world.shopper_tokens[sid]}"}
    codes: list[int] = []
    lock = threading.Lock()
    barrier = threading.Barrier(10)

    def buy(k: int) -> None:
        with httpx.Client(timeout=60) as http:
            barrier.wait()
            r = http.post(
                f"{cluster.api_urls[k % 2]}/api/v1/orders",
                json={"deal_item_id": item_id, "quantity": 1},
                headers={**headers, "Idempotency-Key": uuid.uuid4().hex},
            )
            with lock:
                codes.append(r.status_code)

    threads = [threading.Thread(target=buy, args=(k,)) for k in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert codes.count(201) <= LIMIT and all(c in (201, 409, 422) for c in codes), codes
    assert _state(cluster, item_id)["max_holding"] <= LIMIT


def test_one_idempotency_key_on_both_processes_makes_one_order(cluster_world):
    cluster, world = cluster_world
    item_id = next(i for i, spec in world.items.items() if spec["backend"] == "sql")
    sid = min(world.shopper_tokens)
    headers = {
        "Authorization": f"Bearer {world.shopper_tokens[sid]}",
        "Idempotency-Key": uuid.uuid4().hex,
    }
    answers: list[httpx.Response] = []
    lock = threading.Lock()
    barrier = threading.Barrier(6)

    def send(k: int) -> None:
        with httpx.Client(timeout=60) as http:
            barrier.wait()
            r = http.post(
                f"{cluster.api_urls[k % 2]}/api/v1/orders",
                json={"deal_item_id": item_id, "quantity": 1},
                headers=headers,
            )
            with lock:
                answers.append(r)

    threads = [threading.Thread(target=send, args=(k,)) for k in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    bodies = {r.text for r in answers if r.status_code in (201, 409, 422)}
    assert {r.status_code for r in answers} <= {201, 409, 422}
    created = {r.json()["id"] for r in answers if r.status_code == 201}
    assert len(created) <= 1 and bodies


def test_ledger_reconciles_and_both_processes_serve_the_same_feed(cluster_world):
    import subprocess

    from juxing.kit.db import Database
    from juxing.models.ledger import LedgerEntry
    from juxing.ops.cluster import _juxing_bin

    cluster, world = cluster_world
    r = subprocess.run(
        [_juxing_bin(), "ledger", "check", "--json"],
        env=cluster.env(),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    db = Database(cluster.database_url)
    try:
        with db.session(write=False) as s:
            assert (s.scalar(select(func.count()).select_from(LedgerEntry)) or 0) > 0
    finally:
        db.dispose()
    sid = min(world.shopper_tokens)
    feeds = []
    with httpx.Client(timeout=60) as http:
        for url in cluster.api_urls:
            for headers in ({}, {"Authorization": f"Bearer {world.shopper_tokens[sid]}"}):
                f = http.get(f"{url}/api/v1/feed", params={"limit": 20}, headers=headers)
                assert f.status_code == 200, f.text
                feeds.append([i["key"] for i in f.json()["items"]])
    assert feeds[0] == feeds[2] and feeds[1] == feeds[3]
