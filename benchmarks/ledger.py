"""Benchmark: attribution and ledger posting for N paid orders in one batch run, then the
reconciliation (``juxing ledger check``) over that ledger, on SQLite and PostgreSQL.

    python benchmarks/ledger.py [--orders 1000000] [--backend sqlite|postgres|both]

PostgreSQL: ``JUXING_BENCH_DATABASE_URL`` (default: the local ``juxing_commission`` db; its
schema is dropped and rebuilt). Prints a table and, as its last line, one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import func, insert, select, text

import juxing.models  # noqa: F401  (registers every table)
from juxing.commission import batch
from juxing.commission.reconcile import run_checks
from juxing.kit.db import Database
from juxing.models.accounts import User
from juxing.models.base import Base
from juxing.models.catalog import Merchant, Product, Sku
from juxing.models.commission import Click, CommissionRule, TrackingLink
from juxing.models.ledger import LedgerEntry
from juxing.models.orders import Order, OrderLine

PG_DEFAULT = "postgresql+psycopg://postgres@127.0.0.1:5432/juxing_commission"
CREATORS, SHOPPERS, MERCHANTS, PRODUCTS, LINKS_PER_PRODUCT = 1000, 50_000, 50, 500, 10
CHUNK = 50_000


def _reset(db: Database) -> None:
    with db.engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("DROP SCHEMA public CASCADE"))
            conn.execute(text("CREATE SCHEMA public"))
    Base.metadata.create_all(db.engine)


def _bulk(db: Database, table, rows: list[dict]) -> None:  # type: ignore[no-untyped-def]
    with db.engine.begin() as conn:
        for i in range(0, len(rows), 50_000):
            conn.execute(insert(table), rows[i : i + 50_000])


def generate(db: Database, n_orders: int, rng: random.Random) -> dict[str, int]:
    """A world: creators, shoppers, shops, products, links, clicks and N paid orders."""
    now = datetime.now(UTC).replace(tzinfo=None)
    users = [
        {
            "id": i,
            "email": f"u{i}@bench.test",
            "display_name": f"U{i}",
            "password_hash": "x",
            "is_active": True,
            "locale": "en",
            "created_at": now,
            "updated_at": now,
        }
        for i in range(1, 1 + 1 + CREATORS + SHOPPERS)
    ]
    _bulk(db, User.__table__, users)
    creators = list(range(2, 2 + CREATORS))
    shoppers = list(range(2 + CREATORS, 2 + CREATORS + SHOPPERS))
    _bulk(
        db,
        Merchant.__table__,
        [
            {
                "id": m,
                "owner_id": 1,
                "name": f"Shop {m}",
                "description": "",
                "tier": "new",
                "created_at": now,
            }
            for m in range(1, MERCHANTS + 1)
        ],
    )
    products = [
        {
            "id": p,
            "merchant_id": 1 + p % MERCHANTS,
            "title": f"P{p}",
            "description": "",
            "status": "active",
            "created_at": now,
            "updated_at": now,
        }
        for p in range(1, PRODUCTS + 1)
    ]
    _bulk(db, Product.__table__, products)
    _bulk(
        db,
        Sku.__table__,
        [
            {
                "id": p,
                "product_id": p,
                "name": "d",
                "list_price_minor": 9900,
                "currency": "CNY",
                "stock": 10**6,
                "status": "active",
            }
            for p in range(1, PRODUCTS + 1)
        ],
    )
    rules = [
        {
            "merchant_id": m,
            "scope": "merchant",
            "target_id": 0,
            "rate_bp": rng.choice([300, 500, 800, 1200]),
            "window_days": None,
            "created_at": now,
            "updated_at": now,
        }
        for m in range(1, MERCHANTS + 1)
    ]
    rules += [
        {
            "merchant_id": 1 + p % MERCHANTS,
            "scope": "product",
            "target_id": p,
            "rate_bp": 2000,
            "window_days": None,
            "created_at": now,
            "updated_at": now,
        }
        for p in range(1, PRODUCTS + 1, 10)
    ]
    _bulk(db, CommissionRule.__table__, rules)
    links, by_product = [], {}
    lid = 0
    for p in range(1, PRODUCTS + 1):
        by_product[p] = []
        for c in rng.sample(creators, LINKS_PER_PRODUCT):
            lid += 1
            links.append(
                {
                    "id": lid,
                    "code": f"{lid:08d}",
                    "signature": "0" * 16,
                    "creator_id": c,
                    "target_type": "product",
                    "target_id": p,
                    "target_key": f"product:{p}",
                    "product_id": p,
                    "created_at": now,
                }
            )
            by_product[p].append((lid, c))
    _bulk(db, TrackingLink.__table__, links)
    orders, lines, clicks = [], [], []
    cid = 0
    for o in range(1, n_orders + 1):
        shopper = rng.choice(shoppers)
        p = rng.randint(1, PRODUCTS)
        placed = now - timedelta(minutes=rng.randint(0, 60 * 24 * 60))
        amount = rng.randint(1000, 100_000)
        orders.append(
            {
                "id": o,
                "shopper_id": shopper,
                "merchant_id": 1 + p % MERCHANTS,
                "status": "paid",
                "currency": "CNY",
                "subtotal_minor": amount,
                "discount_minor": 0,
                "total_minor": amount,
                "refunded_minor": 0,
                "created_at": placed,
                "updated_at": placed,
                "paid_at": placed + timedelta(minutes=5),
            }
        )
        lines.append(
            {
                "id": o,
                "order_id": o,
                "sku_id": p,
                "product_id": p,
                "title": "x",
                "quantity": 1,
                "unit_price_minor": amount,
                "amount_minor": amount,
                "refunded_minor": 0,
                "refunded_quantity": 0,
                "restocked_quantity": 0,
            }
        )
        roll = rng.random()
        n_clicks = 0 if roll < 0.10 else (2 if roll < 0.25 else 1)  # none / take-over / one
        for k in range(n_clicks):
            link, creator = rng.choice(by_product[p])
            days = rng.uniform(0, 20) if k == 0 else rng.uniform(0, 1)  # some outside 15d
            cid += 1
            clicks.append(
                {
                    "id": cid,
                    "link_id": link,
                    "creator_id": creator,
                    "product_id": p,
                    "shopper_id": shopper,
                    "visitor_id": None,
                    "ip_hash": f"ip{shopper}",
                    "device_hash": f"d{shopper}",
                    "clicked_at": placed - timedelta(days=days, seconds=1),
                }
            )
    for table, rows in (
        (Order.__table__, orders),
        (OrderLine.__table__, lines),
        (Click.__table__, clicks),
    ):
        _bulk(db, table, rows)
    return {"orders": n_orders, "clicks": len(clicks), "links": len(links)}


def run(url: str, n_orders: int, seed: int) -> dict[str, object]:
    db = Database(url)
    _reset(db)
    t0 = time.perf_counter()
    world = generate(db, n_orders, random.Random(seed))
    gen_s = time.perf_counter() - t0
    t0, c0 = time.perf_counter(), time.process_time()
    res = batch.run(db, chunk=CHUNK)
    attributed, transactions = res.attributed, res.transactions
    post_s, post_cpu = time.perf_counter() - t0, time.process_time() - c0
    t0, c0 = time.perf_counter(), time.process_time()
    with db.session(write=False) as session:
        found, entries = run_checks(session)
        total = session.scalar(select(func.coalesce(func.sum(LedgerEntry.amount_minor), 0)))
    check_s, check_cpu = time.perf_counter() - t0, time.process_time() - c0
    db.dispose()
    return {
        "backend": "sqlite" if url.startswith("sqlite") else "postgresql",
        "orders": n_orders,
        "clicks": world["clicks"],
        "attributed_lines": attributed,
        "transactions": transactions,
        "entries": entries,
        "generate_s": round(gen_s, 1),
        "batch_s": round(post_s, 1),
        "orders_per_s": round(n_orders / post_s),
        "batch_cpu_s": round(post_cpu, 1),
        "check_s": round(check_s, 1),
        "check_cpu_s": round(check_cpu, 1),
        "discrepancies": len(found),
        "ledger_sum": int(total or 0),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--orders", type=int, default=1_000_000)
    ap.add_argument("--backend", choices=["sqlite", "postgres", "both"], default="both")
    ap.add_argument("--seed", type=int, default=6)
    args = ap.parse_args()
    results = []
    if args.backend in ("sqlite", "both"):
        folder = Path(tempfile.mkdtemp(prefix="juxing-bench-ledger-"))
        results.append(run(f"sqlite:///{folder / 'bench.db'}", args.orders, args.seed))
        for f in folder.iterdir():
            f.unlink()
        folder.rmdir()
    if args.backend in ("postgres", "both"):
        url = os.environ.get("JUXING_BENCH_DATABASE_URL", PG_DEFAULT)
        results.append(run(url, args.orders, args.seed))
    cols = [
        "backend",
        "orders",
        "attributed_lines",
        "entries",
        "batch_s",
        "orders_per_s",
        "check_s",
        "discrepancies",
    ]
    print(" | ".join(f"{c:>16}" for c in cols))
    for r in results:
        print(" | ".join(f"{r[c]!s:>16}" for c in cols))
    cpus = os.cpu_count()
    load = os.getloadavg()[0]
    print(f"machine: {platform.machine()} {cpus} cores, shared (load average {load:.1f});")
    print("batch_cpu_s is this process's CPU time (on SQLite it includes the database work)")
    summary = {
        "benchmark": "ledger",
        "machine": f"{platform.machine()}, {cpus} cores (shared)",
        "load_average": round(os.getloadavg()[0], 1),
        "python": sys.version.split()[0],
        "git": subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True
        ).stdout.strip(),
        "results": results,
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
