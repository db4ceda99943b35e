"""Search benchmark: latency (p50/p99) and throughput over 100,000 posts, on SQLite (FTS5)
and PostgreSQL (tsvector + GIN).

    make bench-search                       # SQLite, and PostgreSQL if JUXING_BENCH_PG_URL is set
    python benchmarks/search.py --posts 20000 --pg postgresql+psycopg://postgres@127.0.0.1/x

Posts are generated from a fixed Chinese + English shopping vocabulary (seeded), indexed
through the real table, triggers and GIN index; each query goes through
``juxing.search.service.search`` (jieba segmentation, ranked full-text match, filters, count
and one page of 20), exactly as ``GET /api/v1/search`` does.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import threading
import time
from datetime import timedelta
from pathlib import Path

from sqlalchemy import insert, text

import juxing.models  # noqa: F401
from juxing.kit.db import Database
from juxing.kit.time import utcnow
from juxing.models.base import Base
from juxing.models.search import SearchDocument
from juxing.search import service
from juxing.search.segment import index_tokens
from juxing.search.service import DocumentKind

_ZH = ("防晒霜 面霜 精华液 口红 眼影 粉底 洗面奶 面膜 保湿 美白 抗老 敏感肌 油皮 干皮 "
      "电水壶 炒锅 刀具 空气炸锅 咖啡机 破壁机 登山鞋 帐篷 睡袋 冲锋衣 耳机 充电宝 手机壳 "
      "键盘 奶粉 纸尿裤 婴儿车 连衣裙 外套 毛衣 牛仔裤 绿茶 红茶 乌龙茶 手工 推荐 测评 "
      "开箱 好物 平价 大牌 清单 合集 夏季 冬季 学生党 上班族 送礼 新品 必买 种草"
      )  # fmt: skip
_EN = ("sunscreen moisturizer serum lipstick foundation cleanser mask kettle wok knife "
      "fryer espresso blender boots tent sleeping bag jacket earbuds charger case keyboard "
      "formula diapers stroller dress coat sweater jeans tea oolong handmade review unboxing "
      "picks budget premium guide summer winter student gift new musthave")  # fmt: skip
ZH, EN = _ZH.split(), _EN.split()
QUERIES_ZH = ["防晒霜", "面霜 保湿", "空气炸锅", "登山鞋 测评", "乌龙茶", "学生党 平价 口红",
              "婴儿车", "冲锋衣 冬季", "开箱", "手工 绿茶"]  # fmt: skip
QUERIES_EN = ["sunscreen", "serum review", "espresso", "tent guide", "budget lipstick",
              "winter coat", "earbuds", "handmade tea", "stroller picks", "gift"]  # fmt: skip


def _zipf(words: list[str], rng: random.Random) -> tuple[list[str], list[float]]:
    """Word frequencies fall off like natural text (the k-th word ~ 1/k), in a seeded order."""
    order = words[:]
    rng.shuffle(order)
    return order, [1.0 / (k + 1) for k in range(len(order))]


def make_rows(n: int, seed: int = 7) -> list[dict[str, object]]:
    rng = random.Random(seed)
    zh, zh_w = _zipf(ZH, rng)
    en, en_w = _zipf(EN, rng)
    now = utcnow()
    rows = []
    for i in range(1, n + 1):
        vocab, weights = (zh, zh_w) if i % 3 else (en, en_w)
        words = rng.choices(vocab, weights, k=rng.randint(6, 20))
        # A model number per post, as real listings have (many distinct rare tokens).
        words.append(f"{rng.choice('ABCDEFGHJKLMNPQRSTUVWXYZ')}{rng.randint(100, 9999)}")
        title = " ".join(words[:4]) if vocab is EN else "".join(words[:4])
        body = " ".join(words[4:])
        on_deal = rng.random() < 0.3
        start = now - timedelta(hours=rng.randint(1, 48)) if on_deal else None
        rows.append(
            {
                "kind": DocumentKind.POST.value,
                "ref_id": i,
                "title": title[:200],
                "snippet": body[:300],
                "tokens": index_tokens(title, body),
                "category_id": rng.randint(1, 20),
                "price_minor": rng.randint(990, 99900),
                "currency": "CNY",
                "deal_starts_at": start,
                "deal_ends_at": (start + timedelta(hours=72)) if start else None,
                "boost": rng.randint(0, 5),
                "updated_at": now,
            }
        )
    return rows


def build(url: str, n: int) -> tuple[Database, float]:
    db = Database(url)
    with db.engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("DROP SCHEMA public CASCADE"))
            conn.execute(text("CREATE SCHEMA public"))
    Base.metadata.create_all(db.engine)
    started = time.perf_counter()
    rows = make_rows(n)  # jieba segmentation is part of indexing
    with db.engine.begin() as conn:
        for i in range(0, len(rows), 5000):
            conn.execute(insert(SearchDocument), rows[i : i + 5000])
        if conn.dialect.name == "postgresql":
            conn.execute(text("ANALYZE search_documents"))
        else:
            conn.execute(text("INSERT INTO search_fts(search_fts) VALUES ('optimize')"))
    return db, time.perf_counter() - started


def query_mix(rng: random.Random) -> dict[str, object]:
    q = rng.choice(QUERIES_ZH + QUERIES_EN)
    roll = rng.random()
    kw: dict[str, object] = {"query": q}
    if roll < 0.2:
        kw["min_price_minor"], kw["max_price_minor"] = 5000, 20000
    elif roll < 0.35:
        kw["on_deal_now"] = True
    elif roll < 0.5:
        kw["category_id"] = rng.randint(1, 20)
    if rng.random() < 0.2:
        kw["offset"] = 20
    return kw


def run_one(db: Database, kw: dict[str, object]) -> tuple[float, int]:
    started = time.perf_counter()
    with db.session(write=False) as session:
        result = service.search(session=session, **kw)  # type: ignore[arg-type]
    return time.perf_counter() - started, result.total


def measure(db: Database, *, queries: int, seconds: float, threads: int) -> dict[str, float]:
    rng = random.Random(11)
    for _ in range(10):  # warm caches and jieba
        run_one(db, query_mix(rng))
    lat = []
    hits = []
    for _ in range(queries):
        t, total = run_one(db, query_mix(rng))
        lat.append(t)
        hits.append(total)
    lat.sort()
    done = [0] * threads
    stop = time.perf_counter() + seconds

    def worker(k: int) -> None:
        r = random.Random(100 + k)
        while time.perf_counter() < stop:
            run_one(db, query_mix(r))
            done[k] += 1

    pool = [threading.Thread(target=worker, args=(k,)) for k in range(threads)]
    begin = time.perf_counter()
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    elapsed = time.perf_counter() - begin
    return {
        "p50_ms": round(statistics.median(lat) * 1000, 2),
        "p99_ms": round(lat[int(len(lat) * 0.99) - 1] * 1000, 2),
        "mean_ms": round(statistics.fmean(lat) * 1000, 2),
        "qps": round(sum(done) / elapsed, 1),
        "median_matches": int(statistics.median(hits)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--posts", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--pg", default=os.environ.get("JUXING_BENCH_PG_URL"))
    args = parser.parse_args()
    backends = [("sqlite", f"sqlite:///{Path(tempfile.mkdtemp(prefix='jx-bench-')) / 's.db'}")]
    if args.pg:
        backends.append(("postgresql", args.pg))
    figures: dict[str, object] = {"posts": args.posts, "threads": args.threads}
    print(
        f"search over {args.posts:,} posts; {args.queries} timed queries, then {args.threads} "
        f"threads for {args.seconds:.0f}s (machine: {os.cpu_count()} cpus, shared)"
    )
    print(
        f"{'backend':<11} {'index s':>8} {'p50 ms':>8} {'p99 ms':>8} {'mean ms':>8} "
        f"{'q/s':>8} {'matches':>8}"
    )
    for name, url in backends:
        db, build_s = build(url, args.posts)
        try:
            m = measure(db, queries=args.queries, seconds=args.seconds, threads=args.threads)
        finally:
            db.dispose()
        m["index_s"] = round(build_s, 1)
        figures[name] = m
        print(f"{name:<11} {m['index_s']:>8} {m['p50_ms']:>8} {m['p99_ms']:>8} "
              f"{m['mean_ms']:>8} {m['qps']:>8} {m['median_matches']:>8}")  # fmt: skip
        sys.stdout.flush()
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
