"""Live-room benchmark: 1,000 viewers hold server-sent-event streams on a real ``juxing serve``
process; the creator changes the pin; how long until every viewer has it?

    make bench-live                           # one API process, in-process fan-out
    JUXING_BENCH_REDIS_URL=redis://127.0.0.1:6379/3 make bench-live   # also 2 processes via Redis

Reported per configuration: per-viewer delivery latency (p50/p99/max over viewers x rounds) and
the time until ALL viewers had the pin (median and worst round). Viewers are asyncio clients
in this process reading the raw HTTP stream; the server runs in its own process(es).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from juxing.accounts import service as accounts
from juxing.content import service as content
from juxing.kit.db import Database
from juxing.kit.migrate import upgrade
from juxing.models.accounts import Role
from juxing.models.catalog import Merchant, Product, Sku


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def seed(url: str) -> tuple[str, int, list[int]]:
    """A creator, a room with three products; returns (bearer token, room id, item ids)."""
    upgrade(url)
    db = Database(url)
    with db.session() as session:
        creator = accounts.create_user(
            session=session, email="live@bench.test", password="bench-password-1",
            display_name="Live Bench", roles=(Role.SHOPPER,),
        )  # fmt: skip
        operator = accounts.create_user(
            session=session, email="op@bench.test", password="bench-password-1",
            display_name="Ops", roles=(Role.OPERATOR,),
        )  # fmt: skip
        app = content.apply_as_creator(session=session, user=creator, handle="livebench", bio="",
                                       pitch="")  # fmt: skip
        content.approve_application(session=session, operator=operator, application_id=app.id)
        merchant = Merchant(owner_id=operator.id, name="Bench Shop")
        session.add(merchant)
        session.flush()
        items = []
        for i in range(3):
            product = Product(merchant_id=merchant.id, title=f"直播商品 {i}", description="")
            session.add(product)
            session.flush()
            sku = Sku(product_id=product.id, name="std", list_price_minor=9900 + i, stock=100)
            session.add(sku)
            session.flush()
            items.append({"product_id": product.id, "sku_id": sku.id})
        from datetime import timedelta

        from juxing.kit.time import utcnow

        room = content.create_room(
            session=session, user=creator,
            data={"title": "bench", "scheduled_at": utcnow() + timedelta(hours=1), "items": items},
        )  # fmt: skip
        room_id, item_ids = room.id, [i.id for i in room.items]
        _token, raw = accounts.create_token(session=session, user=creator, name="bench")
    db.dispose()
    return raw, room_id, item_ids


def start_server(data_dir: Path, url: str, redis_url: str | None) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {
        **os.environ,
        "JUXING_DATA_DIR": str(data_dir),
        "JUXING_DATABASE_URL": url,
        "JUXING_INPROCESS_JOBS": "false",
        "JUXING_LOG_LEVEL": "WARNING",
    }
    env.pop("JUXING_REDIS_URL", None)
    if redis_url:
        env["JUXING_REDIS_URL"] = redis_url
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "juxing.app:create_app", "--factory", "--host",
         "127.0.0.1", "--port", str(port), "--log-level", "warning", "--no-access-log",
         "--timeout-keep-alive", "60", "--backlog", "4096"],
        env=env,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(base + "/healthz", timeout=1).status_code == 200:
                return proc, base
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError("server did not start")


class Viewer:
    def __init__(self) -> None:
        self.ready = asyncio.Event()
        self.got: dict[int, float] = {}  # revision -> monotonic arrival
        self.waiters: dict[int, asyncio.Event] = {}

    async def run(self, host: str, port: int, room_id: int) -> None:
        reader, writer = await asyncio.open_connection(host, port, limit=1 << 20)
        writer.write(
            f"GET /api/v1/live-rooms/{room_id}/events HTTP/1.1\r\nHost: {host}\r\n"
            "Accept: text/event-stream\r\n\r\n".encode()
        )
        await writer.drain()
        try:
            event = ""
            while True:
                line = await reader.readline()
                if not line:
                    return
                s = line.decode().strip()
                if s.startswith("event: "):
                    event = s[7:]
                elif s.startswith("data: ") and event in {"snapshot", "pin"}:
                    if event == "snapshot":
                        self.ready.set()
                    else:
                        revision = json.loads(s[6:])["revision"]
                        self.got[revision] = time.monotonic()
                        waiter = self.waiters.get(revision)
                        if waiter:
                            waiter.set()
        finally:
            writer.close()


async def run_config(bases: list[str], token: str, room_id: int, item_ids: list[int],
                     viewers: int, rounds: int) -> dict[str, float]:  # fmt: skip
    hosts = [b.removeprefix("http://").split(":") for b in bases]
    crowd = [Viewer() for _ in range(viewers)]
    tasks = []
    for i, v in enumerate(crowd):
        host, port = hosts[i % len(hosts)]
        tasks.append(asyncio.create_task(v.run(host, int(port), room_id)))
        if i % 100 == 99:
            await asyncio.sleep(0.05)  # do not flood the accept queue
    await asyncio.wait_for(asyncio.gather(*(v.ready.wait() for v in crowd)), 120)
    delivery: list[float] = []
    all_in: list[float] = []
    request: list[float] = []
    async with httpx.AsyncClient(
        base_url=bases[0], headers={"Authorization": f"Bearer {token}"}, timeout=30
    ) as api:
        for r in range(rounds):
            item = item_ids[r % len(item_ids)]
            t0 = time.monotonic()
            resp = await api.post(f"/api/v1/live-rooms/{room_id}/pin", json={"item_id": item})
            resp.raise_for_status()
            request.append(time.monotonic() - t0)
            revision = resp.json()["revision"]
            for v in crowd:
                v.waiters[revision] = asyncio.Event()
                if revision in v.got:
                    v.waiters[revision].set()
            await asyncio.wait_for(asyncio.gather(*(v.waiters[revision].wait() for v in crowd)), 60)
            times = [v.got[revision] - t0 for v in crowd]
            delivery.extend(times)
            all_in.append(max(times))
            await asyncio.sleep(0.5)
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    delivery.sort()
    return {
        "viewers": viewers,
        "rounds": rounds,
        "p50_ms": round(statistics.median(delivery) * 1000, 1),
        "p99_ms": round(delivery[max(0, int(len(delivery) * 0.99) - 1)] * 1000, 1),
        "max_ms": round(delivery[-1] * 1000, 1),
        "all_received_median_ms": round(statistics.median(all_in) * 1000, 1),
        "all_received_worst_ms": round(max(all_in) * 1000, 1),
        # How much of it was the pin request itself (auth, write, commit, response).
        "pin_request_median_ms": round(statistics.median(request) * 1000, 1),
    }


def _run(coro):  # type: ignore[no-untyped-def]
    """uvloop for the 1,000 client connections when it is installed (uvicorn uses it too)."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    return uvloop.run(coro)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--viewers", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--redis", default=os.environ.get("JUXING_BENCH_REDIS_URL"))
    args = parser.parse_args()
    configs = [("1 process, in-process fan-out", 1, None)]
    if args.redis:
        configs.append(("2 processes, Redis pub/sub", 2, args.redis))
    figures: dict[str, object] = {"viewers": args.viewers, "rounds": args.rounds}
    print(f"live room: {args.viewers} SSE viewers, {args.rounds} pin changes "
          f"(machine: {os.cpu_count()} cpus, shared)")  # fmt: skip
    print(f"{'configuration':<32} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} {'all-in med':>11}")
    for label, n_servers, redis_url in configs:
        data_dir = Path(tempfile.mkdtemp(prefix="jx-live-"))
        url = f"sqlite:///{data_dir / 'juxing.db'}"
        token, room_id, item_ids = seed(url)
        procs = [start_server(data_dir, url, redis_url) for _ in range(n_servers)]
        try:
            m = _run(
                run_config(
                    [b for _p, b in procs], token, room_id, item_ids, args.viewers, args.rounds
                )
            )
        finally:
            for proc, _base in procs:
                proc.terminate()
                proc.wait(timeout=15)
        key = "single_process" if n_servers == 1 else "redis_two_processes"
        figures[key] = m
        print(f"{label:<32} {m['p50_ms']:>8} {m['p99_ms']:>8} {m['max_ms']:>8} "
              f"{m['all_received_median_ms']:>11}")  # fmt: skip
        sys.stdout.flush()
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
