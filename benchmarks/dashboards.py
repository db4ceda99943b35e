"""Dashboard queries over many orders and events, on PostgreSQL and SQLite (p95 per dashboard).

    make bench-dashboards                      # defaults below
    python benchmarks/dashboards.py --orders 1000000 --events 10000000 --pg URL --sqlite PATH

Data is generated with bulk inserts (COPY on PostgreSQL, executemany on SQLite) into a
database of its own and cached there between runs (a marker row records the sizes). The
rollups are built once (timed), then each dashboard is called repeatedly over random
merchants/creators and windows; the raw-SQL equivalent of the merchant GMV+funnel is timed
too, for the ratio. Prints a table and, last, one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select, text

import juxing.models
from juxing.analytics import dashboards, rollups
from juxing.kit.db import Database
from juxing.models.base import Base
from juxing.models.events import BehaviorEvent
from juxing.models.orders import Order, OrderLine

EPOCH = datetime(2025, 11, 1, tzinfo=UTC)
DAYS = 30
MERCHANTS, PRODUCTS, CREATORS, SHOPPERS = 1000, 20_000, 500, 20_000


def _rows_users(n0: int, n: int, role: str):
    for i in range(n0, n0 + n):
        yield (i, f"{role}{i}@bench.test", f"{role} {i}", "x", True, "en", EPOCH, EPOCH)


def _bulk(db: Database, table: str, cols: list[str], rows, batch: int = 200_000) -> None:
    """COPY (PostgreSQL) or executemany (SQLite) ``rows`` into ``table``."""
    if db.is_sqlite:
        ph = ",".join("?" * len(cols))
        raw = db.engine.raw_connection()
        try:
            cur = raw.cursor()
            buf = []
            for r in rows:
                buf.append(
                    tuple(
                        v.replace(tzinfo=None).isoformat(" ") if isinstance(v, datetime) else v
                        for v in r
                    )
                )
                if len(buf) >= batch:
                    cur.execute("BEGIN")
                    cur.executemany(f"INSERT INTO {table} ({','.join(cols)}) VALUES ({ph})", buf)
                    cur.execute("COMMIT")
                    buf = []
            if buf:
                cur.execute("BEGIN")
                cur.executemany(f"INSERT INTO {table} ({','.join(cols)}) VALUES ({ph})", buf)
                cur.execute("COMMIT")
        finally:
            raw.close()
        return
    raw = db.engine.raw_connection()
    try:
        cur = raw.cursor()
        with cur.copy(f"COPY {table} ({','.join(cols)}) FROM STDIN") as cp:
            for r in rows:
                cp.write_row(r)
        raw.commit()
    finally:
        raw.close()


def generate(db: Database, n_orders: int, n_events: int, seed: int = 1) -> None:
    rng = random.Random(seed)
    Base.metadata.create_all(db.engine)
    with db.engine.begin() as c:
        c.execute(text("CREATE TABLE IF NOT EXISTS bench_marker (orders BIGINT, events BIGINT)"))
        got = c.execute(text("SELECT orders, events FROM bench_marker")).first()
    if got and tuple(got) == (n_orders, n_events):
        return
    if got:
        raise SystemExit(f"bench database holds {tuple(got)}; drop it to regenerate")
    t0 = time.perf_counter()
    ucols = [
        "id",
        "email",
        "display_name",
        "password_hash",
        "is_active",
        "locale",
        "created_at",
        "updated_at",
    ]
    _bulk(db, "users", ucols, _rows_users(1, MERCHANTS, "merchant"))
    _bulk(db, "users", ucols, _rows_users(MERCHANTS + 1, CREATORS, "creator"))
    shop0 = MERCHANTS + CREATORS + 1
    _bulk(db, "users", ucols, _rows_users(shop0, SHOPPERS, "shopper"))
    tiers = ["key_account"] * 50 + ["growing"] * 250 + ["new"] * 700
    _bulk(
        db,
        "merchants",
        ["id", "owner_id", "name", "description", "tier", "created_at"],
        ((m, m, f"Shop {m}", "", tiers[m - 1], EPOCH) for m in range(1, MERCHANTS + 1)),
    )
    # Popularity is skewed: a few big merchants sell most (Zipf-like).
    pmerchant = [min(MERCHANTS, int(rng.paretovariate(0.8))) for _ in range(PRODUCTS)]
    _bulk(
        db,
        "products",
        ["id", "merchant_id", "title", "description", "status", "created_at", "updated_at"],
        (
            (p, pmerchant[p - 1], f"P{p}", "", "active", EPOCH, EPOCH)
            for p in range(1, PRODUCTS + 1)
        ),
    )
    price = [rng.choice([990, 1990, 4990, 9900, 19900]) for _ in range(PRODUCTS)]
    _bulk(
        db,
        "skus",
        ["id", "product_id", "name", "list_price_minor", "currency", "stock", "status"],
        ((p, p, "default", price[p - 1], "CNY", 1000, "active") for p in range(1, PRODUCTS + 1)),
    )
    _bulk(
        db,
        "tracking_links",
        [
            "id",
            "code",
            "signature",
            "creator_id",
            "target_type",
            "target_id",
            "target_key",
            "post_id",
            "created_at",
        ],
        (
            (c, f"b{c}", "s", MERCHANTS + c, "post", c, f"post:{c}", c, EPOCH)
            for c in range(1, CREATORS + 1)
        ),
    )
    span = DAYS * 86400
    prods = [int(rng.paretovariate(1.0)) % PRODUCTS + 1 for _ in range(50_000)]

    def orders():
        r = random.Random(seed + 1)
        for o in range(1, n_orders + 1):
            p = prods[r.randrange(len(prods))]
            created = EPOCH + timedelta(seconds=span * o / n_orders)
            paid = created + timedelta(seconds=60) if r.random() < 0.8 else None
            q = r.randint(1, 3)
            amt = price[p - 1] * q
            yield (
                o,
                shop0 + r.randrange(SHOPPERS),
                pmerchant[p - 1],
                "paid" if paid else "cancelled",
                "CNY",
                amt,
                0,
                amt,
                0,
                created,
                created,
                paid,
            )

    _bulk(
        db,
        "orders",
        [
            "id",
            "shopper_id",
            "merchant_id",
            "status",
            "currency",
            "subtotal_minor",
            "discount_minor",
            "total_minor",
            "refunded_minor",
            "created_at",
            "updated_at",
            "paid_at",
        ],
        orders(),
    )
    with db.engine.connect() as c:
        olist = c.execute(
            select(
                Order.id,
                Order.merchant_id,
                Order.total_minor,
                Order.created_at,
                Order.paid_at,
                Order.shopper_id,
            ).order_by(Order.id)
        ).all()
    r = random.Random(seed + 2)
    line_product = {}

    def lines():
        for o, _m, amt, _c, _p, _s in olist:
            # Recover a product of that merchant: pick the order's product deterministically.
            p = prods[(o * 7919) % len(prods)]
            line_product[o] = p
            yield (o, o, p, p, "x", 1, amt, amt, 0, 0, 0)

    _bulk(
        db,
        "order_lines",
        [
            "id",
            "order_id",
            "sku_id",
            "product_id",
            "title",
            "quantity",
            "unit_price_minor",
            "amount_minor",
            "refunded_minor",
            "refunded_quantity",
            "restocked_quantity",
        ],
        lines(),
    )

    def commissions():
        n = 0
        for o, m, amt, created, paid, shopper in olist:
            if paid is None or r.random() > 0.25:
                continue
            n += 1
            c = r.randrange(1, CREATORS + 1)
            yield (
                n,
                o,
                o,
                m,
                shopper,
                MERCHANTS + c,
                line_product[o],
                c,
                "attributed",
                r.choice(["pending", "available"]),
                7,
                "merchant",
                0,
                0,
                0,
                "CNY",
                amt,
                amt // 10,
                0,
                amt // 100,
                0,
                "bench",
                created,
                paid,
            )

    _bulk(
        db,
        "commissions",
        [
            "id",
            "order_id",
            "order_line_id",
            "merchant_id",
            "shopper_id",
            "creator_id",
            "product_id",
            "link_id",
            "decision",
            "status",
            "window_days",
            "rule_scope",
            "base_rate_bp",
            "bonus_bp",
            "fee_bp",
            "currency",
            "amount_minor",
            "base_minor",
            "bonus_minor",
            "fee_minor",
            "refunded_minor",
            "explanation",
            "placed_at",
            "paid_at",
        ],
        commissions(),
    )
    _bulk(
        db,
        "commission_clicks",
        ["link_id", "creator_id", "post_id", "ip_hash", "device_hash", "clicked_at"],
        (
            (
                c := r.randrange(1, CREATORS + 1),
                MERCHANTS + c,
                c,
                "i",
                "d",
                EPOCH + timedelta(seconds=r.randrange(span)),
            )
            for _ in range(n_orders)
        ),
    )

    def events():
        er = random.Random(seed + 3)
        acts = ["view"] * 14 + ["click"] * 4 + ["cart"] * 2
        for e in range(1, n_events + 1):
            p = prods[er.randrange(len(prods))]
            at = EPOCH + timedelta(seconds=span * e / n_events)
            yield (
                e,
                "app",
                shop0 + er.randrange(SHOPPERS),
                acts[er.randrange(20)],
                "product",
                p,
                f"e{e}",
                at,
                at,
            )

    _bulk(
        db,
        "behavior_events",
        [
            "id",
            "source",
            "user_id",
            "action",
            "target_type",
            "target_id",
            "client_event_id",
            "occurred_at",
            "received_at",
        ],
        events(),
    )
    _bulk(
        db,
        "feed_impressions",
        [
            "feed_id",
            "user_id",
            "item_type",
            "item_id",
            "merchant_id",
            "position",
            "reason",
            "shown_at",
        ],
        (
            (
                "f",
                shop0 + r.randrange(SHOPPERS),
                "product",
                (p := prods[r.randrange(len(prods))]),
                pmerchant[p - 1],
                0,
                "bench",
                EPOCH + timedelta(seconds=span * i / n_events),
            )
            for i in range(n_events // 10)
        ),
    )
    with db.engine.begin() as c:
        if not db.is_sqlite:
            c.execute(text("ANALYZE"))
        c.execute(text("INSERT INTO bench_marker VALUES (:o, :e)"), {"o": n_orders, "e": n_events})
    print(
        f"generated {n_orders} orders, {n_events} events in {time.perf_counter() - t0:.0f}s",
        file=sys.stderr,
    )


def p95(xs: list[float]) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(0.95 * (len(xs) - 1))))]


def run(db: Database, label: str, n_orders: int, n_events: int, reps: int) -> dict[str, float]:
    generate(db, n_orders, n_events)
    with db.session() as s:
        have = s.scalar(select(func.count()).select_from(juxing.models.analytics.MetricRollup))
    build_s = 0.0
    if not have:
        t0 = time.perf_counter()
        with db.session() as s:
            rollups.refresh(s, start=EPOCH, end=EPOCH + timedelta(days=DAYS + 1))
        build_s = time.perf_counter() - t0
    rng = random.Random(5)
    out: dict[str, list[float]] = {
        "merchant": [],
        "creator": [],
        "operator": [],
        "raw_merchant": [],
    }
    for _ in range(reps):
        end = EPOCH + timedelta(days=rng.randrange(8, DAYS))
        start = end - timedelta(days=7)
        m = min(MERCHANTS, int(rng.paretovariate(0.8)))
        with db.session(write=False) as s:
            t = time.perf_counter()
            dashboards.merchant_dashboard(session=s, merchant_id=m, start=start, end=end)
            out["merchant"].append(time.perf_counter() - t)
            t = time.perf_counter()
            dashboards.creator_dashboard(
                session=s,
                creator_id=MERCHANTS + rng.randrange(1, CREATORS + 1),
                start=start,
                end=end,
            )
            out["creator"].append(time.perf_counter() - t)
            t = time.perf_counter()
            dashboards.operator_dashboard(session=s, start=end - timedelta(hours=1), end=end)
            out["operator"].append(time.perf_counter() - t)
            t = time.perf_counter()
            # The same merchant's 7-day GMV and funnel straight from orders and events.
            s.execute(
                select(func.sum(OrderLine.amount_minor))
                .join(Order, Order.id == OrderLine.order_id)
                .where(
                    Order.merchant_id == m,
                    Order.created_at >= start - timedelta(days=1),
                    Order.created_at < end,
                    Order.paid_at >= start,
                    Order.paid_at < end,
                )
            ).all()
            s.execute(
                select(BehaviorEvent.action, func.count())
                .join(
                    juxing.models.catalog.Product,
                    juxing.models.catalog.Product.id == BehaviorEvent.target_id,
                )
                .where(
                    juxing.models.catalog.Product.merchant_id == m,
                    BehaviorEvent.occurred_at >= start,
                    BehaviorEvent.occurred_at < end,
                )
                .group_by(BehaviorEvent.action)
            ).all()
            out["raw_merchant"].append(time.perf_counter() - t)
    res = {f"{label}_{k}_p95_ms": round(p95(v) * 1000, 2) for k, v in out.items()}
    res[f"{label}_rollup_build_s"] = round(build_s, 1)
    res[f"{label}_raw_over_rollup_merchant"] = round(
        p95(out["raw_merchant"]) / max(p95(out["merchant"]), 1e-9), 1
    )
    return res


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--orders", type=int, default=int(os.environ.get("BENCH_ORDERS", 1_000_000)))
    ap.add_argument("--events", type=int, default=int(os.environ.get("BENCH_EVENTS", 10_000_000)))
    ap.add_argument(
        "--sqlite-orders", type=int, default=int(os.environ.get("BENCH_SQLITE_ORDERS", 0))
    )
    ap.add_argument(
        "--sqlite-events", type=int, default=int(os.environ.get("BENCH_SQLITE_EVENTS", 0))
    )
    ap.add_argument(
        "--pg",
        default=os.environ.get(
            "BENCH_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/juxing_market_bench"
        ),
    )
    ap.add_argument(
        "--sqlite", default=os.environ.get("BENCH_SQLITE_PATH", "var/bench/dashboards.db")
    )
    ap.add_argument("--reps", type=int, default=40)
    ap.add_argument("--only", choices=["pg", "sqlite"], default=None)
    a = ap.parse_args()
    results: dict[str, float] = {}
    if a.only != "sqlite":
        db = Database(a.pg)
        results.update(run(db, "postgresql", a.orders, a.events, a.reps))
        db.dispose()
    if a.only != "pg":
        os.makedirs(os.path.dirname(a.sqlite) or ".", exist_ok=True)
        db = Database(f"sqlite:///{a.sqlite}")
        results.update(
            run(db, "sqlite", a.sqlite_orders or a.orders, a.sqlite_events or a.events, a.reps)
        )
        db.dispose()
    print(f"{'figure':<44}{'value':>12}")
    for k, v in results.items():
        print(f"{k:<44}{v:>12}")
    results["orders"] = a.orders
    results["events"] = a.events
    results["sqlite_orders"] = a.sqlite_orders or a.orders
    results["sqlite_events"] = a.sqlite_events or a.events
    print(json.dumps(results))


if __name__ == "__main__":
    main()
