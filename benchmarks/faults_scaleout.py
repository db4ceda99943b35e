"""Per-node basis for docs/scaling.md (``make bench-scaleout``): the production profile
(JUXING_ENV=production, PostgreSQL + a private Redis) with one and with two ``juxing serve``
processes, measured in the same run:

- orders placed per second on a hot Redis-backed deal item and on a SQL-backed one
  (idempotent POST /api/v1/orders, one unit each, stock large enough never to sell out);
- tracked clicks per second (GET /t/{token}: verify, record, redirect);
- feed requests per second (GET /api/v1/feed, signed in);
- PostgreSQL commits per second while placing orders (pg_stat_database).

Each phase runs ``--seconds`` with ``--clients`` client threads. The clients run on the same
machine (2 shared cores here), so figures are a floor. Last line: one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import httpx
from _proc import cpu_seconds
from sqlalchemy import create_engine, text

from juxing.ops.cluster import Cluster, World, fresh_database, seed_world

DEFAULT_ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


def _commits(url: str) -> int:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return int(
                conn.execute(
                    text(
                        "SELECT xact_commit FROM pg_stat_database"
                        " WHERE datname = current_database()"
                    )
                ).scalar_one()
            )
    finally:
        engine.dispose()


def phase(
    urls: list[str],
    clients: int,
    seconds: float,
    request: Callable[[httpx.Client, str, int], bool],
) -> dict[str, Any]:
    """Run ``request`` in ``clients`` threads for ``seconds``; rate and latency of the OK ones."""
    latencies: list[float] = []
    errors = 0
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def worker(k: int) -> None:
        nonlocal errors
        mine: list[float] = []
        bad = 0
        n = 0
        with httpx.Client(timeout=30) as http:
            while time.monotonic() < deadline:
                t0 = time.perf_counter()
                ok = request(http, urls[(k + n) % len(urls)], k * 1_000_000 + n)
                n += 1
                if ok:
                    mine.append(time.perf_counter() - t0)
                else:
                    bad += 1
        with lock:
            latencies.extend(mine)
            errors += bad

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(clients)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - t0
    latencies.sort()
    return {
        "rps": round(len(latencies) / elapsed, 1),
        "ok": len(latencies),
        "errors": errors,
        "p50_ms": round(statistics.median(latencies) * 1000, 1) if latencies else None,
        "p99_ms": round(latencies[int(len(latencies) * 0.99) - 1] * 1000, 1)
        if len(latencies) >= 100
        else None,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--clients", type=int, default=8)
    args = parser.parse_args()
    admin = os.environ.get("JUXING_TEST_DATABASE_URL") or DEFAULT_ADMIN_URL
    url = fresh_database(admin, "juxing_bench_scaleout")
    cluster = Cluster(
        database_url=url,
        apis=2,
        with_worker=True,
        extra_env={"JUXING_RATE_LIMITS_ENABLED": "false"},
    )
    cluster.start()
    try:
        world: World = seed_world(
            url,
            items=[("redis", 10_000_000, 1_000_000), ("sql", 10_000_000, 1_000_000)],
            shoppers=64,
            creators=4,
        )
        redis_item, sql_item = sorted(world.items, key=lambda i: world.items[i]["backend"])
        tokens = [world.shopper_tokens[k] for k in sorted(world.shopper_tokens)]

        def buy(item_id: int) -> Callable[[httpx.Client, str, int], bool]:
            def go(http: httpx.Client, base: str, n: int) -> bool:
                r = http.post(
                    f"{base}/api/v1/orders",
                    json={"deal_item_id": item_id, "quantity": 1},
                    headers={
                        "Authorization": f"Bearer {tokens[n % len(tokens)]}",
                        "Idempotency-Key": uuid.uuid4().hex,
                    },
                )
                return r.status_code == 201

            return go

        link = world.link_tokens[redis_item][0]

        def click(http: httpx.Client, base: str, n: int) -> bool:
            return http.get(f"{base}/t/{link}").status_code == 302

        def feed(http: httpx.Client, base: str, n: int) -> bool:
            r = http.get(
                f"{base}/api/v1/feed",
                params={"limit": 20},
                headers={"Authorization": f"Bearer {tokens[n % len(tokens)]}"},
            )
            return r.status_code == 200

        one, two = cluster.api_urls[:1], cluster.api_urls
        results: dict[str, Any] = {}
        for name, urls, fn in (
            ("buy_redis_1proc", one, buy(redis_item)),
            ("buy_redis_2proc", two, buy(redis_item)),
            ("buy_sql_1proc", one, buy(sql_item)),
            ("buy_sql_2proc", two, buy(sql_item)),
            ("click_1proc", one, click),
            ("feed_1proc", one, feed),
        ):
            pids = [p.popen.pid for p in cluster.api_procs if p.popen is not None]
            before, cpu0 = _commits(url), cpu_seconds(pids)
            res = phase(urls, args.clients, args.seconds, fn)
            res["pg_commits_per_s"] = round((_commits(url) - before) / args.seconds, 1)
            # Requests per CPU-second of the API processes: a per-core rate that does not
            # depend on how busy the shared machine was.
            cpu = cpu_seconds(pids) - cpu0
            res["per_api_cpu_s"] = round(res["ok"] / cpu, 1) if cpu > 0 else None
            results[name] = res
            print(
                f"{name:<17} {res['rps']:>8} req/s  p50 {res['p50_ms']} ms  p99 {res['p99_ms']} ms"
                f"  errors {res['errors']}  pg commits/s {res['pg_commits_per_s']}"
                f"  per API CPU-s {res['per_api_cpu_s']}",
                flush=True,
            )
    finally:
        cluster.stop()
    summary = {
        "bench": "scaleout",
        "clients": args.clients,
        "seconds_per_phase": args.seconds,
        "machine": f"{os.cpu_count()} cores, shared",
        **{
            k: {
                "rps": v["rps"],
                "p50_ms": v["p50_ms"],
                "p99_ms": v["p99_ms"],
                "per_api_cpu_s": v["per_api_cpu_s"],
            }
            for k, v in results.items()
        },
        "redis_2proc_over_1proc": round(
            results["buy_redis_2proc"]["rps"] / max(results["buy_redis_1proc"]["rps"], 0.1), 2
        ),
        "pg_commits_per_s_buying": results["buy_sql_2proc"]["pg_commits_per_s"],
    }
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
