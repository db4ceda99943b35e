"""A local production-profile cluster for reliability tests: its own PostgreSQL database and
redis-server, N ``juxing serve`` processes and a ``juxing worker``, each of which can be
SIGKILLed and restarted (used by ``make test-faults`` and the scale-out test).

Nothing here touches shared services: the Redis it starts listens on a free port of its
own, and the database is created (and dropped first) under the name it is given.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

CLUSTER_SECRET = "juxing-cluster-secret-0123456789-abcdefghijklmnopqrstuvwxyz"  # noqa: S105 (test only)
PAYMENT_SECRET = "juxing-cluster-payment-secret-0123456789"  # noqa: S105 (test only)


def free_port() -> int:
    """A TCP port nobody listens on right now (127.0.0.1)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def fresh_database(admin_url: str, name: str) -> str:
    """Drop and create database ``name`` on the server of ``admin_url``; returns its URL."""
    url = make_url(admin_url)
    engine = create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    finally:
        engine.dispose()
    return url.set(database=name).render_as_string(hide_password=False)


def _juxing_bin() -> str:
    candidate = Path(sys.executable).parent / "juxing"
    return str(candidate) if candidate.exists() else (shutil.which("juxing") or "juxing")


@dataclass
class Proc:
    """One child process that can be killed and started again with the same command."""

    name: str
    argv: list[str]
    env: dict[str, str]
    log_path: Path
    ready_url: str | None = None
    popen: subprocess.Popen[bytes] | None = None
    starts: int = 0
    started_at: float = 0.0

    def start(self) -> None:
        log = self.log_path.open("ab")
        self.popen = subprocess.Popen(  # noqa: S603 - our own executables
            self.argv, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        log.close()
        self.starts += 1
        self.started_at = time.monotonic()

    @property
    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Send ``sig`` (SIGKILL by default: no shutdown hooks run) and reap the process."""
        if self.popen is None:
            return
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, sig)
        try:
            self.popen.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait(timeout=10)

    def wait_ready(self, timeout: float = 90.0) -> None:
        """Wait until the ready URL answers 200 (or, without one, a short grace period)."""
        deadline = time.monotonic() + timeout
        if self.ready_url is None:
            time.sleep(0.5)
            return
        while time.monotonic() < deadline:
            if not self.alive:
                raise RuntimeError(f"{self.name} exited: see {self.log_path}")
            try:
                if httpx.get(self.ready_url, timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise TimeoutError(f"{self.name} not ready after {timeout}s: see {self.log_path}")


@dataclass
class RedisServer:
    """A private redis-server (no persistence: a restart loses every key, like a crash)."""

    port: int
    workdir: Path
    proc: Proc | None = None

    def start(self) -> None:
        if self.proc is None:
            self.proc = Proc(
                name="redis",
                argv=[
                    "redis-server",
                    "--bind",
                    "127.0.0.1",
                    "--port",
                    str(self.port),
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--dir",
                    str(self.workdir),
                ],
                env=dict(os.environ),
                log_path=self.workdir / "redis.log",
            )
        self.proc.start()
        self.wait_ready()

    def wait_ready(self, timeout: float = 20.0) -> None:
        import redis

        deadline = time.monotonic() + timeout
        client = redis.Redis(port=self.port, socket_connect_timeout=1)
        try:
            while time.monotonic() < deadline:
                try:
                    if client.ping():
                        return
                except redis.RedisError:
                    time.sleep(0.1)
        finally:
            client.close()
        raise TimeoutError("redis-server did not start")

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"


@dataclass
class Cluster:
    """``apis`` API processes + one worker on one PostgreSQL database and a private Redis."""

    database_url: str
    apis: int = 2
    with_worker: bool = True
    extra_env: dict[str, str] = field(default_factory=dict)
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="juxing-cluster-")))
    redis: RedisServer | None = None
    api_procs: list[Proc] = field(default_factory=list)
    worker_proc: Proc | None = None

    def env(self) -> dict[str, str]:
        assert self.redis is not None
        env = {k: v for k, v in os.environ.items() if not k.startswith("JUXING_")}
        env.update(
            {
                "JUXING_ENV": "production",
                "JUXING_DATABASE_URL": self.database_url,
                "JUXING_REDIS_URL": self.redis.url,
                "JUXING_SECRET_KEY": CLUSTER_SECRET,
                "JUXING_PAYMENT_SECRET": PAYMENT_SECRET,
                "JUXING_INPROCESS_JOBS": "false",
                "JUXING_DATA_DIR": str(self.workdir / "data"),
                "JUXING_LOG_LEVEL": "WARNING",
                "JUXING_STOCK_BACKEND": "redis",
            }
        )
        env.update(self.extra_env)
        return env

    def start(self) -> Cluster:
        """Start Redis, migrate the database, then the API processes and the worker."""
        self.redis = RedisServer(port=free_port(), workdir=self.workdir)
        self.redis.start()
        env = self.env()
        subprocess.run(  # noqa: S603
            [_juxing_bin(), "db", "upgrade"],
            env=env,
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        for i in range(self.apis):
            port = free_port()
            self.api_procs.append(
                Proc(
                    name=f"api{i}",
                    argv=[
                        _juxing_bin(),
                        "serve",
                        "--host",
                        "127.0.0.1",
                        "--port",
                        str(port),
                        "--workers",
                        "1",
                    ],
                    env={
                        **env,
                        "JUXING_PORT": str(port),
                        "JUXING_PUBLIC_URL": f"http://127.0.0.1:{port}",
                    },
                    log_path=self.workdir / f"api{i}.log",
                    ready_url=f"http://127.0.0.1:{port}/healthz",
                )
            )
        if self.with_worker:
            self.worker_proc = Proc(
                name="worker",
                argv=[_juxing_bin(), "worker"],
                env=env,
                log_path=self.workdir / "worker.log",
            )
        for p in self.processes:
            p.start()
        for p in self.processes:
            p.wait_ready()
        return self

    @property
    def processes(self) -> list[Proc]:
        return self.api_procs + ([self.worker_proc] if self.worker_proc else [])

    @property
    def api_urls(self) -> list[str]:
        return [p.ready_url.removesuffix("/healthz") for p in self.api_procs if p.ready_url]

    def restart(self, proc: Proc) -> None:
        proc.kill()
        proc.start()
        proc.wait_ready()

    def stop(self) -> None:
        """SIGTERM everything (SIGKILL what does not stop) and remove the work folder."""
        for p in self.processes:
            p.kill(signal.SIGTERM)
        if self.redis is not None and self.redis.proc is not None:
            self.redis.proc.kill(signal.SIGTERM)
        shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> Cluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


# --- a world to drive ------------------------------------------------------------------------


@dataclass
class World:
    merchant_token: str
    shopper_tokens: dict[int, str]
    link_tokens: dict[int, list[str]]  # deal item id -> creators' link tokens
    items: dict[int, dict[str, Any]]  # id -> {stock, limit, backend}


def seed_world(
    database_url: str,
    *,
    items: list[tuple[str, int, int]],
    shoppers: int,
    creators: int,
) -> World:
    """Operator, merchant, a live festival with Redis- and SQL-backed deal items, creators'
    links and shoppers with API tokens, through the services."""
    from juxing.accounts import service as accounts
    from juxing.catalog import service as catalog
    from juxing.commission import links
    from juxing.deals import service as deals
    from juxing.kit.db import Database
    from juxing.kit.security import hash_password
    from juxing.kit.time import utcnow
    from juxing.models.accounts import Role, User, UserRole

    db = Database(database_url)
    pw = hash_password("fault-suite-password")
    now = utcnow()

    def user(email: str, role: Role) -> User:
        u = User(
            email=email,
            display_name=email.split("@")[0],
            password_hash=pw,
            locale="en",
            is_active=True,
            created_at=now,
            updated_at=now,
        )
        u.roles = [UserRole(role=role.value, granted_at=now)]
        return u

    def token(session: Any, u: User) -> str:
        return accounts.create_token(session=session, user=u, name="faults")[1]

    with db.session() as s:
        operator = user("operator@faults.test", Role.OPERATOR)
        merchant = user("merchant@faults.test", Role.MERCHANT)
        s.add_all([operator, merchant])
        s.flush()
        shop = catalog.create_merchant(session=s, owner=merchant, name="Fault Shop")
        festival = deals.create_festival(
            session=s,
            user=operator,
            name="Crash Festival",
            name_zh="崩溃节",
            starts_at=now - timedelta(hours=1),
            ends_at=now + timedelta(days=1),
        )
        made: dict[int, dict[str, Any]] = {}
        # (backend, deal stock, per-user limit) per deal item, each in its own campaign.
        for backend, stock, limit in items:
            product = catalog.create_product(
                session=s,
                user=merchant,
                merchant_id=shop.id,
                title=f"Lamp {backend} {stock}",
                skus=[
                    {
                        "name": "default",
                        "list_price_minor": 10_000,
                        "currency": "CNY",
                        "stock": stock + 10,
                    }
                ],
            )
            campaign = deals.create_campaign(
                session=s,
                user=merchant,
                festival_id=festival.id,
                merchant_id=shop.id,
                title=f"Campaign {backend} {stock}",
            )
            item = deals.add_deal_item(
                session=s,
                user=merchant,
                campaign_id=campaign.id,
                sku_id=product.skus[0].id,
                deal_price_minor=5_900,
                deal_stock=stock,
                per_user_limit=limit,
                starts_at=now - timedelta(minutes=5),
                ends_at=now + timedelta(hours=6),
                commission_rate_bp=800,
            )
            deals.submit_campaign(session=s, user=merchant, campaign_id=campaign.id)
            deals.approve_campaign(
                session=s, user=operator, campaign_id=campaign.id, stock_backend=backend
            )
            made[item.id] = {"stock": stock, "limit": limit, "backend": backend}
        deals.advance_campaigns(session=s)
        creator_users = [user(f"creator{i}@faults.test", Role.CREATOR) for i in range(creators)]
        shopper_users = [user(f"shopper{i}@faults.test", Role.SHOPPER) for i in range(shoppers)]
        s.add_all(creator_users + shopper_users)
        s.flush()
        link_tokens: dict[int, list[str]] = {i: [] for i in made}
        for c in creator_users:
            for item_id in made:
                link = links.link_for(
                    s,
                    secret_key=CLUSTER_SECRET,
                    creator_id=c.id,
                    target_type="deal_item",
                    target_id=item_id,
                )
                link_tokens[item_id].append(links.token_of(link))
        world = World(
            merchant_token=token(s, merchant),
            shopper_tokens={u.id: token(s, u) for u in shopper_users},
            link_tokens=link_tokens,
            items=made,
        )
    db.dispose()
    return world
