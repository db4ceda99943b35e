"""Runs the registered periodic jobs: a thread in the API process, or ``juxing worker``."""

from __future__ import annotations

import importlib
import logging
import threading
import time
from collections.abc import Callable

import redis
from fastapi import FastAPI

from juxing.kit.db import Database
from juxing.worker.registry import JOBS, PeriodicJob

log = logging.getLogger("juxing.worker")

# Domains whose ``tasks`` module registers periodic jobs.
TASK_MODULES: tuple[str, ...] = (
    "juxing.marketplace.tasks",  # issue 7
    "juxing.analytics.tasks",  # issue 7
    "juxing.commission.tasks",  # issue 6: commission
    "juxing.deals.tasks",  # issue 3: deals
    "juxing.content.tasks",  # issue 4: content
    "juxing.feed.tasks",  # issue 5: feed snapshot
)


def load_jobs() -> dict[str, PeriodicJob]:
    for module in TASK_MODULES:
        importlib.import_module(module)
    return JOBS


def run_job_once(job: PeriodicJob, db: Database, redis_client: redis.Redis | None) -> None:
    """Run one job, under a Redis lock when Redis is configured; log, never raise."""
    try:
        if redis_client is not None:
            lock = redis_client.lock(
                f"juxing:job:{job.name}", timeout=max(30.0, job.every_s * 4), blocking=False
            )
            if not lock.acquire():
                return
            try:
                job.fn(db)
            finally:
                try:
                    lock.release()
                except redis.exceptions.LockError:
                    log.warning("job %s outlived its lock", job.name)
        else:
            job.fn(db)
    except Exception:
        log.exception("job %s failed", job.name)


def run_loop(
    db: Database, redis_client: redis.Redis | None, stop: threading.Event, tick_s: float = 0.5
) -> None:
    """Run each job every ``every_s`` seconds until ``stop`` is set."""
    jobs = load_jobs()
    next_run = {name: 0.0 for name in jobs}
    while not stop.is_set():
        now = time.monotonic()
        for name, job in jobs.items():
            if now >= next_run[name]:
                run_job_once(job, db, redis_client)
                next_run[name] = time.monotonic() + job.every_s
        stop.wait(tick_s)


def start_inprocess_jobs(app: FastAPI) -> Callable[[], None]:
    """Start the job loop in a daemon thread; returns a function that stops it."""
    stop = threading.Event()
    thread = threading.Thread(
        target=run_loop,
        args=(app.state.db, app.state.redis, stop),
        name="juxing-jobs",
        daemon=True,
    )
    thread.start()

    def _stop() -> None:
        stop.set()
        thread.join(timeout=10)

    return _stop
