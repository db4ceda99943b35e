"""Benchmark: attribution and ledger posting for N paid orders in one batch run, then the
reconciliation (``juxing ledger check``) over that ledger, on SQLite and PostgreSQL.

    python benchmarks/ledger.py [--orders 1000000] [--backend sqlite|postgres|both]

PostgreSQL: ``JUXING_BENCH_DATABASE_URL`` (default: the local ``juxing_commission`` db; its
schema is dropped and rebuilt). Prints a table and, as its last line, one JSON object.

The world is generated inside the database (``INSERT ... SELECT`` over ``generate_series``
or a recursive CTE, with the integer hash of ``_dash_gen`` standing in for randomness, so
both databases hold the same rows): 1000 creators, 50,000 shoppers, 50 shops, 500 products
with 10 creators' links each, merchant rules (3-12%) and a product rule (20%) on every
tenth product. Each order is one line of one product, paid 5 minutes after it was placed;
90% of orders follow a click on one of the product's links 0-20 days earlier (a quarter of
those outside the 15-day window), 15% also a later take-over click by another creator.
3% of buyers are the link's own creator (self-purchase) and 7% clicked signed out, so only
their visitor cookie ties click and order. Generation is timed apart from the batch.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _dash_gen import Gen, _bare_ddl, _index_ddl, mix
from sqlalchemy import func, select, text

import juxing.models  # noqa: F401  (registers every table)
from juxing.commission import batch
from juxing.commission.reconcile import run_checks
from juxing.kit.db import Database
from juxing.models.base import Base
from juxing.models.commission import Click, Commission
from juxing.models.ledger import LedgerEntry

PG_DEFAULT = "postgresql+psycopg://postgres@127.0.0.1:5432/juxing_commission"
CREATORS, SHOPPERS, MERCHANTS, PRODUCTS, LINKS_PER_PRODUCT = 1000, 50_000, 50, 500, 10
CREATOR0, SHOPPER0 = 2, 2 + CREATORS  # user ids; user 1 owns the shops
CHUNK = 50_000
START = 21 * 86400  # the first order, in seconds after EPOCH: every click falls after EPOCH
SPAN = 60 * 86400  # orders are spread evenly over 60 days, in id order
NO_CLICK, TAKE_OVER = 10, 25  # click roll (0-99) below 10: no click; below 25: two clicks
SELF, COOKIE = 3, 10  # buyer roll below 3: the link's own creator; below 10: cookie only
BIG = ("orders", "order_lines", "commission_clicks")


def _open(g: Gen) -> None:
    """Empty schema, the big tables bare (indexed after filling); SQLite without a journal."""
    with g.db.engine.begin() as conn:
        if g.pg:
            conn.execute(text("DROP SCHEMA public CASCADE"))
            conn.execute(text("CREATE SCHEMA public"))
        for name in BIG:
            conn.execute(text(_bare_ddl(name, g.db.engine.dialect)))
    small = [t for n, t in Base.metadata.tables.items() if n not in BIG]
    Base.metadata.create_all(g.db.engine, tables=small)
    if not g.pg:
        g.db.engine.dispose()  # the raw connection must be the only one to drop the journal
        g.raw = sqlite3.connect(g.db.engine.url.database or "", isolation_level=None)
        for pragma in ("journal_mode=OFF", "synchronous=OFF", "cache_size=-500000"):
            g.raw.execute(f"PRAGMA {pragma}")
        g.raw.execute("BEGIN")


def _close(g: Gen) -> None:
    """Index the big tables as the models do, and gather planner statistics."""
    ddl = [stmt for name in BIG for stmt in _index_ddl(name)]
    if g.raw is not None:
        g.raw.execute("COMMIT")
        for stmt in [*ddl, "ANALYZE"]:
            g.raw.execute(stmt)
        g.raw.close()
        g.raw = None
        return
    with g.db.engine.begin() as conn:
        for stmt in ddl:
            conn.execute(text(stmt))
    with g.db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE"))


def _placed(g: Gen, o: str, n_orders: int, minus: str = "0") -> str:
    """SQL for order ``o``'s placement time, less ``minus`` seconds."""
    return g.ts(f"({START} + CAST({o} AS BIGINT) * {SPAN} / {n_orders} - ({minus}))")


def _link(product: str, pick: str) -> str:
    """SQL for the id of the product's ``pick``-th (0-9) link."""
    return f"(({product}) - 1) * {LINKS_PER_PRODUCT} + 1 + ({pick})"


