"""Serving benchmark of the personalized feed: ``make bench-feed``.

Builds (or reuses, cached in ``var/bench-feed``) a world of 100,000 shoppers, 50,000
products, 20,000 posts and 2,000,000 behaviour events with a trained model, starts
``juxing serve`` (one process) on a free port, and measures

* latency of ``GET /api/v1/feed`` for random shoppers (one request at a time): p50, p99;
* throughput of the feed and of the trivial ``/healthz`` on the same server in the same run,
  alternating rounds with a fixed number of keep-alive connections;
* how many feed pages came from a kept ranking (``X-Feed-Cache: hit``: the fast path) and, in
  one more round, the cost of ranking on every request (an unknown query parameter sends
  every request to the regular route, which ranks it).

Prints a table, and as its last line one JSON object with p50_ms, p99_ms, feed_rps,
trivial_rps. The load generator runs on the same machine, so ratios are what to compare.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _feed_world import build_world, world_is_cached  # noqa: E402
from _proc import HAVE_PROC, cpu_seconds  # noqa: E402


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Conn:
    """A minimal HTTP/1.1 keep-alive client connection (the load generator must be cheap)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    hits = 0  # responses marked X-Feed-Cache: hit, over all connections

    async def get(self, path: str, token: str | None = None) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        assert self.reader is not None
        auth = f"Authorization: Bearer {token}\r\n" if token else ""
        request = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{auth}Connection: keep-alive\r\n\r\n"
        self.writer.write(request.encode())
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        length = 0
        for line in head.split(b"\r\n"):
            low = line.lower()
            if low.startswith(b"content-length:"):
                length = int(line.split(b":", 1)[1])
            elif low.startswith(b"x-feed-cache:"):
                Conn.hits += 1
        body = await self.reader.readexactly(length)
        return status, body

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


async def _latency(port: int, tokens: list[str], n: int) -> list[float]:
    conn = Conn(port)
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        status, body = await conn.get("/api/v1/feed?limit=20", random.choice(tokens))
        out.append((time.perf_counter() - t0) * 1000)
        if status != 200:
            raise RuntimeError(f"feed answered {status}: {body[:200]!r}")
    conn.close()
    return out


async def _throughput(
    port: int, path: str, tokens: list[str] | None, conns: int, secs: float
) -> tuple[float, int]:
    """Requests per second over ``secs`` with ``conns`` keep-alive connections, and the count."""
    done = 0
    stop = time.perf_counter() + secs

    async def worker() -> None:
        nonlocal done
        conn = Conn(port)
        while time.perf_counter() < stop:
            status, _ = await conn.get(path, random.choice(tokens) if tokens else None)
            if status != 200:
                raise RuntimeError(f"{path} answered {status}")
            done += 1
        conn.close()

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(conns)))
    return done / (time.perf_counter() - t0), done


async def _round(
    pid: int, port: int, path: str, tokens: list[str] | None, args: argparse.Namespace
) -> tuple[float, float | None, float]:
    """One throughput round: requests per second, the server's CPU milliseconds per request,
    and the share of responses served from a kept ranking.

    A feed page's impressions are written to the database by the server's writer thread
    every few seconds, partly after the round: the round's CPU is therefore counted until
    its journal is written (``_drain``), and that remaining write time is added to the
    round's time (the throughput the server sustains when it has to keep up with its
    writes; the pages answered within the round alone are ``raw_rps``)."""
    cpu0, hits0 = cpu_seconds([pid]), Conn.hits
    t0 = time.perf_counter()
    rps, n = await _throughput(port, path, tokens, args.conns, args.seconds)
    elapsed = time.perf_counter() - t0
    cpu_round = cpu_seconds([pid]) - cpu0
    drained = await _drain(args.journal)
    cpu_total = cpu_seconds([pid]) - cpu0
    if HAVE_PROC and n:
        per = cpu_total * 1000 / n
        rps = n / (elapsed + max(0.0, cpu_total - cpu_round)) if drained else rps
    else:
        per = None
    args.raw_rps.setdefault(path, []).append(round(n / elapsed, 1) if elapsed else 0.0)
    return rps, per, (Conn.hits - hits0) / n if n else 0.0


