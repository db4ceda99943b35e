"""Dashboard queries over many orders and events, on PostgreSQL and SQLite (p95 per dashboard).

    make bench-dashboards                      # 1,000,000 orders, 10,000,000 events
    python benchmarks/dashboards.py --orders 1000000 --events 10000000 --pg URL --sqlite PATH

The world (1,000 merchants with skewed sizes, 20,000 products, 500 creators, 50,000 shoppers,
orders, order lines, attributed commissions, clicks, behaviour events and feed impressions
over 30 days) is generated inside each database by set-based ``INSERT ... SELECT`` (see
``_dash_gen.py``) and cached there between runs (a marker table records the sizes). The
rollups are built once by the same ``rollups.refresh`` the periodic job and the backfill
command use (timed), then each dashboard is called ``--reps`` times per round over random
merchants/creators and windows (merchant and creator: 7 and 30 days; operator: the last
hour), for ``--rounds`` rounds; the median of the rounds' p95 is reported. The raw-SQL
equivalent of the merchant GMV + funnel (straight from orders and events) is timed in the
same rounds, for the ratio. Prints a table and, last, one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import time
from datetime import timedelta

from _dash_gen import CREATORS, DAYS, EPOCH, MERCHANTS, cached, generate
from sqlalchemy import delete, func, inspect, select, text

from juxing.analytics import dashboards, rollups
from juxing.kit.db import Database
from juxing.models.analytics import MetricRollup
from juxing.models.catalog import Product
from juxing.models.events import BehaviorEvent
from juxing.models.orders import Order, OrderLine

DASHBOARDS = ("merchant_7d", "merchant_30d", "creator_7d", "creator_30d", "operator_1h")


def p95(xs: list[float]) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, round(0.95 * (len(xs) - 1)))]


def _raw_merchant(s, m: int, start, end) -> None:
    """The merchant's GMV and funnel computed straight from orders and events."""
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
        .join(Product, Product.id == BehaviorEvent.target_id)
        .where(
            Product.merchant_id == m,
            BehaviorEvent.occurred_at >= start,
            BehaviorEvent.occurred_at < end,
        )
        .group_by(BehaviorEvent.action)
    ).all()


def one_round(db: Database, rng: random.Random, reps: int, raw_reps: int) -> dict[str, float]:
    """p95 and p50 (ms) of each dashboard over ``reps`` calls, random subjects and windows."""
    out: dict[str, list[float]] = {k: [] for k in (*DASHBOARDS, "raw_merchant_7d")}
    for i in range(reps):
        end = EPOCH + timedelta(days=rng.randrange(8, DAYS), hours=rng.randrange(24))
        end = end.replace(minute=rng.randrange(60))
        m = min(MERCHANTS, int(rng.paretovariate(0.8)))
        c = MERCHANTS + rng.randrange(1, CREATORS + 1)
        with db.session(write=False) as s:
            for days in (7, 30):
                start = max(EPOCH, end - timedelta(days=days))
                t = time.perf_counter()
                dashboards.merchant_dashboard(session=s, merchant_id=m, start=start, end=end)
                out[f"merchant_{days}d"].append(time.perf_counter() - t)
                t = time.perf_counter()
                dashboards.creator_dashboard(session=s, creator_id=c, start=start, end=end)
                out[f"creator_{days}d"].append(time.perf_counter() - t)
            t = time.perf_counter()
            dashboards.operator_dashboard(session=s, start=end - timedelta(hours=1), end=end)
            out["operator_1h"].append(time.perf_counter() - t)
            if i < raw_reps:
                t = time.perf_counter()
                _raw_merchant(s, m, end - timedelta(days=7), end)
                out["raw_merchant_7d"].append(time.perf_counter() - t)
    res = {f"{k}_p95_ms": p95(v) * 1000 for k, v in out.items() if v}
    res.update({f"{k}_p50_ms": statistics.median(v) * 1000 for k, v in out.items() if v})
    return res


