"""Set-based generation of the dashboards benchmark world, inside the database.

Rows are produced by the database itself (``generate_series`` on PostgreSQL, a recursive CTE
on SQLite) in ``INSERT ... SELECT`` statements, with a portable integer hash of the row number
standing in for randomness, so both databases hold the same data and nothing crosses the
driver row by row. The large tables are created without their secondary indexes, unique
constraints and foreign keys, filled, then indexed (indexes and unique constraints as in the
models; foreign keys are left out of the benchmark database).
"""

from __future__ import annotations

import re
import sqlite3
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy import UniqueConstraint, inspect, text
from sqlalchemy.schema import CreateTable

import juxing.models  # noqa: F401  (registers every table)
from juxing.kit.db import Database
from juxing.models.base import Base

EPOCH = datetime(2025, 11, 1, tzinfo=UTC)
DAYS = 30
SPAN = DAYS * 86400
MERCHANTS, PRODUCTS, CREATORS, SHOPPERS = 1000, 20_000, 500, 50_000
SHOP0 = MERCHANTS + CREATORS + 1
BIG = (
    "orders",
    "order_lines",
    "commissions",
    "commission_clicks",
    "behavior_events",
    "feed_impressions",
)
CHUNK = 1_000_000


def mix(x: str, salt: int) -> str:
    """SQL for a 32-bit integer hash of the integer expression ``x`` (same on both databases).

    Multiply-xorshift rounds; XOR is spelled ``(a | b) - (a & b)`` because SQLite has no XOR.
    """
    h = f"((({x}) * 2654435761 + {salt * 40503 + 17}) % 4294967296)"
    h = f"(({h} | ({h} >> 15)) - ({h} & ({h} >> 15)))"
    h = f"(({h} * 1274126177) % 4294967296)"
    return f"(({h} | ({h} >> 16)) - ({h} & ({h} >> 16)))"


def skewed(x: str, salt: int, n: int) -> str:
    """SQL for an id in 1..n, heavily skewed to small ids (u**3 of a uniform u)."""
    a = f"({mix(x, salt)} >> 16)"
    return f"(1 + {n} * {a} * {a} * {a} / 281474976710656)"


class Gen:
    """One benchmark database being filled: dialect-specific SQL pieces and the loader."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.pg = not db.is_sqlite
        self.raw: sqlite3.Connection | None = None

    def ts(self, secs: str) -> str:
        """SQL for EPOCH + ``secs`` seconds, stored as the models store datetimes."""
        if self.pg:
            return f"(TIMESTAMPTZ '2025-11-01 00:00:00+00' + ({secs}) * INTERVAL '1 second')"
        return f"(datetime('2025-11-01 00:00:00', '+' || ({secs}) || ' seconds') || '.000000')"

    def series(self, lo: int, hi: int) -> str:
        """A FROM item yielding ``x`` for lo..hi."""
        if self.pg:
            return f"generate_series({lo}, {hi}) AS s(x)"
        return (
            f"(WITH RECURSIVE r(x) AS (SELECT {lo} UNION ALL SELECT x + 1 FROM r "
            f"WHERE x < {hi}) SELECT x FROM r) AS s"
        )

    def run(self, sql: str) -> None:
        if self.pg:
            with self.db.engine.begin() as c:
                c.execute(text(sql))
        else:
            assert self.raw is not None
            self.raw.execute(sql)

    def chunked(self, label: str, n: int, make: Callable[[str], str]) -> None:
        """Run ``make(series)`` for 1..n in chunks of a million rows, reporting progress."""
        t0 = time.perf_counter()
        for lo in range(1, n + 1, CHUNK):
            hi = min(n, lo + CHUNK - 1)
            self.run(make(self.series(lo, hi)))
            print(
                f"  {label}: {hi:>10,}/{n:,} rows  {time.perf_counter() - t0:6.0f}s",
                file=sys.stderr,
                flush=True,
            )


def _bare_ddl(table_name: str, dialect: object) -> str:
    """CREATE TABLE without unique constraints and foreign keys (added back, or not, later)."""
    ddl = str(CreateTable(Base.metadata.tables[table_name]).compile(dialect=dialect))  # type: ignore[arg-type]
    lines = [
        ln for ln in ddl.splitlines() if not re.search(r"CONSTRAINT \w+ (UNIQUE|FOREIGN KEY)", ln)
    ]
    return re.sub(r",\s*\n\)", "\n)", "\n".join(lines))


def _index_ddl(table_name: str) -> list[str]:
    """CREATE INDEX statements for the table's indexes and unique constraints."""
    table = Base.metadata.tables[table_name]
    parts: list[tuple[str, list[str], bool]] = [
        (str(i.name), [c.name for c in i.columns], bool(i.unique)) for i in table.indexes
    ]
    parts += [
        (str(c.name), [col.name for col in c.columns], True)
        for c in table.constraints
        if isinstance(c, UniqueConstraint)
    ]
    return [
        f"CREATE {'UNIQUE ' if u else ''}INDEX {n} ON {table_name} ({', '.join(cols)})"
        for n, cols, u in parts
    ]


