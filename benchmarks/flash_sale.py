"""Flash-sale benchmark: one hot deal item (stock 10,000), 20,000 buy attempts over HTTP from
many concurrent clients against ``juxing serve``, on SQLite, PostgreSQL and Redis, with 1 and
2 API processes; the trivial endpoint (/healthz) is measured in the same run against the same
server, in slices that alternate with the buys' (``--rounds``, default 5).

    make bench-flash-sale
    python benchmarks/flash_sale.py [--attempts N] [--stock N] [--connections N] [--rounds N]
                                    [--scenarios sqlite:1,postgresql:1,redis:1,...]

Environment: JUXING_BENCH_DATABASE_URL (PostgreSQL, default the local juxing_deals_bench
database, created if missing), JUXING_BENCH_REDIS_URL (default redis://127.0.0.1:6379/2).
Prints a table and, as its last line, one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import httpx
from sqlalchemy import func, select, text

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

import juxing.models  # noqa: E402,F401
from juxing.catalog import service as catalog  # noqa: E402
from juxing.deals import service as deals  # noqa: E402
from juxing.deals.stock import counts_from_orders, redis_keys  # noqa: E402
from juxing.kit.db import Database  # noqa: E402
from juxing.kit.security import hash_password, hash_token  # noqa: E402
from juxing.kit.time import utcnow  # noqa: E402
from juxing.models.accounts import ApiToken, Role, User, UserRole  # noqa: E402
from juxing.models.base import Base  # noqa: E402
from juxing.models.orders import Order, OrderLine  # noqa: E402

PG_URL = os.environ.get(
    "JUXING_BENCH_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/juxing_deals_bench"
)
REDIS_URL = os.environ.get("JUXING_BENCH_REDIS_URL", "redis://127.0.0.1:6379/2")
PER_USER_LIMIT = 2


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def fresh_database(backend: str, folder: Path) -> str:
    if backend == "sqlite":
        url = f"sqlite:///{folder / 'juxing.db'}"
        db = Database(url)
    else:
        import psycopg

        base, _, name = PG_URL.rpartition("/")
        admin = psycopg.connect(
            base.replace("postgresql+psycopg", "postgresql") + "/postgres", autocommit=True
        )
        exists = admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if not exists:
            admin.execute(f'CREATE DATABASE "{name}"')
        admin.close()
        url = PG_URL
        db = Database(url)
        with db.engine.begin() as conn:
            conn.execute(text("DROP SCHEMA public CASCADE"))
            conn.execute(text("CREATE SCHEMA public"))
    db.dispose()
    if backend == "sqlite":
        # `juxing serve` migrates an embedded SQLite database itself: build it the same way.
        from juxing.kit.migrate import upgrade

        upgrade(url)
    else:
        db = Database(url)
        Base.metadata.create_all(db.engine)
        db.dispose()
    if backend == "redis":
        import redis

        client = redis.Redis.from_url(REDIS_URL)
        keys = list(client.scan_iter("juxing:deal:*", count=1000))
        if keys:
            client.delete(*keys)
        client.close()
    return url


def seed(url: str, *, stock: int, shoppers: int, backend: str) -> tuple[int, list[str]]:
    """One live hot deal item and ``shoppers`` shoppers with API tokens."""
    db = Database(url)
    now = utcnow()
    password = hash_password("bench password")
    with db.session() as s:

        def user(email: str, *roles: Role) -> User:
            u = User(
                email=email,
                display_name=email.split("@")[0],
                password_hash=password,
                locale="en",
                is_active=True,
                created_at=now,
                updated_at=now,
            )
            u.roles = [UserRole(role=r.value, granted_at=now) for r in roles]
            s.add(u)
            return u

        operator = user("ops@bench.test", Role.OPERATOR)
        owner = user("shop@bench.test", Role.MERCHANT)
        s.flush()
        merchant = catalog.create_merchant(
            session=s, owner=owner, name="Hot Shop", tier="key_account"
        )
        product = catalog.create_product(
            session=s,
            user=owner,
            merchant_id=merchant.id,
            title="Star Festival Earbuds",
            skus=[{"name": "Black", "list_price_minor": 29_900, "currency": "CNY", "stock": stock}],
        )
        festival = deals.create_festival(
            session=s,
            user=operator,
            name="Bench Star Festival",
            starts_at=now - timedelta(hours=1),
            ends_at=now + timedelta(days=1),
        )
        campaign = deals.create_campaign(
            session=s,
            user=owner,
            festival_id=festival.id,
            merchant_id=merchant.id,
            title="Hot deal",
        )
        item = deals.add_deal_item(
            session=s,
            user=owner,
            campaign_id=campaign.id,
            sku_id=product.skus[0].id,
            deal_price_minor=9_900,
            deal_stock=stock,
            per_user_limit=PER_USER_LIMIT,
            starts_at=now - timedelta(minutes=1),
            ends_at=now + timedelta(hours=12),
        )
        deals.submit_campaign(session=s, user=owner, campaign_id=campaign.id)
        deals.approve_campaign(
            session=s,
            user=operator,
            campaign_id=campaign.id,
            stock_backend="redis" if backend == "redis" else "sql",
        )
        item_id = item.id
        users = [user(f"buyer{i}@bench.test", Role.SHOPPER) for i in range(shoppers)]
        s.flush()
        tokens = []
        for u in users:
            raw = f"jx_bench_{u.id}_{os.urandom(12).hex()}"
            s.add(
                ApiToken(
                    user_id=u.id,
                    name="bench",
                    token_hash=hash_token(raw),
                    hint=raw[:10],
                    created_at=now,
                    last_used_at=now,
                )
            )
            tokens.append(raw)
    if backend != "sqlite":
        # The seeded tables get planner statistics, as a running database has. (Not the empty
        # orders tables: statistics saying "empty" would have PostgreSQL plan its foreign-key
        # checks into them as scans, and keep those plans on each connection as they grow.)
        with db.engine.begin() as conn:
            conn.execute(text("ANALYZE users, user_roles, api_tokens, deal_items"))
    db.dispose()
    return item_id, tokens


def start_server(
    url: str, backend: str, processes: int, folder: Path
) -> tuple[subprocess.Popen, int]:
    port = free_port()
    env = {
        **os.environ,
        "JUXING_DATABASE_URL": url,
        "JUXING_DATA_DIR": str(folder),
        "JUXING_PORT": str(port),
        "JUXING_HOST": "127.0.0.1",
        "JUXING_WORKERS": str(processes),
        "JUXING_INPROCESS_JOBS": "false",
        "JUXING_RATE_LIMITS_ENABLED": "false",
        "JUXING_LOG_LEVEL": "WARNING",
        "JUXING_STOCK_BACKEND": "redis" if backend == "redis" else "sql",
    }
    env.pop("JUXING_REDIS_URL", None)
    if backend == "redis":
        env["JUXING_REDIS_URL"] = REDIS_URL
    proc = subprocess.Popen(
        [str(ROOT / ".venv/bin/juxing"), "serve"],
        env=env,
        cwd=folder,
        stdout=subprocess.DEVNULL,
        stderr=(folder / "server.log").open("ab"),
    )
    deadline = time.monotonic() + 240  # a shared, loaded machine starts slowly
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                return proc, port
        except httpx.HTTPError:
            pass
        if proc.poll() is not None:
            raise RuntimeError(f"server exited: {(folder / 'server.log').read_text()[-2000:]}")
        time.sleep(0.2)
    proc.kill()
    raise RuntimeError("server did not become ready")


def run_load(plan: dict, folder: Path, tag: str) -> tuple[dict, float]:
    """Run the load generator (``_flash_load.py``, its own process) on ``plan``; its result
    and the CPU seconds it used."""
    plan_path, result_path = folder / f"plan-{tag}.json", folder / f"result-{tag}.json"
    plan_path.write_text(json.dumps({"host": "127.0.0.1"} | plan))
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(
        [sys.executable, str(ROOT / "benchmarks/_flash_load.py"), str(plan_path), str(result_path)],
        check=True,
    )
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return json.loads(result_path.read_text()), cpu


def interleaved(
    port: int, trivial: list, buys: list, args: argparse.Namespace, folder: Path, server_pid: int
) -> tuple[dict, dict]:
    """The trivial requests and the buys in ``args.rounds`` alternating slices (trivial,
    buys, trivial, buys, ...) over the same connections, each slice finished before the next
    starts; each endpoint's figures are summed over its slices. On a shared machine whose
    speed drifts within a run, both endpoints are so measured across the same stretch of
    it (measured one after the other, the ratio of two runs of the same code varied by
    ±25 %)."""
    rounds = max(1, args.rounds)

    def slices(requests: list) -> list[list]:
        size = -(-len(requests) // rounds)
        return [requests[i : i + size] for i in range(0, len(requests), size)]

    phases = []
    for t, b in zip(slices(trivial), slices(buys), strict=True):
        phases += [{"requests": t}, {"requests": b}]
    plan = {"port": port, "connections": args.connections, "server_pid": server_pid}
    result, client_cpu = run_load(plan | {"phases": phases}, folder, "measured")
    done = result["phases"]
    wall = sum(p["elapsed_s"] for p in done)
    out = []
    for kind, requests in ((done[0::2], trivial), (done[1::2], buys)):
        statuses: dict[str, int] = {}
        for p in kind:
            for status, n in p["statuses"].items():
                statuses[status] = statuses.get(status, 0) + n
        elapsed = sum(p["elapsed_s"] for p in kind)
        out.append(
            {
                "elapsed_s": elapsed,
                "latencies_ms": [lat for p in kind for lat in p["latencies_ms"]],
                "statuses": statuses,
                "bodies": [b for p in kind for b in p["bodies"]],
                "server_cpu_ms": round(
                    sum(p["server_cpu_s"] for p in kind) * 1000 / max(len(requests), 1), 3
                ),
                # the load generator's CPU share of the wall time (near 1.0: the bottleneck)
                "client_cpu": round(client_cpu / max(wall, 1e-9), 2),
            }
        )
    return out[0], out[1]


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def verify(url: str, item_id: int, stock: int, acknowledged: list[int], backend: str) -> dict:
    db = Database(url)
    with db.session(write=False) as s:
        truth = counts_from_orders(s, item_id=item_id, deal_stock=stock)
        held = truth.reserved + truth.sold
        per_user = s.execute(
            select(Order.shopper_id, func.sum(OrderLine.quantity))
            .join(OrderLine, OrderLine.order_id == Order.id)
            .where(OrderLine.deal_item_id == item_id, Order.status != "cancelled")
            .group_by(Order.shopper_id)
        ).all()
        found = set()
        for chunk in range(0, len(acknowledged), 1000):
            ids = acknowledged[chunk : chunk + 1000]
            found |= set(s.scalars(select(Order.id).where(Order.id.in_(ids))).all())
    db.dispose()
    live = None
    if backend == "redis":
        import redis

        client = redis.Redis.from_url(REDIS_URL)
        raw = client.hgetall(redis_keys(item_id)[0])
        live = {k.decode(): int(v) for k, v in raw.items()}
        client.close()
    return {
        "oversold": max(0, held - stock) + (max(0, -live["available"]) if live else 0),
        "limit_violations": sum(1 for _sid, q in per_user if q > PER_USER_LIMIT),
        "orders_missing": len(set(acknowledged) - found),
        "held": held,
        "redis_sum_ok": (sum(live.values()) == stock) if live else None,
    }


def scenario(backend: str, processes: int, args: argparse.Namespace) -> dict:
    with tempfile.TemporaryDirectory(prefix="juxing-bench-") as tmp:
        folder = Path(tmp)
        url = fresh_database(backend, folder)
        shoppers = max(1, (args.stock * 6) // (PER_USER_LIMIT * 5))  # demand 1.2x the stock
        item_id, tokens = seed(url, stock=args.stock, shoppers=shoppers, backend=backend)
        proc, port = start_server(url, backend, processes, folder)
        try:
            warm = [["GET", "/healthz", {}, None]] * 500
            run_load(
                {"port": port, "connections": args.connections, "requests": warm}, folder, "warm"
            )
            buys = [
                [
                    "POST",
                    "/api/v1/orders",
                    {"Authorization": f"Bearer {tokens[i % len(tokens)]}"},
                    {"deal_item_id": item_id, "quantity": 1},
                ]
                for i in range(args.attempts)
            ]
            healthz = [["GET", "/healthz", {}, None]] * args.trivial
            trivial, buy = interleaved(port, healthz, buys, args, folder, proc.pid)
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
        acknowledged = [json.loads(body)["id"] for status, body in buy["bodies"] if status == 201]
        errors = [
            line for line in (folder / "server.log").read_text().splitlines() if "Error" in line
        ]
        if errors:
            print(
                f"  server log of {backend}:{processes}: {len(errors)} error lines, last: "
                f"{errors[-1][:300]}",
                file=sys.stderr,
            )
        checks = verify(url, item_id, args.stock, acknowledged, backend)
    return {
        "backend": backend,
        "processes": processes,
        "load": os.getloadavg()[0],
        "client_cpu": buy["client_cpu"],
        "buy_rps": round(args.attempts / buy["elapsed_s"], 1),
        "trivial_rps": round(args.trivial / trivial["elapsed_s"], 1),
        "ratio": round(
            (args.attempts / buy["elapsed_s"]) / (args.trivial / trivial["elapsed_s"]), 3
        ),
        "buy_cpu_ms": buy["server_cpu_ms"],
        "trivial_cpu_ms": trivial["server_cpu_ms"],
        "cpu_ratio": round(trivial["server_cpu_ms"] / max(buy["server_cpu_ms"], 1e-9), 3),
        "p50_ms": round(pct(buy["latencies_ms"], 50), 2),
        "p99_ms": round(pct(buy["latencies_ms"], 99), 2),
        "statuses": buy["statuses"],
        "acknowledged": len(acknowledged),
        "oversold": checks["oversold"],
        "limit_violations": checks["limit_violations"],
        "orders_missing": checks["orders_missing"],
        "units_held": checks["held"],
    }


def median_run(rs: list[dict]) -> dict:
    """The run with the median buy/trivial ratio (its own figures, so they stay consistent);
    oversold, limit violations and missing orders are the worst of all runs."""
    ranked = sorted(rs, key=lambda r: r["ratio"])
    out = dict(ranked[(len(ranked) - 1) // 2])
    out["ratio_median"] = round(statistics.median(r["ratio"] for r in rs), 3)
    out["ratios"] = [r["ratio"] for r in rs]
    for key in ("oversold", "limit_violations", "orders_missing"):
        out[key] = max(r[key] for r in rs)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--attempts", type=int, default=20_000)
    parser.add_argument("--stock", type=int, default=10_000)
    # As many as the buys: slices of equal counts end with the same share of time spent
    # draining the connections (a short /healthz slice would lose more of it).
    parser.add_argument("--trivial", type=int, default=20_000)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument(
        "--rounds", type=int, default=5, help="alternating slices of trivial requests and buys"
    )
    parser.add_argument("--runs", type=int, default=2, help="runs of each scenario; medians")
    parser.add_argument(
        "--scenarios",
        default="sqlite:1,postgresql:1,redis:1,sqlite:2,postgresql:2,redis:2",
    )
    args = parser.parse_args()
    runs: dict[str, list[dict]] = {}
    for _round in range(args.runs):
        for spec in args.scenarios.split(","):
            backend, _, procs = spec.partition(":")
            try:
                r = scenario(backend, int(procs or 1), args)
            except Exception as exc:  # report the others rather than lose the whole run
                print(f"  {spec} failed: {exc}", file=sys.stderr)
                continue
            runs.setdefault(spec, []).append(r)
            print(
                f"  done {spec} buy {r['buy_rps']}/s trivial {r['trivial_rps']}/s "
                f"ratio {r['ratio']} cpu ms/req buy {r['buy_cpu_ms']} "
                f"trivial {r['trivial_cpu_ms']} "
                f"load {r['load']:.1f} client cpu {r['client_cpu']}",
                file=sys.stderr,
            )
    results = [median_run(rs) for rs in runs.values()]
    print(
        f"flash sale: stock {args.stock}, {args.attempts} buy attempts, "
        f"{args.connections} connections, machine: {os.cpu_count()} cores (shared), "
        f"medians of {args.runs} runs; load average (1 min) at the end of each scenario: "
        + ", ".join(f"{r['backend']}:{r['processes']} {r['load']:.1f}" for r in results)
    )
    header = (
        f"{'backend':<11}{'procs':>6}{'buy/s':>9}{'trivial/s':>11}{'ratio':>7}"
        f"{'p50 ms':>9}{'p99 ms':>9}{'ok':>7}{'oversold':>9}{'limit':>7}{'missing':>8}"
    )
    print(header)
    print("-" * len(header))
    for r in results:
        print(
            f"{r['backend']:<11}{r['processes']:>6}{r['buy_rps']:>9}{r['trivial_rps']:>11}"
            f"{r['ratio']:>7}{r['p50_ms']:>9}{r['p99_ms']:>9}{r['acknowledged']:>7}"
            f"{r['oversold']:>9}{r['limit_violations']:>7}{r['orders_missing']:>8}"
        )
    keys = (
        "backend",
        "processes",
        "buy_rps",
        "trivial_rps",
        "p50_ms",
        "p99_ms",
        "oversold",
        "limit_violations",
        "orders_missing",
    )
    extra = (
        "ratio",
        "ratios",
        "buy_cpu_ms",
        "trivial_cpu_ms",
        "cpu_ratio",
        "load",
        "client_cpu",
    )
    print(json.dumps({"results": [{k: r[k] for k in keys + extra} for r in results]}))


if __name__ == "__main__":
    main()