def ensure_rollup_indexes(db: Database) -> bool:
    """Bring a cached database's rollup indexes in line with the model (they may have changed);
    returns whether any was rebuilt."""
    have = {i["name"]: i["column_names"] for i in inspect(db.engine).get_indexes("metric_rollups")}
    changed = False
    for index in MetricRollup.__table__.indexes:
        cols = [c.name for c in index.columns]
        if have.get(index.name) != cols:
            print(f"  (re)creating {index.name}", file=sys.stderr, flush=True)
            index.drop(db.engine, checkfirst=True)
            index.create(db.engine)
            changed = True
    return changed


def analyze(db: Database) -> None:
    """Fresh statistics (and, on PostgreSQL, the visibility map for index-only scans)."""
    with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
        c.execute(text("ANALYZE" if db.is_sqlite else "VACUUM ANALYZE metric_rollups"))


def run(db: Database, label: str, a: argparse.Namespace, n_orders: int, n_events: int) -> dict:
    res: dict[str, float] = {}
    if not cached(db, n_orders, n_events):
        print(f"{label}: generating {n_orders:,} orders, {n_events:,} events", file=sys.stderr)
        res[f"{label}_generate_s"] = round(generate(db, n_orders, n_events), 1)
    if ensure_rollup_indexes(db):
        analyze(db)
    with db.session(write=False) as s:
        have = s.scalar(select(func.count()).select_from(MetricRollup))
    if not have or a.rebuild:
        print(f"{label}: building rollups", file=sys.stderr, flush=True)
        with db.session() as s:
            s.execute(delete(MetricRollup))
        t0 = time.perf_counter()
        with db.session() as s:
            rows = rollups.refresh(s, start=EPOCH, end=EPOCH + timedelta(days=DAYS + 1))
        res[f"{label}_rollup_build_s"] = round(time.perf_counter() - t0, 1)
        res[f"{label}_rollup_rows"] = rows
        analyze(db)
    # The periodic job's work: the last 3 hours of the data, every minute.
    t0 = time.perf_counter()
    with db.session() as s:
        rollups.refresh_recent(s, now=EPOCH + timedelta(days=DAYS))
    res[f"{label}_refresh_recent_s"] = round(time.perf_counter() - t0, 2)
    rng = random.Random(5)
    rounds = [one_round(db, rng, a.reps, a.raw_reps) for _ in range(a.rounds)]
    for k in sorted(rounds[0], key=lambda k: (k.endswith("p50_ms"), k)):
        res[f"{label}_{k}"] = round(statistics.median(r[k] for r in rounds), 1)
    res[f"{label}_raw_over_rollup_merchant_7d"] = round(
        res[f"{label}_raw_merchant_7d_p95_ms"] / max(res[f"{label}_merchant_7d_p95_ms"], 1e-9), 1
    )
    res[f"{label}_orders"] = n_orders
    res[f"{label}_events"] = n_events
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
    ap.add_argument("--reps", type=int, default=40, help="calls per dashboard per round")
    ap.add_argument("--raw-reps", type=int, default=10, help="raw-SQL calls per round")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--rebuild", action="store_true", help="rebuild the rollups (timed)")
    ap.add_argument("--only", choices=["pg", "sqlite"], default=None)
    a = ap.parse_args()
    results: dict[str, float] = {}
    if a.only != "sqlite":
        db = Database(a.pg)
        results.update(run(db, "postgresql", a, a.orders, a.events))
        db.dispose()
    if a.only != "pg":
        os.makedirs(os.path.dirname(a.sqlite) or ".", exist_ok=True)
        db = Database(f"sqlite:///{a.sqlite}")
        n_o, n_e = a.sqlite_orders or a.orders, a.sqlite_events or a.events
        results.update(run(db, "sqlite", a, n_o, n_e))
        db.dispose()
    print(f"\nmedian of {a.rounds} rounds x {a.reps} calls (shared 2-core machine)")
    print(f"{'figure':<48}{'value':>14}")
    for k, v in results.items():
        print(f"{k:<48}{v:>14}")
    results["rounds"] = a.rounds
    results["reps"] = a.reps
    print(json.dumps(results))


if __name__ == "__main__":
    main()
