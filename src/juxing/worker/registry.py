"""Periodic jobs. A domain registers its sweeps in its ``tasks.py``::

    @periodic("deals.expire_unpaid_orders", every_s=5)
    def expire_unpaid_orders(db: Database) -> int: ...

A job must be idempotent and safe to run in several processes at once (use row locks or
conditional updates); with Redis configured, a Redis lock also keeps runs from overlapping.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from juxing.kit.db import Database

JobFn = Callable[[Database], object]


@dataclass(frozen=True)
class PeriodicJob:
    name: str
    every_s: float
    fn: JobFn


JOBS: dict[str, PeriodicJob] = {}


def periodic(name: str, *, every_s: float) -> Callable[[JobFn], JobFn]:
    def register(fn: JobFn) -> JobFn:
        JOBS[name] = PeriodicJob(name=name, every_s=every_s, fn=fn)
        return fn

    return register