def _clicks(g: Gen, n_orders: int, *, second: bool) -> None:
    """One click per order that has one (``second``: the take-over click of those with two).

    Signed-in buyers click as themselves; cookie buyers click signed out (visitor id only).
    The first click is 0-20 days before the order, the take-over click 0-24 hours before.
    """
    roll = f"{mix('o.id', 8)} % 100"
    which = f"{roll} >= {NO_CLICK}" + (f" AND {roll} < {TAKE_OVER}" if second else "")
    lag = f"1 + {mix('o.id', 13)} % 86400" if second else f"1 + {mix('o.id', 9)} % {20 * 86400}"
    pick = f"{mix('o.id', 12 if second else 11)} % {LINKS_PER_PRODUCT}"
    g.chunked(
        "take-over clicks" if second else "clicks",
        n_orders,
        lambda series: (
            "INSERT INTO commission_clicks (id, link_id, creator_id, product_id, shopper_id, "
            "visitor_id, ip_hash, device_hash, clicked_at) "
            f"SELECT 2 * o.id - {0 if second else 1}, t.id, t.creator_id, l.product_id, "
            "CASE WHEN o.visitor_id IS NULL THEN o.shopper_id END, o.visitor_id, "
            f"'ip' || o.shopper_id, 'd' || o.shopper_id, {_placed(g, 'o.id', n_orders, lag)} "
            f"FROM {series} JOIN orders o ON o.id = s.x JOIN order_lines l ON l.id = o.id "
            f"JOIN tracking_links t ON t.id = {_link('l.product_id', pick)} WHERE {which}"
        ),
    )


def generate(db: Database, n_orders: int) -> dict[str, int]:
    """A world: creators, shoppers, shops, products, links, rules, N paid orders, clicks."""
    g = Gen(db)
    _open(g)
    ep = g.ts("0")
    true = "TRUE" if g.pg else "1"
    g.run(
        "INSERT INTO users (id, email, display_name, password_hash, is_active, locale, "
        f"created_at, updated_at) SELECT x, 'u' || x || '@bench.test', 'U' || x, 'x', {true}, "
        f"'en', {ep}, {ep} FROM {g.series(1, SHOPPER0 + SHOPPERS - 1)}"
    )
    g.run(
        "INSERT INTO merchants (id, owner_id, name, description, tier, created_at) "
        f"SELECT x, 1, 'Shop ' || x, '', 'new', {ep} FROM {g.series(1, MERCHANTS)}"
    )
    g.run(
        "INSERT INTO products (id, merchant_id, title, description, status, created_at, "
        f"updated_at) SELECT x, 1 + x % {MERCHANTS}, 'P' || x, '', 'active', {ep}, {ep} "
        f"FROM {g.series(1, PRODUCTS)}"
    )
    g.run(
        "INSERT INTO skus (id, product_id, name, list_price_minor, currency, stock, status) "
        f"SELECT x, x, 'd', 9900, 'CNY', 1000000, 'active' FROM {g.series(1, PRODUCTS)}"
    )
    rule = (
        "INSERT INTO commission_rules (merchant_id, scope, target_id, rate_bp, window_days, "
        "created_at, updated_at) "
    )
    rate = f"CASE {mix('x', 1)} % 4 WHEN 0 THEN 300 WHEN 1 THEN 500 WHEN 2 THEN 800 ELSE 1200 END"
    g.run(f"{rule}SELECT x, 'merchant', 0, {rate}, NULL, {ep}, {ep} FROM {g.series(1, MERCHANTS)}")
    g.run(
        f"{rule}SELECT 1 + x % {MERCHANTS}, 'product', x, 2000, NULL, {ep}, {ep} "
        f"FROM {g.series(1, PRODUCTS)} WHERE x % 10 = 1"
    )
    # Link j (0-9) of product p: creator (hash(p) + 97 j) mod 1000, distinct for the ten.
    p, j = f"(1 + (x - 1) / {LINKS_PER_PRODUCT})", f"((x - 1) % {LINKS_PER_PRODUCT})"
    g.run(
        "INSERT INTO tracking_links (id, code, signature, creator_id, target_type, target_id, "
        "target_key, product_id, created_at) "
        f"SELECT x, 'L' || x, '0', {CREATOR0} + ({mix(p, 2)} + 97 * {j}) % {CREATORS}, "
        f"'product', {p}, 'product:' || {p}, {p}, {ep} "
        f"FROM {g.series(1, PRODUCTS * LINKS_PER_PRODUCT)}"
    )
    amount = f"(1000 + {mix('g.o', 4)} % 99001)"
    clicks = f"{mix('x', 8)} % 100"
    last_pick = (
        f"CASE WHEN {clicks} >= {NO_CLICK} AND {clicks} < {TAKE_OVER} "
        f"THEN {mix('x', 12)} ELSE {mix('x', 11)} END % {LINKS_PER_PRODUCT}"
    )
    g.chunked(
        "orders",
        n_orders,
        lambda series: (
            "INSERT INTO orders (id, shopper_id, merchant_id, status, currency, subtotal_minor, "
            "discount_minor, total_minor, refunded_minor, visitor_id, created_at, updated_at, "
            "paid_at) "
            f"SELECT g.o, CASE WHEN g.buyer < {SELF} THEN t.creator_id ELSE g.shopper END, "
            f"1 + g.p % {MERCHANTS}, 'paid', 'CNY', {amount}, 0, {amount}, 0, "
            f"CASE WHEN g.buyer >= {SELF} AND g.buyer < {COOKIE} THEN 'v' || g.shopper END, "
            f"{_placed(g, 'g.o', n_orders)}, {_placed(g, 'g.o', n_orders)}, "
            f"{_placed(g, 'g.o', n_orders, '-300')} "
            f"FROM (SELECT x AS o, 1 + {mix('x', 3)} % {PRODUCTS} AS p, "
            f"{mix('x', 6)} % 100 AS buyer, {SHOPPER0} + {mix('x', 7)} % {SHOPPERS} AS shopper, "
            f"{last_pick} AS pick FROM {series}) g "
            f"JOIN tracking_links t ON t.id = {_link('g.p', 'g.pick')}"
        ),
    )
    # One line per order, of the product the order was drawn with (same hash of its id).
    line_columns = (
        "id, order_id, sku_id, product_id, title, quantity, unit_price_minor, amount_minor, "
        "refunded_minor, refunded_quantity, restocked_quantity"
    )
    g.run(
        f"INSERT INTO order_lines ({line_columns}) SELECT id, id, p, p, 'x', 1, total_minor, "
        f"total_minor, 0, 0, 0 FROM (SELECT id, total_minor, 1 + {mix('id', 3)} % {PRODUCTS} "
        "AS p FROM orders) o"
    )
    _clicks(g, n_orders, second=False)
    _clicks(g, n_orders, second=True)
    _close(g)
    with db.session(write=False) as session:
        n_clicks = session.scalar(select(func.count()).select_from(Click)) or 0
    return {"orders": n_orders, "clicks": int(n_clicks)}