async def _drain(journal: Path, timeout: float = 120.0) -> bool:
    """Wait until the server has written every journaled impression (its segments are
    deleted once written); False if it did not within ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not any(p.suffix == ".jsonl" for p in journal.glob("*.jsonl")):
            return True
        await asyncio.sleep(0.05)
    return False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dir", default=os.environ.get("JUXING_BENCH_DIR", "var/bench-feed"))
    parser.add_argument("--requests", type=int, default=2000, help="latency samples")
    parser.add_argument("--seconds", type=float, default=5.0, help="per throughput round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--conns", type=int, default=8)
    parser.add_argument("--rebuild", action="store_true")
    parser.add_argument(
        "--keep-impressions",
        action="store_true",
        help="keep the impressions of earlier runs (each run writes 2-3 million rows)",
    )
    args = parser.parse_args()
    folder = (ROOT / args.dir).resolve()
    meta = None if args.rebuild else world_is_cached(folder)
    if meta is None:
        meta = build_world(folder, log=lambda m: print(m, file=sys.stderr, flush=True))
    tokens: list[str] = meta["tokens"]
    args.journal = folder / "feed" / "impressions"
    args.raw_rps = {}
    # What the worker does in production: neighbour lists of the active model (once) and
    # the catalog snapshot the API process loads (never built inside the server).
    started = time.perf_counter()
    _serving_artifacts(folder, keep_impressions=args.keep_impressions)
    print(f"serving artifacts {time.perf_counter() - started:.1f} s", file=sys.stderr, flush=True)
    port = _free_port()
    env = {
        **os.environ,
        "JUXING_DATA_DIR": str(folder),
        "JUXING_INPROCESS_JOBS": "false",
        "JUXING_LOG_LEVEL": "WARNING",
        "JUXING_RATE_LIMITS_ENABLED": "false",
    }
    env.pop("JUXING_DATABASE_URL", None)
    env.pop("JUXING_REDIS_URL", None)
    juxing = Path(sys.executable).parent / "juxing"
    server = subprocess.Popen(
        [str(juxing), "serve", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
        env=env,
    )
    try:
        asyncio.run(_wait_ready(port))
        rows = asyncio.run(_measure(server.pid, port, tokens, args))
    finally:
        server.terminate()
        server.wait(timeout=20)
    load = os.getloadavg()
    print(f"world: {meta['sizes']}")
    loads = " ".join(f"{x:.1f}" for x in load)
    print(f"machine: {os.cpu_count()} cores, load average {loads} (shared)")
    print(f"world build {meta['build_seconds']} s, model training {meta['train_seconds']} s")
    print(f"{'measure':<40}{'value':>22}")
    for name, value in rows.items():
        print(f"{name:<40}{value:>22}")
    print(
        json.dumps(
            {
                "p50_ms": rows["feed p50 ms (1 conn)"],
                "p99_ms": rows["feed p99 ms (1 conn)"],
                "feed_rps": rows["feed rps"],
                "trivial_rps": rows["healthz rps"],
                "ratio": rows["feed / healthz"],
                "p99_ms_loaded": rows[f"feed p99 ms ({args.conns} conns)"],
                "train_s": meta["train_seconds"],
                "load_avg_1m": round(load[0], 1),
                "feed_cpu_ms": rows.get("feed server CPU ms/request"),
                "trivial_cpu_ms": rows.get("healthz server CPU ms/request"),
                "kept_share": rows["kept share (feed rounds)"],
                "ranked_cpu_ms": rows.get("ranked every request CPU ms/request"),
            }
        )
    )


def _serving_artifacts(folder: Path, *, keep_impressions: bool = False) -> None:
    from sqlalchemy import delete, func, select

    from juxing.feed.service import ensure_default_policy
    from juxing.feed.training import build_serving_artifacts
    from juxing.kit.db import Database
    from juxing.models.feed import FeedImpression

    db = Database(f"sqlite:///{(folder / 'juxing.db').resolve()}")
    try:
        # The feed is measured as it is served: with the default long-tail traffic policy
        # active (as `juxing demo` sets it up), so the policy re-rank is part of every request.
        with db.session() as session:
            # Every run starts from the world as built: the impressions of earlier runs
            # (2-3 million rows each) would make each run's writes and exposure differ.
            if not keep_impressions:
                session.execute(delete(FeedImpression))
            rows = session.scalar(select(func.count()).select_from(FeedImpression))
            print(f"impressions in the table at start: {rows:,}", file=sys.stderr, flush=True)
            ensure_default_policy(session=session)
        build_serving_artifacts(db, folder)
    finally:
        db.dispose()


async def _wait_ready(port: int) -> None:
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        try:
            conn = Conn(port)
            status, _ = await conn.get("/healthz")
            conn.close()
            if status == 200:
                return
        except OSError:
            pass
        await asyncio.sleep(0.2)
    raise RuntimeError("juxing serve did not start")


async def _measure(
    pid: int, port: int, tokens: list[str], args: argparse.Namespace
) -> dict[str, float | str]:
    # Warm up: the first requests load the snapshot and the neighbour lists into memory.
    await _latency(port, tokens, 200)
    hits0 = Conn.hits
    lat = sorted(await _latency(port, tokens, args.requests))
    latency_hits = (Conn.hits - hits0) / len(lat)
    await _drain(args.journal)  # the rounds start with no writes pending
    feed: list[float] = []
    trivial: list[float] = []
    feed_cpu: list[float] = []
    trivial_cpu: list[float] = []
    feed_hits: list[float] = []
    for _ in range(args.rounds):
        rps, cpu, _hits = await _round(pid, port, "/healthz", None, args)
        trivial.append(rps)
        trivial_cpu += [cpu] if cpu is not None else []
        rps, cpu, hits = await _round(pid, port, "/api/v1/feed?limit=20", tokens, args)
        feed.append(rps)
        feed_cpu += [cpu] if cpu is not None else []
        feed_hits.append(hits)
    loaded = sorted(await _loaded_latency(port, tokens, args.conns, args.seconds))
    await _drain(args.journal)
    # Every request ranked (what a request costs when no ranking is kept for the shopper).
    ranked_rps, ranked_cpu, _hits = await _round(
        pid, port, "/api/v1/feed?limit=20&bench=rank-every-request", tokens, args
    )
    feed_rps, trivial_rps = statistics.median(feed), statistics.median(trivial)
    rows = {
        "feed p50 ms (1 conn)": round(lat[len(lat) // 2], 2),
        "feed p90 ms (1 conn)": round(lat[int(len(lat) * 0.9) - 1], 2),
        "feed p99 ms (1 conn)": round(lat[int(len(lat) * 0.99) - 1], 2),
        "feed max ms (1 conn)": round(lat[-1], 2),
        f"feed p99 ms ({args.conns} conns)": round(loaded[int(len(loaded) * 0.99) - 1], 2),
        "feed rps": round(feed_rps, 1),
        "healthz rps": round(trivial_rps, 1),
        "feed / healthz": round(feed_rps / trivial_rps, 3),
        "kept share (latency requests)": round(latency_hits, 3),
        "kept share (feed rounds)": " / ".join(f"{h:.3f}" for h in feed_hits),
        "feed rps, ranked every request": round(ranked_rps, 1),
        "feed rps within rounds (writes after)": " / ".join(
            str(x) for x in args.raw_rps.get("/api/v1/feed?limit=20", [])
        ),
    }
    if feed_cpu and trivial_cpu:
        # Server CPU per request does not depend on how much CPU the shared machine leaves us.
        rows["feed server CPU ms/request"] = round(statistics.median(feed_cpu), 3)
        rows["healthz server CPU ms/request"] = round(statistics.median(trivial_cpu), 3)
        rows["healthz / feed CPU per request"] = round(
            statistics.median(trivial_cpu) / statistics.median(feed_cpu), 3
        )
        if ranked_cpu is not None:
            rows["ranked every request CPU ms/request"] = round(ranked_cpu, 3)
    return rows


async def _loaded_latency(port: int, tokens: list[str], conns: int, secs: float) -> list[float]:
    out: list[float] = []
    stop = time.perf_counter() + secs

    async def worker() -> None:
        conn = Conn(port)
        while time.perf_counter() < stop:
            t0 = time.perf_counter()
            await conn.get("/api/v1/feed?limit=20", random.choice(tokens))
            out.append((time.perf_counter() - t0) * 1000)
        conn.close()

    await asyncio.gather(*(worker() for _ in range(conns)))
    return out


if __name__ == "__main__":
    main()