def generate(db: Database, n_orders: int, n_events: int) -> float:
    """Fill ``db`` (emptied first) with the benchmark world; returns seconds taken."""
    t0 = time.perf_counter()
    g = Gen(db)
    Base.metadata.drop_all(db.engine)
    with db.engine.begin() as c:
        c.execute(text("DROP TABLE IF EXISTS bench_marker"))
    dialect = db.engine.dialect
    with db.engine.begin() as c:
        for name in BIG:
            c.execute(text(_bare_ddl(name, dialect)))
    small = [t for n, t in Base.metadata.tables.items() if n not in BIG]
    Base.metadata.create_all(db.engine, tables=small)
    if not g.pg:
        db.engine.dispose()  # journal_mode can only change with no other connection open
        # The benchmark file only: no journal, no fsync, a large page cache.
        raw = g.raw = sqlite3.connect(db.engine.url.database or "", isolation_level=None)
        raw.execute("PRAGMA journal_mode=OFF")
        raw.execute("PRAGMA synchronous=OFF")
        raw.execute("PRAGMA cache_size=-1000000")
        raw.execute("PRAGMA temp_store=MEMORY")
        raw.execute("BEGIN")
    ep = "TIMESTAMPTZ '2025-11-01 00:00:00+00'" if g.pg else "'2025-11-01 00:00:00.000000'"
    user_cols = "id, email, display_name, password_hash, is_active, locale, created_at, updated_at"
    true = "TRUE" if g.pg else "1"
    g.run(
        f"INSERT INTO users ({user_cols}) SELECT x, 'u' || x || '@bench.test', 'user ' || x, "
        f"'x', {true}, 'en', {ep}, {ep} FROM {g.series(1, SHOP0 + SHOPPERS)}"
    )
    tier = "CASE WHEN x <= 50 THEN 'key_account' WHEN x <= 300 THEN 'growing' ELSE 'new' END"
    g.run(
        "INSERT INTO merchants (id, owner_id, name, description, tier, created_at) "
        f"SELECT x, x, 'Shop ' || x, '', {tier}, {ep} FROM {g.series(1, MERCHANTS)}"
    )
    # Products belong to merchants with a skew: a few big shops own many products.
    g.run(
        "INSERT INTO products (id, merchant_id, title, description, status, created_at, "
        f"updated_at) SELECT x, {skewed('x', 1, MERCHANTS)}, 'P' || x, '', 'active', {ep}, {ep} "
        f"FROM {g.series(1, PRODUCTS)}"
    )
    price = (
        f"(CASE {mix('x', 2)} % 5 WHEN 0 THEN 990 WHEN 1 THEN 1990 WHEN 2 THEN 4990 "
        "WHEN 3 THEN 9900 ELSE 19900 END)"
    )
    g.run(
        "INSERT INTO skus (id, product_id, name, list_price_minor, currency, stock, status) "
        f"SELECT x, x, 'default', {price}, 'CNY', 1000, 'active' FROM {g.series(1, PRODUCTS)}"
    )
    g.run(
        "INSERT INTO tracking_links (id, code, signature, creator_id, target_type, target_id, "
        f"target_key, post_id, created_at) SELECT x, 'b' || x, 's', {MERCHANTS} + x, 'post', x, "
        f"'post:' || x, x, {ep} FROM {g.series(1, CREATORS)}"
    )
    # Orders: product popularity skewed; 80% paid a minute after creation; 1-3 units.
    secs_o = f"(CAST({SPAN} AS BIGINT) * o / {n_orders})" if g.pg else f"({SPAN} * o / {n_orders})"
    g.chunked(
        "orders",
        n_orders,
        lambda series: (
            "INSERT INTO orders (id, shopper_id, merchant_id, status, currency, subtotal_minor, "
            "discount_minor, total_minor, refunded_minor, created_at, updated_at, paid_at) "
            f"SELECT o, {SHOP0} + {mix('o', 3)} % {SHOPPERS}, p.merchant_id, "
            f"CASE WHEN {mix('o', 4)} % 10 < 8 THEN 'paid' ELSE 'cancelled' END, 'CNY', "
            f"k.list_price_minor * (1 + {mix('o', 5)} % 3), 0, "
            f"k.list_price_minor * (1 + {mix('o', 5)} % 3), 0, {g.ts(secs_o)}, {g.ts(secs_o)}, "
            f"CASE WHEN {mix('o', 4)} % 10 < 8 THEN {g.ts(secs_o + ' + 60')} END "
            f"FROM (SELECT x AS o, {skewed('x', 6, PRODUCTS)} AS pid FROM {series}) g "
            "JOIN products p ON p.id = g.pid JOIN skus k ON k.id = g.pid"
        ),
    )
    g.chunked(
        "order lines",
        n_orders,
        lambda series: (
            "INSERT INTO order_lines (id, order_id, sku_id, product_id, title, quantity, "
            "unit_price_minor, amount_minor, refunded_minor, refunded_quantity, "
            "restocked_quantity) "
            f"SELECT o.id, o.id, g.pid, g.pid, 'x', 1, o.total_minor, o.total_minor, 0, 0, 0 "
            f"FROM (SELECT x AS o, {skewed('x', 6, PRODUCTS)} AS pid FROM {series}) g "
            "JOIN orders o ON o.id = g.o"
        ),
    )
    # A quarter of paid orders came through a creator's link (attributed commission).
    creator = f"(1 + {mix('o.id', 8)} % {CREATORS})"
    g.chunked(
        "commissions",
        n_orders,
        lambda series: (
            "INSERT INTO commissions (id, order_id, order_line_id, merchant_id, shopper_id, "
            "creator_id, product_id, link_id, decision, status, window_days, rule_scope, "
            "base_rate_bp, bonus_bp, fee_bp, currency, amount_minor, base_minor, bonus_minor, "
            "fee_minor, refunded_minor, explanation, placed_at, paid_at) "
            f"SELECT o.id, o.id, o.id, o.merchant_id, o.shopper_id, {MERCHANTS} + {creator}, "
            f"l.product_id, {creator}, 'attributed', "
            f"CASE WHEN {mix('o.id', 9)} % 2 = 0 THEN 'pending' ELSE 'available' END, 7, "
            "'merchant', 1000, 0, 100, 'CNY', o.total_minor, o.total_minor / 10, 0, "
            "o.total_minor / 100, 0, 'bench', o.created_at, o.paid_at "
            f"FROM {series} JOIN orders o ON o.id = s.x JOIN order_lines l ON l.id = o.id "
            f"WHERE o.paid_at IS NOT NULL AND {mix('o.id', 7)} % 4 = 0"
        ),
    )
    ck = f"(1 + {mix('x', 10)} % {CREATORS})"
    click_at = g.ts(f"{mix('x', 11)} % {SPAN}")
    g.chunked(
        "clicks",
        n_orders,
        lambda series: (
            "INSERT INTO commission_clicks (id, link_id, creator_id, post_id, ip_hash, "
            f"device_hash, clicked_at) SELECT x, {ck}, {MERCHANTS} + {ck}, {ck}, 'i', 'd', "
            f"{click_at} FROM {series}"
        ),
    )
    secs_e = f"(CAST({SPAN} AS BIGINT) * x / {n_events})" if g.pg else f"({SPAN} * x / {n_events})"
    action = (
        f"CASE WHEN {mix('x', 13)} % 20 < 14 THEN 'view' "
        f"WHEN {mix('x', 13)} % 20 < 18 THEN 'click' ELSE 'cart' END"
    )
    g.chunked(
        "events",
        n_events,
        lambda series: (
            "INSERT INTO behavior_events (id, source, user_id, action, target_type, target_id, "
            "client_event_id, occurred_at, received_at) "
            f"SELECT x, 'app', {SHOP0} + {mix('x', 12)} % {SHOPPERS}, {action}, 'product', "
            f"{skewed('x', 14, PRODUCTS)}, 'e' || x, {g.ts(secs_e)}, {g.ts(secs_e)} FROM {series}"
        ),
    )
    n_imp = n_events // 10
    secs_i = f"(CAST({SPAN} AS BIGINT) * g.x / {n_imp})" if g.pg else f"({SPAN} * g.x / {n_imp})"
    g.chunked(
        "impressions",
        n_imp,
        lambda series: (
            "INSERT INTO feed_impressions (id, feed_id, user_id, item_type, item_id, "
            "merchant_id, position, reason, shown_at) "
            f"SELECT g.x, 'f', {SHOP0} + {mix('g.x', 15)} % {SHOPPERS}, 'product', g.pid, "
            f"p.merchant_id, 0, 'bench', {g.ts(secs_i)} "
            f"FROM (SELECT x, {skewed('x', 16, PRODUCTS)} AS pid FROM {series}) g "
            "JOIN products p ON p.id = g.pid"
        ),
    )
    t1 = time.perf_counter()
    if g.raw is not None:
        g.raw.execute("COMMIT")
        for name in BIG:
            for ddl in _index_ddl(name):
                g.raw.execute(ddl)
        g.raw.execute("ANALYZE")
        g.raw.close()
    else:
        with db.engine.begin() as c:
            for name in BIG:
                for ddl in _index_ddl(name):
                    c.execute(text(ddl))
        with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
            c.execute(text("VACUUM ANALYZE"))
    print(f"  indexes + analyze: {time.perf_counter() - t1:.0f}s", file=sys.stderr, flush=True)
    with db.engine.begin() as c:
        c.execute(text("CREATE TABLE bench_marker (orders BIGINT, events BIGINT)"))
        c.execute(text("INSERT INTO bench_marker VALUES (:o, :e)"), {"o": n_orders, "e": n_events})
    return time.perf_counter() - t0


def cached(db: Database, n_orders: int, n_events: int) -> bool:
    """Whether ``db`` already holds the world of these sizes."""
    if not inspect(db.engine).has_table("bench_marker"):
        return False
    with db.engine.connect() as c:
        got = c.execute(text("SELECT orders, events FROM bench_marker")).first()
    return got is not None and tuple(got) == (n_orders, n_events)