def run(url: str, n_orders: int, chunk: int = CHUNK) -> dict[str, object]:
    db = Database(url)
    t0 = time.perf_counter()
    world = generate(db, n_orders)
    gen_s = time.perf_counter() - t0
    t0, c0 = time.perf_counter(), time.process_time()
    res = batch.run(db, chunk=chunk)
    attributed, transactions = res.attributed, res.transactions
    post_s, post_cpu = time.perf_counter() - t0, time.process_time() - c0
    t0, c0 = time.perf_counter(), time.process_time()
    with db.session(write=False) as session:
        found, entries = run_checks(session)
        total = session.scalar(select(func.coalesce(func.sum(LedgerEntry.amount_minor), 0)))
    check_s, check_cpu = time.perf_counter() - t0, time.process_time() - c0
    with db.session(write=False) as session:
        self_purchases = session.scalar(
            select(func.count()).where(Commission.decision == "self_purchase")
        )
    t0 = time.perf_counter()
    rerun = batch.run(db, chunk=chunk)
    rerun_s = time.perf_counter() - t0
    db.dispose()
    return {
        "backend": "sqlite" if url.startswith("sqlite") else "postgresql",
        "orders": n_orders,
        "clicks": world["clicks"],
        "attributed_lines": attributed,
        "self_purchases": int(self_purchases or 0),
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
        "rerun_s": round(rerun_s, 1),
        "rerun_attributed": rerun.attributed,
        "rerun_transactions": rerun.transactions,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--orders", type=int, default=1_000_000)
    ap.add_argument("--backend", choices=["sqlite", "postgres", "both"], default="both")
    ap.add_argument("--chunk", type=int, default=CHUNK, help="orders per batch transaction")
    args = ap.parse_args()
    results = []
    if args.backend in ("sqlite", "both"):
        folder = Path(tempfile.mkdtemp(prefix="juxing-bench-ledger-"))
        results.append(run(f"sqlite:///{folder / 'bench.db'}", args.orders, args.chunk))
        for f in folder.iterdir():
            f.unlink()
        folder.rmdir()
    if args.backend in ("postgres", "both"):
        url = os.environ.get("JUXING_BENCH_DATABASE_URL", PG_DEFAULT)
        results.append(run(url, args.orders, args.chunk))
    cols = [
        "backend",
        "orders",
        "attributed_lines",
        "entries",
        "generate_s",
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
