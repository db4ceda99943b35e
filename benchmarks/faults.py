"""Fault injection (``make test-faults``): the production profile under crashes.

Per run: a fresh PostgreSQL database (``juxing_faults``) and a private redis-server, two
``juxing serve`` processes and one ``juxing worker`` (JUXING_ENV=production). Shoppers
click creators' tracking links, buy deal items (Redis-backed and SQL-backed stock, per-user
limits), pay through the simulated provider's signed callbacks (sometimes delivered twice),
cancel, and merchants refund, all with ``Idempotency-Key`` retries, while a seeded schedule
SIGKILLs and restarts the API processes, the worker and Redis. Then it checks:

- deal stock: available + reserved + sold == deal stock, none negative (no oversell), from
  the orders in SQL and, after the deals reconciliation, the live counters too;
- per-user limits held (units held per shopper and item);
- every acknowledged order, payment, refund, callback and click present, each exactly once
  (every order/payment/refund row belongs to exactly one stored idempotent response);
- ledger reconciliation clean (``juxing ledger check``).

The seed fixes the fault schedule and every client's choices (thread timing still varies).
Usage: ``python benchmarks/faults.py [--seed N] [--runs R] [--seconds S]``; the admin
database URL comes from JUXING_TEST_DATABASE_URL (default: local postgres). Prints a table
and, last, one JSON line; exits 1 on any violation.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import func, select

from juxing.ops.cluster import (
    PAYMENT_SECRET,
    Cluster,
    Proc,
    World,
    _juxing_bin,
    fresh_database,
    seed_world,
)

DEFAULT_ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
RETRY_FOR_S = 45.0
STARTUP_GRACE_S = 60.0  # a (re)started API process may take this long to answer /healthz


# --- the world ------------------------------------------------------------------------------


# --- the traffic ----------------------------------------------------------------------------


@dataclass
class Ledger:
    """What clients were told (acknowledged = a 2xx reached the client)."""

    orders: dict[int, dict[str, Any]] = field(default_factory=dict)
    payments: dict[int, dict[str, Any]] = field(default_factory=dict)
    refunds: dict[int, int] = field(default_factory=dict)  # refund id -> order id
    callbacks: list[tuple[int, str]] = field(default_factory=list)  # (payment id, outcome)
    cancelled: set[int] = field(default_factory=set)
    clicks: int = 0
    click_attempts: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)


class Client:
    """HTTP to whichever API process answers; retries one request (same key, same body)
    through crashes until it gets a definite answer."""

    def __init__(self, urls: list[str], rng: random.Random) -> None:
        self.urls = urls
        self.rng = rng
        self.http = httpx.Client(timeout=10, follow_redirects=False)
        self.sends = 0  # HTTP requests actually sent, retries included

    def call(
        self, method: str, path: str, *, headers: dict[str, str], **kw: Any
    ) -> httpx.Response | None:
        deadline = time.monotonic() + RETRY_FOR_S
        while time.monotonic() < deadline:
            url = self.rng.choice(self.urls) + path
            self.sends += 1
            try:
                r = self.http.request(method, url, headers=headers, **kw)
            except httpx.HTTPError:
                time.sleep(0.2)
                continue
            in_progress = r.status_code == 409 and "idempotency_in_progress" in r.text
            if r.status_code >= 500 or in_progress:
                time.sleep(0.3)
                continue
            return r
        return None

    def close(self) -> None:
        self.http.close()


def shopper_loop(world: World, urls: list[str], seed: int, deadline: float, book: Ledger) -> None:
    """One client thread: click, buy, pay (signed callbacks), cancel, get refunded."""
    from juxing.deals.payments import SIGNATURE_HEADER, SimulatedProvider

    rng = random.Random(seed)
    client = Client(urls, rng)
    provider = SimulatedProvider(PAYMENT_SECRET)
    merchant = {"Authorization": f"Bearer {world.merchant_token}"}
    shopper_ids = sorted(world.shopper_tokens)
    item_ids = sorted(world.items)
    visitor: dict[int, str] = {}

    def note(outcome: str) -> None:
        with book.lock:
            book.outcomes[outcome] += 1

    try:
        while time.monotonic() < deadline:
            sid = rng.choice(shopper_ids)
            item_id = rng.choices(item_ids, weights=[5, 2, 3])[0]
            auth = {"Authorization": f"Bearer {world.shopper_tokens[sid]}"}
            if rng.random() < 0.5:
                tok = rng.choice(world.link_tokens[item_id])
                # A click carries no idempotency key: every send that reaches a server may be
                # recorded (a retry after a crash records the click again), so count sends.
                before = client.sends
                r = client.call("GET", f"/t/{tok}", headers={})
                with book.lock:
                    book.click_attempts += client.sends - before
                if r is not None and r.status_code == 302:
                    vid = r.cookies.get("juxing_vid")
                    if vid:
                        visitor[sid] = vid
                    with book.lock:
                        book.clicks += 1
            headers = {**auth, "Idempotency-Key": uuid.uuid4().hex}
            if sid in visitor:
                headers["Cookie"] = f"juxing_vid={visitor[sid]}"
            qty = rng.choice([1, 1, 1, 2])
            r = client.call(
                "POST",
                "/api/v1/orders",
                headers=headers,
                json={"deal_item_id": item_id, "quantity": qty},
            )
            if r is None:
                note("order_unanswered")
                continue
            if r.status_code != 201:
                note(f"order_{r.json().get('error', {}).get('code', r.status_code)}")
                continue
            order = r.json()
            with book.lock:
                book.orders[order["id"]] = {
                    "shopper": sid,
                    "item": item_id,
                    "quantity": qty,
                    "total": order.get("total_minor"),
                }
            note("order_ok")
            roll = rng.random()
            if roll < 0.12:
                r = client.call("POST", f"/api/v1/orders/{order['id']}/cancel", headers=auth)
                if r is not None and r.status_code == 200:
                    with book.lock:
                        book.cancelled.add(order["id"])
                    note("cancel_ok")
                continue
            if roll > 0.85:
                note("left_unpaid")
                continue
            r = client.call(
                "POST",
                f"/api/v1/orders/{order['id']}/pay",
                headers={**auth, "Idempotency-Key": uuid.uuid4().hex},
            )
            if r is None or r.status_code != 201:
                note("pay_unanswered" if r is None else f"pay_{r.status_code}")
                continue
            pay = r.json()
            with book.lock:
                book.payments[pay["id"]] = {"order": order["id"], "amount": pay["amount_minor"]}
            note("pay_ok")
            body, sig = provider.callback(
                provider_ref=pay["provider_ref"],
                outcome="succeeded",
                amount_minor=pay["amount_minor"],
                currency=pay["currency"],
                event_id=f"evt_{uuid.UUID(int=rng.getrandbits(128)).hex}",
            )
            cb_headers = {SIGNATURE_HEADER: sig, "Content-Type": "application/json"}
            for _ in range(2 if rng.random() < 0.25 else 1):
                r = client.call(
                    "POST", "/api/v1/payments/callbacks/simulated", headers=cb_headers, content=body
                )
                if r is not None and r.status_code == 200:
                    outcome = r.json()["outcome"]
                    with book.lock:
                        book.callbacks.append((pay["id"], outcome))
                    note(f"callback_{outcome}")
            if rng.random() < 0.25:
                r = client.call(
                    "POST",
                    f"/api/v1/orders/{order['id']}/refunds",
                    headers={**merchant, "Idempotency-Key": uuid.uuid4().hex},
                    json={"reason": "fault suite"},
                )
                if r is not None and r.status_code == 201:
                    with book.lock:
                        book.refunds[r.json()["id"]] = order["id"]
                    note("refund_ok")
                else:
                    note("refund_unanswered" if r is None else f"refund_{r.status_code}")
    finally:
        client.close()


# --- faults ---------------------------------------------------------------------------------


def fault_loop(
    cluster: Cluster,
    seed: int,
    deadline: float,
    log: list[dict[str, Any]],
    stop: threading.Event,
    lock: threading.Lock,
) -> None:
    """SIGKILL an API process, the worker or Redis at seeded moments; restart it after a
    seeded pause."""
    rng = random.Random(seed * 7919 + 1)
    assert cluster.redis is not None and cluster.redis.proc is not None
    targets: list[Proc] = [*cluster.api_procs]
    if cluster.worker_proc is not None:
        targets.append(cluster.worker_proc)
    targets.append(cluster.redis.proc)
    weights = [3] * len(cluster.api_procs) + [2, 2][: len(targets) - len(cluster.api_procs)]
    t0 = time.monotonic()
    while not stop.wait(rng.uniform(2.0, 6.0)) and time.monotonic() < deadline:
        proc = rng.choices(targets, weights=weights)[0]
        down_s = rng.uniform(0.2, 2.5)
        at = round(time.monotonic() - t0, 2)
        with lock:
            proc.kill()
            time.sleep(down_s)
            if proc.name == "redis":
                cluster.redis.start()
            else:
                proc.start()  # not waited for: the next fault may hit it while it starts
        log.append({"at_s": at, "target": proc.name, "down_s": round(down_s, 2)})


def watchdog_loop(
    cluster: Cluster, log: list[dict[str, Any]], stop: threading.Event, lock: threading.Lock
) -> None:
    """A liveness probe, as an orchestrator runs one: an API process whose /healthz has not
    answered for 3 probes in a row (5 s timeout each) is SIGKILLed and restarted."""
    misses: dict[str, int] = {}
    while not stop.wait(2.0):
        for proc in cluster.api_procs:
            starting = time.monotonic() - proc.started_at < STARTUP_GRACE_S
            if not proc.alive or proc.ready_url is None or starting:
                misses[proc.name] = 0
                continue
            try:
                ok = httpx.get(proc.ready_url, timeout=5).status_code == 200
            except httpx.HTTPError:
                ok = False
            misses[proc.name] = 0 if ok else misses.get(proc.name, 0) + 1
            if misses[proc.name] >= 3:
                with lock:
                    if proc.alive:
                        proc.kill()
                        proc.start()
                        proc.wait_ready()
                        log.append({"target": proc.name, "reason": "liveness probe failed"})
                misses[proc.name] = 0


# --- the checks -----------------------------------------------------------------------------


def check(cluster: Cluster, world: World, book: Ledger) -> tuple[list[str], dict[str, Any]]:
    """Every invariant; returns (violations, figures)."""
    from juxing.deals.reconcile import check_item, reconcile_redis
    from juxing.deals.stock import counts_from_orders
    from juxing.kit.db import Database
    from juxing.kit.redis import make_redis
    from juxing.kit.time import utcnow
    from juxing.models.commission import Click
    from juxing.models.deals import DealItem
    from juxing.models.kit import IdempotencyRecord
    from juxing.models.orders import Order, OrderLine, Payment, ProviderCallback, Refund

    assert cluster.redis is not None
    violations: list[str] = []
    figures: dict[str, Any] = {}
    db = Database(cluster.database_url)
    rds = make_redis(cluster.redis.url)
    try:
        with db.session() as s:
            # 1. Deal stock from the orders (the truth): no oversell, limits held.
            for item_id, spec in world.items.items():
                item = s.get(DealItem, item_id)
                assert item is not None
                truth = counts_from_orders(s, item_id=item_id, deal_stock=item.deal_stock)
                counts = (truth.available, truth.reserved, truth.sold)
                if sum(counts) != spec["stock"] or min(counts) < 0:
                    violations.append(f"stock item {item_id}: (avail, reserved, sold)={counts}")
                over = {u: q for u, q in truth.holdings.items() if q > spec["limit"]}
                if over:
                    violations.append(f"per-user limit item {item_id}: {over}")
                figures[f"item{item_id}_{spec['backend']}"] = {
                    "available": truth.available,
                    "reserved": truth.reserved,
                    "sold": truth.sold,
                }
            # The live counters after the deals reconciliation (Redis loses its keys on a
            # restart; the worker's sweep or the next purchase rebuilds them from SQL).
            figures["redis_rebuilt"] = reconcile_redis(session=s, redis_client=rds)["rebuilt"]
        with db.session() as s:
            for item_id in world.items:
                report = check_item(session=s, deal_item_id=item_id, redis_client=rds)
                if not report["ok"]:
                    violations.append(f"live counters item {item_id}: {report}")

            # 2. Exactly once: every row belongs to one stored idempotent response.
            def idem_ids(pattern: str) -> list[int]:
                rows = s.scalars(
                    select(IdempotencyRecord.response_body).where(
                        IdempotencyRecord.method == "POST",
                        IdempotencyRecord.path.like(pattern),
                        IdempotencyRecord.state == "done",
                        IdempotencyRecord.response_status == 201,
                    )
                ).all()
                return [json.loads(b)["id"] for b in rows if b]

            order_keys = idem_ids("/api/v1/orders")
            order_rows = dict(s.execute(select(Order.id, Order.shopper_id)).all())
            if sorted(order_keys) != sorted(order_rows):
                violations.append(
                    f"orders vs idempotent responses: {len(order_rows)} rows, "
                    f"{len(order_keys)} responses, {len(set(order_keys))} distinct"
                )
            for oid, spec in book.orders.items():
                if order_rows.get(oid) != spec["shopper"]:
                    violations.append(f"acknowledged order {oid} missing or not its shopper's")
            qty = dict(
                s.execute(
                    select(OrderLine.order_id, func.sum(OrderLine.quantity)).group_by(
                        OrderLine.order_id
                    )
                ).all()
            )
            for oid, spec in book.orders.items():
                if int(qty.get(oid, 0)) != spec["quantity"]:
                    violations.append(f"order {oid}: quantity {qty.get(oid)} != {spec['quantity']}")
            pay_keys = set(idem_ids("/api/v1/orders/%/pay"))
            payments = {p.id: p for p in s.scalars(select(Payment))}
            orphans = set(payments) - pay_keys
            if orphans:
                violations.append(
                    f"payments without an acknowledged-able response: {sorted(orphans)[:10]}"
                )
            for pid, spec in book.payments.items():
                p = payments.get(pid)
                if p is None or p.order_id != spec["order"] or p.amount_minor != spec["amount"]:
                    violations.append(f"acknowledged payment {pid} missing or altered")
            succeeded = Counter(p.order_id for p in payments.values() if p.status == "succeeded")
            doubled = {o: n for o, n in succeeded.items() if n > 1}
            if doubled:
                violations.append(f"orders paid more than once: {doubled}")
            orders = {o.id: o for o in s.scalars(select(Order))}
            for pid, outcome in book.callbacks:
                if outcome == "paid":
                    p = payments[pid]
                    if p.status != "succeeded":
                        violations.append(
                            f"callback {outcome} acknowledged, payment {pid} {p.status}"
                        )
            for oid, o in orders.items():
                if o.paid_at is not None and succeeded.get(oid, 0) != 1:
                    refunded_late = any(
                        p.order_id == oid and p.status in ("refunded", "succeeded")
                        for p in payments.values()
                    )
                    if not refunded_late:
                        violations.append(f"order {oid} paid without a succeeded payment")
            for oid in book.cancelled:
                if orders[oid].status != "cancelled":
                    violations.append(f"acknowledged cancel of order {oid}: {orders[oid].status}")
            refund_keys = idem_ids("/api/v1/orders/%/refunds")
            refund_rows = dict(s.execute(select(Refund.id, Refund.order_id)).all())
            for rid, oid in book.refunds.items():
                if refund_rows.get(rid) != oid:
                    violations.append(f"acknowledged refund {rid} missing")
            if len(set(refund_keys)) != len(refund_keys):
                violations.append("two refund keys answered with the same refund")
            events = s.scalar(select(func.count()).select_from(ProviderCallback)) or 0
            clicks = s.scalar(select(func.count()).select_from(Click)) or 0
            if clicks < book.clicks or clicks > book.click_attempts:
                violations.append(
                    f"clicks: {clicks} rows, {book.clicks} acknowledged, {book.click_attempts} sent"
                )
            overdue = s.scalar(
                select(func.count())
                .select_from(Order)
                .where(
                    Order.status == "pending_payment",
                    Order.expires_at < utcnow() - timedelta(seconds=30),
                )
            )
            figures.update(
                unpaid_past_deadline_30s=int(overdue or 0),
                orders=len(order_rows),
                payments=len(payments),
                paid_orders=sum(1 for o in orders.values() if o.paid_at is not None),
                refunds=len(refund_rows),
                callbacks_recorded=int(events),
                clicks=int(clicks),
            )
    finally:
        rds.close()
        db.dispose()
    # 3. The ledger, with the ledger's own command.
    r = subprocess.run(
        [_juxing_bin(), "ledger", "check", "--json"],
        env=cluster.env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    try:
        report = json.loads(r.stdout.strip().splitlines()[-1])
        figures["ledger_entries"] = report["checked_entries"]
        if not report["ok"]:
            violations.append(f"ledger check: {report['discrepancies'][:5]}")
    except (ValueError, IndexError, KeyError):
        violations.append(f"ledger check did not report: rc={r.returncode} {r.stderr[-500:]}")
    return violations, figures


def _dump_redis(cluster: Cluster) -> None:
    """Keep every deal key of the private Redis next to the logs (for a violation report)."""
    from juxing.kit.redis import make_redis

    if cluster.redis is None:
        return
    try:
        client = make_redis(cluster.redis.url)
        dump = {
            k.decode(): {f.decode(): v.decode() for f, v in client.hgetall(k).items()}
            for k in client.scan_iter(match="juxing:deal:*")
            if client.type(k) == b"hash"
        }
        client.close()
        (cluster.workdir / "redis-deal-keys.json").write_text(json.dumps(dump, indent=1))
    except Exception as exc:  # the dump is a courtesy; the run's result stands
        print(f"  could not dump redis: {exc}", file=sys.stderr)


# --- a run ----------------------------------------------------------------------------------


def one_run(
    admin_url: str, seed: int, seconds: float, threads: int, use_watchdog: bool = True
) -> dict[str, Any]:
    url = fresh_database(admin_url, "juxing_faults")
    cluster = Cluster(
        database_url=url,
        apis=2,
        extra_env={"JUXING_RATE_LIMITS_ENABLED": "false", "JUXING_ORDER_TIMEOUT_S": "20"},
    )
    t_start = time.monotonic()
    cluster.start()
    keep = False
    try:
        world = seed_world(
            url,
            items=[("redis", 60, 2), ("redis", 200, 3), ("sql", 50, 2)],
            shoppers=40,
            creators=5,
        )
        print(
            f"  cluster up and world seeded in {time.monotonic() - t_start:.1f}s", file=sys.stderr
        )
        book = Ledger()
        faults: list[dict[str, Any]] = []
        deadline = time.monotonic() + seconds
        stop = threading.Event()
        procs_lock = threading.Lock()
        restarts: list[dict[str, Any]] = []
        fault_thread = threading.Thread(
            target=fault_loop,
            args=(cluster, seed, deadline, faults, stop, procs_lock),
            daemon=True,
        )
        watchdog = threading.Thread(
            target=watchdog_loop, args=(cluster, restarts, stop, procs_lock), daemon=True
        )
        clients = [
            threading.Thread(
                target=shopper_loop,
                args=(world, cluster.api_urls, seed * 1000 + i, deadline, book),
                daemon=True,
            )
            for i in range(threads)
        ]
        fault_thread.start()
        if use_watchdog:
            watchdog.start()
        for t in clients:
            t.start()
        for t in clients:
            t.join(timeout=seconds + RETRY_FOR_S + 120)
        stop.set()
        fault_thread.join(timeout=120)
        if use_watchdog:
            watchdog.join(timeout=120)
        # Everything back up, then quiesce: a graceful stop lets requests that clients gave
        # up on finish (their effects must be consistent too) before anything is checked.
        redis_proc = cluster.redis.proc if cluster.redis is not None else None
        if redis_proc is not None and not redis_proc.alive and cluster.redis is not None:
            cluster.redis.start()
        for p in cluster.processes:
            if not p.alive:
                p.start()
                p.wait_ready()
        time.sleep(3)
        for p in cluster.processes:
            p.kill(signal.SIGTERM)
        t_check = time.monotonic()
        violations, figures = check(cluster, world, book)
        figures["check_s"] = round(time.monotonic() - t_check, 1)
        keep = bool(violations)
        return {
            "seed": seed,
            "seconds": round(time.monotonic() - t_start, 1),
            "faults": faults,
            "watchdog_restarts": restarts,
            "outcomes": dict(book.outcomes),
            "acknowledged": {
                "orders": len(book.orders),
                "payments": len(book.payments),
                "refunds": len(book.refunds),
                "clicks": book.clicks,
            },
            "figures": figures,
            "violations": violations,
            "logs": str(cluster.workdir) if keep else None,
        }
    finally:
        if keep:
            _dump_redis(cluster)
            for p in cluster.processes:
                p.kill()
            if cluster.redis and cluster.redis.proc:
                cluster.redis.proc.kill()
        else:
            cluster.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=int(os.environ.get("JUXING_FAULTS_SEED", "9")))
    parser.add_argument("--runs", type=int, default=int(os.environ.get("JUXING_FAULTS_RUNS", "2")))
    parser.add_argument(
        "--seconds", type=float, default=float(os.environ.get("JUXING_FAULTS_SECONDS", "45"))
    )
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument(
        "--no-watchdog",
        action="store_true",
        help="do not restart API processes whose /healthz stops answering",
    )
    args = parser.parse_args()
    admin = os.environ.get("JUXING_TEST_DATABASE_URL") or DEFAULT_ADMIN_URL
    if not admin.startswith("postgresql"):
        print("the fault suite needs PostgreSQL (JUXING_TEST_DATABASE_URL)", file=sys.stderr)
        return 2
    results = []
    for n in range(args.runs):
        res = one_run(
            admin, args.seed + n, args.seconds, args.threads, use_watchdog=not args.no_watchdog
        )
        results.append(res)
        kinds = Counter(f["target"].rstrip("0123456789") for f in res["faults"])
        print(
            f"run {n + 1}: seed {res['seed']}  {res['seconds']:>6}s  faults {len(res['faults'])} "
            f"({dict(kinds)})  orders {res['acknowledged']['orders']}  payments "
            f"{res['acknowledged']['payments']}  refunds {res['acknowledged']['refunds']}  "
            f"clicks {res['acknowledged']['clicks']}  violations {len(res['violations'])}"
        )
        for f in res["faults"]:
            print(f"    t={f['at_s']:>6}s  SIGKILL {f['target']:<7} down {f['down_s']}s")
        for w in res["watchdog_restarts"]:
            print(f"    watchdog: {w['target']} restarted ({w['reason']})")
        for v in res["violations"]:
            print(f"    VIOLATION: {v}")
        print(f"    outcomes: {json.dumps(res['outcomes'], sort_keys=True)}")
        print(f"    figures: {json.dumps(res['figures'], sort_keys=True)}")
        if res["logs"]:
            print(f"    logs kept in {res['logs']}")
    summary = {
        "suite": "faults",
        "runs": len(results),
        "seeds": [r["seed"] for r in results],
        "faults_injected": sum(len(r["faults"]) for r in results),
        "faults_by_target": dict(Counter(f["target"] for r in results for f in r["faults"])),
        "acknowledged_orders": sum(r["acknowledged"]["orders"] for r in results),
        "acknowledged_payments": sum(r["acknowledged"]["payments"] for r in results),
        "acknowledged_refunds": sum(r["acknowledged"]["refunds"] for r in results),
        "acknowledged_clicks": sum(r["acknowledged"]["clicks"] for r in results),
        "watchdog_restarts": sum(len(r["watchdog_restarts"]) for r in results),
        "violations": sum(len(r["violations"]) for r in results),
        "seconds": round(sum(r["seconds"] for r in results), 1),
    }
    print(json.dumps(summary))
    return 1 if summary["violations"] else 0


if __name__ == "__main__":
    sys.exit(main())
